// Command line and API files: --help, --version, --check, and config errors
// that name the file, the key path and what was expected.
import {
  test, assert, startBackend, startGateway, makeApi, runGateway, writeRoutes, connect,
  connectRefused, connectWithId, nextMessage, HANG,
} from './helpers.mjs';
import { rmSync } from 'node:fs';
import path from 'node:path';

const URI = 'http://127.0.0.1:9/events';

/** Runs --check on the given files; resolves the runGateway result. */
async function check(files) {
  const dir = writeRoutes(files);
  try {
    return { ...(await runGateway(['--check', '--routes', dir])), dir };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Starting with bad files must fail with a message naming file, key path and expectation. */
async function expectStartFailure(files, mustContain) {
  const dir = writeRoutes(files);
  const data = writeRoutes({});
  try {
    const res = await runGateway(['--routes', dir, '--listen', '127.0.0.1:0', '--mgmt-listen', '127.0.0.1:0', '--data', data]);
    assert.ok(!res.started, `wsgate started with a bad config:\n${res.output}`);
    assert.notEqual(res.code, 0, `wsgate exited 0 with a bad config:\n${res.output}`);
    for (const s of mustContain) {
      assert.ok(res.stderr.includes(s), `stderr should mention ${JSON.stringify(s)}:\n${res.stderr}`);
    }
    return res;
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(data, { recursive: true, force: true });
  }
}

test('--version prints "wsgate X.Y.Z" and exits 0', async () => {
  const res = await runGateway(['--version']);
  assert.equal(res.code, 0);
  assert.match(res.stdout.trim(), /^wsgate \d+\.\d+\.\d+\S*$/);
});

test('--help prints usage with every option and exits 0', async () => {
  const res = await runGateway(['--help']);
  assert.equal(res.code, 0);
  for (const opt of ['--routes', '--listen', '--mgmt-listen', '--data', '--check', '--version']) {
    assert.ok(res.output.includes(opt), `--help mentions ${opt}:\n${res.output}`);
  }
});

test('an unknown option is refused with a non-zero exit', async () => {
  const res = await runGateway(['--no-such-option']);
  assert.notEqual(res.code, 0);
  assert.ok(res.stderr.includes('--no-such-option'), res.stderr);
});

test('--check accepts a valid folder and exits 0', async () => {
  const res = await check({
    'chat.json': makeApi(URI),
    'admin.json': makeApi(URI, { name: 'admin', basePath: '/admin' }),
  });
  assert.equal(res.code, 0, res.output);
});

test('--check accepts a minimal API file (defaults for limits)', async () => {
  const api = makeApi(URI);
  delete api.limits;
  delete api.integrations.backend.timeoutMs;
  const res = await check({ 'min.json': api });
  assert.equal(res.code, 0, res.output);
});

test('--check on a single file', async () => {
  const dir = writeRoutes({ 'one.json': makeApi(URI) });
  try {
    const res = await runGateway(['--check', '--routes', path.join(dir, 'one.json')]);
    assert.equal(res.code, 0, res.output);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--check reports an unknown integration with file, key path and value, exit 1', async () => {
  const api = makeApi(URI);
  api.routes.$connect.integration = 'bakend';
  const res = await check({ 'chat.json': api });
  assert.equal(res.code, 1);
  assert.match(res.stderr, /chat\.json/);
  assert.ok(res.stderr.includes('routes.$connect.integration'), res.stderr);
  assert.ok(res.stderr.includes('bakend'), res.stderr);
});

test('--check reports every problem, not only the first', async () => {
  const api = makeApi(URI);
  api.routes.$connect.integration = 'nope1';
  api.limits.maxMessageBytes = 'big';
  const res = await check({ 'multi.json': api });
  assert.equal(res.code, 1);
  assert.ok(res.stderr.includes('routes.$connect.integration'), res.stderr);
  assert.ok(res.stderr.includes('limits.maxMessageBytes'), res.stderr);
});

test('bad JSON is refused, naming the file', async () => {
  const res = await expectStartFailure({ 'broken.json': '{"name": "chat", "stage": ' }, ['broken.json']);
  assert.ok(res.stderr.length > 'broken.json'.length);
});

test('an unknown top-level key is refused', async () => {
  const api = { ...makeApi(URI), nmae: 'typo' };
  await expectStartFailure({ 'chat.json': api }, ['chat.json', 'nmae']);
});

test('an unknown key inside limits is refused with its path', async () => {
  const api = makeApi(URI);
  api.limits.maxMesageBytes = 10;
  await expectStartFailure({ 'chat.json': api }, ['chat.json', 'limits.maxMesageBytes']);
});

test('a wrong type is refused with the key path and the expectation', async () => {
  const api = makeApi(URI);
  api.limits.idleTimeoutSeconds = 'ten';
  const res = await expectStartFailure({ 'chat.json': api }, ['chat.json', 'limits.idleTimeoutSeconds']);
  assert.match(res.stderr, /expect|integer|number/i);
});

test('a wrong type for routeResponse is refused', async () => {
  const api = makeApi(URI);
  api.routes.$default.routeResponse = 'yes';
  await expectStartFailure({ 'chat.json': api }, ['chat.json', 'routes.$default.routeResponse']);
});

test('a route pointing at an unknown integration is refused', async () => {
  const api = makeApi(URI);
  api.routes.$connect.integration = 'bakend';
  await expectStartFailure({ 'chat.json': api }, ['chat.json', 'routes.$connect.integration', '"bakend"']);
});

test('an integration type other than AWS_PROXY is refused', async () => {
  const api = makeApi(URI);
  api.integrations.backend.type = 'HTTP_PROXY_MAYBE';
  await expectStartFailure({ 'chat.json': api }, ['chat.json', 'integrations.backend.type']);
});

test('an integration uri that is not a URL is refused', async () => {
  const api = makeApi(URI);
  api.integrations.backend.uri = 'not a url';
  await expectStartFailure({ 'chat.json': api }, ['chat.json', 'integrations.backend.uri']);
});

test('a missing required key is refused', async () => {
  const api = makeApi(URI);
  delete api.routes;
  await expectStartFailure({ 'chat.json': api }, ['chat.json', 'routes']);
});

test('two APIs on the same basePath are refused', async () => {
  await expectStartFailure({
    'one.json': makeApi(URI, { name: 'one', basePath: '/same' }),
    'two.json': makeApi(URI, { name: 'two', basePath: '/same' }),
  }, ['basePath', '/same']);
});

test('a routes path that does not exist is refused', async () => {
  const res = await runGateway(['--routes', '/nonexistent/wsgate/routes', '--listen', '127.0.0.1:0',
    '--mgmt-listen', '127.0.0.1:0', '--data', '/tmp']);
  assert.notEqual(res.code, 0);
  assert.ok(res.stderr.includes('/nonexistent/wsgate/routes'), res.stderr);
});

test('the gateway starts from a single API file', async () => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: makeApi(backend.url), routesFile: true });
  const { ws } = await connectWithId(gw, backend);
  ws.send('single file');
  assert.equal((await nextMessage(ws)).data, 'single file');
});

