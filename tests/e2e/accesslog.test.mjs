// Issue 14, access logs: accessLog {format, destination} per API, AWS's
// $context variables, one line per connect, message, disconnect, REST
// request and management call; the files opened again on SIGUSR1;
// --check on bad settings; --log-format json for the gateway's own lines.

import http from 'node:http';
import { existsSync, mkdtempSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  test, assert, startBackend, startGateway, runGateway, makeApi, writeRoutes, connect,
  connectRefused, connectWithId, nextMessage, send, postTo, waitUntil, waitClose,
} from './helpers.mjs';

function lines(file) {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

function restGet(gw, pathname) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: gw.port, path: pathname, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    }).on('error', reject);
  });
}

test('access log: one parsed JSON line per connect, message, disconnect, REST request and management call', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-alog-'));
  const file = path.join(dir, 'access.log');
  const backend = await startBackend((e) => {
    if (e.requestContext?.eventType === 'MESSAGE') return { statusCode: 200, body: e.body };
    if (e.requestContext?.eventType) return { statusCode: 200 };
    return { statusCode: 200, body: 'rest' };
  });
  const api = makeApi(backend.url, { allowedOrigins: ['https://app.example.com'], accessLog: { destination: file } });
  api.routes['GET /items'] = { integration: 'backend' };
  const gw = await startGateway({ routes: api });

  const { ws, id } = await connectWithId(gw, backend);
  send(ws, 'hello');
  assert.equal((await nextMessage(ws)).data, 'hello');
  assert.equal((await postTo(gw, id, 'pushed')).status, 200);
  assert.equal((await nextMessage(ws)).data, 'pushed');
  assert.equal(await restGet(gw, '/items'), 200);
  assert.equal(await connectRefused(gw.url, { headers: { Origin: 'https://evil.example.net' } }), 403);
  ws.close(1000, 'done');
  await waitClose(ws);

  let got;
  await waitUntil(() => {
    got = lines(file);
    return got.some((l) => l.eventType === 'DISCONNECT');
  }, 5000, 'the DISCONNECT line');
  const of = (type) => got.filter((l) => l.eventType === type);
  const common = { apiId: 'chat', stage: 'dev', sourceIp: '127.0.0.1' };
  for (const l of got) {
    assert.match(l.requestId, /^\S{8,}$/, JSON.stringify(l));
    assert.match(l.requestTime, /^\d\d\/[A-Z][a-z]{2}\/\d{4}:\d\d:\d\d:\d\d \+0000$/);
  }
  const connects = of('CONNECT');
  assert.equal(connects.length, 2, JSON.stringify(connects));
  assert.deepEqual({ ...connects[0], requestId: 0, requestTime: 0, integrationLatency: 0 }, {
    ...common, requestId: 0, requestTime: 0, integrationLatency: 0, eventType: 'CONNECT',
    routeKey: '$connect', connectionId: id, status: '200', errorMessage: '-',
  });
  assert.match(connects[0].integrationLatency, /^\d+$/);
  assert.equal(connects[1].status, '403'); // the refused Origin: no $connect call
  assert.equal(connects[1].integrationLatency, '-');
  const [msg] = of('MESSAGE');
  assert.equal(of('MESSAGE').length, 1);
  assert.equal(msg.routeKey, '$default');
  assert.equal(msg.connectionId, id);
  assert.equal(msg.status, '200');
  assert.match(msg.integrationLatency, /^\d+$/);
  const [mgmt] = of('MANAGEMENT');
  assert.equal(of('MANAGEMENT').length, 1);
  assert.equal(mgmt.connectionId, id);
  assert.equal(mgmt.status, '200');
  const [rest] = of('HTTP');
  assert.equal(of('HTTP').length, 1);
  assert.equal(rest.routeKey, 'GET /items');
  assert.equal(rest.status, '200');
  const [disc] = of('DISCONNECT');
  assert.equal(disc.connectionId, id);
  assert.equal(disc.routeKey, '$disconnect');
});

