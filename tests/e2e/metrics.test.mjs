// Issue 14, metrics: GET /metrics on the management listener, in the
// Prometheus text format. Traffic of each kind, then a scrape, and the
// counts a user would expect; `promtool check metrics` on the output.

import { spawnSync } from 'node:child_process';
import http from 'node:http';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import {
  test, assert, startBackend, startGateway, makeApi, connect, connectRefused, connectWithId,
  nextMessage, send, postTo, getConn, deleteConn, mgmtRequest, waitUntil, waitClose, unusedUrl, echoHandler,
} from './helpers.mjs';

/** Parses the exposition into [{ name, labels, value }]. */
function parse(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/);
    assert.ok(m, `unparsable line: ${line}`);
    const labels = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** The sum of the series of name whose labels include want. */
function value(series, name, want = {}) {
  return series.filter((s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

async function scrape(gw, opts) {
  const r = await mgmtRequest(gw, 'GET', '/metrics', undefined, opts);
  assert.equal(r.status, 200, r.text);
  assert.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  return { text: r.text, series: parse(r.text) };
}

function restGet(gw, pathname) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: gw.port, path: pathname, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    }).on('error', reject);
  });
}

function promtool(text) {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.ok(!r.error, `promtool: ${r.error?.message} (Debian package prometheus, scripts/install-deps.sh)`);
  assert.equal(r.status, 0, `promtool check metrics:\n${r.stdout}${r.stderr}`);
}

const API = { api: 'chat', stage: 'dev' };

test('metrics: connects, messages, integration errors, management calls and closes are counted exactly, and promtool accepts the output', async () => {
  const backend = await startBackend(echoHandler);
  const dead = await unusedUrl();
  const gw = await startGateway({
    routes: makeApi(backend.url, {
      integrations: {
        backend: { type: 'AWS_PROXY', uri: backend.url, timeoutMs: 5000 },
        dead: { type: 'AWS_PROXY', uri: dead, timeoutMs: 5000 },
      },
      routes: {
        $connect: { integration: 'backend' },
        $disconnect: { integration: 'backend' },
        $default: { integration: 'backend', routeResponse: true },
        boom: { integration: 'dead' },
        'GET /items': { integration: 'backend' },
      },
    }),
    args: ['--workers', '2'],
  });

  // Before any traffic: the API's series exist, at zero.
  let { series } = await scrape(gw);
  assert.equal(value(series, 'wsgate_connections_opened_total', API), 0);

  const clients = [];
  for (let i = 0; i < 3; i++) clients.push(await connectWithId(gw, backend));
  for (const { ws } of clients) {
    for (let j = 0; j < 2; j++) {
      send(ws, `hello ${j}`);
      assert.equal((await nextMessage(ws)).data, `hello ${j}`);
    }
  }
  const [a, b, c] = clients;
  for (let j = 0; j < 2; j++) {
    send(a.ws, JSON.stringify({ action: 'boom' }));
    assert.match((await nextMessage(a.ws)).data, /Internal server error/);
  }
  assert.equal((await postTo(gw, b.id, 'pushed')).status, 200);
  assert.equal((await nextMessage(b.ws)).data, 'pushed');
  assert.equal((await getConn(gw, b.id)).status, 200);
  assert.equal((await postTo(gw, 'AAAAAAAAAAAAAAAA', 'x')).status, 410);
  assert.equal((await deleteConn(gw, c.id)).status, 204);
  assert.equal(await restGet(gw, '/items'), 200);
  assert.equal(await restGet(gw, '/nothing-here'), 404);
  await waitClose(c.ws);
  a.ws.close(1000, 'bye');
  await waitClose(a.ws);
  await backend.waitFor((e) => e.requestContext?.eventType === 'DISCONNECT'
    && e.requestContext.connectionId === a.id);
  await backend.waitFor((e) => e.requestContext?.eventType === 'DISCONNECT'
    && e.requestContext.connectionId === c.id);

  // 3 $connect + 6 echoes + 2 failed calls + 1 REST + 2 $disconnect; the
  // last answers arrive just after the backend saw the events.
  let text;
  await waitUntil(async () => {
    ({ text, series } = await scrape(gw));
    if (process.env.WSGATE_METRICS_DUMP) console.log(value(series, 'wsgate_integration_duration_seconds_count', API));
    return value(series, 'wsgate_integration_duration_seconds_count', API) === 14;
  }, 5000, '14 integration calls in the histogram');

  assert.equal(value(series, 'wsgate_connections_opened_total', API), 3);
  assert.equal(value(series, 'wsgate_connections_open', API), 1);
  assert.equal(value(series, 'wsgate_messages_total', { ...API, direction: 'in' }), 8);
  // 6 echoes, 2 error frames, 1 POST
  assert.equal(value(series, 'wsgate_messages_total', { ...API, direction: 'out' }), 9);
  assert.equal(value(series, 'wsgate_integration_errors_total', { ...API, kind: 'failed' }), 2);
  assert.equal(value(series, 'wsgate_integration_errors_total', { ...API, kind: 'timeout' }), 0);
  assert.equal(value(series, 'wsgate_disconnects_total', { ...API, code: '1000' }), 2);
  assert.equal(value(series, 'wsgate_integration_duration_seconds_bucket', { ...API, le: '+Inf' }), 14);
  assert.ok(value(series, 'wsgate_integration_duration_seconds_sum', API) > 0);
  assert.equal(value(series, 'wsgate_route_requests_total', { ...API, route: '$default' }), 6);
  assert.equal(value(series, 'wsgate_route_requests_total', { ...API, route: 'boom' }), 2);
  assert.equal(value(series, 'wsgate_route_requests_total', { ...API, route: 'GET /items' }), 1);
  assert.equal(value(series, 'wsgate_rest_requests_total', { ...API, status: '2xx' }), 1);
  assert.equal(value(series, 'wsgate_rest_requests_total', { ...API, status: '4xx' }), 1);
  assert.equal(value(series, 'wsgate_management_requests_total', { op: 'post', status: '200' }), 1);
  assert.equal(value(series, 'wsgate_management_requests_total', { op: 'post', status: '410' }), 1);
  assert.equal(value(series, 'wsgate_management_requests_total', { op: 'get', status: '200' }), 1);
  assert.equal(value(series, 'wsgate_management_requests_total', { op: 'delete', status: '204' }), 1);
  assert.ok(value(series, 'wsgate_management_requests_total', { op: 'metrics', status: '200' }) >= 1);
  assert.equal(value(series, 'wsgate_registry_connections'), 1);
  assert.equal(value(series, 'wsgate_event_loops'), 2);
  assert.ok(value(series, 'process_resident_memory_bytes') > 1e6);
  assert.ok(value(series, 'process_open_fds') > 5);
  assert.ok(series.some((s) => s.name === 'process_cpu_seconds_total'));
  if (process.env.WSGATE_METRICS_DUMP) console.log(text);
  promtool(text);
  b.ws.close();
});

