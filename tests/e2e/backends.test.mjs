// Backend calls: exact error frames, timeouts, the per-backend connection
// pool and queue (Too Many Requests), keep-alive reuse, a backend killed and
// restarted, isolation of a slow backend, per-connection ordering and
// maxInFlight, and https backends verified against a caFile.
import {
  test, assert, startBackend, startHttpBackend, startGateway, makeApi, connect, connectRefused,
  connectWithId, nextMessage, pingPong, pendingMessages, sleep, unusedUrl, withTimeout, raw,
  runGateway, writeRoutes, DESTROY, HANG,
} from './helpers.mjs';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * An API whose $connect/$disconnect/$default go to the AWS_PROXY echo
 * backend `aws` (so connectWithId works), plus `integrations` and `routes`.
 */
function api(aws, { integrations = {}, routes = {} } = {}) {
  const a = makeApi(aws.url, {
    routes: {
      $connect: { integration: 'backend' },
      $disconnect: { integration: 'backend' },
      $default: { integration: 'backend', routeResponse: true },
      ...routes,
    },
  });
  Object.assign(a.integrations, integrations);
  return a;
}

const hdr = (r, name) => r.headers[name.toLowerCase()];

/** A Lambda proxy answer as an HTTP response for startHttpBackend. */
const lambda = (body, extra = {}) => ({ status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ statusCode: 200, body, ...extra }) });

/** The request ID a backend request carried (either integration type). */
function requestIdOf(r) {
  return hdr(r, 'x-wsgate-request-id') ?? hdr(r, 'x-amzn-requestid');
}

/** The exact AWS error frame. */
const errorFrame = (message, connectionId, requestId) => `{"message": "${message}", "connectionId":"${connectionId}", "requestId":"${requestId}"}`;

/** Reads the next message, checks it is the exact error frame for id, and returns its requestId. */
async function expectErrorFrame(ws, message, id, requestId, timeoutMs) {
  const m = await nextMessage(ws, timeoutMs);
  assert.equal(m.isBinary, false, 'error frames are text frames');
  const re = new RegExp(`^\\{"message": "${message}", "connectionId":"([^"]+)", "requestId":"([^"]+)"\\}$`);
  const match = re.exec(m.data);
  assert.ok(match, `expected the exact ${message} frame, got ${JSON.stringify(m.data)}`);
  assert.equal(match[1], id);
  if (requestId !== undefined) assert.equal(m.data, errorFrame(message, id, requestId));
  return match[2];
}

/** A handler whose answers are held until release() is called. */
function gate() {
  let open;
  const opened = new Promise((r) => { open = r; });
  return { release: () => open(), wait: () => opened };
}

// ---------------------------------------------------------------------------
// Exact error frames
// ---------------------------------------------------------------------------

const ISE = 'Internal server error';
const TIMEOUT = 'Endpoint request timed out';

// [name, integration type, backend handler (null: nothing listens), frame message, extra integration settings]
const FAILURES = [
  ['connection refused', 'AWS_PROXY', null, ISE],
  ['connection refused', 'HTTP_PROXY', null, ISE],
  ['connection reset without an answer', 'AWS_PROXY', () => DESTROY, ISE],
  ['connection reset without an answer', 'HTTP_PROXY', () => DESTROY, ISE],
  ['a Lambda answer that is not JSON', 'AWS_PROXY', () => ({ status: 200, headers: { 'content-type': 'application/json' }, body: 'this is <not> json {' }), ISE],
  ['a Lambda answer that is a JSON array', 'AWS_PROXY', () => ({ status: 200, body: '[1,2]' }), ISE],
  ['a non-2xx HTTP status (502) from an AWS_PROXY backend', 'AWS_PROXY', () => ({ status: 502, body: JSON.stringify({ statusCode: 200, body: 'x' }) }), ISE],
  ['a non-2xx HTTP status (404) from an AWS_PROXY backend', 'AWS_PROXY', () => ({ status: 404, body: JSON.stringify({ statusCode: 200, body: 'x' }) }), ISE],
  ['HTTP 503', 'HTTP_PROXY', () => ({ status: 503, body: 'overloaded' }), ISE],
  ['HTTP 500', 'HTTP_PROXY', () => ({ status: 500, body: 'boom' }), ISE],
  ['an answer that is not HTTP', 'HTTP_PROXY', () => raw('garbage that is not HTTP\r\n\r\n'), ISE],
  ['an answer cut short (Content-Length not reached)', 'HTTP_PROXY', () => raw('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort'), ISE],
  ['a timeout (timeoutMs 200)', 'AWS_PROXY', () => HANG, TIMEOUT, { timeoutMs: 200 }],
  ['a timeout (timeoutMs 200)', 'HTTP_PROXY', () => HANG, TIMEOUT, { timeoutMs: 200 }],
];

