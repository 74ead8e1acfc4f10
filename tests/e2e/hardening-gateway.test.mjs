// Hardening of the gateway core (issue 9): what any client can do to the
// loop, the listeners and the handover to libwebsockets.
import net from 'node:net';
import path from 'node:path';
import { tmpdir } from 'node:os';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import {
  test, assert, startPair, connect, connectWithId, connectRefused, nextMessage, waitClose, postTo, sleep, waitUntil,
  rawConnect, upgradeRequest, serverFrames, withTimeout, rssKiB, startBackend, makeApi, writeRoutes, runGateway,
  WSGATE_BIN, startGateway, mgmtRequest, deleteConn, getConn, echoHandler,
} from './helpers.mjs';

/** Inodes of the sockets the process holds. */
function socketInodes(pid) {
  const out = new Set();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(m[1]);
    } catch { /* closed meanwhile */ }
  }
  return out;
}

function tryUnixConnect(path) {
  return new Promise((resolve) => {
    const s = net.connect({ path });
    const done = (ok) => { s.destroy(); resolve(ok); };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    setTimeout(() => done(false), 2000);
  });
}

test('item 20: nothing listens on a unix socket that another process can reach', async () => {
  const { gw } = await startPair(undefined, {}, { args: ['--workers', '2'] });
  const mine = socketInodes(gw.proc.pid);
  const named = [];
  for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 8 && mine.has(f[6])) named.push(f[7]);
  }
  for (const name of named) {
    // An abstract name is reachable by any process of the network namespace.
    assert.ok(!name.startsWith('@'), `the gateway listens on the abstract unix socket ${name}`);
    assert.ok(!existsSync(name), `the gateway's unix socket ${name} exists on disk`);
    assert.equal(await tryUnixConnect(name), false, `unix socket ${name} of the gateway accepted a connection`);
  }
});

test('item 4: subprotocol names chosen by clients never exhaust the gateway', { timeout: 90000 }, async () => {
  // The backend chooses chat.v1 when offered; other names are the client's.
  const { backend, gw } = await startPair((e) => {
    const offered = Object.entries(e.headers ?? {}).find(([k]) => k.toLowerCase() === 'sec-websocket-protocol')?.[1] ?? '';
    if (e.requestContext.eventType === 'CONNECT' && offered.split(/\s*,\s*/).includes('chat.v1')) {
      return { statusCode: 200, headers: { 'Sec-WebSocket-Protocol': 'chat.v1' } };
    }
    return echoHandler(e);
  });
  // Well past the old 64-per-loop table, one after the other.
  for (let i = 0; i < 300; i++) {
    const ws = await connect(gw.url + '/', { protocols: [`junk-${i}`] });
    assert.equal(ws.protocol, `junk-${i}`);
    ws.close();
    await waitClose(ws);
  }
  // 140 junk names held at once: those past what clients may hold are
  // refused cleanly, and a name the backend chooses still works meanwhile.
  const held = [];
  for (let i = 0; i < 140; i++) {
    try { held.push(await connect(gw.url + '/', { protocols: [`held-${i}`] })); } catch { /* refused: fine */ }
  }
  assert.ok(held.length >= 20 && held.length < 140, `${held.length} of 140 held subprotocol connections opened`);
  const legit = await connectWithId(gw, backend, { protocols: ['chat.v1'] });
  assert.equal(legit.ws.protocol, 'chat.v1');
  legit.ws.send('hello');
  assert.equal((await nextMessage(legit.ws)).data, 'hello');
  assert.equal((await postTo(gw, legit.id, 'pushed')).status, 200);
  assert.equal((await nextMessage(legit.ws)).data, 'pushed');
  for (const ws of held) { ws.close(); await waitClose(ws); }
  // Once they are gone (the gateway may take a moment to see every close),
  // client-chosen names work again.
  let again;
  await waitUntil(async () => {
    try { again = await connect(gw.url + '/', { protocols: ['junk-again'] }); return true; } catch { return false; }
  }, 5000, 'a client-chosen subprotocol after the held ones closed');
  assert.equal(again.protocol, 'junk-again');
});

test('SIGTERM while $connect is pending: the client gets 503, and a backend that then approves gets $disconnect', { timeout: 60000 }, async () => {
  const { backend, gw } = await startPair(async (e) => {
    if (e.requestContext.eventType === 'CONNECT') await sleep(800);
    return { statusCode: 200 };
  });
  const pending = connectRefused(gw.url + '/', { timeoutMs: 5000 });
  await backend.waitFor((e) => e.requestContext?.eventType === 'CONNECT', 5000, '$connect');
  const stopped = gw.stop('SIGTERM');
  assert.equal(await pending, 503);
  const conn = backend.events.find((e) => e.requestContext?.eventType === 'CONNECT');
  await backend.waitFor((e) => e.requestContext?.eventType === 'DISCONNECT'
    && e.requestContext.connectionId === conn.requestContext.connectionId, 5000, 'the $disconnect');
  await stopped;
});

