// Hot reload (issue 11, "Hot reload"): SIGHUP, `wsgate --reload` read the
// API files again without dropping a socket. New connections and REST
// requests use the new routes; open connections keep the snapshot they
// connected under; a configuration that fails --check is refused whole.
import http from 'node:http';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { writeFileSync, renameSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  test, assert, startBackend, startHttpBackend, startGateway, runGateway, connect, connectWithId, nextMessage,
  waitClose, send, sleep, waitUntil, withTimeout, mgmtRequest, postTo, getConn, makeApi,
} from './helpers.mjs';

// Each backend names itself in its answers, so a test sees which
// integration a message or request reached.
function namedHandler(name, { delay = () => 0 } = {}) {
  return async (event) => {
    const type = event.requestContext?.eventType;
    const route = event.requestContext?.routeKey ?? event.routeKey;
    const ms = delay(event);
    if (ms) await sleep(ms);
    if (type === 'CONNECT' || type === 'DISCONNECT') return { statusCode: 200 };
    return { statusCode: 200, body: JSON.stringify({ backend: name, route }) };
  };
}

function api(uriA, uriB, { changed = false, ...overrides } = {}) {
  const a = makeApi(uriA, overrides);
  a.integrations.b = { type: 'AWS_PROXY', uri: uriB, timeoutMs: 5000 };
  a.routes.ping = { integration: changed ? 'b' : 'backend', routeResponse: true };
  a.routes['GET /items'] = { integration: changed ? 'b' : 'backend' };
  a.routes['GET /slow'] = { integration: 'backend' };
  if (changed) {
    a.routes.pong = { integration: 'b', routeResponse: true };
    a.routes['GET /fresh'] = { integration: 'b' };
  }
  return a;
}