for (const [name, type, handler, message, extra = {}] of FAILURES) {
  test(`${type}: ${name} → ${message} frame on one-way and two-way routes; the connection stays open`, async () => {
    const aws = await startBackend();
    let uri;
    let hb = null;
    if (handler) {
      hb = await startHttpBackend(handler);
      uri = `${hb.origin}/target`;
    } else {
      uri = await unusedUrl();
    }
    const gw = await startGateway({
      routes: api(aws, {
        integrations: { target: { type, uri, timeoutMs: 3000, ...extra } },
        routes: { oneway: { integration: 'target' }, twoway: { integration: 'target', routeResponse: true } },
      }),
    });
    const { ws, id } = await connectWithId(gw, aws);
    const seen = new Set();
    for (const route of ['oneway', 'twoway']) {
      const sentAt = Date.now();
      ws.send(JSON.stringify({ action: route }));
      let rid;
      if (hb) {
        const r = await hb.waitFor((x) => x.text.includes(route));
        rid = requestIdOf(r);
        assert.ok(rid, 'the backend received a request ID header');
        if (type === 'AWS_PROXY') {
          assert.equal(JSON.parse(r.text).requestContext.requestId, rid, 'the event and the header carry the same requestId');
        }
      }
      const got = await expectErrorFrame(ws, message, id, rid, 5000);
      const elapsed = Date.now() - sentAt;
      if (message === TIMEOUT) {
        assert.ok(elapsed >= 150, `timed out after ${elapsed} ms, before timeoutMs`);
        assert.ok(elapsed < 2000, `timed out after ${elapsed} ms, far beyond timeoutMs 200`);
      }
      seen.add(got);
      await pingPong(ws);
    }
    assert.equal(seen.size, 2, 'each failure has its own requestId');
    // The connection is still open and usable.
    ws.send('still here');
    assert.equal((await nextMessage(ws)).data, 'still here');
    await sleep(100);
    assert.deepEqual(pendingMessages(ws), [], 'exactly one frame per failed call');
  });
}

test('a failing $connect integration over HTTP_PROXY (refused, reset, timeout) gives HTTP 502 (500 for a timeout)', async () => {
  for (const [name, setup] of [
    ['refused', async () => ({ uri: await unusedUrl() })],
    ['reset', async () => ({ uri: `${(await startHttpBackend(() => DESTROY)).origin}/c` })],
    ['timeout', async () => ({ uri: `${(await startHttpBackend(() => HANG)).origin}/c`, timeoutMs: 200 })],
  ]) {
    const aws = await startBackend();
    const integ = await setup();
    const a = api(aws, { integrations: { c: { type: 'HTTP_PROXY', timeoutMs: 3000, ...integ } }, routes: { $connect: { integration: 'c' } } });
    const gw = await startGateway({ routes: a });
    assert.equal(await connectRefused(gw.url), name === 'timeout' ? 500 : 502, name);
    await gw.stop();
  }
});

// ---------------------------------------------------------------------------
// Pool bounds and Too Many Requests
// ---------------------------------------------------------------------------

// maxConnections and maxQueue bound each event loop's pool (like nginx's
// per-worker upstream keepalive), and connections of different clients may
// land on different loops: the exact-count tests below run one loop.
const ONE_LOOP = ['--workers', '1'];

