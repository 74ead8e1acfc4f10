// REST connections are watched edge-triggered, registered once (issue 10,
// performance: no epoll_ctl per request). An edge is reported once: these
// tests cover the moments where one could be lost — bytes or a half-close
// that arrive while an integration runs, a client that sends more than one
// wakeup reads, an answer larger than the socket buffer.
import {
  test, assert, startBackend, startGateway, rawConnect, sleep, withTimeout, waitResponses,
} from './helpers.mjs';

async function slowGateway() {
  const backend = await startBackend(async (e) => {
    const ms = Number(e.pathParameters?.ms ?? 0);
    if (ms) await sleep(ms);
    return { statusCode: 200, headers: { 'content-type': 'text/plain' }, body: `slept ${ms}` };
  });
  const gw = await startGateway({ routes: {
    name: 'shop', stage: 'dev', basePath: '/',
    integrations: {
      l: { type: 'AWS_PROXY', uri: backend.url, timeoutMs: 5000 },
      m: { type: 'MOCK', statusCode: 200, body: '{"m":1}' },
      big: { type: 'MOCK', statusCode: 200, body: 'x'.repeat(200000) },
    },
    routes: { 'GET /l/{ms}': { integration: 'l' }, 'GET /m': { integration: 'm' }, 'GET /big': { integration: 'big' } },
  } });
  return { backend, gw };
}

test('issue 10 REST edge-triggered: a request that arrives while the previous one is at the backend is served', async () => {
  const { gw } = await slowGateway();
  const sock = await rawConnect(gw.port);
  sock.write('GET /l/300 HTTP/1.1\r\nHost: x\r\n\r\n');
  await sleep(100); // the first request is at the backend now
  sock.write('GET /l/0 HTTP/1.1\r\nHost: x\r\n\r\n');
  const { responses } = await waitResponses(sock, ['GET', 'GET'], 4000);
  assert.deepEqual(responses.map((r) => r.body.toString()), ['slept 300', 'slept 0']);
  assert.equal(sock.destroyed, false);
  sock.destroy();
});

test('issue 10 REST edge-triggered: a half-close while the integration runs gets the answer, then the connection closes at once', async () => {
  const { gw } = await slowGateway();
  const sock = await rawConnect(gw.port);
  sock.write('GET /l/300 HTTP/1.1\r\nHost: x\r\n\r\n');
  await sleep(100);
  sock.end(); // FIN while the call runs
  const t0 = Date.now();
  const { responses } = await waitResponses(sock, ['GET'], 4000);
  assert.equal(responses[0].body.toString(), 'slept 300');
  await withTimeout(sock.closedPromise, 3000, 'the gateway closes after the answer (not after the idle timeout)');
  assert.ok(Date.now() - t0 < 3000);
});

test('issue 10 REST edge-triggered: a half-close sent with the request (same segment) still ends the connection after the answer', async () => {
  const { gw } = await slowGateway();
  for (const path of ['/m', '/l/50']) {
    const sock = await rawConnect(gw.port);
    sock.end(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    const { responses } = await waitResponses(sock, ['GET'], 4000);
    assert.equal(responses[0].status, 200, path);
    await withTimeout(sock.closedPromise, 3000, `the gateway closes after the answer to ${path}`);
  }
});

test('issue 10 REST edge-triggered: 3,000 pipelined requests (more than one wakeup reads) are all answered', { timeout: 30000 }, async () => {
  const { gw } = await slowGateway();
  const sock = await rawConnect(gw.port);
  const one = `GET /m HTTP/1.1\r\nHost: x\r\nX-Pad: ${'p'.repeat(60)}\r\n\r\n`;
  const n = 3000; // about 300 KB: more than 16 reads of 16 KB
  sock.write(one.repeat(n));
  const { responses } = await waitResponses(sock, Array(n).fill('GET'), 20000);
  assert.equal(responses.length, n);
  assert.ok(responses.every((r) => r.status === 200));
  // The connection still reads after the burst.
  sock.received = Buffer.alloc(0);
  sock.write('GET /l/0 HTTP/1.1\r\nHost: x\r\n\r\n');
  const again = await waitResponses(sock, ['GET'], 4000);
  assert.equal(again.responses[0].body.toString(), 'slept 0');
  sock.destroy();
});

test('issue 10 REST edge-triggered: answers larger than the socket buffer to a client that reads late all arrive, and the next request is served', { timeout: 30000 }, async () => {
  const { gw } = await slowGateway();
  const sock = await rawConnect(gw.port);
  sock.pause(); // the answers fill the socket buffers: the gateway waits for EPOLLOUT
  sock.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(20));
  await sleep(500);
  sock.resume();
  const { responses } = await waitResponses(sock, Array(20).fill('GET'), 15000);
  assert.ok(responses.every((r) => r.status === 200 && r.body.length === 200000));
  sock.received = Buffer.alloc(0);
  sock.write('GET /m HTTP/1.1\r\nHost: x\r\n\r\n');
  const again = await waitResponses(sock, ['GET'], 4000);
  assert.equal(again.responses[0].status, 200);
  sock.destroy();
});
