// Messages: every frame goes to $default as a MESSAGE event; with
// routeResponse the integration's body comes back to the client.
import {
  test, assert, startBackend, startGateway, startPair, makeApi, connectWithId, nextMessage,
  waitClose, send, sleep, pingPong, pendingMessages,
} from './helpers.mjs';

const CLF_RE = /^\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000$/;

/**
 * Proves that nothing was sent to ws: after the backend has answered, wait a
 * little, then a ping/pong round trip; no message may have arrived by then.
 */
async function assertNothingReceived(ws) {
  await sleep(200);
  await pingPong(ws);
  assert.deepEqual(pendingMessages(ws), [], 'no message was sent to the client');
}

test('a text message reaches $default as a MESSAGE event', async () => {
  const { backend, gw } = await startPair();
  const { ws, id, connectEvent } = await connectWithId(gw, backend, { headers: { 'User-Agent': 'e2e-agent' } });
  const before = Date.now();
  ws.send('{"action":"sendmessage","text":"hi"}');
  const ev = await backend.waitForEvent('MESSAGE', id);

  assert.equal(ev.body, '{"action":"sendmessage","text":"hi"}');
  assert.equal(ev.isBase64Encoded, false);
  const rc = ev.requestContext;
  assert.equal(rc.routeKey, '$default');
  assert.equal(rc.eventType, 'MESSAGE');
  assert.equal(rc.connectionId, id);
  assert.equal(typeof rc.messageId, 'string');
  assert.ok(rc.messageId.length > 0);
  assert.equal(rc.connectedAt, connectEvent.requestContext.connectedAt, 'connectedAt is constant for the connection');
  assert.equal(typeof rc.requestId, 'string');
  assert.notEqual(rc.requestId, connectEvent.requestContext.requestId, 'each event has its own requestId');
  assert.equal(rc.extendedRequestId, rc.requestId);
  assert.match(rc.requestTime, CLF_RE);
  assert.equal(typeof rc.requestTimeEpoch, 'number');
  assert.ok(rc.requestTimeEpoch >= before - 1000 && rc.requestTimeEpoch <= Date.now() + 1000);
  assert.equal(rc.identity.sourceIp, '127.0.0.1');
  assert.equal(rc.identity.userAgent, 'e2e-agent');
  assert.equal(rc.stage, 'dev');
  assert.equal(rc.domainName, connectEvent.requestContext.domainName);
  assert.equal(rc.apiId, connectEvent.requestContext.apiId);
  assert.equal(rc.messageDirection, 'IN');
});

test('non-JSON text and JSON without the selection key both go to $default', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  for (const body of ['plain text', '{"other":"key"}', '{"action":"nosuchroute"}', '[1,2,3]']) {
    ws.send(body);
    const ev = await backend.waitFor((e) => e.requestContext?.connectionId === id && e.body === body);
    assert.equal(ev.requestContext.routeKey, '$default');
    assert.equal((await nextMessage(ws)).data, body);
  }
});

test('with routeResponse the integration body is sent back to the client', async () => {
  const { backend, gw } = await startPair((ev) => {
    if (ev.requestContext.eventType === 'MESSAGE') return { statusCode: 200, body: `echo: ${ev.body}` };
    return { statusCode: 200 };
  });
  const { ws } = await connectWithId(gw, backend);
  ws.send('hello');
  const m = await nextMessage(ws);
  assert.equal(m.isBinary, false);
  assert.equal(m.data, 'echo: hello');
});

test('with routeResponse a non-2xx statusCode body is still delivered', async () => {
  const { backend, gw } = await startPair((ev) => {
    if (ev.requestContext.eventType === 'MESSAGE') return { statusCode: 500, body: 'still a message' };
    return { statusCode: 200 };
  });
  const { ws } = await connectWithId(gw, backend);
  ws.send('hello');
  assert.equal((await nextMessage(ws)).data, 'still a message');
});

test('without routeResponse nothing is sent back', async () => {
  const backend = await startBackend((ev) => ({ statusCode: 200, body: `reply to ${ev.body}` }));
  const api = makeApi(backend.url);
  api.routes.$default = { integration: 'backend' };
  const gw = await startGateway({ routes: api });
  const { ws, id } = await connectWithId(gw, backend);
  ws.send('one-way');
  await backend.waitForEvent('MESSAGE', id);
  await assertNothingReceived(ws);
});

test('a binary frame arrives base64-encoded with isBase64Encoded true', async () => {
  const { backend, gw } = await startPair(() => ({ statusCode: 200 }));
  const { ws, id } = await connectWithId(gw, backend);
  const bytes = Buffer.from([0x00, 0xff, 0x10, 0x80, 0x7f, 0xc3, 0x28, 0x00]);
  ws.send(bytes, { binary: true });
  const ev = await backend.waitForEvent('MESSAGE', id);
  assert.equal(ev.isBase64Encoded, true);
  assert.equal(ev.body, bytes.toString('base64'));
  assert.deepEqual(Buffer.from(ev.body, 'base64'), bytes);
});

