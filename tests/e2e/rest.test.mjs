// REST routes ("METHOD /path") on the gateway listener, beside the WebSocket
// endpoint: route matching and priority (AWS HTTP API rules, §8.1), the
// payload format 2.0 event and its response rules (§8.2), HTTP_PROXY and MOCK
// integrations, errors, CORS (§8.5), keep-alive, pipelining, HEAD and https.
// Real backends (node:http) and real clients (node:http/https, raw sockets).
import { execFileSync } from 'node:child_process';
import { derivedApiId } from './aws-ids.mjs';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import {
  test, assert, startBackend, startHttpBackend, startGateway, unusedUrl, connect, nextMessage,
  rawConnect, raw, withTimeout, waitUntil, sleep, DESTROY, GARBAGE, HANG,
  parseResponses, waitResponses,
} from './helpers.mjs';

// ---------------------------------------------------------------------------
// Local helpers
// ---------------------------------------------------------------------------

/** An API file with only the given integrations and routes. */
function restApi({ name = 'shop', basePath = '/', integrations, routes, ...rest }) {
  return { name, stage: 'dev', basePath, integrations, routes, ...rest };
}

const awsProxy = (backend, extra = {}) => ({ type: 'AWS_PROXY', uri: backend.url, timeoutMs: 5000, ...extra });
const httpProxy = (uri, extra = {}) => ({ type: 'HTTP_PROXY', uri, timeoutMs: 5000, ...extra });

/** REST events (payload format 2.0) only, leaving WebSocket events out. */
const restEvents = (backend) => backend.events.filter((e) => e.version === '2.0');

/** Answers every REST event with its routeKey and pathParameters; accepts WebSocket events. */
function routeEcho(e) {
  if (e.version === '2.0') {
    return { statusCode: 200, headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ routeKey: e.routeKey, pathParameters: e.pathParameters ?? null }) };
  }
  return { statusCode: 200, body: e.body };
}

/**
 * One HTTP(S) request on a fresh connection. Resolves { status, headers,
 * rawHeaders, body (Buffer), text, json() }.
 */
