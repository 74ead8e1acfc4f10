// Helpers for the live fault suite: an accounting backend (which $connect
// calls it approved or refused, and how many $disconnect each got), a raw
// backend that breaks its answers mid-way, raw WebSocket / TLS / HTTP
// clients that can reset (RST) at any point, and the checks run after every
// scenario: the gateway still serves, its descriptors and memory are back to
// their baseline, and every approved $connect got exactly one $disconnect.
//
// The gateway launcher, the test wrapper (cleanup, sanitizer reports) and the
// ws client come from ../e2e/helpers.mjs.
import { execFileSync } from 'node:child_process';
import { after } from 'node:test';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { Duplex } from 'node:stream';
import {
  test, assert, startGateway, connect, nextMessage, postTo, waitClose, sleep, withTimeout, rssKiB,
} from '../e2e/helpers.mjs';

export { assert, sleep };

// ---------------------------------------------------------------------------
// Budget: counts of each race (the whole suite must stay within ~4 minutes
// against the ASan build on a 2-core machine). FAULT_SCALE multiplies them
// for longer runs by hand, e.g. FAULT_SCALE=10.
// ---------------------------------------------------------------------------

export const SCALE = Number(process.env.FAULT_SCALE || 1);
export const races = (n) => Math.max(1, Math.round(n * SCALE));

/**
 * Runs fn(i) for i in [0, total), `width` at a time (each batch awaited).
 * Resolves the errors thrown, if any (every race runs regardless).
 */
export async function inBatches(total, width, fn) {
  const errors = [];
  for (let base = 0; base < total; base += width) {
    const n = Math.min(width, total - base);
    await Promise.all(Array.from({ length: n }, (_, j) => fn(base + j).catch((e) => { errors.push(e); })));
  }
  return errors;
}

function assertNoErrors(errors, what) {
  if (!errors.length) return;
  const kinds = new Map();
  for (const e of errors) kinds.set(e.message, (kinds.get(e.message) ?? 0) + 1);
  const list = [...kinds].slice(0, 5).map(([m, n]) => `${n} x ${m}`).join('; ');
  throw new Error(`${errors.length} of the ${what} failed: ${list}`);
}

export const jitter = (lo, hi) => lo + Math.floor(Math.random() * (hi - lo + 1));

// ---------------------------------------------------------------------------
// Resources not tracked by helpers.mjs' test wrapper
// ---------------------------------------------------------------------------

const owned = new Set();
const liveSockets = new Set();
function own(closeFn) {
  const entry = { close: closeFn };
  owned.add(entry);
  return () => { owned.delete(entry); return closeFn(); };
}
export async function releaseOwned() {
  for (const s of liveSockets) s.destroy();
  for (const e of [...owned]) {
    owned.delete(e);
    try { await e.close(); } catch { /* already closed */ }
  }
}
after(releaseOwned);

/**
 * helpers.mjs' test(), plus: the backends and raw sockets made here are
 * released at the end. A scenario stops its gateway itself (gw.stop(), which
 * fails on a sanitizer report) before its backends go.
 */
export function faultTest(name, opts, fn) {
  if (typeof opts === 'function') { fn = opts; opts = {}; }
  return test(name, opts, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      // helpers.mjs attaches the output's tail, which for a sanitizer
      // report is mostly the shadow legend: put the report's head first.
      for (const gw of gateways.splice(0)) {
        const report = sanitizerReport(gw.output());
        if (report && e instanceof Error) e.message = `${e.message}\n--- sanitizer report (pid ${gw.proc.pid}) ---\n${report}`;
      }
      throw e;
    } finally {
      gateways.length = 0;
      await releaseOwned();
    }
  });
}

// ---------------------------------------------------------------------------
// Accounting backend (AWS_PROXY target)
// ---------------------------------------------------------------------------

