// Issue 9, request parsing: strict field syntax and framing (item 14), the
// cost of a head sent a byte at a time (item 11), and upgrade heads that
// libwebsockets 4.1 would drop after $connect approved them (item 18).
// Raw sockets against the real gateway, a real AWS_PROXY backend and a real
// HTTP_PROXY backend.
import { readFileSync } from 'node:fs';
import {
  test, assert, startBackend, startHttpBackend, startGateway, makeApi, rawConnect, upgradeRequest,
  withTimeout, sleep,
} from './helpers.mjs';

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

/** A WebSocket API at / plus REST routes: /p/{proxy+} to an HTTP_PROXY backend, /m a MOCK. */
async function startParseGateway() {
  const backend = await startBackend();
  const hb = await startHttpBackend((r) => ({ status: 200, body: `proxied ${r.path}` }));
  const api = makeApi(backend.url);
  api.integrations.p = { type: 'HTTP_PROXY', uri: `${hb.origin}/{proxy}`, timeoutMs: 5000 };
  api.integrations.m = { type: 'MOCK', statusCode: 200, body: '{"m":1}' };
  api.routes['ANY /p/{proxy+}'] = { integration: 'p' };
  api.routes['ANY /m'] = { integration: 'm' };
  const gw = await startGateway({ routes: api });
  return { backend, hb, gw };
}

/** Sends raw bytes on a fresh connection; resolves the status code of the answer (0 if none) and its text. */
async function rawExchange(port, bytes, { waitMs = 3000 } = {}) {
  const sock = await rawConnect(port);
  sock.write(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'latin1'));
  // Until closed, or a whole answer head (a 101 leaves the socket open).
  const deadline = Date.now() + waitMs;
  while (!sock.destroyed && Date.now() < deadline && !sock.received.includes('\r\n\r\n')) await sleep(10);
  await Promise.race([sock.closedPromise, sleep(20)]);
  const text = sock.received.toString('latin1');
  sock.destroy();
  const m = text.match(/^HTTP\/1\.[01] (\d{3}) /);
  return { status: m ? Number(m[1]) : 0, text };
}

/** An upgrade head with these extra raw lines. */
const upgradeWith = (lines, url = '/') => upgradeRequest(url).replace(/\r\n\r\n$/, `\r\n${lines.map((l) => `${l}\r\n`).join('')}\r\n`);

// ---------------------------------------------------------------------------
// Item 14
// ---------------------------------------------------------------------------

