// $disconnect: exactly once per established connection, carrying the close
// code and reason, whatever ended the connection.
import {
  test, assert, startBackend, startGateway, startPair, makeApi, connectWithId, waitClose,
  deleteConn, sleep,
} from './helpers.mjs';

/** Waits for the DISCONNECT of `id`, then checks it stays the only one. */
async function expectOneDisconnect(backend, id, timeoutMs = 5000) {
  const ev = await backend.waitForEvent('DISCONNECT', id, timeoutMs);
  await sleep(300);
  assert.equal(backend.eventsOf('DISCONNECT', id).length, 1, '$disconnect fires exactly once');
  return ev;
}

function checkDisconnectShape(ev, id, connectEvent) {
  assert.equal(ev.isBase64Encoded, false);
  assert.ok(ev.body === undefined || ev.body === null, 'a DISCONNECT event has no body');
  const rc = ev.requestContext;
  assert.equal(rc.routeKey, '$disconnect');
  assert.equal(rc.eventType, 'DISCONNECT');
  assert.equal(rc.connectionId, id);
  assert.equal(rc.connectedAt, connectEvent.requestContext.connectedAt);
  assert.equal(typeof rc.requestId, 'string');
  assert.equal(rc.extendedRequestId, rc.requestId);
  assert.equal(typeof rc.requestTimeEpoch, 'number');
  assert.equal(rc.stage, 'dev');
  assert.equal(rc.identity.sourceIp, '127.0.0.1');
  assert.equal(rc.messageDirection, 'IN');
  assert.equal(typeof rc.disconnectStatusCode, 'number');
  assert.equal(typeof rc.disconnectReason, 'string');
}

test('client close with code and reason is reported as is', async () => {
  const { backend, gw } = await startPair();
  const { ws, id, connectEvent } = await connectWithId(gw, backend);
  ws.close(4001, 'bye');
  const ev = await expectOneDisconnect(backend, id);
  checkDisconnectShape(ev, id, connectEvent);
  assert.equal(ev.requestContext.disconnectStatusCode, 4001);
  assert.equal(ev.requestContext.disconnectReason, 'bye');
  const { code, reason } = await waitClose(ws);
  assert.equal(code, 4001, 'the gateway echoes the close code');
  assert.equal(reason, 'bye');
});

test('client close 1000 with a UTF-8 reason', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  ws.close(1000, 'fin – ünïcode');
  const ev = await expectOneDisconnect(backend, id);
  assert.equal(ev.requestContext.disconnectStatusCode, 1000);
  assert.equal(ev.requestContext.disconnectReason, 'fin – ünïcode');
});

test('client close without a status gives 1005', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  ws.close();
  const ev = await expectOneDisconnect(backend, id);
  assert.equal(ev.requestContext.disconnectStatusCode, 1005);
  assert.equal(ev.requestContext.disconnectReason, 'Client-side close frame status not set');
});

test('client TCP drop (socket destroyed) gives 1006', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  ws._socket.destroy();
  const ev = await expectOneDisconnect(backend, id);
  assert.equal(ev.requestContext.disconnectStatusCode, 1006);
});

test('client terminate() gives 1006', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  ws.terminate();
  const ev = await expectOneDisconnect(backend, id);
  assert.equal(ev.requestContext.disconnectStatusCode, 1006);
});

test('management DELETE gives 1000 "Connection Closed Normally"', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  const res = await deleteConn(gw, id);
  assert.equal(res.status, 204);
  assert.equal((await waitClose(ws)).code, 1000);
  const ev = await expectOneDisconnect(backend, id);
  assert.equal(ev.requestContext.disconnectStatusCode, 1000);
  assert.equal(ev.requestContext.disconnectReason, 'Connection Closed Normally');
});

test('idle timeout closes with 1001 and reports 1001', async () => {
  const { backend, gw } = await startPair(undefined, { limits: { idleTimeoutSeconds: 1, maxConnectionSeconds: 0 } });
  const t0 = Date.now();
  const { ws, id } = await connectWithId(gw, backend);
  const { code } = await waitClose(ws, 6000);
  const took = Date.now() - t0;
  assert.equal(code, 1001);
  assert.ok(took >= 800, `closed after ${took} ms, the idle timeout is 1 s`);
  const ev = await expectOneDisconnect(backend, id);
  assert.equal(ev.requestContext.disconnectStatusCode, 1001);
});

test('activity postpones the idle timeout', async () => {
  const { backend, gw } = await startPair(undefined, { limits: { idleTimeoutSeconds: 1, maxConnectionSeconds: 0 } });
  const { ws, id } = await connectWithId(gw, backend);
  const t0 = Date.now();
  // A message every 300 ms for 2.5 s keeps the connection alive.
  while (Date.now() - t0 < 2500) {
    ws.send('keepalive');
    await sleep(300);
    assert.equal(ws.readyState, ws.OPEN, `closed after ${Date.now() - t0} ms despite activity`);
  }
  const { code } = await waitClose(ws, 6000);
  assert.equal(code, 1001);
  await expectOneDisconnect(backend, id);
});

