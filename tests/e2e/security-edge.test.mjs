// Issue 12, security at the edge: allowedOrigins (cross-site WebSocket
// hijacking), API keys on $connect and throttling. Every refusal here must
// happen before any integration call: the backend counts the events it got.
import {
  test, assert, checkApi as check, expectCheckError, startBackend, startGateway, makeApi, runGateway, writeRoutes, connect,
  connectRefused, nextMessage, send, rawConnect, upgradeRequest, waitResponses, sleep, waitUntil,
} from './helpers.mjs';
import { rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/** Waits for a line matching re in the gateway's log (stderr arrives on its own pipe). */
const logged = (gw, re) => waitUntil(() => re.test(gw.output()), 3000, `a log line matching ${re}`);

const connects = (backend) => backend.events.filter((e) => e.requestContext?.eventType === 'CONNECT');

/** The status and body of a refused upgrade sent on a raw socket. */
async function rawUpgrade(gw, urlPath, headers) {
  const sock = await rawConnect(gw.port);
  sock.write(upgradeRequest(urlPath, headers));
  const { responses } = await waitResponses(sock, ['GET']);
  sock.destroy();
  return { status: responses[0].status, body: responses[0].body.toString() };
}

// ---------------------------------------------------------------------------
// allowedOrigins
// ---------------------------------------------------------------------------

const ORIGINS = ['https://app.example.com', 'https://*.example.org', 'http://localhost:8080'];

test('item allowedOrigins: an upgrade from a forbidden Origin gets 403 before $connect is called', async () => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: makeApi(backend.url, { allowedOrigins: ORIGINS }) });
  for (const origin of ['https://evil.example', 'https://app.example.com.evil.example',
    'http://app.example.com', 'https://app.example.com:8443', 'https://example.org',
    'https://x.example.org:444', 'http://x.example.org', 'http://localhost:8081', 'null']) {
    const r = await rawUpgrade(gw, '/', { Origin: origin });
    assert.equal(r.status, 403, origin);
    assert.equal(r.body, '{"message":"Forbidden"}', origin);
    assert.equal(await connectRefused(gw.url, { headers: { Origin: origin } }), 403, origin);
  }
  assert.equal(connects(backend).length, 0, 'no $connect call for a forbidden Origin');
  await logged(gw, /upgrade refused \(403, request \S+, api chat, 127\.0\.0\.1\): Origin "https:\/\/evil\.example" is not in allowedOrigins/);
});

test('item allowedOrigins: exact, wildcard and missing Origins are let through to $connect', async () => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: makeApi(backend.url, { allowedOrigins: ORIGINS }) });
  const allowed = ['https://app.example.com', 'HTTPS://APP.Example.COM', 'https://a.example.org',
    'https://a.b-c.example.org', 'http://localhost:8080'];
  for (const origin of allowed) {
    const ws = await connect(gw.url, { headers: { Origin: origin } });
    send(ws, 'hi');
    assert.equal((await nextMessage(ws)).data, 'hi');
    ws.close();
  }
  // Non-browser clients send no Origin: allowed (see the README).
  const ws = await connect(gw.url);
  ws.close();
  assert.equal(connects(backend).length, allowed.length + 1);
  assert.equal(connects(backend)[0].headers.Origin ?? connects(backend)[0].headers.origin, 'https://app.example.com');
});

test('item allowedOrigins: two Origin headers are refused; no allowedOrigins allows any Origin', async () => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: makeApi(backend.url, { allowedOrigins: ['https://app.example.com'] }) });
  const sock = await rawConnect(gw.port);
  sock.write(upgradeRequest('/', { Origin: 'https://app.example.com' }).replace('\r\n\r\n', '\r\nOrigin: https://evil.example\r\n\r\n'));
  const { responses } = await waitResponses(sock, ['GET']);
  assert.equal(responses[0].status, 403);
  assert.equal(connects(backend).length, 0);

  const open = await startGateway({ routes: makeApi(backend.url) });
  const ws = await connect(open.url, { headers: { Origin: 'https://anything.example' } });
  ws.close();
  // An empty list: only clients without Origin (no browser page at all).
  const none = await startGateway({ routes: makeApi(backend.url, { allowedOrigins: [] }) });
  assert.equal(await connectRefused(none.url, { headers: { Origin: 'https://app.example.com' } }), 403);
  (await connect(none.url)).close();
});