for (const type of ['HTTP_PROXY', 'AWS_PROXY']) {
  test(`${type}: maxConnections 1 + maxQueue 0, a slow call in flight → Too Many Requests for another client`, async () => {
    const aws = await startBackend();
    const g = gate();
    const hb = await startHttpBackend(async (r) => {
      await g.wait();
      return type === 'AWS_PROXY' ? lambda(`done ${JSON.parse(r.text).body}`) : { status: 200, body: `done ${r.text}` };
    });
    const gw = await startGateway({
      args: ONE_LOOP,
      routes: api(aws, {
        integrations: { slow: { type, uri: `${hb.origin}/slow`, timeoutMs: 5000, maxConnections: 1, maxQueue: 0 } },
        routes: { s: { integration: 'slow', routeResponse: true } },
      }),
    });
    const a = await connectWithId(gw, aws);
    const b = await connectWithId(gw, aws);
    a.ws.send('{"action":"s","from":"a"}');
    await hb.waitForCount(1);
    const sentAt = Date.now();
    b.ws.send('{"action":"s","from":"b"}');
    await expectErrorFrame(b.ws, 'Too Many Requests', b.id, undefined, 2000);
    assert.ok(Date.now() - sentAt < 1000, 'rejected at once, not after the slow call');
    assert.equal(hb.requests.length, 1, 'the rejected call never reached the backend');
    // Other routes of b are unaffected.
    b.ws.send('{"action":"other"}');
    assert.equal((await nextMessage(b.ws)).data, '{"action":"other"}');

    g.release();
    assert.equal((await nextMessage(a.ws)).data, 'done {"action":"s","from":"a"}');
    b.ws.send('{"action":"s","from":"b2"}');
    assert.equal((await nextMessage(b.ws)).data, 'done {"action":"s","from":"b2"}');
    await sleep(100);
    assert.deepEqual(pendingMessages(a.ws), []);
  });
}

test('maxConnections 1 + maxQueue 1: the second call waits, the third gets Too Many Requests', async () => {
  const aws = await startBackend();
  const g = gate();
  const hb = await startHttpBackend(async (r) => { await g.wait(); return { status: 200, body: `done ${r.text}` }; });
  const gw = await startGateway({
      args: ONE_LOOP,
    routes: api(aws, {
      integrations: { slow: { type: 'HTTP_PROXY', uri: `${hb.origin}/slow`, timeoutMs: 5000, maxConnections: 1, maxQueue: 1 } },
      routes: { s: { integration: 'slow', routeResponse: true } },
    }),
  });
  const [a, b, c] = await Promise.all([1, 2, 3].map(() => connectWithId(gw, aws)));
  a.ws.send('{"action":"s","n":"a"}');
  await hb.waitForCount(1);
  b.ws.send('{"action":"s","n":"b"}');
  await sleep(200);
  assert.equal(hb.requests.length, 1, 'the queued call waits for the only connection');
  assert.deepEqual(pendingMessages(b.ws), [], 'the queued call is not rejected');
  c.ws.send('{"action":"s","n":"c"}');
  await expectErrorFrame(c.ws, 'Too Many Requests', c.id, undefined, 2000);
  g.release();
  assert.equal((await nextMessage(a.ws)).data, 'done {"action":"s","n":"a"}');
  assert.equal((await nextMessage(b.ws)).data, 'done {"action":"s","n":"b"}');
  assert.equal(hb.requests.length, 2);
  assert.equal(new Set(hb.requests.map((r) => r.socketId)).size, 1, 'both calls used the one connection');
});

test('maxConnections bounds the connections to a backend; queued calls all complete', async () => {
  const aws = await startBackend();
  let inFlight = 0;
  let maxInFlight = 0;
  const hb = await startHttpBackend(async (r) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await sleep(30);
    inFlight--;
    return { status: 200, body: `ok ${r.text}` };
  });
  const gw = await startGateway({
      args: ONE_LOOP,
    routes: api(aws, {
      integrations: { pool: { type: 'HTTP_PROXY', uri: `${hb.origin}/p`, timeoutMs: 5000, maxConnections: 2 } },
      routes: { p: { integration: 'pool', routeResponse: true } },
    }),
  });
  const clients = await Promise.all(Array.from({ length: 12 }, () => connectWithId(gw, aws)));
  clients.forEach((c, i) => c.ws.send(`{"action":"p","i":${i}}`));
  for (const [i, c] of clients.entries()) {
    assert.equal((await nextMessage(c.ws)).data, `ok {"action":"p","i":${i}}`);
  }
  assert.equal(hb.requests.length, 12);
  assert.ok(maxInFlight <= 2, `at most 2 concurrent calls, saw ${maxInFlight}`);
  assert.ok(maxInFlight === 2, `both connections were used, saw ${maxInFlight}`);
  assert.ok(new Set(hb.requests.map((r) => r.socketId)).size <= 2, 'at most 2 TCP connections');
});

// ---------------------------------------------------------------------------
// Keep-alive
// ---------------------------------------------------------------------------

