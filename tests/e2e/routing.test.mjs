// Route selection: routeSelectionExpression is evaluated against each
// message and the result must equal a route key exactly; otherwise $default,
// and without $default the client gets AWS's Forbidden frame.
import {
  test, assert, startBackend, startGateway, makeApi, connectWithId, nextMessage, pingPong,
  runGateway, writeRoutes, sleep, pendingMessages,
} from './helpers.mjs';
import { rmSync } from 'node:fs';

/** Answers every message with the route key it arrived on. */
function routeEcho(ev) {
  if (ev.requestContext.eventType === 'MESSAGE') return { statusCode: 200, body: `route=${ev.requestContext.routeKey}` };
  return { statusCode: 200 };
}

/** An API whose custom routes `keys` (and $default unless noDefault) all answer with their route key. */
function routingApi(uri, expr, keys, { noDefault = false } = {}) {
  const routes = {
    $connect: { integration: 'backend' },
    $disconnect: { integration: 'backend' },
  };
  if (!noDefault) routes.$default = { integration: 'backend', routeResponse: true };
  for (const k of keys) routes[k] = { integration: 'backend', routeResponse: true };
  return makeApi(uri, { routeSelectionExpression: expr, routes });
}

async function startRouting(expr, keys, opts) {
  const backend = await startBackend(routeEcho);
  const gw = await startGateway({ routes: routingApi(backend.url, expr, keys, opts) });
  const client = await connectWithId(gw, backend);
  return { backend, gw, ...client };
}

/** Sends `body` (string, or Buffer sent as a binary frame) and resolves the route key it was given. */
async function routeOf(ws, body) {
  // Frames of at most 32 KB, as AWS requires (limits.maxFrameBytes).
  const binary = Buffer.isBuffer(body);
  for (let i = 0; i === 0 || i < body.length; i += 32768) {
    ws.send(body.slice(i, i + 32768), { binary, fin: i + 32768 >= body.length });
  }
  const m = await nextMessage(ws);
  assert.equal(m.isBinary, false, 'the route answer is a text frame');
  assert.ok(m.data.startsWith('route='), `expected a route answer, got ${JSON.stringify(m.data)}`);
  return m.data.slice('route='.length);
}

const AWS_BODY = '{"service":"chat","action":"join","data":{"room":"room1234"}}';

