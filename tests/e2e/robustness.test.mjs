// Robustness: malformed input on both listeners and failing backends must
// never take the gateway down or disturb other clients.
import {
  test, assert, startBackend, startGateway, startPair, makeApi, connect, connectWithId, nextMessage,
  waitClose, getConn, rawConnect, serverFrames, waitUntil, upgradeRequest, unusedUrl, sleep, withTimeout, pingPong,
  DESTROY, GARBAGE, HANG,
} from './helpers.mjs';

/** An existing client still echoes and a new one can connect and echo. */
async function assertHealthy(gw, backend, existing) {
  existing.ws.send('still alive?');
  assert.equal((await nextMessage(existing.ws)).data, 'still alive?');
  const fresh = await connectWithId(gw, backend);
  fresh.ws.send('new one');
  assert.equal((await nextMessage(fresh.ws)).data, 'new one');
}

/** The management listener still answers. */
async function assertMgmtHealthy(gw, existing) {
  const res = await getConn(gw, existing.id);
  assert.equal(res.status, 200, `GET /@connections/${existing.id} after the garbage`);
}

/** Sends `payload` on a raw socket, optionally half-closes, and waits for the server's reaction (bounded). */
async function poke(port, payload, { end = true, waitMs = 2000 } = {}) {
  const sock = await rawConnect(port);
  if (payload.length) sock.write(payload);
  if (end) sock.end();
  await Promise.race([sock.closedPromise, sleep(waitMs)]);
  return sock;
}

