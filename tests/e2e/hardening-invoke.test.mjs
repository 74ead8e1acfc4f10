// Issue 9 hardening of the integration client (backend.c), the integration
// requests and answers (integration.c) and the backend response parser
// (httpresp.c): what a hostile client or a compromised backend can do to
// them. Items are named after the numbers.
import net from 'node:net';
import {
  test, assert, startBackend, startHttpBackend, startGateway, rawConnect, connect, connectRefused,
  makeApi, header, raw, sleep, waitUntil, HANG,
} from './helpers.mjs';

/** An API file with only the given integrations and routes. */
function restApi({ name = 'shop', basePath = '/', integrations, routes, ...rest }) {
  return { name, stage: 'dev', basePath, integrations, routes, ...rest };
}

/** Splits raw HTTP/1.1 responses (bodies by Content-Length; none for HEAD, 1xx, 204, 304). */
function parseResponses(buf, methods) {
  const out = [];
  let i = 0;
  for (const m of methods) {
    const end = buf.indexOf('\r\n\r\n', i);
    if (end < 0) break;
    const head = buf.subarray(i, end).toString('latin1').split('\r\n');
    const status = Number(head[0].split(' ')[1]);
    const headers = {};
    for (const line of head.slice(1)) {
      const c = line.indexOf(':');
      const k = line.slice(0, c).trim().toLowerCase();
      const v = line.slice(c + 1).trim();
      headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
    }
    const len = m === 'HEAD' || status < 200 || status === 204 || status === 304
      ? 0 : Number(headers['content-length'] ?? 0);
    if (end + 4 + len > buf.length) break;
    out.push({ status, headers, head: head[0], body: buf.subarray(end + 4, end + 4 + len) });
    i = end + 4 + len;
  }
  return { responses: out, rest: buf.subarray(i) };
}

async function waitResponses(sock, methods, timeoutMs = 8000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = parseResponses(sock.received, methods);
    if (r.responses.length === methods.length) return r;
    if (Date.now() > deadline || (sock.destroyed && !sock.readableLength)) {
      throw new Error(`expected ${methods.length} responses, got ${r.responses.length}`
        + `${sock.destroyed ? ' and the connection was closed' : ' in time'}; received: `
        + JSON.stringify(sock.received.toString('latin1').slice(0, 1500)));
    }
    await sleep(20);
  }
}

// ---------------------------------------------------------------------------
// Item 2: timeout queues grown while they are walked
// ---------------------------------------------------------------------------

test('item 2: a timed-out call whose answer starts calls with new timeouts does not corrupt the timeout queues', async () => {
  // A backend that never answers the slow integration, and answers at once
  // on the others.
  const backend = await startBackend((e) => (e.rawPath?.startsWith('/slow') ? HANG
    : { statusCode: 200, body: `fast ${e.rawPath}` }));
  const integrations = { slow: { type: 'AWS_PROXY', uri: backend.url, timeoutMs: 100 } };
  const routes = { 'GET /slow/{n}': { integration: 'slow' } };
  // Each fast integration has a timeout no call has used yet: its first
  // call adds a timeout queue, from inside the expiry of the slow one.
  for (let k = 0; k < 12; k++) {
    integrations[`f${k}`] = { type: 'AWS_PROXY', uri: backend.url, timeoutMs: 3000 + k };
    routes[`GET /f${k}`] = { integration: `f${k}` };
  }
  const gw = await startGateway({ routes: restApi({ integrations, routes }) });
  const socks = [];
  for (let s = 0; s < 3; s++) {
    const sock = await rawConnect(gw.port);
    const reqs = [`GET /slow/${s} HTTP/1.1\r\nHost: x\r\n\r\n`];
    for (let k = s * 4; k < s * 4 + 4; k++) reqs.push(`GET /f${k} HTTP/1.1\r\nHost: x\r\n\r\n`);
    sock.write(reqs.join(''));
    socks.push(sock);
  }
  for (let s = 0; s < 3; s++) {
    const { responses } = await waitResponses(socks[s], Array(5).fill('GET'));
    assert.deepEqual(responses.map((r) => r.status), [504, 200, 200, 200, 200]);
    assert.deepEqual(responses.slice(1).map((r) => r.body.toString()),
      [0, 1, 2, 3].map((i) => `fast /f${s * 4 + i}`));
  }
  // The queues still work: a slow call times out again.
  const sock = await rawConnect(gw.port);
  sock.write('GET /slow/9 HTTP/1.1\r\nHost: x\r\n\r\nGET /f0 HTTP/1.1\r\nHost: x\r\n\r\n');
  const { responses } = await waitResponses(sock, ['GET', 'GET']);
  assert.deepEqual(responses.map((r) => r.status), [504, 200]);
});

test('item 2: a call queued by an expiry on an already-walked timeout queue still times out', async () => {
  const backend = await startBackend((e) => (e.rawPath?.startsWith('/slow') ? HANG : { statusCode: 200, body: 'ok' }));
  const gw = await startGateway({ routes: restApi({
    integrations: {
      a: { type: 'AWS_PROXY', uri: backend.url, timeoutMs: 100 },
      b: { type: 'AWS_PROXY', uri: backend.url, timeoutMs: 250 },
    },
    routes: { 'GET /slow/a': { integration: 'a' }, 'GET /slow/b': { integration: 'b' } },
  }) });
  // The 100 ms queue first, then the 250 ms one.
  const y = await rawConnect(gw.port);
  y.write('GET /slow/a HTTP/1.1\r\nHost: x\r\n\r\nGET /slow/b HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitResponses(y, ['GET', 'GET']);
  // The expiry of /slow/b starts /slow/a, on the queue walked before it,
  // while nothing else is pending: the tick must stay armed for it.
  const x = await rawConnect(gw.port);
  const t0 = Date.now();
  x.write('GET /slow/b HTTP/1.1\r\nHost: x\r\n\r\nGET /slow/a HTTP/1.1\r\nHost: x\r\n\r\n');
  const { responses } = await waitResponses(x, ['GET', 'GET'], 3000);
  assert.deepEqual(responses.map((r) => r.status), [504, 504]);
  assert.ok(Date.now() - t0 < 2000, 'both timed out in about 350 ms');
});
