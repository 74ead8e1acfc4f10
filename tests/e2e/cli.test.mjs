// Issue 14, "A management CLI and a C client library": wsgate-cli (on
// libwsgate) against a live gateway: post, get, delete, the AWS CLI's error
// words and exit codes, SigV4 with keys from the environment and from
// ~/.aws profiles, https:// with a CA bundle.
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import {
  test, assert, WSGATE_BIN, startPair, startBackend, startGateway, makeApi, connectWithId,
  nextMessage, waitClose, pendingMessages, sleep,
} from './helpers.mjs';

// The CLI next to the gateway under test (wsgate-cli-asan beside wsgate-asan).
const CLI = path.join(path.dirname(WSGATE_BIN),
  path.basename(WSGATE_BIN).endsWith('-asan') ? 'wsgate-cli-asan' : 'wsgate-cli');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgate-cli-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

/** Runs the CLI with only the environment given (and a HOME of its own). */
function cli(args, { env = {}, input } = {}) {
  return new Promise((resolve) => {
    const child = execFile(CLI, args, {
      env: { PATH: process.env.PATH, HOME: path.join(tmp, 'empty-home'), ASAN_OPTIONS: 'detect_leaks=1', ...env },
      timeout: 20000,
      encoding: 'utf8',
    }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

const KEY = 'AKIAWSGATECLITEST001';
const SECRET = randomBytes(30).toString('base64');

async function startSigned() {
  const backend = await startBackend();
  const api = makeApi(backend.url, {
    managementAuth: { keys: [{ accessKeyId: KEY, secretAccessKeyEnv: 'WSGATE_TEST_CLI_SECRET' }] },
  });
  const gw = await startGateway({ routes: api, env: { WSGATE_TEST_CLI_SECRET: SECRET } });
  const client = await connectWithId(gw, backend);
  return { backend, gw, client, endpoint: `${gw.mgmtUrl}/dev` };
}

test('item CLI: post is delivered, get prints the record, delete closes the client', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  const endpoint = `${gw.mgmtUrl}/dev`;

  let r = await cli(['post', '--endpoint', endpoint, id, '--data', 'hello from the cli']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '');
  assert.equal((await nextMessage(ws)).data, 'hello from the cli');

  // --data-file, from a file and from standard input; options after the ID.
  const file = path.join(tmp, 'msg.json');
  fs.writeFileSync(file, '{"from":"file"}');
  r = await cli(['post', id, '--endpoint', endpoint, '--data-file', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await nextMessage(ws)).data, '{"from":"file"}');
  r = await cli(['post', '--endpoint', endpoint, '--connection-id', id, '--data-file', '-'], { input: 'piped' });
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await nextMessage(ws)).data, 'piped');

  r = await cli(['get', '--endpoint', endpoint, id]);
  assert.equal(r.code, 0, r.stderr);
  const rec = JSON.parse(r.stdout);
  assert.ok(Date.parse(rec.connectedAt), r.stdout);
  assert.equal(rec.identity.sourceIp, '127.0.0.1');
  assert.match(r.stdout, /^\{\n {4}"/, 'pretty-printed as the AWS CLI does');

  const closed = waitClose(ws);
  r = await cli(['delete', '--endpoint', endpoint, id]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await closed).code, 1000);
});

test('item CLI: a gone ID is GoneException with exit 254, in the AWS CLI\'s words', async () => {
  const { backend, gw } = await startPair();
  const { ws, id } = await connectWithId(gw, backend);
  const endpoint = `${gw.mgmtUrl}/dev`;
  const closed = waitClose(ws);
  assert.equal((await cli(['delete', '--endpoint', endpoint, id])).code, 0);
  await closed;

  let r = await cli(['post', '--endpoint', endpoint, id, '--data', 'x']);
  assert.equal(r.code, 254);
  assert.equal(r.stderr, '\nAn error occurred (GoneException) when calling the PostToConnection operation: \n');
  r = await cli(['get', '--endpoint', endpoint, id]);
  assert.equal(r.code, 254);
  assert.match(r.stderr, /An error occurred \(GoneException\) when calling the GetConnection operation/);
  r = await cli(['delete', '--endpoint', endpoint, id]);
  assert.equal(r.code, 254);
  assert.match(r.stderr, /\(GoneException\) when calling the DeleteConnection operation/);
  // Another stage: 403 with the gateway's message.
  r = await cli(['get', '--endpoint', `${gw.mgmtUrl}/prod`, id]);
  assert.equal(r.code, 254);
  assert.equal(r.stderr, '\nAn error occurred (ForbiddenException) when calling the GetConnection operation: Forbidden\n');
});

test('item CLI: usage, configuration and connection failures exit 252, 253 and 255', async () => {
  let r = await cli(['post', '--endpoint', 'http://127.0.0.1:9/dev', 'ID']);
  assert.equal(r.code, 252);
  assert.match(r.stderr, /one of --data and --data-file is required/);
  r = await cli(['get', 'ID']);
  assert.equal(r.code, 252);
  assert.match(r.stderr, /required: --endpoint/);
  r = await cli(['frobnicate', '--endpoint', 'http://127.0.0.1:9']);
  assert.equal(r.code, 252);
  r = await cli(['get', '--endpoint', 'ftp://127.0.0.1:9', 'ID']);
  assert.equal(r.code, 252);
  assert.match(r.stderr, /Invalid endpoint/);
  r = await cli(['get', '--endpoint', 'http://127.0.0.1:9', '--profile', 'nosuch', 'ID']);
  assert.equal(r.code, 253);
  assert.equal(r.stderr, '\nThe config profile (nosuch) could not be found\n');
  // Nobody listens on port 9 (discard) here: refused.
  r = await cli(['get', '--endpoint', 'http://127.0.0.1:9/dev', 'ID']);
  assert.equal(r.code, 255);
  assert.match(r.stderr, /Could not connect to the endpoint URL/);
});

test('item CLI: signed with keys from the environment; a wrong secret or no key is refused', async () => {
  const { gw, client, endpoint } = await startSigned();
  const env = { AWS_ACCESS_KEY_ID: KEY, AWS_SECRET_ACCESS_KEY: SECRET, AWS_REGION: 'eu-west-1' };

  let r = await cli(['post', '--endpoint', endpoint, client.id, '--data', 'signed'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await nextMessage(client.ws)).data, 'signed');
  // A session token is sent (signed) and does not get in the way.
  r = await cli(['get', '--endpoint', endpoint, client.id], { env: { ...env, AWS_SESSION_TOKEN: 'tok' } });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(JSON.parse(r.stdout).connectedAt);

  r = await cli(['post', '--endpoint', endpoint, client.id, '--data', 'x'],
    { env: { ...env, AWS_SECRET_ACCESS_KEY: `${SECRET}x` } });
  assert.equal(r.code, 254);
  assert.match(r.stderr, /^\nAn error occurred \(InvalidSignatureException\) when calling the PostToConnection operation: The request signature we calculated does not match/);
  assert.ok(!r.stderr.includes(SECRET));

  r = await cli(['post', '--endpoint', endpoint, client.id, '--data', 'x']);
  assert.equal(r.code, 254);
  assert.equal(r.stderr, '\nAn error occurred (ForbiddenException) when calling the PostToConnection operation: Missing Authentication Token\n');

  r = await cli(['get', '--endpoint', endpoint, client.id],
    { env: { ...env, AWS_ACCESS_KEY_ID: 'AKIAWSGATECLIUNKNOWN' } });
  assert.equal(r.code, 254);
  assert.match(r.stderr, /\(UnrecognizedClientException\) when calling the GetConnection operation/);
  await sleep(50);
  assert.equal(pendingMessages(client.ws).length, 0, 'nothing refused was delivered');
  assert.ok(!gw.output().includes(SECRET));
});

test('item CLI: keys from ~/.aws profiles (credentials and config), --profile and AWS_PROFILE', async () => {
  const { client, endpoint } = await startSigned();
  const home = fs.mkdtempSync(path.join(tmp, 'home-'));
  fs.mkdirSync(path.join(home, '.aws'));
  fs.writeFileSync(path.join(home, '.aws', 'credentials'), [
    '[default]', 'aws_access_key_id = AKIAWSGATEWRONGKEY01', 'aws_secret_access_key = nope', '',
    '# the gateway\'s key', '[ops]', `aws_access_key_id = ${KEY}`, `aws_secret_access_key = ${SECRET}`, '',
  ].join('\n'));
  fs.writeFileSync(path.join(home, '.aws', 'config'), [
    '[default]', 'region = us-east-1', '[profile ops]', 'region = eu-central-1',
    '[profile cfgonly]', `aws_access_key_id = ${KEY}`, `aws_secret_access_key = ${SECRET}`, '',
  ].join('\n'));

  let r = await cli(['post', '--endpoint', endpoint, '--profile', 'ops', client.id, '--data', 'by profile'], { env: { HOME: home } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await nextMessage(client.ws)).data, 'by profile');
  // --profile beats the key variables, as with the AWS CLI.
  r = await cli(['post', '--endpoint', endpoint, '--profile', 'ops', client.id, '--data', 'beats env'],
    { env: { HOME: home, AWS_ACCESS_KEY_ID: 'AKIAWSGATEWRONGKEY02', AWS_SECRET_ACCESS_KEY: 'nope' } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await nextMessage(client.ws)).data, 'beats env');
  r = await cli(['post', '--endpoint', endpoint, client.id, '--data', 'AWS_PROFILE'], { env: { HOME: home, AWS_PROFILE: 'ops' } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await nextMessage(client.ws)).data, 'AWS_PROFILE');
  r = await cli(['post', '--endpoint', endpoint, client.id, '--data', 'config'], { env: { HOME: home, AWS_PROFILE: 'cfgonly' } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await nextMessage(client.ws)).data, 'config');
  // The default profile holds a key the gateway does not know.
  r = await cli(['post', '--endpoint', endpoint, client.id, '--data', 'x'], { env: { HOME: home } });
  assert.equal(r.code, 254);
  assert.match(r.stderr, /UnrecognizedClientException/);
  // AWS_SHARED_CREDENTIALS_FILE moves the credentials file.
  r = await cli(['get', '--endpoint', endpoint, client.id], {
    env: { AWS_SHARED_CREDENTIALS_FILE: path.join(home, '.aws', 'credentials'), AWS_PROFILE: 'ops' },
  });
  assert.equal(r.code, 0, r.stderr);
});

test('item CLI: https:// endpoints, verified against --ca-bundle (or not verified on request)', async () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', key, '-out', cert, '-days', '2'],
  { stdio: 'ignore' });
  const seen = [];
  const server = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.writeHead(410, { 'x-amzn-ErrorType': 'GoneException', 'x-amzn-RequestId': 'r1', 'content-length': 0 });
    res.end();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  try {
    const endpoint = `https://127.0.0.1:${server.address().port}/dev`;
    let r = await cli(['delete', '--endpoint', endpoint, '--ca-bundle', cert, 'ABC']);
    assert.equal(r.code, 254, r.stderr);
    assert.match(r.stderr, /\(GoneException\) when calling the DeleteConnection operation/);
    assert.deepEqual(seen, ['DELETE /dev/@connections/ABC']);
    r = await cli(['delete', '--endpoint', endpoint, 'ABC']);
    assert.equal(r.code, 255);
    assert.match(r.stderr, /SSL validation failed/);
    r = await cli(['delete', '--endpoint', endpoint, '--no-verify-ssl', 'ABC']);
    assert.equal(r.code, 254, r.stderr);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

test('item CLI: list follows the cursor to the last page; --limit gives one page and its cursor; --channel filters', async () => {
  const { backend, gw } = await startPair();
  const clients = [];
  for (let i = 0; i < 5; i++) clients.push(await connectWithId(gw, backend));
  const endpoint = `${gw.mgmtUrl}/dev`;
  const ids = clients.map((c) => c.id).sort();

  let r = await cli(['list', '--endpoint', endpoint]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '', 'no progress line outside a terminal');
  assert.deepEqual(JSON.parse(r.stdout).items.map((i) => i.connectionId).sort(), ids);

  r = await cli(['list', '--endpoint', endpoint, '--limit', '2']);
  assert.equal(r.code, 0, r.stderr);
  let page = JSON.parse(r.stdout);
  const seen = page.items.map((i) => i.connectionId);
  assert.ok(page.items.length <= 2);
  while (page.cursor) {
    r = await cli(['list', '--endpoint', endpoint, '--limit', '2', '--cursor', page.cursor]);
    assert.equal(r.code, 0, r.stderr);
    page = JSON.parse(r.stdout);
    seen.push(...page.items.map((i) => i.connectionId));
  }
  assert.deepEqual(seen.sort(), ids);

  const join = await fetch(`${gw.mgmtUrl}/dev/@connections/${clients[0].id}/channels/room-1`, { method: 'PUT' });
  assert.equal(join.status, 204);
  r = await cli(['list', '--endpoint', endpoint, '--channel', 'room-1']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).items.map((i) => i.connectionId), [clients[0].id]);

  r = await cli(['list', '--endpoint', endpoint, '--cursor', 'garbage']);
  assert.equal(r.code, 254);
  assert.match(r.stderr, /An error occurred \(BadRequestException\) when calling the ListConnections operation: /);
});

test('item CLI: list shows a progress line on a terminal (script(1) gives it one)', async () => {
  const { backend, gw } = await startPair();
  for (let i = 0; i < 3; i++) await connectWithId(gw, backend);
  const cmd = `${CLI} list --endpoint ${gw.mgmtUrl}/dev >${path.join(tmp, 'list.json')}`;
  const r = await new Promise((resolve) => {
    execFile('script', ['-qec', cmd, '/dev/null'], {
      env: { PATH: process.env.PATH, HOME: path.join(tmp, 'empty-home'), ASAN_OPTIONS: 'detect_leaks=1' },
      timeout: 20000, encoding: 'utf8',
    }, (err, stdout) => resolve({ code: err ? err.code : 0, stdout }));
  });
  assert.equal(r.code, 0, r.stdout);
  assert.match(r.stdout, /listed 3 connections, 1 pages, \d+\/s/);
  assert.match(r.stdout, /\r\x1b\[K/, 'the line is erased at the end');
  assert.equal(JSON.parse(fs.readFileSync(path.join(tmp, 'list.json'), 'utf8')).items.length, 3);
  // In CI, no progress line even on a terminal (the benchmark's rule too).
  const quiet = await new Promise((resolve) => {
    execFile('script', ['-qec', cmd, '/dev/null'], {
      env: { PATH: process.env.PATH, HOME: path.join(tmp, 'empty-home'), ASAN_OPTIONS: 'detect_leaks=1', CI: 'true' },
      timeout: 20000, encoding: 'utf8',
    }, (err, stdout) => resolve({ code: err ? err.code : 0, stdout }));
  });
  assert.equal(quiet.code, 0, quiet.stdout);
  assert.doesNotMatch(quiet.stdout, /listed \d+ connections/);
});

test('item CLI: list and publish are signed like the rest', async () => {
  const { client, endpoint } = await startSigned();
  const env = { AWS_ACCESS_KEY_ID: KEY, AWS_SECRET_ACCESS_KEY: SECRET };
  // Not a member yet: nothing queued.
  let r = await cli(['publish', '--endpoint', endpoint, 'room-1', '--data', 'nobody'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).queued, 0);
  r = await cli(['list', '--endpoint', endpoint], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).items.map((i) => i.connectionId), [client.id]);
  r = await cli(['publish', '--endpoint', endpoint, 'room-1', '--data', 'x'], { env: { ...env, AWS_SECRET_ACCESS_KEY: 'wrong' } });
  assert.equal(r.code, 254);
  assert.match(r.stderr, /\(InvalidSignatureException\) when calling the PublishToChannel operation/);
});

test('item CLI: publish delivers to every member of the channel', async () => {
  const { backend, gw } = await startPair();
  const a = await connectWithId(gw, backend);
  const b = await connectWithId(gw, backend);
  const c = await connectWithId(gw, backend);
  for (const m of [a, b]) {
    const res = await fetch(`${gw.mgmtUrl}/dev/@connections/${m.id}/channels/room-1`, { method: 'PUT' });
    assert.equal(res.status, 204);
  }
  const r = await cli(['publish', '--endpoint', `${gw.mgmtUrl}/dev`, '--channel', 'room-1', '--data', 'to the room']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { queued: 2, skipped: 0 });
  assert.equal((await nextMessage(a.ws)).data, 'to the room');
  assert.equal((await nextMessage(b.ws)).data, 'to the room');
  await sleep(50);
  assert.equal(pendingMessages(c.ws).length, 0);
});

test('gap 3 CLI: join and leave a channel, broadcast to the stage (signed); usage errors', async () => {
  const { backend, gw, client, endpoint } = await startSigned();
  const other = await connectWithId(gw, backend);
  const env = { AWS_ACCESS_KEY_ID: KEY, AWS_SECRET_ACCESS_KEY: SECRET };
  let r = await cli(['join', '--endpoint', endpoint, client.id, 'room-1'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '');
  r = await cli(['join', '--endpoint', endpoint, '--connection-id', other.id, '--channel', 'room-1'], { env });
  assert.equal(r.code, 0, r.stderr);
  r = await cli(['publish', '--endpoint', endpoint, 'room-1', '--data', 'to the room'], { env });
  assert.deepEqual(JSON.parse(r.stdout), { queued: 2, skipped: 0 });
  assert.equal((await nextMessage(client.ws)).data, 'to the room');
  assert.equal((await nextMessage(other.ws)).data, 'to the room');
  r = await cli(['list', '--endpoint', endpoint, '--channel', 'room-1'], { env });
  assert.equal(JSON.parse(r.stdout).items.length, 2, r.stdout);
  r = await cli(['leave', '--endpoint', endpoint, other.id, 'room-1'], { env });
  assert.equal(r.code, 0, r.stderr);
  r = await cli(['publish', '--endpoint', endpoint, 'room-1', '--data', 'fewer'], { env });
  assert.deepEqual(JSON.parse(r.stdout), { queued: 1, skipped: 0 });
  assert.equal((await nextMessage(client.ws)).data, 'fewer');
  r = await cli(['broadcast', '--endpoint', endpoint, '--data', 'everyone'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { queued: 2, skipped: 0 });
  assert.equal((await nextMessage(client.ws)).data, 'everyone');
  assert.equal((await nextMessage(other.ws)).data, 'everyone');
  await sleep(50);
  assert.equal(pendingMessages(other.ws).length, 0);
  // The gateway's refusals read as the AWS CLI's.
  r = await cli(['join', '--endpoint', endpoint, client.id, 'bad name!'], { env });
  assert.equal(r.code, 254, r.stderr);
  assert.match(r.stderr, /when calling the JoinChannel operation/);
  r = await cli(['broadcast', '--endpoint', endpoint, '--data', 'x'], { env: { ...env, AWS_SECRET_ACCESS_KEY: 'wrong' } });
  assert.equal(r.code, 254);
  assert.match(r.stderr, /\(InvalidSignatureException\) when calling the Broadcast operation/);
  // Usage.
  r = await cli(['join', '--endpoint', endpoint, client.id], { env });
  assert.equal(r.code, 252);
  assert.match(r.stderr, /required: --channel/);
  r = await cli(['broadcast', '--endpoint', endpoint], { env });
  assert.equal(r.code, 252);
  assert.match(r.stderr, /one of --data and --data-file/);
  r = await cli(['--help']);
  assert.match(r.stdout, /join ID CHANNEL/);
  assert.match(r.stdout, /broadcast/);
});

test('item CLI: post to several IDs at once (the library\'s non-blocking requests); a gone one is reported by its ID', async () => {
  const { backend, gw } = await startPair();
  const clients = [];
  for (let i = 0; i < 20; i++) clients.push(await connectWithId(gw, backend));
  const gone = clients.pop();
  const closed = waitClose(gone.ws);
  const endpoint = `${gw.mgmtUrl}/dev`;
  assert.equal((await cli(['delete', '--endpoint', endpoint, gone.id])).code, 0);
  await closed;

  let r = await cli(['post', '--endpoint', endpoint, '--data', 'to many', ...clients.map((c) => c.id)]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  for (const c of clients) assert.equal((await nextMessage(c.ws)).data, 'to many');

  r = await cli(['post', '--endpoint', endpoint, clients[0].id, gone.id, clients[1].id, '--data', 'again']);
  assert.equal(r.code, 254);
  assert.equal(r.stderr, `\n${gone.id}: An error occurred (GoneException) when calling the PostToConnection operation: \n`);
  assert.equal((await nextMessage(clients[0].ws)).data, 'again');
  assert.equal((await nextMessage(clients[1].ws)).data, 'again');
});
