// The @connections management API: POST / GET / DELETE, AWS status codes and
// error types, back-pressure, and the real AWS SDK as a client.
import {
  ApiGatewayManagementApiClient, PostToConnectionCommand, GetConnectionCommand, DeleteConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import {
  test, assert, startBackend, startGateway, startPair, makeApi, connect, connectRefused,
  connectWithId, nextMessage, waitClose, mgmtRequest, postTo, getConn, deleteConn, sleep,
  rssKiB,
} from './helpers.mjs';

const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$/;

function assertRequestId(res) {
  const rid = res.headers['x-amzn-requestid'];
  assert.ok(typeof rid === 'string' && rid.length > 0, `x-amzn-RequestId on ${res.status}: ${JSON.stringify(res.headers)}`);
}

function assertErrorType(res, type) {
  const et = res.headers['x-amzn-errortype'];
  assert.ok(et, `x-amzn-ErrorType header on ${res.status}`);
  assert.equal(et.split(':')[0], type);
}

/** Percent-encodes every character, as an over-eager client might. */
const encodeAll = (s) => [...Buffer.from(s)].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');

function sdkClient(gw, stage = 'dev') {
  return new ApiGatewayManagementApiClient({
    endpoint: `${gw.mgmtUrl}/${stage}`,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    maxAttempts: 1,
  });
}

test('POST delivers the body to the client as a text message', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  const res = await postTo(gw, id, '{"hello":"world"} ✓');
  assert.equal(res.status, 200);
  assert.equal(res.body.length, 0, 'empty body');
  assertRequestId(res);
  const m = await nextMessage(ws);
  assert.equal(m.isBinary, false);
  assert.equal(m.data, '{"hello":"world"} ✓');
});

test('POST with the stage prefix and with a URL-encoded ID', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  let res = await mgmtRequest(gw, 'POST', `/dev/@connections/${id}`, 'with stage');
  assert.equal(res.status, 200);
  assert.equal((await nextMessage(ws)).data, 'with stage');
  res = await mgmtRequest(gw, 'POST', `/dev/%40connections/${encodeAll(id)}`, 'fully encoded');
  assert.equal(res.status, 200);
  assert.equal((await nextMessage(ws)).data, 'fully encoded');
  res = await mgmtRequest(gw, 'POST', `/@connections/${encodeURIComponent(id)}`, 'encodeURIComponent');
  assert.equal(res.status, 200);
  assert.equal((await nextMessage(ws)).data, 'encodeURIComponent');
});

test('POST of bytes that are not UTF-8 arrives as a binary frame', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  const bytes = Buffer.from([0xff, 0xfe, 0x00, 0x01, 0xc3, 0x28, 0x80]);
  const res = await postTo(gw, id, bytes);
  assert.equal(res.status, 200);
  const m = await nextMessage(ws);
  assert.equal(m.isBinary, true);
  assert.deepEqual(m.data, bytes);
});

test('POST of an empty body delivers an empty message', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  const res = await postTo(gw, id, '');
  assert.equal(res.status, 200);
  const m = await nextMessage(ws);
  assert.equal(m.data.length, 0);
});

test('several POSTs arrive in order', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  for (let i = 0; i < 20; i++) assert.equal((await postTo(gw, id, `n${i}`)).status, 200);
  for (let i = 0; i < 20; i++) assert.equal((await nextMessage(ws)).data, `n${i}`);
});

test('POST to an unknown ID gives 410 GoneException', async () => {
  const { gw } = await startPair();
  const res = await postTo(gw, 'AAAAAAAAAAAAAAAAAAAA', 'hello');
  assert.equal(res.status, 410);
  assertErrorType(res, 'GoneException');
  assertRequestId(res);
});

test('POST, GET and DELETE to a closed connection give 410', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  ws.close(1000);
  await backend.waitForEvent('DISCONNECT', id);
  for (const res of [await postTo(gw, id, 'late'), await getConn(gw, id), await deleteConn(gw, id)]) {
    assert.equal(res.status, 410);
    assertErrorType(res, 'GoneException');
    assertRequestId(res);
  }
});

