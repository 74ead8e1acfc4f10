// Review of the REST -> management handover on the gateway listener
// (rest.c peeks a keep-alive socket's next request line): a management
// request line pipelined behind REST but cut short in the same read, a
// request line larger than the peek, a partial line that stalls.
import {
  test, assert, startMixed, connectWithId, rawConnect,
  waitResponses, sleep, pendingMessages,
} from './helpers.mjs';

test('review: a management request line pipelined behind REST and cut short in its read is refused (503), not served as REST', async () => {
  const { gw, backend } = await startMixed(undefined, { routes: { 'ANY /{proxy+}': { integration: 'backend' } } });
  const { ws, id } = await connectWithId(gw, backend);
  const mgmt = `/dev/@connections/${encodeURIComponent(id)}`;
  const restEvents = () => backend.events.filter((e) => e.version === '2.0').length;
  const sock = await rawConnect(gw.port);
  // The REST request and the first bytes of the next line in one segment.
  sock.write(`GET /hello HTTP/1.1\r\nHost: x\r\n\r\nPOST ${mgmt.slice(0, 10)}`);
  await sleep(150);
  sock.write(`${mgmt.slice(10)} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\npipe`);
  const r = await waitResponses(sock, ['GET', 'POST']);
  assert.equal(r.responses[0].status, 200);
  assert.equal(r.responses[1].status, 503, r.responses[1].body.toString());
  await sleep(200);
  assert.equal(restEvents(), 1, 'the management request never reached the REST backend');
  assert.equal(pendingMessages(ws).length, 0);
  sock.destroy();
  ws.close(1000);
});

test('review: a request line longer than the peek on a keep-alive socket is answered by REST (431/414/400), not handed over', async () => {
  const { gw, backend } = await startMixed(undefined, { routes: { 'ANY /{proxy+}': { integration: 'backend' } } });
  const sock = await rawConnect(gw.port);
  sock.write('GET /hello HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitResponses(sock, ['GET']);
  sock.write(`GET /dev/@connections/${'a'.repeat(20000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
  const r = await waitResponses(sock, ['GET', 'GET']);
  assert.ok([400, 414, 431].includes(r.responses[1].status), String(r.responses[1].status));
  sock.destroy();
  void backend;
});

test('review: a keep-alive socket whose next request line stalls half-way (a management path) gets 408 at the request deadline', async () => {
  const { gw } = await startMixed(undefined, { routes: { 'ANY /{proxy+}': { integration: 'backend' } } });
  const sock = await rawConnect(gw.port);
  sock.write('GET /hello HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitResponses(sock, ['GET']);
  const t0 = Date.now();
  sock.write('POST /dev/@connecti');
  const r = await waitResponses(sock, ['GET', 'POST'], 15000);
  assert.equal(r.responses[1].status, 408);
  assert.ok(Date.now() - t0 >= 9000, `answered after ${Date.now() - t0} ms`);
  await sock.closedPromise;
});
