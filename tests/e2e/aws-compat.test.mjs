// Issue 15, "Differences to close": what an AWS API Gateway WebSocket app
// sees on AWS and must see the same on wsgate. Each test names its item;
// the AWS behaviour and its source are in the README's "Compared with AWS
// API Gateway" table.

import {
  test, assert, startPair, connect, connectWithId, nextMessage, waitClose, send,
  postTo, rawConnect, upgradeRequest, serverFrames, waitUntil, startGateway, makeApi,
  unusedUrl, GARBAGE, DESTROY, HANG, startBackend, mgmtRequest, getConn, startHttpBackend,
} from './helpers.mjs';
import http from 'node:http';
import { derivedApiId } from './aws-ids.mjs';
import {
  ApiGatewayManagementApiClient, PostToConnectionCommand, GetConnectionCommand, DeleteConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

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

test('item 2: a $connect Lambda that throws or answers badly gives 502 {"message": "Internal server error"}', async () => {
  for (const [name, answer] of [['throws', () => { throw new Error('boom'); }], ['not JSON', () => GARBAGE],
    ['no statusCode', () => ({ body: 'x', statusCode: 'abc' })], ['drops the call', () => DESTROY]]) {
    const { gw } = await startPair(answer);
    const sock = await rawConnect(gw.port);
    sock.write(upgradeRequest('/'));
    await waitUntil(() => sock.received.includes('\r\n\r\n') && sock.received.includes('}'), 5000, 'the answer');
    const text = sock.received.toString();
    assert.match(text, /^HTTP\/1\.1 502 /, name);
    assert.equal(text.slice(text.indexOf('\r\n\r\n') + 4), '{"message": "Internal server error"}', name);
    sock.destroy();
    await gw.stop();
  }
  // Unreachable: the Lambda cannot be invoked, also 502 here.
  const gw = await startGateway({ routes: makeApi(await unusedUrl()) });
  const sock = await rawConnect(gw.port);
  sock.write(upgradeRequest('/'));
  await waitUntil(() => sock.received.includes('}'), 5000, 'the answer');
  assert.match(sock.received.toString(), /^HTTP\/1\.1 502 /);
});

test('item 3: requestContext.domainName is the host without the port', async () => {
  const { gw, backend } = await startPair();
  const { ws, id, connectEvent } = await connectWithId(gw, backend);
  assert.equal(connectEvent.requestContext.domainName, '127.0.0.1');
  ws.send('{"action":"hello"}');
  await nextMessage(ws);
  const msg = await backend.waitForEvent('MESSAGE', id);
  assert.equal(msg.requestContext.domainName, '127.0.0.1');
  ws.close(1000);
  const d = await backend.waitForEvent('DISCONNECT', id);
  assert.equal(d.requestContext.domainName, '127.0.0.1');
});

test('item 4: CONNECT headers as AWS: X-Forwarded-*, X-Amzn-Trace-Id, no Connection/Upgrade; DISCONNECT has AWS\'s small set', async () => {
  const { gw, backend } = await startPair();
  const { ws, id, connectEvent: ev } = await connectWithId(gw, backend);
  const names = Object.keys(ev.headers).map((k) => k.toLowerCase());
  assert.ok(!names.includes('connection'), JSON.stringify(ev.headers));
  assert.ok(!names.includes('upgrade'), JSON.stringify(ev.headers));
  assert.ok(names.includes('sec-websocket-key'));
  assert.equal(ev.headers['X-Forwarded-For'], '127.0.0.1');
  assert.equal(ev.headers['X-Forwarded-Port'], String(gw.port));
  assert.equal(ev.headers['X-Forwarded-Proto'], 'http');
  assert.match(ev.headers['X-Amzn-Trace-Id'], /^Root=1-[0-9a-f]{8}-[0-9a-f]{24}$/);
  assert.deepEqual(ev.multiValueHeaders['X-Amzn-Trace-Id'], [ev.headers['X-Amzn-Trace-Id']]);
  ws.close(1000);
  const d = await backend.waitForEvent('DISCONNECT', id);
  assert.deepEqual(d.headers, { Host: '127.0.0.1', 'x-api-key': '', 'X-Forwarded-For': '', 'x-restapi': '' });
  assert.deepEqual(d.multiValueHeaders, { Host: ['127.0.0.1'], 'x-api-key': [''], 'X-Forwarded-For': [''], 'x-restapi': [''] });
});

test('item 4: a REQUEST authorizer\'s event keeps Connection and Upgrade and carries content-length 0, as AWS\'s captured one; methodArn names the API\'s accountId', async () => {
  // powertools-lambda-python tests/events/apiGatewayAuthorizerWebSocketEvent.json:
  // the authorizer's headers, unlike the CONNECT event's, keep the handshake's.
  const backend = await startBackend();
  const auth = await startBackend((e) => ({ isAuthorized: true, context: {} }));
  const api = makeApi(backend.url);
  api.integrations.authz = { type: 'AWS_PROXY', uri: auth.url, timeoutMs: 2000 };
  api.authorizers = { auth: { type: 'REQUEST', integration: 'authz', identitySource: ['route.request.header.Authorization'] } };
  api.routes.$connect.authorizer = 'auth';
  api.accountId = '123456789012';
  const gw = await startGateway({ routes: api });
  const { ws, connectEvent } = await connectWithId(gw, backend, { headers: { Authorization: 'Leo' } });
  const input = auth.events[0];
  // The API's accountId (item 7) names the account in methodArn too.
  assert.equal(input.methodArn, `arn:aws:execute-api:local:123456789012:${derivedApiId('chat')}/dev/$connect`);
  assert.equal(input.headers.Connection, 'Upgrade');
  assert.equal(input.headers.Upgrade, 'websocket');
  assert.equal(input.headers['content-length'], '0');
  assert.deepEqual(input.multiValueHeaders['content-length'], ['0']);
  assert.equal(input.headers['X-Forwarded-Proto'], 'http');
  assert.match(input.headers['X-Amzn-Trace-Id'], /^Root=1-[0-9a-f]{8}-[0-9a-f]{24}$/);
  // The CONNECT event that follows keeps AWS's own set.
  for (const name of ['Connection', 'Upgrade', 'content-length']) assert.equal(connectEvent.headers[name], undefined, name);
  ws.close(1000);
});

test('item 2: a REQUEST authorizer Lambda that fails with "Unauthorized" (Lambda\'s error answer, as the runner gives it) gets 401; another failure 500', async () => {
  // AWS: an authorizer that throws or calls back "Unauthorized" gives 401
  // (reference §5.4). The runner answers a Lambda error as Lambda's invoke
  // does: 502, X-Amz-Function-Error, {errorType, errorMessage, trace}.
  const backend = await startBackend();
  const auth = await startHttpBackend((r) => ({
    status: 502, headers: { 'content-type': 'application/json', 'x-amz-function-error': 'Unhandled' },
    body: { errorType: 'string', errorMessage: r.text.includes('"token":"boom"') ? 'Internal' : 'Unauthorized', trace: [] },
  }));
  const api = makeApi(backend.url);
  api.integrations.authz = { type: 'AWS_PROXY', uri: `${auth.origin}/functions/Auth`, timeoutMs: 2000 };
  api.authorizers = { auth: { type: 'REQUEST', integration: 'authz', identitySource: ['route.request.header.token'] } };
  api.routes.$connect.authorizer = 'auth';
  const gw = await startGateway({ routes: api });
  for (const [token, status] of [['nope', 401], ['boom', 500]]) {
    const sock = await rawConnect(gw.port);
    sock.write(upgradeRequest('/', { token }));
    await waitUntil(() => sock.received.includes('}'), 5000, 'the answer');
    const text = sock.received.toString();
    assert.match(text, new RegExp(`^HTTP/1\\.1 ${status} `), `${token}: ${text}`);
    sock.destroy();
  }
  assert.equal(backend.events.length, 0);
});

test('item 5: a WebSocket upgrade on a path no API serves gets 403 {"message":"Forbidden"}', async () => {
  const { gw, backend } = await startPair(undefined, { basePath: '/chat' });
  const sock = await rawConnect(gw.port);
  sock.write(upgradeRequest('/other'));
  await waitUntil(() => sock.received.includes('}'), 5000, 'the answer');
  const text = sock.received.toString();
  assert.match(text, /^HTTP\/1\.1 403 /);
  assert.equal(text.slice(text.indexOf('\r\n\r\n') + 4), '{"message":"Forbidden"}');
  assert.equal(backend.events.length, 0);
});

test('item 6: apiId is 10 lowercase characters, derived from the name or given; request IDs do not count up', async () => {
  const { gw, backend } = await startPair();
  const { ws, connectEvent } = await connectWithId(gw, backend);
  assert.match(connectEvent.requestContext.apiId, /^[a-z0-9]{10}$/);
  assert.equal(connectEvent.requestContext.apiId, derivedApiId('chat'));
  const ids = [];
  for (let i = 0; i < 4; i++) {
    ws.send(`{"action":"x","i":${i}}`);
    await nextMessage(ws);
  }
  await waitUntil(() => backend.eventsOf('MESSAGE').length === 4, 5000, 'four messages');
  for (const e of backend.eventsOf('MESSAGE')) ids.push(e.requestContext.requestId);
  // Consecutive IDs share no long common prefix (a counter changes only its end).
  for (let i = 1; i < ids.length; i++) {
    let p = 0;
    while (ids[i][p] === ids[i - 1][p]) p++;
    assert.ok(p < ids[i].length - 4, `${ids[i - 1]} then ${ids[i]}`);
  }
  const p2 = await startPair(undefined, { apiId: 'abcde12345' });
  const c2 = await connectWithId(p2.gw, p2.backend);
  assert.equal(c2.connectEvent.requestContext.apiId, 'abcde12345');
});

function httpGet(gw, urlPath, headers = {}) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: gw.port, path: urlPath, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString() }));
    }).on('error', reject);
  });
}