test('POST over maxMessageBytes gives 413 PayloadTooLargeException', async () => {
  const { backend, gw } = await startPair(undefined, { limits: { maxMessageBytes: 1024 } });
  const { ws, id } = await connectWithId(gw, backend);
  let res = await postTo(gw, id, 'z'.repeat(1025));
  assert.equal(res.status, 413);
  assertErrorType(res, 'PayloadTooLargeException');
  assertRequestId(res);
  res = await postTo(gw, id, 'z'.repeat(1024));
  assert.equal(res.status, 200);
  const m = await nextMessage(ws);
  assert.equal(m.data.length, 1024, 'the oversized post was not delivered, the one at the limit was');
  assert.equal(ws.readyState, ws.OPEN);
});

test('POST over the default limit (131072) gives 413', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  assert.equal((await postTo(gw, id, Buffer.alloc(131073, 0x61))).status, 413);
  assert.equal((await postTo(gw, id, Buffer.alloc(131072, 0x61))).status, 200);
  assert.equal((await nextMessage(ws)).data.length, 131072);
});

test('GET returns connectedAt, identity and lastActiveAt', async () => {
  const { backend, gw } = await startPair();
  const before = Date.now();
  const { id } = await connectWithId(gw, backend, { headers: { 'User-Agent': 'mgmt-e2e/2' } });
  const res = await getConn(gw, id);
  assert.equal(res.status, 200);
  assertRequestId(res);
  assert.match(res.headers['content-type'] ?? '', /json/);
  const body = res.json();
  assert.match(body.connectedAt, ISO_RE);
  assert.match(body.lastActiveAt, ISO_RE);
  const connectedAt = Date.parse(body.connectedAt);
  assert.ok(Math.abs(connectedAt - before) < 2000, `connectedAt ${body.connectedAt}`);
  assert.ok(Date.parse(body.lastActiveAt) >= connectedAt - 1000);
  assert.deepEqual(body.identity, { sourceIp: '127.0.0.1', userAgent: 'mgmt-e2e/2' });
});

test('GET lastActiveAt moves forward with client activity', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  const first = (await getConn(gw, id)).json();
  await sleep(1100);
  ws.send('activity');
  await nextMessage(ws);
  const second = (await getConn(gw, id)).json();
  assert.equal(second.connectedAt, first.connectedAt);
  assert.ok(Date.parse(second.lastActiveAt) > Date.parse(first.lastActiveAt),
    `lastActiveAt ${first.lastActiveAt} -> ${second.lastActiveAt}`);
});

test('GET on an unknown ID gives 410', async () => {
  const { gw } = await startPair();
  const res = await getConn(gw, 'BBBBBBBBBBBBBBBBBBBB');
  assert.equal(res.status, 410);
  assertErrorType(res, 'GoneException');
  assertRequestId(res);
});

test('DELETE gives 204 and closes the client with 1000', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  const res = await deleteConn(gw, id);
  assert.equal(res.status, 204);
  assert.equal(res.body.length, 0);
  assertRequestId(res);
  assert.equal((await waitClose(ws)).code, 1000);
  await backend.waitForEvent('DISCONNECT', id);
  assert.equal((await getConn(gw, id)).status, 410);
});

test('DELETE on an unknown ID gives 410', async () => {
  const { gw } = await startPair();
  const res = await deleteConn(gw, 'CCCCCCCCCCCCCCCCCCCC');
  assert.equal(res.status, 410);
  assertRequestId(res);
});