/** User+system CPU seconds of a process. */
function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** A masked client frame. */
function clientFrame(opcode, payload, { fin = true, mask = true, announce } = {}) {
  const len = announce ?? payload.length;
  let head;
  if (len < 126) head = Buffer.from([(fin ? 0x80 : 0) | opcode, (mask ? 0x80 : 0) | len]);
  else if (len < 65536) { head = Buffer.alloc(4); head[0] = (fin ? 0x80 : 0) | opcode; head[1] = (mask ? 0x80 : 0) | 126; head.writeUInt16BE(len, 2); }
  else { head = Buffer.alloc(10); head[0] = (fin ? 0x80 : 0) | opcode; head[1] = (mask ? 0x80 : 0) | 127; head.writeBigUInt64BE(BigInt(len), 2); }
  if (!mask) return Buffer.concat([head, payload]);
  const key = Buffer.from([1, 2, 3, 4]);
  const body = Buffer.from(payload.map((b, i) => b ^ key[i & 3]));
  return Buffer.concat([head, key, body]);
}

/** An open raw WebSocket (handshake done) on the gateway. */
async function rawWebSocket(gw) {
  const sock = await rawConnect(gw.port);
  sock.write(upgradeRequest('/'));
  await waitUntil(() => sock.received.includes('\r\n\r\n'), 5000, 'the 101');
  assert.match(sock.received.toString('latin1'), /^HTTP\/1\.1 101/);
  return sock;
}

function closeCode(frames) {
  const c = frames.find((f) => f.opcode === 8);
  if (!c) return undefined;
  return c.payload.length >= 2 ? c.payload.readUInt16BE(0) : null;
}

for (const [what, payload, expected] of [
  ['code 5000', Buffer.from([0x13, 0x88]), 1002],
  ['code 65535', Buffer.from([0xff, 0xff]), 1002],
  ['code 999', Buffer.from([0x03, 0xe7]), 1002],
  ['code 1005 (reserved)', Buffer.from([0x03, 0xed]), 1002],
  ['a 1-byte payload', Buffer.from([0x03]), 1002],
  ['code 4000', Buffer.from([0x0f, 0xa0]), 4000],
  ['code 1000 with a reason', Buffer.from([0x03, 0xe8, 0x62, 0x79, 0x65]), 1000],
]) {
  test(`item 28: a client close frame with ${what} is answered with ${expected}`, async () => {
    const { backend, gw } = await startPair();
    const sock = await rawWebSocket(gw);
    sock.write(clientFrame(8, payload));
    await waitUntil(() => closeCode(serverFrames(sock.received)) !== undefined, 5000, 'a close frame');
    assert.equal(closeCode(serverFrames(sock.received)), expected);
    const disc = await backend.waitFor((e) => e.requestContext?.eventType === 'DISCONNECT', 5000, '$disconnect');
    assert.equal(disc.requestContext.disconnectStatusCode, expected);
  });
}

test('item 28: a close reason that is not UTF-8 fails the connection and is never echoed', async () => {
  const { backend, gw } = await startPair();
  const sock = await rawWebSocket(gw);
  sock.write(clientFrame(8, Buffer.from([0x03, 0xe8, 0xff, 0xfe])));
  await withTimeout(sock.closedPromise, 5000, 'the connection to be failed');
  const echoed = serverFrames(sock.received).find((f) => f.opcode === 8 && f.payload.includes(Buffer.from([0xff, 0xfe])));
  assert.equal(echoed, undefined, 'the invalid reason was echoed');
  await backend.waitFor((e) => e.requestContext?.eventType === 'DISCONNECT', 5000, '$disconnect');
});

test('item 30: a frame header announcing more than maxMessageBytes is failed with 1009 at once', async () => {
  const { gw } = await startPair(undefined, { limits: { maxMessageBytes: 1024 } });
  const sock = await rawWebSocket(gw);
  // 2^62 bytes announced; only a few arrive.
  sock.write(clientFrame(2, Buffer.alloc(16, 7), { announce: 2 ** 62 }).subarray(0, 10 + 4 + 16));
  await waitUntil(() => closeCode(serverFrames(sock.received)) !== undefined, 5000, 'a close frame');
  assert.equal(closeCode(serverFrames(sock.received)), 1009);
});