test('item allowedOrigins: --check names the file, the key and what was expected', async () => {
  const uri = 'http://127.0.0.1:9/events';
  await expectCheckError(makeApi(uri, { allowedOrigins: 'https://app.example.com' }),
    ['api.json: allowedOrigins: expected an array of origins']);
  const res = await expectCheckError(makeApi(uri, {
    allowedOrigins: ['https://app.example.com/', 'app.example.com', 'https://*', 'https://a.*.example.com',
      'https://x.com:99999', 7, 'https://ok.example.com'],
  }), [
    'api.json: allowedOrigins[0]: expected an origin without a path, query or trailing \'/\'',
    'api.json: allowedOrigins[1]: expected scheme://host[:port]',
    'api.json: allowedOrigins[2]: expected a host name after scheme://',
    'api.json: allowedOrigins[3]: expected a host name after scheme:// (a wildcard only as a leading "*."',
    'api.json: allowedOrigins[4]: expected a port from 1 to 65535',
    'api.json: allowedOrigins[5]: expected a string, found an integer',
  ]);
  assert.ok(!res.stderr.includes('allowedOrigins[6]'));
  const ok = await check(makeApi(uri, { allowedOrigins: ['*', 'null', 'https://*.example.com:8443', 'http://[::1]:3000'] }));
  assert.equal(ok.code, 0, ok.output);
});

// ---------------------------------------------------------------------------
// API keys
// ---------------------------------------------------------------------------

const KEY1 = 'k1-0123456789abcdefghij';
const KEY2 = 'k2-zyxwvutsrqponmlkji/+=';
const KEY3 = 'k3-from-the-file-0123456789';

function keyedApi(uri, extra = {}) {
  return makeApi(uri, {
    apiKeys: { keys: [KEY1, KEY2], queryParameter: 'apiKey', ...extra },
    routes: {
      $connect: { integration: 'backend', apiKeyRequired: true },
      $disconnect: { integration: 'backend' },
      $default: { integration: 'backend', routeResponse: true },
    },
  });
}

test('item API keys: a missing or wrong x-api-key gets 403 before $connect is called; keys never logged', async () => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: keyedApi(backend.url) });
  const wrong = [{}, { 'x-api-key': 'nope' }, { 'x-api-key': `${KEY1}x` }, { 'x-api-key': KEY1.slice(0, -1) },
    { 'x-api-key': KEY1.toUpperCase() }];
  for (const headers of wrong) {
    assert.equal(await connectRefused(gw.url, { headers }), 403, JSON.stringify(headers));
  }
  const r = await rawUpgrade(gw, '/', {});
  assert.deepEqual(r, { status: 403, body: '{"message":"Forbidden"}' });
  // Two keys, one of them right: ambiguous, refused.
  const two = await rawUpgrade(gw, '/', { 'x-api-key': KEY1, 'X-Api-Key': KEY2 });
  assert.equal(two.status, 403);
  // A right key in the header beats nothing: the query is not looked at then.
  assert.equal(await connectRefused(`${gw.url}/?apiKey=${encodeURIComponent(KEY1)}`, { headers: { 'x-api-key': 'wrong' } }), 403);
  assert.equal(connects(backend).length, 0, 'no $connect call without a valid key');
  await logged(gw, /upgrade refused \(403, request \S+, api chat, 127\.0\.0\.1\): missing or invalid API key/);

  for (const key of [KEY1, KEY2]) {
    const ws = await connect(gw.url, { headers: { 'x-api-key': key } });
    send(ws, 'hi');
    assert.equal((await nextMessage(ws)).data, 'hi');
    ws.close();
  }
  assert.equal(connects(backend).length, 2);
  // The key does not reach the backend.
  for (const ev of connects(backend)) {
    assert.ok(!JSON.stringify(ev).includes('k1-') && !JSON.stringify(ev).includes('k2-'), JSON.stringify(ev));
  }
  await gw.stop();
  for (const key of [KEY1, KEY2, 'nope']) assert.ok(!gw.output().includes(key), 'a key in the log');
});

