// Issue 11 item 3: a client that stops reading can still be closed. A close
// that cannot be written within --send-timeout drops the TCP connection and
// completes the close: the registry forgets it, GET answers 410 and the
// backend gets its $disconnect exactly once. The clients here are raw TCP
// sockets that never read after the handshake, with the kernel's buffers
// both ways filled by management posts first.

import { execFileSync } from 'node:child_process';
import fs, { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import {
  test, assert, startBackend, startGateway, makeApi, rawConnect, upgradeRequest,
  postTo, getConn, deleteConn, runGateway, waitUntil, sleep, header, serverFrames, withTimeout,
} from './helpers.mjs';

const SEND_TIMEOUT_S = 1;
// An outbound queue small enough to fill fast; a 429 proves that the
// kernel's buffers are full (libwebsockets writes whatever they take).
const OUTBOUND = 1 << 20;

let seq = 0;

/** A raw TLS socket that collects what it receives, like rawConnect. */
function rawTlsConnect(port) {
  const sock = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false });
  sock.received = Buffer.alloc(0);
  sock.on('data', (d) => { sock.received = Buffer.concat([sock.received, d]); });
  sock.on('error', () => {});
  return new Promise((resolve, reject) => {
    sock.once('secureConnect', () => resolve(sock));
    sock.once('error', reject);
  });
}

/** A WebSocket client on a raw socket that stops reading once the 101 is in. */
async function deafClient(gw, backend, { secure = false } = {}) {
  const tag = `deaf-${process.pid}-${++seq}`;
  const sock = secure ? await rawTlsConnect(gw.port) : await rawConnect(gw.port);
  sock.write(upgradeRequest('/', { 'X-Test-Client': tag }));
  await waitUntil(() => sock.received.includes('\r\n\r\n'), 5000, 'the 101');
  assert.match(sock.received.toString('latin1'), /^HTTP\/1\.1 101/);
  sock.pause();
  const ev = await backend.waitFor((e) => e.requestContext?.eventType === 'CONNECT'
    && header(e.headers, 'X-Test-Client') === tag, 5000, `the CONNECT of ${tag}`);
  return { sock, id: ev.requestContext.connectionId };
}

/**
 * Posts 64 KB messages until the gateway answers 429: libwebsockets writes
 * each as it comes, so the queue only fills once the kernel's buffers are
 * full and the client's window is closed.
 */
async function fill(gw, c) {
  const big = 'x'.repeat(65536);
  for (let i = 0; i < 1000; i++) {
    const r = await postTo(gw, c.id, big);
    if (r.status === 429) {
      const q = serverSide(gw.port, c.sock.localPort);
      assert.ok(q && q.txQueue > 0, `429 with nothing unsent in the kernel: ${JSON.stringify(q)}`);
      return;
    }
    assert.equal(r.status, 200, r.text);
  }
  throw new Error(`no 429 after 1000 posts to ${c.id}`);
}

/** The gateway's end of a client's TCP connection: { state, txQueue }, or null. */
function serverSide(gwPort, clientPort) {
  const hex = (p) => p.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5) continue;
    if (f[1].endsWith(`:${hex(gwPort)}`) && f[2].endsWith(`:${hex(clientPort)}`)) {
      return { state: f[3], txQueue: parseInt(f[4].split(':')[0], 16) };
    }
  }
  return null;
}

const serverSideState = (gwPort, clientPort) => serverSide(gwPort, clientPort)?.state ?? null;

const TCP_ESTABLISHED = '01';
const TCP_FIN_WAIT1 = '04';

async function listed(gw) {
  const r = await runGateway(['--connections', '--data', gw.dataDir]);
  assert.equal(r.code, 0, r.output);
  return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l).id);
}

function disconnects(backend, id) {
  return backend.eventsOf('DISCONNECT', id);
}

let certDir = null;
function tlsArgs() {
  if (!certDir) {
    certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgate-close-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
      '-nodes', '-subj', '/CN=localhost', '-keyout', path.join(certDir, 'key.pem'),
      '-out', path.join(certDir, 'cert.pem'), '-days', '2'], { stdio: 'ignore' });
    process.on('exit', () => fs.rmSync(certDir, { recursive: true, force: true }));
  }
  return ['--tls-cert', path.join(certDir, 'cert.pem'), '--tls-key', path.join(certDir, 'key.pem')];
}

async function startPairWith(limits, args = []) {
  const backend = await startBackend();
  const gw = await startGateway({
    routes: makeApi(backend.url, { limits: { outboundBufferBytes: OUTBOUND, ...limits } }),
    args: ['--send-timeout', String(SEND_TIMEOUT_S), '--workers', '1', ...(process.env.DBG ? ['--log-level', 'debug'] : []), ...args],
  });
  return { backend, gw };
}

