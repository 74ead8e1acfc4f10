// Issue 9, process and configuration: the data folder lock (item 23), a
// full disk under --data (item 13), --check refusing unsafe configuration
// (item 27), and what an operator does to a gateway (kill -9 and restart,
// --data naming a file).

import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  test, assert, startBackend, startGateway, runGateway, makeApi, writeRoutes, connect,
  connectRefused, connectWithId, nextMessage, postTo, send, echoHandler, waitUntil,
} from './helpers.mjs';

function baseArgs(gw, extra = []) {
  return ['--routes', gw.routesDir, '--listen', '127.0.0.1:0', '--mgmt-listen', '127.0.0.1:0', ...extra];
}

async function listConnections(dataDir) {
  const res = await runGateway(['--connections', '--data', dataDir]);
  assert.equal(res.code, 0, res.output);
  return res.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

test('item 23: a second wsgate on the same --data (or the same ports) refuses to start and leaves the first one serving', async () => {
  const backend = await startBackend();
  const a = await startGateway({ routes: makeApi(backend.url) });
  const { ws, id } = await connectWithId(a, backend);

  const sameData = await runGateway(baseArgs(a, ['--data', a.dataDir]));
  assert.equal(sameData.started, false, `the second gateway started:\n${sameData.output}`);
  assert.notEqual(sameData.code, 0);
  assert.match(sameData.stderr, new RegExp(`${a.dataDir}: the data folder is in use by another wsgate \\(PID ${a.proc.pid}\\)`));

  const samePorts = await runGateway(['--routes', a.routesDir, '--listen', `127.0.0.1:${a.port}`,
    '--mgmt-listen', `127.0.0.1:${a.mgmtPort}`, '--data', a.dataDir]);
  assert.equal(samePorts.started, false, `the second gateway started:\n${samePorts.output}`);
  assert.notEqual(samePorts.code, 0);
  assert.match(samePorts.stderr, /in use by another wsgate/);

  // The first one's registry is intact: every POST reaches the client.
  for (let i = 0; i < 10; i++) {
    const res = await postTo(a, id, `still here ${i}`);
    assert.equal(res.status, 200, `POST ${i}: ${res.status} ${res.text}`);
    assert.equal((await nextMessage(ws)).data, `still here ${i}`);
  }
  // Tools read the registry without the lock.
  assert.deepEqual((await listConnections(a.dataDir)).map((r) => r.id), [id]);
});

test('item 23: kill -9, then a restart on the same --data starts and drops the dead run\'s records', async () => {
  const backend = await startBackend();
  const a = await startGateway({ routes: makeApi(backend.url) });
  const { id } = await connectWithId(a, backend);
  await a.stop('SIGKILL');
  // What the killed run left is there to inspect.
  assert.deepEqual((await listConnections(a.dataDir)).map((r) => r.id), [id]);

  const b = await startGateway({ routes: makeApi(backend.url), args: ['--data', a.dataDir] });
  assert.deepEqual(await listConnections(a.dataDir), []);
  assert.equal((await postTo(b, id, 'ghost')).status, 410);
  const second = await connectWithId(b, backend);
  assert.equal((await postTo(b, second.id, 'hello')).status, 200);
  assert.equal((await nextMessage(second.ws)).data, 'hello');
});

test('--data naming a file, a folder that cannot be created or a folder every user can write is refused with the reason', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-ops-'));
  try {
    const file = path.join(dir, 'afile');
    writeFileSync(file, 'not a folder');
    const routes = writeRoutes({ 'api.json': makeApi('http://127.0.0.1:9/x') });
    const args = ['--routes', routes, '--listen', '127.0.0.1:0', '--mgmt-listen', '127.0.0.1:0'];
    let res = await runGateway([...args, '--data', file]);
    assert.equal(res.started, false);
    assert.equal(res.code, 1);
    assert.match(res.stderr, new RegExp(`${file}: expected a folder for --data, found a file`));
    res = await runGateway([...args, '--data', path.join(file, 'sub')]);
    assert.equal(res.started, false);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /cannot create the data folder: Not a directory/);
    // A folder every user can write (where links could be planted) is refused.
    const shared = path.join(dir, 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o1777);
    res = await runGateway([...args, '--data', shared]);
    assert.equal(res.started, false);
    assert.equal(res.code, 1);
    assert.ok(res.stderr.includes(`${shared}: the data folder is writable by every user (mode 1777)`), res.stderr);
    rmSync(routes, { recursive: true, force: true });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function mountTmpfs(size) {
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    return { error: `${e.stderr ?? e.message}`.trim() };
  }
  return {
    dir,
    unmount() {
      try { execFileSync('umount', ['-l', dir], { stdio: 'pipe' }); } catch { /* not mounted */ }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('item 13: a full disk under --data refuses new connections with 500; the process and the open connections live on', async (t) => {
  const mnt = mountTmpfs('1800k');
  if (mnt.error) {
    t.skip(`cannot mount a tmpfs (needs root / CAP_SYS_ADMIN): ${mnt.error}`);
    return;
  }
  try {
    const backend = await startBackend(echoHandler);
    // No $connect route: connections register as fast as they open.
    const api = makeApi(backend.url, { routes: { $default: { integration: 'backend', routeResponse: true } } });
    const gw = await startGateway({ routes: api, args: ['--data', mnt.dir] });
    const headers = { 'User-Agent': 'u'.repeat(480) };

    const first = await connect(gw.url, { headers });
    await send(first, JSON.stringify({ action: 'hello' }));
    await nextMessage(first);
    const id = backend.events.find((e) => e.requestContext?.eventType === 'MESSAGE').requestContext.connectionId;

    const open = [first];
    let refused = 0;
    for (let i = 0; i < 3000 && !refused; i += 20) {
      const batch = await Promise.allSettled(Array.from({ length: 20 }, () => connect(gw.url, { headers })));
      for (const r of batch) {
        if (r.status === 'fulfilled') open.push(r.value);
        else if (r.reason.status === 500) refused++;
        else throw r.reason;
      }
    }
    assert.ok(refused > 0, `no refusal after ${open.length} connections`);
    assert.equal(gw.exitInfo, null, `the gateway died: ${JSON.stringify(gw.exitInfo)}`);
    assert.equal(await connectRefused(gw.url, { headers }), 500);
    assert.match(gw.output(), /no space left in the data folder/);

    // The open ones keep working: management POSTs and messages.
    const res = await postTo(gw, id, 'still served');
    assert.equal(res.status, 200, res.text);
    assert.equal((await nextMessage(first)).data, 'still served');
    const last = open[open.length - 1];
    await send(last, JSON.stringify({ action: 'x', n: 1 }));
    assert.match((await nextMessage(last)).data, /"n":1/);
    // And they close cleanly (their records are deleted, not left behind).
    for (const ws of open.slice(1)) ws.close();
    await waitUntil(async () => (await listConnections(mnt.dir)).length === 1, 8000, 'the closed connections to leave the registry');
    await gw.stop();
  } finally {
    mnt.unmount();
  }
});

async function check(api) {
  const dir = writeRoutes({ 'api.json': api });
  try {
    return { file: path.join(dir, 'api.json'), ...(await runGateway(['--check', '--routes', dir])) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('item 27: --check refuses CORS allowOrigins ["*"] with allowCredentials true, as AWS does', async () => {
  const res = await check(makeApi('http://127.0.0.1:9/x', { cors: { allowOrigins: ['*'], allowCredentials: true } }));
  assert.equal(res.code, 1, res.output);
  assert.match(res.stderr, new RegExp(`${res.file}: cors\\.allowCredentials: cannot be true when cors\\.allowOrigins contains "\\*"`));
  const ok = await check(makeApi('http://127.0.0.1:9/x', { cors: { allowOrigins: ['https://app.example'], allowCredentials: true } }));
  assert.equal(ok.code, 0, ok.output);
});

test('item 27: --check refuses CR/LF in uri, stageVariables, requestParameters and CORS headers', async () => {
  const cases = [
    [{ integration: { uri: 'http://127.0.0.1:9/x\r\nX-Evil: 1' } }, 'integrations.backend.uri: expected a URL without spaces or control characters'],
    [{ stageVariables: { host: '127.0.0.1:9\r\nX-Evil: 1' }, integration: { uri: 'http://${stageVariables.host}/x' } },
      'stageVariables.host: expected text without control characters'],
    [{ integration: { type: 'HTTP_PROXY', requestParameters: { 'integration.request.header.X-A': "'a\r\nX-B: b'" } } },
      'integrations.backend.requestParameters.integration.request.header.X-A: expected text without control characters'],
    [{ integration: { type: 'HTTP_PROXY', requestParameters: { 'integration.request.header.Transfer-Encoding': "'chunked'" } } },
      'integrations.backend.requestParameters.integration.request.header.Transfer-Encoding: header "Transfer-Encoding" is reserved'],
    [{ cors: { allowOrigins: ['https://a.example'], exposeHeaders: ['x\r\nSet-Cookie: a=b'] } },
      'cors.exposeHeaders: expected text without control characters'],
  ];
  for (const [overrides, expected] of cases) {
    const res = await check(makeApi('http://127.0.0.1:9/x', overrides));
    assert.equal(res.code, 1, `${JSON.stringify(overrides)} passed --check:\n${res.output}`);
    assert.ok(res.stderr.includes(`${res.file}: ${expected}`), `expected "${expected}" in:\n${res.stderr}`);
    // One line per problem: the CR/LF is shown escaped, not printed.
    for (const line of res.stderr.split('\n').filter(Boolean)) assert.match(line, /^(\/|wsgate: )/, res.stderr);
  }
});