test('a POST while $connect is pending is delivered first once accepted', async () => {
  let gw;
  let postResult;
  const backend = await startBackend(async (ev) => {
    if (ev.requestContext.eventType === 'CONNECT') {
      postResult = postTo(gw, ev.requestContext.connectionId, 'welcome', { timeoutMs: 8000 });
      await sleep(300); // let the POST reach the gateway before the decision
      return { statusCode: 200 };
    }
    return { statusCode: 200, body: `echo: ${ev.body}` };
  });
  gw = await startGateway({ routes: makeApi(backend.url) });
  const ws = await connect(gw.url);
  const res = await postResult;
  assert.equal(res.status, 200);
  assert.equal((await nextMessage(ws)).data, 'welcome', 'the first message is the early post');
  ws.send('then this');
  assert.equal((await nextMessage(ws)).data, 'echo: then this');
});

test('a POST while $connect is pending gives 410 if the connection is refused', async () => {
  let gw;
  let postResult;
  const backend = await startBackend(async (ev) => {
    if (ev.requestContext.eventType === 'CONNECT') {
      postResult = postTo(gw, ev.requestContext.connectionId, 'welcome', { timeoutMs: 8000 });
      await sleep(300);
      return { statusCode: 403 };
    }
    return { statusCode: 200 };
  });
  gw = await startGateway({ routes: makeApi(backend.url) });
  assert.equal(await connectRefused(gw.url), 403);
  const res = await postResult;
  assert.equal(res.status, 410);
  assertErrorType(res, 'GoneException');
});

test('a client that stops reading gets 429 LimitExceededException, and the gateway stays healthy', { timeout: 60000 }, async () => {
  const { backend, gw } = await startPair();
  const slow = await connectWithId(gw, backend);
  slow.ws._socket.pause();
  const chunk = Buffer.alloc(100 * 1024, 0x41);
  const rssBefore = rssKiB(gw.proc.pid);
  let limited = null;
  let accepted = 0;
  for (let i = 0; i < 1500 && !limited; i++) {
    const res = await postTo(gw, slow.id, chunk);
    if (res.status === 200) accepted++;
    else if (res.status === 429) limited = res;
    else assert.fail(`unexpected status ${res.status} after ${accepted} accepted posts`);
  }
  assert.ok(limited, `no 429 after ${accepted} posts of 100 KB to a client that does not read`);
  assertErrorType(limited, 'LimitExceededException');
  assertRequestId(limited);

  // Further posts keep being refused without memory growing.
  const rssAtLimit = rssKiB(gw.proc.pid);
  for (let i = 0; i < 50; i++) {
    assert.equal((await postTo(gw, slow.id, chunk)).status, 429);
  }
  const rssAfter = rssKiB(gw.proc.pid);
  assert.ok(rssAfter - rssAtLimit < 32 * 1024, `RSS grew from ${rssAtLimit} to ${rssAfter} KiB while refusing posts`);
  assert.ok(rssAfter - rssBefore < 512 * 1024, `RSS grew from ${rssBefore} to ${rssAfter} KiB for one slow client`);

  // Other clients are unaffected.
  const other = await connectWithId(gw, backend);
  other.ws.send('still fine');
  assert.equal((await nextMessage(other.ws)).data, 'still fine');
  assert.equal((await postTo(gw, other.id, 'direct')).status, 200);
  assert.equal((await nextMessage(other.ws)).data, 'direct');
});

test('every management response carries x-amzn-RequestId, including unknown paths', async () => {
  const { backend, gw } = await startPair();
  const { id } = await connectWithId(gw, backend);
  const ids = new Set();
  for (const res of [
    await getConn(gw, id),
    await postTo(gw, id, 'x'),
    await getConn(gw, 'unknown-connection-id'),
    await mgmtRequest(gw, 'GET', '/no/such/path'),
    await mgmtRequest(gw, 'PUT', `/@connections/${id}`, 'x'),
  ]) {
    assertRequestId(res);
    ids.add(res.headers['x-amzn-requestid']);
  }
  assert.equal(ids.size, 5, 'request IDs are unique');
});

