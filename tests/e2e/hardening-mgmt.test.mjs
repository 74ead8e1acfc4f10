// Hardening of the management API (issue 9): every request gets an answer
// in bounded time, a stage only reaches its own API's connections, and the
// listener never leaves HTTP/1.1.
import fs from 'node:fs';
import {
  test, assert, startBackend, startGateway, startPair, makeApi, connectWithId, nextMessage,
  pendingMessages, mgmtRequest, postTo, getConn, rawConnect, sleep, withTimeout, WebSocket, rssKiB,
} from './helpers.mjs';

/**
 * Sends raw bytes to the management listener; resolves { status, text,
 * closed } once the server closed the socket or after waitMs.
 */
async function rawMgmt(gw, bytes, { waitMs = 3000, then } = {}) {
  const sock = await rawConnect(gw.mgmtPort);
  sock.write(bytes);
  if (then) await then(sock);
  const closed = await Promise.race([sock.closedPromise.then(() => true), sleep(waitMs).then(() => false)]);
  sock.destroy();
  const text = sock.received.toString('latin1');
  const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
  return { status: m ? Number(m[1]) : null, text, closed };
}

const postHead = (path, headers) => `POST ${path} HTTP/1.1\r\nHost: x\r\n${headers}\r\n`;

test('item 10: a management POST without Content-Length gets 411 and the connection closes', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  const res = await rawMgmt(gw, postHead(`/dev/@connections/${id}`, 'Content-Type: text/plain\r\n'));
  assert.equal(res.status, 411, `answer: ${JSON.stringify(res.text.slice(0, 200))}`);
  assert.ok(res.closed, 'the connection is closed after the 411');
  await sleep(100);
  assert.equal(pendingMessages(ws).length, 0, 'nothing was delivered');
});

test('item 10: a chunked management POST gets 411 (400 with a Content-Length too), then the connection closes', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  const chunked = await rawMgmt(gw, `${postHead(`/dev/@connections/${id}`, 'Transfer-Encoding: chunked\r\n')}5\r\nhello\r\n0\r\n\r\n`);
  assert.equal(chunked.status, 411, `answer: ${JSON.stringify(chunked.text.slice(0, 200))}`);
  assert.ok(chunked.closed, 'closed after the 411');
  // The chunk must not be read as a second request either.
  assert.equal((chunked.text.match(/HTTP\/1\.1 /g) ?? []).length, 1, chunked.text);
  const both = await rawMgmt(gw, `${postHead(`/dev/@connections/${id}`, 'Transfer-Encoding: chunked\r\nContent-Length: 5\r\n')}hello`);
  assert.equal(both.status, 400, `answer: ${JSON.stringify(both.text.slice(0, 200))}`);
  assert.ok(both.closed, 'closed after the 400');
  const bad = await rawMgmt(gw, `${postHead(`/dev/@connections/${id}`, 'Content-Length: 5x\r\n')}hello`);
  assert.equal(bad.status, 400, `answer: ${JSON.stringify(bad.text.slice(0, 200))}`);
  await sleep(100);
  assert.equal(pendingMessages(ws).length, 0, 'nothing was delivered');
  // A well-formed POST still works.
  assert.equal((await postTo(gw, id, 'fine')).status, 200);
  assert.equal((await nextMessage(ws)).data, 'fine');
});

test('item 10: a management body that does not arrive within 10 s gets 408 and the connection closes', { timeout: 25000 }, async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  const t0 = Date.now();
  const res = await rawMgmt(gw, `${postHead(`/dev/@connections/${id}`, 'Content-Length: 10\r\n')}12345`, {
    waitMs: 15000,
    // A byte every 2 s does not extend the deadline.
    then: async (sock) => { for (let i = 0; i < 3; i++) { await sleep(2000); sock.write('6'); } },
  });
  const took = Date.now() - t0;
  assert.equal(res.status, 408, `answer: ${JSON.stringify(res.text.slice(0, 200))}`);
  assert.ok(res.closed, 'closed after the 408');
  assert.ok(took >= 9000 && took < 14000, `answered after ${took} ms`);
  assert.equal(pendingMessages(ws).length, 0, 'nothing was delivered');
  assert.equal((await postTo(gw, id, 'after')).status, 200);
});

