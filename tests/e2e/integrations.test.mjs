// HTTP_PROXY and MOCK integrations, requestParameters, stageVariables and
// routeResponse of every kind, seen from a real node:http backend.
import {
  test, assert, startBackend, startPair, startHttpBackend, startGateway, makeApi, connect, connectRefused,
  connectWithId, nextMessage, pingPong, pendingMessages, sleep, waitClose, runGateway,
  writeRoutes, echoHandler,
} from './helpers.mjs';
import { rmSync } from 'node:fs';

/**
 * An API whose $connect/$disconnect go to the AWS_PROXY backend `aws`
 * (so connectWithId works) plus the given integrations and routes.
 */
function api(aws, { integrations = {}, routes = {}, stageVariables, routeSelectionExpression } = {}) {
  const a = makeApi(aws.url, {
    routes: {
      $connect: { integration: 'backend' },
      $disconnect: { integration: 'backend' },
      $default: { integration: 'backend', routeResponse: true },
      ...routes,
    },
  });
  Object.assign(a.integrations, integrations);
  if (stageVariables) a.stageVariables = stageVariables;
  if (routeSelectionExpression) a.routeSelectionExpression = routeSelectionExpression;
  return a;
}

/** An API with every route (including $connect and $disconnect) on integration `hp`. */
function httpOnlyApi(integration, { routes = {}, stageVariables } = {}) {
  const a = {
    name: 'chat',
    stage: 'dev',
    basePath: '/',
    routeSelectionExpression: '$request.body.action',
    integrations: { hp: { type: 'HTTP_PROXY', timeoutMs: 5000, ...integration } },
    routes: {
      $connect: { integration: 'hp' },
      $disconnect: { integration: 'hp' },
      $default: { integration: 'hp', routeResponse: true },
      ...routes,
    },
  };
  if (stageVariables) a.stageVariables = stageVariables;
  return a;
}

/** Proves nothing was sent back: wait, then a ping round trip, and no pending message. */
async function assertNothingReceived(ws) {
  await sleep(200);
  await pingPong(ws);
  assert.deepEqual(pendingMessages(ws), [], 'no message was sent to the client');
}

const hdr = (r, name) => r.headers[name.toLowerCase()];

// ---------------------------------------------------------------------------
// HTTP_PROXY: what the backend receives
// ---------------------------------------------------------------------------

test('HTTP_PROXY: method, path, query, headers and body as received by the backend', async () => {
  const aws = await startBackend();
  const hb = await startHttpBackend((r) => ({ status: 200, body: `ok:${r.text}` }));
  const gw = await startGateway({
    routes: api(aws, {
      integrations: {
        put: { type: 'HTTP_PROXY', uri: `${hb.origin}/api/v1/send?q=1&x=a%20b`, method: 'PUT', timeoutMs: 5000 },
        post: { type: 'HTTP_PROXY', uri: `${hb.origin}/plain`, timeoutMs: 5000 },
      },
      routes: { send: { integration: 'put', routeResponse: true }, other: { integration: 'post', routeResponse: true } },
    }),
  });
  const { ws, id } = await connectWithId(gw, aws, { headers: { 'User-Agent': 'ua-e2e', 'X-Client-Only': 'not forwarded on messages' } });

  const body = '{"action":"send","text":"héllo \\u0000 \\"q\\"","n":1}';
  ws.send(body);
  assert.equal((await nextMessage(ws)).data, `ok:${body}`);
  const r = hb.requests[0];
  assert.equal(r.method, 'PUT');
  assert.equal(r.url, '/api/v1/send?q=1&x=a%20b');
  assert.equal(r.text, body, 'the message body is sent as-is');
  assert.equal(hdr(r, 'content-type'), 'application/json; charset=utf-8');
  assert.equal(hdr(r, 'content-length'), String(Buffer.byteLength(body)));
  assert.equal(hdr(r, 'host'), `127.0.0.1:${hb.port}`);
  assert.equal(hdr(r, 'x-wsgate-connection-id'), id);
  assert.equal(hdr(r, 'x-wsgate-route-key'), 'send');
  assert.equal(hdr(r, 'x-wsgate-event-type'), 'MESSAGE');
  assert.match(hdr(r, 'x-wsgate-request-id') ?? '', /^\S+$/);
  assert.equal(hdr(r, 'x-client-only'), undefined, 'handshake headers are only forwarded on $connect');
  assert.equal(hdr(r, 'x-wsgate-disconnect-status-code'), undefined);

  ws.send('{"action":"other"}');
  assert.equal((await nextMessage(ws)).data, 'ok:{"action":"other"}');
  const r2 = hb.requests[1];
  assert.equal(r2.method, 'POST', 'the method defaults to POST');
  assert.equal(r2.url, '/plain');
  assert.equal(hdr(r2, 'x-wsgate-route-key'), 'other');
  assert.notEqual(hdr(r2, 'x-wsgate-request-id'), hdr(r, 'x-wsgate-request-id'), 'each call has its own request ID');
  assert.equal(aws.eventsOf('MESSAGE').length, 0);
});