test('item API keys: browsers send the key as the configured query parameter; other parameters reach $connect', async () => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: keyedApi(backend.url) });
  const ws = await connect(`${gw.url}/?room=a&apiKey=${encodeURIComponent(KEY2)}&x=1`);
  ws.close();
  const ev = connects(backend)[0];
  assert.deepEqual(ev.queryStringParameters, { room: 'a', x: '1' });
  assert.ok(!JSON.stringify(ev).includes('k2-'));
  for (const q of ['?apiKey=nope', `?apikey=${encodeURIComponent(KEY1)}`, `?apiKey=${KEY1}&apiKey=${KEY1}`, '?apiKey']) {
    assert.equal(await connectRefused(`${gw.url}/${q}`), 403, q);
  }
  // Not percent-encoding at all: the request itself is refused.
  assert.equal((await rawUpgrade(gw, '/?apiKey=%zz', {})).status, 400);
  assert.equal(connects(backend).length, 1);
  // Without queryParameter only the header counts.
  const hdrOnly = await startGateway({ routes: keyedApi(backend.url, { queryParameter: undefined }) });
  assert.equal(await connectRefused(`${hdrOnly.url}/?apiKey=${encodeURIComponent(KEY1)}`), 403);
  (await connect(hdrOnly.url, { headers: { 'x-api-key': KEY1 } })).close();
});