for (const type of ['HTTP_PROXY', 'AWS_PROXY']) {
  test(`${type}: connections to a backend are kept alive and reused`, async () => {
    const aws = await startBackend();
    const hb = await startHttpBackend((r) => (type === 'AWS_PROXY' ? lambda('ok') : { status: 200, body: 'ok' }));
    const gw = await startGateway({
      args: ONE_LOOP,
      routes: api(aws, {
        integrations: { ka: { type, uri: `${hb.origin}/ka`, timeoutMs: 5000 } },
        routes: { k: { integration: 'ka', routeResponse: true } },
      }),
    });
    const c1 = await connectWithId(gw, aws);
    const c2 = await connectWithId(gw, aws);
    for (let i = 0; i < 10; i++) {
      const c = i % 2 ? c2 : c1;
      c.ws.send('{"action":"k"}');
      assert.equal((await nextMessage(c.ws)).data, 'ok');
    }
    assert.equal(hb.requests.length, 10);
    const sockets = new Set(hb.requests.map((r) => r.socketId));
    assert.equal(sockets.size, 1, `10 sequential calls used ${sockets.size} TCP connections`);
    for (const r of hb.requests) {
      assert.notEqual((hdr(r, 'connection') ?? '').toLowerCase(), 'close', 'no Connection: close');
    }
  });
}

// ---------------------------------------------------------------------------
// A backend killed and restarted
// ---------------------------------------------------------------------------

for (const type of ['HTTP_PROXY', 'AWS_PROXY']) {
  test(`${type}: a backend killed and restarted on the same port serves again without restarting the gateway`, async () => {
    const aws = await startBackend();
    const answer = (r) => (type === 'AWS_PROXY' ? lambda(`up:${JSON.parse(r.text).body}`) : { status: 200, body: `up:${r.text}` });
    const hb = await startHttpBackend(answer);
    const gw = await startGateway({
      routes: api(aws, {
        integrations: { t: { type, uri: `${hb.origin}/t`, timeoutMs: 2000 } },
        routes: { t: { integration: 't', routeResponse: true } },
      }),
    });
    const a = await connectWithId(gw, aws);
    const b = await connectWithId(gw, aws);
    a.ws.send('{"action":"t","n":1}');
    assert.equal((await nextMessage(a.ws)).data, 'up:{"action":"t","n":1}');

    await hb.kill();
    a.ws.send('{"action":"t","n":2}');
    await expectErrorFrame(a.ws, ISE, a.id, undefined, 4000);
    b.ws.send('{"action":"t","n":3}');
    await expectErrorFrame(b.ws, ISE, b.id, undefined, 4000);
    // Other routes keep working while it is down.
    a.ws.send('{"action":"echo"}');
    assert.equal((await nextMessage(a.ws)).data, '{"action":"echo"}');

    await hb.restart();
    a.ws.send('{"action":"t","n":4}');
    assert.equal((await nextMessage(a.ws)).data, 'up:{"action":"t","n":4}');
    b.ws.send('{"action":"t","n":5}');
    assert.equal((await nextMessage(b.ws)).data, 'up:{"action":"t","n":5}');
  });

  test(`${type}: a restart between two calls (stale kept-alive connection) does not fail the next call`, async () => {
    const aws = await startBackend();
    const answer = () => (type === 'AWS_PROXY' ? lambda('fine') : { status: 200, body: 'fine' });
    const hb = await startHttpBackend(answer);
    const gw = await startGateway({
      routes: api(aws, {
        integrations: { t: { type, uri: `${hb.origin}/t`, timeoutMs: 2000 } },
        routes: { t: { integration: 't', routeResponse: true } },
      }),
    });
    const { ws } = await connectWithId(gw, aws);
    for (let round = 0; round < 3; round++) {
      ws.send('{"action":"t"}');
      assert.equal((await nextMessage(ws)).data, 'fine', `round ${round}`);
      await hb.kill();
      await hb.restart();
      await sleep(50);
    }
    ws.send('{"action":"t"}');
    assert.equal((await nextMessage(ws)).data, 'fine');
  });
}

// ---------------------------------------------------------------------------
// A slow or dead backend only affects its own routes
// ---------------------------------------------------------------------------

/** An API with a hung backend (route slow), a fast one (route fast) and a dead one (route dead). */
async function startSlowFastDead() {
  const aws = await startBackend();
  const slow = await startHttpBackend(() => HANG);
  const fast = await startHttpBackend((r) => ({ status: 200, body: `fast ${r.text}` }));
  const gw = await startGateway({
    routes: api(aws, {
      integrations: {
        slow: { type: 'HTTP_PROXY', uri: `${slow.origin}/s`, timeoutMs: 20000, maxConnections: 2 },
        fast: { type: 'HTTP_PROXY', uri: `${fast.origin}/f`, timeoutMs: 5000 },
        dead: { type: 'HTTP_PROXY', uri: await unusedUrl(), timeoutMs: 5000 },
      },
      routes: {
        slow: { integration: 'slow', routeResponse: true },
        fast: { integration: 'fast', routeResponse: true },
        dead: { integration: 'dead' },
      },
    }),
  });
  return { aws, slow, fast, gw };
}