test('item 7: REST payload 2.0 as AWS HTTP APIs: trace and forwarded headers, accountId, domainPrefix, $default stage, bare string, timeout 503', async () => {
  const backend = await startBackend((e) => (e.rawPath === '/slow' ? HANG : 'plain "text"'));
  const api = {
    name: 'shop', stage: 'dev', basePath: '/', accountId: '123456789012',
    integrations: { lam: { type: 'AWS_PROXY', uri: backend.url, timeoutMs: 300 } },
    routes: { 'GET /items': { integration: 'lam' }, 'GET /slow': { integration: 'lam' } },
  };
  const gw = await startGateway({ routes: api });
  const res = await httpGet(gw, '/items');
  assert.equal(res.status, 200);
  assert.equal(res.text, 'plain "text"');
  const ev = backend.events.find((e) => e.version === '2.0');
  assert.match(ev.headers['x-amzn-trace-id'], /^Root=1-[0-9a-f]{8}-[0-9a-f]{24}$/);
  assert.equal(ev.headers['x-forwarded-for'], '127.0.0.1');
  assert.equal(ev.headers['x-forwarded-proto'], 'http');
  assert.equal(ev.headers['x-forwarded-port'], String(gw.port));
  assert.equal(ev.requestContext.accountId, '123456789012');
  assert.equal(ev.requestContext.domainPrefix, derivedApiId('shop'));
  assert.equal(ev.requestContext.stage, '$default');
  const named = await httpGet(gw, '/items', { Host: 'shop.example.com' });
  assert.equal(named.status, 200);
  assert.equal(backend.events.filter((e) => e.version === '2.0').at(-1).requestContext.domainPrefix, 'shop');
  const slow = await httpGet(gw, '/slow');
  assert.equal(slow.status, 503);
  assert.equal(slow.text, '{"message":"Service Unavailable"}');
  backend.dropHung();
});