function request(gw, method, urlPath, { headers = {}, body, tls = false, timeoutMs = 10000 } = {}) {
  const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body);
  const mod = tls ? https : http;
  const p = new Promise((resolve, reject) => {
    const req = mod.request({
      host: '127.0.0.1', port: gw.port, method, path: urlPath, agent: false,
      ...(tls ? { rejectUnauthorized: false } : {}),
      headers: { ...(payload ? { 'content-length': payload.length } : {}), ...headers },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        resolve({
          status: res.statusCode, headers: res.headers, rawHeaders: res.rawHeaders, body: buf,
          text: buf.toString('utf8'), json: () => JSON.parse(buf.toString('utf8')),
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
  return withTimeout(p, timeoutMs, `${method} ${urlPath}`);
}

/** Asserts the answer is `status` with exactly this JSON body, apigw-requestid and Content-Length. */
function assertJsonAnswer(res, status, body) {
  assert.equal(res.status, status, `status (body: ${res.text.slice(0, 200)})`);
  assert.deepEqual(res.json(), body);
  assert.match(res.headers['content-type'] ?? '', /^application\/json/);
  assertCommonHeaders(res);
}

function assertCommonHeaders(res) {
  assert.ok(res.headers['apigw-requestid'], 'apigw-requestid header present');
  assert.equal(res.headers['content-length'], String(res.body.length), 'Content-Length matches the body');
}

const NOT_FOUND = { message: 'Not Found' };
const ISE = { message: 'Internal Server Error' };
const TIMED_OUT = { message: 'Service Unavailable' };

const sha = (b) => createHash('sha256').update(b).digest('hex');
const CLF = /^\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}$/;

// ---------------------------------------------------------------------------
// Route matching and priority
// ---------------------------------------------------------------------------

test('routing: the example of §8.1 (static beats {param} beats greedy; a method route beats ANY)', async () => {
  const backend = await startBackend(routeEcho);
  const gw = await startGateway({ routes: restApi({
    integrations: { be: awsProxy(backend) },
    routes: {
      'GET /pets/dog/1': { integration: 'be' },
      'GET /pets/dog/{id}': { integration: 'be' },
      'GET /pets/{proxy+}': { integration: 'be' },
      'ANY /{proxy+}': { integration: 'be' },
    },
  }) });
  const cases = [
    ['POST', '/test/5', 'ANY /{proxy+}', { proxy: 'test/5' }],
    ['GET', '/pets/dog/1', 'GET /pets/dog/1', null],
    ['GET', '/pets/dog/2', 'GET /pets/dog/{id}', { id: '2' }],
    ['GET', '/pets/cat/x', 'GET /pets/{proxy+}', { proxy: 'cat/x' }],
    ['GET', '/pets/dog/1/extra', 'GET /pets/{proxy+}', { proxy: 'dog/1/extra' }],
    ['POST', '/pets/dog/1', 'ANY /{proxy+}', { proxy: 'pets/dog/1' }],
    ['DELETE', '/a', 'ANY /{proxy+}', { proxy: 'a' }],
  ];
  for (const [method, p, routeKey, params] of cases) {
    const res = await request(gw, method, p);
    assert.equal(res.status, 200, `${method} ${p}: ${res.text}`);
    assert.deepEqual(res.json(), { routeKey, pathParameters: params }, `${method} ${p}`);
  }
});

test('routing: segment by segment, static beats {param} beats {greedy+}; a method route beats ANY', async () => {
  const backend = await startBackend(routeEcho);
  const gw = await startGateway({ routes: restApi({
    integrations: { be: awsProxy(backend) },
    routes: {
      'GET /x/{a}/c': { integration: 'be' },
      'GET /x/b/{c}': { integration: 'be' },
      'GET /x/{p+}': { integration: 'be' },
      'GET /y/{a}/{b}/{c}': { integration: 'be' },
      'GET /y/{rest+}': { integration: 'be' },
      'ANY /m/s': { integration: 'be' },
      'GET /m/{v}': { integration: 'be' },
      'PUT /m/s': { integration: 'be' },
    },
  }) });
  const cases = [
    ['GET', '/x/b/c', 'GET /x/b/{c}', { c: 'c' }],
    ['GET', '/x/z/c', 'GET /x/{a}/c', { a: 'z' }],
    ['GET', '/x/z/d', 'GET /x/{p+}', { p: 'z/d' }],
    ['GET', '/x/b', 'GET /x/{p+}', { p: 'b' }],
    ['GET', '/y/1/2/3', 'GET /y/{a}/{b}/{c}', { a: '1', b: '2', c: '3' }],
    ['GET', '/y/1/2/3/4', 'GET /y/{rest+}', { rest: '1/2/3/4' }],
    ['GET', '/y/1/2', 'GET /y/{rest+}', { rest: '1/2' }],
    // The method route wins over ANY even though ANY is static here.
    ['GET', '/m/s', 'GET /m/{v}', { v: 's' }],
    ['PUT', '/m/s', 'PUT /m/s', null],
    ['POST', '/m/s', 'ANY /m/s', null],
    ['PATCH', '/m/s', 'ANY /m/s', null],
  ];
  for (const [method, p, routeKey, params] of cases) {
    const res = await request(gw, method, p);
    assert.equal(res.status, 200, `${method} ${p}: ${res.text}`);
    assert.deepEqual(res.json(), { routeKey, pathParameters: params }, `${method} ${p}`);
  }
  // No match: another method without ANY, or a path no route covers.
  for (const [method, p] of [['POST', '/x/b/c'], ['GET', '/m'], ['GET', '/nothing/here'], ['GET', '/']]) {
    const res = await request(gw, method, p);
    assertJsonAnswer(res, 404, NOT_FOUND);
  }
  assert.equal(restEvents(backend).length, cases.length, 'the 404s never reached the backend');
});

test('routing: every method, the root route, trailing slashes, and a greedy parameter never matches the empty rest', async () => {
  const backend = await startBackend(routeEcho);
  const methods = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
  const routes = { 'GET /': { integration: 'be' }, 'GET /files/{path+}': { integration: 'be' }, 'GET /items': { integration: 'be' } };
  for (const m of methods) routes[`${m} /verb`] = { integration: 'be' };
  const gw = await startGateway({ routes: restApi({ integrations: { be: awsProxy(backend) }, routes }) });
  for (const m of methods) {
    const res = await request(gw, m, '/verb');
    assert.equal(res.status, 200, `${m} /verb`);
    assert.equal(res.json().routeKey, `${m} /verb`);
  }
  assert.equal((await request(gw, 'GET', '/')).json().routeKey, 'GET /');
  assert.equal((await request(gw, 'GET', '/items/')).json().routeKey, 'GET /items');
  assert.equal((await request(gw, 'GET', '/items?x=1')).json().routeKey, 'GET /items');
  assert.deepEqual((await request(gw, 'GET', '/files/a/b.txt')).json(),
    { routeKey: 'GET /files/{path+}', pathParameters: { path: 'a/b.txt' } });
  assertJsonAnswer(await request(gw, 'GET', '/files'), 404, NOT_FOUND);
  assertJsonAnswer(await request(gw, 'GET', '/files/'), 404, NOT_FOUND);
  assertJsonAnswer(await request(gw, 'GET', '/item'), 404, NOT_FOUND);
  assertJsonAnswer(await request(gw, 'GET', '/items/x'), 404, NOT_FOUND);
});

test('routing: basePath prefixes and two APIs on one listener (longest basePath wins, whole segments only)', async () => {
  const shopBe = await startBackend(routeEcho);
  const rootBe = await startBackend(routeEcho);
  const shop = restApi({
    name: 'shop', basePath: '/shop',
    integrations: { be: awsProxy(shopBe) },
    routes: { 'GET /items': { integration: 'be' }, 'GET /items/{id}': { integration: 'be' }, 'GET /': { integration: 'be' } },
  });
  const root = restApi({
    name: 'site', basePath: '/',
    integrations: { be: awsProxy(rootBe) },
    routes: { 'GET /items': { integration: 'be' }, 'ANY /{proxy+}': { integration: 'be' } },
  });
  const gw = await startGateway({ routes: [shop, root] });

  let res = await request(gw, 'GET', '/shop/items');
  assert.deepEqual(res.json(), { routeKey: 'GET /items', pathParameters: null });
  let ev = restEvents(shopBe).at(-1);
  assert.equal(ev.rawPath, '/shop/items');
  assert.equal(ev.requestContext.apiId, derivedApiId('shop'));

  res = await request(gw, 'GET', '/shop/items/7/');
  assert.deepEqual(res.json(), { routeKey: 'GET /items/{id}', pathParameters: { id: '7' } });

  res = await request(gw, 'GET', '/shop');
  assert.deepEqual(res.json(), { routeKey: 'GET /', pathParameters: null });
  res = await request(gw, 'GET', '/shop/');
  assert.deepEqual(res.json(), { routeKey: 'GET /', pathParameters: null });

  res = await request(gw, 'GET', '/items');
  assert.deepEqual(res.json(), { routeKey: 'GET /items', pathParameters: null });
  ev = restEvents(rootBe).at(-1);
  assert.equal(ev.requestContext.apiId, derivedApiId('site'));

  // /shopping is not under /shop.
  res = await request(gw, 'GET', '/shopping/items');
  assert.deepEqual(res.json(), { routeKey: 'ANY /{proxy+}', pathParameters: { proxy: 'shopping/items' } });

  // Under /shop the shop API decides, even where the root API has a catch-all.
  assertJsonAnswer(await request(gw, 'GET', '/shop/unknown'), 404, NOT_FOUND);
  assertJsonAnswer(await request(gw, 'POST', '/shop/items'), 404, NOT_FOUND);
  assert.equal(restEvents(shopBe).length, 4);
  assert.equal(restEvents(rootBe).length, 2);
});

test('the WebSocket endpoint shares the listener: upgrades on each basePath beside REST routes', async () => {
  const backend = await startBackend(routeEcho);
  const mk = (name, basePath) => ({
    name, stage: 'dev', basePath,
    integrations: { be: awsProxy(backend) },
    routes: {
      $connect: { integration: 'be' },
      $default: { integration: 'be', routeResponse: true },
      'GET /': { integration: 'be' },
      'GET /status': { integration: 'be' },
    },
  });
  const gw = await startGateway({ routes: [mk('root', '/'), mk('chat', '/chat')] });
  const ws1 = await connect(`ws://127.0.0.1:${gw.port}/chat?user=a`);
  const ws2 = await connect(`ws://127.0.0.1:${gw.port}/`);
  const connects = backend.events.filter((e) => e.requestContext?.eventType === 'CONNECT');
  assert.deepEqual(connects.map((e) => e.requestContext.apiId).sort(), [derivedApiId('chat'), derivedApiId('root')].sort());

  const r1 = await request(gw, 'GET', '/chat/status');
  assert.equal(r1.status, 200);
  assert.equal(restEvents(backend).at(-1).requestContext.apiId, derivedApiId('chat'));
  const r2 = await request(gw, 'GET', '/chat');
  assert.deepEqual(r2.json(), { routeKey: 'GET /', pathParameters: null });
  const r3 = await request(gw, 'GET', '/status');
  assert.equal(restEvents(backend).at(-1).requestContext.apiId, derivedApiId('root'));
  assert.equal(r3.status, 200);

  ws1.send('hello chat');
  assert.equal((await nextMessage(ws1)).data, 'hello chat');
  ws2.send('hello root');
  assert.equal((await nextMessage(ws2)).data, 'hello root');
});

// ---------------------------------------------------------------------------
// AWS_PROXY: payload format 2.0
// ---------------------------------------------------------------------------

test('AWS_PROXY: the payload format 2.0 event, field by field', async () => {
  const backend = await startBackend(() => ({ statusCode: 200, body: 'ok' }));
  const gw = await startGateway({ routes: restApi({
    name: 'store', basePath: '/api',
    stageVariables: { env: 'test', color: 'blue' },
    integrations: { be: awsProxy(backend) },
    routes: { 'POST /orders/{orderId}/items/{item}': { integration: 'be' } },
  }) });
  const t0 = Date.now();
  const body = JSON.stringify({ qty: 2, note: 'héllo' });
  const res = await request(gw, 'POST', '/api/orders/o-17/items/sku9?q=hello%20world&x=a%2Fb&dup=1&dup=2&flag', {
    headers: {
      Host: 'shop.example.com:8443',
      'User-Agent': 'rest-test/1.0',
      'Content-Type': 'application/json',
      'X-Custom-Header': 'Value One',
      'X-Dup': ['a', 'b'],
      Cookie: 'session=abc; theme=dark',
    },
    body,
  });
  assert.equal(res.status, 200);
  assert.equal(res.text, 'ok');
  assertCommonHeaders(res);
  const e = restEvents(backend)[0];
  assert.ok(e, 'the backend received the event');
  assert.equal(e.__path, '/events', 'POSTed to the integration uri');
  assert.equal(e.version, '2.0');
  assert.equal(e.routeKey, 'POST /orders/{orderId}/items/{item}');
  assert.equal(e.rawPath, '/api/orders/o-17/items/sku9');
  assert.equal(e.rawQueryString, 'q=hello%20world&x=a%2Fb&dup=1&dup=2&flag');
  assert.deepEqual(e.cookies, ['session=abc', 'theme=dark']);
  assert.equal(e.headers.cookie, undefined, 'the Cookie header goes to cookies only');
  for (const k of Object.keys(e.headers)) assert.equal(k, k.toLowerCase(), `header name ${k} is lowercase`);
  assert.equal(e.headers['x-custom-header'], 'Value One');
  assert.equal(e.headers['x-dup'], 'a,b');
  assert.equal(e.headers['content-type'], 'application/json');
  assert.equal(e.headers['user-agent'], 'rest-test/1.0');
  assert.equal(e.headers.host, 'shop.example.com:8443');
  assert.deepEqual(e.queryStringParameters, { q: 'hello world', x: 'a/b', dup: '1,2', flag: '' });
  assert.deepEqual(e.pathParameters, { orderId: 'o-17', item: 'sku9' });
  assert.deepEqual(e.stageVariables, { env: 'test', color: 'blue' });
  assert.equal(e.body, body);
  assert.equal(e.isBase64Encoded, false);
  const rc = e.requestContext;
  assert.equal(typeof rc.accountId, 'string');
  assert.equal(rc.apiId, derivedApiId('store'));
  assert.equal(rc.domainName, 'shop.example.com');
  assert.equal(rc.domainPrefix, 'shop');
  assert.deepEqual(rc.http, {
    method: 'POST', path: '/api/orders/o-17/items/sku9', protocol: 'HTTP/1.1',
    sourceIp: '127.0.0.1', userAgent: 'rest-test/1.0',
  });
  assert.equal(typeof rc.requestId, 'string');
  assert.ok(rc.requestId.length > 0);
  assert.equal(rc.requestId, res.headers['apigw-requestid'], 'requestId is the apigw-requestid header');
  assert.equal(rc.routeKey, 'POST /orders/{orderId}/items/{item}');
  assert.equal(rc.stage, 'dev');
  assert.match(rc.time, CLF);
  assert.equal(typeof rc.timeEpoch, 'number');
  assert.ok(rc.timeEpoch >= t0 - 1000 && rc.timeEpoch <= Date.now() + 1000, `timeEpoch ${rc.timeEpoch} is in ms, now`);
});

test('AWS_PROXY: without query, cookies, path parameters, stage variables or body those fields are absent', async () => {
  const backend = await startBackend(() => ({ statusCode: 204 }));
  const gw = await startGateway({ routes: restApi({
    integrations: { be: awsProxy(backend) },
    routes: { 'GET /plain': { integration: 'be' } },
  }) });
  const res = await request(gw, 'GET', '/plain');
  assert.equal(res.status, 204);
  assert.equal(res.body.length, 0);
  const e = restEvents(backend)[0];
  assert.equal(e.rawPath, '/plain');
  assert.equal(e.rawQueryString, '');
  for (const k of ['cookies', 'queryStringParameters', 'pathParameters', 'stageVariables', 'body']) {
    assert.equal(k in e, false, `${k} is absent (found ${JSON.stringify(e[k])})`);
  }
  assert.equal(e.isBase64Encoded, false);
  assert.equal(e.requestContext.domainName, '127.0.0.1');
  assert.equal(e.requestContext.http.method, 'GET');
});

test('AWS_PROXY: a body that is not UTF-8 arrives base64-encoded, byte-exact', async () => {
  const backend = await startBackend(() => ({ statusCode: 200 }));
  const gw = await startGateway({ routes: restApi({
    integrations: { be: awsProxy(backend) },
    routes: { 'PUT /blob': { integration: 'be' } },
  }) });
  const bin = Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x80, 0xc3, 0x28, 0x7f]);
  const res = await request(gw, 'PUT', '/blob', { body: bin, headers: { 'content-type': 'application/octet-stream' } });
  assert.equal(res.status, 200);
  const e = restEvents(backend)[0];
  assert.equal(e.isBase64Encoded, true);
  assert.ok(Buffer.from(e.body, 'base64').equals(bin));
});

test('AWS_PROXY: a full answer gives its status, headers, cookies and body (base64 decoded when flagged)', async () => {
  const bin = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80, 10, 13]);
  const backend = await startBackend((e) => (e.rawPath === '/bin'
    ? { statusCode: 200, headers: { 'content-type': 'application/octet-stream' }, body: bin.toString('base64'), isBase64Encoded: true }
    : {
      statusCode: 201,
      headers: { 'content-type': 'text/plain; charset=utf-8', 'x-answer': 'forty-two', location: '/things/1' },
      cookies: ['sid=xyz; Path=/; HttpOnly', 'lang=fr'],
      body: 'created ✓',
      isBase64Encoded: false,
    }));
  const gw = await startGateway({ routes: restApi({
    integrations: { be: awsProxy(backend) },
    routes: { 'POST /things': { integration: 'be' }, 'GET /bin': { integration: 'be' } },
  }) });
  let res = await request(gw, 'POST', '/things', { body: '{}' });
  assert.equal(res.status, 201);
  assert.equal(res.text, 'created ✓');
  assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(res.headers['x-answer'], 'forty-two');
  assert.equal(res.headers.location, '/things/1');
  assert.deepEqual(res.headers['set-cookie'], ['sid=xyz; Path=/; HttpOnly', 'lang=fr']);
  assertCommonHeaders(res);

  res = await request(gw, 'GET', '/bin');
  assert.equal(res.status, 200);
  assert.ok(res.body.equals(bin), `body ${res.body.toString('hex')}`);
  assert.equal(res.headers['content-type'], 'application/octet-stream');
  assertCommonHeaders(res);
});