test('item 6: empty posts to a client that does not read are bounded by outboundBufferBytes', { timeout: 60000 }, async () => {
  const { backend, gw } = await startPair(undefined, { limits: { outboundBufferBytes: 1024 } });
  const c = await connectWithId(gw, backend);
  c.ws._socket.pause();
  let full = 0, ok = 0;
  for (let round = 0; round < 40 && !full; round++) {
    const res = await Promise.all(Array.from({ length: 200 }, () => postTo(gw, c.id, '')));
    for (const r of res) { if (r.status === 429) full++; else if (r.status === 200) ok++; }
  }
  assert.ok(full > 0, `${ok} empty posts all got 200 against a 1 KB outbound buffer`);
});

test('item 19: a subprotocol the client did not offer is refused with 500, and the backend gets $disconnect', async () => {
  const { backend, gw } = await startPair((e) => {
    if (e.requestContext.eventType === 'CONNECT') return { statusCode: 200, headers: { 'Sec-WebSocket-Protocol': 'evil' } };
    return { statusCode: 200 };
  });
  const status = await connectRefused(gw.url + '/', { protocols: ['chat'] });
  assert.equal(status, 500);
  const conn = await backend.waitFor((e) => e.requestContext?.eventType === 'CONNECT', 5000, '$connect');
  const disc = await backend.waitFor((e) => e.requestContext?.eventType === 'DISCONNECT', 5000, '$disconnect');
  assert.equal(disc.requestContext.connectionId, conn.requestContext.connectionId);
  assert.match(gw.output(), /did not offer/);
});

test('item 18: a head of 12 KB (large cookies) that $connect approves opens', async () => {
  const { backend, gw } = await startPair();
  const c = await connectWithId(gw, backend, { headers: { Cookie: `big=${'x'.repeat(12000)}` } });
  c.ws.send('hi');
  assert.equal((await nextMessage(c.ws)).data, 'hi');
});

test('item 5: clients sending faster than a stalled backend are paused, not buffered, and lose nothing', { timeout: 90000 }, async () => {
  let release;
  const gate = new Promise((r) => { release = r; });
  const { backend, gw } = await startPair(async (e) => {
    if (e.requestContext.eventType === 'MESSAGE') await gate;
    return { statusCode: 200 };
  }, { integration: { timeoutMs: 120000 }, limits: { maxFrameBytes: 65536 } });
  // One 64 KB frame per message: past AWS's 32 KB frame, allowed here.
  const N = 8, M = 120, SIZE = 64 * 1024;
  const clients = [];
  for (let i = 0; i < N; i++) clients.push(await connectWithId(gw, backend));
  const before = rssKiB(gw.proc.pid);
  const errors = [];
  for (const c of clients) {
    c.ws.on('message', (d) => errors.push(d.toString()));
    for (let j = 0; j < M; j++) c.ws.send(`${String(j).padStart(6, '0')}${'x'.repeat(SIZE - 6)}`);
  }
  // Long enough for every byte to reach the gateway if it kept reading.
  await sleep(4000);
  const grown = (rssKiB(gw.proc.pid) - before) / 1024;
  // 8 clients x 120 x 64 KB = 60 MB would be queued without flow control.
  assert.ok(grown < 40, `gateway RSS grew by ${grown.toFixed(1)} MB with a stalled backend`);
  release();
  await waitUntil(() => backend.events.filter((e) => e.requestContext?.eventType === 'MESSAGE').length === N * M,
    60000, `all ${N * M} messages at the backend`);
  for (const c of clients) {
    const got = backend.events.filter((e) => e.requestContext?.eventType === 'MESSAGE' && e.requestContext.connectionId === c.id)
      .map((e) => Number(e.body.slice(0, 6)));
    assert.deepEqual(got, Array.from({ length: M }, (_, j) => j), 'messages of one connection in order, none lost');
  }
  assert.deepEqual(errors, [], 'error frames were sent to clients');
});