function halfResponse(variant) {
  const body = '{"statusCode":200,"body":"this answer never ends"}';
  const full = `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
  // Cut in the status line, in the headers, or in the body.
  const cut = [9, 40, full.length - 10][variant % 3];
  return full.slice(0, cut);
}

/** Writes part of an answer, then resets (odd) or closes (even) the socket. */
function breakAnswer(socket, variant) {
  socket.write(halfResponse(variant), () => {
    if (variant & 1) socket.resetAndDestroy();
    else socket.destroy();
  });
}

/**
 * The backend of every fault scenario. Behaviour is chosen by the client:
 *  $connect: query `mode` = ok (default) | slow | refuse | break | reset, with
 *            `delay` (ms) before acting; `tag` is recorded; `disc` = break |
 *            reset | slow: what the $disconnect of that connection gets.
 *  messages: body `break` / `reset` (answer cut / no answer), `slow:MS`,
 *            anything else is echoed.
 *  REST (payload 2.0): rawPath ending in /slow (300 ms), /break, /reset, or
 *            anything else: 200 with the path.
 * connects: id -> { mode, tag, status (answered) | 'broken' }
 * disconnects: id -> number of $disconnect events
 */
export async function startAccountingBackend() {
  const connects = new Map();
  const disconnects = new Map();
  const stats = { messages: 0, rest: 0, inflight: 0, lastEventAt: Date.now(), breaks: 0 };
  const sockets = new Set();

  const answer = (res, obj) => {
    const body = JSON.stringify(obj);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  const act = async (req, res, how, delay, ok) => {
    if (delay) await sleep(delay);
    if (how === 'break') { breakAnswer(req.socket, stats.breaks++); return 'broken'; }
    if (how === 'reset') { req.socket.resetAndDestroy(); return 'broken'; }
    return ok();
  };

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      stats.inflight++;
      stats.lastEventAt = Date.now();
      try {
        let ev;
        try { ev = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch { ev = {}; }
        const rc = ev.requestContext ?? {};
        const id = rc.connectionId;
        if (rc.eventType === 'CONNECT') {
          const q = ev.queryStringParameters ?? {};
          const mode = q.mode ?? 'ok';
          // A $connect delivered twice (a retried call) is a fault too.
          const calls = (connects.get(id)?.calls ?? 0) + 1;
          const rec = { mode, tag: q.tag, disc: q.disc, status: null, calls };
          connects.set(id, rec);
          const how = mode === 'break' || mode === 'reset' ? mode : 'answer';
          rec.status = await act(req, res, how, Number(q.delay ?? 0), () => {
            const status = mode === 'refuse' ? 403 : 200;
            answer(res, { statusCode: status, body: status === 200 ? '' : 'refused' });
            return status;
          });
        } else if (rc.eventType === 'DISCONNECT') {
          disconnects.set(id, (disconnects.get(id) ?? 0) + 1);
          const how = connects.get(id)?.disc ?? 'answer';
          await act(req, res, how === 'slow' ? 'answer' : how, how === 'slow' ? 200 : 0,
            () => answer(res, { statusCode: 200 }));
        } else if (rc.eventType === 'MESSAGE') {
          stats.messages++;
          const body = ev.body ?? '';
          const how = body === 'break' || body === 'reset' ? body : 'answer';
          const delay = body.startsWith('slow:') ? Number(body.slice(5)) : 0;
          await act(req, res, how, delay, () => answer(res, { statusCode: 200, body }));
        } else if (ev.version === '2.0') {
          stats.rest++;
          const last = (ev.rawPath ?? '').split('/').pop();
          const how = last === 'break' || last === 'reset' ? last : 'answer';
          await act(req, res, how, last === 'slow' ? 300 : 0,
            () => answer(res, { statusCode: 200, body: ev.rawPath }));
        } else {
          answer(res, { statusCode: 200 });
        }
      } finally {
        stats.inflight--;
        stats.lastEventAt = Date.now();
      }
    });
  });
  server.keepAliveTimeout = 30000;
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  server.on('clientError', (_e, s) => s.destroy());
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  const close = own(() => new Promise((resolve) => {
    server.close(() => resolve());
    for (const s of sockets) s.destroy();
  }));
  return {
    port,
    url: `http://127.0.0.1:${port}/events`,
    connects,
    disconnects,
    stats,
    close,
    /** connection IDs whose $connect was answered 2xx. */
    approved() {
      return [...connects].filter(([, r]) => typeof r.status === 'number' && r.status < 300).map(([id]) => id);
    },
    idOfTag(tag) {
      for (const [id, r] of connects) if (r.tag === tag) return id;
      return undefined;
    },
  };
}

