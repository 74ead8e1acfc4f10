// Hardening of the TLS listener (issue 9): the relay between the client's
// TLS socket and libwebsockets' plaintext socket must survive clients that
// vanish at any moment, never leak a descriptor, and TLS 1.2 offers only
// forward-secret AEAD suites.
import { execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import {
  assert, test, startPair, connect, nextMessage, echoHandler, upgradeRequest, sleep, waitUntil,
  withTimeout,
} from './helpers.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgate-htls-'));
const cert = path.join(dir, 'cert.pem');
const key = path.join(dir, 'key.pem');
execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost',
  '-keyout', key, '-out', cert, '-days', '2'], { stdio: 'ignore' });
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

const tlsArgs = { args: ['--tls-cert', cert, '--tls-key', key] };
const insecure = { rejectUnauthorized: false };

/** A masked close frame (1000) as a client sends it. */
const CLOSE_FRAME = Buffer.from([0x88, 0x82, 0x11, 0x22, 0x33, 0x44, 0x03 ^ 0x11, 0xe8 ^ 0x22]);

/**
 * Opens TCP then TLS to the gateway; resolves { tcp, tls } once the TLS
 * handshake is done. Errors are swallowed: these clients misbehave on purpose.
 */
function tlsOpen(port) {
  return withTimeout(new Promise((resolve, reject) => {
    const tcp = net.connect(port, '127.0.0.1');
    tcp.on('error', () => {});
    tcp.once('connect', () => {
      const t = tls.connect({ socket: tcp, ...insecure, servername: 'localhost' });
      t.on('error', () => {});
      t.once('secureConnect', () => resolve({ tcp, tls: t }));
      t.once('close', () => reject(new Error('TLS closed before the handshake')));
    });
    tcp.once('error', reject);
  }), 5000, 'a TLS handshake');
}

/** Upgrades over TLS; resolves once the 101 head has arrived. */
async function wssUpgrade(port) {
  const c = await tlsOpen(port);
  let got = Buffer.alloc(0);
  await withTimeout(new Promise((resolve, reject) => {
    c.tls.on('data', (d) => {
      got = Buffer.concat([got, d]);
      if (got.includes('\r\n\r\n')) {
        if (got.subarray(0, 12).toString() === 'HTTP/1.1 101') resolve();
        else reject(new Error(`upgrade answered ${got.toString().split('\r\n')[0]}`));
      }
    });
    c.tls.write(upgradeRequest('/'));
  }), 5000, 'the 101');
  return c;
}

/** Busy-waits: timers cannot wait a few microseconds. */
function spinMicros(us) {
  const end = process.hrtime.bigint() + BigInt(us) * 1000n;
  while (process.hrtime.bigint() < end) { /* spin */ }
}

/**
 * The gateway's open descriptors, leaving out its keep-alive connections
 * to the backend at backendPort (a pool that shrinks on its own schedule).
 */
function fdCount(pid, backendPort = 0) {
  const pool = new Set();
  const hexPort = `:${backendPort.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const line of fs.readFileSync(`/proc/${pid}/net/tcp`, 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 9 && f[2].endsWith(hexPort)) pool.add(`socket:[${f[9]}]`);
  }
  let n = 0;
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (!pool.has(fs.readlinkSync(`/proc/${pid}/fd/${fd}`))) n++;
    } catch { /* closed meanwhile */ }
  }
  return n;
}

/** Runs n tasks, `width` at a time; resolves the settled results. */
async function inBatches(n, width, task) {
  const results = [];
  for (let i = 0; i < n; i += width) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + width); j++) batch.push(task(j));
    results.push(...await Promise.allSettled(batch));
  }
  return results;
}

test('item 1b: wss clients that send a close frame and drop TCP do not crash the relay', { timeout: 50000 }, async () => {
  const { gw } = await startPair(echoHandler, {}, tlsArgs);
  const results = await inBatches(300, 30, async (i) => {
    const c = await wssUpgrade(gw.port);
    // The reset must come after the relay handed the close frame over and
    // before it read libwebsockets' answer, so that both relay sockets are
    // ready in one epoll batch: a spread of delays of a few tens of
    // microseconds finds that window.
    c.tls.write(CLOSE_FRAME);
    spinMicros((i % 8) * 15);
    c.tcp.resetAndDestroy();
  });
  const failed = results.filter((r) => r.status === 'rejected');
  assert.ok(gw.exitInfo === null, `the gateway died: ${JSON.stringify(gw.exitInfo)}`);
  assert.ok(failed.length < 30, `${failed.length} upgrades failed: ${failed[0]?.reason?.message}`);
  const ws = await connect(`wss://127.0.0.1:${gw.port}/`, insecure);
  ws.send('still here');
  assert.equal((await nextMessage(ws)).data, 'still here');
});

/**
 * The client's TLS engine writes through this stream, which can hold its
 * records back: a request and the close_notify after it then reach the
 * gateway in one segment, so the gateway reads the request head and finds
 * the client already gone when it starts the relay.
 */