test('text bodies are passed byte-exact (UTF-8, NUL, quotes, newlines)', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  const body = 'héllo wörld 🚀 \u0000 "quoted" \\ back\nslash\ttab </script> \u2028';
  ws.send(body);
  const ev = await backend.waitForEvent('MESSAGE', id);
  assert.equal(ev.body, body);
  assert.equal(ev.isBase64Encoded, false);
  assert.equal((await nextMessage(ws)).data, body);
});

test('a fragmented message is reassembled into one event', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  await send(ws, 'part one, ', { fin: false });
  await send(ws, 'part two, ', { fin: false });
  await send(ws, 'end', { fin: true });
  const ev = await backend.waitForEvent('MESSAGE', id);
  assert.equal(ev.body, 'part one, part two, end');
  assert.equal(backend.eventsOf('MESSAGE', id).length, 1);
});

test('each message gets its own messageId and all of them arrive', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  const bodies = Array.from({ length: 20 }, (_, i) => `msg-${i}`);
  for (const b of bodies) ws.send(b);
  const replies = [];
  for (let i = 0; i < bodies.length; i++) replies.push((await nextMessage(ws)).data);
  assert.deepEqual([...replies].sort(), [...bodies].sort());
  const evs = backend.eventsOf('MESSAGE', id);
  assert.equal(evs.length, bodies.length);
  assert.equal(new Set(evs.map((e) => e.requestContext.messageId)).size, bodies.length);
  assert.equal(new Set(evs.map((e) => e.requestContext.requestId)).size, bodies.length);
});

test('messages of several clients go to the right connection', async () => {
  const { backend, gw } = await startPair((ev) => {
    if (ev.requestContext.eventType === 'MESSAGE') return { statusCode: 200, body: `${ev.requestContext.connectionId}:${ev.body}` };
    return { statusCode: 200 };
  });
  const clients = await Promise.all([1, 2, 3].map(() => connectWithId(gw, backend)));
  clients.forEach((c, i) => c.ws.send(`from ${i}`));
  for (const [i, c] of clients.entries()) {
    assert.equal((await nextMessage(c.ws)).data, `${c.id}:from ${i}`);
  }
});

test('a message at maxMessageBytes passes, one byte more closes with 1009', async () => {
  const { backend, gw } = await startPair(() => ({ statusCode: 200 }), { limits: { maxMessageBytes: 1024 } });
  const { ws, id } = await connectWithId(gw, backend);
  ws.send('a'.repeat(1024));
  const ev = await backend.waitForEvent('MESSAGE', id);
  assert.equal(ev.body.length, 1024);
  ws.send('b'.repeat(1025));
  const { code } = await waitClose(ws);
  assert.equal(code, 1009);
  assert.equal(backend.eventsOf('MESSAGE', id).length, 1, 'the oversized message is not forwarded');
  await backend.waitForEvent('DISCONNECT', id);
});

test('the default maxMessageBytes is 131072', async () => {
  const backend = await startBackend(() => ({ statusCode: 200 }));
  const api = makeApi(backend.url);
  delete api.limits;
  const gw = await startGateway({ routes: api });
  const { ws, id } = await connectWithId(gw, backend);
  // In frames of 32 KB, the most AWS accepts in one (limits.maxFrameBytes).
  for (let i = 0; i < 4; i++) ws.send('x'.repeat(32768), { fin: i === 3 });
  const ev = await backend.waitForEvent('MESSAGE', id);
  assert.equal(ev.body.length, 131072);
  ws.send('y'.repeat(131073));
  assert.equal((await waitClose(ws)).code, 1009);
});

test('a fragmented message over maxMessageBytes closes with 1009', async () => {
  const { backend, gw } = await startPair(() => ({ statusCode: 200 }), { limits: { maxMessageBytes: 1000 } });
  const { ws, id } = await connectWithId(gw, backend);
  await send(ws, 'a'.repeat(600), { fin: false });
  await send(ws, 'b'.repeat(600), { fin: true });
  assert.equal((await waitClose(ws)).code, 1009);
  assert.deepEqual(backend.eventsOf('MESSAGE', id), []);
});

test('a binary message over maxMessageBytes closes with 1009', async () => {
  const { backend, gw } = await startPair(() => ({ statusCode: 200 }), { limits: { maxMessageBytes: 1000 } });
  const { ws } = await connectWithId(gw, backend);
  ws.send(Buffer.alloc(1001, 7));
  assert.equal((await waitClose(ws)).code, 1009);
});

test('a large routeResponse body reaches the client intact', async () => {
  const big = Array.from({ length: 100000 }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');
  const { backend, gw } = await startPair((ev) => {
    if (ev.requestContext.eventType === 'MESSAGE') return { statusCode: 200, body: big };
    return { statusCode: 200 };
  });
  const { ws } = await connectWithId(gw, backend);
  ws.send('give me a lot');
  assert.equal((await nextMessage(ws)).data, big);
});

test('ping frames are answered with pong', async () => {
  const { backend, gw } = await startPair();
  const { ws } = await connectWithId(gw, backend);
  await pingPong(ws);
  assert.deepEqual(backend.eventsOf('MESSAGE'), [], 'control frames are not messages');
});