test('AWS_PROXY: response inference, a valid JSON answer without statusCode is a 200 application/json body', async () => {
  const answers = {
    '/object': { id: 7, name: 'x' },
    '/array': [1, 'two', { three: 3 }],
    '/string': 'just a string',
    '/number': 42,
    '/bool': true,
  };
  const backend = await startBackend((e) => answers[e.rawPath]);
  const gw = await startGateway({ routes: restApi({
    integrations: { be: awsProxy(backend) },
    routes: { 'GET /{kind}': { integration: 'be' } },
  }) });
  for (const [p, value] of Object.entries(answers)) {
    const res = await request(gw, 'GET', p);
    assert.equal(res.status, 200, `${p}: ${res.text}`);
    assert.match(res.headers['content-type'] ?? '', /^application\/json/, p);
    if (typeof value === 'string') {
      // AWS gives a bare string as the body itself, without quotes.
      assert.equal(res.text, value, p);
      assertCommonHeaders(res);
      continue;
    }
    assert.deepEqual(res.json(), value, p);
    assert.equal(res.text, JSON.stringify(value), `${p}: the answer's JSON text is the body`);
    assertCommonHeaders(res);
  }
});

test('AWS_PROXY: invalid JSON, a non-2xx backend status, a reset or an unreachable backend give 500 Internal Server Error', async () => {
  const backend = await startBackend((e) => {
    if (e.rawPath === '/garbage') return GARBAGE;
    if (e.rawPath === '/throw') throw new Error('boom'); // the helper answers HTTP 500
    if (e.rawPath === '/reset') return DESTROY;
    return { statusCode: 200 };
  });
  const dead = await unusedUrl();
  const gw = await startGateway({ routes: restApi({
    integrations: { be: awsProxy(backend), dead: { type: 'AWS_PROXY', uri: dead, timeoutMs: 5000 } },
    routes: { 'GET /{what}': { integration: 'be' }, 'GET /dead/x': { integration: 'dead' } },
  }) });
  for (const p of ['/garbage', '/throw', '/reset', '/dead/x']) {
    const res = await request(gw, 'GET', p);
    assertJsonAnswer(res, 500, ISE);
  }
  // The gateway is still fine.
  assert.equal((await request(gw, 'GET', '/fine')).status, 200);
});