test('HTTP_PROXY: every method is used as configured', async () => {
  const aws = await startBackend();
  const hb = await startHttpBackend((r) => ({ status: 200, body: r.method }));
  const methods = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];
  const integrations = {};
  const routes = {};
  for (const m of methods) {
    integrations[m] = { type: 'HTTP_PROXY', uri: `${hb.origin}/m`, method: m, timeoutMs: 5000 };
    routes[m.toLowerCase()] = { integration: m, routeResponse: true };
  }
  const gw = await startGateway({ routes: api(aws, { integrations, routes }) });
  const { ws } = await connectWithId(gw, aws);
  for (const m of methods) {
    const body = JSON.stringify({ action: m.toLowerCase() });
    ws.send(body);
    assert.equal((await nextMessage(ws)).data, m);
    const r = hb.requests.at(-1);
    assert.equal(r.method, m);
    assert.equal(r.text, body, `${m} carries the message body`);
  }
});

test('HTTP_PROXY: a binary frame is sent as application/octet-stream, byte-exact', async () => {
  const aws = await startBackend();
  const hb = await startHttpBackend(() => ({ status: 200 }));
  const gw = await startGateway({
    routes: api(aws, {
      integrations: { hp: { type: 'HTTP_PROXY', uri: `${hb.origin}/bin`, timeoutMs: 5000 } },
      routes: { $default: { integration: 'hp' } },
    }),
  });
  const { ws, id } = await connectWithId(gw, aws);
  const bytes = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x7b, 0x22, 0x0d, 0x0a, 0x00]);
  ws.send(bytes, { binary: true });
  const r = await hb.waitFor(() => true);
  assert.equal(hdr(r, 'content-type'), 'application/octet-stream');
  assert.ok(r.body.equals(bytes), `body ${r.body.toString('hex')}`);
  assert.equal(hdr(r, 'x-wsgate-route-key'), '$default');
  assert.equal(hdr(r, 'x-wsgate-connection-id'), id);
});

