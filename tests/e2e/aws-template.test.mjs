// Issue 15: an AWS WebSocket app run from its SAM template. The template
// is imported by the gateway (--routes template.yaml), its Node handlers
// are served by clients/lambda-runner, and the sample's send handler
// reaches wsgate through the AWS SDK with its endpoint built from the
// event's domainName and stage, as AWS's sample builds it.
import {
  test, assert, startGateway, connect, connectRefused, send, nextMessage, waitUntil, withTimeout, unusedUrl,
  WSGATE_BIN,
} from './helpers.mjs';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { derivedApiId } from './aws-ids.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const RUNNER = path.join(ROOT, 'clients/lambda-runner/runner.mjs');
const SAMPLE = path.join(ROOT, 'clients/examples/aws-sample/template.yaml');
const AUTHZ_CHAT = path.join(ROOT, 'clients/examples/aws-authorizer-chat/template.yaml');
// The sample keeps its connections in DynamoDB: the runner serves its
// table from dynalite (devDependencies; scripts/install-deps.sh installs them).
const require = createRequire(import.meta.url);
const HAVE_DYNAMO = ['dynalite', '@aws-sdk/client-dynamodb', '@aws-sdk/lib-dynamodb'].every((m) => {
  try { require.resolve(m); return true; } catch { return false; }
});
const NEEDS_DYNAMO = HAVE_DYNAMO ? {} : { skip: 'dynalite / @aws-sdk/client-dynamodb not installed: run npm ci' };

// Connection IDs in the runner's local table.
async function tableIds(runner) {
  const endpoint = /DynamoDB \(dynalite, in memory\) on (\S+):/.exec(runner.output())[1];
  const { DynamoDBClient, ScanCommand } = await import('@aws-sdk/client-dynamodb');
  const c = new DynamoDBClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'l', secretAccessKey: 'l' } });
  try {
    const { Items } = await c.send(new ScanCommand({ TableName: 'simplechat_connections' }));
    return Items.map((i) => i.connectionId.S).sort();
  } finally {
    c.destroy();
  }
}

async function tablePut(runner, connectionId) {
  const endpoint = /DynamoDB \(dynalite, in memory\) on (\S+):/.exec(runner.output())[1];
  const { DynamoDBClient, PutItemCommand } = await import('@aws-sdk/client-dynamodb');
  const c = new DynamoDBClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId: 'l', secretAccessKey: 'l' } });
  try {
    await c.send(new PutItemCommand({ TableName: 'simplechat_connections', Item: { connectionId: { S: connectionId } } }));
  } finally {
    c.destroy();
  }
}

const SANITIZER = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:/;

const temps = [];
function tempDir(prefix) {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  temps.push(d);
  return d;
}
process.on('exit', () => { for (const d of temps) rmSync(d, { recursive: true, force: true }); });

