// What a new user following the README meets: defects found by walking it
// top to bottom (run.sh, the tour, channels, cluster, CLI, metrics, admin,
// reload, TLS, coming from AWS), each shown as the user would see it.

import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  test, assert, startPair, connectWithId, mgmtRequest, connect, waitUntil, withTimeout, WSGATE_BIN,
} from './helpers.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const RUNNER = path.join(ROOT, 'clients/lambda-runner/runner.mjs');

/** The value of one series line of the exposition, 0 when absent. */
function sample(text, line) {
  const m = text.split('\n').find((l) => l.startsWith(line + ' '));
  return m ? Number(m.slice(line.length + 1)) : 0;
}

test('metrics: a channel join (PUT) counts as op="other", not as a /metrics scrape', async () => {
  const { backend, gw } = await startPair();
  const { id } = await connectWithId(gw, backend);
  for (let i = 0; i < 3; i++) {
    const r = await mgmtRequest(gw, 'PUT', `/dev/@connections/${id}/channels/room-${i}`);
    assert.equal(r.status, 204, r.text);
  }
  const r = await mgmtRequest(gw, 'GET', '/metrics');
  assert.equal(r.status, 200);
  assert.equal(sample(r.text, 'wsgate_management_requests_total{op="metrics",status="204"}'), 0,
    'a PUT is not a scrape');
  assert.equal(sample(r.text, 'wsgate_management_requests_total{op="other",status="204"}'), 3);
});

// A template whose $disconnect handler writes down each connection it hears of.
const BYE_TEMPLATE = `
Transform: AWS::Serverless-2016-10-31
Resources:
  Api: {Type: AWS::ApiGatewayV2::Api, Properties: {Name: bye, ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}}
  HiInteg: {Type: AWS::ApiGatewayV2::Integration, Properties: {ApiId: !Ref Api, IntegrationType: AWS_PROXY, IntegrationUri: !GetAtt Hi.Arn}}
  HiRoute: {Type: AWS::ApiGatewayV2::Route, Properties: {ApiId: !Ref Api, RouteKey: $connect, Target: !Join [/, [integrations, !Ref HiInteg]]}}
  ByeInteg: {Type: AWS::ApiGatewayV2::Integration, Properties: {ApiId: !Ref Api, IntegrationType: AWS_PROXY, IntegrationUri: !GetAtt Bye.Arn}}
  ByeRoute: {Type: AWS::ApiGatewayV2::Route, Properties: {ApiId: !Ref Api, RouteKey: $disconnect, Target: !Join [/, [integrations, !Ref ByeInteg]]}}
  Hi: {Type: AWS::Serverless::Function, Properties: {CodeUri: fn/, Handler: index.hi}}
  Bye: {Type: AWS::Serverless::Function, Properties: {CodeUri: fn/, Handler: index.bye}}
`;

test('coming from AWS: stopping the runner with its gateway (SIGTERM, Ctrl-C) lets the $disconnect handlers of open connections run', { timeout: 40000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-bye-'));
  try {
    const seen = path.join(dir, 'seen.txt');
    writeFileSync(path.join(dir, 'template.yaml'), BYE_TEMPLATE);
    mkdirSync(path.join(dir, 'fn'));
    writeFileSync(path.join(dir, 'fn/index.mjs'), `
import { appendFileSync } from 'node:fs';
export const hi = async () => ({ statusCode: 200 });
export const bye = async (event) => {
  appendFileSync(${JSON.stringify(seen)}, event.requestContext.connectionId + '\\n');
  return { statusCode: 200 };
};
`);
    const proc = spawn(process.execPath, [RUNNER, '--wsgate', WSGATE_BIN, '--port', '0', '--start-gateway',
      path.join(dir, 'template.yaml'), '--', '--listen', '127.0.0.1:0', '--mgmt-listen', '127.0.0.1:0',
      '--data', path.join(dir, 'data')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (d) => { out += d; });
    proc.stderr.on('data', (d) => { out += d; });
    const exited = new Promise((r) => proc.on('close', (code) => r(code)));
    try {
      await waitUntil(() => /listening on [^\s]+:\d+ \(gateway\)/.test(out) || proc.exitCode !== null, 15000,
        `the runner and its gateway to start\n${out}`);
      const port = Number(/listening on [^\s]+:(\d+) \(gateway\)/.exec(out)[1]);
      const ws = await connect(`ws://127.0.0.1:${port}/`);
      await waitUntil(() => /connection \S+ open/.test(out), 5000, `the connection to open\n${out}`);
      const id = /connection (\S+) open/.exec(out)[1];
      proc.kill('SIGTERM');
      assert.equal(await withTimeout(exited, 15000, 'the runner to exit'), 0, out);
      ws.terminate();
      assert.ok(existsSync(seen) && readFileSync(seen, 'utf8').includes(id),
        `the $disconnect handler ran for ${id}\n${out}`);
    } finally {
      if (proc.exitCode === null) proc.kill('SIGKILL');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
