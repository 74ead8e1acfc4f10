// Issue 9 hardening of the integration client (backend.c), the integration
// requests and answers (integration.c) and the backend response parser
// (httpresp.c): what a hostile client or a compromised backend can do to
// them. Items are named after the numbers.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  test, assert, startBackend, startHttpBackend, startGateway, rawConnect, connect, connectRefused,
  makeApi, raw, sleep, waitUntil, unusedUrl, HANG, DESTROY,
  parseResponses, waitResponses,
} from './helpers.mjs';

/** An API file with only the given integrations and routes. */
function restApi({ name = 'shop', basePath = '/', integrations, routes, ...rest }) {
  return { name, stage: 'dev', basePath, integrations, routes, ...rest };
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
    assert.deepEqual(responses.map((r) => r.status), [503, 200, 200, 200, 200]);
    assert.deepEqual(responses.slice(1).map((r) => r.body.toString()),
      [0, 1, 2, 3].map((i) => `fast /f${s * 4 + i}`));
  }
  // The queues still work: a slow call times out again.
  const sock = await rawConnect(gw.port);
  sock.write('GET /slow/9 HTTP/1.1\r\nHost: x\r\n\r\nGET /f0 HTTP/1.1\r\nHost: x\r\n\r\n');
  const { responses } = await waitResponses(sock, ['GET', 'GET']);
  assert.deepEqual(responses.map((r) => r.status), [503, 200]);
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
  assert.deepEqual(responses.map((r) => r.status), [503, 503]);
  assert.ok(Date.now() - t0 < 2000, 'both timed out in about 350 ms');
});

// ---------------------------------------------------------------------------
// Item 16: client-supplied gateway headers
// ---------------------------------------------------------------------------

/** The values of header `name` (lower case) in a raw header list, in order. */
function allValues(rawHeaders, name) {
  const out = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i].toLowerCase() === name) out.push(rawHeaders[i + 1]);
  return out;
}

function httpOnlyApi(uri) {
  return {
    name: 'chat', stage: 'dev', basePath: '/', routeSelectionExpression: '$request.body.action',
    integrations: { hp: { type: 'HTTP_PROXY', uri, timeoutMs: 5000 } },
    routes: { $connect: { integration: 'hp' }, $disconnect: { integration: 'hp' }, $default: { integration: 'hp' } },
  };
}

test('item 16: HTTP_PROXY $connect: a client cannot set X-Wsgate-* or X-Forwarded-*; its X-Forwarded-For is appended to', async () => {
  const hb = await startHttpBackend(() => ({ status: 200 }));
  const gw = await startGateway({ routes: httpOnlyApi(`${hb.origin}/ws`) });
  const sock = await rawConnect(gw.port);
  sock.write([
    'GET /?a=1 HTTP/1.1', `Host: front.example:${gw.port}`, 'Upgrade: websocket', 'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13',
    'X-Wsgate-Connection-Id: spoofed-id', 'X-Wsgate-Event-Type: DISCONNECT', 'X-Wsgate-Route-Key: $default',
    'X-Wsgate-Request-Id: spoofed-rid', 'x-wsgate-disconnect-status-code: 1000',
    'X-Forwarded-For: 10.9.8.7', 'X-Forwarded-For: 10.0.0.1', 'X-Forwarded-Proto: https',
    'X-Forwarded-Host: evil.example', 'X-Forwarded-Port: 443', 'Forwarded: for=10.9.8.7;proto=https',
    'X-Amzn-RequestId: spoofed', 'X-Keep: yes', 'X-Hop: no', 'Connection: x-hop', '', '',
  ].join('\r\n'));
  const r = await hb.waitFor((x) => x.method === 'POST');
  await waitUntil(() => sock.received.includes('\r\n\r\n'), 5000, 'the 101');
  assert.match(sock.received.toString('latin1'), /^HTTP\/1.1 101 /);
  const one = (name) => {
    const v = allValues(r.rawHeaders, name);
    assert.equal(v.length, 1, `exactly one ${name}: ${JSON.stringify(v)}`);
    return v[0];
  };
  assert.match(one('x-wsgate-connection-id'), /^[A-Za-z0-9_-]{16,}$/);
  assert.notEqual(one('x-wsgate-connection-id'), 'spoofed-id');
  assert.equal(one('x-wsgate-event-type'), 'CONNECT');
  assert.equal(one('x-wsgate-route-key'), '$connect');
  assert.notEqual(one('x-wsgate-request-id'), 'spoofed-rid');
  assert.deepEqual(allValues(r.rawHeaders, 'x-wsgate-disconnect-status-code'), []);
  assert.equal(one('x-forwarded-for'), '10.9.8.7, 10.0.0.1, 127.0.0.1');
  assert.equal(one('x-forwarded-proto'), 'http');
  assert.equal(one('x-forwarded-host'), `front.example:${gw.port}`);
  // The gateway's own port, as AWS adds X-Forwarded-Port (issue 15 item 4).
  assert.equal(one('x-forwarded-port'), String(gw.port));
  assert.deepEqual(allValues(r.rawHeaders, 'forwarded'), []);
  assert.deepEqual(allValues(r.rawHeaders, 'x-amzn-requestid'), []);
  assert.equal(one('x-keep'), 'yes');
  assert.deepEqual(allValues(r.rawHeaders, 'x-hop'), [], 'a header the Connection header lists is hop-by-hop');
  assert.equal(one('host'), `127.0.0.1:${hb.port}`);
});