test('item 10: a Content-Length over the largest body is refused before the body is read', async () => {
  const { backend, gw } = await startPair();
  const { id } = await connectWithId(gw, backend);
  const res = await rawMgmt(gw, postHead(`/dev/@connections/${id}`, 'Content-Length: 99999999999\r\n'));
  assert.equal(res.status, 413, `answer: ${JSON.stringify(res.text.slice(0, 200))}`);
  assert.ok(res.closed, 'closed after the 413');
});

test('item 21: a stage reaches only its own API\'s connections (403 ForbiddenException otherwise)', async () => {
  const backend = await startBackend();
  const a = makeApi(backend.url, { name: 'a', stage: 'alpha', basePath: '/a' });
  const b = makeApi(backend.url, { name: 'b', stage: 'beta', basePath: '/b' });
  const gw = await startGateway({ routes: [a, b] });
  const ca = await connectWithId(gw, backend, {}, '/a');
  for (const [method, body] of [['POST', 'through beta'], ['GET', undefined], ['DELETE', undefined]]) {
    for (const stage of ['beta', 'gamma']) {
      const res = await mgmtRequest(gw, method, `/${stage}/@connections/${ca.id}`, body);
      assert.equal(res.status, 403, `${method} via ${stage}`);
      assert.equal(res.headers['x-amzn-errortype']?.split(':')[0], 'ForbiddenException', `${method} via ${stage}`);
      assert.deepEqual(res.json(), { message: 'Forbidden' });
      assert.ok(res.headers['x-amzn-requestid'], 'x-amzn-RequestId');
    }
  }
  // Untouched: nothing delivered, still open.
  await sleep(100);
  assert.equal(pendingMessages(ca.ws).length, 0, 'nothing was delivered through another stage');
  assert.equal((await mgmtRequest(gw, 'GET', `/alpha/@connections/${ca.id}`)).status, 200);
  assert.equal((await mgmtRequest(gw, 'POST', `/alpha/@connections/${ca.id}`, 'own stage')).status, 200);
  assert.equal((await nextMessage(ca.ws)).data, 'own stage');
  // An unknown stage is refused even for an unknown ID; a known one gives 410.
  assert.equal((await mgmtRequest(gw, 'GET', '/gamma/@connections/AAAAAAAAAAAAAAAA')).status, 403);
  assert.equal((await mgmtRequest(gw, 'GET', '/beta/@connections/AAAAAAAAAAAAAAAA')).status, 410);
});