const GARBAGE_INPUTS = {
  'random bytes': Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) & 0xff)),
  'NUL bytes': Buffer.alloc(1024),
  'a half HTTP request': Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgr'),
  'an upgrade without Sec-WebSocket-Key': Buffer.from('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n'),
  'an upgrade with a bad version': Buffer.from('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 7\r\n\r\n'),
  'a plain GET': Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
  'a huge header': Buffer.from(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`),
  'a bogus method and version': Buffer.from('BREW /pot HTCPCP/9.9\r\n\r\n'),
  'a negative content-length': Buffer.from('POST /@connections/abc HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nhello'),
  'a huge content-length': Buffer.from('POST /@connections/abc HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\nhello'),
  'bad chunked encoding': Buffer.from('POST /@connections/abc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'),
};

for (const listener of ['gateway', 'management']) {
  test(`garbage on the ${listener} listener does not disturb other clients`, { timeout: 60000 }, async () => {
    const { backend, gw } = await startPair();
    const existing = await connectWithId(gw, backend);
    const port = listener === 'gateway' ? gw.port : gw.mgmtPort;
    for (const [name, payload] of Object.entries(GARBAGE_INPUTS)) {
      await poke(port, payload);
      // The gateway is still alive after each one.
      existing.ws.send(`after ${name}`);
      assert.equal((await nextMessage(existing.ws)).data, `after ${name}`, `after ${name}`);
    }
    await assertHealthy(gw, backend, existing);
    if (listener === 'management') await assertMgmtHealthy(gw, existing);
  });

  test(`half-open and idle raw sockets on the ${listener} listener do not block others`, async () => {
    const { backend, gw } = await startPair();
    const existing = await connectWithId(gw, backend);
    const port = listener === 'gateway' ? gw.port : gw.mgmtPort;
    // Sockets that send part of a request and then stay silent.
    const stalled = [];
    for (let i = 0; i < 20; i++) {
      const s = await rawConnect(port);
      s.write(i % 2 ? 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n' : '');
      stalled.push(s);
    }
    await assertHealthy(gw, backend, existing);
    if (listener === 'management') await assertMgmtHealthy(gw, existing);
    for (const s of stalled) s.destroy();
  });
}

test('an invalid upgrade gets an HTTP error, not a crash', async () => {
  const { backend, gw } = await startPair();
  const existing = await connectWithId(gw, backend);
  const sock = await poke(gw.port, GARBAGE_INPUTS['an upgrade without Sec-WebSocket-Key'], { end: false });
  const head = sock.received.toString('latin1');
  assert.ok(head === '' || /^HTTP\/1\.[01] [45]\d\d/.test(head), `response: ${JSON.stringify(head.slice(0, 80))}`);
  assert.doesNotMatch(head, /^HTTP\/1\.[01] 101/);
  sock.destroy();
  await assertHealthy(gw, backend, existing);
});

test('a valid raw upgrade gets 101 and the accept key', async () => {
  const { backend, gw } = await startPair();
  const sock = await rawConnect(gw.port);
  sock.write(upgradeRequest('/'));
  await withTimeout((async () => { while (!sock.received.includes('\r\n\r\n')) await sleep(10); })(), 5000, 'the 101 response');
  const head = sock.received.toString('latin1');
  assert.match(head, /^HTTP\/1\.1 101/);
  assert.match(head, /sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/i);
  sock.destroy();
  await backend.waitForEvent('DISCONNECT');
});

// Not listed: an unmasked client frame and a header announcing a huge
// length without payload. libwebsockets 4.1 (Debian 12) accepts the first and
// reports nothing for the second until payload arrives (then 1009, tested in
// messages), so the gateway cannot see either; the README lists both gaps.
test('invalid WebSocket frames close that client only', async () => {
  const { backend, gw } = await startPair();
  const existing = await connectWithId(gw, backend);
  const frames = {
    'a reserved opcode': Buffer.from([0x83, 0x80, 1, 2, 3, 4]),
    'RSV bits without an extension': Buffer.from([0xf1, 0x80, 1, 2, 3, 4]),
    'a fragmented control frame': Buffer.from([0x09, 0x80, 1, 2, 3, 4]),
    'invalid UTF-8 in a text frame': (() => {
      const mask = [1, 2, 3, 4];
      const payload = [0xc3, 0x28];
      return Buffer.from([0x81, 0x80 | payload.length, ...mask, ...payload.map((b, i) => b ^ mask[i % 4])]);
    })(),
  };
  const notClosed = [];
  for (const [name, frame] of Object.entries(frames)) {
    const sock = await rawConnect(gw.port);
    sock.write(upgradeRequest('/'));
    await withTimeout((async () => { while (!sock.received.includes('\r\n\r\n')) await sleep(10); })(), 5000, `101 before ${name}`);
    sock.write(frame);
    // RFC 6455: the server must fail the connection: a close frame or the
    // TCP connection closed.
    const closed = await waitUntil(
      () => sock.destroyed || sock.readableEnded || serverFrames(sock.received).some((f) => f.opcode === 0x8),
      2000,
    ).then(() => true, () => false);
    if (!closed) notClosed.push(name);
    sock.destroy();
    existing.ws.send(`after ${name}`);
    assert.equal((await nextMessage(existing.ws)).data, `after ${name}`);
  }
  await assertHealthy(gw, backend, existing);
  assert.deepEqual(notClosed, [], 'the gateway closes a client that sends an invalid frame');
});

test('a backend that drops the connection on a message leaves the client open', async () => {
  const { backend, gw } = await startPair((ev) => {
    if (ev.requestContext.eventType === 'MESSAGE' && ev.body === 'boom') return DESTROY;
    if (ev.requestContext.eventType === 'MESSAGE') return { statusCode: 200, body: `ok ${ev.body}` };
    return { statusCode: 200 };
  });
  const { ws, id } = await connectWithId(gw, backend);
  ws.send('boom');
  await backend.waitFor((e) => e.body === 'boom');
  await sleep(300);
  assert.equal(ws.readyState, ws.OPEN);
  ws.send('next');
  // An error frame may come first (AWS sends one); the echo must follow.
  let m;
  do m = await nextMessage(ws); while (m.data !== 'ok next');
  await pingPong(ws);
  assert.ok(id);
});

test('a backend that answers garbage or times out on a message leaves the client open', async () => {
  const backend = await startBackend((ev) => {
    if (ev.body === 'garbage') return GARBAGE;
    if (ev.body === 'hang') return HANG;
    if (ev.requestContext?.eventType === 'MESSAGE') return { statusCode: 200, body: `ok ${ev.body}` };
    return { statusCode: 200 };
  });
  const gw = await startGateway({ routes: makeApi(backend.url, { integration: { timeoutMs: 300 } }) });
  const { ws } = await connectWithId(gw, backend);
  ws.send('garbage');
  ws.send('hang');
  await backend.waitFor((e) => e.body === 'hang');
  await sleep(600);
  assert.equal(ws.readyState, ws.OPEN);
  ws.send('fine');
  let m;
  do m = await nextMessage(ws); while (m.data !== 'ok fine');
});

test('a backend that is down for messages leaves the client open', async () => {
  const up = await startBackend((ev) => ({ statusCode: 200, body: `ok ${ev.body}` }));
  const api = makeApi(up.url);
  api.integrations.down = { type: 'AWS_PROXY', uri: await unusedUrl(), timeoutMs: 2000 };
  api.routes.$default = { integration: 'down', routeResponse: true };
  const gw = await startGateway({ routes: api });
  const { ws, id } = await connectWithId(gw, up);
  for (let i = 0; i < 5; i++) ws.send(`into the void ${i}`);
  await sleep(500);
  assert.equal(ws.readyState, ws.OPEN);
  await pingPong(ws);
  ws.close(4000, 'done');
  const ev = await up.waitForEvent('DISCONNECT', id);
  assert.equal(ev.requestContext.disconnectStatusCode, 4000);
});

test('a backend that goes away and comes back on the same port is used again', async () => {
  const first = await startBackend((ev) => ({ statusCode: 200, body: `first ${ev.body ?? ''}` }));
  const port = first.port;
  const gw = await startGateway({ routes: makeApi(first.url) });
  const { ws } = await connectWithId(gw, first);
  ws.send('a');
  assert.equal((await nextMessage(ws)).data, 'first a');
  await first.close();
  ws.send('b'); // goes nowhere
  await sleep(300);
  assert.equal(ws.readyState, ws.OPEN);
  // Bring a backend back on the same port.
  const http = await import('node:http');
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const ev = JSON.parse(body);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ statusCode: 200, body: `second ${ev.body ?? ''}` }));
    });
  });
  await new Promise((r) => srv.listen(port, '127.0.0.1', r));
  try {
    ws.send('c');
    let m;
    do m = await nextMessage(ws); while (m.data !== 'second c');
  } finally {
    srv.closeAllConnections();
    await new Promise((r) => srv.close(r));
  }
});

test('many clients connecting and leaving abruptly leave the gateway healthy', { timeout: 60000 }, async () => {
  const { backend, gw } = await startPair();
  const existing = await connectWithId(gw, backend);
  for (let round = 0; round < 5; round++) {
    const batch = await Promise.all(Array.from({ length: 20 }, () => connect(gw.url)));
    batch.forEach((ws, i) => {
      if (i % 3 === 0) ws.terminate();
      else if (i % 3 === 1) ws.close(1000);
      else { ws.send('bye'); ws.terminate(); }
    });
    await Promise.all(batch.map((ws) => waitClose(ws)));
  }
  // Every accepted connection gets exactly one $disconnect.
  const connects = backend.eventsOf('CONNECT').map((e) => e.requestContext.connectionId).filter((id) => id !== existing.id);
  await withTimeout((async () => {
    while (backend.eventsOf('DISCONNECT').length < connects.length) await sleep(50);
  })(), 8000, 'all $disconnect events');
  const disc = backend.eventsOf('DISCONNECT').map((e) => e.requestContext.connectionId);
  assert.deepEqual([...disc].sort(), [...connects].sort());
  await assertHealthy(gw, backend, existing);
});

test('a client sending messages while the backend is slow keeps the gateway responsive', async () => {
  const { backend, gw } = await startPair(async (ev) => {
    if (ev.requestContext.eventType === 'MESSAGE' && ev.body.startsWith('slow')) await sleep(1000);
    return { statusCode: 200, body: ev.body };
  });
  const a = await connectWithId(gw, backend);
  const b = await connectWithId(gw, backend);
  for (let i = 0; i < 10; i++) a.ws.send(`slow ${i}`);
  const t0 = Date.now();
  b.ws.send('quick');
  assert.equal((await nextMessage(b.ws)).data, 'quick');
  assert.ok(Date.now() - t0 < 900, 'another client is not held up by slow integration calls');
});