test('item 7: REST rawPath and pathParameters arrive decoded, as in AWS captures', async () => {
  const backend = await startBackend(() => ({ statusCode: 200, body: 'ok' }));
  const gw = await startGateway({ routes: {
    name: 'shop', stage: 'dev', basePath: '/',
    integrations: { lam: { type: 'AWS_PROXY', uri: backend.url, timeoutMs: 3000 } },
    routes: { 'GET /items/{id}': { integration: 'lam' } },
  } });
  assert.equal((await httpGet(gw, '/items/caf%C3%A9%20au%20lait')).status, 200);
  const ev = backend.events.find((e) => e.version === '2.0');
  assert.equal(ev.rawPath, '/items/café au lait');
  assert.equal(ev.requestContext.http.path, '/items/café au lait');
  assert.deepEqual(ev.pathParameters, { id: 'café au lait' });
});

// Item 3, second half: the gateway's own host serves /{stage}/@connections.
const onGateway = (gw) => ({ mgmtPort: gw.port }); // mgmtRequest, aimed at the gateway listener
const gatewaySdk = (gw, credentials = { accessKeyId: 'AKIAWSGATELOCAL00000', secretAccessKey: 'local' }) =>
  new ApiGatewayManagementApiClient({
    endpoint: `http://127.0.0.1:${gw.port}/dev`, region: 'us-east-1', credentials, maxAttempts: 1,
  });