test('a hung backend (its pool full and queueing) does not slow down other routes of other connections', async () => {
  const { aws, slow, gw } = await startSlowFastDead();
  const stuck = await Promise.all(Array.from({ length: 4 }, () => connectWithId(gw, aws)));
  for (const c of stuck) c.ws.send('{"action":"slow"}');
  await slow.waitForCount(2);
  const clients = await Promise.all(Array.from({ length: 3 }, () => connectWithId(gw, aws)));
  for (const c of clients) {
    const t0 = Date.now();
    c.ws.send('{"action":"fast"}');
    assert.equal((await nextMessage(c.ws, 2000)).data, 'fast {"action":"fast"}');
    c.ws.send('{"action":"dead"}');
    await expectErrorFrame(c.ws, ISE, c.id, undefined, 2000);
    c.ws.send('on default');
    assert.equal((await nextMessage(c.ws, 2000)).data, 'on default');
    assert.ok(Date.now() - t0 < 1500, `answered in ${Date.now() - t0} ms`);
  }
  // New connections are accepted promptly.
  const t0 = Date.now();
  const fresh = await connectWithId(gw, aws);
  fresh.ws.send('hello');
  assert.equal((await nextMessage(fresh.ws)).data, 'hello');
  assert.ok(Date.now() - t0 < 1000);
  for (const c of stuck) assert.deepEqual(pendingMessages(c.ws), []);
});

test('a hung call on one route does not hold up the same connection\'s calls on other routes (maxInFlight is per route)', async () => {
  const { aws, slow, gw } = await startSlowFastDead();
  const { ws, id } = await connectWithId(gw, aws);
  ws.send('{"action":"slow"}');
  await slow.waitForCount(1);
  const t0 = Date.now();
  ws.send('{"action":"fast"}');
  assert.equal((await nextMessage(ws, 2000)).data, 'fast {"action":"fast"}');
  ws.send('{"action":"dead"}');
  await expectErrorFrame(ws, ISE, id, undefined, 2000);
  assert.ok(Date.now() - t0 < 1500, `answered in ${Date.now() - t0} ms`);
});

// ---------------------------------------------------------------------------
// Ordering and maxInFlight
// ---------------------------------------------------------------------------

for (const type of ['HTTP_PROXY', 'AWS_PROXY']) {
  test(`${type}: 5 clients × 50 messages with random delays: each connection in order, one call at a time`, { timeout: 60000 }, async () => {
    const aws = await startBackend();
    const perConn = new Map(); // id -> { order: [], inFlight, max }
    const hb = await startHttpBackend(async (r) => {
      let id;
      let body;
      if (type === 'AWS_PROXY') {
        const ev = JSON.parse(r.text);
        id = ev.requestContext.connectionId;
        body = ev.body;
      } else {
        id = hdr(r, 'x-wsgate-connection-id');
        body = r.text;
      }
      const s = perConn.get(id) ?? { order: [], inFlight: 0, max: 0 };
      perConn.set(id, s);
      s.inFlight++;
      s.max = Math.max(s.max, s.inFlight);
      s.order.push(JSON.parse(body).seq);
      await sleep(Math.floor(Math.random() * 8));
      s.inFlight--;
      return type === 'AWS_PROXY' ? lambda(`ack ${JSON.parse(body).seq}`) : { status: 200, body: `ack ${JSON.parse(body).seq}` };
    });
    const gw = await startGateway({
      routes: api(aws, {
        integrations: { o: { type, uri: `${hb.origin}/o`, timeoutMs: 5000 } },
        routes: { o: { integration: 'o', routeResponse: true } },
      }),
    });
    const N = 50;
    const clients = await Promise.all(Array.from({ length: 5 }, () => connectWithId(gw, aws)));
    for (let seq = 0; seq < N; seq++) {
      for (const c of clients) c.ws.send(JSON.stringify({ action: 'o', seq }));
    }
    const expected = Array.from({ length: N }, (_, i) => i);
    await Promise.all(clients.map(async (c) => {
      const replies = [];
      for (let i = 0; i < N; i++) replies.push((await nextMessage(c.ws, 10000)).data);
      assert.deepEqual(replies, expected.map((i) => `ack ${i}`), 'replies come back in order');
    }));
    for (const c of clients) {
      const s = perConn.get(c.id);
      assert.ok(s, `the backend saw connection ${c.id}`);
      assert.deepEqual(s.order, expected, 'messages reach the backend in send order');
      assert.equal(s.max, 1, 'never two calls at once for one connection');
    }
    const overall = Math.max(...[...perConn.values()].map((s) => s.max));
    assert.equal(overall, 1);
  });
}