test('max connection duration closes with 1001 and reports 1001', async () => {
  const { backend, gw } = await startPair(undefined, { limits: { idleTimeoutSeconds: 0, maxConnectionSeconds: 1 } });
  const t0 = Date.now();
  const { ws, id } = await connectWithId(gw, backend);
  // Stay active so only the duration limit can end the connection.
  const timer = setInterval(() => { if (ws.readyState === ws.OPEN) ws.send('busy'); }, 200);
  try {
    const { code } = await waitClose(ws, 6000);
    assert.equal(code, 1001);
    const took = Date.now() - t0;
    assert.ok(took >= 800, `closed after ${took} ms, the limit is 1 s`);
  } finally {
    clearInterval(timer);
  }
  const ev = await expectOneDisconnect(backend, id);
  assert.equal(ev.requestContext.disconnectStatusCode, 1001);
});

test('time limits set to 0 are off', async () => {
  const { backend, gw } = await startPair(undefined, { limits: { idleTimeoutSeconds: 0, maxConnectionSeconds: 0 } });
  const { ws } = await connectWithId(gw, backend);
  await sleep(1500);
  assert.equal(ws.readyState, ws.OPEN);
  ws.send('still here');
  assert.ok(await backend.waitFor((e) => e.body === 'still here'));
});

test('SIGTERM closes clients with 1001 and delivers every $disconnect before exiting 0', async () => {
  const backend = await startBackend(async (ev) => {
    // A slow $disconnect answer: the gateway must still deliver all of them.
    if (ev.requestContext.eventType === 'DISCONNECT') await sleep(200);
    return { statusCode: 200 };
  });
  const gw = await startGateway({ routes: makeApi(backend.url) });
  const clients = await Promise.all([1, 2, 3].map(() => connectWithId(gw, backend)));
  const closes = clients.map((c) => waitClose(c.ws, 8000));
  let disconnectsAtExit = null;
  // Requests written before the exit are readable by then; 100 ms lets this
  // process read what is already in its socket buffers.
  const atExit = new Promise((resolve) => gw.proc.on('exit', () => setTimeout(() => {
    disconnectsAtExit = backend.eventsOf('DISCONNECT').map((e) => e.requestContext.connectionId);
    resolve();
  }, 100)));
  const code = await gw.stop('SIGTERM');
  await atExit;
  assert.equal(code, 0);
  for (const c of await Promise.all(closes)) assert.equal(c.code, 1001);
  assert.deepEqual([...disconnectsAtExit].sort(), clients.map((c) => c.id).sort(), 'all $disconnect events reached the backend before exit');
  for (const c of clients) {
    const [ev] = backend.eventsOf('DISCONNECT', c.id);
    assert.equal(ev.requestContext.disconnectStatusCode, 1001);
  }
  assert.equal(backend.eventsOf('DISCONNECT').length, clients.length);
});

test('SIGTERM with no connections exits 0 promptly', async () => {
  const { gw } = await startPair();
  const t0 = Date.now();
  assert.equal(await gw.stop('SIGTERM'), 0);
  assert.ok(Date.now() - t0 < 3000);
});

test('SIGINT also shuts down cleanly', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  const close = waitClose(ws, 8000);
  assert.equal(await gw.stop('SIGINT'), 0);
  assert.equal((await close).code, 1001);
  assert.equal(backend.eventsOf('DISCONNECT', id).length, 1);
});

test('without a $disconnect route nothing is called on close', async () => {
  const backend = await startBackend();
  const api = makeApi(backend.url);
  delete api.routes.$disconnect;
  const gw = await startGateway({ routes: api });
  const { ws, id } = await connectWithId(gw, backend);
  ws.close(1000);
  await waitClose(ws);
  // A second connection's message proves the gateway has moved on.
  const other = await connectWithId(gw, backend);
  other.ws.send('after');
  await backend.waitFor((e) => e.body === 'after');
  await sleep(200);
  assert.deepEqual(backend.eventsOf('DISCONNECT'), []);
  assert.ok(id);
});

test('$disconnect fires once even when close and DELETE race', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  ws.close(4002, 'racing');
  await deleteConn(gw, id).catch(() => {});
  await expectOneDisconnect(backend, id);
});

test('$disconnect is sent for connections dropped while a message is in flight', async () => {
  const { backend, gw } = await startPair(async (ev) => {
    if (ev.requestContext.eventType === 'MESSAGE') await sleep(500);
    return { statusCode: 200, body: 'late' };
  });
  const { ws, id } = await connectWithId(gw, backend);
  ws.send('slow one');
  await backend.waitForEvent('MESSAGE', id);
  ws.terminate();
  const ev = await expectOneDisconnect(backend, id);
  assert.equal(ev.requestContext.disconnectStatusCode, 1006);
  // The late reply for a gone client must not hurt the gateway.
  await sleep(500);
  const { ws: ws2 } = await connectWithId(gw, backend);
  ws2.send('x');
  await backend.waitFor((e) => e.body === 'x');
});
