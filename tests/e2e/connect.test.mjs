// $connect: the upgrade waits for the integration, whose answer decides the
// HTTP outcome; the CONNECT event has the AWS Lambda-proxy shape.
import {
  test, assert, startBackend, startGateway, startPair, makeApi, connect, connectRefused,
  connectWithId, header, unusedUrl, DESTROY, GARBAGE, HANG, sleep,
  rawConnect, upgradeRequest, postTo, nextMessage, echoHandler,
} from './helpers.mjs';

const ID_RE = /^[A-Za-z0-9_-]{16,}$/;
const CLF_RE = /^\d{2}\/(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\/\d{4}:\d{2}:\d{2}:\d{2} \+0000$/;

test('a 2xx $connect answer opens the connection', async () => {
  const { backend, gw } = await startPair(() => ({ statusCode: 200 }));
  const ws = await connect(gw.url);
  assert.equal(ws.readyState, ws.OPEN);
  assert.equal(backend.eventsOf('CONNECT').length, 1);
});

test('the CONNECT event has the AWS Lambda-proxy shape', async () => {
  const { backend, gw } = await startPair();
  const before = Date.now();
  await connect(`${gw.url}/?room=lobby&tag=one&tag=two&tag=three`, {
    headers: { 'User-Agent': 'wsgate-e2e/1.0', 'X-Custom-Header': 'hello world' },
  });
  const after = Date.now();
  const ev = await backend.waitForEvent('CONNECT');

  assert.equal(ev.__headers['content-type']?.split(';')[0], 'application/json', 'events are POSTed as JSON');
  assert.equal(backend.requests[0].method, 'POST');
  assert.equal(backend.requests[0].url, '/events');

  // headers and multiValueHeaders keep the client's names and values
  assert.equal(typeof ev.headers, 'object');
  assert.equal(ev.headers['X-Custom-Header'], 'hello world', `headers: ${JSON.stringify(ev.headers)}`);
  assert.equal(header(ev.headers, 'User-Agent'), 'wsgate-e2e/1.0');
  assert.ok(header(ev.headers, 'Sec-WebSocket-Key'), 'the handshake headers are passed on');
  assert.deepEqual(ev.multiValueHeaders['X-Custom-Header'], ['hello world']);

  // query string: last value wins in the single-value map
  assert.deepEqual(ev.queryStringParameters, { room: 'lobby', tag: 'three' });
  assert.deepEqual(ev.multiValueQueryStringParameters, { room: ['lobby'], tag: ['one', 'two', 'three'] });

  assert.equal(ev.isBase64Encoded, false);
  assert.ok(!('body' in ev), `a CONNECT event has no body, got ${JSON.stringify(ev.body)}`);

  const rc = ev.requestContext;
  assert.equal(rc.routeKey, '$connect');
  assert.equal(rc.eventType, 'CONNECT');
  assert.match(rc.connectionId, ID_RE);
  assert.equal(typeof rc.connectedAt, 'number');
  assert.ok(rc.connectedAt >= before - 1000 && rc.connectedAt <= after + 1000, `connectedAt ${rc.connectedAt}`);
  assert.equal(typeof rc.requestId, 'string');
  assert.ok(rc.requestId.length > 0);
  assert.equal(rc.extendedRequestId, rc.requestId);
  assert.match(rc.requestTime, CLF_RE);
  assert.equal(typeof rc.requestTimeEpoch, 'number');
  assert.ok(rc.requestTimeEpoch >= before - 1000 && rc.requestTimeEpoch <= after + 1000, `requestTimeEpoch ${rc.requestTimeEpoch}`);
  // requestTime and requestTimeEpoch describe the same second
  const [, d, mon, y, hh, mm, ss] = rc.requestTime.match(/^(\d{2})\/(\w{3})\/(\d{4}):(\d{2}):(\d{2}):(\d{2})/);
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const clf = Date.UTC(+y, months.indexOf(mon), +d, +hh, +mm, +ss);
  assert.ok(Math.abs(clf - rc.requestTimeEpoch) < 2000, `requestTime ${rc.requestTime} vs epoch ${rc.requestTimeEpoch}`);
  assert.deepEqual(rc.identity?.sourceIp, '127.0.0.1');
  assert.equal(rc.identity.userAgent, 'wsgate-e2e/1.0');
  assert.equal(rc.stage, 'dev');
  assert.equal(typeof rc.domainName, 'string');
  assert.ok(rc.domainName.length > 0, 'domainName is set');
  assert.equal(typeof rc.apiId, 'string');
  assert.ok(rc.apiId.length > 0, 'apiId is set');
  assert.equal(rc.messageDirection, 'IN');
  assert.equal(rc.messageId, undefined, 'messageId is for MESSAGE events only');
});

test('a URL without a query string sends no query parameters', async () => {
  const { backend, gw } = await startPair();
  await connect(gw.url);
  const ev = await backend.waitForEvent('CONNECT');
  assert.ok(ev.queryStringParameters == null || Object.keys(ev.queryStringParameters).length === 0,
    `queryStringParameters: ${JSON.stringify(ev.queryStringParameters)}`);
});

for (const status of [401, 403, 400, 500]) {
  test(`a ${status} $connect answer refuses the upgrade with HTTP ${status}`, async () => {
    const { backend, gw } = await startPair(() => ({ statusCode: status, body: 'no' }));
    assert.equal(await connectRefused(gw.url), status);
    assert.equal(backend.eventsOf('CONNECT').length, 1);
  });
}

test('the $connect decision can depend on the request (token in the query string)', async () => {
  const { gw } = await startPair((ev) => {
    if (ev.requestContext.eventType !== 'CONNECT') return { statusCode: 200 };
    return ev.queryStringParameters?.token === 'good' ? { statusCode: 200 } : { statusCode: 401 };
  });
  assert.equal(await connectRefused(`${gw.url}/?token=bad`), 401);
  const ws = await connect(`${gw.url}/?token=good`);
  assert.equal(ws.readyState, ws.OPEN);
});

test('a refused connection gets no $disconnect', async () => {
  const { backend, gw } = await startPair((ev) => {
    if (ev.requestContext.eventType === 'CONNECT' && header(ev.headers, 'X-Deny')) return { statusCode: 403 };
    return { statusCode: 200 };
  });
  assert.equal(await connectRefused(gw.url, { headers: { 'X-Deny': '1' } }), 403);
  const refusedId = backend.eventsOf('CONNECT')[0].requestContext.connectionId;
  // A second, accepted connection closes; once its $disconnect arrives, the
  // refused one would have had time to produce its own.
  const { ws, id } = await connectWithId(gw, backend);
  ws.close(1000);
  await backend.waitForEvent('DISCONNECT', id);
  await sleep(200);
  assert.deepEqual(backend.eventsOf('DISCONNECT', refusedId), []);
  assert.equal(backend.eventsOf('DISCONNECT').length, 1);
});

test('an unreachable $connect backend gives HTTP 502', async () => {
  const gw = await startGateway({ routes: makeApi(await unusedUrl()) });
  assert.equal(await connectRefused(gw.url), 502);
});

test('a $connect backend that times out gives HTTP 500', async () => {
  const backend = await startBackend(() => HANG);
  const gw = await startGateway({ routes: makeApi(backend.url, { integration: { timeoutMs: 300 } }) });
  const t0 = Date.now();
  assert.equal(await connectRefused(gw.url), 500);
  const took = Date.now() - t0;
  assert.ok(took >= 250 && took < 3000, `refused after ${took} ms, timeoutMs is 300`);
});

test('a $connect backend answering non-JSON gives HTTP 502', async () => {
  const { gw } = await startPair(() => GARBAGE);
  assert.equal(await connectRefused(gw.url), 502);
});

test('a $connect backend that drops the connection gives HTTP 502', async () => {
  const { gw } = await startPair(() => DESTROY);
  assert.equal(await connectRefused(gw.url), 502);
});

test('a slow but in-time $connect answer still opens the connection', async () => {
  const { gw } = await startPair(async (ev) => {
    if (ev.requestContext.eventType === 'CONNECT') await sleep(500);
    return { statusCode: 200 };
  });
  const t0 = Date.now();
  const ws = await connect(gw.url);
  assert.ok(Date.now() - t0 >= 450, 'the upgrade waited for the integration');
  assert.equal(ws.readyState, ws.OPEN);
});

test('without a $connect route the connection is accepted without a call', async () => {
  const backend = await startBackend();
  const api = makeApi(backend.url);
  delete api.routes.$connect;
  const gw = await startGateway({ routes: api });
  const ws = await connect(gw.url);
  assert.equal(ws.readyState, ws.OPEN);
  ws.send('hello');
  const msg = await backend.waitForEvent('MESSAGE');
  assert.equal(msg.body, 'hello');
  assert.deepEqual(backend.eventsOf('CONNECT'), []);
});

test('the subprotocol chosen by $connect is returned to the client', async () => {
  const { backend, gw } = await startPair((ev) => {
    if (ev.requestContext.eventType === 'CONNECT') {
      return { statusCode: 200, headers: { 'Sec-WebSocket-Protocol': 'myproto' } };
    }
    return { statusCode: 200 };
  });
  const ws = await connect(gw.url, { protocols: ['chat1', 'myproto'] });
  assert.equal(ws.protocol, 'myproto');
  const ev = await backend.waitForEvent('CONNECT');
  assert.match(header(ev.headers, 'Sec-WebSocket-Protocol'), /chat1,\s*myproto/);
});

test('connection IDs are URL-safe, at least 16 characters and unique', async () => {
  const { backend, gw } = await startPair();
  const clients = await Promise.all(Array.from({ length: 20 }, () => connectWithId(gw, backend)));
  const ids = clients.map((c) => c.id);
  for (const id of ids) assert.match(id, ID_RE);
  assert.equal(new Set(ids).size, ids.length);
  const reqIds = backend.eventsOf('CONNECT').map((e) => e.requestContext.requestId);
  assert.equal(new Set(reqIds).size, reqIds.length, 'request IDs are unique too');
});

test('the gateway keeps serving while one $connect is pending', async () => {
  const { backend, gw } = await startPair(async (ev) => {
    if (ev.requestContext.eventType === 'CONNECT' && header(ev.headers, 'X-Slow')) await sleep(1500);
    return { statusCode: 200 };
  });
  const slow = connect(gw.url, { headers: { 'X-Slow': '1' } });
  await backend.waitFor((e) => header(e.headers, 'X-Slow'));
  const t0 = Date.now();
  const fast = await connect(gw.url);
  assert.ok(Date.now() - t0 < 1000, 'a second connection is not queued behind the pending one');
  assert.equal(fast.readyState, fast.OPEN);
  const ws = await slow;
  assert.equal(ws.readyState, ws.OPEN);
});

test('a client that goes away while $connect is pending is cleaned up', async () => {
  let release;
  const gate = new Promise((r) => { release = r; });
  const { backend, gw } = await startPair(async (ev) => {
    if (ev.requestContext.eventType === 'CONNECT' && header(ev.headers, 'X-Slow')) await gate;
    return echoHandler(ev);
  });
  const sock = await rawConnect(gw.port);
  sock.write(upgradeRequest('/', { 'X-Slow': '1' }));
  await backend.waitFor((e) => header(e.headers, 'X-Slow'));
  sock.destroy();
  await sleep(100);
  release();
  // The gateway must still work, and post to the vanished client must not crash it.
  const abortedId = backend.eventsOf('CONNECT')[0].requestContext.connectionId;
  await sleep(200);
  const res = await postTo(gw, abortedId, 'anyone there?');
  assert.equal(res.status, 410);
  const { ws } = await connectWithId(gw, backend);
  ws.send('ping');
  assert.equal((await nextMessage(ws)).data, 'ping');
});