test('AWS_PROXY and HTTP_PROXY: a timeout gives 503 Service Unavailable, as AWS HTTP APIs', async () => {
  const lambda = await startBackend(() => HANG);
  const hb = await startHttpBackend(() => HANG);
  const gw = await startGateway({ routes: restApi({
    integrations: {
      lam: { type: 'AWS_PROXY', uri: lambda.url, timeoutMs: 300 },
      prox: { type: 'HTTP_PROXY', uri: `${hb.origin}/slow`, timeoutMs: 300 },
    },
    routes: { 'GET /lam': { integration: 'lam' }, 'GET /prox': { integration: 'prox' } },
  }) });
  for (const p of ['/lam', '/prox']) {
    const t0 = Date.now();
    const res = await request(gw, 'GET', p);
    const took = Date.now() - t0;
    assertJsonAnswer(res, 503, TIMED_OUT);
    assert.ok(took >= 250 && took < 3000, `${p} answered after ${took} ms (timeoutMs 300)`);
  }
});

// ---------------------------------------------------------------------------
// HTTP_PROXY
// ---------------------------------------------------------------------------

test('HTTP_PROXY: method, {param} substitution (raw), raw query, headers and body reach the backend', async () => {
  const hb = await startHttpBackend(() => ({ status: 200, body: 'fine' }));
  const gw = await startGateway({ routes: restApi({
    integrations: { items: httpProxy(`${hb.origin}/base/{id}`) },
    routes: { 'ANY /items/{id}': { integration: 'items' } },
  }) });
  const body = JSON.stringify({ a: 1, b: 'ü' });
  const res = await request(gw, 'PATCH', '/items/a%20b?x=1&y=%2F%20z&x=2', {
    headers: { Host: 'shop.example', 'Content-Type': 'application/json', 'X-Trace': 't-1', 'X-Dup': ['a', 'b'], Authorization: 'Bearer tok' },
    body,
  });
  assert.equal(res.status, 200);
  assert.equal(res.text, 'fine');
  assertCommonHeaders(res);
  const r = hb.requests[0];
  assert.equal(r.method, 'PATCH');
  assert.equal(r.url, '/base/a%20b?x=1&y=%2F%20z&x=2');
  assert.equal(r.text, body);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(r.headers['content-length'], String(Buffer.byteLength(body)));
  assert.equal(r.headers['x-trace'], 't-1');
  assert.equal(r.headers['x-dup'], 'a, b', 'node joins the repeated header it received');
  assert.equal(r.headers.authorization, 'Bearer tok');
  assert.equal(r.headers.host, `127.0.0.1:${hb.port}`, 'Host is the backend\'s');
  assert.equal(r.headers['x-forwarded-for'], '127.0.0.1');
  assert.equal(r.headers['x-forwarded-proto'], 'http');
  assert.equal(r.headers['x-forwarded-host'], 'shop.example');
});

test('HTTP_PROXY: {proxy} takes the greedy rest of the path; a configured method overrides the client\'s', async () => {
  const hb = await startHttpBackend(() => ({ status: 200, body: 'x' }));
  const gw = await startGateway({ routes: restApi({
    integrations: {
      files: httpProxy(`${hb.origin}/static/{proxy}`),
      forced: httpProxy(`${hb.origin}/hook/{id}/run`, { method: 'POST' }),
      fixed: httpProxy(`${hb.origin}/fixed/path`),
    },
    routes: {
      'GET /files/{proxy+}': { integration: 'files' },
      'GET /jobs/{id}': { integration: 'forced' },
      'DELETE /fixed/{any}': { integration: 'fixed' },
    },
  }) });
  assert.equal((await request(gw, 'GET', '/files/css/site%20v2/main.css?v=3')).status, 200);
  assert.equal((await request(gw, 'GET', '/jobs/j42')).status, 200);
  assert.equal((await request(gw, 'DELETE', '/fixed/zz?k=v')).status, 200);
  const [a, b, c] = await hb.waitForCount(3);
  assert.equal(a.method, 'GET');
  assert.equal(a.url, '/static/css/site%20v2/main.css?v=3');
  assert.equal(b.method, 'POST');
  assert.equal(b.url, '/hook/j42/run');
  assert.equal(c.method, 'DELETE');
  assert.equal(c.url, '/fixed/path?k=v');
});

test('HTTP_PROXY: hop-by-hop request headers are stripped, X-Forwarded-For is appended to', async () => {
  const hb = await startHttpBackend(() => ({ status: 200, body: 'ok' }));
  const gw = await startGateway({ routes: restApi({
    integrations: { p: httpProxy(`${hb.origin}/x`) },
    routes: { 'POST /x': { integration: 'p' } },
  }) });
  // A raw request, so that exactly these headers are sent.
  const sock = await rawConnect(gw.port);
  sock.write([
    'POST /x HTTP/1.1', 'Host: front.example', 'Connection: keep-alive', 'Keep-Alive: timeout=5',
    'TE: trailers', 'Trailer: X-Checksum', 'Proxy-Authorization: Basic Zm9vOmJhcg==',
    'Proxy-Connection: keep-alive', 'X-Forwarded-For: 10.1.2.3', 'X-Keep-Me: yes', 'Content-Length: 5',
    '', 'hello',
  ].join('\r\n'));
  const { responses: [res] } = await waitResponses(sock, ['POST']);
  assert.equal(res.status, 200);
  assert.equal(res.body.toString(), 'ok');
  const r = hb.requests[0];
  assert.equal(r.text, 'hello');
  assert.equal(r.headers['x-keep-me'], 'yes');
  for (const h of ['keep-alive', 'te', 'trailer', 'proxy-authorization', 'proxy-connection', 'upgrade']) {
    assert.equal(r.headers[h], undefined, `${h} is not forwarded (found ${r.headers[h]})`);
  }
  assert.notEqual((r.headers.connection ?? '').toLowerCase(), 'upgrade');
  assert.equal(r.headers['x-forwarded-for'], '10.1.2.3, 127.0.0.1');
  assert.equal(r.headers['x-forwarded-host'], 'front.example');
  assert.equal(r.headers['x-forwarded-proto'], 'http');
  assert.equal(r.headers.host, `127.0.0.1:${hb.port}`);
});

test('HTTP_PROXY: the backend\'s status, headers (hop-by-hop removed), cookies and body come back', async () => {
  const hb = await startHttpBackend((r) => {
    if (r.path === '/missing') return { status: 404, headers: { 'content-type': 'text/html' }, body: '<h1>no</h1>' };
    // Raw, because node will not send some of these headers itself.
    return raw([
      'HTTP/1.1 418 I\'m a teapot', 'Content-Type: application/x-teapot', 'X-Backend: b1',
      'Set-Cookie: a=1; Path=/', 'Set-Cookie: b=2', 'Connection: close', 'Keep-Alive: timeout=99',
      'Proxy-Authenticate: Basic', 'Trailer: X-Sum', 'Upgrade: h2c', 'Content-Length: 13', '', 'I am a teapot',
    ].join('\r\n'));
  });
  const gw = await startGateway({ routes: restApi({
    integrations: { p: httpProxy(`${hb.origin}/{proxy}`) },
    routes: { 'GET /{proxy+}': { integration: 'p' } },
  }) });
  let res = await request(gw, 'GET', '/tea');
  assert.equal(res.status, 418);
  assert.equal(res.text, 'I am a teapot');
  assert.equal(res.headers['content-type'], 'application/x-teapot');
  assert.equal(res.headers['x-backend'], 'b1');
  assert.deepEqual(res.headers['set-cookie'], ['a=1; Path=/', 'b=2']);
  for (const h of ['keep-alive', 'proxy-authenticate', 'trailer', 'upgrade']) {
    assert.equal(res.headers[h], undefined, `${h} is not returned (found ${res.headers[h]})`);
  }
  assert.notEqual((res.headers.connection ?? '').toLowerCase(), 'upgrade');
  assertCommonHeaders(res);
  res = await request(gw, 'GET', '/missing');
  assert.equal(res.status, 404);
  assert.equal(res.text, '<h1>no</h1>');
  assert.equal(res.headers['content-type'], 'text/html');
});