/**
 * Checks every $connect against the $disconnect calls: approved ones (2xx)
 * exactly one, refused or broken ones none, and no $disconnect for an
 * unknown ID. $disconnect is sent after the close, so this waits until the
 * books balance or nothing has moved for `quietMs`.
 */
export function accountingProblems(backend, { modes } = {}) {
  const problems = { missing: [], duplicate: [], unexpected: [], unknown: [], pending: [], repeatedConnect: [] };
  for (const [id, r] of backend.connects) {
    if (modes && !modes.includes(r.mode)) continue;
    const n = backend.disconnects.get(id) ?? 0;
    if (r.calls > 1) problems.repeatedConnect.push(`${id} (${r.mode}) x${r.calls}`);
    if (r.status === null) problems.pending.push(id);
    else if (typeof r.status === 'number' && r.status < 300) {
      if (n === 0) problems.missing.push(`${id} (${r.mode}${r.tag ? ` ${r.tag}` : ''})`);
      else if (n > 1) problems.duplicate.push(`${id}${r.disc ? ` (disc=${r.disc})` : ''} x${n}`);
    } else if (n > 0) problems.unexpected.push(`${id} (${r.mode} answered ${r.status}) x${n}`);
  }
  if (!modes) {
    for (const id of backend.disconnects.keys()) if (!backend.connects.has(id)) problems.unknown.push(id);
  }
  return problems;
}

const summarize = (p) => Object.entries(p).filter(([, v]) => v.length)
  .map(([k, v]) => `${k}: ${v.length} (${v.slice(0, 5).join(', ')}${v.length > 5 ? ', …' : ''})`).join('; ');