// Replaces a file at once (rename), as an operator's deploy would: the
// loader never reads half a file.
function replaceFile(dir, name, content) {
  const tmp = path.join(dir, `.${name}.tmp`);
  writeFileSync(tmp, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  renameSync(tmp, path.join(dir, name));
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

function get(gw, urlPath, { keepAlive = false, timeoutMs = 5000 } = {}) {
  const p = new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port: gw.port, method: 'GET', path: urlPath,
      agent: keepAlive ? agent : false,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  return withTimeout(p, timeoutMs, `GET ${urlPath}`);
}

async function ask(ws, action) {
  send(ws, JSON.stringify({ action }));
  return JSON.parse((await nextMessage(ws)).data);
}

// The log line of the last loop that swapped configuration `gen` in.
function swapped(gw, gen) {
  return new RegExp(`reload: configuration ${gen} in use by every loop .*; (\\d+) older snapshots? still held`);
}

async function reloaded(gw, gen, timeoutMs = 5000) {
  const m = await waitUntil(() => gw.output().match(swapped(gw, gen)), timeoutMs,
    `configuration ${gen} to be swapped in`);
  return Number(m[1]);
}

test('hot reload: SIGHUP under traffic changes a route and adds routes: zero errors, zero dropped connections, the new routes answer within a second, old connections keep their snapshot', { timeout: 40000 }, async () => {
  const a = await startBackend(namedHandler('A'));
  const b = await startBackend(namedHandler('B'));
  const gw = await startGateway({ routes: { 'chat.json': api(a.url, b.url) }, args: ['--workers', '2'] });

  const clients = [];
  for (let i = 0; i < 8; i++) clients.push(await connectWithId(gw, a));
  const errors = [];
  const closes = [];
  for (const c of clients) c.ws.on('close', (code) => closes.push(code));
  let running = true;
  let sent = 0;
  let restOk = 0;
  const afterReload = []; // answers the old connections got once the swap was logged
  let swappedAt = 0;

  const wsLoops = clients.map(async (c) => {
    while (running) {
      try {
        const r = await ask(c.ws, 'ping');
        sent++;
        if (r.route !== 'ping') errors.push(`ws answer ${JSON.stringify(r)}`);
        if (swappedAt) afterReload.push(r.backend);
      } catch (e) {
        errors.push(`ws: ${e.message}`);
        return;
      }
    }
  });
  const restLoops = [true, false].map(async (keepAlive) => {
    while (running) {
      try {
        const r = await get(gw, '/items', { keepAlive });
        if (r.status !== 200) errors.push(`REST ${r.status} ${r.text}`);
        else restOk++;
      } catch (e) {
        errors.push(`REST: ${e.message}`);
      }
    }
  });

  await sleep(700);
  assert.ok(sent > 20 && restOk > 10, `traffic runs (${sent} messages, ${restOk} REST answers)`);
  replaceFile(gw.routesDir, 'chat.json', api(a.url, b.url, { changed: true }));
  const t0 = Date.now();
  gw.proc.kill('SIGHUP');

  // The new WebSocket route and the new REST route answer within a second.
  let fresh = null;
  await waitUntil(async () => {
    const r = await get(gw, '/fresh', { keepAlive: false });
    return r.status === 200 && (fresh = JSON.parse(r.text));
  }, 3000, 'GET /fresh to answer');
  assert.deepEqual(fresh, { backend: 'B', route: 'GET /fresh' });
  const { ws: late } = await connectWithId(gw, a);
  assert.deepEqual(await ask(late, 'pong'), { backend: 'B', route: 'pong' });
  // A new connection takes the changed integration of ping.
  assert.deepEqual(await ask(late, 'ping'), { backend: 'B', route: 'ping' });
  assert.ok(Date.now() - t0 < 1000, `new routes answered ${Date.now() - t0} ms after SIGHUP`);
  await reloaded(gw, 1);
  swappedAt = Date.now();

  // REST requests are not tied to a connection: the next one takes the
  // changed integration.
  await waitUntil(async () => JSON.parse((await get(gw, '/items', { keepAlive: true })).text).backend === 'B', 2000,
    'GET /items to reach the changed integration');
  await sleep(500);
  running = false;
  await Promise.all([...wsLoops, ...restLoops]);

  assert.deepEqual(errors, [], 'no errors under reload');
  assert.deepEqual(closes, [], 'no connection dropped');
  assert.ok(afterReload.length > 8, `old connections kept working (${afterReload.length} answers after the swap)`);
  assert.ok(afterReload.every((x) => x === 'A'), 'old connections keep the snapshot they connected under');
  for (const c of clients) {
    assert.equal((await postTo(gw, c.id, 'still here')).status, 200);
    assert.equal((await nextMessage(c.ws)).data, 'still here');
  }
  for (const c of clients) c.ws.close(1000);
  late.close(1000);
  agent.destroy();
  await waitUntil(() => a.eventsOf('DISCONNECT').length === 9, 5000, 'a $disconnect for each client');
});

test('hot reload: a configuration that fails --check is refused whole and logged (file, key, expected); the old routes keep answering', async () => {
  const a = await startBackend(namedHandler('A'));
  const b = await startBackend(namedHandler('B'));
  const gw = await startGateway({ routes: { 'chat.json': api(a.url, b.url) } });
  const { ws } = await connectWithId(gw, a);

  // One file changed and valid, a second one broken: neither is applied.
  replaceFile(gw.routesDir, 'chat.json', api(a.url, b.url, { changed: true }));
  const broken = makeApi(b.url, { name: 'other', basePath: '/other', limits: { maxMessageBytes: 'big' } });
  replaceFile(gw.routesDir, 'other.json', broken);
  gw.proc.kill('SIGHUP');
  await waitUntil(() => /reload refused: .*other\.json: limits\.maxMessageBytes: expected an integer/.test(gw.output()),
    5000, 'the refusal naming file, key and what was expected');
  assert.match(gw.output(), /reload refused: .* is not valid; the running configuration stays/);
  assert.doesNotMatch(gw.output(), /reload: configuration 1 in use/);

  assert.deepEqual(await ask(ws, 'ping'), { backend: 'A', route: 'ping' });
  const { ws: fresh } = await connectWithId(gw, a);
  assert.deepEqual(await ask(fresh, 'ping'), { backend: 'A', route: 'ping' });
  assert.deepEqual(await ask(fresh, 'pong'), { backend: 'A', route: '$default' });
  assert.equal((await get(gw, '/fresh', { keepAlive: false })).status, 404);
  assert.equal(JSON.parse((await get(gw, '/items', { keepAlive: false })).text).backend, 'A');

  // Fixed: the next reload applies both files.
  rmSync(path.join(gw.routesDir, 'other.json'));
  gw.proc.kill('SIGHUP');
  await reloaded(gw, 1);
  assert.deepEqual(await ask((await connectWithId(gw, a)).ws, 'pong'), { backend: 'B', route: 'pong' });
});

test('hot reload: wsgate --reload --data DIR signals the gateway running on DIR', async () => {
  const a = await startBackend(namedHandler('A'));
  const b = await startBackend(namedHandler('B'));
  const gw = await startGateway({ routes: { 'chat.json': api(a.url, b.url) } });

  replaceFile(gw.routesDir, 'chat.json', api(a.url, b.url, { changed: true }));
  const r = await runGateway(['--reload', '--data', gw.dataDir]);
  assert.equal(r.code, 0, r.output);
  assert.match(r.stdout, new RegExp(`asked the gateway \\(pid ${gw.proc.pid}\\) to reload`));
  await reloaded(gw, 1);
  assert.equal(JSON.parse((await get(gw, '/fresh', { keepAlive: false })).text).backend, 'B');

  // No gateway on the folder: an error, and nothing is signalled.
  const empty = mkdtempSync(path.join(tmpdir(), 'wsgate-data-'));
  try {
    const none = await runGateway(['--reload', '--data', empty]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no gateway runs on/);
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

test('hot reload: a pending $disconnect and a pending REST call complete across a reload (slow backend); the old snapshot is freed after its last connection', async () => {
  const slow = (e) => (e.requestContext?.eventType === 'DISCONNECT' || e.routeKey === 'GET /slow' ? 800 : 0);
  const a = await startBackend(namedHandler('A', { delay: slow }));
  const b = await startBackend(namedHandler('B'));
  const c = await startBackend(namedHandler('C'));
  const gw = await startGateway({ routes: { 'chat.json': api(a.url, b.url) } });

  const { ws, id } = await connectWithId(gw, a);
  const rest = get(gw, '/slow', { keepAlive: false });
  await a.waitFor((e) => e.routeKey === 'GET /slow', 3000, 'the slow REST request');
  ws.close(1000, 'bye');
  await a.waitForEvent('DISCONNECT', id);
  // Both calls are in flight; the snapshot they were made under goes.
  replaceFile(gw.routesDir, 'chat.json', makeApi(c.url));
  gw.proc.kill('SIGHUP');
  assert.equal(await reloaded(gw, 1), 1, 'the old snapshot is still held by the calls in flight');
  const r = await rest;
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.text), { backend: 'A', route: 'GET /slow' });
  await sleep(1000); // the $disconnect answer arrives and is read

  // The calls are done: a later reload finds no older snapshot left. On a
  // loaded machine the $disconnect answer may be read a little later, so
  // reload again (at most 10 times) rather than trust one sleep.
  let older = -1;
  for (let n = 2; n < 12 && older !== 0; n++) {
    if (n > 2) await sleep(300);
    gw.proc.kill('SIGHUP');
    older = await reloaded(gw, n);
  }
  assert.equal(older, 0, 'no older snapshot is left once its calls are done');
  const { ws: fresh } = await connectWithId(gw, c);
  send(fresh, JSON.stringify({ action: 'x' }));
  await c.waitForEvent('MESSAGE');
  fresh.close(1000);
  await c.waitForEvent('DISCONNECT');
});

test('hot reload: IDs issued before a reload still resolve; a renamed or removed API\'s connections stay reachable through their own stage', async () => {
  const a = await startBackend(namedHandler('A'));
  const gw = await startGateway({ routes: { 'chat.json': makeApi(a.url, { name: 'chat', stage: 'dev' }) } });
  const old = await connectWithId(gw, a);

  // A new API sorts first (its index changes every other one's) and the
  // old one is renamed, with a new stage.
  replaceFile(gw.routesDir, 'a-first.json', makeApi(a.url, { name: 'alpha', stage: 'alpha', basePath: '/alpha' }));
  replaceFile(gw.routesDir, 'chat.json', makeApi(a.url, { name: 'chat2', stage: 'prod' }));
  gw.proc.kill('SIGHUP');
  await reloaded(gw, 1);
  const fresh = await connectWithId(gw, a);

  assert.equal((await postTo(gw, old.id, 'plain')).status, 200);
  assert.equal((await nextMessage(old.ws)).data, 'plain');
  assert.equal((await mgmtRequest(gw, 'POST', `/dev/@connections/${old.id}`, 'dev')).status, 200);
  assert.equal((await nextMessage(old.ws)).data, 'dev');
  assert.equal((await getConn(gw, old.id)).status, 200);
  assert.equal((await mgmtRequest(gw, 'POST', `/prod/@connections/${old.id}`, 'x')).status, 403);
  assert.equal((await mgmtRequest(gw, 'POST', `/alpha/@connections/${old.id}`, 'x')).status, 403);

  assert.equal((await mgmtRequest(gw, 'POST', `/prod/@connections/${fresh.id}`, 'prod')).status, 200);
  assert.equal((await nextMessage(fresh.ws)).data, 'prod');
  assert.equal((await mgmtRequest(gw, 'POST', `/dev/@connections/${fresh.id}`, 'x')).status, 403);
  assert.equal((await mgmtRequest(gw, 'DELETE', `/dev/@connections/${old.id}`)).status, 204);
  await waitClose(old.ws);
  fresh.ws.close(1000);
  await waitUntil(() => a.eventsOf('DISCONNECT').length === 2, 5000, 'both $disconnect events');
});

test('hot reload: the pool of an unchanged backend endpoint carries over (its kept-alive connection serves the new configuration)', async () => {
  const a = await startBackend(namedHandler('A'));
  const h = await startHttpBackend((r) => ({ status: 200, body: `http ${r.path}` }));
  const files = (extra) => {
    const x = makeApi(a.url);
    x.integrations.h = { type: 'HTTP_PROXY', uri: `${h.origin}/p` };
    x.routes['GET /p'] = { integration: 'h' };
    if (extra) {
      x.integrations.h2 = { type: 'HTTP_PROXY', uri: `${h.origin}/q` };
      x.routes['GET /q'] = { integration: 'h2' };
    }
    return x;
  };
  const gw = await startGateway({ routes: { 'chat.json': files(false) }, args: ['--workers', '1'] });
  for (let i = 0; i < 3; i++) assert.equal((await get(gw, '/p')).text, 'http /p');
  replaceFile(gw.routesDir, 'chat.json', files(true));
  gw.proc.kill('SIGHUP');
  await reloaded(gw, 1);
  assert.equal((await get(gw, '/q')).text, 'http /q');
  assert.equal((await get(gw, '/p')).text, 'http /p');
  const sockets = new Set(h.requests.map((r) => r.socketId));
  assert.equal(h.requests.length, 5);
  assert.equal(sockets.size, 1, 'one kept-alive backend connection before and after the reload');
});

test('hot reload: repeated reloads keep an idle connection open and its routes answering', async () => {
  const a = await startBackend(namedHandler('A'));
  const gw = await startGateway({ routes: { 'chat.json': makeApi(a.url) } });
  const ws = await connect(gw.url);
  for (let gen = 1; gen <= 3; gen++) {
    gw.proc.kill('SIGHUP');
    await reloaded(gw, gen);
  }
  assert.deepEqual(await ask(ws, 'anything'), { backend: 'A', route: '$default' });
  ws.close(1000);
  await waitClose(ws);
});

// managementAuth across a reload: keys are per API, and the API an ID names
// must be found by its stable number, not by its place in the new files.
class Sha256 {
  constructor(secret) { this.h = secret ? createHmac('sha256', secret) : createHash('sha256'); }
  update(d) { this.h.update(typeof d === 'string' ? Buffer.from(d) : d); }
  async digest() { return new Uint8Array(this.h.digest()); }
}

const SECRETS = { A: randomBytes(30).toString('base64'), B: randomBytes(30).toString('base64'), Z: randomBytes(30).toString('base64') };
const keyId = (n) => `AKIAWSGATERELOAD${n.repeat(4)}`;
const authEnv = Object.fromEntries(Object.entries(SECRETS).map(([n, v]) => [`WSGATE_TEST_RELOAD_${n}`, v]));

function signedApi(uri, n) {
  const low = n.toLowerCase();
  return makeApi(uri, {
    name: low, stage: low, basePath: `/${low}`,
    managementAuth: { keys: [{ accessKeyId: keyId(n), secretAccessKeyEnv: `WSGATE_TEST_RELOAD_${n}` }] },
  });
}

async function signedPost(gw, n, pathname, body) {
  const signer = new SignatureV4({
    service: 'execute-api', region: 'us-east-1', sha256: Sha256,
    credentials: { accessKeyId: keyId(n), secretAccessKey: SECRETS[n] },
  });
  const headers = {
    host: `127.0.0.1:${gw.mgmtPort}`, 'content-type': 'application/octet-stream',
    'content-length': String(Buffer.byteLength(body)),
  };
  const req = await signer.sign({
    method: 'POST', protocol: 'http:', hostname: '127.0.0.1', port: gw.mgmtPort, path: pathname,
    query: {}, headers, body,
  });
  return mgmtRequest(gw, 'POST', pathname, body, { headers: req.headers });
}

test('hot reload: with managementAuth, a connection opened before a reload that reorders the APIs is managed with its own API\'s key', async () => {
  const be = await startBackend(namedHandler('A'));
  const gw = await startGateway({
    routes: { 'a.json': signedApi(be.url, 'A'), 'b.json': signedApi(be.url, 'B') }, env: authEnv,
  });
  const b = await connectWithId(gw, be, {}, '/b');
  let r = await signedPost(gw, 'B', `/b/@connections/${b.id}`, 'before');
  assert.equal(r.status, 200, r.text);
  assert.equal((await nextMessage(b.ws)).data, 'before');

  replaceFile(gw.routesDir, '0-first.json', signedApi(be.url, 'Z'));
  gw.proc.kill('SIGHUP');
  await reloaded(gw, 1);
  r = await signedPost(gw, 'B', `/b/@connections/${b.id}`, 'after');
  assert.equal(r.status, 200, r.text);
  assert.equal((await nextMessage(b.ws)).data, 'after');
  r = await signedPost(gw, 'A', `/a/@connections/${b.id}`, 'x');
  assert.equal(r.status, 403, r.text);
});

test('hot reload: a reload that would drop managementAuth from a management API beyond loopback is refused', async () => {
  const be = await startBackend(namedHandler('A'));
  const gw = await startGateway({
    routes: { 'a.json': signedApi(be.url, 'A') }, env: authEnv, args: ['--mgmt-listen', '0.0.0.0:0'],
  });
  const a = await connectWithId(gw, be, {}, '/a');
  replaceFile(gw.routesDir, 'a.json', makeApi(be.url, { name: 'a', stage: 'a', basePath: '/a' }));
  gw.proc.kill('SIGHUP');
  await waitUntil(() => /reload refused: .*a\.json: managementAuth: missing \(expected SigV4 keys/.test(gw.output()),
    5000, 'the refusal');
  const unsigned = await mgmtRequest(gw, 'POST', `/a/@connections/${a.id}`, 'x');
  assert.equal(unsigned.status, 403, 'the management API still requires signatures');
  const r = await signedPost(gw, 'A', `/a/@connections/${a.id}`, 'signed');
  assert.equal(r.status, 200, r.text);
  assert.equal((await nextMessage(a.ws)).data, 'signed');
});