// [expression, route keys of the API, [[message, expected route key], ...]]
const SELECTION_TABLE = [
  // AWS's own evaluation table (reference §1.1).
  ['$request.body.action', ['join', 'chat'], [[AWS_BODY, 'join']]],
  ['${request.body.action}', ['join', 'chat'], [[AWS_BODY, 'join']]],
  ['${request.body.service}/${request.body.action}', ['chat/join', 'join', 'chat'], [[AWS_BODY, 'chat/join']]],
  ['${request.body.action}-${request.body.invalidPath}', ['join-', 'join'], [[AWS_BODY, 'join-']]],
  ['action', ['action', 'join'], [[AWS_BODY, 'action'], ['not even json', 'action'], ['{}', 'action']]],
  ['\\$default', ['default', 'join'], [[AWS_BODY, '$default'], ['{"action":"default"}', '$default']]],
  // Static text around variables, and a variable at the start of the text.
  ['v1-${request.body.action}', ['v1-join', 'join'], [[AWS_BODY, 'v1-join'], ['{"action":"x"}', '$default']]],
  ['${request.body.action}:static', ['join:static'], [[AWS_BODY, 'join:static']]],
  ['cost\\$${request.body.action}', ['cost$join'], [[AWS_BODY, 'cost$join']]],
  // Nested keys.
  ['$request.body.data.room', ['room1234', 'join'], [[AWS_BODY, 'room1234'], ['{"data":{}}', '$default'], ['{"data":"room1234"}', '$default']]],
  ['${request.body.data.room}', ['room1234'], [[AWS_BODY, 'room1234']]],
  // Array indexes.
  ['$request.body.data.items[0].kind', ['first', 'second'], [
    ['{"data":{"items":[{"kind":"first"},{"kind":"second"}]}}', 'first'],
    ['{"data":{"items":[]}}', '$default'],
    ['{"data":{"items":"first"}}', '$default'],
  ]],
  ['$request.body.data.items[1].kind', ['first', 'second'], [
    ['{"data":{"items":[{"kind":"first"},{"kind":"second"}]}}', 'second'],
    ['{"data":{"items":[{"kind":"first"}]}}', '$default'],
  ]],
  ['${request.body.data.items[1].kind}', ['second'], [['{"data":{"items":[{"kind":"first"},{"kind":"second"}]}}', 'second']]],
  ['$request.body.matrix[1][0]', ['3', '1'], [['{"matrix":[[1,2],[3,4]]}', '3']]],
  ['$request.body.list[2]', ['c'], [['{"list":["a","b","c","d"]}', 'c'], ['{"list":["a","b"]}', '$default']]],
  // Bracketed keys.
  ["$request.body['a b']", ['spaced'], [['{"a":"x","a b":"spaced"}', 'spaced'], ['{"a":"spaced"}', '$default']]],
  ["$request.body['a.b']", ['dotted', 'nested'], [['{"a":{"b":"nested"},"a.b":"dotted"}', 'dotted']]],
  ['$request.body.a.b', ['dotted', 'nested'], [['{"a":{"b":"nested"},"a.b":"dotted"}', 'nested']]],
  ["$request.body.data['room']", ['room1234'], [[AWS_BODY, 'room1234']]],
  ["${request.body['a b']}/x", ['spaced/x'], [['{"a b":"spaced"}', 'spaced/x']]],
  // Only the top-level key counts, wherever it appears in the message.
  ['$request.body.action', ['join', 'wrong'], [
    ['{"data":{"action":"wrong"},"action":"join"}', 'join'],
    ['{"x":["action","wrong"],"action":"join"}', 'join'],
    ['{"x":"\\"action\\":\\"wrong\\"","action":"join"}', 'join'],
    ['{"data":{"action":"wrong"}}', '$default'],
    ['  {\n  "action" :\t"join"  }\n', 'join'],
  ]],
];

for (const [expr, keys, cases] of SELECTION_TABLE) {
  test(`selection ${JSON.stringify(expr)} with routes ${keys.join(', ')}`, async () => {
    const { backend, ws, id } = await startRouting(expr, keys);
    for (const [body, expected] of cases) {
      assert.equal(await routeOf(ws, body), expected, `message ${JSON.stringify(body)}`);
    }
    // The event carries the selected route key too.
    const evs = backend.eventsOf('MESSAGE', id);
    assert.deepEqual(evs.map((e) => e.requestContext.routeKey), cases.map((c) => c[1]));
  });
}

test('numbers, booleans and null select by their JSON text, objects and arrays by compact JSON', async () => {
  const keys = ['42', 'true', 'false', 'null', '-7', '3.25', '{"a":1,"b":[1,2]}', '[1,"x"]', '[]', '{}'];
  const { ws } = await startRouting('$request.body.action', keys);
  const cases = [
    ['{"action":42}', '42'],
    ['{"action":"42"}', '42'],
    ['{"action":true}', 'true'],
    ['{"action":false}', 'false'],
    ['{"action":null}', 'null'],
    ['{"action":-7}', '-7'],
    ['{"action":3.25}', '3.25'],
    ['{"action": {"a": 1, "b": [ 1, 2 ]}}', '{"a":1,"b":[1,2]}'],
    ['{"action":[1, "x"]}', '[1,"x"]'],
    ['{"action":[]}', '[]'],
    ['{"action":{}}', '{}'],
    ['{"action":43}', '$default'],
  ];
  for (const [body, expected] of cases) {
    assert.equal(await routeOf(ws, body), expected, `message ${body}`);
  }
});

test('numbers, booleans and null interpolate as text inside ${...}', async () => {
  const { ws } = await startRouting('${request.body.v}/${request.body.ok}/${request.body.n}', ['2/true/null']);
  assert.equal(await routeOf(ws, '{"v":2,"ok":true,"n":null}'), '2/true/null');
  assert.equal(await routeOf(ws, '{"v":2,"ok":true}'), '$default');
});