/** The connection is gone everywhere a user can look, its $disconnect sent once. */
async function assertClosed(gw, backend, c, code, reason) {
  const [ev] = disconnects(backend, c.id);
  assert.equal(ev.requestContext.disconnectStatusCode, code);
  assert.equal(ev.requestContext.disconnectReason, reason);
  // The socket was reset, not left to flush its megabytes (FIN_WAIT1) for
  // minutes: by the gateway, or, when libwebsockets closed it once its
  // close frame fitted in the kernel, by the kernel within the send timeout.
  let st;
  await waitUntil(() => {
    st = serverSideState(gw.port, c.sock.localPort);
    return st !== TCP_ESTABLISHED && st !== TCP_FIN_WAIT1;
  }, (SEND_TIMEOUT_S + 2) * 1000, 'the socket reset').catch(() => {});
  assert.ok(st !== TCP_ESTABLISHED && st !== TCP_FIN_WAIT1,
    `the gateway's end of the TCP connection is still in state ${st}`);
  assert.equal((await getConn(gw, c.id)).status, 410);
  assert.ok(!(await listed(gw)).includes(c.id), 'still in the registry');
  await sleep(500);
  assert.equal(disconnects(backend, c.id).length, 1, '$disconnect count');
}

test('item 3: --send-timeout is validated', async () => {
  for (const bad of ['0', '-1', 'x', '3601']) {
    const r = await runGateway(['--send-timeout', bad, '--check', '--routes', 'routes/']);
    assert.equal(r.code, 2, `--send-timeout ${bad}: ${r.output}`);
    assert.match(r.stderr, /--send-timeout: expected a number of seconds from 1 to 3600/);
  }
});

test('item 3: DELETE of a client that stops reading completes within the send timeout', async () => {
  const { backend, gw } = await startPairWith({});
  const c = await deafClient(gw, backend);
  await fill(gw, c);
  assert.equal(serverSideState(gw.port, c.sock.localPort), TCP_ESTABLISHED);
  const t0 = Date.now();
  assert.equal((await deleteConn(gw, c.id)).status, 204);
  await backend.waitForEvent('DISCONNECT', c.id, (SEND_TIMEOUT_S + 4) * 1000);
  const took = (Date.now() - t0) / 1000;
  assert.ok(took >= SEND_TIMEOUT_S - 0.2 && took < SEND_TIMEOUT_S + 3, `closing took ${took} s`);
  await assertClosed(gw, backend, c, 1000, 'Connection Closed Normally');
});

test('item 3: DELETE of a wss:// client that stops reading resets its TCP connection too', async () => {
  const { backend, gw } = await startPairWith({}, tlsArgs());
  const c = await deafClient(gw, backend, { secure: true });
  await fill(gw, c);
  assert.equal((await deleteConn(gw, c.id)).status, 204);
  await backend.waitForEvent('DISCONNECT', c.id, (SEND_TIMEOUT_S + 4) * 1000);
  // The relay between TLS and libwebsockets holds what the client did not
  // take: it must let go of the socket within the send timeout as well.
  await waitUntil(() => {
    const st = serverSideState(gw.port, c.sock.localPort);
    return st !== TCP_ESTABLISHED && st !== TCP_FIN_WAIT1;
  }, (SEND_TIMEOUT_S + 3) * 1000, 'the TLS socket to be reset').catch(() => {
    throw new Error(`the gateway's end of the TLS connection is still in state ${serverSideState(gw.port, c.sock.localPort)}`);
  });
  await assertClosed(gw, backend, c, 1000, 'Connection Closed Normally');
});

test('item 3: idleTimeoutSeconds closes a client that stops reading', async () => {
  const { backend, gw } = await startPairWith({ idleTimeoutSeconds: 3 });
  const c = await deafClient(gw, backend);
  await fill(gw, c);
  await backend.waitForEvent('DISCONNECT', c.id, (3 + SEND_TIMEOUT_S + 5) * 1000);
  await assertClosed(gw, backend, c, 1001, 'Idle timeout');
});

test('item 3: maxConnectionSeconds closes a client that stops reading', async () => {
  const { backend, gw } = await startPairWith({ maxConnectionSeconds: 4 });
  const c = await deafClient(gw, backend);
  await fill(gw, c);
  await backend.waitForEvent('DISCONNECT', c.id, (4 + SEND_TIMEOUT_S + 5) * 1000);
  await assertClosed(gw, backend, c, 1001, 'Maximum connection duration reached');
});

test('item 3: SIGTERM with 20 clients that stop reading: 20 $disconnect, exit within drain + send timeout', { timeout: 60000 }, async () => {
  const { backend, gw } = await startPairWith({}, ['--workers', '2']);
  const clients = [];
  for (let i = 0; i < 20; i++) clients.push(await deafClient(gw, backend));
  await Promise.all(clients.map((c) => fill(gw, c)));
  const t0 = Date.now();
  const DRAIN_S = 10; // the default drain deadline
  assert.equal(await gw.stop('SIGTERM', { timeoutMs: (DRAIN_S + SEND_TIMEOUT_S + 3) * 1000 }), 0);
  const took = (Date.now() - t0) / 1000;
  assert.ok(took < DRAIN_S + SEND_TIMEOUT_S + 1, `exit took ${took} s`);
  for (const c of clients) {
    const got = disconnects(backend, c.id);
    assert.equal(got.length, 1, `$disconnect of ${c.id}: ${got.length}`);
    assert.equal(got[0].requestContext.disconnectStatusCode, 1001);
  }
});