test('HTTP_PROXY: requestParameters from every source kind, to headers and query string', async () => {
  const aws = await startBackend();
  const hb = await startHttpBackend(() => ({ status: 200, body: 'done' }));
  const P = (name) => `integration.request.header.${name}`;
  const Q = (name) => `integration.request.querystring.${name}`;
  const requestParameters = {
    [P('X-Conn')]: 'context.connectionId',
    [P('X-Route')]: 'context.routeKey',
    [P('X-Event')]: 'context.eventType',
    [P('X-Req')]: 'context.requestId',
    [P('X-Msg')]: 'context.messageId',
    [P('X-Stage')]: 'context.stage',
    [P('X-Api')]: 'context.apiId',
    [P('X-Domain')]: 'context.domainName',
    [P('X-Connected-At')]: 'context.connectedAt',
    [P('X-Epoch')]: 'context.requestTimeEpoch',
    [P('X-Ip')]: 'context.identity.sourceIp',
    [P('X-UA')]: 'context.identity.userAgent',
    [P('X-Room')]: 'route.request.body.data.room',
    [P('X-First')]: 'route.request.body.data.items[0]',
    [P('X-Count')]: 'route.request.body.count',
    [P('X-Env')]: 'stageVariables.env',
    [P('X-Static')]: "'static text'",
    [Q('room')]: 'route.request.body.data.room',
    [Q('who')]: "'a b&c=d/é?'",
    [Q('conn')]: 'context.connectionId',
    [Q('env')]: 'stageVariables.env',
    [Q('missing')]: 'route.request.body.nope',
  };
  const gw = await startGateway({
    routes: api(aws, {
      stageVariables: { env: 'staging' },
      integrations: { hp: { type: 'HTTP_PROXY', uri: `${hb.origin}/params?q=1`, timeoutMs: 5000, requestParameters } },
      routes: { join: { integration: 'hp', routeResponse: true } },
    }),
  });
  const { ws, id, connectEvent } = await connectWithId(gw, aws, { headers: { 'User-Agent': 'param-agent/1.0' } });
  const before = Date.now();
  ws.send('{"action":"join","count":7,"data":{"room":"room1234","items":["i0","i1"]}}');
  assert.equal((await nextMessage(ws)).data, 'done');
  const r = hb.requests[0];
  const crc = connectEvent.requestContext;

  assert.equal(hdr(r, 'x-conn'), id);
  assert.equal(hdr(r, 'x-route'), 'join');
  assert.equal(hdr(r, 'x-event'), 'MESSAGE');
  assert.equal(hdr(r, 'x-req'), hdr(r, 'x-wsgate-request-id'));
  assert.match(hdr(r, 'x-msg') ?? '', /^\S+$/);
  assert.equal(hdr(r, 'x-stage'), 'dev');
  assert.equal(hdr(r, 'x-api'), crc.apiId);
  assert.equal(hdr(r, 'x-domain'), crc.domainName);
  assert.equal(hdr(r, 'x-connected-at'), String(crc.connectedAt));
  const epoch = Number(hdr(r, 'x-epoch'));
  assert.ok(epoch >= before - 1000 && epoch <= Date.now() + 1000, `requestTimeEpoch ${hdr(r, 'x-epoch')}`);
  assert.equal(hdr(r, 'x-ip'), '127.0.0.1');
  assert.equal(hdr(r, 'x-ua'), 'param-agent/1.0');
  assert.equal(hdr(r, 'x-room'), 'room1234');
  assert.equal(hdr(r, 'x-first'), 'i0');
  assert.equal(hdr(r, 'x-count'), '7');
  assert.equal(hdr(r, 'x-env'), 'staging');
  assert.equal(hdr(r, 'x-static'), 'static text');

  assert.equal(r.path, '/params');
  assert.ok(r.url.startsWith('/params?q=1&'), `the parameters are appended to the uri's query: ${r.url}`);
  assert.equal(r.query.get('q'), '1');
  assert.equal(r.query.get('room'), 'room1234');
  assert.equal(r.query.get('who'), 'a b&c=d/é?', 'the value is URL-encoded');
  assert.doesNotMatch(r.url.split('?')[1], /[ é]/, 'no raw space or non-ASCII byte in the query');
  assert.equal(r.query.get('conn'), id);
  assert.equal(r.query.get('env'), 'staging');
  assert.equal(r.query.get('missing'), '');
});