test('maxInFlight 4 lets calls of one connection overlap (at most 4), and the default route stays at 1', async () => {
  const aws = await startBackend();
  const stats = { par: { inFlight: 0, max: 0 }, ser: { inFlight: 0, max: 0 } };
  const hb = await startHttpBackend(async (r) => {
    const s = stats[r.path.slice(1)];
    s.inFlight++;
    s.max = Math.max(s.max, s.inFlight);
    await sleep(250);
    s.inFlight--;
    return { status: 200, body: `done ${r.text}` };
  });
  const gw = await startGateway({
    routes: api(aws, {
      integrations: {
        par: { type: 'HTTP_PROXY', uri: `${hb.origin}/par`, timeoutMs: 5000 },
        ser: { type: 'HTTP_PROXY', uri: `${hb.origin}/ser`, timeoutMs: 5000 },
      },
      routes: {
        par: { integration: 'par', routeResponse: true, maxInFlight: 4 },
        ser: { integration: 'ser', routeResponse: true },
      },
    }),
  });
  const { ws } = await connectWithId(gw, aws);
  const t0 = Date.now();
  for (let i = 0; i < 8; i++) ws.send(`{"action":"par","i":${i}}`);
  const replies = [];
  for (let i = 0; i < 8; i++) replies.push((await nextMessage(ws, 5000)).data);
  const took = Date.now() - t0;
  assert.deepEqual(replies.sort(), Array.from({ length: 8 }, (_, i) => `done {"action":"par","i":${i}}`).sort());
  assert.equal(stats.par.max, 4, `maxInFlight 4: saw ${stats.par.max} concurrent calls`);
  assert.ok(took < 1500, `8 calls of 250 ms, 4 at a time, took ${took} ms`);

  for (let i = 0; i < 3; i++) ws.send(`{"action":"ser","i":${i}}`);
  const ser = [];
  for (let i = 0; i < 3; i++) ser.push((await nextMessage(ws, 5000)).data);
  assert.deepEqual(ser, [0, 1, 2].map((i) => `done {"action":"ser","i":${i}}`));
  assert.equal(stats.ser.max, 1);
});

