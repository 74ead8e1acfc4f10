// Issue 12, "The management API is authenticated": SigV4 (managementAuth)
// as the AWS SDKs sign every @connections call, keys scoped to their API,
// and an unauthenticated management listener kept on loopback.
import {
  ApiGatewayManagementApiClient, PostToConnectionCommand, GetConnectionCommand, DeleteConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { SignatureV4 } from '@smithy/signature-v4';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { spawnSync, execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  test, assert, startBackend, startGateway, makeApi, connectWithId, nextMessage, waitClose,
  mgmtRequest, runGateway, writeRoutes, sleep, pendingMessages,
} from './helpers.mjs';

/** The hash constructor SignatureV4 wants, on node:crypto. */
class Sha256 {
  constructor(secret) { this.h = secret ? createHmac('sha256', secret) : createHash('sha256'); }
  update(d) { this.h.update(typeof d === 'string' ? Buffer.from(d) : d); }
  async digest() { return new Uint8Array(this.h.digest()); }
}

const KEY_A = 'AKIAWSGATETESTAAAAAA';
const KEY_B = 'AKIAWSGATETESTBBBBBB';
const SECRET_A = randomBytes(30).toString('base64');
const SECRET_B = randomBytes(30).toString('base64');
const ENV = { WSGATE_TEST_MGMT_SECRET_A: SECRET_A };

function sdk(gw, stage, accessKeyId, secretAccessKey, region = 'us-east-1') {
  return new ApiGatewayManagementApiClient({
    endpoint: `${gw.mgmtUrl}/${stage}`,
    region,
    credentials: { accessKeyId, secretAccessKey },
    maxAttempts: 1,
  });
}

/** Sends a request signed by the SDK's own signer; `send` replaces the body sent. */
async function signed(gw, method, pathname, body, {
  key = KEY_A, secret = SECRET_A, region = 'us-east-1', date = new Date(), applyChecksum = true, send,
} = {}) {
  const signer = new SignatureV4({
    service: 'execute-api', region, sha256: Sha256, applyChecksum,
    credentials: { accessKeyId: key, secretAccessKey: secret },
  });
  const headers = { host: `127.0.0.1:${gw.mgmtPort}` };
  if (body !== undefined) {
    headers['content-type'] = 'application/octet-stream';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  const req = await signer.sign({
    method, protocol: 'http:', hostname: '127.0.0.1', port: gw.mgmtPort, path: pathname, query: {}, headers, body,
  }, { signingDate: date });
  return mgmtRequest(gw, method, pathname, send ?? body, { headers: req.headers });
}

async function sdkError(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail('the call succeeded');
}

function assert403(res, type) {
  assert.equal(res.status, 403, res.text);
  assert.equal(res.headers['x-amzn-errortype'], type);
  const body = res.json();
  assert.deepEqual(Object.keys(body), ['message']);
  assert.ok(!res.text.includes(SECRET_A) && !res.text.includes(SECRET_B));
  return body.message;
}

/** Two APIs, A (stage "a", key A from the environment) and B (stage "b",
 * key B from a file, allowed in eu-west-1 only). */
async function startSigned() {
  const backend = await startBackend();
  const secretDir = mkdtempSync(path.join(tmpdir(), 'wsgate-secret-'));
  const secretFile = path.join(secretDir, 'b.key');
  writeFileSync(secretFile, `${SECRET_B}\n`, { mode: 0o600 });
  const apiA = makeApi(backend.url, {
    name: 'a', stage: 'a', basePath: '/a',
    managementAuth: { keys: [{ accessKeyId: KEY_A, secretAccessKeyEnv: 'WSGATE_TEST_MGMT_SECRET_A' }] },
  });
  const apiB = makeApi(backend.url, {
    name: 'b', stage: 'b', basePath: '/b',
    managementAuth: { keys: [{ accessKeyId: KEY_B, secretAccessKeyFile: secretFile, regions: ['eu-west-1'] }] },
  });
  const gw = await startGateway({ routes: [apiA, apiB], env: ENV, args: ['--log-level', 'debug'] });
  const a = await connectWithId(gw, backend, {}, '/a');
  const b = await connectWithId(gw, backend, {}, '/b');
  return { backend, gw, a, b, cleanup: () => rmSync(secretDir, { recursive: true, force: true }) };
}

test('item 12 mgmt auth: the AWS SDK with the right key posts, gets and deletes; no secret in the log', async () => {
  const { gw, a, b, cleanup } = await startSigned();
  try {
    const clientA = sdk(gw, 'a', KEY_A, SECRET_A);
    await clientA.send(new PostToConnectionCommand({ ConnectionId: a.id, Data: Buffer.from('signed hello') }));
    assert.equal((await nextMessage(a.ws)).data, 'signed hello');
    const info = await clientA.send(new GetConnectionCommand({ ConnectionId: a.id }));
    assert.ok(info.ConnectedAt instanceof Date);
    assert.ok(info.Identity?.SourceIp);

    // Key B, read from a file, in the one region it allows.
    const clientB = sdk(gw, 'b', KEY_B, SECRET_B, 'eu-west-1');
    await clientB.send(new PostToConnectionCommand({ ConnectionId: b.id, Data: Buffer.from('from b') }));
    assert.equal((await nextMessage(b.ws)).data, 'from b');
    const wrongRegion = await sdkError(sdk(gw, 'b', KEY_B, SECRET_B, 'us-east-1')
      .send(new GetConnectionCommand({ ConnectionId: b.id })));
    assert.equal(wrongRegion.name, 'InvalidSignatureException');
    assert.equal(wrongRegion.$metadata.httpStatusCode, 403);

    // Unsigned payload hash (no x-amz-content-sha256): the body is hashed.
    let res = await signed(gw, 'POST', `/a/@connections/${a.id}`, 'no checksum header', { applyChecksum: false });
    assert.equal(res.status, 200, res.text);
    assert.equal((await nextMessage(a.ws)).data, 'no checksum header');
    // awscurl's documented form: "%40connections", the ID escaped.
    res = await signed(gw, 'POST', `/a/%40connections/${encodeURIComponent(a.id)}`, 'awscurl style');
    assert.equal(res.status, 200, res.text);
    assert.equal((await nextMessage(a.ws)).data, 'awscurl style');

    await clientA.send(new DeleteConnectionCommand({ ConnectionId: a.id }));
    const closed = await waitClose(a.ws);
    assert.equal(closed.code, 1000);
    await sleep(100);
    const out = gw.output();
    assert.ok(!out.includes(SECRET_A), 'secret A appears in the gateway output');
    assert.ok(!out.includes(SECRET_B), 'secret B appears in the gateway output');
    assert.match(out, /management API requires SigV4/);
  } finally {
    cleanup();
  }
});

// boto3's signer (botocore), which Python Lambda backends use, when installed.
const HAS_BOTOCORE = spawnSync('python3', ['-c', 'import botocore'], { stdio: 'ignore' }).status === 0;
const BOTO = `
import sys, botocore.session
port, stage, key, secret, region, cid = sys.argv[1:7]
c = botocore.session.get_session().create_client('apigatewaymanagementapi',
    endpoint_url='http://127.0.0.1:%s/%s' % (port, stage), region_name=region,
    aws_access_key_id=key, aws_secret_access_key=secret)
try:
    c.post_to_connection(ConnectionId=cid, Data=b'from botocore')
    print('ok', c.get_connection(ConnectionId=cid)['Identity']['SourceIp'])
except c.exceptions.ClientError as e:
    print('error', e.response['Error']['Code'], e.response['ResponseMetadata']['HTTPStatusCode'])
`;
const boto = (gw, ...args) => new Promise((resolve, reject) => {
  execFile('python3', ['-c', BOTO, String(gw.mgmtPort), ...args], { timeout: 60000 },
    (e, stdout, stderr) => (e ? reject(new Error(`${e.message}\n${stderr}`)) : resolve(stdout.trim())));
});

// Four Python start-ups (botocore imports take seconds on a loaded box).
test('item 12 mgmt auth: botocore (boto3) signs as the gateway verifies', { skip: !HAS_BOTOCORE && 'python3 botocore not installed', timeout: 240000 }, async () => {
  const { gw, a, b, cleanup } = await startSigned();
  try {
    assert.equal(await boto(gw, 'a', KEY_A, SECRET_A, 'us-east-1', a.id), 'ok 127.0.0.1');
    assert.equal((await nextMessage(a.ws)).data, 'from botocore');
    assert.equal(await boto(gw, 'a', KEY_A, `${SECRET_A}x`, 'us-east-1', a.id), 'error InvalidSignatureException 403');
    assert.equal(await boto(gw, 'b', KEY_A, SECRET_A, 'eu-west-1', b.id), 'error UnrecognizedClientException 403');
    assert.equal(await boto(gw, 'b', KEY_B, SECRET_B, 'eu-west-1', b.id), 'ok 127.0.0.1');
    assert.equal((await nextMessage(b.ws)).data, 'from botocore');
  } finally {
    cleanup();
  }
});

test('item 12 mgmt auth: wrong secret, unsigned, expired and tampered requests get 403', async () => {
  const { gw, a, cleanup } = await startSigned();
  try {
    const wrong = await sdkError(sdk(gw, 'a', KEY_A, `${SECRET_A}x`)
      .send(new PostToConnectionCommand({ ConnectionId: a.id, Data: Buffer.from('nope') })));
    assert.equal(wrong.name, 'InvalidSignatureException');
    assert.equal(wrong.$metadata.httpStatusCode, 403);
    assert.match(wrong.message, /signature we calculated does not match/);

    const unknown = await sdkError(sdk(gw, 'a', 'AKIAUNKNOWNKEY000000', SECRET_A)
      .send(new GetConnectionCommand({ ConnectionId: a.id })));
    assert.equal(unknown.name, 'UnrecognizedClientException');
    assert.equal(unknown.$metadata.httpStatusCode, 403);

    // A curl-like request without any signature, for each method.
    for (const [method, body] of [['POST', 'x'], ['GET', undefined], ['DELETE', undefined]]) {
      const res = await mgmtRequest(gw, method, `/a/@connections/${a.id}`, body);
      assert.equal(assert403(res, 'ForbiddenException'), 'Missing Authentication Token');
      assert.ok(res.headers['x-amzn-requestid']);
    }
    // Without the stage, too.
    assert403(await mgmtRequest(gw, 'GET', `/@connections/${a.id}`), 'ForbiddenException');

    // Signed 20 minutes ago, and 20 minutes ahead: outside the 15-minute skew.
    let res = await signed(gw, 'POST', `/a/@connections/${a.id}`, 'old', { date: new Date(Date.now() - 20 * 60e3) });
    assert.match(assert403(res, 'InvalidSignatureException'), /^Signature expired: \d{8}T\d{6}Z is now earlier than/);
    res = await signed(gw, 'GET', `/a/@connections/${a.id}`, undefined, { date: new Date(Date.now() + 20 * 60e3) });
    assert.match(assert403(res, 'InvalidSignatureException'), /^Signature not yet current/);
    // 10 minutes off is within it.
    res = await signed(gw, 'GET', `/a/@connections/${a.id}`, undefined, { date: new Date(Date.now() - 10 * 60e3) });
    assert.equal(res.status, 200, res.text);

    // Same length, one byte changed: with and without x-amz-content-sha256.
    res = await signed(gw, 'POST', `/a/@connections/${a.id}`, 'pay 10', { send: 'pay 99' });
    assert403(res, 'InvalidSignatureException');
    res = await signed(gw, 'POST', `/a/@connections/${a.id}`, 'pay 10', { send: 'pay 99', applyChecksum: false });
    assert403(res, 'InvalidSignatureException');
    // The signature of one connection's request does not carry to another path.
    await sleep(200);
    assert.equal(pendingMessages(a.ws).length, 0, 'nothing refused reached the client');

    // The gateway still serves the right key afterwards.
    await sdk(gw, 'a', KEY_A, SECRET_A).send(new PostToConnectionCommand({ ConnectionId: a.id, Data: Buffer.from('ok') }));
    assert.equal((await nextMessage(a.ws)).data, 'ok');
    const out = gw.output();
    assert.ok(!out.includes(SECRET_A) && !out.includes(SECRET_B), 'a secret appears in the gateway output');
    assert.match(out, /403 InvalidSignatureException/);
  } finally {
    cleanup();
  }
});

test('item 12 mgmt auth: a key of API A reaches neither API B\'s stage nor B\'s connections', async () => {
  const { gw, a, b, cleanup } = await startSigned();
  try {
    // Key A on B's stage, B's connection: not a key of B.
    for (const cmd of [new PostToConnectionCommand({ ConnectionId: b.id, Data: Buffer.from('x') }),
      new GetConnectionCommand({ ConnectionId: b.id }), new DeleteConnectionCommand({ ConnectionId: b.id })]) {
      const e = await sdkError(sdk(gw, 'b', KEY_A, SECRET_A).send(cmd));
      assert.equal(e.$metadata.httpStatusCode, 403);
      assert.equal(e.name, 'UnrecognizedClientException');
    }
    // Key A on A's stage, B's connection ID: still not A's.
    let e = await sdkError(sdk(gw, 'a', KEY_A, SECRET_A)
      .send(new PostToConnectionCommand({ ConnectionId: b.id, Data: Buffer.from('x') })));
    assert.equal(e.$metadata.httpStatusCode, 403);
    // Key B (valid) on A's stage for B's connection: the stage is not B's.
    e = await sdkError(sdk(gw, 'a', KEY_B, SECRET_B, 'eu-west-1')
      .send(new DeleteConnectionCommand({ ConnectionId: b.id })));
    assert.equal(e.$metadata.httpStatusCode, 403);
    assert.equal(e.name, 'ForbiddenException');
    // Key B on A's connection through B's stage.
    e = await sdkError(sdk(gw, 'b', KEY_B, SECRET_B, 'eu-west-1')
      .send(new GetConnectionCommand({ ConnectionId: a.id })));
    assert.equal(e.$metadata.httpStatusCode, 403);
    await sleep(200);
    assert.equal(pendingMessages(b.ws).length, 0);
    assert.equal(b.ws.readyState, b.ws.OPEN, 'B\'s connection is still open');
    // And B's own key does reach it.
    await sdk(gw, 'b', KEY_B, SECRET_B, 'eu-west-1')
      .send(new PostToConnectionCommand({ ConnectionId: b.id, Data: Buffer.from('mine') }));
    assert.equal((await nextMessage(b.ws)).data, 'mine');
  } finally {
    cleanup();
  }
});

test('item 12 mgmt auth: without managementAuth, a stage reaches only its own API\'s connections', async () => {
  const backend = await startBackend();
  const gw = await startGateway({
    routes: [makeApi(backend.url, { name: 'a', stage: 'a', basePath: '/a' }),
      makeApi(backend.url, { name: 'b', stage: 'b', basePath: '/b' })],
  });
  const b = await connectWithId(gw, backend, {}, '/b');
  for (const [method, body] of [['POST', 'x'], ['GET', undefined], ['DELETE', undefined]]) {
    const res = await mgmtRequest(gw, method, `/a/@connections/${b.id}`, body);
    assert.equal(res.status, 403, `${method} through another API's stage`);
    assert.equal(res.headers['x-amzn-errortype'], 'ForbiddenException');
  }
  const res = await mgmtRequest(gw, 'POST', `/b/@connections/${b.id}`, 'own stage');
  assert.equal(res.status, 200);
  assert.equal((await nextMessage(b.ws)).data, 'own stage');
  assert.match(gw.output(), /not authenticated .*loopback only/);
});

test('item 12 mgmt auth: --mgmt-listen beyond loopback needs managementAuth or --mgmt-insecure', async () => {
  const backend = await startBackend();
  const dir = writeRoutes({ 'api.json': makeApi(backend.url) });
  const base = ['--routes', dir, '--listen', '127.0.0.1:0', '--data', mkdtempSync(path.join(tmpdir(), 'wsgate-data-'))];
  let r = await runGateway([...base, '--mgmt-listen', '0.0.0.0:0']);
  assert.equal(r.started, false);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--mgmt-listen 0\.0\.0\.0: refusing to serve an unauthenticated management API/);
  assert.match(r.stderr, /--mgmt-insecure/);
  r = await runGateway([...base, '--mgmt-listen', '0.0.0.0:0', '--mgmt-insecure']);
  assert.equal(r.started, true);
  assert.match(r.output, /WARNING: the management API on 0\.0\.0\.0 is not authenticated/);
  // With managementAuth it may listen anywhere.
  const signedDir = writeRoutes({
    'api.json': makeApi(backend.url, { managementAuth: { keys: [{ accessKeyId: KEY_A, secretAccessKeyEnv: 'WSGATE_TEST_MGMT_SECRET_A' }] } }),
  });
  r = await runGateway(['--routes', signedDir, '--listen', '127.0.0.1:0', '--mgmt-listen', '0.0.0.0:0',
    '--data', mkdtempSync(path.join(tmpdir(), 'wsgate-data-'))], { env: ENV });
  assert.equal(r.started, true, r.output);
  assert.ok(!r.output.includes(SECRET_A));
});

test('item 12 mgmt auth: --check names the file, the key and what was expected, never a secret', async () => {
  const backend = await startBackend();
  const cases = [
    [{ keys: [{ accessKeyId: KEY_A, secretAccessKeyEnv: 'WSGATE_TEST_UNSET_VARIABLE' }] },
      /signed\.json: managementAuth\.keys\[0\]\.secretAccessKeyEnv: environment variable WSGATE_TEST_UNSET_VARIABLE is not set/],
    [{ keys: [{ accessKeyId: KEY_A }] },
      /signed\.json: managementAuth\.keys\[0\]: expected exactly one of secretAccessKeyEnv .* or secretAccessKeyFile/],
    [{ keys: [{ accessKeyId: 'not a key!', secretAccessKeyEnv: 'WSGATE_TEST_MGMT_SECRET_A' }] },
      /signed\.json: managementAuth\.keys\[0\]\.accessKeyId: expected 1 to 128 letters and digits/],
    [{ keys: [{ accessKeyId: KEY_A, secretAccessKeyFile: '/nonexistent/wsgate.key' }] },
      /signed\.json: managementAuth\.keys\[0\]\.secretAccessKeyFile: cannot read "\/nonexistent\/wsgate\.key"/],
    [{ keys: [] }, /signed\.json: managementAuth\.keys: expected a non-empty array/],
    [{ keys: [{ accessKeyId: KEY_A, secretAccessKeyEnv: 'WSGATE_TEST_MGMT_SECRET_A', region: 'x' }] },
      /signed\.json: managementAuth\.keys\[0\]\.region: unknown key/],
  ];
  for (const [auth, re] of cases) {
    const dir = writeRoutes({ 'signed.json': makeApi(backend.url, { managementAuth: auth }) });
    const r = await runGateway(['--check', '--routes', dir], { env: ENV });
    assert.equal(r.code, 1, r.output);
    assert.match(r.stderr, re);
    assert.ok(!r.output.includes(SECRET_A));
  }
  // Only some API files signed: the others would be open.
  const dir = writeRoutes({
    'signed.json': makeApi(backend.url, { name: 's', stage: 's', basePath: '/s', managementAuth: { keys: [{ accessKeyId: KEY_A, secretAccessKeyEnv: 'WSGATE_TEST_MGMT_SECRET_A' }] } }),
    'open.json': makeApi(backend.url, { name: 'o', stage: 'o', basePath: '/o' }),
  });
  const r = await runGateway(['--check', '--routes', dir], { env: ENV });
  assert.equal(r.code, 1, r.output);
  assert.match(r.stderr, /open\.json: managementAuth: missing \(expected in every API file once one has it: .*signed\.json has one\)/);
  const ok = await runGateway(['--check', '--routes', writeRoutes({
    'signed.json': makeApi(backend.url, { managementAuth: { keys: [{ accessKeyId: KEY_A, secretAccessKeyEnv: 'WSGATE_TEST_MGMT_SECRET_A' }] } }),
  })], { env: ENV });
  assert.equal(ok.code, 0, ok.output);
});