test('HTTP_PROXY: a chunked request body and a chunked backend answer are forwarded whole', async () => {
  const hb = await startHttpBackend((r, req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write(`got ${r.body.length} bytes;`);
    setTimeout(() => res.end(' part two'), 50);
    return HANG;
  });
  const gw = await startGateway({ routes: restApi({
    integrations: { p: httpProxy(`${hb.origin}/up`) },
    routes: { 'POST /up': { integration: 'p' } },
  }) });
  const res = await withTimeout(new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: gw.port, method: 'POST', path: '/up', agent: false }, (r) => {
      const chunks = [];
      r.on('data', (c) => chunks.push(c));
      r.on('end', () => resolve({ status: r.statusCode, headers: r.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.write('a'.repeat(1000));
    setTimeout(() => { req.write('b'.repeat(500)); req.end(); }, 50);
  }), 8000, 'the chunked upload');
  assert.equal(res.status, 200);
  assert.equal(res.body.toString(), 'got 1500 bytes; part two');
  assert.equal(res.headers['content-length'], String(res.body.length));
  assert.ok(res.headers['apigw-requestid']);
  assert.equal(hb.requests[0].text, 'a'.repeat(1000) + 'b'.repeat(500));
});

test('HTTP_PROXY: 5 MB both ways, byte-exact', { timeout: 60000 }, async () => {
  const up = randomBytes(5 * 1024 * 1024);
  const down = randomBytes(5 * 1024 * 1024 + 7);
  const hb = await startHttpBackend((r) => ({
    status: 200,
    headers: { 'content-type': 'application/octet-stream', 'x-up-sha': sha(r.body), 'x-up-len': String(r.body.length) },
    body: down,
  }));
  const gw = await startGateway({ routes: restApi({
    integrations: { p: httpProxy(`${hb.origin}/blob`) },
    routes: { 'PUT /blob': { integration: 'p' } },
  }) });
  const res = await request(gw, 'PUT', '/blob', { body: up, headers: { 'content-type': 'application/octet-stream' }, timeoutMs: 30000 });
  assert.equal(res.status, 200);
  assert.equal(res.headers['x-up-len'], String(up.length));
  assert.equal(res.headers['x-up-sha'], sha(up), 'the backend received the upload byte-exact');
  assert.equal(res.body.length, down.length);
  assert.equal(sha(res.body), sha(down), 'the client received the download byte-exact');
  assert.equal(res.headers['content-length'], String(down.length));
});

test('413: a body over limits.maxRequestBytes is refused from Content-Length, without reading it, and the connection closes', async () => {
  const hb = await startHttpBackend(() => ({ status: 200, body: 'ok' }));
  const backend = await startBackend(() => ({ statusCode: 200 }));
  const gw = await startGateway({ routes: restApi({
    limits: { maxRequestBytes: 1000 },
    integrations: { p: httpProxy(`${hb.origin}/x`), l: awsProxy(backend) },
    routes: { 'POST /p': { integration: 'p' }, 'POST /l': { integration: 'l' } },
  }) });
  // Exactly the limit is fine.
  assert.equal((await request(gw, 'POST', '/p', { body: 'x'.repeat(1000) })).status, 200);
  assert.equal((await request(gw, 'POST', '/l', { body: 'y'.repeat(1000) })).status, 200);
  // Over it: answered from the head alone (the body is never sent).
  for (const p of ['/p', '/l']) {
    const sock = await rawConnect(gw.port);
    sock.write(`POST ${p} HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n`);
    const { responses: [res] } = await waitResponses(sock, ['POST']);
    assert.equal(res.status, 413, `${p}: ${res.head}`);
    assert.deepEqual(JSON.parse(res.body.toString()), { message: 'Request Entity Too Large' });
    assert.ok(res.headers['apigw-requestid']);
    await withTimeout(sock.closedPromise, 3000, `the gateway to close the connection after 413 on ${p}`);
  }
  assert.equal(hb.requests.length, 1);
  assert.equal(restEvents(backend).length, 1);
});

test('the default maxRequestBytes is 10 MB', { timeout: 60000 }, async () => {
  const hb = await startHttpBackend((r) => ({ status: 200, body: String(r.body.length) }));
  const gw = await startGateway({ routes: restApi({
    integrations: { p: httpProxy(`${hb.origin}/x`) },
    routes: { 'POST /x': { integration: 'p' } },
  }) });
  const res = await request(gw, 'POST', '/x', { body: Buffer.alloc(10 * 1024 * 1024, 0x61), timeoutMs: 30000 });
  assert.equal(res.status, 200);
  assert.equal(res.text, String(10 * 1024 * 1024));
  const sock = await rawConnect(gw.port);
  sock.write(`POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: ${10 * 1024 * 1024 + 1}\r\n\r\n`);
  const { responses: [big] } = await waitResponses(sock, ['POST']);
  assert.equal(big.status, 413);
  assert.equal(hb.requests.length, 1);
});

test('HTTP_PROXY: an unreachable backend or a reset gives 500 Internal Server Error', async () => {
  const hb = await startHttpBackend(() => DESTROY);
  const dead = await unusedUrl();
  const gw = await startGateway({ routes: restApi({
    integrations: { reset: httpProxy(`${hb.origin}/r`), dead: httpProxy(dead) },
    routes: { 'GET /reset': { integration: 'reset' }, 'GET /dead': { integration: 'dead' } },
  }) });
  assertJsonAnswer(await request(gw, 'GET', '/dead'), 500, ISE);
  assertJsonAnswer(await request(gw, 'GET', '/reset'), 500, ISE);
});

test('HTTP_PROXY: a backend answer without Content-Length, ended by closing, is returned whole', async () => {
  const hb = await startHttpBackend(() => raw('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Old: style\r\n\r\nread until the end'));
  const gw = await startGateway({ routes: restApi({
    integrations: { p: httpProxy(`${hb.origin}/old`) },
    routes: { 'GET /old': { integration: 'p' } },
  }) });
  const res = await request(gw, 'GET', '/old');
  assert.equal(res.status, 200);
  assert.equal(res.text, 'read until the end');
  assert.equal(res.headers['x-old'], 'style');
  assertCommonHeaders(res);
});

test('AWS_PROXY: a 2 MB request body and a 3 MB answer body, byte-exact', { timeout: 60000 }, async () => {
  const up = randomBytes(1536 * 1024).toString('base64'); // 2 MB of text
  const down = randomBytes(3 * 1024 * 1024);
  const backend = await startBackend((e) => ({
    statusCode: 200,
    headers: { 'content-type': 'application/octet-stream', 'x-up-sha': sha(Buffer.from(e.body ?? '')) },
    body: down.toString('base64'),
    isBase64Encoded: true,
  }));
  const gw = await startGateway({ routes: restApi({
    integrations: { l: awsProxy(backend) },
    routes: { 'POST /big': { integration: 'l' } },
  }) });
  const res = await request(gw, 'POST', '/big', { body: up, headers: { 'content-type': 'text/plain' }, timeoutMs: 30000 });
  assert.equal(res.status, 200);
  assert.equal(res.headers['x-up-sha'], sha(Buffer.from(up)));
  assert.equal(restEvents(backend)[0].isBase64Encoded, false);
  assert.equal(res.body.length, down.length);
  assert.equal(sha(res.body), sha(down));
});

test('concurrency: 60 requests at once on separate connections, each gets its own answer', { timeout: 45000 }, async () => {
  const backend = await startBackend(async (e) => {
    await sleep(Number(e.pathParameters.n) % 7 * 5);
    return { statusCode: 200, body: `lambda ${e.pathParameters.n}` };
  });
  const hb = await startHttpBackend(async (r) => {
    await sleep(Number(r.path.split('/').pop()) % 5 * 5);
    return { status: 200, body: `proxy ${r.path.split('/').pop()}` };
  });
  const gw = await startGateway({ routes: restApi({
    integrations: { l: awsProxy(backend), p: httpProxy(`${hb.origin}/p/{n}`) },
    routes: { 'GET /l/{n}': { integration: 'l' }, 'GET /p/{n}': { integration: 'p' } },
  }) });
  const jobs = [];
  for (let i = 0; i < 30; i++) {
    jobs.push(request(gw, 'GET', `/l/${i}`).then((r) => [r.status, r.text, `lambda ${i}`]));
    jobs.push(request(gw, 'GET', `/p/${i}`).then((r) => [r.status, r.text, `proxy ${i}`]));
  }
  for (const [status, text, want] of await Promise.all(jobs)) {
    assert.equal(status, 200);
    assert.equal(text, want);
  }
});

test('a client that hangs up while its integration runs leaves the gateway serving', async () => {
  const lambda = await startBackend((e) => (e.rawPath === '/slow' ? sleep(300).then(() => ({ statusCode: 200, body: 'late' })) : { statusCode: 200, body: 'ok' }));
  const hb = await startHttpBackend((r) => (r.path === '/slow' ? sleep(300).then(() => ({ status: 200, body: 'late'.repeat(10000) })) : { status: 200, body: 'ok' }));
  const gw = await startGateway({ routes: restApi({
    integrations: { l: awsProxy(lambda), p: httpProxy(`${hb.origin}/{proxy}`) },
    routes: { 'ANY /l/{proxy+}': { integration: 'l' }, 'ANY /p/{proxy+}': { integration: 'p' } },
  }) });
  for (const p of ['/l/slow', '/p/slow']) {
    for (let i = 0; i < 3; i++) {
      const sock = await rawConnect(gw.port);
      sock.write(`POST ${p} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody`);
      await sleep(50);
      sock.destroy();
    }
  }
  // Half a body, then gone.
  const half = await rawConnect(gw.port);
  half.write('POST /p/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n' + 'q'.repeat(30000));
  await sleep(100);
  half.destroy();
  await sleep(500);
  assert.equal((await request(gw, 'GET', '/l/fine')).text, 'ok');
  assert.equal((await request(gw, 'GET', '/p/fine')).text, 'ok');
});

/** Sends a head with Expect: 100-continue; like curl, sends the body after `waitMs` if no 100 came. */
async function expectContinue(gw, urlPath, body, waitMs = 1000) {
  const sock = await rawConnect(gw.port);
  sock.write(`POST ${urlPath} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`);
  const t0 = Date.now();
  while (Date.now() - t0 < waitMs && !sock.received.includes('\r\n\r\n')) await sleep(10);
  const interim = sock.received.toString('latin1');
  if (!/^HTTP\/1\.1 [2-5]\d\d /.test(interim)) sock.write(body);
  return { sock, interim };
}

test('Expect: 100-continue: the request completes with the backend\'s final answer (HTTP_PROXY and AWS_PROXY)', async () => {
  const hb = await startHttpBackend((r) => ({ status: 200, body: `got ${r.body.length}` }));
  const lambda = await startBackend((e) => ({ statusCode: 200, body: `got ${e.body.length}` }));
  const gw = await startGateway({ routes: restApi({
    integrations: { p: httpProxy(`${hb.origin}/x`), l: awsProxy(lambda) },
    routes: { 'POST /p': { integration: 'p' }, 'POST /l': { integration: 'l' } },
  }) });
  for (const p of ['/l', '/p']) {
    const { sock } = await expectContinue(gw, p, 'z'.repeat(5000));
    await waitUntil(() => /HTTP\/1\.1 [2-5]\d\d [^\r]*\r\n[\s\S]*\r\n\r\ngot 5000$/.test(sock.received.toString()), 5000,
      `the final answer on ${p}`).catch(() => {
      throw new Error(`${p}: expected a final "200 ... got 5000", received ${JSON.stringify(sock.received.toString())}`);
    });
    const text = sock.received.toString();
    const finals = text.match(/HTTP\/1\.1 \d{3}/g);
    assert.deepEqual(finals.filter((f) => f !== 'HTTP/1.1 100'), ['HTTP/1.1 200'], `${p}: ${JSON.stringify(text)}`);
    if (finals.includes('HTTP/1.1 100')) assert.match(text, /^HTTP\/1\.1 100 Continue\r\n/);
  }
  assert.equal(hb.requests[0].text, 'z'.repeat(5000));
});

test('Expect: 100-continue: the gateway sends 100 Continue before the body, or a final 413 when the body is too large', async () => {
  const hb = await startHttpBackend((r) => ({ status: 200, body: `got ${r.body.length}` }));
  const gw = await startGateway({ routes: restApi({
    limits: { maxRequestBytes: 10000 },
    integrations: { p: httpProxy(`${hb.origin}/x`) },
    routes: { 'POST /p': { integration: 'p' } },
  }) });
  let { interim } = await expectContinue(gw, '/p', 'z'.repeat(20000), 1000);
  assert.match(interim, /^HTTP\/1\.1 413 /, `a final 413 instead of 100: ${JSON.stringify(interim)}`);
  ({ interim } = await expectContinue(gw, '/p', 'z'.repeat(5000), 1000));
  assert.match(interim, /^HTTP\/1\.1 100 Continue\r\n\r\n/, `the interim answer within 1 s: ${JSON.stringify(interim)}`);
});

// ---------------------------------------------------------------------------
// MOCK
// ---------------------------------------------------------------------------

test('MOCK: the configured status, application/json and the body with ${context.requestId} filled in', async () => {
  const gw = await startGateway({ routes: restApi({
    integrations: { m: { type: 'MOCK', statusCode: 201, body: '{"id":"${context.requestId}"}' } },
    routes: { 'POST /things': { integration: 'm' } },
  }) });
  const res = await request(gw, 'POST', '/things', { body: '{"x":1}' });
  assert.equal(res.status, 201);
  assert.match(res.headers['content-type'], /^application\/json/);
  assertCommonHeaders(res);
  assert.deepEqual(res.json(), { id: res.headers['apigw-requestid'] });
  const again = await request(gw, 'POST', '/things');
  assert.notEqual(again.json().id, res.json().id, 'each request has its own id');
});

// ---------------------------------------------------------------------------
// Protocol: 400, keep-alive, pipelining, Connection: close, HEAD
// ---------------------------------------------------------------------------

test('400: a garbage request gets 400 and the connection is closed', async () => {
  const gw = await startGateway({ routes: restApi({
    integrations: { m: { type: 'MOCK', statusCode: 200, body: '{}' } },
    routes: { 'GET /x': { integration: 'm' } },
  }) });
  for (const garbage of ['HELLO THERE\r\n\r\n', 'GET /x HTTP/1.1\r\nHost x\r\nBroken header line\r\n\r\n', '\x00\x01\x02\x03 nonsense\r\n\r\n']) {
    const sock = await rawConnect(gw.port);
    sock.write(garbage);
    await withTimeout(sock.closedPromise, 5000, `the gateway to close after ${JSON.stringify(garbage)}`);
    const text = sock.received.toString('latin1');
    assert.match(text, /^HTTP\/1\.1 400 /, `answer to ${JSON.stringify(garbage)}: ${JSON.stringify(text.slice(0, 200))}`);
  }
  // Still serving.
  assert.equal((await request(gw, 'GET', '/x')).status, 200);
});

/** Integrations of every kind behind /l/{n} (AWS_PROXY, the first one slow), /p/{n} (HTTP_PROXY), /m (MOCK). */
async function keepAliveGateway() {
  const backend = await startBackend(async (e) => {
    const n = Number(e.pathParameters.n);
    await sleep(n === 1 ? 200 : 10);
    return { statusCode: 200, headers: { 'content-type': 'text/plain' }, body: `answer ${n}` };
  });
  const hb = await startHttpBackend((r) => ({ status: 200, body: r.method === 'HEAD' ? '' : `proxied ${r.path}` }));
  const gw = await startGateway({ routes: restApi({
    integrations: { l: awsProxy(backend), p: httpProxy(`${hb.origin}/p/{n}`), m: { type: 'MOCK', statusCode: 200, body: '{"m":1}' } },
    routes: { 'ANY /l/{n}': { integration: 'l' }, 'ANY /p/{n}': { integration: 'p' }, 'ANY /m': { integration: 'm' } },
  }) });
  return { backend, hb, gw };
}

test('keep-alive: several requests one after the other on one connection, every kind of answer', async () => {
  const { gw } = await keepAliveGateway();
  const sock = await rawConnect(gw.port);
  const steps = [
    ['GET /l/1 HTTP/1.1\r\nHost: x\r\n\r\n', 200, 'answer 1'],
    ['GET /p/2 HTTP/1.1\r\nHost: x\r\n\r\n', 200, 'proxied /p/2'],
    ['GET /m HTTP/1.1\r\nHost: x\r\n\r\n', 200, '{"m":1}'],
    ['GET /nope HTTP/1.1\r\nHost: x\r\n\r\n', 404, '{"message":"Not Found"}'],
    ['POST /l/5 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc', 200, 'answer 5'],
    ['PUT /p/6 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nwxyz', 200, 'proxied /p/6'],
  ];
  const ids = new Set();
  for (const [req, status, body] of steps) {
    sock.received = Buffer.alloc(0);
    sock.write(req);
    const { responses: [res] } = await waitResponses(sock, ['GET']);
    assert.equal(res.status, status, req);
    assert.equal(res.body.toString(), body, req);
    assert.ok(res.headers['apigw-requestid'], 'apigw-requestid on every answer');
    assert.equal(res.headers['content-length'], String(res.body.length), 'Content-Length on every answer');
    ids.add(res.headers['apigw-requestid']);
  }
  assert.equal(ids.size, steps.length, 'request ids are unique');
  assert.equal(sock.destroyed, false, 'the connection stays open');
});

test('pipelining: requests sent in one write are all answered, in order', async () => {
  const { gw } = await keepAliveGateway();
  // Answers that are produced at once (MOCK, 404) ...
  let sock = await rawConnect(gw.port);
  sock.write('GET /m HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /m HTTP/1.1\r\nHost: x\r\n\r\n');
  let res = (await waitResponses(sock, ['GET', 'GET', 'GET'])).responses;
  assert.deepEqual(res.map((r) => r.status), [200, 404, 200]);
  // ... and answers that wait on integrations, the first one the slowest.
  sock = await rawConnect(gw.port);
  sock.write([
    'GET /l/1 HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /p/2 HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /m HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /nope HTTP/1.1\r\nHost: x\r\n\r\n',
    'POST /l/5 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc',
    'GET /l/6 HTTP/1.1\r\nHost: x\r\n\r\n',
  ].join(''));
  res = (await waitResponses(sock, Array(6).fill('GET'))).responses;
  assert.deepEqual(res.map((r) => r.status), [200, 200, 200, 404, 200, 200]);
  assert.deepEqual(res.map((r) => r.body.toString()),
    ['answer 1', 'proxied /p/2', '{"m":1}', '{"message":"Not Found"}', 'answer 5', 'answer 6']);
  for (const r of res) assert.ok(r.headers['apigw-requestid']);
  assert.equal(sock.destroyed, false, 'the connection stays open');
});

test('HEAD answers have no body (every integration kind and 404), and the connection stays usable', async () => {
  const { backend, hb, gw } = await keepAliveGateway();
  const sock = await rawConnect(gw.port);
  for (const [p, status] of [['/p/1', 200], ['/l/2', 200], ['/m', 200], ['/none', 404]]) {
    sock.received = Buffer.alloc(0);
    sock.write(`HEAD ${p} HTTP/1.1\r\nHost: x\r\n\r\n`);
    const { responses: [res] } = await waitResponses(sock, ['HEAD']);
    assert.equal(res.status, status, `HEAD ${p}`);
    assert.ok(res.headers['apigw-requestid']);
    await sleep(100);
    assert.equal(parseResponses(sock.received, ['HEAD']).rest.length, 0, `HEAD ${p}: no body bytes after the head`);
  }
  assert.equal(hb.requests[0].method, 'HEAD');
  assert.equal(restEvents(backend)[0].requestContext.http.method, 'HEAD');
  // A GET after the HEADs is read intact.
  sock.received = Buffer.alloc(0);
  sock.write('GET /m HTTP/1.1\r\nHost: x\r\n\r\n');
  const { responses: [get] } = await waitResponses(sock, ['GET']);
  assert.equal(get.status, 200);
  assert.equal(get.body.toString(), '{"m":1}');
});

test('Connection: close is honoured: the answer says so and the gateway closes', async () => {
  const { gw } = await keepAliveGateway();
  for (const p of ['/m', '/l/3', '/p/4', '/nope']) {
    const c = await rawConnect(gw.port);
    c.write(`GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    await withTimeout(c.closedPromise, 5000, `the gateway to close after Connection: close on ${p}`);
    const { responses: [one], rest } = parseResponses(c.received, ['GET']);
    assert.ok(one, `an answer on ${p}: ${JSON.stringify(c.received.toString())}`);
    assert.equal(one.status, p === '/nope' ? 404 : 200);
    assert.equal((one.headers.connection ?? '').toLowerCase(), 'close', p);
    assert.equal(rest.length, 0);
  }
  // HTTP/1.0 without keep-alive closes too.
  const c = await rawConnect(gw.port);
  c.write('GET /m HTTP/1.0\r\nHost: x\r\n\r\n');
  await withTimeout(c.closedPromise, 5000, 'the gateway to close an HTTP/1.0 connection');
  assert.match(c.received.toString(), /^HTTP\/1\.[01] 200 /);
  assert.ok(c.received.toString().endsWith('{"m":1}'));
});

// ---------------------------------------------------------------------------
// CORS
// ---------------------------------------------------------------------------

const ORIGIN = 'https://app.example';
const list = (v) => (v ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean).sort();
const corsHeaders = (res) => Object.keys(res.headers).filter((k) => k.startsWith('access-control-'));

async function corsGateway(cors) {
  const hb = await startHttpBackend(() => ({
    status: 200,
    headers: {
      'content-type': 'text/plain', 'x-total': '12',
      'access-control-allow-origin': 'https://evil.example', 'access-control-expose-headers': 'x-evil',
      'access-control-allow-credentials': 'false', 'access-control-max-age': '1',
    },
    body: 'data',
  }));
  const gw = await startGateway({ routes: restApi({
    ...(cors ? { cors } : {}),
    integrations: { p: httpProxy(`${hb.origin}/d`) },
    routes: { 'GET /data': { integration: 'p' }, 'POST /data': { integration: 'p' } },
  }) });
  return { hb, gw };
}

const FULL_CORS = {
  allowOrigins: [ORIGIN], allowMethods: ['GET', 'POST'], allowHeaders: ['content-type'],
  exposeHeaders: ['x-total'], maxAge: 600, allowCredentials: true,
};

test('CORS: a preflight is answered 204 by the gateway, without an OPTIONS route and without the backend', async () => {
  const { hb, gw } = await corsGateway(FULL_CORS);
  for (const p of ['/data', '/no/route/here']) {
    const res = await request(gw, 'OPTIONS', p, {
      headers: { Origin: ORIGIN, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
    });
    assert.equal(res.status, 204, `${p}: ${res.text}`);
    assert.equal(res.body.length, 0);
    assert.equal(res.headers['access-control-allow-origin'], ORIGIN);
    assert.deepEqual(list(res.headers['access-control-allow-methods']), ['get', 'post']);
    assert.deepEqual(list(res.headers['access-control-allow-headers']), ['content-type']);
    assert.equal(res.headers['access-control-max-age'], '600');
    assert.equal(res.headers['access-control-allow-credentials'], 'true');
    assert.ok(res.headers['apigw-requestid']);
  }
  assert.equal(hb.requests.length, 0, 'preflights never reach the backend');
});

test('CORS: simple requests from an allowed origin get Allow-Origin, Vary, Expose-Headers, Allow-Credentials; the backend\'s CORS headers are dropped', async () => {
  const { gw } = await corsGateway(FULL_CORS);
  const res = await request(gw, 'GET', '/data', { headers: { Origin: ORIGIN } });
  assert.equal(res.status, 200);
  assert.equal(res.text, 'data');
  assert.equal(res.headers['x-total'], '12');
  assert.equal(res.headers['access-control-allow-origin'], ORIGIN);
  assert.ok(list(res.headers.vary).includes('origin'), `Vary: ${res.headers.vary}`);
  assert.deepEqual(list(res.headers['access-control-expose-headers']), ['x-total']);
  assert.equal(res.headers['access-control-allow-credentials'], 'true');
  assert.equal(res.headers['access-control-max-age'], undefined, 'the backend\'s Max-Age is dropped');
  // Each CORS header once: the backend's copies are gone.
  const names = res.rawHeaders.filter((_, i) => i % 2 === 0).map((h) => h.toLowerCase());
  for (const h of ['access-control-allow-origin', 'access-control-expose-headers', 'access-control-allow-credentials']) {
    assert.equal(names.filter((n) => n === h).length, 1, `${h} appears once`);
  }
  // A 404 to an allowed origin carries them too.
  const nf = await request(gw, 'GET', '/missing', { headers: { Origin: ORIGIN } });
  assertJsonAnswer(nf, 404, NOT_FOUND);
  assert.equal(nf.headers['access-control-allow-origin'], ORIGIN);
});

test('CORS: a disallowed origin gets no CORS headers (preflight or simple request)', async () => {
  const { hb, gw } = await corsGateway(FULL_CORS);
  const pre = await request(gw, 'OPTIONS', '/data', {
    headers: { Origin: 'https://other.example', 'Access-Control-Request-Method': 'POST' },
  });
  assert.deepEqual(corsHeaders(pre), [], `preflight headers: ${JSON.stringify(pre.headers)}`);
  const res = await request(gw, 'GET', '/data', { headers: { Origin: 'https://other.example' } });
  assert.equal(res.status, 200);
  assert.equal(res.text, 'data');
  assert.deepEqual(corsHeaders(res), [], `headers: ${JSON.stringify(res.headers)}`);
  assert.equal(hb.requests.length, 1);
});

test('CORS: allowOrigins ["*"] gives * without credentials (with credentials it is a configuration error, as on AWS)', async () => {
  const star = await corsGateway({ allowOrigins: ['*'], allowMethods: ['GET'] });
  let res = await request(star.gw, 'GET', '/data', { headers: { Origin: 'https://any.example' } });
  assert.equal(res.headers['access-control-allow-origin'], '*');
  assert.equal(res.headers['access-control-allow-credentials'], undefined);
  res = await request(star.gw, 'OPTIONS', '/data', { headers: { Origin: 'https://any.example', 'Access-Control-Request-Method': 'GET' } });
  assert.equal(res.status, 204);
  assert.equal(res.headers['access-control-allow-origin'], '*');
});

test('without CORS configured, OPTIONS is routed like any method and the backend\'s CORS headers pass through', async () => {
  const { hb, gw } = await corsGateway(null);
  const res = await request(gw, 'GET', '/data', { headers: { Origin: ORIGIN } });
  assert.equal(res.status, 200);
  assert.equal(res.headers['access-control-allow-origin'], 'https://evil.example');
  const pre = await request(gw, 'OPTIONS', '/data', { headers: { Origin: ORIGIN, 'Access-Control-Request-Method': 'GET' } });
  assertJsonAnswer(pre, 404, NOT_FOUND);
  assert.equal(hb.requests.length, 1);
});

// ---------------------------------------------------------------------------
// https
// ---------------------------------------------------------------------------

const tlsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgate-rest-tls-'));
const certFile = path.join(tlsDir, 'cert.pem');
const keyFile = path.join(tlsDir, 'key.pem');
execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost',
  '-keyout', keyFile, '-out', certFile, '-days', '2'], { stdio: 'ignore' });
process.on('exit', () => fs.rmSync(tlsDir, { recursive: true, force: true }));

test('https: AWS_PROXY, HTTP_PROXY (X-Forwarded-Proto https), MOCK, 404, a 1 MB body, and wss beside them', { timeout: 45000 }, async () => {
  const backend = await startBackend((e) => (e.version === '2.0'
    ? { statusCode: 200, body: `lambda ${e.rawPath} ${e.body?.length ?? 0}` }
    : { statusCode: 200, body: e.body }));
  const hb = await startHttpBackend((r) => ({ status: 200, body: `proxy ${sha(r.body)}` }));
  const gw = await startGateway({
    routes: restApi({
      integrations: { l: awsProxy(backend), p: httpProxy(`${hb.origin}/in`), m: { type: 'MOCK', statusCode: 202, body: '{"ok":true}' } },
      routes: {
        $connect: { integration: 'l' }, $default: { integration: 'l', routeResponse: true },
        'POST /l': { integration: 'l' }, 'PUT /p': { integration: 'p' }, 'GET /m': { integration: 'm' },
      },
    }),
    args: ['--tls-cert', certFile, '--tls-key', keyFile],
  });
  let res = await request(gw, 'POST', '/l', { tls: true, body: 'hello' });
  assert.equal(res.status, 200);
  assert.equal(res.text, 'lambda /l 5');
  assertCommonHeaders(res);
  const big = randomBytes(1024 * 1024);
  res = await request(gw, 'PUT', '/p', { tls: true, body: big, timeoutMs: 20000 });
  assert.equal(res.status, 200);
  assert.equal(res.text, `proxy ${sha(big)}`);
  assert.equal(hb.requests[0].headers['x-forwarded-proto'], 'https');
  res = await request(gw, 'GET', '/m', { tls: true });
  assert.equal(res.status, 202);
  assert.deepEqual(res.json(), { ok: true });
  assertJsonAnswer(await request(gw, 'GET', '/zzz', { tls: true }), 404, NOT_FOUND);

  // Keep-alive over TLS: several requests through one agent socket.
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
  const sockets = new Set();
  for (let i = 0; i < 3; i++) {
    const r = await withTimeout(new Promise((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port: gw.port, path: '/m', agent }, (resp) => {
        sockets.add(resp.socket);
        resp.resume();
        resp.on('end', () => resolve(resp.statusCode));
      });
      req.on('error', reject);
      req.end();
    }), 5000, 'a keep-alive https request');
    assert.equal(r, 202);
  }
  agent.destroy();
  assert.equal(sockets.size, 1, 'one TLS connection served all three');

  const ws = await connect(`wss://127.0.0.1:${gw.port}/`, { rejectUnauthorized: false });
  ws.send('over wss');
  assert.equal((await nextMessage(ws)).data, 'over wss');
});