test('access log: a custom format of $context variables, JSON-escaped values, error messages', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-alog-'));
  const file = path.join(dir, 'custom.log');
  const backend = await startBackend((e) => (e.requestContext?.eventType === 'MESSAGE'
    ? new Promise(() => {}) : { statusCode: 200 }));
  const gw = await startGateway({
    routes: makeApi(backend.url, {
      integration: { timeoutMs: 300 },
      accessLog: {
        destination: file,
        format: '{"id":"$context.requestId","type":"$context.eventType","route":"$context.routeKey",'
          + '"status":"$context.status","err":"$context.error.message","ua":"$context.identity.userAgent",'
          + '"code":"$context.disconnectStatusCode","epoch":$context.requestTimeEpoch}',
      },
    }),
  });
  const { ws } = await connectWithId(gw, backend, { headers: { 'User-Agent': 'quote " and \\ backslash' } });
  send(ws, 'slow');
  assert.match((await nextMessage(ws, 3000)).data, /timed out/);
  ws.close(4001, 'app');
  await waitClose(ws);
  let got;
  await waitUntil(() => {
    got = lines(file);
    return got.some((l) => l.type === 'DISCONNECT');
  }, 5000, 'the DISCONNECT line');
  const msg = got.find((l) => l.type === 'MESSAGE');
  assert.equal(msg.status, '504');
  assert.equal(msg.err, 'Endpoint request timed out');
  assert.equal(msg.ua, 'quote " and \\ backslash');
  assert.ok(Math.abs(msg.epoch - Date.now()) < 60000);
  assert.equal(got.find((l) => l.type === 'DISCONNECT').code, '4001');
});

test('access log: SIGUSR1 opens the file again (logrotate moved it)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-alog-'));
  const file = path.join(dir, 'access.log');
  const backend = await startBackend();
  const gw = await startGateway({ routes: makeApi(backend.url, { accessLog: { destination: file } }) });
  const a = await connectWithId(gw, backend);
  await waitUntil(() => lines(file).length === 1, 5000, 'the first CONNECT line');
  renameSync(file, `${file}.1`);
  gw.proc.kill('SIGUSR1');
  await waitUntil(() => existsSync(file), 5000, 'the file opened again');
  const b = await connectWithId(gw, backend);
  await waitUntil(() => lines(file).length === 1, 5000, 'the second CONNECT line in the new file');
  assert.equal(lines(file)[0].connectionId, b.id);
  assert.equal(lines(`${file}.1`).length, 1);
  assert.equal(lines(`${file}.1`)[0].connectionId, a.id);
  assert.equal(gw.proc.exitCode, null, 'SIGUSR1 must not stop the gateway');
});

test('access log: --check names the file, the key and what was expected', async () => {
  const backend = await startBackend();
  const cases = [
    [{ format: '$context.requestId $context.nope' }, /accessLog\.format: unknown variable \$context\.nope/],
    [{ format: '$context.status only' }, /accessLog\.format: expected \$context\.requestId or \$context\.extendedRequestId/],
    [{ destination: '/nonexistent-folder/access.log' }, /accessLog\.destination: expected "stderr" or a file in a writable folder/],
    [{ destination: 42 }, /accessLog\.destination: expected "stderr" or a file path, found an integer/],
    [{ formt: 'x' }, /accessLog: unknown key "formt"|accessLog\.formt/],
  ];
  for (const [accessLog, re] of cases) {
    const dir = writeRoutes({ 'chat.json': makeApi(backend.url, { accessLog }) });
    const res = await runGateway(['--check', '--routes', dir]);
    assert.notEqual(res.code, 0, JSON.stringify(accessLog));
    assert.match(res.stderr, /chat\.json: accessLog/);
    assert.match(res.stderr, re, res.stderr);
  }
  const ok = writeRoutes({ 'chat.json': makeApi(backend.url, { accessLog: { destination: 'stderr' } }) });
  assert.equal((await runGateway(['--check', '--routes', ok])).code, 0);
});

test('--log-format json: the gateway\'s own lines are JSON objects', async () => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: makeApi(backend.url), args: ['--log-format', 'json'] });
  const { id } = await connectWithId(gw, backend);
  let objs;
  await waitUntil(() => {
    objs = gw.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    return objs.some((o) => o.msg.includes(id));
  }, 5000, 'the open line');
  const open = objs.find((o) => o.msg.includes(id));
  assert.equal(open.level, 'info');
  assert.match(open.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.match(open.msg, /^connection \S+ open/);
  const bad = await runGateway(['--log-format', 'xml', '--check', '--routes', writeRoutes({ 'a.json': makeApi(backend.url) })]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--log-format: expected text or json/);
});