test('item API keys: keys from a file of keys; an API without apiKeyRequired asks for none', async () => {
  const backend = await startBackend();
  const dir = writeRoutes({});
  const file = path.join(dir, 'keys.txt');
  writeFileSync(file, `# production keys\n\n${KEY3}\r\n${KEY1}\n`);
  try {
    const gw = await startGateway({ routes: keyedApi(backend.url, { keys: undefined, file }) });
    (await connect(gw.url, { headers: { 'x-api-key': KEY3 } })).close();
    (await connect(gw.url, { headers: { 'x-api-key': KEY1 } })).close();
    assert.equal(await connectRefused(gw.url, { headers: { 'x-api-key': KEY2 } }), 403);
    assert.equal(await connectRefused(gw.url, { headers: { 'x-api-key': '# production keys' } }), 403);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const open = await startGateway({ routes: makeApi(backend.url) });
  (await connect(open.url)).close();
});

test('item API keys: --check names the file, the key and what was expected, never the key', async () => {
  const uri = 'http://127.0.0.1:9/events';
  const secret = 'short-secret';
  const res = await expectCheckError(keyedApi(uri, { keys: [KEY1, secret, 5], queryParameter: 'a b' }), [
    'api.json: apiKeys.keys[1]: expected a key of 20 to 128 printable ASCII characters without spaces, found 12 bytes (the value is not shown)',
    'api.json: apiKeys.keys[2]: expected a string, found an integer',
    'api.json: apiKeys.queryParameter: expected a parameter name of [a-zA-Z0-9._$-], found "a b"',
  ]);
  assert.ok(!res.output.includes(secret));
  await expectCheckError(keyedApi(uri, { keys: [], file: '/nonexistent/keys.txt' }),
    ['api.json: apiKeys.file: cannot read "/nonexistent/keys.txt" (expected a regular file of API keys, one per line, at most 1 MB)']);
  // A device is never read (it would be read forever).
  await expectCheckError(keyedApi(uri, { keys: [], file: '/dev/zero' }),
    ['api.json: apiKeys.file: cannot read "/dev/zero" (expected a regular file']);
  await expectCheckError(keyedApi(uri, { keys: [] }), ['api.json: apiKeys: no keys (expected apiKeys.keys or apiKeys.file']);
  await expectCheckError(keyedApi(uri, { colour: 1 }), ['api.json: apiKeys.colour: unknown key (expected one of: keys, file, queryParameter)']);
  const noKeys = keyedApi(uri);
  delete noKeys.apiKeys;
  await expectCheckError(noKeys, ['api.json: routes.$connect.apiKeyRequired: no keys to check (expected apiKeys']);
  await expectCheckError(makeApi(uri, { apiKeys: { keys: [KEY1] } }),
    ['api.json: apiKeys: no route requires them (expected routes.$connect.apiKeyRequired: true)']);
  const onDefault = keyedApi(uri);
  onDefault.routes.$default.apiKeyRequired = true;
  onDefault.routes.$connect.apiKeyRequired = 'yes';
  await expectCheckError(onDefault, [
    'api.json: routes.$default.apiKeyRequired: only $connect takes it',
    'api.json: routes.$connect.apiKeyRequired: expected true or false, found a string',
  ]);
  const bad = await expectCheckError(keyedApi(uri, { keys: undefined, file: 'keys.txt' }),
    ['apiKeys.file (keys.txt, line 2): expected a key of 20 to 128 printable ASCII characters'],
    { 'keys.txt': `${KEY1}\nbad key with spaces in it 123\n${KEY3}\0tail\n` });
  assert.ok(bad.stderr.includes('apiKeys.file (keys.txt, line 3): expected a key of 20 to 128'), bad.stderr);
  assert.ok(!bad.output.includes('bad key with'));
});

// ---------------------------------------------------------------------------
// Throttling
// ---------------------------------------------------------------------------

const messages = (backend) => backend.events.filter((e) => e.requestContext?.eventType === 'MESSAGE');
const THROTTLED = /^\{"message": "Too Many Requests", "connectionId":"([^"]+)", "requestId":"([^"]+)"\}$/;

function throttledApi(uri, { stage, routes = {} } = {}) {
  const api = makeApi(uri, {
    routes: {
      $connect: { integration: 'backend' },
      $disconnect: { integration: 'backend' },
      $default: { integration: 'backend' },
      chat: { integration: 'backend' },
      fast: { integration: 'backend' },
      ...routes,
    },
  });
  if (stage) api.throttling = stage;
  return api;
}

test('item throttling: messages over a route\'s burst get AWS\'s frame, the connection stays open, no integration call', async () => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: throttledApi(backend.url, { routes: { chat: { integration: 'backend', throttling: { rateLimit: 2, burstLimit: 3 } } } }) });
  const ws = await connect(gw.url);
  await waitUntil(() => connects(backend).length === 1);
  const id = connects(backend)[0].requestContext.connectionId;
  for (let i = 0; i < 6; i++) send(ws, JSON.stringify({ action: 'chat', i }));
  const ids = new Set();
  for (let i = 0; i < 3; i++) {
    const m = THROTTLED.exec((await nextMessage(ws)).data);
    assert.ok(m, 'a throttled frame');
    assert.equal(m[1], id);
    ids.add(m[2]);
  }
  assert.equal(ids.size, 3, 'each throttled message has its own request ID');
  await waitUntil(() => messages(backend).length === 3);
  assert.deepEqual(messages(backend).map((e) => JSON.parse(e.body).i), [0, 1, 2]);
  // Other routes are not throttled; after 500 ms one token is back.
  send(ws, JSON.stringify({ action: 'fast' }));
  await waitUntil(() => messages(backend).length === 4);
  await sleep(550);
  send(ws, JSON.stringify({ action: 'chat', i: 6 }));
  await waitUntil(() => messages(backend).length === 5);
  assert.equal(JSON.parse(messages(backend)[4].body).i, 6);
  assert.equal(ws.readyState, 1, 'still open');
  await logged(gw, new RegExp(`connection ${id}: message to chat throttled \\(request \\S+\\)`));
});