/** Starts wsgate under a wrapper command (prlimit ...); resolves a gw-like object. */
async function startWrapped(wrapper, routes, extraArgs = []) {
  const routesDir = writeRoutes({ 'api.json': routes });
  const dataDir = mkdtempSync(path.join(tmpdir(), 'wsgate-data-'));
  const proc = spawn(wrapper[0], [...wrapper.slice(1), WSGATE_BIN, '--routes', routesDir, '--listen', '127.0.0.1:0',
    '--mgmt-listen', '127.0.0.1:0', '--data', dataDir, ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  await waitUntil(() => /listening on .*\(management\)/.test(out), 10000, 'the wrapped gateway to listen');
  const port = Number(/:(\d+) \(gateway\)/.exec(out)[1]);
  const mgmtPort = Number(/:(\d+) \(management\)/.exec(out)[1]);
  return { proc, port, mgmtPort, url: `ws://127.0.0.1:${port}`, output: () => out,
    stop: () => { proc.kill('SIGKILL'); rmSync(dataDir, { recursive: true, force: true }); } };
}

test('item 26: a loop whose thread cannot start leaves no connection unserved', { timeout: 60000 }, async () => {
  const backend = await startBackend();
  // A stack limit no thread can get: pthread_create fails for loops 1 and 2.
  const gw = await startWrapped(['prlimit', '--stack=100000000000'], makeApi(backend.url), ['--workers', '3']);
  try {
    // The loops start after the listeners are announced.
    await waitUntil(() => /event loops? running/.test(gw.output()), 5000, 'the loops to start');
    assert.match(gw.output(), /cannot start event loop/);
    for (let i = 0; i < 30; i++) {
      const c = await connectWithId(gw, backend, { timeoutMs: 3000 });
      c.ws.send(`m${i}`);
      assert.equal((await nextMessage(c.ws)).data, `m${i}`);
      assert.equal((await postTo(gw, c.id, 'p')).status, 200);
      c.ws.close();
    }
  } finally { gw.stop(); }
});

test('item 23: a second gateway on the same ports (another --data) fails to start and takes no traffic', async () => {
  const { backend, gw } = await startPair();
  const c = await connectWithId(gw, backend);
  const routesDir = writeRoutes({ 'api.json': makeApi(backend.url) });
  const dataDir = mkdtempSync(path.join(tmpdir(), 'wsgate-data-'));
  const res = await runGateway(['--routes', routesDir, '--listen', `127.0.0.1:${gw.port}`,
    '--mgmt-listen', `127.0.0.1:${gw.mgmtPort}`, '--data', dataDir]);
  rmSync(dataDir, { recursive: true, force: true });
  assert.equal(res.started, false, 'the second gateway started listening');
  assert.notEqual(res.code, 0);
  assert.match(res.output, /cannot listen on 127\.0\.0\.1:\d+/);
  for (let i = 0; i < 10; i++) assert.equal((await postTo(gw, c.id, `p${i}`)).status, 200);
});

test('item 8: at the descriptor limit the gateway neither spins nor floods its log, and the management API still works', { timeout: 60000 }, async () => {
  const { backend, gw } = await startPair();
  const c = await connectWithId(gw, backend);
  execFileSync('prlimit', ['--pid', String(gw.proc.pid), '--nofile=160:160']);
  const flood = [];
  try {
    for (let i = 0; i < 220; i++) {
      const s = net.connect(gw.port, '127.0.0.1');
      s.on('error', () => {});
      s.on('connect', () => s.write('GET / HTTP/1.1\r\nHost: x\r\n')); // a head never finished
      flood.push(s);
    }
    await sleep(500);
    const cpu0 = cpuSeconds(gw.proc.pid), log0 = gw.output().length;
    await sleep(2000);
    const cpu = cpuSeconds(gw.proc.pid) - cpu0, logged = gw.output().length - log0;
    assert.ok(cpu < 0.5, `the gateway used ${cpu.toFixed(2)} s of CPU in 2 s while out of descriptors`);
    assert.ok(logged < 2000, `the gateway logged ${logged} bytes in 2 s while out of descriptors`);
    // Management calls and backend calls have descriptors kept for them.
    assert.equal((await postTo(gw, c.id, 'still here')).status, 200);
    assert.equal((await nextMessage(c.ws)).data, 'still here');
    c.ws.send('echo');
    assert.equal((await nextMessage(c.ws)).data, 'echo');
  } finally {
    for (const s of flood) s.destroy();
  }
  // Accepting resumes once the descriptors are free again.
  let fresh;
  await waitUntil(async () => {
    try { fresh = await connectWithId(gw, backend); return true; } catch { return false; }
  }, 5000, 'a new connection after the flood');
  fresh.ws.send('after');
  assert.equal((await nextMessage(fresh.ws)).data, 'after');
});

const FAKETIME_LIB = '/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1';

test('item 24: a forward jump of the wall clock closes nothing', { timeout: 60000 }, async () => {
  // libfaketime (Debian's faketime) moves the gateway's CLOCK_REALTIME only;
  // the machine's clock is left alone.
  assert.ok(existsSync(FAKETIME_LIB), `${FAKETIME_LIB} is missing: scripts/install-deps.sh installs faketime`);
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-faketime-'));
  const stamp = path.join(dir, 'offset');
  writeFileSync(stamp, '+0\n');
  try {
    const backend = await startBackend();
    const gw = await startGateway({
      routes: makeApi(backend.url, { limits: { idleTimeoutSeconds: 60, maxConnectionSeconds: 120 } }),
      env: {
        LD_PRELOAD: FAKETIME_LIB, FAKETIME_TIMESTAMP_FILE: stamp, FAKETIME_NO_CACHE: '1',
        FAKETIME_DONT_FAKE_MONOTONIC: '1', ASAN_OPTIONS: 'detect_leaks=1:verify_asan_link_order=0',
      },
    });
    const c = await connectWithId(gw, backend);
    writeFileSync(stamp, '+3h\n');
    await sleep(2500);
    c.ws.send('still open?');
    assert.equal((await nextMessage(c.ws)).data, 'still open?');
    assert.equal((await postTo(gw, c.id, 'yes')).status, 200);
    assert.equal((await nextMessage(c.ws)).data, 'yes');
    // Reported times follow the wall clock the process sees.
    const got = await mgmtRequest(gw, 'GET', `/dev/@connections/${c.id}`);
    assert.ok(Date.parse(got.json().lastActiveAt) > Date.now() + 2 * 3600 * 1000, got.text);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a client that stops reading is still closed by DELETE, within the close deadline, with its $disconnect', { timeout: 90000 }, async () => {
  const { backend, gw } = await startPair(undefined, { limits: { outboundBufferBytes: 16 << 20 } });
  const c = await connectWithId(gw, backend);
  c.ws._socket.pause();
  // Fill the kernel's buffers both ways so that no close frame can be written.
  const big = 'x'.repeat(100000);
  for (let i = 0; i < 120; i++) {
    const r = await postTo(gw, c.id, big);
    if (r.status !== 200) break;
  }
  assert.equal((await deleteConn(gw, c.id)).status, 204);
  const t0 = Date.now();
  await backend.waitFor((e) => e.requestContext?.eventType === 'DISCONNECT' && e.requestContext.connectionId === c.id,
    30000, 'the $disconnect of a client that does not read');
  const took = (Date.now() - t0) / 1000;
  assert.ok(took < 25, `closing took ${took} s`);
  assert.equal((await getConn(gw, c.id)).status, 410);
});

test('messages read before a client closes reach their route, then $disconnect (issue 11 item 1)', { timeout: 60000 }, async () => {
  const { backend, gw } = await startPair(async (e) => {
    if (e.requestContext.eventType === 'MESSAGE') await sleep(20);
    return { statusCode: 200 };
  });
  const ids = [];
  for (let i = 0; i < 20; i++) {
    const c = await connectWithId(gw, backend);
    ids.push(c.id);
    c.ws.send(`first-${i}`);
    c.ws.send(`second-${i}`);
    c.ws.send(`bye-${i}`);
    c.ws.close(1000, 'done');
  }
  for (const [i, id] of ids.entries()) {
    await backend.waitFor((e) => e.requestContext?.eventType === 'DISCONNECT' && e.requestContext.connectionId === id,
      10000, `the $disconnect of connection ${i}`);
    const mine = backend.events.filter((e) => e.requestContext?.connectionId === id && e.requestContext.eventType !== 'CONNECT');
    assert.deepEqual(mine.map((e) => e.body ?? e.requestContext.eventType),
      [`first-${i}`, `second-${i}`, `bye-${i}`, 'DISCONNECT'], `connection ${i}`);
    assert.equal(mine[3].requestContext.disconnectStatusCode, 1000);
  }
});

test('posts answered 200 reach the client before the close frame of a DELETE (issue 11 item 2)', { timeout: 60000 }, async () => {
  const { backend, gw } = await startPair(undefined, { limits: { outboundBufferBytes: 16 << 20 } });
  const c = await connectWithId(gw, backend);
  const got = [];
  c.ws.on('message', (d) => got.push(d.toString().slice(0, 8)));
  const body = (i) => `${String(i).padStart(8, '0')}${'x'.repeat(10000)}`;
  // The client reads nothing while the posts queue up, then reads again.
  c.ws._socket.pause();
  let ok = 0;
  for (let i = 0; i < 368; i++) if ((await postTo(gw, c.id, body(i))).status === 200) ok++;
  assert.equal((await deleteConn(gw, c.id)).status, 204);
  c.ws._socket.resume();
  const closed = await waitClose(c.ws, 10000);
  assert.equal(closed.code, 1000);
  assert.equal(got.length, ok, `${ok} posts got 200, the client received ${got.length}`);
  assert.deepEqual(got, Array.from({ length: ok }, (_, i) => String(i).padStart(8, '0')));
});
