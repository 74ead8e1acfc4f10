// Issue 10, "wss:// costs what TLS costs": a busy wss:// connection keeps a
// keyed cipher context per direction (a record only sets its nonce); one
// idle for 5-10 s gives them back, so that idle connections stay small, and
// its next message keys new ones. The release is a debug log line.
import {
  assert, test, startGateway, makeApi, connect, nextMessage, waitUntil,
  selfSignedCert,
} from './helpers.mjs';

const { cert, key } = selfSignedCert('tlsidle');

const RELEASED = /an idle connection's cipher contexts released/g;

test('tls offload: an idle connection releases its cipher contexts after 5-10 s and its next messages are answered', async () => {
  const api = makeApi('http://127.0.0.1:9/');
  api.integrations.m = { type: 'MOCK', statusCode: 200, body: 'pong' };
  api.routes = { $default: { integration: 'm', routeResponse: true } };
  const gw = await startGateway({ routes: api, args: ['--tls-cert', cert, '--tls-key', key, '--log-level', 'debug'] });
  const ws = await connect(`wss://127.0.0.1:${gw.port}/`, { rejectUnauthorized: false });
  const released = () => (gw.output().match(RELEASED) || []).length;
  // Busy for 6 s: a message every 200 ms keeps the contexts.
  const t0 = Date.now();
  while (Date.now() - t0 < 6000) {
    ws.send('ping');
    assert.equal((await nextMessage(ws)).data, 'pong');
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(released(), 0, 'not released while busy');
  await waitUntil(() => released() === 1, 12000, 'released once idle');
  for (let i = 0; i < 3; i++) {
    ws.send(`again ${i}`);
    assert.equal((await nextMessage(ws)).data, 'pong', 'answered with new contexts');
  }
  ws.close();
});