test('HTTP_PROXY $connect: route.request.header and route.request.querystring sources', async () => {
  const hb = await startHttpBackend(() => ({ status: 200 }));
  const gw = await startGateway({
    routes: httpOnlyApi({
      uri: `${hb.origin}/connect`,
      requestParameters: {
        'integration.request.header.X-Token': 'route.request.querystring.token',
        'integration.request.querystring.name': 'route.request.header.X-Name',
        'integration.request.header.X-Conn': 'context.connectionId',
        'integration.request.header.X-Event': 'context.eventType',
      },
    }),
  });
  await connect(`${gw.url}/?token=t0k%2Fen&other=1`, { headers: { 'X-Name': 'ada lovelace' } });
  const r = await hb.waitFor((x) => hdr(x, 'x-wsgate-event-type') === 'CONNECT');
  assert.equal(hdr(r, 'x-token'), 't0k/en');
  assert.equal(r.query.get('name'), 'ada lovelace');
  assert.equal(hdr(r, 'x-conn'), hdr(r, 'x-wsgate-connection-id'));
  assert.equal(hdr(r, 'x-event'), 'CONNECT');
});

test('HTTP_PROXY $connect: accept, with the handshake headers forwarded and X-Forwarded-For', async () => {
  const hb = await startHttpBackend((r) => ({ status: hdr(r, 'x-wsgate-event-type') === 'MESSAGE' ? 200 : 204, body: r.text }));
  const gw = await startGateway({ routes: httpOnlyApi({ uri: `${hb.origin}/ws` }) });
  const ws = await connect(`${gw.url}/?room=1`, { headers: { 'X-Custom': 'v1', 'User-Agent': 'conn-agent', Authorization: 'Bearer abc' } });
  const r = await hb.waitFor((x) => hdr(x, 'x-wsgate-event-type') === 'CONNECT');
  assert.equal(r.method, 'POST');
  assert.equal(r.url, '/ws');
  assert.equal(r.text, '');
  assert.equal(hdr(r, 'x-wsgate-route-key'), '$connect');
  assert.match(hdr(r, 'x-wsgate-connection-id') ?? '', /^[A-Za-z0-9_-]{16,}$/);
  assert.match(hdr(r, 'x-wsgate-request-id') ?? '', /^\S+$/);
  assert.equal(hdr(r, 'x-custom'), 'v1');
  assert.equal(hdr(r, 'user-agent'), 'conn-agent');
  assert.equal(hdr(r, 'authorization'), 'Bearer abc');
  assert.equal(hdr(r, 'sec-websocket-version'), '13');
  assert.ok(hdr(r, 'sec-websocket-key'), 'Sec-WebSocket-Key is forwarded');
  assert.equal(hdr(r, 'x-forwarded-for'), '127.0.0.1');
  assert.equal(hdr(r, 'upgrade'), undefined, 'hop-by-hop Upgrade is not forwarded');
  assert.notEqual((hdr(r, 'connection') ?? '').toLowerCase(), 'upgrade', 'hop-by-hop Connection is not forwarded');
  assert.equal(hdr(r, 'host'), `127.0.0.1:${hb.port}`, 'Host names the backend');

  // The connection works and messages carry the same ID.
  ws.send('{"action":"x"}');
  assert.equal((await nextMessage(ws)).data, '{"action":"x"}');
  const m = hb.requests.find((x) => hdr(x, 'x-wsgate-event-type') === 'MESSAGE');
  assert.equal(hdr(m, 'x-wsgate-connection-id'), hdr(r, 'x-wsgate-connection-id'));
});

for (const status of [400, 401, 403, 404, 429]) {
  test(`HTTP_PROXY $connect: backend status ${status} refuses the handshake with ${status}`, async () => {
    const hb = await startHttpBackend(() => ({ status, body: 'nope' }));
    const gw = await startGateway({ routes: httpOnlyApi({ uri: `${hb.origin}/ws` }) });
    assert.equal(await connectRefused(gw.url), status);
    await sleep(150);
    assert.equal(hb.requests.filter((r) => hdr(r, 'x-wsgate-event-type') === 'DISCONNECT').length, 0,
      'a refused connection gets no $disconnect');
  });
}