test('item 14: "Host : evil" and "Transfer-Encoding : chunked" get 400 on the gateway listener, REST and upgrade alike', async () => {
  const { backend, hb, gw } = await startParseGateway();
  const smuggled = 'GET /p/admin HTTP/1.1\r\nHost: x\r\n\r\n';
  const cases = {
    'REST, Host : evil': 'GET /p/a HTTP/1.1\r\nHost : evil\r\n\r\n',
    'REST, Transfer-Encoding : chunked': `POST /p/a HTTP/1.1\r\nHost: x\r\nContent-Length: ${5 + smuggled.length}\r\n`
      + `Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n${smuggled}`,
    'upgrade, Host : evil': upgradeRequest('/').replace('Host: 127.0.0.1', 'Host : evil'),
    'upgrade, Transfer-Encoding : chunked': upgradeWith(['Transfer-Encoding : chunked']),
  };
  for (const [what, req] of Object.entries(cases)) {
    const res = await rawExchange(gw.port, req);
    assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.text.slice(0, 200))}`);
  }
  assert.equal(hb.requests.length, 0, 'nothing reached the HTTP_PROXY backend');
  assert.equal(backend.eventsOf('CONNECT').length, 0, 'no $connect');
});

test('item 14: the same on a keep-alive REST connection, where the request skips the head peek', async () => {
  const { hb, gw } = await startParseGateway();
  for (const bad of ['GET /p/a HTTP/1.1\r\nHost : evil\r\n\r\n',
    'POST /p/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc']) {
    const sock = await rawConnect(gw.port);
    sock.write('GET /m HTTP/1.1\r\nHost: x\r\n\r\n');
    await withTimeout((async () => { while (!sock.received.includes('{"m":1}')) await sleep(10); })(), 5000, 'the first answer');
    sock.received = Buffer.alloc(0);
    sock.write(bad);
    await withTimeout(sock.closedPromise, 5000, 'the gateway to close after 400');
    assert.match(sock.received.toString('latin1'), /^HTTP\/1\.1 400 /, JSON.stringify(bad));
  }
  assert.equal(hb.requests.length, 0, 'nothing reached the HTTP_PROXY backend');
});

test('item 14: bad field syntax and ambiguous framing get 400 and never reach a backend', async () => {
  const { backend, hb, gw } = await startParseGateway();
  const bad = {
    'space in a name': 'GET /p/a HTTP/1.1\r\nHost: x\r\nX Y: 1\r\n\r\n',
    'empty name': 'GET /p/a HTTP/1.1\r\nHost: x\r\n: 1\r\n\r\n',
    'non-ASCII name': 'GET /p/a HTTP/1.1\r\nHost: x\r\nX-\xe9: 1\r\n\r\n',
    'vertical tab in a value': 'GET /p/a HTTP/1.1\r\nHost: x\r\nX-A: a\x0bb\r\n\r\n',
    'bare CR in a value': 'GET /p/a HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n',
    'obs-fold': 'GET /p/a HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n',
    'Content-Length twice, different': 'POST /p/a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
    'Content-Length and Transfer-Encoding': 'POST /p/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    'Transfer-Encoding not ending in chunked': 'POST /p/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n',
    'chunked twice': 'POST /p/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    'two Hosts': 'GET /p/a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n',
    'no Host in HTTP/1.1': 'GET /p/a HTTP/1.1\r\n\r\n',
    'tab in the target': 'GET /p/a\tb HTTP/1.1\r\nHost: x\r\n\r\n',
    'HTTP/0.9': 'GET /p/a\r\n\r\n',
    'HTTP/2 preface': 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
  };
  for (const [what, req] of Object.entries(bad)) {
    const res = await rawExchange(gw.port, req);
    assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.text.slice(0, 200))}`);
  }
  assert.equal(hb.requests.length, 0, 'nothing reached the HTTP_PROXY backend');
  assert.equal(backend.events.length, 0, 'nothing reached the AWS_PROXY backend');
  // Still serving, tabs and UTF-8 in values included.
  const ok = await rawExchange(gw.port, 'GET /p/ok HTTP/1.1\r\nHost: x\r\nX-A:\tcaf\xc3\xa9\t\r\nConnection: close\r\n\r\n');
  assert.equal(ok.status, 200, ok.text);
  assert.equal(hb.requests[0].headers['x-a'], Buffer.from('caf\xc3\xa9', 'latin1').toString('latin1'));
});

test('item 14, trailers: fields after a chunked body never reach a backend as headers; CONNECT is refused', async () => {
  const { hb, gw } = await startParseGateway();
  const res = await rawExchange(gw.port, 'POST /p/t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n'
    + '3\r\nabc\r\n0\r\nX-Forged: 1\r\nX-Wsgate-Event-Type: MESSAGE\r\n\r\n');
  assert.equal(res.status, 200, res.text);
  assert.equal(hb.requests.length, 1);
  assert.equal(hb.requests[0].text, 'abc');
  assert.equal(hb.requests[0].headers['x-forged'], undefined, 'a trailer became a header');
  // A CONNECT's body was parsed as a second request.
  const smuggled = 'GET /p/admin HTTP/1.1\r\nHost: x\r\n\r\n';
  const c = await rawExchange(gw.port, `CONNECT /p/c HTTP/1.1\r\nHost: x\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`);
  assert.equal(c.status, 400, c.text);
  await sleep(100);
  assert.equal(hb.requests.length, 1, 'nothing more reached the backend');
});

// ---------------------------------------------------------------------------
// Item 11
// ---------------------------------------------------------------------------

/** User + system CPU seconds of a process (/proc/PID/stat, clock ticks of 10 ms). */
function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

function userSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[11]) / 100;
}