test('unicode and escaped route keys match exactly', async () => {
  const keys = ['café', '聊天', '🚀launch', 'say "hi"', 'back\\slash', 'tab\there'];
  const { ws } = await startRouting('$request.body.action', keys);
  const cases = [
    ['{"action":"café"}', 'café'],
    ['{"action":"caf\\u00e9"}', 'café'],
    ['{"action":"聊天"}', '聊天'],
    ['{"action":"\\u804a\\u5929"}', '聊天'],
    ['{"action":"🚀launch"}', '🚀launch'],
    ['{"action":"\\ud83d\\ude80launch"}', '🚀launch'],
    ['{"action":"say \\"hi\\""}', 'say "hi"'],
    ['{"action":"back\\\\slash"}', 'back\\slash'],
    ['{"action":"tab\\there"}', 'tab\there'],
    ['{"action":"cafe"}', '$default'],
    ['{"action":"café "}', '$default'],
  ];
  for (const [body, expected] of cases) {
    assert.equal(await routeOf(ws, body), expected, `message ${body}`);
  }
});

test('matching is exact: case, prefixes and suffixes go to $default', async () => {
  const { ws } = await startRouting('$request.body.action', ['join']);
  for (const action of ['Join', 'JOIN', 'joi', 'joinx', ' join', 'join ', '']) {
    assert.equal(await routeOf(ws, JSON.stringify({ action })), '$default', `action ${JSON.stringify(action)}`);
  }
  assert.equal(await routeOf(ws, '{"action":"join"}'), 'join');
});

test('non-JSON text, JSON without the key and binary frames go to $default', async () => {
  const { backend, ws, id } = await startRouting('$request.body.action', ['join']);
  const texts = ['join', 'hello world', 'action=join', "{'action':'join'}", '', '"join"', '[{"action":"join"}]', '42', 'null', '{"other":"join"}'];
  for (const body of texts) {
    assert.equal(await routeOf(ws, body), '$default', `message ${JSON.stringify(body)}`);
  }
  // A binary frame whose bytes are JSON selecting "join" still goes to $default.
  assert.equal(await routeOf(ws, Buffer.from('{"action":"join"}')), '$default');
  const bin = backend.eventsOf('MESSAGE', id).at(-1);
  assert.equal(bin.isBase64Encoded, true);
  assert.equal(Buffer.from(bin.body, 'base64').toString(), '{"action":"join"}');
  assert.equal(await routeOf(ws, '{"action":"join"}'), 'join');
});

test('the key is found at the end of a large message and at the start of one', async () => {
  const { ws } = await startRouting('$request.body.action', ['join', 'late']);
  const pad = 'x'.repeat(120 * 1024);
  assert.equal(await routeOf(ws, `{"pad":"${pad}","nested":{"a":[1,2,{"b":"c"}]},"action":"late"}`), 'late');
  assert.equal(await routeOf(ws, `{"action":"join","pad":"${pad}"}`), 'join');
  assert.equal(await routeOf(ws, `{"pad":"${pad}"}`), '$default');
});

test('each route calls its own integration', async () => {
  const a = await startBackend(routeEcho);
  const b = await startBackend((ev) => (ev.requestContext.eventType === 'MESSAGE'
    ? { statusCode: 200, body: `b:${ev.requestContext.routeKey}` } : { statusCode: 200 }));
  const api = makeApi(a.url, {
    routes: {
      $connect: { integration: 'backend' },
      $default: { integration: 'backend', routeResponse: true },
      join: { integration: 'other', routeResponse: true },
    },
  });
  api.integrations.other = { type: 'AWS_PROXY', uri: b.url, timeoutMs: 5000 };
  const gw = await startGateway({ routes: api });
  const { ws, id } = await connectWithId(gw, a);
  ws.send('{"action":"join"}');
  assert.equal((await nextMessage(ws)).data, 'b:join');
  ws.send('{"action":"leave"}');
  assert.equal((await nextMessage(ws)).data, 'route=$default');
  assert.equal(a.eventsOf('MESSAGE', id).length, 1);
  assert.equal(b.eventsOf('MESSAGE', id).length, 1);
  assert.equal(b.eventsOf('MESSAGE', id)[0].requestContext.routeKey, 'join');
});