test('item throttling: the stage\'s throttling applies to each route; a route\'s own overrides it; 0 refuses all', async () => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: throttledApi(backend.url, {
    stage: { rateLimit: 0.01, burstLimit: 2 },
    routes: {
      fast: { integration: 'backend', throttling: { rateLimit: 1000, burstLimit: 50 } },
      closed: { integration: 'backend', throttling: { rateLimit: 0, burstLimit: 10 } },
    },
  }) });
  const ws = await connect(gw.url);
  for (const action of ['chat', 'nothing-matches', 'fast', 'closed']) {
    for (let i = 0; i < 5; i++) send(ws, JSON.stringify({ action, i }));
  }
  let throttled = 0;
  for (;;) {
    const m = await nextMessage(ws, 1000).catch(() => null);
    if (!m) break;
    assert.match(m.data, THROTTLED);
    throttled++;
  }
  const by = (route) => messages(backend).filter((e) => e.requestContext.routeKey === route).length;
  await waitUntil(() => messages(backend).length === 9);
  assert.deepEqual([by('chat'), by('$default'), by('fast'), by('closed')], [2, 2, 5, 0]);
  assert.equal(throttled, 11);
});

test('item throttling: an upgrade over $connect\'s rate gets 429 and costs no $connect call', async () => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: throttledApi(backend.url, {
    routes: { $connect: { integration: 'backend', throttling: { rateLimit: 0.01, burstLimit: 2 } } },
  }) });
  (await connect(gw.url)).close();
  (await connect(gw.url)).close();
  assert.equal(await connectRefused(gw.url), 429);
  const r = await rawUpgrade(gw, '/', {});
  assert.deepEqual(r, { status: 429, body: '{"message":"Too Many Requests"}' });
  assert.equal(connects(backend).length, 2);
  await logged(gw, /upgrade throttled \(429, request \S+, api chat, 127\.0\.0\.1\): \$connect rate limit/);
  // The stage's throttling covers the upgrade of an API without $connect.
  const noConnect = throttledApi(backend.url, { stage: { rateLimit: 0.01, burstLimit: 1 } });
  delete noConnect.routes.$connect;
  const gw2 = await startGateway({ routes: noConnect });
  (await connect(gw2.url)).close();
  assert.equal(await connectRefused(gw2.url), 429);
});

test('item throttling: limits hold exactly across the event loops of one process', async () => {
  const backend = await startBackend();
  const gw = await startGateway({
    routes: throttledApi(backend.url, {
      routes: {
        $connect: { integration: 'backend', throttling: { rateLimit: 0.01, burstLimit: 12 } },
        chat: { integration: 'backend', throttling: { rateLimit: 0.01, burstLimit: 25 } },
      },
    }),
    args: ['--workers', '4'],
  });
  // 20 upgrades at once, spread over the loops by the kernel: 12 pass.
  const results = await Promise.allSettled(Array.from({ length: 20 }, () => connect(gw.url)));
  const open = results.filter((r) => r.status === 'fulfilled').map((r) => r.value);
  assert.equal(open.length, 12);
  assert.ok(results.filter((r) => r.status === 'rejected').every((r) => r.reason.status === 429));
  // 12 clients, 5 messages each, at once: 25 reach the backend.
  for (const ws of open) for (let i = 0; i < 5; i++) send(ws, JSON.stringify({ action: 'chat' }));
  await waitUntil(() => messages(backend).length >= 25);
  await sleep(300);
  assert.equal(messages(backend).length, 25);
  assert.equal(connects(backend).length, 12);
  // Logged when it bites, but not once per message.
  const lines = gw.output().split('\n').filter((l) => l.includes('throttled'));
  assert.ok(lines.length >= 1 && lines.length <= 8, `${lines.length} log lines`);
});

