// Small defects found by reviews: request IDs on the gateway's own
// refusals, management heads libwebsockets cannot hold, channel lists in
// integration answers.
import {
  test, assert, startBackend, startGateway, makeApi, rawConnect, upgradeRequest, waitResponses, waitUntil,
  connect, send, nextMessage, mgmtRequest, parseResponses, sleep, serverFrames,
} from './helpers.mjs';
import { readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

const logged = (gw, re) => waitUntil(() => re.test(gw.output()), 3000, `a log line matching ${re}`);

/** The status, headers and body of an upgrade answered on a raw socket. */
async function rawUpgrade(port, urlPath, headers = {}) {
  const sock = await rawConnect(port);
  sock.write(upgradeRequest(urlPath, headers));
  const { responses } = await waitResponses(sock, ['GET']);
  sock.destroy();
  const r = responses[0];
  return { status: r.status, headers: r.headers, body: r.body.toString() };
}

/** A refusal carries exactly one apigw-requestid, as AWS's answers do. */
function assertRequestId(r, what) {
  const rid = r.headers['apigw-requestid'];
  assert.match(rid ?? '', /^[A-Za-z0-9_=-]{8,}$/, `${what}: apigw-requestid on the ${r.status}`);
  assert.ok(!rid.includes(','), `${what}: one apigw-requestid`);
  return rid;
}

// ---------------------------------------------------------------------------
// Item 1: request IDs on the gateway's own refusals
// ---------------------------------------------------------------------------

function authorizer(event) {
  const token = event.headers?.Authorization ?? event.headers?.authorization;
  if (token === 'deny') {
    return { principalId: 'x', policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: 'Deny', Resource: event.methodArn }] } };
  }
  return { errorMessage: 'Unauthorized', errorType: 'Error' };
}

test('item 1: upgrade refusals (origin, API key, authorizer, unserved path, $connect, throttle) carry apigw-requestid', async () => {
  const backend = await startBackend((e) => {
    if (e.methodArn) return authorizer(e);
    if (e.requestContext?.eventType === 'CONNECT') return { statusCode: 418, body: '{"message":"no"}' };
    return { statusCode: 200 };
  });
  const guarded = makeApi(backend.url, {
    name: 'guarded',
    basePath: '/g',
    allowedOrigins: ['https://app.example.com'],
    apiKeys: { keys: ['k1-0123456789abcdefghij'] },
    sourceIpLimits: { newConnections: { rateLimit: 0.01, burstLimit: 6 } },
  });
  guarded.routes.$connect.apiKeyRequired = true;
  const authz = makeApi(backend.url, { name: 'authz', basePath: '/a' });
  authz.integrations.authz = { type: 'AWS_PROXY', uri: backend.url, timeoutMs: 2000 };
  authz.authorizers = { auth: { type: 'REQUEST', integration: 'authz', identitySource: ['route.request.header.Authorization'] } };
  authz.routes.$connect.authorizer = 'auth';
  const open = makeApi(backend.url, { name: 'open', basePath: '/o' });
  const gw = await startGateway({ routes: { 'guarded.json': guarded, 'authz.json': authz, 'open.json': open } });

  const ids = new Set();
  const check = async (urlPath, headers, status, what) => {
    const r = await rawUpgrade(gw.port, urlPath, headers);
    assert.equal(r.status, status, `${what}: ${r.body}`);
    const rid = assertRequestId(r, what);
    assert.ok(!ids.has(rid), `${what}: a request ID of its own`);
    ids.add(rid);
    return rid;
  };
  const origin = await check('/g', { Origin: 'https://evil.example' }, 403, 'forbidden Origin');
  await logged(gw, new RegExp(`upgrade refused \\(403, request ${origin}, api guarded`));
  const key = await check('/g', { 'x-api-key': 'wrong' }, 403, 'wrong API key');
  await logged(gw, new RegExp(`upgrade refused \\(403, request ${key}, api guarded.*API key`));
  await check('/a', {}, 401, 'no identity for the authorizer');
  await check('/a', { Authorization: 'nope' }, 401, 'authorizer says Unauthorized');
  await check('/a', { Authorization: 'deny' }, 403, 'authorizer denies');
  await check('/o/after/the/stage', {}, 403, 'an unserved path');
  await check('/o', {}, 418, '$connect refuses');
  for (let i = 0; i < 8; i++) {
    const r = await rawUpgrade(gw.port, '/g', { 'x-api-key': 'k1-0123456789abcdefghij' });
    if (r.status === 429) {
      assertRequestId(r, 'sourceIpLimits');
      return;
    }
  }
  assert.fail('sourceIpLimits.newConnections never answered 429');
});

test('item 1: heads the gateway refuses before any API (400, 431) carry apigw-requestid', async () => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: makeApi(backend.url) });
  const sock = await rawConnect(gw.port);
  sock.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
    + 'Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n');
  const { responses } = await waitResponses(sock, ['GET']);
  assert.equal(responses[0].status, 400);
  assertRequestId(responses[0], 'bad key');
  const big = await rawUpgrade(gw.port, `/?${Array.from({ length: 120 }, (_, i) => `a${i}=1`).join('&')}`);
  assert.equal(big.status, 431);
  assertRequestId(big, 'too many arguments');
});

// ---------------------------------------------------------------------------
// Item 3: channel lists in an integration answer are bounded
// ---------------------------------------------------------------------------