test('HTTP_PROXY $connect: a 5xx answer is an integration failure (502)', async () => {
  const hb = await startHttpBackend(() => ({ status: 503, body: 'down' }));
  const gw = await startGateway({ routes: httpOnlyApi({ uri: `${hb.origin}/ws` }) });
  assert.equal(await connectRefused(gw.url), 502);
});

test('HTTP_PROXY $connect: the Sec-WebSocket-Protocol response header picks the subprotocol', async () => {
  const hb = await startHttpBackend((r) => (hdr(r, 'x-wsgate-event-type') === 'CONNECT'
    ? { status: 200, headers: { 'Sec-WebSocket-Protocol': 'v2' } } : { status: 200 }));
  const gw = await startGateway({ routes: httpOnlyApi({ uri: `${hb.origin}/ws` }) });
  const ws = await connect(gw.url, { protocols: ['v1', 'v2', 'v3'] });
  assert.equal(ws.protocol, 'v2');
  const r = await hb.waitFor((x) => hdr(x, 'x-wsgate-event-type') === 'CONNECT');
  assert.deepEqual((hdr(r, 'sec-websocket-protocol') ?? '').split(/\s*,\s*/), ['v1', 'v2', 'v3'], 'the offered subprotocols are forwarded');
});

test('HTTP_PROXY $disconnect: status code and reason headers', async () => {
  const hb = await startHttpBackend(() => ({ status: 200 }));
  const gw = await startGateway({ routes: httpOnlyApi({ uri: `${hb.origin}/ws`, method: 'DELETE' }) });
  const ws = await connect(gw.url);
  const c = await hb.waitFor((x) => hdr(x, 'x-wsgate-event-type') === 'CONNECT');
  const id = hdr(c, 'x-wsgate-connection-id');
  ws.close(4001, 'bye now');
  const d = await hb.waitFor((x) => hdr(x, 'x-wsgate-event-type') === 'DISCONNECT');
  assert.equal(d.method, 'DELETE');
  assert.equal(hdr(d, 'x-wsgate-connection-id'), id);
  assert.equal(hdr(d, 'x-wsgate-route-key'), '$disconnect');
  assert.equal(hdr(d, 'x-wsgate-disconnect-status-code'), '4001');
  assert.equal(hdr(d, 'x-wsgate-disconnect-reason'), 'bye now');
  assert.match(hdr(d, 'x-wsgate-request-id') ?? '', /^\S+$/);
  assert.notEqual(hdr(d, 'x-wsgate-request-id'), hdr(c, 'x-wsgate-request-id'));
  await sleep(100);
  assert.equal(hb.requests.filter((x) => hdr(x, 'x-wsgate-event-type') === 'DISCONNECT').length, 1, 'exactly once');
});

test('HTTP_PROXY $disconnect: a dropped TCP connection gives 1006 "Connection lost"', async () => {
  const hb = await startHttpBackend(() => ({ status: 200 }));
  const gw = await startGateway({ routes: httpOnlyApi({ uri: `${hb.origin}/ws` }) });
  const ws = await connect(gw.url);
  await hb.waitFor((x) => hdr(x, 'x-wsgate-event-type') === 'CONNECT');
  ws._socket.destroy();
  const d = await hb.waitFor((x) => hdr(x, 'x-wsgate-event-type') === 'DISCONNECT');
  assert.equal(hdr(d, 'x-wsgate-disconnect-status-code'), '1006');
  assert.equal(hdr(d, 'x-wsgate-disconnect-reason'), 'Connection lost');
});

