#!/usr/bin/env node
// lambda-runner: serves the Node.js Lambda functions of a SAM or
// CloudFormation template as the AWS_PROXY backends of wsgate.
//
//   node clients/lambda-runner/runner.mjs [options] TEMPLATE [-- WSGATE_ARGS...]
//
//   --port N           listen on N (default: WSGATE_RUNNER_PORT, else 9000;
//                      0: any free port)
//   --host H           listen on H (default 127.0.0.1)
//   --wsgate BIN       the wsgate binary that reads the template
//                      (default: build/wsgate of this checkout, else wsgate)
//   --functions FILE   the output of `wsgate import --functions` instead
//   --mgmt-url URL     the gateway's management API, where the handlers'
//                      ApiGatewayManagementApiClient calls go
//                      (default http://127.0.0.1:8081)
//   --env-vars FILE    environment overrides in SAM's format:
//                      {"Parameters": {VAR: value}, "FunctionId": {VAR: value}}
//   --region R         AWS_REGION of the functions (default us-east-1)
//   --no-dynamodb      do not start a local DynamoDB for the template's tables
//                      (started when the template defines tables, dynalite is
//                      installed and AWS_ENDPOINT_URL_DYNAMODB is not set)
//   --start-gateway    also start `wsgate --routes TEMPLATE` pointed at this
//                      runner, with WSGATE_ARGS; the management URL is the
//                      one it announces. Ends when the gateway ends.
//
// POST /functions/NAME (and Lambda's /2015-03-31/functions/NAME/invocations)
// invokes function NAME with the body as its event. Each function runs in
// its own process (worker.mjs), started on its first call and kept, with
// the template's environment variables; a thrown error, a rejected promise
// or a timeout answers 502 with Lambda's error object, which the gateway
// treats as the failed integration AWS reports to the client. The
// template's DynamoDB tables are created in an in-memory dynalite whose
// address the functions get as AWS_ENDPOINT_URL_DYNAMODB (the SDK's own
// setting), so handlers using the AWS SDK for DynamoDB run unchanged.
import { fork, spawn, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

function usage(msg) {
  if (msg) console.error(`lambda-runner: ${msg}`);
  console.error(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(2, 29)
    .map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
  process.exit(2);
}

function parseArgs(argv) {
  const o = { port: Number(process.env.WSGATE_RUNNER_PORT || 9000), host: '127.0.0.1', region: 'us-east-1', mgmtUrl: 'http://127.0.0.1:8081', gatewayArgs: [] };
  const value = (i) => (i + 1 < argv.length ? argv[i + 1] : usage(`${argv[i]}: expected a value`));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') { o.gatewayArgs = argv.slice(i + 1); break; }
    if (a === '--port') o.port = Number(value(i++));
    else if (a === '--host') o.host = value(i++);
    else if (a === '--wsgate') o.wsgate = value(i++);
    else if (a === '--functions') o.functions = value(i++);
    else if (a === '--mgmt-url') o.mgmtUrl = value(i++);
    else if (a === '--env-vars') o.envVars = value(i++);
    else if (a === '--region') o.region = value(i++);
    else if (a === '--start-gateway') o.startGateway = true;
    else if (a === '--no-dynamodb') o.noDynamo = true;
    else if (a === '--help' || a === '-h') usage();
    else if (a.startsWith('-')) usage(`unknown option ${a}`);
    else if (o.template) usage(`unexpected argument ${a}`);
    else o.template = a;
  }
  if (!o.template && !o.functions) usage('expected a template (or --functions FILE)');
  if (o.startGateway && !o.template) usage('--start-gateway needs the template');
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) usage('--port: expected 0 to 65535');
  o.wsgate ??= existsSync(path.resolve(here, '../../build/wsgate')) ? path.resolve(here, '../../build/wsgate') : 'wsgate';
  return o;
}