test('item 3: with --mgmt-on-gateway the AWS SDK posts, gets and deletes through the gateway port', async () => {
  const { gw, backend } = await startPair(undefined, {}, { args: ['--mgmt-on-gateway'] });
  const { ws, id } = await connectWithId(gw, backend);
  const api = gatewaySdk(gw);
  await api.send(new PostToConnectionCommand({ ConnectionId: id, Data: 'via the gateway' }));
  assert.equal((await nextMessage(ws)).data, 'via the gateway');
  const info = await api.send(new GetConnectionCommand({ ConnectionId: id }));
  assert.equal(info.Identity.SourceIp, '127.0.0.1');
  await api.send(new DeleteConnectionCommand({ ConnectionId: id }));
  await waitClose(ws);
  // The listener still serves WebSocket and answers other paths as before.
  const again = await connectWithId(gw, backend);
  again.ws.close(1000);
  const r = await mgmtRequest(onGateway(gw), 'GET', '/dev/other');
  assert.notEqual(r.status, 200);
  api.destroy();
});

test('item 3: with managementAuth the signed SDK works through the gateway port; unsigned gets 403', async () => {
  const secret = randomBytes(30).toString('base64');
  const accessKeyId = 'AKIAWSGATETESTAAAAAA';
  const { gw, backend } = await startPair(undefined, {
    managementAuth: { keys: [{ accessKeyId, secretAccessKeyEnv: 'WSGATE_TEST_MGMT_SECRET_A' }] },
  }, { env: { WSGATE_TEST_MGMT_SECRET_A: secret } });
  const { ws, id } = await connectWithId(gw, backend);
  const api = gatewaySdk(gw, { accessKeyId, secretAccessKey: secret });
  await api.send(new PostToConnectionCommand({ ConnectionId: id, Data: 'signed' }));
  assert.equal((await nextMessage(ws)).data, 'signed');
  const unsigned = await mgmtRequest(onGateway(gw), 'POST', `/dev/@connections/${id}`, 'unsigned');
  assert.equal(unsigned.status, 403, unsigned.text);
  const wrong = gatewaySdk(gw, { accessKeyId, secretAccessKey: 'not the secret' });
  await assert.rejects(wrong.send(new PostToConnectionCommand({ ConnectionId: id, Data: 'x' })),
    (e) => e.$metadata?.httpStatusCode === 403);
  await api.send(new DeleteConnectionCommand({ ConnectionId: id }));
  await waitClose(ws);
  api.destroy();
  wrong.destroy();
});