test('metrics: refusals at the edge and integration timeouts are counted by reason', async () => {
  const backend = await startBackend((e) => (e.requestContext?.eventType === 'MESSAGE'
    ? new Promise(() => {}) : { statusCode: 200 }));
  const gw = await startGateway({
    routes: makeApi(backend.url, {
      allowedOrigins: ['https://app.example.com'],
      integration: { timeoutMs: 400 },
    }),
  });
  for (let i = 0; i < 2; i++) {
    assert.equal(await connectRefused(gw.url, { headers: { Origin: 'https://evil.example.net' } }), 403);
  }
  const { ws } = await connectWithId(gw, backend, { headers: { Origin: 'https://app.example.com' } });
  send(ws, 'slow');
  assert.match((await nextMessage(ws, 3000)).data, /Endpoint request timed out/);
  let series;
  await waitUntil(async () => {
    ({ series } = await scrape(gw));
    return value(series, 'wsgate_integration_errors_total', { ...API, kind: 'timeout' }) === 1;
  }, 3000, 'the timeout counted');
  assert.equal(value(series, 'wsgate_rejections_total', { ...API, reason: 'origin' }), 2);
  assert.equal(value(series, 'wsgate_connections_opened_total', API), 1);
  assert.equal(value(series, 'wsgate_rejections_total', { ...API, reason: 'no_route' }), 0);
  ws.close();
});

class Sha256 {
  constructor(secret) { this.h = secret ? createHmac('sha256', secret) : createHash('sha256'); }
  update(d) { this.h.update(typeof d === 'string' ? Buffer.from(d) : d); }
  async digest() { return new Uint8Array(this.h.digest()); }
}

test('metrics: with managementAuth, /metrics takes a signed request (403 unsigned or badly signed)', async () => {
  const secret = randomBytes(30).toString('base64');
  const backend = await startBackend();
  const gw = await startGateway({
    routes: makeApi(backend.url, {
      managementAuth: { keys: [{ accessKeyId: 'AKIAWSGATEMETRICS', secretAccessKeyEnv: 'WSGATE_TEST_METRICS' }] },
    }),
    env: { WSGATE_TEST_METRICS: secret },
  });
  const unsigned = await mgmtRequest(gw, 'GET', '/metrics');
  assert.equal(unsigned.status, 403);
  const sign = async (key) => {
    const signer = new SignatureV4({
      service: 'execute-api', region: 'us-east-1', sha256: Sha256,
      credentials: { accessKeyId: 'AKIAWSGATEMETRICS', secretAccessKey: key },
    });
    const req = await signer.sign({
      method: 'GET', protocol: 'http:', hostname: '127.0.0.1', port: gw.mgmtPort, path: '/metrics',
      query: {}, headers: { host: `127.0.0.1:${gw.mgmtPort}` },
    });
    return req.headers;
  };
  const bad = await mgmtRequest(gw, 'GET', '/metrics', undefined, { headers: await sign('not the secret') });
  assert.equal(bad.status, 403);
  const { text, series } = await scrape(gw, { headers: await sign(secret) });
  assert.equal(value(series, 'wsgate_management_requests_total', { op: 'metrics', status: '403' }), 2);
  promtool(text);
});

test('metrics: --metrics-no-auth serves /metrics unsigned with managementAuth; other calls still need a signature', async () => {
  const backend = await startBackend();
  const gw = await startGateway({
    routes: makeApi(backend.url, {
      managementAuth: { keys: [{ accessKeyId: 'AKIAWSGATEMETRICS', secretAccessKeyEnv: 'WSGATE_TEST_METRICS' }] },
    }),
    env: { WSGATE_TEST_METRICS: randomBytes(30).toString('base64') },
    args: ['--metrics-no-auth'],
  });
  const { ws, id } = await connectWithId(gw, backend);
  // The client may see the 101 a moment before the gateway's loop counts
  // the connection as open.
  let text;
  await waitUntil(async () => {
    let series;
    ({ text, series } = await scrape(gw));
    return value(series, 'wsgate_connections_open', API) === 1;
  }, 3000, 'the connection counted as open');
  promtool(text);
  assert.equal((await postTo(gw, id, 'unsigned')).status, 403);
  ws.close();
});