test('item throttling: --check names the file, the key and what was expected', async () => {
  const uri = 'http://127.0.0.1:9/events';
  await expectCheckError(throttledApi(uri, { stage: { rateLimit: -1, burstLimit: 1.5, colour: 1 } }), [
    'api.json: throttling.rateLimit: expected a number of requests per second from 0 to 1000000000, found -1',
    'api.json: throttling.burstLimit: expected an integer from 0 to 1000000000, found a number',
    'api.json: throttling.colour: unknown key (expected one of: rateLimit, burstLimit)',
  ]);
  await expectCheckError(throttledApi(uri, { stage: 5 }), ['api.json: throttling: expected an object {"rateLimit": N, "burstLimit": N}, found an integer']);
  await expectCheckError(throttledApi(uri, { routes: { chat: { integration: 'backend', throttling: { rateLimit: 5 } } } }),
    ['api.json: routes.chat.throttling.burstLimit: missing (expected an integer from 0 to 1000000000)']);
  await expectCheckError(throttledApi(uri, { routes: { chat: { integration: 'backend', throttling: { burstLimit: 5 } } } }),
    ['api.json: routes.chat.throttling.rateLimit: expected a number of requests per second from 0 to 1000000000, found nothing']);
  await expectCheckError(throttledApi(uri, { routes: { $disconnect: { integration: 'backend', throttling: { rateLimit: 1, burstLimit: 1 } } } }),
    ['api.json: routes.$disconnect.throttling: expected on $connect or a WebSocket message route']);
  const ok = await check(throttledApi(uri, { stage: { rateLimit: 0.5, burstLimit: 0 } }));
  assert.equal(ok.code, 0, ok.output);
});

// ---------------------------------------------------------------------------
// Per connection and per source IP
// ---------------------------------------------------------------------------

test('item connection limits: messages and bytes per second of one connection; others unaffected', async () => {
  const backend = await startBackend();
  const api = throttledApi(backend.url);
  api.connectionThrottling = { messages: { rateLimit: 0.01, burstLimit: 4 }, bytes: { rateLimit: 0.01, burstLimit: 1000 } };
  const gw = await startGateway({ routes: api });
  const a = await connect(gw.url);
  const b = await connect(gw.url);
  for (let i = 0; i < 6; i++) send(a, JSON.stringify({ action: 'chat', i }));
  for (let i = 0; i < 2; i++) assert.match((await nextMessage(a)).data, THROTTLED);
  await waitUntil(() => messages(backend).length === 4);
  // b has its own buckets: a big message passes, the next is over 1000 bytes.
  send(b, JSON.stringify({ action: 'chat', pad: 'x'.repeat(900) }));
  send(b, JSON.stringify({ action: 'chat', pad: 'y'.repeat(200) }));
  assert.match((await nextMessage(b)).data, THROTTLED);
  await waitUntil(() => messages(backend).length === 5);
  assert.equal(a.readyState, 1);
  assert.equal(b.readyState, 1);
  await logged(gw, /message to chat throttled by connectionThrottling\.messages/);
  await logged(gw, /message to chat throttled by connectionThrottling\.bytes/);
});

test('item source IP limits: concurrent connections and new connections per second per IP get 429', async () => {
  const backend = await startBackend();
  const api = throttledApi(backend.url);
  api.sourceIpLimits = { maxConnections: 3 };
  const gw = await startGateway({ routes: api, args: ['--workers', '2'] });
  const open = [];
  for (let i = 0; i < 3; i++) open.push(await connect(gw.url));
  assert.equal(await connectRefused(gw.url), 429);
  assert.equal(connects(backend).length, 3, 'no $connect call over the limit');
  await logged(gw, /upgrade throttled \(429, request \S+, api chat, 127\.0\.0\.1\): sourceIpLimits\.maxConnections reached/);
  // A connection that closes gives its place back.
  open[0].close();
  await waitUntil(() => backend.events.some((e) => e.requestContext?.eventType === 'DISCONNECT'));
  await waitUntil(async () => {
    try { open.push(await connect(gw.url)); return true; } catch { return false; }
  }, 3000, 'a place to come back');

  const api2 = throttledApi(backend.url);
  api2.sourceIpLimits = { newConnections: { rateLimit: 0.01, burstLimit: 2 } };
  const gw2 = await startGateway({ routes: api2 });
  (await connect(gw2.url)).close();
  (await connect(gw2.url)).close();
  assert.equal(await connectRefused(gw2.url), 429);
  await logged(gw2, /sourceIpLimits\.newConnections rate limit/);
});

