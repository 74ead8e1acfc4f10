// The wss:// relay's flow control (src/tls.c): OpenSSL reads ahead, and a
// side is asked for bytes only when its watch fired or it may hold more, so
// these check that nothing is left behind in OpenSSL's buffer or in a
// partial write: pipelined small messages (several TLS records per read),
// and a client that stops reading while the gateway pushes megabytes.
import {
  assert, test, startPair, connect, echoHandler, postTo, waitUntil,
  selfSignedCert,
} from './helpers.mjs';

const { cert, key } = selfSignedCert('tlsrelay');

const tlsArgs = { args: ['--tls-cert', cert, '--tls-key', key] };
const insecure = { rejectUnauthorized: false };

test('wss relay: 500 pipelined messages, several records per read, all answered in order', async () => {
  const { gw } = await startPair(echoHandler, {}, tlsArgs);
  const ws = await connect(`wss://127.0.0.1:${gw.port}/`, insecure);
  const got = [];
  ws.on('message', (d) => got.push(String(d)));
  for (let i = 0; i < 500; i++) ws.send(`m${i}`);
  await waitUntil(() => got.length === 500, 15000, '500 echoes');
  assert.deepEqual(got, Array.from({ length: 500 }, (_, i) => `m${i}`));
});

test('wss relay: a client that stops reading gets every byte once it reads again', async () => {
  const { backend, gw } = await startPair(echoHandler, {}, tlsArgs);
  const ws = await connect(`wss://127.0.0.1:${gw.port}/`, insecure);
  const ev = await backend.waitFor((e) => e.requestContext?.eventType === 'CONNECT');
  const id = ev.requestContext.connectionId;
  const got = [];
  ws.on('message', (d) => got.push(Buffer.from(d)));
  ws._socket.pause(); // the TLS socket: the gateway's writes back up
  // Post until the gateway says the connection's queue is full (429):
  // by then the relay holds a partial write and the sockets are full.
  const msgs = [];
  for (let i = 0; i < 200; i++) {
    const b = Buffer.alloc(120 * 1024 + i);
    for (let j = 0; j < b.length; j += 997) b[j] = (i * 31 + j) & 0xff;
    b[0] = 0xfe; // binary: not valid UTF-8
    const res = await postTo(gw, id, b);
    if (res.status === 429) break;
    assert.equal(res.status, 200);
    msgs.push(b);
  }
  assert.ok(msgs.length > 2 && msgs.length < 200, `accepted ${msgs.length} before the queue was full`);
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(got.length < msgs.length, 'the paused client already had everything: no back-pressure tested');
  ws._socket.resume();
  await waitUntil(() => got.length === msgs.length, 15000, 'all messages after resuming');
  for (let i = 0; i < msgs.length; i++) assert.ok(got[i].equals(msgs[i]), `message ${i} differs`);
  ws.send('still alive');
  await waitUntil(() => got.length === msgs.length + 1, 5000, 'an echo after the burst');
  assert.equal(String(got.at(-1)), 'still alive');
});