test('maxInFlight is a config value from 1 to 1000', async () => {
  for (const bad of [0, -1, 1001, 'four']) {
    const a = api({ url: 'http://127.0.0.1:9/x' });
    a.routes.$default.maxInFlight = bad;
    const dir = writeRoutes({ 'm.json': a });
    try {
      const res = await runGateway(['--check', '--routes', dir]);
      assert.equal(res.code, 1, `maxInFlight ${bad}: ${res.output}`);
      assert.ok(res.stderr.includes('routes.$default.maxInFlight'), res.stderr);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
});

// ---------------------------------------------------------------------------
// https backends and caFile
// ---------------------------------------------------------------------------

const certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgate-backend-tls-'));
process.on('exit', () => fs.rmSync(certDir, { recursive: true, force: true }));

/** A self-signed certificate for 127.0.0.1 (CN and SAN). */
function makeCert(name) {
  const key = path.join(certDir, `${name}-key.pem`);
  const cert = path.join(certDir, `${name}-cert.pem`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert, '-days', '2'], { stdio: 'ignore' });
  return { keyFile: key, certFile: cert, key: fs.readFileSync(key), cert: fs.readFileSync(cert) };
}

const good = makeCert('good');
const other = makeCert('other');

for (const type of ['HTTP_PROXY', 'AWS_PROXY']) {
  test(`${type} over https: the right caFile works (and keeps the TLS connection alive); none or another CA fails`, async () => {
    const aws = await startBackend();
    const hb = await startHttpBackend(
      (r) => (type === 'AWS_PROXY' ? lambda(`secure ${JSON.parse(r.text).body}`) : { status: 200, body: `secure ${r.text}` }),
      { tls: { key: good.key, cert: good.cert } },
    );
    assert.ok(hb.origin.startsWith('https://127.0.0.1:'));
    const uri = `${hb.origin}/secure`;
    const gw = await startGateway({
      routes: api(aws, {
        integrations: {
          ok: { type, uri, timeoutMs: 3000, caFile: good.certFile },
          nocafile: { type, uri, timeoutMs: 3000 },
          wrongca: { type, uri, timeoutMs: 3000, caFile: other.certFile },
        },
        routes: {
          ok: { integration: 'ok', routeResponse: true },
          nocafile: { integration: 'nocafile', routeResponse: true },
          wrongca: { integration: 'wrongca', routeResponse: true },
        },
      }),
    });
    const { ws, id } = await connectWithId(gw, aws);
    for (let i = 0; i < 3; i++) {
      ws.send(`{"action":"ok","i":${i}}`);
      assert.equal((await nextMessage(ws)).data, `secure {"action":"ok","i":${i}}`);
    }
    assert.equal(new Set(hb.requests.map((r) => r.socketId)).size, 1, 'one kept-alive TLS connection');
    const served = hb.requests.length;

    for (const route of ['nocafile', 'wrongca']) {
      ws.send(`{"action":"${route}"}`);
      await expectErrorFrame(ws, ISE, id, undefined, 4000);
    }
    assert.equal(hb.requests.length, served, 'no request was sent over an unverified connection');
    ws.send('{"action":"ok","i":9}');
    assert.equal((await nextMessage(ws)).data, 'secure {"action":"ok","i":9}');
  });
}

test('https $connect: with the caFile the handshake is accepted, without it HTTP 502', async () => {
  const hb = await startHttpBackend(() => ({ status: 200 }), { tls: { key: good.key, cert: good.cert } });
  const aws = await startBackend();
  const withCa = api(aws, {
    integrations: { c: { type: 'HTTP_PROXY', uri: `${hb.origin}/c`, timeoutMs: 3000, caFile: good.certFile } },
    routes: { $connect: { integration: 'c' } },
  });
  const gw1 = await startGateway({ routes: withCa });
  const ws = await connect(gw1.url);
  await pingPong(ws);
  const r = await hb.waitFor((x) => hdr(x, 'x-wsgate-event-type') === 'CONNECT');
  assert.equal(hdr(r, 'x-wsgate-route-key'), '$connect');

  const without = api(aws, {
    integrations: { c: { type: 'HTTP_PROXY', uri: `${hb.origin}/c`, timeoutMs: 3000 } },
    routes: { $connect: { integration: 'c' } },
  });
  const gw2 = await startGateway({ routes: without });
  const before = hb.requests.length;
  assert.equal(await connectRefused(gw2.url), 502);
  assert.equal(hb.requests.length, before);
});

test('a timeout leaves the backend connection usable for later calls', async () => {
  const aws = await startBackend();
  let n = 0;
  const hb = await startHttpBackend(async (r) => {
    n++;
    if (n === 1) { await sleep(600); return { status: 200, body: 'late' }; }
    return { status: 200, body: `on time ${r.text}` };
  });
  const gw = await startGateway({
    routes: api(aws, {
      integrations: { t: { type: 'HTTP_PROXY', uri: `${hb.origin}/t`, timeoutMs: 200 } },
      routes: { t: { integration: 't', routeResponse: true } },
    }),
  });
  const { ws, id } = await connectWithId(gw, aws);
  ws.send('{"action":"t","n":1}');
  const rid = await expectErrorFrame(ws, TIMEOUT, id, undefined, 3000);
  assert.equal(rid, requestIdOf(hb.requests[0]));
  // The late answer must never be delivered as the answer to a later call.
  await sleep(700);
  ws.send('{"action":"t","n":2}');
  assert.equal((await nextMessage(ws, 3000)).data, 'on time {"action":"t","n":2}');
  await sleep(100);
  assert.deepEqual(pendingMessages(ws), []);
  await withTimeout(pingPong(ws), 2000, 'pong');
});

// [integration settings, accepted?]
const INTEGRATION_SETTINGS = [
  [{ timeoutMs: 50 }, true],
  [{ timeoutMs: 300000 }, true],
  [{ timeoutMs: 49 }, false],
  [{ timeoutMs: 300001 }, false],
  [{ maxConnections: 1, maxQueue: 0 }, true],
  [{ maxConnections: 0 }, false],
  [{ maxQueue: -1 }, false],
  [{ maxConnections: 'many' }, false],
  [{ caFile: 42 }, false],
  [{ type: 'HTTP_PROXY', method: 'PUT' }, true],
  [{ type: 'HTTP_PROXY', method: 'BREW' }, false],
  [{ type: 'LAMBDA' }, false],
  [{ type: 'HTTP_PROXY', uri: 'ftp://127.0.0.1/x' }, false],
];

test('integration settings: timeoutMs 50..300000, maxConnections >= 1, maxQueue >= 0, known types and methods', async () => {
  for (const [settings, ok] of INTEGRATION_SETTINGS) {
    const a = api({ url: 'http://127.0.0.1:9/events' });
    Object.assign(a.integrations.backend, settings);
    const dir = writeRoutes({ 's.json': a });
    try {
      const res = await runGateway(['--check', '--routes', dir]);
      assert.equal(res.code, ok ? 0 : 1, `${JSON.stringify(settings)}:\n${res.output}`);
      if (!ok) assert.ok(res.stderr.includes('s.json') && res.stderr.includes('integrations.backend'), res.stderr);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('interleaved routes of one connection: each route keeps its own order, one call at a time', async () => {
  const aws = await startBackend();
  const stats = {};
  const handler = async (r) => {
    const s = (stats[r.path] ??= { order: [], inFlight: 0, max: 0 });
    s.inFlight++;
    s.max = Math.max(s.max, s.inFlight);
    s.order.push(JSON.parse(r.text).seq);
    await sleep(Math.floor(Math.random() * 6));
    s.inFlight--;
    return { status: 200, body: r.text };
  };
  const ha = await startHttpBackend(handler);
  const hb = await startHttpBackend(handler);
  const gw = await startGateway({
    routes: api(aws, {
      integrations: {
        a: { type: 'HTTP_PROXY', uri: `${ha.origin}/a`, timeoutMs: 5000 },
        b: { type: 'HTTP_PROXY', uri: `${hb.origin}/b`, timeoutMs: 5000 },
      },
      routes: { a: { integration: 'a', routeResponse: true }, b: { integration: 'b', routeResponse: true } },
    }),
  });
  const { ws } = await connectWithId(gw, aws);
  const N = 40;
  for (let seq = 0; seq < N; seq++) ws.send(JSON.stringify({ action: seq % 3 ? 'a' : 'b', seq }));
  const replies = [];
  for (let i = 0; i < N; i++) replies.push(JSON.parse((await nextMessage(ws, 5000)).data));
  for (const route of ['a', 'b']) {
    const sent = Array.from({ length: N }, (_, i) => i).filter((i) => (i % 3 ? 'a' : 'b') === route);
    assert.deepEqual(stats[`/${route}`].order, sent, `route ${route} reached its backend in order`);
    assert.deepEqual(replies.filter((m) => m.action === route).map((m) => m.seq), sent, `route ${route} answers in order`);
    assert.equal(stats[`/${route}`].max, 1, `route ${route}: one call at a time`);
  }
});

test('a burst to a MOCK route and to a refused backend: every message is answered', async () => {
  const aws = await startBackend();
  const gw = await startGateway({
    routes: api(aws, {
      integrations: {
        mock: { type: 'MOCK', statusCode: 200, body: 'm ${context.routeKey}' },
        dead: { type: 'HTTP_PROXY', uri: await unusedUrl(), timeoutMs: 2000 },
      },
      routes: { m: { integration: 'mock', routeResponse: true }, d: { integration: 'dead' } },
    }),
  });
  const { ws, id } = await connectWithId(gw, aws);
  const N = 50;
  for (let i = 0; i < N; i++) ws.send('{"action":"m"}');
  for (let i = 0; i < N; i++) assert.equal((await nextMessage(ws, 3000)).data, 'm m', `MOCK reply ${i}`);
  for (let i = 0; i < N; i++) ws.send('{"action":"d"}');
  const rids = new Set();
  for (let i = 0; i < N; i++) rids.add(await expectErrorFrame(ws, ISE, id, undefined, 3000));
  assert.equal(rids.size, N);
  // Mixed: a MOCK message queued behind failing ones and vice versa.
  for (let i = 0; i < 10; i++) ws.send(i % 2 ? '{"action":"m"}' : '{"action":"d"}');
  const got = [];
  for (let i = 0; i < 10; i++) got.push((await nextMessage(ws, 3000)).data);
  assert.equal(got.filter((m) => m === 'm m').length, 5);
  assert.equal(got.filter((m) => m.startsWith(`{"message": "${ISE}"`)).length, 5);
  await pingPong(ws);
});