// The template's functions, read by wsgate itself (one YAML reader for
// the gateway and the runner); its warnings go to stderr.
function loadFunctions(o) {
  if (o.functions) {
    const j = JSON.parse(readFileSync(o.functions, 'utf8'));
    return { functions: j.functions, tables: j.tables || {}, base: path.dirname(path.resolve(o.functions)) };
  }
  const out = execFileSync(o.wsgate, ['import', '--functions', '--region', o.region, o.template],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const j = JSON.parse(out);
  return { functions: j.functions, tables: j.tables || {}, base: path.dirname(path.resolve(o.template)) };
}

const TABLE_KEYS = ['TableName', 'KeySchema', 'AttributeDefinitions', 'BillingMode', 'ProvisionedThroughput',
  'GlobalSecondaryIndexes', 'LocalSecondaryIndexes', 'StreamSpecification'];

// The template's tables in an in-memory dynalite, or null.
async function startDynamo(o, tables) {
  const ids = Object.keys(tables);
  if (!ids.length || o.noDynamo || process.env.AWS_ENDPOINT_URL_DYNAMODB) return null;
  let dynalite, ddb;
  try {
    dynalite = (await import('dynalite')).default;
    ddb = await import('@aws-sdk/client-dynamodb');
  } catch {
    console.error(`lambda-runner: the template defines DynamoDB tables (${ids.join(', ')}) but dynalite and `
      + '@aws-sdk/client-dynamodb are not installed (npm ci): no local store; set AWS_ENDPOINT_URL_DYNAMODB to use one');
    return null;
  }
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', resolve); });
  const endpoint = `http://127.0.0.1:${server.address().port}`;
  const client = new ddb.DynamoDBClient({ endpoint, region: o.region, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
  try {
    for (const t of Object.values(tables)) {
      const input = Object.fromEntries(TABLE_KEYS.filter((k) => k in t).map((k) => [k, t[k]]));
      if (!input.BillingMode && !input.ProvisionedThroughput) input.BillingMode = 'PAY_PER_REQUEST';
      await client.send(new ddb.CreateTableCommand(input));
    }
  } finally {
    client.destroy();
  }
  console.error(`lambda-runner: DynamoDB (dynalite, in memory) on ${endpoint}: ${Object.values(tables).map((t) => t.TableName).join(', ')}`);
  return { server, endpoint };
}

function loadEnvVars(file) {
  if (!file) return {};
  const v = JSON.parse(readFileSync(file, 'utf8'));
  if (!v || typeof v !== 'object') throw new Error(`${file}: expected a JSON object`);
  return v;
}

class FunctionHost {
  constructor(id, spec, ctx) {
    this.id = id;
    this.spec = spec;
    this.ctx = ctx;
    this.child = null;
    this.pending = new Map();
  }

  env() {
    const s = this.spec;
    const over = { ...(this.ctx.envVars.Parameters || {}), ...(this.ctx.envVars[this.id] || {}) };
    return {
      ...process.env,
      AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID || 'local',
      AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY || 'local',
      ...s.environment,
      ...over,
      AWS_REGION: this.ctx.region,
      AWS_DEFAULT_REGION: this.ctx.region,
      AWS_LAMBDA_FUNCTION_NAME: s.functionName || this.id,
      AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(s.memorySize || 128),
      AWS_LAMBDA_LOG_STREAM_NAME: `local/[$LATEST]${randomUUID().replace(/-/g, '')}`,
      AWS_EXECUTION_ENV: `AWS_Lambda_${s.runtime || 'nodejs20.x'}`,
      LAMBDA_TASK_ROOT: this.codeDir(),
      _HANDLER: s.handler,
      TZ: ':UTC',
      WSGATE_MGMT_URL: this.ctx.mgmtUrl(),
      ...(this.ctx.dynamo ? { AWS_ENDPOINT_URL_DYNAMODB: this.ctx.dynamo.endpoint } : {}),
    };
  }

  codeDir() {
    return path.resolve(this.ctx.base, this.spec.codeUri || '.');
  }

  start() {
    const child = fork(path.join(here, 'worker.mjs'), [], {
      cwd: this.codeDir(),
      env: this.env(),
      execArgv: ['--require', path.join(here, 'endpoint-patch.cjs')],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    child.on('message', (m) => {
      const p = this.pending.get(m.id);
      if (p) { this.pending.delete(m.id); p(m); }
    });
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = null;
      for (const [id, p] of this.pending) {
        this.pending.delete(id);
        p({ ok: false, error: { errorType: 'Runtime.ExitError', errorMessage: `RequestId: ${id} Error: Runtime exited with ${signal ? `signal: ${signal}` : `error: exit status ${code}`}` } });
      }
    });
    this.child = child;
  }

  // Lambda's answer: { ok, result } or { ok: false, error }.
  invoke(event) {
    if (!this.child) this.start();
    const id = randomUUID();
    const timeoutMs = (Number(this.spec.timeout) || 3) * 1000;
    const child = this.child;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        // A timed-out environment is not reused.
        if (this.child === child) { this.child = null; child.kill('SIGKILL'); }
        resolve({ ok: false, error: { errorType: 'Sandbox.Timedout', errorMessage: `RequestId: ${id} Error: Task timed out after ${(timeoutMs / 1000).toFixed(2)} seconds` } });
      }, timeoutMs);
      this.pending.set(id, (m) => { clearTimeout(timer); resolve(m); });
      child.send({ id, requestId: id, event, deadline: Date.now() + timeoutMs });
    });
  }

  stop() {
    if (this.child) this.child.kill('SIGTERM');
  }
}