test('requestParameters: unknown sources and context variables are config errors', async () => {
  const bad = [
    ['integration.request.header.X', 'context.nope'],
    ['integration.request.header.X', 'nowhere.x'],
    ['integration.request.header.X', 'route.request.cookie.x'],
    ['integration.request.body.X', 'context.connectionId'],
    ['integration.request.header.X', "'unterminated"],
  ];
  for (const [k, v] of bad) {
    const dir = writeRoutes({ 'p.json': httpOnlyApi({ uri: 'http://127.0.0.1:9/x', requestParameters: { [k]: v } }) });
    try {
      const res = await runGateway(['--check', '--routes', dir]);
      assert.equal(res.code, 1, `${k}=${v} should be refused:\n${res.output}`);
      assert.ok(res.stderr.includes('p.json') && res.stderr.includes('requestParameters'), res.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

// ---------------------------------------------------------------------------
// MOCK
// ---------------------------------------------------------------------------

test('MOCK: the body with ${context.*} and ${stageVariables.*} placeholders comes back', async () => {
  const aws = await startBackend();
  const gw = await startGateway({
    routes: api(aws, {
      stageVariables: { env: 'prod', region: 'eu' },
      integrations: {
        mock: { type: 'MOCK', statusCode: 200, body: '{"id":"${context.connectionId}","route":"${context.routeKey}","env":"${stageVariables.env}/${stageVariables.region}"}' },
        plain: { type: 'MOCK', statusCode: 200, body: 'pong ✓' },
      },
      routes: { whoami: { integration: 'mock', routeResponse: true }, ping: { integration: 'plain', routeResponse: true } },
    }),
  });
  const { ws, id } = await connectWithId(gw, aws);
  ws.send('{"action":"whoami"}');
  const m = await nextMessage(ws);
  assert.equal(m.isBinary, false);
  assert.equal(m.data, `{"id":"${id}","route":"whoami","env":"prod/eu"}`);
  ws.send('{"action":"ping"}');
  assert.equal((await nextMessage(ws)).data, 'pong ✓');
  assert.equal(aws.eventsOf('MESSAGE').length, 0, 'MOCK routes call no backend');
});

test('MOCK without routeResponse sends nothing back', async () => {
  const aws = await startBackend();
  const gw = await startGateway({
    routes: api(aws, {
      integrations: { mock: { type: 'MOCK', statusCode: 200, body: 'should not arrive' } },
      routes: { $default: { integration: 'mock' } },
    }),
  });
  const { ws } = await connectWithId(gw, aws);
  ws.send('anything');
  await assertNothingReceived(ws);
});

test('MOCK $connect: statusCode 403 refuses the handshake, 200 accepts', async () => {
  const aws = await startBackend();
  const refuse = api(aws, {
    integrations: { deny: { type: 'MOCK', statusCode: 403, body: 'denied' } },
    routes: { $connect: { integration: 'deny' } },
  });
  const gw = await startGateway({ routes: refuse });
  assert.equal(await connectRefused(gw.url), 403);
  await sleep(150);
  assert.equal(aws.events.length, 0, 'no $disconnect for a refused connection');

  const accept = api(aws, {
    integrations: { allow: { type: 'MOCK', statusCode: 200, body: '' } },
    routes: { $connect: { integration: 'allow' } },
  });
  accept.basePath = '/open';
  accept.name = 'open';
  const gw2 = await startGateway({ routes: accept });
  const ws = await connect(`${gw2.url}/open`);
  ws.send('hi');
  const m = await nextMessage(ws);
  assert.equal(m.data, 'hi');
});

// ---------------------------------------------------------------------------
// stageVariables
// ---------------------------------------------------------------------------

test('stageVariables in an integration uri', async () => {
  const aws = await startBackend();
  const hb = await startHttpBackend((r) => ({ status: 200, body: r.url }));
  const gw = await startGateway({
    routes: api(aws, {
      stageVariables: { backendHost: `127.0.0.1:${hb.port}`, version: 'v7' },
      integrations: { hp: { type: 'HTTP_PROXY', uri: 'http://${stageVariables.backendHost}/${stageVariables.version}/events?v=${stageVariables.version}', timeoutMs: 5000 } },
      routes: { go: { integration: 'hp', routeResponse: true } },
    }),
  });
  const { ws } = await connectWithId(gw, aws);
  ws.send('{"action":"go"}');
  assert.equal((await nextMessage(ws)).data, '/v7/events?v=v7');
  assert.equal(hdr(hb.requests[0], 'host'), `127.0.0.1:${hb.port}`);
});

test('stageVariables in an AWS_PROXY uri', async () => {
  const aws = await startBackend();
  const target = await startBackend((ev) => ({ statusCode: 200, body: `via ${ev.__path}` }));
  const gw = await startGateway({
    routes: api(aws, {
      stageVariables: { port: String(target.port) },
      integrations: { lambda: { type: 'AWS_PROXY', uri: 'http://127.0.0.1:${stageVariables.port}/fn', timeoutMs: 5000 } },
      routes: { go: { integration: 'lambda', routeResponse: true } },
    }),
  });
  const { ws } = await connectWithId(gw, aws);
  ws.send('{"action":"go"}');
  assert.equal((await nextMessage(ws)).data, 'via /fn');
});

test('an unknown stage variable in a uri is a config error', async () => {
  const dir = writeRoutes({ 'uri.json': httpOnlyApi({ uri: 'http://${stageVariables.nope}/x' }, { stageVariables: { host: '127.0.0.1:9' } }) });
  try {
    const res = await runGateway(['--check', '--routes', dir]);
    assert.equal(res.code, 1, res.output);
    assert.ok(res.stderr.includes('uri.json') && res.stderr.includes('nope'), res.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------
// routeResponse of every kind
// ---------------------------------------------------------------------------

const BIN = Buffer.from([0x00, 0xff, 0xc3, 0x28, 0x80, 0x41, 0x00]); // not UTF-8

// [name, integration (given the two backends), expected message (null = nothing)]
const ROUTE_RESPONSES = [
  ['AWS_PROXY text body', (aws) => ({ type: 'AWS_PROXY', uri: `${aws.url}?kind=text`, timeoutMs: 5000 }), { isBinary: false, data: 'héllo 🚀' }],
  ['AWS_PROXY base64 body → binary frame', (aws) => ({ type: 'AWS_PROXY', uri: `${aws.url}?kind=b64`, timeoutMs: 5000 }), { isBinary: true, data: BIN }],
  ['AWS_PROXY base64 of UTF-8 text → still a binary frame', (aws) => ({ type: 'AWS_PROXY', uri: `${aws.url}?kind=b64text`, timeoutMs: 5000 }), { isBinary: true, data: Buffer.from('plain') }],
  ['AWS_PROXY non-2xx statusCode, body still delivered', (aws) => ({ type: 'AWS_PROXY', uri: `${aws.url}?kind=500`, timeoutMs: 5000 }), { isBinary: false, data: 'error body' }],
  ['HTTP_PROXY text body', (aws, hb) => ({ type: 'HTTP_PROXY', uri: `${hb.origin}/text`, timeoutMs: 5000 }), { isBinary: false, data: 'plain ✓ text' }],
  ['HTTP_PROXY non-UTF-8 body → binary frame', (aws, hb) => ({ type: 'HTTP_PROXY', uri: `${hb.origin}/bin`, timeoutMs: 5000 }), { isBinary: true, data: BIN }],
  ['HTTP_PROXY 4xx body is still the route response', (aws, hb) => ({ type: 'HTTP_PROXY', uri: `${hb.origin}/404`, timeoutMs: 5000 }), { isBinary: false, data: 'not found here' }],
  ['MOCK body', () => ({ type: 'MOCK', statusCode: 200, body: 'mocked ${context.routeKey}' }), { isBinary: false, data: 'mocked $default' }],
];

function lambdaByKind(ev) {
  if (ev.requestContext.eventType !== 'MESSAGE') return { statusCode: 200 };
  const kind = new URL(ev.__path, 'http://x').searchParams.get('kind');
  switch (kind) {
    case 'text': return { statusCode: 200, body: 'héllo 🚀', isBase64Encoded: false };
    case 'b64': return { statusCode: 200, body: BIN.toString('base64'), isBase64Encoded: true };
    case 'b64text': return { statusCode: 200, body: Buffer.from('plain').toString('base64'), isBase64Encoded: true };
    case '500': return { statusCode: 500, body: 'error body' };
    default: return { statusCode: 200, body: `unexpected kind ${kind}` };
  }
}

function httpByPath(r) {
  if (r.path === '/text') return { status: 200, headers: { 'content-type': 'text/plain' }, body: 'plain ✓ text' };
  if (r.path === '/bin') return { status: 200, headers: { 'content-type': 'application/octet-stream' }, body: BIN };
  if (r.path === '/404') return { status: 404, body: 'not found here' };
  return { status: 200, body: `unexpected path ${r.path}` };
}

for (const [name, integ, expected] of ROUTE_RESPONSES) {
  for (const routeResponse of [true, false]) {
    test(`routeResponse ${routeResponse}: ${name}`, async () => {
      const aws = await startBackend(lambdaByKind);
      const hb = await startHttpBackend(httpByPath);
      const gw = await startGateway({
        routes: api(aws, {
          integrations: { target: integ(aws, hb) },
          routes: { $default: { integration: 'target', routeResponse } },
        }),
      });
      const { ws, id } = await connectWithId(gw, aws);
      ws.send('go');
      if (!routeResponse) {
        if (integ(aws, hb).type === 'AWS_PROXY') await aws.waitForEvent('MESSAGE', id);
        if (integ(aws, hb).type === 'HTTP_PROXY') await hb.waitFor(() => true);
        await assertNothingReceived(ws);
        return;
      }
      const m = await nextMessage(ws);
      assert.equal(m.isBinary, expected.isBinary, `binary frame: ${expected.isBinary}`);
      if (expected.isBinary) assert.ok(m.data.equals(expected.data), `got ${m.data.toString('hex')}`);
      else assert.equal(m.data, expected.data);
      await sleep(100);
      assert.deepEqual(pendingMessages(ws), [], 'exactly one message');
    });
  }
}

test('AWS_PROXY and HTTP_PROXY routes side by side keep their own answers', async () => {
  const aws = await startBackend(echoHandler);
  const hb = await startHttpBackend((r) => ({ status: 200, body: `http:${r.text}` }));
  const gw = await startGateway({
    routes: api(aws, {
      integrations: { hp: { type: 'HTTP_PROXY', uri: `${hb.origin}/x`, timeoutMs: 5000 } },
      routes: { h: { integration: 'hp', routeResponse: true } },
    }),
  });
  const { ws } = await connectWithId(gw, aws);
  for (let i = 0; i < 5; i++) {
    ws.send(`{"action":"h","i":${i}}`);
    assert.equal((await nextMessage(ws)).data, `http:{"action":"h","i":${i}}`);
    ws.send(`{"action":"l","i":${i}}`);
    assert.equal((await nextMessage(ws)).data, `{"action":"l","i":${i}}`);
  }
  // The connection still closes cleanly and $disconnect reaches AWS_PROXY.
  ws.close(1000);
  await waitClose(ws);
  await aws.waitFor((e) => e.requestContext?.eventType === 'DISCONNECT');
});

test('stageVariables are in every WebSocket event (CONNECT, MESSAGE, DISCONNECT)', async () => {
  const { backend, gw } = await startPair(undefined, { stageVariables: { color: 'blue', region: 'eu' } });
  const { ws, id } = await connectWithId(gw, backend);
  ws.send('hello');
  await backend.waitFor((e) => e.requestContext?.eventType === 'MESSAGE');
  ws.close(1000);
  await backend.waitFor((e) => e.requestContext?.eventType === 'DISCONNECT');
  for (const type of ['CONNECT', 'MESSAGE', 'DISCONNECT']) {
    const ev = backend.events.find((e) => e.requestContext?.eventType === type && e.requestContext.connectionId === id);
    assert.deepEqual(ev.stageVariables, { color: 'blue', region: 'eu' }, type);
  }
});