test('item 3: an answer naming 300,000 channels joins the first 64, reads no further and says so once', async () => {
  const N = 300000;
  const many = Array.from({ length: N }, (_, i) => `c${i}`);
  const backend = await startBackend((e) => {
    if (e.requestContext?.eventType !== 'MESSAGE') return { statusCode: 200 };
    if (e.body === 'many') return { statusCode: 200, body: 'ok', subscribe: many, unsubscribe: many.join(',') };
    return { statusCode: 200, body: e.body };
  });
  const gw = await startGateway({ routes: makeApi(backend.url) });
  const ws = await connect(gw.url);
  send(ws, 'many');
  assert.equal((await nextMessage(ws, 10000)).data, 'ok');
  for (const [ch, members] of [['c0', 1], ['c63', 1], ['c64', 0], [`c${N - 1}`, 0]]) {
    const r = await mgmtRequest(gw, 'GET', `/@channels/${ch}`);
    assert.equal(JSON.parse(r.body).members, members, ch);
  }
  await logged(gw, /integration answer names more than 64 channels to leave: the rest are ignored/);
  await logged(gw, /integration answer names more than 64 channels to join: the rest are ignored/);
  ws.close();
});

// ---------------------------------------------------------------------------
// Item 2: management heads libwebsockets cannot hold get an HTTP answer
// ---------------------------------------------------------------------------

/** Sends a raw request to port; the answer, or null when the connection closed without one. */
async function rawRequest(port, text) {
  const sock = await rawConnect(port);
  sock.write(text);
  await Promise.race([sock.closedPromise, waitUntil(() => sock.received.includes('\r\n\r\n'), 5000, 'an answer').catch(() => {})]);
  await sleep(50);
  const { responses } = parseResponses(sock.received, ['GET']);
  sock.destroy();
  return responses[0] ?? null;
}

test('item 2: 120 query arguments or 100 known headers on the management listener get 431, not a bare close', async () => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: makeApi(backend.url), args: ['--mgmt-on-gateway'] });
  const args = Array.from({ length: 120 }, (_, i) => `a${i}=1`).join('&');
  const headers = Array.from({ length: 100 }, () => 'Accept: x\r\n').join('');
  for (const [port, what, prefix] of [[gw.mgmtPort, 'management listener', ''], [gw.port, 'gateway port', '/dev']]) {
    for (const [text, kind] of [
      [`GET ${prefix}/@connections?${args} HTTP/1.1\r\nHost: x\r\n\r\n`, 'arguments'],
      [`GET ${prefix}/@connections/abc HTTP/1.1\r\nHost: x\r\n${headers}\r\n`, 'headers'],
    ]) {
      const r = await rawRequest(port, text);
      assert.ok(r, `${what}, ${kind}: an HTTP answer, not a bare close`);
      assert.equal(r.status, 431, `${what}, ${kind}`);
      assert.deepEqual(JSON.parse(r.body.toString()), { message: 'Request Header Fields Too Large' });
      assertRequestId(r, `${what}, ${kind}`);
    }
  }
  // Within the limits, the management API answers as before.
  const few = Array.from({ length: 20 }, (_, i) => `a${i}=1`).join('&');
  const r = await rawRequest(gw.mgmtPort, `GET /@connections?limit=5&${few} HTTP/1.1\r\nHost: x\r\n\r\n`);
  assert.equal(r?.status, 200);
  assert.deepEqual(JSON.parse(r.body.toString()).items, []);
});

// ---------------------------------------------------------------------------
// Item 4: the README's "Compared with AWS" rows hold (limits.maxFrameBytes
// applies to every outbound message, the small ones written at once too)
// ---------------------------------------------------------------------------

test('item 4: messages under 16 KB posted or published to an idle connection are split at a small limits.maxFrameBytes', async () => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: makeApi(backend.url, { limits: { maxFrameBytes: 1000 } }) });
  const sock = await rawConnect(gw.port);
  sock.write(upgradeRequest('/'));
  const ev = await backend.waitForEvent('CONNECT');
  const id = ev.requestContext.connectionId;
  await waitUntil(() => sock.received.includes('\r\n\r\n'), 5000, 'the upgrade answer');
  const total = () => serverFrames(sock.received).reduce((n, f) => n + f.payload.length, 0);
  assert.equal((await mgmtRequest(gw, 'POST', `/@connections/${id}`, Buffer.alloc(2500, 'a'))).status, 200);
  await waitUntil(() => total() >= 2500, 5000, 'the posted message');
  assert.equal((await mgmtRequest(gw, 'PUT', `/@connections/${id}/channels/room`)).status, 204);
  assert.equal((await mgmtRequest(gw, 'POST', '/@channels/room', Buffer.alloc(1500, 'b'))).status, 200);
  await waitUntil(() => total() >= 4000, 5000, 'the published message');
  assert.deepEqual(serverFrames(sock.received).map((f) => [f.opcode, f.fin, f.payload.length]),
    [[1, false, 1000], [0, false, 1000], [0, true, 500], [1, false, 1000], [0, true, 500]]);
  sock.destroy();
});

test('item 1: the 503 of a connection shed near the descriptor limit carries apigw-requestid and its true Content-Length', async () => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: makeApi(backend.url) });
  const pid = gw.proc.pid;
  const fds = new Set(readdirSync(`/proc/${pid}/fd`).map(Number));
  let hole = 0;
  while (fds.has(hole)) hole++;
  // The next socket (the lowest free descriptor) lands near the limit:
  // the gateway sheds it (gateway.c).
  const soft = execFileSync('prlimit', ['--pid', String(pid), '--nofile', '--output=SOFT', '--noheadings']).toString().trim();
  execFileSync('prlimit', ['--pid', String(pid), `--nofile=${hole + 2}:`]);
  try {
    const sock = await rawConnect(gw.port);
    sock.write(upgradeRequest('/'));
    const { responses } = await waitResponses(sock, ['GET']);
    assert.equal(responses[0].status, 503);
    assertRequestId(responses[0], 'shed');
    sock.destroy();
  } finally {
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${soft}:`]);
  }
});