function reply(res, status, body, headers = {}) {
  const data = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': data.length, ...headers });
  res.end(data);
}

function serve(hosts) {
  return http.createServer((req, res) => {
    const m = /^\/(?:functions\/([^/?]+)|2015-03-31\/functions\/([^/?]+)\/invocations)\/?(?:\?.*)?$/.exec(req.url);
    const host = m && hosts.get(decodeURIComponent(m[1] || m[2]));
    if (req.method !== 'POST' || !host) {
      reply(res, 404, { Type: 'User', message: `Function not found: ${req.url}` }, { 'x-amzn-errortype': 'ResourceNotFoundException' });
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      let event;
      try {
        event = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
      } catch {
        reply(res, 400, { Type: 'User', message: 'Could not parse request body into json' });
        return;
      }
      const r = await host.invoke(event);
      if (r.ok) reply(res, 200, r.result);
      else reply(res, 502, r.error, { 'x-amz-function-error': 'Unhandled' });
    });
  });
}

function startGateway(o, port, onMgmt) {
  const args = ['--routes', o.template, '--runner-url', `http://127.0.0.1:${port}/functions/`, ...o.gatewayArgs];
  const gw = spawn(o.wsgate, args, { stdio: ['ignore', 'inherit', 'pipe'] });
  gw.stderr.on('data', (d) => {
    process.stderr.write(d);
    const m = /listening on ([^\s]+):(\d+) \(management\)/.exec(String(d));
    if (m) onMgmt(`http://${m[1] === '0.0.0.0' ? '127.0.0.1' : m[1]}:${m[2]}`);
  });
  return gw;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  let mgmtUrl = o.mgmtUrl;
  const { functions, tables, base } = loadFunctions(o);
  const dynamo = await startDynamo(o, tables);
  const ctx = { base, region: o.region, envVars: loadEnvVars(o.envVars), mgmtUrl: () => mgmtUrl, dynamo };
  const hosts = new Map(Object.entries(functions).map(([id, spec]) => [id, new FunctionHost(id, spec, ctx)]));
  const server = serve(hosts);
  await new Promise((resolve, reject) => { server.once('error', reject); server.listen(o.port, o.host, resolve); });
  const { port } = server.address();
  console.error(`lambda-runner: listening on http://${o.host}:${port}/functions/ (${[...hosts.keys()].join(', ') || 'no functions'})`);
  let gw = null;
  const stopFunctions = (code) => {
    for (const h of hosts.values()) h.stop();
    if (dynamo) { dynamo.server.close(); dynamo.server.closeAllConnections?.(); }
    server.close();
    server.closeAllConnections();
    process.exitCode = code;
  };
  // The gateway stops first: its drain sends the $disconnect of each open
  // connection, which the functions must still be there to run. Its exit
  // then stops them.
  const stop = (code) => {
    if (gw && gw.exitCode === null) gw.kill('SIGTERM');
    else stopFunctions(code);
  };
  if (o.startGateway) {
    gw = startGateway(o, port, (url) => { mgmtUrl = url; });
    gw.on('exit', (code) => { gw = null; stopFunctions(code ?? 1); });
  }
  process.on('SIGTERM', () => stop(0));
  process.on('SIGINT', () => stop(0));
}

main().catch((e) => {
  console.error(`lambda-runner: ${e.message}`);
  process.exit(1);
});