test('item 16: AWS_PROXY $connect event: X-Forwarded-For ends with the real address, X-Forwarded-Proto is the gateway\'s', async () => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: makeApi(backend.url) });
  await connect(gw.url, { headers: {
    'X-Forwarded-For': '10.9.8.7', 'x-forwarded-proto': 'https', 'X-Forwarded-Port': '443', 'X-Tag': 'kept',
  } });
  const ev = await backend.waitForEvent('CONNECT');
  const h = Object.fromEntries(Object.entries(ev.headers).map(([k, v]) => [k.toLowerCase(), v]));
  const mv = Object.fromEntries(Object.entries(ev.multiValueHeaders).map(([k, v]) => [k.toLowerCase(), v]));
  assert.equal(h['x-forwarded-for'], '10.9.8.7, 127.0.0.1');
  assert.deepEqual(mv['x-forwarded-for'], ['10.9.8.7, 127.0.0.1']);
  assert.equal(h['x-forwarded-proto'], 'http');
  assert.deepEqual(mv['x-forwarded-proto'], ['http']);
  assert.equal(h['x-forwarded-port'], String(gw.port));
  assert.equal(h['x-tag'], 'kept');
  assert.equal(ev.requestContext.identity.sourceIp, '127.0.0.1');
});

test('item 16: HTTP_PROXY $connect over wss: X-Forwarded-Proto is https whatever the client says', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgate-invoke-tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost',
      '-keyout', key, '-out', cert, '-days', '2'], { stdio: 'ignore' });
    const hb = await startHttpBackend(() => ({ status: 200 }));
    const gw = await startGateway({ routes: httpOnlyApi(`${hb.origin}/ws`), args: ['--tls-cert', cert, '--tls-key', key] });
    await connect(`wss://127.0.0.1:${gw.port}/`, { rejectUnauthorized: false, headers: { 'X-Forwarded-Proto': 'http' } });
    const r = await hb.waitFor((x) => x.method === 'POST');
    assert.deepEqual(allValues(r.rawHeaders, 'x-forwarded-proto'), ['https']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------
// Item 17: statuses without a body, header validation, hostile backends
// ---------------------------------------------------------------------------

const SMUGGLED = 'HTTP/1.1 200 OK\r\nSet-Cookie: x=1\r\nContent-Type: text/html\r\nContent-Length: 25\r\n\r\n<script>alert(1)</script>';


test('item 17: REST AWS_PROXY 204 and 304 answers carry no body; the next pipelined answer is intact', async () => {
  const backend = await startBackend((e) => {
    if (e.rawPath === '/s/204') return { statusCode: 204, body: SMUGGLED };
    if (e.rawPath === '/s/304') return { statusCode: 304, headers: { etag: '"e"' }, body: SMUGGLED };
    return { statusCode: 200, headers: { 'content-type': 'text/plain' }, body: `ok ${e.rawPath}` };
  });
  const gw = await startGateway({ routes: restApi({
    integrations: { l: { type: 'AWS_PROXY', uri: backend.url, timeoutMs: 5000 } },
    routes: { 'GET /s/{n}': { integration: 'l' } },
  }) });
  const sock = await rawConnect(gw.port);
  sock.write('GET /s/204 HTTP/1.1\r\nHost: x\r\n\r\nGET /s/1 HTTP/1.1\r\nHost: x\r\n\r\n'
    + 'GET /s/304 HTTP/1.1\r\nHost: x\r\n\r\nGET /s/2 HTTP/1.1\r\nHost: x\r\n\r\n');
  const { responses, rest } = await waitResponses(sock, ['GET', 'GET', 'GET', 'GET']);
  await sleep(100);
  const all = sock.received.toString('latin1');
  assert.deepEqual(responses.map((r) => r.status), [204, 200, 304, 200], all);
  assert.deepEqual(responses.map((r) => r.body.toString()), ['', 'ok /s/1', '', 'ok /s/2']);
  assert.equal(rest.length, 0, 'nothing after the last answer');
  assert.doesNotMatch(all, /Set-Cookie|<script>/i, 'the smuggled response never reaches the client');
});

test('item 17: a REST AWS_PROXY statusCode 1xx is not sent as a final answer', async () => {
  const backend = await startBackend((e) => (e.rawPath === '/s/100'
    ? { statusCode: 100, body: SMUGGLED } : { statusCode: 200, body: 'next' }));
  const gw = await startGateway({ routes: restApi({
    integrations: { l: { type: 'AWS_PROXY', uri: backend.url, timeoutMs: 5000 } },
    routes: { 'GET /s/{n}': { integration: 'l' } },
  }) });
  const sock = await rawConnect(gw.port);
  sock.write('GET /s/100 HTTP/1.1\r\nHost: x\r\n\r\nGET /s/1 HTTP/1.1\r\nHost: x\r\n\r\n');
  const { responses } = await waitResponses(sock, ['GET', 'GET']);
  assert.ok(responses[0].status >= 500, `an integration failure, not ${responses[0].status}`);
  assert.equal(responses[1].status, 200);
  assert.equal(responses[1].body.toString(), 'next');
  assert.doesNotMatch(sock.received.toString('latin1'), /Set-Cookie|<script>/i);
});

test('item 17: a $connect statusCode 1xx is an integration failure (502), its body never sent', async () => {
  const backend = await startBackend((e) => (e.requestContext?.eventType === 'CONNECT'
    ? { statusCode: 101, body: SMUGGLED } : { statusCode: 200 }));
  const gw = await startGateway({ routes: makeApi(backend.url) });
  const sock = await rawConnect(gw.port);
  sock.write([
    'GET / HTTP/1.1', 'Host: x', 'Upgrade: websocket', 'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', '', '',
  ].join('\r\n'));
  await sock.closedPromise;
  const all = sock.received.toString('latin1');
  assert.match(all, /^HTTP\/1.1 502 /, all);
  assert.doesNotMatch(all, /Set-Cookie|<script>/i);
});

test('item 17: a $connect refusal with 304 carries no body', async () => {
  const backend = await startBackend((e) => (e.requestContext?.eventType === 'CONNECT'
    ? { statusCode: 304, body: SMUGGLED } : { statusCode: 200 }));
  const gw = await startGateway({ routes: makeApi(backend.url) });
  const sock = await rawConnect(gw.port);
  sock.write([
    'GET / HTTP/1.1', 'Host: x', 'Upgrade: websocket', 'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', '', '',
  ].join('\r\n'));
  await sock.closedPromise;
  const all = sock.received.toString('latin1');
  assert.match(all, /^HTTP\/1.1 304 /, all);
  assert.ok(all.endsWith('\r\n\r\n'), `nothing after the head: ${JSON.stringify(all)}`);
});

test('item 17: a $connect subprotocol that is not a token is dropped, never written into the 101', async () => {
  const backend = await startBackend((e) => (e.requestContext?.eventType === 'CONNECT'
    ? { statusCode: 200, headers: { 'Sec-WebSocket-Protocol': 'v1\r\nSet-Cookie: x=1' } } : { statusCode: 200 }));
  const gw = await startGateway({ routes: makeApi(backend.url) });
  const sock = await rawConnect(gw.port);
  sock.write([
    'GET / HTTP/1.1', 'Host: x', 'Upgrade: websocket', 'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13',
    'Sec-WebSocket-Protocol: v1', '', '',
  ].join('\r\n'));
  await waitUntil(() => sock.received.includes('\r\n\r\n') || sock.destroyed, 5000, 'an answer');
  const all = sock.received.toString('latin1');
  assert.doesNotMatch(all, /Set-Cookie/i, all);
  await waitUntil(() => /invalid header/.test(gw.output()), 2000, 'the log line');
});

test('item 17: a backend header that is not a token fails the call, nothing of it is forwarded', async () => {
  const hb = await startHttpBackend((r) => {
    if (r.path === '/p/sp') return raw('HTTP/1.1 200 OK\r\nX Y: sp\r\nContent-Length: 2\r\n\r\nok');
    if (r.path === '/p/999') return raw('HTTP/1.1 999 Whatever\r\nContent-Length: 0\r\n\r\n');
    if (r.path === '/p/101') return raw('HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\nHTTP/1.1 200 OK\r\nSet-Cookie: x=1\r\n\r\n');
    return { status: 200, body: `proxied ${r.path}` };
  });
  const gw = await startGateway({ routes: restApi({
    integrations: { p: { type: 'HTTP_PROXY', uri: `${hb.origin}/p/{n}`, timeoutMs: 5000 } },
    routes: { 'ANY /p/{n}': { integration: 'p' } },
  }) });
  const sock = await rawConnect(gw.port);
  sock.write('GET /p/sp HTTP/1.1\r\nHost: x\r\n\r\nGET /p/101 HTTP/1.1\r\nHost: x\r\n\r\n'
    + 'GET /p/999 HTTP/1.1\r\nHost: x\r\n\r\nGET /p/1 HTTP/1.1\r\nHost: x\r\n\r\n');
  const { responses } = await waitResponses(sock, ['GET', 'GET', 'GET', 'GET']);
  assert.ok(responses[0].status >= 500, `X Y: ${responses[0].status}`);
  assert.ok(responses[1].status >= 500, `101: ${responses[1].status}`);
  assert.ok(responses[2].status >= 500 && responses[2].status < 600, `999: ${responses[2].status}`);
  assert.equal(responses[3].status, 200);
  assert.equal(responses[3].body.toString(), 'proxied /p/1');
  assert.doesNotMatch(sock.received.toString('latin1'), /X Y|Set-Cookie|101/);
});

test('HTTP_PROXY: an answer to HEAD ends at its head, whatever its Content-Length', async () => {
  const hb = await startHttpBackend((r) => (r.method === 'HEAD'
    ? raw('HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nX-H: 1\r\n\r\n') : { status: 200, body: 'get' }));
  const gw = await startGateway({ routes: restApi({
    integrations: { p: { type: 'HTTP_PROXY', uri: `${hb.origin}/p`, timeoutMs: 3000 } },
    routes: { 'ANY /p': { integration: 'p' } },
  }) });
  const sock = await rawConnect(gw.port);
  const t0 = Date.now();
  sock.write('HEAD /p HTTP/1.1\r\nHost: x\r\n\r\nGET /p HTTP/1.1\r\nHost: x\r\n\r\n');
  const { responses } = await waitResponses(sock, ['HEAD', 'GET']);
  assert.deepEqual(responses.map((r) => r.status), [200, 200]);
  assert.equal(responses[1].body.toString(), 'get');
  assert.ok(Date.now() - t0 < 2000, 'no wait for a body that never comes');
});

// ---------------------------------------------------------------------------
// Log floods a client can cause through a failing integration
// ---------------------------------------------------------------------------

test('failing integration calls are logged at a bounded rate, with a count of the lines left out', async () => {
  const gw = await startGateway({ routes: restApi({
    integrations: { dead: { type: 'AWS_PROXY', uri: await unusedUrl(), timeoutMs: 2000 } },
    routes: { 'GET /dead': { integration: 'dead' } },
  }) });
  const sock = await rawConnect(gw.port);
  const N = 600;
  for (let i = 0; i < N; i += 50) {
    sock.received = Buffer.alloc(0);
    sock.write('GET /dead HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(50));
    const { responses } = await waitResponses(sock, Array(50).fill('GET'));
    assert.ok(responses.every((r) => r.status === 500), 'every answer is 500');
  }
  await sleep(1100);
  // One more after the second has turned: the count is reported.
  sock.received = Buffer.alloc(0);
  sock.write('GET /dead HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitResponses(sock, ['GET']);
  await sleep(200);
  const lines = gw.output().split('\n').filter((l) => /integration call failed/.test(l));
  assert.ok(lines.length < 100, `${lines.length} warning lines for ${N} failed calls`);
  assert.match(lines.at(-1), /\d+ similar lines? not logged/, 'the lines left out are counted');
});

// ---------------------------------------------------------------------------
// Backend pool under churn: timeouts, resets, cancellations, a full queue
// ---------------------------------------------------------------------------

test('backend pool: calls timing out, reset, cancelled and queued at once leave the gateway sound', { timeout: 60000 }, async () => {
  let n = 0;
  const backend = await startBackend(async (e) => {
    if (e.requestContext?.eventType !== 'MESSAGE') return { statusCode: 200 };
    const k = n++ % 5;
    if (k === 0) return DESTROY;
    if (k === 1) return HANG;
    await sleep(k * 30);
    return { statusCode: 200, body: e.body };
  });
  // $connect and $disconnect on a pool of their own: only messages churn.
  const api = makeApi(backend.url);
  api.integrations.churn = { type: 'AWS_PROXY', uri: backend.url, timeoutMs: 120, maxConnections: 3, maxQueue: 20 };
  api.routes.$default = { integration: 'churn', routeResponse: true };
  const gw = await startGateway({ routes: api });
  const rounds = [];
  for (let c = 0; c < 24; c++) {
    rounds.push((async () => {
      const ws = await connect(gw.url);
      for (let m = 0; m < 12; m++) ws.send(`m${c}-${m}`);
      await sleep(20 + (c % 6) * 40);
      if (c % 2) ws.terminate(); else ws.close();
    })());
  }
  await Promise.all(rounds);
  // Messages of the closed clients are still delivered (their connections
  // drain); wait until the backend has gone quiet.
  let seen = -1;
  await waitUntil(async () => {
    const now = backend.events.length;
    if (now === seen) return true;
    seen = now;
    await sleep(500);
    return false;
  }, 25000, 'the closed connections to drain');
  backend.dropHung();
  // Still serving, with answers.
  n = 2;
  const ws = await connect(gw.url);
  ws.send('after');
  const got = await new Promise((resolve) => ws.once('message', (d) => resolve(d.toString())));
  assert.equal(got, 'after');
});