class HoldingPipe extends Duplex {
  constructor(tcp) {
    super();
    this.tcp = tcp;
    this.held = null;
    tcp.on('data', (d) => this.push(d));
    tcp.on('end', () => this.push(null));
    tcp.on('close', () => this.destroy());
  }

  _read() {}

  _write(chunk, enc, cb) {
    if (this.held) this.held.push(chunk);
    else this.tcp.write(chunk);
    cb();
  }

  hold() { this.held = []; }

  release() {
    const all = Buffer.concat(this.held);
    this.held = null;
    this.tcp.write(all);
  }
}

async function requestThenCloseNotify(port, request) {
  const tcp = net.connect(port, '127.0.0.1');
  tcp.on('error', () => {});
  await withTimeout(new Promise((r, j) => { tcp.once('connect', r); tcp.once('error', j); }), 5000, 'TCP connect');
  const pipe = new HoldingPipe(tcp);
  const t = tls.connect({ socket: pipe, ...insecure, servername: 'localhost' });
  t.on('error', () => {});
  await withTimeout(new Promise((r, j) => { t.once('secureConnect', r); t.once('close', () => j(new Error('closed'))); }),
    5000, 'a TLS handshake');
  pipe.hold();
  t.end(request);
  await new Promise((r) => setImmediate(r));
  await sleep(5);
  pipe.release();
  t.resume();
  await Promise.race([new Promise((r) => tcp.once('close', r)), sleep(3000)]);
  tcp.destroy();
}

test('item 3: TLS requests closed at once leak no descriptor', { timeout: 50000 }, async () => {
  const { gw, backend } = await startPair(echoHandler, {}, tlsArgs);
  const pid = gw.proc.pid;
  // Warm up (backend pool, lazily created vhosts), then take the baseline.
  const warm = await connect(`wss://127.0.0.1:${gw.port}/`, insecure);
  warm.terminate();
  await sleep(300);
  const baseline = fdCount(pid, backend.port);
  // Plain HTTPS requests and upgrades, each with the client's close_notify
  // right behind: the relay starts on a client that is already gone.
  await inBatches(200, 50, (i) => requestThenCloseNotify(gw.port,
    i % 2 ? 'GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n' : upgradeRequest('/')));
  const settled = await waitUntil(() => fdCount(pid, backend.port) <= baseline + 4, 5000, 'the fd count to return to baseline')
    .then(() => true, () => false);
  assert.ok(settled, `fds: baseline ${baseline}, now ${fdCount(pid, backend.port)}`);
  const ws = await connect(`wss://127.0.0.1:${gw.port}/`, insecure);
  ws.send('ok');
  assert.equal((await nextMessage(ws)).data, 'ok');
});

/** Runs openssl s_client; resolves { ok, out }. */
function sClient(port, args) {
  return new Promise((resolve) => {
    const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', ...args],
      { timeout: 10000 }, (err, stdout, stderr) => resolve({ ok: !err, out: stdout + stderr }));
    child.stdin.end('Q\n');
  });
}

test('item 29: TLS 1.2 offers only ECDHE with AEAD, renegotiation is refused; TLS 1.3 works', async () => {
  const { gw } = await startPair(echoHandler, {}, tlsArgs);
  for (const weak of ['AES128-SHA', 'AES256-GCM-SHA384', 'ECDHE-RSA-AES128-SHA', 'DHE-RSA-AES128-GCM-SHA256']) {
    const r = await sClient(gw.port, ['-tls1_2', '-cipher', weak]);
    assert.equal(r.ok, false, `${weak} on TLS 1.2 was accepted:\n${r.out.slice(-800)}`);
  }
  for (const good of ['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-CHACHA20-POLY1305']) {
    const r = await sClient(gw.port, ['-tls1_2', '-cipher', good]);
    assert.ok(r.ok && r.out.includes(`Cipher is ${good}`), `${good} on TLS 1.2 failed:\n${r.out.slice(-800)}`);
  }
  const r13 = await sClient(gw.port, ['-tls1_3']);
  assert.ok(r13.ok && /TLSv1\.3/.test(r13.out), `TLS 1.3 failed:\n${r13.out.slice(-800)}`);
  // A client asking to renegotiate is refused (OpenSSL 3 already refuses
  // client-initiated renegotiation; the option keeps it so).
  const reneg = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${gw.port}`, '-servername', 'localhost', '-tls1_2']);
  let out = '';
  reneg.stdout.on('data', (d) => { out += d; });
  reneg.stderr.on('data', (d) => { out += d; });
  await waitUntil(() => out.includes('Verify return code'), 5000, 's_client to connect');
  reneg.stdin.write('R\n');
  await waitUntil(() => /no renegotiation|closed|errno/.test(out), 5000, 'the renegotiation to fail').catch(() => {});
  reneg.kill();
  assert.match(out, /no renegotiation/, out.slice(-600));
  const ws = await connect(`wss://127.0.0.1:${gw.port}/`, insecure);
  ws.send('after s_client');
  assert.equal((await nextMessage(ws)).data, 'after s_client');
});