test('item 3: clients whose close is not written by the drain deadline are reset then, each with its $disconnect', { timeout: 60000 }, async () => {
  // A send timeout longer than the drain (10 s): the drain deadline ends
  // the wait, resets the sockets and gives their $disconnect calls time.
  const backend = await startBackend();
  const gw = await startGateway({
    routes: makeApi(backend.url, { limits: { outboundBufferBytes: OUTBOUND } }),
    args: ['--send-timeout', '60', '--workers', '2'],
  });
  const clients = [];
  for (let i = 0; i < 5; i++) clients.push(await deafClient(gw, backend));
  await Promise.all(clients.map((c) => fill(gw, c)));
  const t0 = Date.now();
  assert.equal(await gw.stop('SIGTERM', { timeoutMs: 20000 }), 0);
  const took = (Date.now() - t0) / 1000;
  assert.ok(took >= 9.5 && took < 13, `exit took ${took} s`);
  for (const c of clients) {
    const got = disconnects(backend, c.id);
    assert.equal(got.length, 1, `$disconnect of ${c.id}: ${got.length}`);
    assert.equal(got[0].requestContext.disconnectStatusCode, 1001);
  }
  assert.match(gw.output(), /shutdown: \d connections? not closed after 10 s: reset/);
});

/** A masked client close frame with a code. */
function clientClose(code) {
  const key = Buffer.from([9, 8, 7, 6]);
  const body = Buffer.alloc(2);
  body.writeUInt16BE(code, 0);
  return Buffer.concat([Buffer.from([0x88, 0x82]), key, Buffer.from(body.map((b, i) => b ^ key[i & 3]))]);
}

// The client closes (1000) right after the posts to it were answered 200,
// without reading them first: libwebsockets echoes a close at once, and the
// posts still queued then used to be freed with the connection (0.2-3 % of
// them). The gateway sends what it acknowledged first, then the echo.
// Odd rounds: the client reads all along. Even rounds: it reads nothing
// until its close is sent, so the kernel's buffers are full and
// libwebsockets holds part of a frame when the close arrives.
test('item 11: posts answered 200 just before the client\'s close(1000) reach it before the close echo', { timeout: 60000 }, async () => {
  // 2 MB: more than the kernel's buffers take (about 0.75 MB here).
  const N = 200;
  const body = (i) => `${String(i).padStart(4, '0')}:${'p'.repeat(10 * 1024)}`;
  const { backend, gw } = await startPairWith({ outboundBufferBytes: 8 << 20 });
  for (let round = 0; round < 10; round++) {
    const tag = `peerclose-${process.pid}-${++seq}`;
    const sock = await rawConnect(gw.port);
    sock.write(upgradeRequest('/', { 'X-Test-Client': tag }));
    await waitUntil(() => sock.received.includes('\r\n\r\n'), 5000, 'the 101');
    const ev = await backend.waitFor((e) => e.requestContext?.eventType === 'CONNECT'
      && header(e.headers, 'X-Test-Client') === tag, 5000, `the CONNECT of ${tag}`);
    const id = ev.requestContext.connectionId;
    if (round % 2 === 0) sock.pause();
    const answers = await Promise.all(Array.from({ length: N }, (_, i) => postTo(gw, id, body(i))));
    for (const r of answers) assert.equal(r.status, 200, r.text);
    sock.write(clientClose(1000));
    if (process.env.DBG) console.log(round, serverSide(gw.port, sock.localPort));
    sock.resume();
    await withTimeout(sock.closedPromise, 10000, 'the TCP close');
    const frames = serverFrames(sock.received);
    const close = frames.findIndex((f) => f.opcode === 8);
    assert.ok(close >= 0, `round ${round}: no close frame`);
    assert.equal(frames[close].payload.readUInt16BE(0), 1000, `round ${round}: close code`);
    assert.equal(close, frames.length - 1, `round ${round}: frames after the close`);
    const got = new Set(frames.slice(0, close).map((f) => f.payload.toString('latin1')));
    const lost = Array.from({ length: N }, (_, i) => i).filter((i) => !got.has(body(i)));
    assert.deepEqual(lost, [], `round ${round}: ${lost.length} of ${N} acknowledged posts lost`);
    await backend.waitForEvent('DISCONNECT', id, 5000);
    await sleep(200);
    const d = disconnects(backend, id);
    assert.equal(d.length, 1, '$disconnect count');
    assert.equal(d[0].requestContext.disconnectStatusCode, 1000);
    assert.equal((await postTo(gw, id, 'late')).status, 410);
  }
});