test('a folder of APIs serves each on its basePath with its own stage and backend', async () => {
  const b1 = await startBackend((ev) => ({ statusCode: 200, body: `one:${ev.body}` }));
  const b2 = await startBackend((ev) => ({ statusCode: 200, body: `two:${ev.body}` }));
  const gw = await startGateway({
    routes: [
      makeApi(b1.url, { name: 'one', stage: 'dev', basePath: '/one' }),
      makeApi(b2.url, { name: 'two', stage: 'prod', basePath: '/two' }),
    ],
  });
  const c1 = await connectWithId(gw, b1, {}, '/one');
  const c2 = await connectWithId(gw, b2, {}, '/two?x=1');
  assert.equal(c1.connectEvent.requestContext.stage, 'dev');
  assert.equal(c2.connectEvent.requestContext.stage, 'prod');
  assert.notEqual(c1.connectEvent.requestContext.apiId, c2.connectEvent.requestContext.apiId, 'each API has its own apiId');
  c1.ws.send('a');
  c2.ws.send('b');
  assert.equal((await nextMessage(c1.ws)).data, 'one:a');
  assert.equal((await nextMessage(c2.ws)).data, 'two:b');
  assert.equal(b1.eventsOf('CONNECT').length, 1);
  assert.equal(b2.eventsOf('CONNECT').length, 1);
});

test('a path that matches no basePath is refused', async () => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: makeApi(backend.url, { basePath: '/chat' }) });
  const status = await connectRefused(`${gw.url}/other`);
  assert.ok(status >= 400 && status < 500, `got ${status}`);
  assert.equal(backend.events.length, 0, 'the backend is not called');
  const ws = await connect(`${gw.url}/chat?room=1`);
  assert.equal(ws.readyState, ws.OPEN);
});

test('per-integration timeoutMs is honoured', async () => {
  const backend = await startBackend((ev) => (ev.requestContext.eventType === 'CONNECT' ? HANG : { statusCode: 200 }));
  const gw = await startGateway({ routes: makeApi(backend.url, { integration: { timeoutMs: 1000 } }) });
  const t0 = Date.now();
  assert.equal(await connectRefused(gw.url, { timeoutMs: 6000 }), 500);
  const took = Date.now() - t0;
  assert.ok(took >= 900 && took < 4000, `gave up after ${took} ms with timeoutMs 1000`);
});