test('the AWS SDK v3 client can post, get and delete', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend, { headers: { 'User-Agent': 'sdk-e2e' } });
  const client = sdkClient(gw);
  try {
    await client.send(new PostToConnectionCommand({ ConnectionId: id, Data: 'from the sdk' }));
    assert.equal((await nextMessage(ws)).data, 'from the sdk');

    await client.send(new PostToConnectionCommand({ ConnectionId: id, Data: new Uint8Array([0xde, 0xad, 0xbe, 0xef]) }));
    const bin = await nextMessage(ws);
    assert.equal(bin.isBinary, true);
    assert.deepEqual(bin.data, Buffer.from([0xde, 0xad, 0xbe, 0xef]));

    const info = await client.send(new GetConnectionCommand({ ConnectionId: id }));
    assert.ok(info.ConnectedAt instanceof Date && !Number.isNaN(info.ConnectedAt.getTime()));
    assert.ok(info.LastActiveAt instanceof Date && !Number.isNaN(info.LastActiveAt.getTime()));
    assert.equal(info.Identity.SourceIp, '127.0.0.1');
    assert.equal(info.Identity.UserAgent, 'sdk-e2e');

    await client.send(new DeleteConnectionCommand({ ConnectionId: id }));
    assert.equal((await waitClose(ws)).code, 1000);
  } finally {
    client.destroy();
  }
});

test('the AWS SDK raises GoneException for a closed connection', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  ws.close(1000);
  await backend.waitForEvent('DISCONNECT', id);
  const client = sdkClient(gw);
  try {
    for (const cmd of [
      new PostToConnectionCommand({ ConnectionId: id, Data: 'too late' }),
      new GetConnectionCommand({ ConnectionId: id }),
      new DeleteConnectionCommand({ ConnectionId: id }),
    ]) {
      await assert.rejects(client.send(cmd), (err) => {
        assert.equal(err.name, 'GoneException', `${cmd.constructor.name}: ${err.name}: ${err.message}`);
        assert.equal(err.$metadata?.httpStatusCode, 410);
        assert.ok(err.$metadata?.requestId, 'the SDK found the request ID');
        return true;
      });
    }
  } finally {
    client.destroy();
  }
});

test('the AWS SDK raises PayloadTooLargeException over the limit', async () => {
  const { backend, gw } = await startPair(undefined, { limits: { maxMessageBytes: 100 } });
  const { id } = await connectWithId(gw, backend);
  const client = sdkClient(gw);
  try {
    await assert.rejects(
      client.send(new PostToConnectionCommand({ ConnectionId: id, Data: 'p'.repeat(101) })),
      (err) => err.name === 'PayloadTooLargeException' && err.$metadata?.httpStatusCode === 413,
    );
  } finally {
    client.destroy();
  }
});

test('management requests reach a connection of any API, each API keeping its own limits', async () => {
  const backend = await startBackend();
  const a = makeApi(backend.url, { name: 'a', stage: 'alpha', basePath: '/a', limits: { maxMessageBytes: 100 } });
  const b = makeApi(backend.url, { name: 'b', stage: 'beta', basePath: '/b' });
  const gw = await startGateway({ routes: [a, b] });
  const ca = await connectWithId(gw, backend, {}, '/a');
  const cb = await connectWithId(gw, backend, {}, '/b');
  assert.equal(ca.connectEvent.requestContext.stage, 'alpha');
  assert.equal(cb.connectEvent.requestContext.stage, 'beta');
  assert.equal((await postTo(gw, ca.id, 'to a')).status, 200);
  assert.equal((await postTo(gw, cb.id, 'to b')).status, 200);
  assert.equal((await nextMessage(ca.ws)).data, 'to a');
  assert.equal((await nextMessage(cb.ws)).data, 'to b');
  assert.equal((await postTo(gw, ca.id, 'x'.repeat(101))).status, 413);
  assert.equal((await postTo(gw, cb.id, 'x'.repeat(101))).status, 200);
});