export async function assertAccounting(backend, { quietMs = 1500, timeoutMs = 15000, modes } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const p = accountingProblems(backend, { modes });
    const bad = summarize(p);
    if (!bad) return;
    const quiet = backend.stats.inflight === 0 && Date.now() - backend.stats.lastEventAt > quietMs;
    if (quiet || Date.now() > deadline) {
      throw new Error(`$connect/$disconnect books do not balance (${backend.connects.size} $connect, `
        + `${backend.approved().length} approved): ${bad}`);
    }
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------
// A raw backend that breaks every answer (for HTTP_PROXY and AWS_PROXY
// routes): it reads a request head, writes part of an answer and closes or
// resets, in turn.
// ---------------------------------------------------------------------------

export async function startBreakingBackend() {
  const sockets = new Set();
  let n = 0;
  const stats = { requests: 0 };
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let head = '';
    s.on('data', (d) => {
      if (head === null) return;
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      head = null;
      stats.requests++;
      const variant = n++;
      if (variant % 4 === 3) s.resetAndDestroy();
      else breakAnswer(s, variant);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  const close = own(() => new Promise((resolve) => {
    server.close(() => resolve());
    for (const s of sockets) s.destroy();
  }));
  return { port, url: `http://127.0.0.1:${port}`, stats, close };
}

// ---------------------------------------------------------------------------
// The API and the gateway
// ---------------------------------------------------------------------------

/**
 * One API on the accounting backend: WebSocket routes, REST routes under
 * /rest/, and (when `breaking` is given) a message route "broken" and REST
 * routes under /proxy/ and /lambda/ that go to the breaking backend.
 */
export function faultApi(backend, { breaking, maxConnections = 16 } = {}) {
  const aws = (uri) => ({ type: 'AWS_PROXY', uri, timeoutMs: 5000, maxConnections });
  const api = {
    name: 'fault',
    stage: 'dev',
    basePath: '/',
    routeSelectionExpression: '$request.body.action',
    limits: { maxMessageBytes: 131072, idleTimeoutSeconds: 600, maxConnectionSeconds: 7200 },
    integrations: { backend: aws(backend.url) },
    routes: {
      $connect: { integration: 'backend' },
      $disconnect: { integration: 'backend' },
      $default: { integration: 'backend', routeResponse: true },
      'ANY /rest/{proxy+}': { integration: 'backend' },
    },
  };
  if (breaking) {
    api.integrations.lambdaBreak = aws(`${breaking.url}/events`);
    api.integrations.proxyBreak = { type: 'HTTP_PROXY', uri: `${breaking.url}/{proxy}`, timeoutMs: 5000, maxConnections };
    api.routes.broken = { integration: 'lambdaBreak', routeResponse: true };
    api.routes['ANY /proxy/{proxy+}'] = { integration: 'proxyBreak' };
    api.routes['ANY /lambda/{proxy+}'] = { integration: 'lambdaBreak' };
  }
  return api;
}

const gateways = [];

/** The first lines of a sanitizer report in `out` (stack frames included). */
export function sanitizerReport(out) {
  const start = out.search(/ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/);
  if (start < 0) return null;
  // Log lines of other threads interleave with the report: leave them out.
  const lines = out.slice(Math.max(0, out.lastIndexOf('\n', start) + 1)).split('\n')
    .filter((l) => !/^\d{4}-\d\d-\d\dT[\d:.]+Z /.test(l));
  const end = lines.findIndex((l) => /^SUMMARY:|Shadow bytes around/.test(l));
  return lines.slice(0, end < 0 ? 60 : Math.min(end + 1, 80)).join('\n');
}

const DEFAULT_ASAN = 'detect_leaks=1:abort_on_error=0';
// ASan keeps freed memory in quarantine (256 MB by default), which would read
// as growth: a small one still catches a use within the same epoll batch.
const QUARANTINE = process.env.FAULT_QUARANTINE ?? 'quarantine_size_mb=4';

/** Starts the gateway for a fault scenario (2 event loops unless told). */
export async function startFaultGateway(api, { workers = 2, args = [], env = {} } = {}) {
  const gw = await startGateway({
    routes: api,
    args: ['--workers', String(workers), ...args],
    env: { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS ?? DEFAULT_ASAN}:${QUARANTINE}`, ...env },
  });
  gateways.push(gw);
  return gw;
}

// ---------------------------------------------------------------------------
// TLS material
// ---------------------------------------------------------------------------

let certs = null;
/** A self-signed certificate (made once per file); returns gateway args. */
export function tlsArgs() {
  if (!certs) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgate-fault-tls-'));
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
      '-nodes', '-subj', '/CN=localhost', '-keyout', key, '-out', cert, '-days', '2'], { stdio: 'ignore' });
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    certs = { cert, key };
  }
  return ['--tls-cert', certs.cert, '--tls-key', certs.key];
}

// ---------------------------------------------------------------------------
// Raw clients
// ---------------------------------------------------------------------------


/**
 * A stream that carries TLS records over `tcp` without handing it its
 * socket: TLS on a net.Socket takes over the socket's handle, and a reset of
 * that socket then leaves a handle open for ever (the process never exits).
 */
function bridge(tcp) {
  const d = new Duplex({
    read() {},
    write(chunk, _enc, cb) {
      if (tcp.destroyed) cb();
      else tcp.write(chunk, () => cb());
    },
    // holdFin: the TLS close_notify goes out without a FIN (libuv cannot
    // reset a socket whose shutdown is under way).
    final(cb) { if (!tcp.holdFin) tcp.end(); cb(); },
  });
  tcp.on('data', (c) => d.push(c));
  tcp.on('end', () => d.push(null));
  tcp.on('close', () => d.destroy());
  d.on('error', () => {});
  return d;
}

/**
 * A TCP connection to the gateway, optionally wrapped in TLS. Resolves
 * { tcp, sock } once connected (and the TLS handshake done, when tls);
 * `tcp` is the plain socket (what resetAndDestroy() works on), `sock` the
 * one to write to.
 */
export function openSocket(port, { tls: useTls = false, timeoutMs = 5000 } = {}) {
  const tcp = net.connect(port, '127.0.0.1');
  liveSockets.add(tcp);
  tcp.on('close', () => liveSockets.delete(tcp));
  tcp.on('error', () => {});
  let closed;
  tcp.gone = new Promise((r) => { closed = r; tcp.once('close', r); });
  const p = new Promise((resolve, reject) => {
    tcp.once('error', reject);
    tcp.once('connect', () => {
      if (!useTls) { resolve({ tcp, sock: tcp }); return; }
      const sock = tls.connect({ socket: bridge(tcp), rejectUnauthorized: false, servername: 'localhost' });
      tcp.peer = sock;
      liveSockets.add(sock);
      sock.once('close', () => { liveSockets.delete(sock); closed(); });
      sock.on('error', () => {});
      sock.once('error', reject);
      sock.once('secureConnect', () => resolve({ tcp, sock }));
    });
  });
  return withTimeout(p, timeoutMs, `a connection to port ${port}`).catch((e) => { tcp.destroy(); throw e; });
}

/** Sends RST (SO_LINGER 0) and forgets the socket. */
export function reset(tcp) {
  if (!tcp.destroyed) {
    try { tcp.resetAndDestroy(); } catch { tcp.destroy(); }
  }
  tcp.peer?.destroy();
}

/** Closes gracefully (FIN) or resets, alternately by i. */
export function hangUp(tcp, i) {
  if (i & 1) reset(tcp);
  else { tcp.destroy(); tcp.peer?.destroy(); }
}

/**
 * Resolves once a socket from openSocket() closed; bounded, so that a client
 * library quirk cannot hang a race (a gateway that keeps the socket open is
 * caught by the descriptor check).
 */
export function closedOf(tcp, ms = 5000) {
  return Promise.race([tcp.gone, sleep(ms)]);
}

export function upgradeHead(urlPath, headers = {}) {
  return [
    `GET ${urlPath} HTTP/1.1`,
    'Host: 127.0.0.1',
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version: 13',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    '', '',
  ].join('\r\n');
}

/** Resolves the HTTP status line's code once a whole response head arrived on sock. */
export function readStatus(sock, timeoutMs = 5000) {
  let buf = '';
  const p = new Promise((resolve, reject) => {
    const onData = (d) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      sock.off('data', onData);
      const m = /^HTTP\/1\.1 (\d{3})/.exec(buf);
      resolve({ status: m ? Number(m[1]) : 0, rest: buf.slice(end + 4) });
    };
    sock.on('data', onData);
    sock.once('close', () => reject(new Error(`closed before a response head (${JSON.stringify(buf.slice(0, 80))})`)));
  });
  return withTimeout(p, timeoutMs, 'a response head');
}

/** A masked client frame. */
export function frame(opcode, payload, { fin = true } = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const mask = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  let head;
  if (data.length < 126) head = Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | data.length]);
  else if (data.length < 65536) {
    head = Buffer.alloc(4);
    head[0] = (fin ? 0x80 : 0) | opcode; head[1] = 0x80 | 126; head.writeUInt16BE(data.length, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = (fin ? 0x80 : 0) | opcode; head[1] = 0x80 | 127; head.writeBigUInt64BE(BigInt(data.length), 2);
  }
  const body = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i++) body[i] = data[i] ^ mask[i & 3];
  return Buffer.concat([head, mask, body]);
}

/** Opens a WebSocket by hand; resolves { tcp, sock, status } after the response head. */
export async function rawUpgrade(port, query, { tls: useTls = false } = {}) {
  const { tcp, sock } = await openSocket(port, { tls: useTls });
  sock.write(upgradeHead(`/?${query}`));
  const { status } = await readStatus(sock);
  return { tcp, sock, status };
}

// ---------------------------------------------------------------------------
// After a scenario: the gateway serves, descriptors and memory are back
// ---------------------------------------------------------------------------

function tcpInodes(pid) {
  const map = new Map();
  for (const f of ['tcp', 'tcp6']) {
    let text;
    try { text = fs.readFileSync(`/proc/${pid}/net/${f}`, 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const c = line.trim().split(/\s+/);
      if (c.length < 10) continue;
      const lport = parseInt(c[1].split(':')[1], 16);
      const rport = parseInt(c[2].split(':')[1], 16);
      map.set(c[9], { lport, rport, state: c[3] });
    }
  }
  return map;
}

/**
 * The gateway's descriptors: total, and those that are TCP connections to a
 * backend (kept alive in a bounded pool), to clients, or anything else.
 */
function unixInodes(pid) {
  const set = new Set();
  try {
    for (const line of fs.readFileSync(`/proc/${pid}/net/unix`, 'utf8').split('\n').slice(1)) {
      const c = line.trim().split(/\s+/);
      if (c.length >= 7) set.add(c[6]);
    }
  } catch { /* no such file */ }
  return set;
}

export function fdReport(gw, backendPorts = []) {
  const pid = gw.proc.pid;
  const inodes = tcpInodes(pid);
  const unix = unixInodes(pid);
  // other counts everything that is not a backend or client connection;
  // unix (socketpairs: the TLS relay) is part of it, shown apart.
  const r = { total: 0, backend: 0, clients: 0, other: 0, unix: 0, closeWait: 0 };
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    let target;
    try { target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { continue; }
    r.total++;
    const m = /^socket:\[(\d+)\]$/.exec(target);
    const t = m && inodes.get(m[1]);
    if (t && t.state === '08') r.closeWait++;
    if (t && backendPorts.includes(t.rport)) r.backend++;
    else if (t && (t.lport === gw.port || t.lport === gw.mgmtPort) && t.state !== '0A') r.clients++;
    else r.other++;
    if (m && unix.has(m[1])) r.unix++;
  }
  return r;
}

/**
 * Baseline of a gateway after warm-up. `pool` is the most backend
 * connections the gateway may keep (maxConnections x loops x backends).
 */
export function baseline(gw, backendPorts, pool) {
  return { fds: fdReport(gw, backendPorts), rss: rssKiB(gw.proc.pid), backendPorts, pool };
}

export const FD_TOLERANCE = 5;
export const RSS_TOLERANCE_KIB = 20 * 1024;

/** Waits (bounded) until descriptors and RSS are back near the baseline. */
export async function assertBackToBaseline(gw, base, { timeoutMs = 8000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let now;
  let rss;
  for (;;) {
    now = fdReport(gw, base.backendPorts);
    rss = rssKiB(gw.proc.pid);
    const fdsOk = now.clients === 0 && now.closeWait === 0
      && now.other <= base.fds.other + FD_TOLERANCE && now.backend <= base.pool;
    if (fdsOk && rss <= base.rss + RSS_TOLERANCE_KIB) return { fds: now, rss };
    if (Date.now() > deadline) break;
    await sleep(200);
  }
  throw new Error(`gateway not back to baseline: fds ${JSON.stringify(now)} vs baseline ${JSON.stringify(base.fds)} `
    + `(tolerance +${FD_TOLERANCE}, backend pool <= ${base.pool}, no client sockets, none in CLOSE_WAIT); `
    + `RSS ${rss} KiB vs ${base.rss} KiB (tolerance +${RSS_TOLERANCE_KIB} KiB)`);
}

let healthSeq = 0;

/**
 * A fresh client connects, a message round trip works, a management POST
 * returns 200 and is delivered, and the client leaves cleanly (its
 * $disconnect arrives).
 */
export async function assertServes(gw, backend, { tls: useTls = false } = {}) {
  const tag = `health-${++healthSeq}`;
  const scheme = useTls ? 'wss' : 'ws';
  const ws = await connect(`${scheme}://127.0.0.1:${gw.port}/?tag=${tag}`, useTls ? { rejectUnauthorized: false } : {});
  ws.send(`round trip ${tag}`);
  assert.equal((await nextMessage(ws)).data, `round trip ${tag}`);
  const id = backend.idOfTag(tag);
  assert.ok(id, 'the health client reached the backend');
  const res = await postTo(gw, id, `push ${tag}`);
  assert.equal(res.status, 200, `management POST to a fresh client: ${res.status} ${res.text}`);
  assert.equal((await nextMessage(ws)).data, `push ${tag}`);
  ws.close(1000);
  await waitClose(ws);
  const t0 = Date.now();
  while (!backend.disconnects.get(id) && Date.now() - t0 < 5000) await sleep(20);
  assert.equal(backend.disconnects.get(id), 1, 'the health client got its $disconnect');
}

/**
 * Runs the whole after-scenario check: serves, back to baseline, books
 * balanced. Order matters: the books are checked once everything settled.
 */
export async function assertRecovered(gw, backend, base, opts = {}) {
  await assertServes(gw, backend, opts);
  await assertBackToBaseline(gw, base);
  if (!opts.skipAccounting) await assertAccounting(backend, opts);
}

/** Plain HTTP request bytes (a whole one, or its head and part of its body). */
export function httpRequest(method, urlPath, body = '', { declared } = {}) {
  const len = declared ?? Buffer.byteLength(body);
  return `${method} ${urlPath} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: ${len}\r\n\r\n${body}`;
}

export { http };

// ---------------------------------------------------------------------------
// One scenario: warm up, baseline, `total` races `width` at a time, recover
// ---------------------------------------------------------------------------

/**
 * Starts the backends and a gateway, runs `width` warm-up races, takes the
 * baseline, runs `total` races, then checks that the gateway serves, is back
 * to its baseline and (unless accounting: false) balanced its books.
 * race(ctx, i) gets ctx = { gw, backend, breaking } and must settle by itself.
 * Resolves ctx; the gateway is stopped (and its exit checked) at the end.
 */
export async function raceScenario({
  race, total, width, tls: useTls = false, workers = 2, breaking: wantBreaking = false,
  accounting = true, accountingModes, maxConnections = 16, stop = true, settleMs = 8000, name = 'scenario',
}) {
  const backend = await startAccountingBackend();
  const breaking = wantBreaking ? await startBreakingBackend() : null;
  const gw = await startFaultGateway(faultApi(backend, { breaking, maxConnections }),
    { workers, args: useTls ? tlsArgs() : [] });
  const ctx = { gw, backend, breaking };
  assertNoErrors(await inBatches(width, width, (i) => race(ctx, -1 - i)), 'warm-up races');
  await sleep(300);
  const ports = breaking ? [backend.port, breaking.port] : [backend.port];
  const base = baseline(gw, ports, maxConnections * workers * ports.length);

  const t0 = Date.now();
  const errors = await inBatches(races(total), width, (i) => race(ctx, i));
  assertNoErrors(errors, `${races(total)} races`);
  ctx.raceMs = Date.now() - t0;
  assert.equal(gw.exitInfo, null, 'the gateway is still running');
  await assertServes(gw, backend, { tls: useTls });
  ctx.after = await assertBackToBaseline(gw, base, { timeoutMs: settleMs });
  console.log(`${name}: ${races(total)} races (${width} at a time) in ${ctx.raceMs} ms; `
    + `fds ${base.fds.total} -> ${ctx.after.fds.total}, RSS ${base.rss} -> ${ctx.after.rss} KiB`);
  if (accounting) await assertAccounting(backend, { modes: accountingModes });
  if (stop) await gw.stop();
  return ctx;
}

/**
 * A race: a client connects, four management POSTs (the last one 64 KB) are
 * sent to it, and it hangs up while they are in flight. Counts the POST
 * answers in `statuses`.
 */
export const pushRace = (statuses, { tls: useTls = false } = {}) => async ({ gw, backend }, i) => {
  const tag = `p${i}`;
  const { tcp, sock, status } = await rawUpgrade(gw.port, `tag=${tag}`, { tls: useTls });
  assert.equal(status, 101);
  sock.on('data', () => {}); // read some, then stop reading at the reset
  let id;
  for (let k = 0; k < 50 && !(id = backend.idOfTag(tag)); k++) await sleep(5);
  assert.ok(id, `the backend saw ${tag}`);
  const closed = closedOf(tcp);
  const posts = [];
  for (let k = 0; k < 4; k++) {
    const size = k === 3 ? 64 * 1024 : 100;
    posts.push(postTo(gw, id, Buffer.alloc(size, 0x61)).then((r) => r.status, (e) => `error: ${e.message}`));
  }
  setTimeout(() => hangUp(tcp, i), jitter(0, 6));
  for (const s of await Promise.all(posts)) statuses.set(s, (statuses.get(s) ?? 0) + 1);
  await closed;
};