/** Sends `head` one byte per TCP segment; resolves the answer's status and the gateway CPU it cost. */
async function trickle(gw, head, gapMicros = 50) {
  const sock = await rawConnect(gw.port);
  sock.setNoDelay(true);
  const before = cpuSeconds(gw.proc.pid);
  const beforeUser = userSeconds(gw.proc.pid);
  const started = Date.now();
  // Each byte its own segment, spaced so that the gateway reads them one by
  // one: the send happens inside write() when nothing is queued, then a
  // short spin (a timer would take a millisecond per byte).
  for (let i = 0; i < head.length; i++) {
    sock.write(head.subarray(i, i + 1));
    const until = process.hrtime.bigint() + BigInt(gapMicros * 1000);
    while (process.hrtime.bigint() < until) { /* spin */ }
    if (i % 1000 === 999) await new Promise((r) => setImmediate(r));
    if (Date.now() - started > 20000) throw new Error(`sent only ${i} bytes in 20 s`);
  }
  await withTimeout((async () => { while (!/^HTTP\/1\.1 \d{3} /.test(sock.received.toString('latin1'))) await sleep(10); })(),
    5000, 'an answer to the trickled head');
  await sleep(50);
  const cpu = cpuSeconds(gw.proc.pid) - before;
  const user = userSeconds(gw.proc.pid) - beforeUser;
  const status = Number(sock.received.toString('latin1').slice(9, 12));
  sock.destroy();
  return { status, cpu, user, seconds: (Date.now() - started) / 1000 };
}

function bigHead(firstLines) {
  let head = `${firstLines.join('\r\n')}\r\n`;
  for (let i = 0; head.length < 15000; i++) head += `X-Pad-${i}: ${'p'.repeat(180)}\r\n`;
  return Buffer.from(`${head}\r\n`);
}

const restHead = () => bigHead(['GET /m HTTP/1.1', 'Host: x']);
// An upgrade to a path no API serves: answered by the gateway itself once
// the whole head is in, whatever libwebsockets' header space.
const upgradeHead = () => bigHead(['GET /nowhere HTTP/1.1', 'Host: x', 'Upgrade: websocket', 'Connection: Upgrade',
  `Sec-WebSocket-Key: ${KEY}`, 'Sec-WebSocket-Version: 13']);
const cpuNote = (r) => `the gateway spent ${r.cpu.toFixed(2)} s of CPU (${r.user.toFixed(2)} s user) on one head sent in ${r.seconds.toFixed(1)} s`;

test('item 11: a 15 KB head sent one byte per segment is answered at a low CPU cost (REST and upgrade)', { timeout: 60000 }, async () => {
  const { gw } = await startParseGateway();
  const rest = await trickle(gw, restHead());
  assert.equal(rest.status, 200);
  const up = await trickle(gw, upgradeHead());
  assert.ok(up.status >= 400 && up.status < 500, `status ${up.status}`);
  // Re-parsing from the start on every byte cost 0.26 s for one such head.
  for (const [what, r] of Object.entries({ rest, up })) assert.ok(r.cpu < 0.2, `${what}: ${cpuNote(r)}`);
});

// What is left is the kernel's: each MSG_PEEK copies the whole head again
// (0.09 s of system time for one head, against 0.01 s with SO_PEEK_OFF, on
// the ASan build).
test('item 11: the head peek reads each byte once (REST and upgrade)',
  { timeout: 60000 }, async () => {
    const { gw } = await startParseGateway();
    for (const [what, head] of Object.entries({ rest: restHead(), up: upgradeHead() })) {
      const r = await trickle(gw, head);
      assert.ok(r.status >= 200 && r.status < 500, `${what}: status ${r.status}`);
      assert.ok(r.cpu < 0.06, `${what}: ${cpuNote(r)}`);
    }
  });

// ---------------------------------------------------------------------------
// Item 18
// ---------------------------------------------------------------------------

/** Sends each upgrade head; asserts its status and that the backend saw no $connect for any. */
async function assertRefusedBeforeConnect(cases) {
  const { backend, gw } = await startParseGateway();
  const problems = [];
  for (const [what, [req, want]] of Object.entries(cases)) {
    const res = await rawExchange(gw.port, req, { waitMs: 1500 });
    if (res.status !== want) problems.push(`${what}: ${res.status || 'no answer'}, expected ${want}`);
  }
  assert.deepEqual(problems, []);
  assert.equal(backend.eventsOf('CONNECT').length, 0, 'no $connect');
}

test('item 18: obs-fold and a missing Host are refused before $connect', async () => {
  await assertRefusedBeforeConnect({
    'obs-fold': [upgradeWith(['X-A: one', ' two']), 400],
    'no Host': [upgradeRequest('/').replace('Host: 127.0.0.1\r\n', ''), 400],
    'Host : evil': [upgradeRequest('/').replace('Host:', 'Host :'), 400],
  });
});

