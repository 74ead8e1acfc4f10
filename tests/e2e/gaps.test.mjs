// Known gaps closed (README "Known gaps"): one keep-alive socket on the
// gateway listener carrying both REST and /{stage}/@connections requests,
// the JWT authorizer's 401, hot reload freeing a backend pool no
// configuration names any more.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { generateKeyPairSync, sign, randomBytes } from 'node:crypto';
import https from 'node:https';
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import {
  ApiGatewayManagementApiClient, PostToConnectionCommand, GetConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import {
  test, assert, routeKeyEcho, startMixed, startBackend, startGateway, makeApi, connectWithId, nextMessage, withTimeout,
  rawConnect, waitResponses, sleep, pendingMessages, send, waitUntil,
} from './helpers.mjs';

/** One request through `agent`; resolves { status, text, reused, socket }. */
function viaAgent(agent, port, method, urlPath, body, mod = http) {
  const p = new Promise((resolve, reject) => {
    const req = mod.request({
      host: '127.0.0.1', port, method, path: urlPath, agent, rejectUnauthorized: false,
      headers: body === undefined ? {} : { 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, text, reused: req.reusedSocket,
        connection: res.headers.connection }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
  return withTimeout(p, 5000, `${method} ${urlPath}`);
}

test('gap 1: a keep-alive socket on the gateway port serves REST then @connections then REST, each by its path', async () => {
  const { gw, backend } = await startMixed();
  const { ws, id } = await connectWithId(gw, backend);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const mgmt = `/dev/@connections/${encodeURIComponent(id)}`;
  try {
    const a = await viaAgent(agent, gw.port, 'GET', '/hello');
    assert.equal(a.status, 200, a.text);
    assert.equal(JSON.parse(a.text).routeKey, 'GET /hello');
    // The same socket (a REST connection by now) takes a management request.
    const b = await viaAgent(agent, gw.port, 'POST', mgmt, 'after REST');
    assert.equal(b.status, 200, b.text);
    assert.equal(b.reused, true, 'the management request went on the REST socket');
    assert.equal((await nextMessage(ws)).data, 'after REST');
    const c = await viaAgent(agent, gw.port, 'GET', '/hello');
    assert.equal(c.status, 200, c.text);
    assert.equal(JSON.parse(c.text).routeKey, 'GET /hello');
    const d = await viaAgent(agent, gw.port, 'GET', mgmt);
    assert.equal(d.status, 200, d.text);
    assert.equal(JSON.parse(d.text).identity.sourceIp, '127.0.0.1');
    for (let i = 0; i < 3; i++) {
      const e = await viaAgent(agent, gw.port, 'POST', mgmt, `m${i}`);
      assert.equal(e.status, 200, e.text);
      assert.equal((await nextMessage(ws)).data, `m${i}`);
      const f = await viaAgent(agent, gw.port, 'GET', '/hello');
      assert.equal(f.status, 200, f.text);
    }
  } finally {
    agent.destroy();
    ws.close(1000);
  }
});

test('gap 1: the AWS SDK and REST calls sharing one keep-alive agent on the gateway port are each served', async () => {
  const { gw, backend } = await startMixed();
  const { ws, id } = await connectWithId(gw, backend);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const api = new ApiGatewayManagementApiClient({
    endpoint: `http://127.0.0.1:${gw.port}/dev`, region: 'us-east-1', maxAttempts: 1,
    credentials: { accessKeyId: 'AKIAWSGATELOCAL00000', secretAccessKey: 'local' },
    requestHandler: new NodeHttpHandler({ httpAgent: agent }),
  });
  try {
    for (let i = 0; i < 3; i++) {
      const r = await viaAgent(agent, gw.port, 'GET', '/hello');
      assert.equal(r.status, 200, r.text);
      assert.equal(JSON.parse(r.text).routeKey, 'GET /hello');
      await api.send(new PostToConnectionCommand({ ConnectionId: id, Data: `sdk ${i}` }));
      assert.equal((await nextMessage(ws)).data, `sdk ${i}`);
      const info = await api.send(new GetConnectionCommand({ ConnectionId: id }));
      assert.equal(info.Identity.SourceIp, '127.0.0.1');
    }
  } finally {
    api.destroy();
    agent.destroy();
    ws.close(1000);
  }
});

test('gap 1: with managementAuth the signed SDK and REST share one keep-alive agent on the gateway port', async () => {
  const secret = randomBytes(30).toString('base64');
  const accessKeyId = 'AKIAWSGATEGAPSAAAAAA';
  const { gw, backend } = await startMixed([], {
    apiExtra: { managementAuth: { keys: [{ accessKeyId, secretAccessKeyEnv: 'WSGATE_TEST_GAPS_SECRET' }] } },
    env: { WSGATE_TEST_GAPS_SECRET: secret },
  });
  const { ws, id } = await connectWithId(gw, backend);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const api = new ApiGatewayManagementApiClient({
    endpoint: `http://127.0.0.1:${gw.port}/dev`, region: 'us-east-1', maxAttempts: 1,
    credentials: { accessKeyId, secretAccessKey: secret },
    requestHandler: new NodeHttpHandler({ httpAgent: agent }),
  });
  try {
    for (let i = 0; i < 2; i++) {
      assert.equal((await viaAgent(agent, gw.port, 'GET', '/hello')).status, 200);
      await api.send(new PostToConnectionCommand({ ConnectionId: id, Data: `signed ${i}` }));
      assert.equal((await nextMessage(ws)).data, `signed ${i}`);
    }
  } finally {
    api.destroy();
    agent.destroy();
    ws.close(1000);
  }
});

test('gap 1: over https one keep-alive connection serves REST then @connections', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgate-gaps-tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost',
    '-keyout', key, '-out', cert, '-days', '2'], { stdio: 'ignore' });
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
  try {
    const { gw, backend } = await startMixed(['--tls-cert', cert, '--tls-key', key, '--mgmt-on-gateway']);
    const { ws, id } = await connectWithId({ ...gw, url: `wss://127.0.0.1:${gw.port}` }, backend,
      { rejectUnauthorized: false });
    const mgmt = `/dev/@connections/${encodeURIComponent(id)}`;
    assert.equal((await viaAgent(agent, gw.port, 'GET', '/hello', undefined, https)).status, 200);
    const b = await viaAgent(agent, gw.port, 'POST', mgmt, 'over tls', https);
    assert.equal(b.status, 200, b.text);
    assert.equal(b.reused, true);
    assert.equal((await nextMessage(ws)).data, 'over tls');
    assert.equal((await viaAgent(agent, gw.port, 'GET', '/hello', undefined, https)).status, 200);
    ws.close(1000);
  } finally {
    agent.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('gap 1: a request line split across segments, and a management request pipelined behind REST (503, close, nothing posted)', async () => {
  const { gw, backend } = await startMixed();
  const { ws, id } = await connectWithId(gw, backend);
  const mgmt = `/dev/@connections/${encodeURIComponent(id)}`;
  // REST first, then the management request line in two pieces.
  const sock = await rawConnect(gw.port);
  sock.write('GET /hello HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitResponses(sock, ['GET']);
  sock.write(`POST ${mgmt.slice(0, 8)}`);
  await sleep(100);
  sock.write(`${mgmt.slice(8)} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nsplit`);
  const r = await waitResponses(sock, ['GET', 'POST']);
  assert.equal(r.responses[1].status, 200, r.responses[1].body.toString());
  assert.equal((await nextMessage(ws)).data, 'split');
  await sock.closedPromise; // the management answer ended the connection
  // Pipelined behind REST (already read with it): refused, not misrouted.
  const pipe = await rawConnect(gw.port);
  pipe.write(`GET /hello HTTP/1.1\r\nHost: x\r\n\r\nPOST ${mgmt} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\npipe`);
  const p = await waitResponses(pipe, ['GET', 'POST']);
  assert.equal(p.responses[0].status, 200);
  assert.equal(p.responses[1].status, 503);
  assert.equal(p.responses[1].headers.connection, 'close');
  await sleep(200);
  assert.equal(pendingMessages(ws).length, 0);
  ws.close(1000);
});

// ---------------------------------------------------------------------------
// Gap 2: the JWT authorizer's 401 challenge
// ---------------------------------------------------------------------------

const jwtKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ISSUER = 'https://issuer.example.com/';

function signJwt(claims) {
  const input = `${Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: 'k1' })).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${input}.${sign('sha256', Buffer.from(input), jwtKey.privateKey).toString('base64url')}`;
}

/** An upgrade request; resolves { status, headers, body } of its refusal. */
function upgradeAnswer(port, headers) {
  const p = new Promise((resolve, reject) => {
    const req = http.get({
      host: '127.0.0.1', port, path: '/', agent: false,
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers },
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('upgrade', () => reject(new Error('the upgrade was accepted')));
    req.on('error', reject);
  });
  return withTimeout(p, 5000, 'upgrade answer');
}

test('gap 2: a JWT authorizer\'s 401 carries AWS\'s www-authenticate Bearer challenge', async () => {
  const backend = await startBackend();
  const api = makeApi(backend.url);
  api.authorizers = {
    jwt: { type: 'JWT', identitySource: 'route.request.header.Authorization',
      jwtConfiguration: { issuer: ISSUER, audience: ['chat-app'], jwksFile: 'keys/jwks.json' } },
  };
  api.routes.$connect.authorizer = 'jwt';
  const jwks = JSON.stringify({ keys: [{ ...jwtKey.publicKey.export({ format: 'jwk' }), kid: 'k1', use: 'sig' }] });
  const gw = await startGateway({ routes: { 'chat.json': api, 'keys/jwks.json': jwks } });
  const t = Math.floor(Date.now() / 1000);
  const claims = { iss: ISSUER, aud: 'chat-app', sub: 'u', exp: t + 300, iat: t - 10 };
  const audience = await upgradeAnswer(gw.port, { Authorization: `Bearer ${signJwt({ ...claims, aud: 'other' })}` });
  assert.equal(audience.status, 401);
  assert.deepEqual(JSON.parse(audience.body), { message: 'Unauthorized' });
  assert.equal(audience.headers['www-authenticate'],
    'Bearer scope="" error="invalid_token" error_description="the token does not have a valid audience"');
  const expired = await upgradeAnswer(gw.port, { Authorization: signJwt({ ...claims, exp: t - 60 }) });
  assert.equal(expired.status, 401);
  assert.equal(expired.headers['www-authenticate'],
    'Bearer scope="" error="invalid_token" error_description="the token has expired"');
  // No token at all: a challenge without an error (RFC 6750 §3.1).
  const none = await upgradeAnswer(gw.port, {});
  assert.equal(none.status, 401);
  assert.equal(none.headers['www-authenticate'], 'Bearer');
  assert.equal(backend.events.length, 0);
});

// ---------------------------------------------------------------------------
// Gap 4: hot reload frees a pool no configuration names any more
// ---------------------------------------------------------------------------

/** A Lambda-proxy backend that keeps idle keep-alive sockets for minutes; counts them. */
async function startKeepingBackend() {
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const body = JSON.stringify({ statusCode: 200, body: 'from B' });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 120000;
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}/b`,
    sockets,
    close: () => new Promise((r) => { for (const s of sockets) s.destroy(); server.close(r); }),
  };
}

function withB(backendUrl, bUrl) {
  const api = makeApi(backendUrl);
  api.integrations.other = { type: 'AWS_PROXY', uri: bUrl, timeoutMs: 5000 };
  api.routes.b = { integration: 'other', routeResponse: true };
  api.routes['GET /b'] = { integration: 'other' };
  return api;
}

test('gap 4: a reload that drops an integration frees its pool (idle connections closed) once no snapshot, call or connection names it', async () => {
  const backend = await startBackend(routeKeyEcho);
  const b = await startKeepingBackend();
  try {
    const gw = await startGateway({ routes: { 'chat.json': withB(backend.url, b.url) }, args: ['--workers', '1'] });
    // A pooled connection to B, from a WebSocket route and a REST route.
    const { ws } = await connectWithId(gw, backend);
    send(ws, JSON.stringify({ action: 'b' }));
    assert.equal((await nextMessage(ws)).data, 'from B');
    const r = await viaAgent(false, gw.port, 'GET', '/b');
    assert.equal(r.text, 'from B');
    await waitUntil(() => b.sockets.size >= 1, 3000, 'a pooled connection to B');
    // The reload drops B; the open WebSocket keeps its snapshot, and with
    // it the pool.
    fs.writeFileSync(path.join(gw.routesDir, 'chat.json'), JSON.stringify(makeApi(backend.url)));
    gw.proc.kill('SIGHUP');
    await waitUntil(() => /reload: configuration 1 in use by every loop/.test(gw.output()), 5000, 'the reload');
    await sleep(1500);
    assert.ok(b.sockets.size >= 1, 'the pool stays while a connection holds the older snapshot');
    send(ws, JSON.stringify({ action: 'b' }));
    assert.equal((await nextMessage(ws)).data, 'from B');
    ws.close(1000);
    // Once nothing names it: freed, its idle connection closed.
    await waitUntil(() => b.sockets.size === 0, 5000, 'the pool to B to close its connections');
    // The gateway goes on; a new connection reaches A.
    const again = await connectWithId(gw, backend);
    again.ws.close(1000);
  } finally {
    await b.close();
  }
});