const FORBIDDEN_RE = /^\{"message": "Forbidden", "connectionId":"([^"]+)", "requestId":"([^"]+)"\}$/;

test('no match and no $default: the exact Forbidden frame, and the connection stays open', async () => {
  const { backend, ws, id } = await startRouting('$request.body.action', ['join'], { noDefault: true });
  const requestIds = new Set();
  for (const body of ['{"action":"nope"}', 'not json', Buffer.from([0, 1, 2, 0xff])]) {
    ws.send(body, { binary: Buffer.isBuffer(body) });
    const m = await nextMessage(ws);
    assert.equal(m.isBinary, false, 'the Forbidden frame is a text frame');
    const match = FORBIDDEN_RE.exec(m.data);
    assert.ok(match, `exact Forbidden frame layout, got ${JSON.stringify(m.data)}`);
    assert.equal(match[1], id);
    assert.equal(m.data, `{"message": "Forbidden", "connectionId":"${id}", "requestId":"${match[2]}"}`);
    requestIds.add(match[2]);
    await pingPong(ws);
  }
  assert.equal(requestIds.size, 3, 'each Forbidden frame has its own requestId');
  // Still open and routed.
  ws.send('{"action":"join"}');
  assert.equal((await nextMessage(ws)).data, 'route=join');
  await sleep(100);
  assert.deepEqual(pendingMessages(ws), []);
  const evs = backend.eventsOf('MESSAGE', id);
  assert.equal(evs.length, 1, 'unmatched messages are not sent to any integration');
  assert.equal(evs[0].requestContext.routeKey, 'join');
});

// ---------------------------------------------------------------------------
// Config errors
// ---------------------------------------------------------------------------

async function checkExpr(expr) {
  const dir = writeRoutes({ 'chat.json': routingApi('http://127.0.0.1:9/events', expr, ['join']) });
  try {
    return await runGateway(['--check', '--routes', dir]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a bad expression is a config error pointing at the character', async () => {
  const res = await checkExpr('${request.body.action');
  assert.equal(res.code, 1, res.output);
  assert.ok(res.stderr.includes('chat.json'), res.stderr);
  assert.ok(res.stderr.includes("routeSelectionExpression: at character 22: expected '}'"), res.stderr);
});

// [expression, 1-based position of the offending character]
const BAD_EXPRESSIONS = [
  ['$request.body.', 15],
  ['$request.body.a[', 17],
  ['$request.body.a[x]', 17],
  ['${request.body.a', 17],
  ['$request.body.a[1', 18],
  ["$request.body['a", 15], // the unterminated quote
  ['$request.body..a', 15],
];

for (const [expr, pos] of BAD_EXPRESSIONS) {
  test(`bad expression ${JSON.stringify(expr)} is refused at character ${pos}`, async () => {
    const res = await checkExpr(expr);
    assert.equal(res.code, 1, res.output);
    assert.ok(res.stderr.includes('chat.json'), res.stderr);
    assert.match(res.stderr, new RegExp(`routeSelectionExpression: at character ${pos}: `), res.stderr);
  });
}

test('expressions that do not read the body are refused', async () => {
  for (const expr of ['$request.header.action', '${context.routeKey}']) {
    const res = await checkExpr(expr);
    assert.equal(res.code, 1, `${expr}: ${res.output}`);
    assert.match(res.stderr, /routeSelectionExpression: at character \d+: /, res.stderr);
  }
});

test('a bad expression stops the gateway from starting', async () => {
  const dir = writeRoutes({ 'chat.json': routingApi('http://127.0.0.1:9/events', '${request.body.action', ['join']) });
  const data = writeRoutes({});
  try {
    const res = await runGateway(['--routes', dir, '--listen', '127.0.0.1:0', '--mgmt-listen', '127.0.0.1:0', '--data', data]);
    assert.ok(!res.started, res.output);
    assert.notEqual(res.code, 0);
    assert.ok(res.stderr.includes("routeSelectionExpression: at character 22: expected '}'"), res.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(data, { recursive: true, force: true });
  }
});

test('every form of the grammar passes --check', async () => {
  for (const [expr] of SELECTION_TABLE) {
    const res = await checkExpr(expr);
    assert.equal(res.code, 0, `${expr}: ${res.output}`);
  }
});