test('item 3: without managementAuth or --mgmt-on-gateway the gateway port does not serve @connections', async () => {
  const { gw, backend } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  const r = await mgmtRequest(onGateway(gw), 'POST', `/dev/@connections/${id}`, 'nope');
  assert.ok(r.status === 403 || r.status === 404, `${r.status} ${r.text}`);
  assert.equal((await getConn(gw, id)).status, 200); // still open, nothing was posted
  assert.equal((await postTo(gw, id, 'marker')).status, 200);
  assert.equal((await nextMessage(ws)).data, 'marker');
  ws.close(1000);
});

test('item 3: over TLS (https listener) --mgmt-on-gateway serves @connections too', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgate-awsc-tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost',
    '-keyout', key, '-out', cert, '-days', '2'], { stdio: 'ignore' });
  try {
    const { gw, backend } = await startPair(undefined, {},
      { args: ['--tls-cert', cert, '--tls-key', key, '--mgmt-on-gateway'] });
    const { ws, id } = await connectWithId({ ...gw, url: `wss://127.0.0.1:${gw.port}` }, backend,
      { rejectUnauthorized: false });
    const request = (method, body) => new Promise((resolve, reject) => {
      const req = https.request({
        host: '127.0.0.1', port: gw.port, method, path: `/dev/@connections/${encodeURIComponent(id)}`,
        rejectUnauthorized: false, agent: false,
        headers: body ? { 'content-type': 'application/octet-stream', 'content-length': Buffer.byteLength(body) } : {},
      }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      });
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(await request('POST', 'over https'), 200);
    assert.equal((await nextMessage(ws)).data, 'over https');
    assert.equal(await request('GET'), 200);
    assert.equal(await request('DELETE'), 204);
    await waitClose(ws);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('item 5: a management path without a stage gets 403 {"message":"Forbidden"} on the gateway port; the management listener keeps /@connections/{id}', async () => {
  const { gw, backend } = await startPair(undefined, {}, { args: ['--mgmt-on-gateway'] });
  const { ws, id } = await connectWithId(gw, backend);
  const eid = encodeURIComponent(id);
  for (const [method, p, body] of [
    ['POST', `/@connections/${eid}`, 'stageless'], ['GET', `/@connections/${eid}`],
    ['DELETE', `/@connections/${eid}`], ['POST', `/%40connections/${eid}`, 'stageless'],
    ['GET', '/@connections'],
  ]) {
    const r = await mgmtRequest(onGateway(gw), method, p, body);
    assert.equal(r.status, 403, `${method} ${p}: ${r.status} ${r.text}`);
    assert.deepEqual(r.json(), { message: 'Forbidden' });
  }
  // The SDK given the host without the stage fails as on AWS (aws/aws-sdk-php#1955).
  const api = new ApiGatewayManagementApiClient({
    endpoint: `http://127.0.0.1:${gw.port}`, region: 'us-east-1', maxAttempts: 1,
    credentials: { accessKeyId: 'AKIAWSGATELOCAL00000', secretAccessKey: 'local' },
  });
  await assert.rejects(api.send(new PostToConnectionCommand({ ConnectionId: id, Data: 'x' })),
    (e) => e.$metadata?.httpStatusCode === 403);
  api.destroy();
  // Nothing reached the connection; wsgate's own management listener still
  // takes the stageless path, and /{stage}/ still works on the gateway port.
  assert.equal((await postTo(gw, id, 'own API')).status, 200);
  assert.equal((await nextMessage(ws)).data, 'own API');
  assert.equal((await mgmtRequest(onGateway(gw), 'POST', `/dev/@connections/${eid}`, 'staged')).status, 200);
  assert.equal((await nextMessage(ws)).data, 'staged');
  ws.close(1000);
});