// Each of these was approved by the gateway ($connect called) and then
// dropped by libwebsockets 4.1.6 with a bare TCP close or a 403: a "ghost".
// gw_req_check_websocket() (httpreq.c), called by conn.c, refuses them.
test('item 18: heads libwebsockets 4.1 would drop are refused before $connect, 400 or 431', async () => {
  await assertRefusedBeforeConnect({
    '%00 in the query': [upgradeRequest('/?a=%00'), 400],
    'a bad escape in the query': [upgradeRequest('/?a=%zz'), 400],
    'a 130-byte Sec-WebSocket-Key': [upgradeRequest('/').replace(KEY, 'A'.repeat(130)), 400],
    'a Sec-WebSocket-Key that is not 16 bytes': [upgradeRequest('/').replace(KEY, 'abc'), 400],
    'a malformed Connection': [upgradeRequest('/').replace('Connection: Upgrade', 'Connection: ,, Upgrade ,'), 400],
    'a Connection over 126 bytes': [upgradeRequest('/').replace('Connection: Upgrade', `Connection: keep-alive, ${'x'.repeat(130)}, Upgrade`), 400],
    'Upgrade: websocket, h2c': [upgradeRequest('/').replace('Upgrade: websocket', 'Upgrade: websocket, h2c'), 400],
    'an empty Host': [upgradeRequest('/').replace('Host: 127.0.0.1', 'Host:'), 400],
    'a header name lws mis-parses (X-A)': [upgradeWith(['X-A: 1']), 400],
    'a 63-byte subprotocol name': [upgradeWith([`Sec-WebSocket-Protocol: ${'p'.repeat(63)}`]), 400],
    'a 255-byte Sec-WebSocket-Extensions': [upgradeWith([`Sec-WebSocket-Extensions: ${'x'.repeat(255)}`]), 400],
    'a tab before websocket': [upgradeRequest('/').replace('Upgrade: websocket', 'Upgrade:\twebsocket'), 400],
    'a tab in Sec-WebSocket-Protocol': [upgradeWith(['Sec-WebSocket-Protocol: chat\t, x']), 400],
    'Sec-WebSocket-Version 8': [upgradeRequest('/').replace('Version: 13', 'Version: 8'), 400],
    '88 URI arguments': [upgradeRequest(`/?${Array.from({ length: 88 }, (_, i) => `a${i}=1`).join('&')}`), 431],
    '88 Accept headers': [upgradeWith(Array.from({ length: 88 }, () => 'Accept: x')), 431],
  });
});

test('item 18: a 12 KB cookie connects: libwebsockets has header space for the whole head', async () => {
  const { backend, gw } = await startParseGateway();
  const res = await rawExchange(gw.port, upgradeWith([`Cookie: session=${'c'.repeat(12000)}`]), { waitMs: 1500 });
  assert.equal(res.status, 101, res.text.slice(0, 200));
  assert.equal(backend.eventsOf('CONNECT').length, 1);
});

test('item 18: what libwebsockets accepts still connects (browser-like heads)', async () => {
  const { backend, gw } = await startParseGateway();
  const heads = {
    plain: upgradeRequest('/'),
    'browser headers': upgradeWith([
      'Origin: https://app.example.com', 'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits',
      'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36', 'Accept-Encoding: gzip, deflate, br',
      'Accept-Language: en-GB,en;q=0.9', 'Cache-Control: no-cache', 'Pragma: no-cache',
      `Cookie: a=${'b'.repeat(2000)}; c=d`, 'X-Requested-With: test']),
    'query and list Connection': upgradeRequest('/?token=abc&x=%41').replace('Connection: Upgrade', 'Connection: keep-alive, Upgrade'),
    'case': upgradeRequest('/').replace('Upgrade: websocket', 'Upgrade: WebSocket'),
  };
  for (const [what, req] of Object.entries(heads)) {
    const res = await rawExchange(gw.port, req, { waitMs: 1500 });
    assert.equal(res.status, 101, `${what}: ${res.text.slice(0, 200)}`);
  }
  assert.equal(backend.eventsOf('CONNECT').length, Object.keys(heads).length);
});
