// Issue 15, "Differences to close": what an AWS API Gateway WebSocket app
// sees on AWS and must see the same on wsgate. Each test names its item;
// the AWS behaviour and its source are in the README's "Compared with AWS
// API Gateway" table.

import {
  test, assert, startPair, connect, connectWithId, nextMessage, waitClose, send,
  postTo, rawConnect, upgradeRequest, serverFrames, waitUntil,
} from './helpers.mjs';

test('item 1: a single inbound frame over 32 KB closes with 1009; a 100 KB message in 25 KB frames is accepted', async () => {
  const { gw, backend } = await startPair();
  const { ws } = await connectWithId(gw, backend);
  const chunk = 'x'.repeat(25000);
  // One message in four frames, none over 32 KB: echoed whole.
  await send(ws, chunk, { fin: false });
  await send(ws, chunk, { fin: false });
  await send(ws, chunk, { fin: false });
  await send(ws, chunk, { fin: true });
  const echo = await nextMessage(ws);
  assert.equal(echo.data.length, 100000);
  // One frame of 40 KB: AWS closes with 1009.
  await send(ws, 'y'.repeat(40000));
  const c = await waitClose(ws);
  assert.equal(c.code, 1009);
});

test('item 1: an outbound message over 32 KB goes out in frames of at most limits.maxFrameBytes', async () => {
  const { gw, backend } = await startPair();
  const sock = await rawConnect(gw.port);
  sock.write(upgradeRequest('/'));
  const ev = await backend.waitForEvent('CONNECT');
  const id = ev.requestContext.connectionId;
  await waitUntil(() => sock.received.includes('\r\n\r\n'), 5000, 'the upgrade answer');
  const data = Buffer.alloc(80000, 'a');
  const r = await postTo(gw, id, data);
  assert.equal(r.status, 200);
  const total = () => serverFrames(sock.received).reduce((n, f) => n + f.payload.length, 0);
  await waitUntil(() => total() >= 80000, 5000, 'the whole message');
  const frames = serverFrames(sock.received);
  assert.deepEqual(frames.map((f) => [f.opcode, f.fin, f.payload.length]),
    [[1, false, 32768], [0, false, 32768], [0, true, 80000 - 65536]]);
  sock.destroy();

  // A smaller limit is honoured, and the client library reassembles it.
  const p2 = await startPair(undefined, { limits: { maxFrameBytes: 1000 } });
  const { ws, id: id2 } = await connectWithId(p2.gw, p2.backend);
  assert.equal((await postTo(p2.gw, id2, Buffer.alloc(5000, 'b'))).status, 200);
  assert.equal((await nextMessage(ws)).data, 'b'.repeat(5000));
  await send(ws, 'z'.repeat(1001));
  assert.equal((await waitClose(ws)).code, 1009);
});