test('item connection limits: --check names the file, the key and what was expected', async () => {
  const uri = 'http://127.0.0.1:9/events';
  const api = throttledApi(uri);
  api.connectionThrottling = { messages: { rateLimit: 1 }, bits: 1 };
  api.sourceIpLimits = { maxConnections: 0, newConnections: 5 };
  await expectCheckError(api, [
    'api.json: connectionThrottling.messages.burstLimit: missing',
    'api.json: connectionThrottling.bits: unknown key (expected one of: messages, bytes)',
    'api.json: sourceIpLimits.maxConnections: expected an integer from 1 to 100000000, found 0',
    'api.json: sourceIpLimits.newConnections: expected an object {"rateLimit": N, "burstLimit": N}, found an integer',
  ]);
});

// ---------------------------------------------------------------------------
// Slowloris: connections still sending their head
// ---------------------------------------------------------------------------

/** A TCP connection from localAddress that sends half a head and holds it. */
async function slowHead(port, localAddress = '127.0.0.1') {
  const sock = net.connect({ port, host: '127.0.0.1', localAddress });
  sock.received = Buffer.alloc(0);
  sock.on('data', (d) => { sock.received = Buffer.concat([sock.received, d]); });
  sock.on('error', () => {});
  await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  sock.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n');
  slow.push(sock);
  return sock;
}
const slow = [];

test('item slowloris: heads still being sent are bounded per source address and in total; finished heads free their place', async () => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: makeApi(backend.url), args: ['--max-pending-heads', '8', '--max-pending-heads-per-ip', '5', '--workers', '2'] });
  try {
    // Complete heads do not count once read.
    for (let i = 0; i < 8; i++) (await connect(gw.url)).close();
    const held = [];
    for (let i = 0; i < 5; i++) held.push(await slowHead(gw.port));
    await sleep(200);
    const r = await rawUpgrade(gw, '/', {});
    assert.deepEqual(r, { status: 503, body: '{"message":"Service Unavailable"}' });
    assert.equal(await connectRefused(gw.url), 503);
    await logged(gw, /connection from 127\.0\.0\.1 refused \(503, request \S+\): --max-pending-heads-per-ip reached/);
    // Another address still gets in, up to the total.
    for (let i = 0; i < 3; i++) held.push(await slowHead(gw.port, '127.0.0.2'));
    await sleep(200);
    const other = net.connect({ port: gw.port, host: '127.0.0.1', localAddress: '127.0.0.3' });
    other.on('error', () => {});
    const answer = await new Promise((resolve) => {
      let buf = '';
      other.on('data', (d) => { buf += d; });
      other.on('close', () => resolve(buf));
      other.write(upgradeRequest('/', {}));
    });
    assert.match(answer, /^HTTP\/1\.1 503 /);
    await logged(gw, /connection from 127\.0\.0\.3 refused \(503, request \S+\): --max-pending-heads reached/);
    // A held head that goes away gives its place back.
    held[0].destroy();
    await waitUntil(async () => {
      try { (await connect(gw.url)).close(); return true; } catch { return false; }
    }, 3000, 'a place once a slow head left');
    assert.equal(connects(backend).length, 9);
  } finally {
    for (const s of slow.splice(0)) s.destroy();
  }
});