test('item 22: a WebSocket upgrade on the management listener is refused', async () => {
  const { backend, gw } = await startPair();
  const { id } = await connectWithId(gw, backend);
  const ws = new WebSocket(`ws://127.0.0.1:${gw.mgmtPort}/dev/@connections/${id}`);
  const outcome = await withTimeout(new Promise((resolve) => {
    ws.once('open', () => resolve('open'));
    ws.once('unexpected-response', (req, res) => { resolve(`http ${res.statusCode}`); req.destroy(); });
    ws.once('error', (e) => resolve(`error ${e.message}`));
  }), 5000, 'the upgrade outcome');
  ws.terminate();
  assert.notEqual(outcome, 'open');
  assert.ok(/^http 400|^error/.test(outcome), outcome);
  const raw = await rawMgmt(gw, `GET /dev/@connections/${id} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
    + 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
  assert.notEqual(raw.status, 101, raw.text);
  assert.equal((await getConn(gw, id)).status, 200, 'the listener still serves');
});

test('item 22: an h2c upgrade on the management listener is refused', async () => {
  const { backend, gw } = await startPair();
  const { id } = await connectWithId(gw, backend);
  const res = await rawMgmt(gw, `GET /dev/@connections/${id} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n`
    + 'Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n');
  assert.notEqual(res.status, 101, res.text);
  assert.ok(res.status === 400 || res.status === null, `answer: ${JSON.stringify(res.text.slice(0, 200))}`);
  // Prior knowledge (the HTTP/2 preface) is not HTTP/2 either.
  const pri = await rawMgmt(gw, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', { waitMs: 2000 });
  assert.ok(!/^\x00/.test(pri.text), 'no HTTP/2 frames in answer to the preface');
  assert.equal((await getConn(gw, id)).status, 200, 'the listener still serves');
});

test('management ids: NUL, slash, odd lengths and encodings never reach another connection', async () => {
  const { backend, gw } = await startPair(undefined, { limits: { maxMessageBytes: 1000 } });
  const { ws, id } = await connectWithId(gw, backend);
  const wrong = [`${id}%00`, `${id}%00junk`, `${id.slice(0, 8)}%00${id.slice(8)}`, `${id}%2F`, `${id}x`,
    id.slice(0, 15), 'A'.repeat(127), 'A'.repeat(128), 'A'.repeat(4000), `${encodeURIComponent(id)}%`];
  for (const p of wrong) {
    const res = await mgmtRequest(gw, 'POST', `/dev/@connections/${p}`, 'wrong').catch((e) => ({ status: e.message }));
    // libwebsockets hangs up on a %00 in the path; anything else is answered.
    const ok = [400, 403, 404, 410, 414].includes(res.status) || (p.includes('%00') && res.status === 'socket hang up');
    assert.ok(ok, `${p.slice(0, 40)}: ${res.status}`);
  }
  await sleep(100);
  assert.equal(pendingMessages(ws).length, 0, 'nothing reached the connection');
  // Bodies of exactly the limit pass; one byte more does not.
  assert.equal((await postTo(gw, id, 'm'.repeat(1000))).status, 200);
  assert.equal((await nextMessage(ws)).data.length, 1000);
  assert.equal((await postTo(gw, id, 'm'.repeat(1001))).status, 413);
  assert.equal((await postTo(gw, id, 'ok')).status, 200);
  assert.equal((await nextMessage(ws)).data, 'ok');
});

test('a POST refused for its path has its body dropped, never run as a second request', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  const inner = `POST /dev/@connections/${id} HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\nsmuggled`;
  const res = await rawMgmt(gw, `${postHead('/nowhere', `Content-Length: ${inner.length}\r\n`)}${inner}`);
  assert.equal(res.status, 403, res.text);
  assert.equal((res.text.match(/HTTP\/1\.1 /g) ?? []).length, 1, `one answer only:\n${res.text}`);
  await sleep(200);
  assert.equal(pendingMessages(ws).length, 0, 'the body was run as a request');
});

/** CPU time (user + system, in ticks of 10 ms) the process has used. */
function cpuTicks(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]);
}

test('pipelined management POSTs: no wrong bytes delivered, no busy loop, the gateway still stops', { timeout: 30000 }, async () => {
  // $connect answers after 1.5 s, so that a POST waits on it.
  const { backend, gw } = await startPair(async (e) => {
    if (e.requestContext.eventType === 'CONNECT' && e.headers?.['X-Slow']) await sleep(1500);
    return { statusCode: 200 };
  });
  const { ws, id } = await connectWithId(gw, backend);
  const post = (to, b) => `POST /dev/@connections/${to} HTTP/1.1\r\nHost: x\r\nContent-Length: ${b.length}\r\n\r\n${b}`;
  // Pipelining is not served: the first answer (when known at once) then a
  // close; never the second request's head delivered as a message.
  for (let i = 0; i < 6; i++) {
    const res = await rawMgmt(gw, post(id, `first-${i}`) + post(id, `second-${i}`), { waitMs: 2000 });
    assert.ok(res.closed, `closed:\n${res.text}`);
    assert.ok(res.status === 200 || res.status === null, res.text);
  }
  // Behind requests without a body.
  for (const head of [`GET /dev/@connections/${id}`, `DELETE /dev/@connections/nope`, `POST /dev/@connections/${id}`]) {
    const first = `${head} HTTP/1.1\r\nHost: x\r\n${head.startsWith('POST') ? 'Content-Length: 0\r\n' : ''}\r\n`;
    const res = await rawMgmt(gw, first + post(id, 'second-9'), { waitMs: 2000 });
    assert.ok(res.closed && res.status !== null, `${head}: answered and closed:\n${res.text}`);
  }
  await sleep(300);
  for (const m of pendingMessages(ws)) assert.match(m.data, /^((first|second)-\d)?$/, 'only bodies are delivered');
  // Pipelined behind a POST parked on a pending $connect.
  const slow = new WebSocket(`${gw.url}/`, { headers: { 'X-Slow': '1' } });
  slow.on('error', () => {});
  const ev = await backend.waitFor((e) => e.requestContext?.eventType === 'CONNECT' && e.headers?.['X-Slow']);
  const sid = ev.requestContext.connectionId;
  const before = cpuTicks(gw.proc.pid);
  const parked = await rawMgmt(gw, post(sid, 'x') + post(sid, 'y'), { waitMs: 1000 });
  const used = cpuTicks(gw.proc.pid) - before;
  assert.ok(parked.closed, 'closed');
  assert.ok(used < 30, `the gateway used ${used * 10} ms of CPU while a pipelined POST waited`);
  slow.terminate();
  // Unpipelined requests on one connection are still served.
  assert.equal((await postTo(gw, id, 'single')).status, 200);
});

test('pipelined behind a bodyless POST parked on a pending $connect: no busy loop, answered, then closed', { timeout: 30000 }, async () => {
  const { backend, gw } = await startPair(async (e) => {
    if (e.requestContext.eventType === 'CONNECT' && e.headers?.['X-Slow']) await sleep(1500);
    return { statusCode: 200 };
  });
  const slow = new WebSocket(`${gw.url}/`, { headers: { 'X-Slow': '1' } });
  slow.on('error', () => {});
  const ev = await backend.waitFor((e) => e.requestContext?.eventType === 'CONNECT' && e.headers?.['X-Slow']);
  const sid = ev.requestContext.connectionId;
  const post = (b) => `POST /dev/@connections/${sid} HTTP/1.1\r\nHost: x\r\nContent-Length: ${b.length}\r\n\r\n${b}`;
  const before = cpuTicks(gw.proc.pid);
  // Read by the gateway in one go: the second request waits behind the
  // first, whose answer waits for the $connect (1.5 s).
  const res = await rawMgmt(gw, post('') + post('y'), { waitMs: 5000 });
  const used = cpuTicks(gw.proc.pid) - before;
  assert.ok(res.closed && res.status === 200, `answered and closed:\n${res.text}`);
  assert.equal((res.text.match(/HTTP\/1\.1 /g) ?? []).length, 1, res.text);
  assert.ok(used < 30, `the gateway used ${used * 10} ms of CPU while a pipelined request waited`);
  slow.terminate();
});

test('sequential management POSTs share one keep-alive connection', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  const sock = await rawConnect(gw.mgmtPort);
  for (let i = 0; i < 10; i++) {
    const before = sock.received.length;
    const body = `keep-${i}`;
    sock.write(`POST /dev/@connections/${id} HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    await withTimeout((async () => { while (!sock.received.subarray(before).includes('HTTP/1.1 200')) await sleep(5); })(), 3000, `answer ${i}`);
    await sleep(20);
  }
  assert.ok(!sock.destroyed && !/connection: close/i.test(sock.received.toString()), sock.received.toString());
  sock.destroy();
  const got = [];
  while (got.length < 10) got.push((await nextMessage(ws)).data);
  assert.deepEqual(got, [...Array(10).keys()].map((i) => `keep-${i}`));
});

test('management bodies over the API limit are dropped as they arrive, not held (413 at the end)', { timeout: 30000 }, async () => {
  const { backend, gw } = await startPair();
  const { id } = await connectWithId(gw, backend);
  await sleep(200);
  const before = rssKiB(gw.proc.pid);
  const size = 8 << 20;
  const socks = [];
  for (let i = 0; i < 8; i++) {
    const s = await rawConnect(gw.mgmtPort);
    s.write(postHead(`/dev/@connections/${id}`, `Content-Length: ${size + 1}\r\n`));
    s.write(Buffer.alloc(size, 0x61));
    socks.push(s);
  }
  await sleep(1500);
  const grown = rssKiB(gw.proc.pid) - before;
  for (const s of socks) s.write('a');
  for (const s of socks) {
    await withTimeout((async () => { while (!s.received.includes('\r\n\r\n')) await sleep(10); })(), 8000, 'the 413');
    assert.match(s.received.toString(), /^HTTP\/1\.1 413/);
    s.destroy();
  }
  assert.ok(grown < 16 * 1024, `RSS grew by ${grown} KiB while 8 clients sent 8 MB bodies`);
});