// Starts the runner; resolves once it listens. stop() ends it (and the
// gateway it started) and resolves with its exit code.
async function startRunner(args, { waitFor = /lambda-runner: listening on http:\/\/[^:]+:(\d+)/ } = {}) {
  const proc = spawn(process.execPath, [RUNNER, '--wsgate', WSGATE_BIN, ...args], {
    env: { ...process.env, ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? 'detect_leaks=1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((r) => proc.on('close', (code, signal) => r({ code, signal })));
  const runner = {
    proc,
    output: () => out,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const r = await withTimeout(exited, 10000, 'the runner to exit').catch((e) => { proc.kill('SIGKILL'); throw e; });
      assert.ok(!SANITIZER.test(out), `sanitizer report:\n${out}`);
      return r;
    },
  };
  try {
    await waitUntil(() => waitFor.test(out) || proc.exitCode !== null, 15000, `the runner to start\n${out}`);
  } catch (e) {
    proc.kill('SIGKILL');
    throw e;
  }
  assert.equal(proc.exitCode, null, `the runner exited:\n${out}`);
  runner.port = Number(/lambda-runner: listening on http:\/\/[^:]+:(\d+)/.exec(out)[1]);
  return runner;
}

// sam local's --env-vars format: {"Parameters": {...}, "FunctionId": {...}}.
function envVars(values) {
  const file = path.join(tempDir('wsgate-env-'), 'env.json');
  writeFileSync(file, JSON.stringify(values));
  return file;
}

async function chat(url) {
  const alice = await connect(url);
  const bob = await connect(url);
  send(alice, JSON.stringify({ action: 'sendmessage', data: 'hello from alice' }));
  const [a, b] = await Promise.all([nextMessage(alice, 10000), nextMessage(bob, 10000)]);
  assert.equal(b.data, 'hello from alice');
  assert.equal(a.data, 'hello from alice');
  return { alice, bob };
}

test('issue 15: the chat sample, imported from its SAM template, chats through wsgate (gateway and runner, two commands; its table in dynalite)', { timeout: 40000, ...NEEDS_DYNAMO }, async () => {
  const port = Number(new URL(await unusedUrl()).port);
  const gw = await startGateway({
    routes: { 'template.yaml': readFileSync(SAMPLE, 'utf8') },
    routesFile: true,
    args: ['--runner-url', `http://127.0.0.1:${port}/functions/`],
  });
  // Everything the template holds that is not served is said, not dropped.
  assert.match(gw.output(), /ConnectionsTable \(AWS::DynamoDB::Table\): not served by the gateway/);
  assert.match(gw.output(), /OnConnectPermission \(AWS::Lambda::Permission\): not mapped/);
  const runner = await startRunner(['--port', String(port), '--mgmt-url', gw.mgmtUrl, SAMPLE]);
  try {
    assert.match(runner.output(), /property Policies is not supported/);
    const { alice, bob } = await chat(gw.url);
    const both = await tableIds(runner);
    assert.equal(both.length, 2, 'onconnect stored both connections');
    // ondisconnect forgets a connection.
    bob.close();
    await waitUntil(async () => (await tableIds(runner)).length === 1, 8000, 'the $disconnect handler to run');
    // A stale ID left in the table (bob's, put back): the SDK's
    // PostToConnection gets 410 (GoneException) and sendmessage removes it.
    const left = await tableIds(runner);
    const bobId = both.find((i) => !left.includes(i));
    await tablePut(runner, bobId);
    send(alice, JSON.stringify({ action: 'sendmessage', data: 'anyone?' }));
    assert.equal((await nextMessage(alice, 10000)).data, 'anyone?');
    await waitUntil(async () => !(await tableIds(runner)).includes(bobId), 8000, 'the stale connection to be removed');
  } catch (e) {
    e.message += `\n--- runner output ---\n${runner.output().slice(-6000)}`;
    throw e;
  } finally {
    await runner.stop();
  }
});

test('issue 15: one command: the runner starts the gateway on the template (--start-gateway)', { timeout: 40000, ...NEEDS_DYNAMO }, async () => {
  const data = tempDir('wsgate-data-');
  const runner = await startRunner(['--port', '0', '--start-gateway', SAMPLE, '--', '--listen', '127.0.0.1:0', '--mgmt-listen', '127.0.0.1:0', '--data', data],
  { waitFor: /listening on 127\.0\.0\.1:\d+ \(management\)/ });
  const gwPort = /listening on 127\.0\.0\.1:(\d+) \(gateway\)/.exec(runner.output())[1];
  const { alice, bob } = await chat(`ws://127.0.0.1:${gwPort}`);
  alice.close();
  bob.close();
  const { code } = await runner.stop();
  assert.equal(code, 0, runner.output());
  assert.match(runner.output(), /wsgate: /);
});

test('issue 15: wsgate run TEMPLATE starts the gateway and the runner together', { timeout: 40000, ...NEEDS_DYNAMO }, async () => {
  const data = tempDir('wsgate-data-');
  const port = Number(new URL(await unusedUrl()).port);
  // wsgate run takes the runner's defaults (port 9000): given here as
  // the runner's own option would clash with other tests.
  const proc = spawn(WSGATE_BIN, ['run', SAMPLE, '--listen', '127.0.0.1:0', '--mgmt-listen', '127.0.0.1:0', '--data', data],
    { env: { ...process.env, WSGATE_RUNNER_PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stderr.on('data', (d) => { out += d; });
  proc.stdout.on('data', (d) => { out += d; });
  const exited = new Promise((r) => proc.on('close', (code) => r(code)));
  try {
    await waitUntil(() => /\(management\)/.test(out) || proc.exitCode !== null, 15000, `wsgate run to start\n${out}`);
    const gwPort = /listening on 127\.0\.0\.1:(\d+) \(gateway\)/.exec(out)?.[1];
    assert.ok(gwPort, out);
    const { alice, bob } = await chat(`ws://127.0.0.1:${gwPort}`);
    alice.close();
    bob.close();
  } finally {
    proc.kill('SIGTERM');
  }
  assert.equal(await withTimeout(exited, 10000, 'wsgate run to exit'), 0, out);
  assert.ok(!SANITIZER.test(out), out);
});

const HANDLERS_TEMPLATE = `
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: nodejs20.x
    Timeout: 2
    Environment: {Variables: {GREETING: !Sub 'hi from \${AWS::Region}'}}
Resources:
  Api: {Type: AWS::ApiGatewayV2::Api, Properties: {Name: handlers, ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}}
  CtxInteg: {Type: AWS::ApiGatewayV2::Integration, Properties: {ApiId: !Ref Api, IntegrationType: AWS_PROXY, IntegrationUri: !Sub 'arn:aws:apigateway:\${AWS::Region}:lambda:path/2015-03-31/functions/\${Ctx.Arn}/invocations'}}
  CtxRoute: {Type: AWS::ApiGatewayV2::Route, Properties: {ApiId: !Ref Api, RouteKey: ctx, Target: !Sub 'integrations/\${CtxInteg}'}}
  CtxResponse: {Type: AWS::ApiGatewayV2::RouteResponse, Properties: {ApiId: !Ref Api, RouteId: !Ref CtxRoute, RouteResponseKey: $default}}
  BoomInteg: {Type: AWS::ApiGatewayV2::Integration, Properties: {ApiId: !Ref Api, IntegrationType: AWS_PROXY, IntegrationUri: !GetAtt Boom.Arn}}
  BoomRoute: {Type: AWS::ApiGatewayV2::Route, Properties: {ApiId: !Ref Api, RouteKey: boom, Target: !Join [/, [integrations, !Ref BoomInteg]]}}
  BoomResponse: {Type: AWS::ApiGatewayV2::RouteResponse, Properties: {ApiId: !Ref Api, RouteId: !Ref BoomRoute, RouteResponseKey: $default}}
  SlowInteg: {Type: AWS::ApiGatewayV2::Integration, Properties: {ApiId: !Ref Api, IntegrationType: AWS_PROXY, IntegrationUri: !GetAtt Slow.Arn}}
  SlowRoute: {Type: AWS::ApiGatewayV2::Route, Properties: {ApiId: !Ref Api, RouteKey: slow, Target: !Join [/, [integrations, !Ref SlowInteg]]}}
  EchoInteg: {Type: AWS::ApiGatewayV2::Integration, Properties: {ApiId: !Ref Api, IntegrationType: AWS_PROXY, IntegrationUri: !GetAtt Echo.Arn}}
  EchoRoute: {Type: AWS::ApiGatewayV2::Route, Properties: {ApiId: !Ref Api, RouteKey: echo, Target: !Join [/, [integrations, !Ref EchoInteg]]}}
  Echo: {Type: AWS::Serverless::Function, Properties: {CodeUri: ctx/, Handler: echo.handler}}
  Ctx: {Type: AWS::Serverless::Function, Properties: {CodeUri: ctx/, Handler: index.handler, MemorySize: 512, Environment: {Variables: {OWN: mine}}}}
  Boom: {Type: AWS::Serverless::Function, Properties: {CodeUri: boom/, Handler: lib/main.run}}
  Slow: {Type: AWS::Serverless::Function, Properties: {CodeUri: ctx/, Handler: index.slow, Timeout: 1}}
`;

test('issue 15: the runner gives handlers Lambda\'s context and environment; a throw or a timeout is the client\'s "Internal server error"', { timeout: 40000 }, async () => {
  const dir = tempDir('wsgate-handlers-');
  writeFileSync(path.join(dir, 'template.yaml'), HANDLERS_TEMPLATE);
  mkdirSync(path.join(dir, 'ctx'));
  writeFileSync(path.join(dir, 'ctx/index.mjs'), `
export const handler = async (event, context) => ({ statusCode: 200, body: JSON.stringify({
  fn: context.functionName, id: context.awsRequestId, left: context.getRemainingTimeInMillis(),
  arn: context.invokedFunctionArn, mem: context.memoryLimitInMB, greeting: process.env.GREETING,
  own: process.env.OWN, extra: process.env.EXTRA, route: event.requestContext.routeKey, region: process.env.AWS_REGION }) });
export const slow = () => new Promise(() => {});
`);
  // As AWS's sample does: the endpoint built from the event.
  writeFileSync(path.join(dir, 'ctx/echo.mjs'), `
import { ApiGatewayManagementApiClient, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
export const handler = async (event) => {
  const { domainName, stage, connectionId } = event.requestContext;
  const api = new ApiGatewayManagementApiClient({ endpoint: 'https://' + domainName + '/' + stage });
  await api.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: 'echo ' + event.body }));
  return { statusCode: 200 };
};
`);
  mkdirSync(path.join(dir, 'boom/lib'), { recursive: true });
  writeFileSync(path.join(dir, 'boom/package.json'), '{"type": "commonjs"}');
  writeFileSync(path.join(dir, 'boom/lib/main.js'), `
exports.run = function (event, context, callback) { callback(new TypeError('no such room')); };
`);
  const port = Number(new URL(await unusedUrl()).port);
  const gw = await startGateway({
    routes: { 'template.yaml': HANDLERS_TEMPLATE }, routesFile: true,
    args: ['--runner-url', `http://127.0.0.1:${port}/functions/`],
  });
  const runner = await startRunner(['--port', String(port), '--mgmt-url', gw.mgmtUrl,
    '--env-vars', envVars({ Parameters: { EXTRA: 'all' }, Ctx: { EXTRA: 'ctx only' } }), path.join(dir, 'template.yaml')]);
  try {
    const ws = await connect(gw.url);
    send(ws, JSON.stringify({ action: 'ctx' }));
    const ctx = JSON.parse((await nextMessage(ws, 10000)).data);
    assert.equal(ctx.fn, 'Ctx');
    assert.match(ctx.id, /^[0-9a-f-]{36}$/);
    assert.ok(ctx.left > 0 && ctx.left <= 2000, `getRemainingTimeInMillis ${ctx.left}`);
    assert.equal(ctx.arn, 'arn:aws:lambda:us-east-1:123456789012:function:Ctx');
    assert.equal(ctx.mem, '512');
    assert.equal(ctx.greeting, 'hi from us-east-1');
    assert.equal(ctx.own, 'mine');
    assert.equal(ctx.extra, 'ctx only');
    assert.equal(ctx.route, 'ctx');

    send(ws, JSON.stringify({ action: 'echo' }));
    assert.equal((await nextMessage(ws, 10000)).data, 'echo {"action":"echo"}');

    send(ws, JSON.stringify({ action: 'boom' }));
    const boom = JSON.parse((await nextMessage(ws, 10000)).data);
    assert.equal(boom.message, 'Internal server error');
    assert.match(runner.output(), /ERROR\tInvoke Error \t\{"errorType":"TypeError","errorMessage":"no such room"/);

    send(ws, JSON.stringify({ action: 'slow' }));
    const slow = JSON.parse((await nextMessage(ws, 10000)).data);
    assert.equal(slow.message, 'Internal server error');

    // The runner answers as Lambda's invoke does: 502, the error object.
    const res = await fetch(`http://127.0.0.1:${port}/functions/Boom`, { method: 'POST', body: '{}' });
    assert.equal(res.status, 502);
    assert.equal(res.headers.get('x-amz-function-error'), 'Unhandled');
    assert.deepEqual(Object.keys(await res.json()), ['errorType', 'errorMessage', 'trace']);
    // ...and a fresh environment serves after a timeout.
    send(ws, JSON.stringify({ action: 'ctx' }));
    assert.equal(JSON.parse((await nextMessage(ws, 10000)).data).fn, 'Ctx');
  } catch (e) {
    e.message += `\n--- runner output ---\n${runner.output().slice(-6000)}`;
    throw e;
  } finally {
    await runner.stop();
  }
});

test('issue 15: wsgate import prints the API file and the warnings; --functions the runner\'s list', async () => {
  const run = (args) => new Promise((resolve) => {
    const p = spawn(WSGATE_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  const api = await run(['import', '--runner-url', 'http://127.0.0.1:7777/functions/', SAMPLE]);
  assert.equal(api.code, 0, api.stderr);
  const j = JSON.parse(api.stdout);
  assert.equal(j.stage, 'Prod');
  assert.equal(j.integrations.SendInteg.uri, 'http://127.0.0.1:7777/functions/SendMessageFunction');
  assert.match(api.stderr, /OnConnectPermission \(AWS::Lambda::Permission\): not mapped/);
  const fns = await run(['import', '--functions', SAMPLE]);
  assert.equal(fns.code, 0, fns.stderr);
  assert.equal(JSON.parse(fns.stdout).functions.SendMessageFunction.environment.TABLE_NAME, 'simplechat_connections');
  const bad = await run(['import', path.join(ROOT, 'package.json')]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /no AWS::ApiGatewayV2::Api resource|Resources: expected/);
});

// What serverless-patterns' apigw-websocket-mapping-template-authorizer
// template holds, in constructs: long-form Ref, an ApiId written
// "Ref! WebsocketApi" (plain text), an API's Ref in a function's
// environment, SimpleTable, a non-proxy integration with RequestTemplates.
const PATTERNS_TEMPLATE = `
Globals: {Function: {CodeUri: ./src, Runtime: nodejs22.x}}
Resources:
  WebsocketApi: {Type: AWS::ApiGatewayV2::Api, Properties: {Name: ws-patterns, ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}}
  LambdaAuthorizer: {Type: AWS::ApiGatewayV2::Authorizer, Properties: {ApiId: !Ref WebsocketApi, AuthorizerType: REQUEST, Name: auth, IdentitySource: [route.request.header.token],
    AuthorizerUri: {'Fn::Sub': 'arn:aws:apigateway:\${AWS::Region}:lambda:path/2015-03-31/functions/\${AuthFunction.Arn}/invocations'}}}
  ConnectRoute: {Type: AWS::ApiGatewayV2::Route, Properties: {ApiId: {Ref: WebsocketApi}, RouteKey: $connect, AuthorizationType: CUSTOM, AuthorizerId: !Ref LambdaAuthorizer,
    Target: {'Fn::Join': [/, [integrations, {Ref: ConnectInteg}]]}}}
  ConnectInteg: {Type: AWS::ApiGatewayV2::Integration, Properties: {ApiId: Ref! WebsocketApi, IntegrationType: AWS_PROXY, IntegrationUri: !GetAtt OnConnectFunction.Arn}}
  SendRoute: {Type: AWS::ApiGatewayV2::Route, Properties: {ApiId: {Ref: WebsocketApi}, RouteKey: sendmessage, Target: {'Fn::Join': [/, [integrations, {Ref: SendInteg}]]}}}
  SendInteg: {Type: AWS::ApiGatewayV2::Integration, Properties: {ApiId: {Ref: WebsocketApi}, IntegrationType: AWS, IntegrationUri: !GetAtt SendFunction.Arn,
    RequestTemplates: {application/json: '{"body": "$util.escapeJavaScript($input.body)"}'}}}
  Table: {Type: AWS::Serverless::SimpleTable, Properties: {PrimaryKey: {Name: connectionId, Type: String}, TableName: connection_table}}
  AuthFunction: {Type: AWS::Serverless::Function, Properties: {Handler: authorizer.handler}}
  OnConnectFunction: {Type: AWS::Serverless::Function, Properties: {Handler: onconnect.handler, Environment: {Variables: {TABLE_NAME: !Ref Table}}}}
  SendFunction: {Type: AWS::Serverless::Function, Properties: {Handler: send.handler, Environment: {Variables: {API_ID: !Ref WebsocketApi, URL: !GetAtt WebsocketApi.ApiEndpoint, ID2: !GetAtt WebsocketApi.ApiId}}}}
`;

test('issue 15: wsgate import reads what published templates hold: an API\'s Ref is its apiId, "Ref! Api" as ApiId is the Ref it meant (warned), a lost authorized $connect is said', async () => {
  const dir = tempDir('wsgate-import-');
  const file = path.join(dir, 'template.yaml');
  writeFileSync(file, PATTERNS_TEMPLATE);
  const run = (args) => new Promise((resolve) => {
    const p = spawn(WSGATE_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  const api = await run(['import', file]);
  assert.equal(api.code, 0, api.stderr);
  const j = JSON.parse(api.stdout);
  // The $connect route and its authorizer are there: the API is not left open.
  assert.deepEqual(j.routes.$connect, { integration: 'ConnectInteg', authorizer: 'LambdaAuthorizer' });
  assert.equal(j.integrations.SendInteg.type, 'AWS_PROXY');
  assert.match(api.stderr, /ConnectInteg: ApiId "Ref! WebsocketApi" is text, not a Ref: read as !Ref WebsocketApi/);
  assert.match(api.stderr, /SendInteg: IntegrationType AWS: request and response templates are not applied/);
  const fns = JSON.parse((await run(['import', '--functions', file])).stdout);
  const id = derivedApiId('ws-patterns');
  assert.equal(fns.functions.SendFunction.environment.API_ID, id, 'Ref to the API: the apiId events carry');
  assert.equal(fns.functions.SendFunction.environment.ID2, id);
  assert.equal(fns.functions.SendFunction.environment.URL, `wss://${id}.execute-api.us-east-1.amazonaws.com`);
  assert.equal(fns.tables.Table.TableName, 'connection_table');
  // An authorized $connect that cannot be imported says what is lost.
  writeFileSync(file, PATTERNS_TEMPLATE.replace('ApiId: Ref! WebsocketApi', 'ApiId: other-api'));
  const lost = await run(['import', file]);
  assert.match(lost.stderr, /ConnectRoute \(\$connect\): Target integrations\/ConnectInteg is not an imported integration: route not imported, and with it its authorizer: connections are not authorized/);
});

test('issue 15: a second app, the chat behind a $connect authorizer (serverless-patterns\' apigw-websocket-mapping-template-authorizer shape), runs from its template with two clients', { timeout: 40000, ...NEEDS_DYNAMO }, async () => {
  const data = tempDir('wsgate-data-');
  const runner = await startRunner(['--port', '0', '--start-gateway', AUTHZ_CHAT, '--', '--listen', '127.0.0.1:0', '--mgmt-listen', '127.0.0.1:0', '--data', data],
    { waitFor: /listening on 127\.0\.0\.1:\d+ \(management\)/ });
  try {
    const url = `ws://127.0.0.1:${/listening on 127\.0\.0\.1:(\d+) \(gateway\)/.exec(runner.output())[1]}`;
    assert.match(runner.output(), /SendInteg: IntegrationType AWS: request and response templates are not applied/);
    // No token: 401 before the authorizer; a wrong one: the authorizer's
    // callback('Unauthorized'), 401 as on AWS.
    assert.equal(await connectRefused(url), 401);
    assert.equal(await connectRefused(url, { headers: { token: 'guess' } }), 401);
    const alice = await connect(url, { headers: { token: 'hello' } });
    const bob = await connect(url, { headers: { token: 'hello' } });
    send(alice, JSON.stringify({ action: 'sendmessage', data: 'hi from alice' }));
    const [a, b] = await Promise.all([nextMessage(alice, 10000), nextMessage(bob, 10000)]);
    assert.equal(a.data, 'hi from alice');
    assert.equal(b.data, 'hi from alice');
    send(bob, JSON.stringify({ action: 'sendmessage', data: 'and bob' }));
    const [a2, b2] = await Promise.all([nextMessage(alice, 10000), nextMessage(bob, 10000)]);
    assert.equal(a2.data, 'and bob');
    assert.equal(b2.data, 'and bob');
    alice.close();
    bob.close();
  } catch (e) {
    e.message += `\n--- runner output ---\n${runner.output().slice(-6000)}`;
    throw e;
  } finally {
    const { code } = await runner.stop();
    assert.equal(code, 0, runner.output());
  }
});
