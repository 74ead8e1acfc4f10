// The reliability scenarios of issue 11 ("Proof, kept as a suite"), each a
// function that runs against the real gateway with real `ws` clients and a
// recording backend, prints what it sent, what arrived and what was lost,
// and resolves its books. ci.test.mjs runs them at CI size and fails on any
// loss; long.mjs (scripts/soak.sh) runs them for minutes and prints a table.
//
//  churn        clients connect, send N frames, receive P management posts,
//               close(1000): every frame reaches the backend in order, then
//               exactly one $disconnect; every post answered 200 reaches its
//               client (issue 11 items 1-2).
//  killRestart  N open connections, kill -9, restart on the same --data:
//               each connection's $disconnect (item 5).
//  sigtermSlow  N open connections, the backend turns slow (one call at a
//               time, 200 ms each), SIGTERM, then a restart on the same
//               --data: each connection's $disconnect (item 6).
//  killedReader `wsgate --connections | head -1` (killed by SIGPIPE) run
//               again and again while connections churn: the LMDB data
//               file stays bounded (item 7).
//
// The gateway launcher, the ws client wrapper and the management client come
// from ../e2e/helpers.mjs, batching from ../fault/lib.mjs. The backend is
// our own: the e2e one keeps every event, which a 30-minute run cannot
// afford; this one keeps counters per connection and checks order as
// events arrive.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {
  startGateway, makeApi, connect, postTo, sleep, rssKiB, WSGATE_BIN,
} from '../e2e/helpers.mjs';
import { inBatches } from '../fault/lib.mjs';

export { sleep };

let activeProgress = null; // erased before each printed line
const log = (...a) => { if (!process.env.SOAK_QUIET) { activeProgress?.clear(); console.log(...a); } };

// ---------------------------------------------------------------------------
// Progress line
// ---------------------------------------------------------------------------

/**
 * The one rule for progress lines (as progress_wanted() in
 * clients/bench/common.h): on a terminal only, never into a pipe, a file or
 * a CI log (CI set to anything but '', '0' or 'false').
 */
export function progressWanted(stream = process.stderr) {
  const ci = process.env.CI;
  if (ci && ci !== '0' && ci !== 'false') return false;
  return Boolean(stream.isTTY);
}

/**
 * Redraws line() as one carriage-return line on stderr every everyMs while
 * progressWanted(); otherwise does nothing. clear() erases the line (before
 * printing something else), stop() ends it.
 */
export function startProgress(line, { everyMs = 250, stream = process.stderr } = {}) {
  if (!progressWanted(stream)) return { clear() {}, stop() {} };
  let shown = false;
  const timer = setInterval(() => { stream.write(`\r${line()}\x1b[K`); shown = true; }, everyMs);
  timer.unref();
  const clear = () => { if (shown) stream.write('\r\x1b[K'); shown = false; };
  activeProgress = { clear, stop() { clearInterval(timer); clear(); activeProgress = null; } };
  return activeProgress;
}

// ---------------------------------------------------------------------------
// Recording backend
// ---------------------------------------------------------------------------

/**
 * An AWS_PROXY backend that approves every $connect and records, per
 * connection ID: the tag the client put in its query, the message bodies
 * (integers 0, 1, 2, ...: counted, with gaps, duplicates and reorders),
 * and each $disconnect (code, reason, whether messages came after it).
 * setSlow(ms) makes it handle $disconnect calls one at a time, `ms` each,
 * as a single-threaded backend would: a call whose connection the gateway
 * gave up on (timed out, exited) before its turn is never processed, so it
 * does not count as delivered.
 */
export async function startRecorder() {
  const conns = new Map();
  const byTag = new Map();
  const stats = { events: 0, connects: 0, messages: 0, disconnects: 0, unknown: 0, abandoned: 0, lastAt: Date.now() };
  const sockets = new Set();
  let slowMs = 0;
  const queue = [];
  let busy = false;

  const answer = (res, obj) => {
    const body = JSON.stringify(obj);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

  function record(ev) {
    const rc = ev.requestContext ?? {};
    const id = rc.connectionId;
    stats.events++;
    stats.lastAt = Date.now();
    if (rc.eventType === 'CONNECT') {
      stats.connects++;
      const tag = ev.queryStringParameters?.tag;
      const c = conns.get(id) ?? { tag, connects: 0, next: 0, count: 0, gaps: 0, dups: 0, disc: [], discIds: [], afterDisc: 0 };
      c.connects++;
      conns.set(id, c);
      if (tag) byTag.set(tag, id);
      return;
    }
    const c = conns.get(id);
    if (!c) { stats.unknown++; return; }
    if (rc.eventType === 'MESSAGE') {
      stats.messages++;
      c.count++;
      if (c.disc.length) c.afterDisc++;
      const k = Number(ev.body);
      if (k === c.next) c.next++;
      else if (k < c.next) c.dups++;
      else { c.gaps += k - c.next; c.next = k + 1; }
    } else if (rc.eventType === 'DISCONNECT') {
      stats.disconnects++;
      c.disc.push(`${rc.disconnectStatusCode} ${rc.disconnectReason}`);
      c.discIds.push(rc.requestId);
    }
  }

  async function drainSlow() {
    if (busy) return;
    busy = true;
    while (queue.length) {
      const { ev, req, res } = queue.shift();
      if (req.socket.destroyed || res.writableEnded) { stats.abandoned++; continue; }
      record(ev);
      await sleep(slowMs);
      if (!req.socket.destroyed) answer(res, { statusCode: 200 });
    }
    busy = false;
  }

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let ev;
      try { ev = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch { ev = {}; }
      if (slowMs && ev.requestContext?.eventType === 'DISCONNECT') {
        queue.push({ ev, req, res });
        drainSlow();
        return;
      }
      record(ev);
      answer(res, { statusCode: 200 });
    });
  });
  server.keepAliveTimeout = 30000;
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  server.on('clientError', (_e, s) => s.destroy());
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return {
    port,
    url: `http://127.0.0.1:${port}/events`,
    conns,
    stats,
    setSlow(ms) { slowMs = ms; },
    idOf: (tag) => byTag.get(tag),
    /** Forgets connections (folded into a round's books already). */
    forget(ids) { for (const id of ids) { const c = conns.get(id); conns.delete(id); if (c?.tag) byTag.delete(c.tag); } },
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    }),
  };
}

// ---------------------------------------------------------------------------
// Gateway, samples, books
// ---------------------------------------------------------------------------

export function soakApi(rec) {
  return makeApi(rec.url, {
    name: 'soak',
    routes: {
      $connect: { integration: 'backend' },
      $disconnect: { integration: 'backend' },
      $default: { integration: 'backend' },
    },
  });
}

export function tempDataDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'wsgate-soak-'));
}

/** The release gateway (2 event loops) on `dataDir`. */
export function startSoakGateway(rec, dataDir, { args = [] } = {}) {
  return startGateway({ routes: soakApi(rec), args: ['--workers', '2', '--log-level', process.env.SOAK_LOG_LEVEL || 'warn', '--data', dataDir, ...args] });
}

export function fdCount(pid) {
  try { return fs.readdirSync(`/proc/${pid}/fd`).length; } catch { return 0; }
}

/** Samples the gateway's RSS (KiB) and descriptor count every `everyMs`. */
export function startSampler(gw, everyMs = 1000) {
  const t0 = Date.now();
  const samples = [];
  const take = () => {
    if (gw.exitInfo) return;
    try { samples.push({ t: Date.now() - t0, rss: rssKiB(gw.proc.pid), fds: fdCount(gw.proc.pid) }); } catch { /* exiting */ }
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    samples,
    take,
    stop() { clearInterval(timer); take(); return summarizeSamples(samples); },
  };
}

export function summarizeSamples(samples) {
  if (!samples.length) return null;
  const rss = samples.map((s) => s.rss);
  const fds = samples.map((s) => s.fds);
  return {
    rssFirst: rss[0], rssMax: Math.max(...rss), rssLast: rss[rss.length - 1],
    fdsFirst: fds[0], fdsMax: Math.max(...fds), fdsLast: fds[fds.length - 1],
  };
}

const fmtSamples = (s) => (s
  ? `RSS ${s.rssFirst} -> max ${s.rssMax} -> ${s.rssLast} KiB; fds ${s.fdsFirst} -> max ${s.fdsMax} -> ${s.fdsLast}`
  : 'no samples');

/**
 * Waits until `done()` or until the backend saw no event for `quietMs`
 * (and at most `capMs`); then, when done, `extraMs` more so that a late
 * duplicate is seen too.
 */
export async function settle(rec, done, { quietMs = 5000, capMs = 30000, extraMs = 500 } = {}) {
  const t0 = Date.now();
  for (;;) {
    if (done()) { await sleep(extraMs); return; }
    if (Date.now() - rec.stats.lastAt > quietMs || Date.now() - t0 > capMs) return;
    await sleep(50);
  }
}

/**
 * $connect/$disconnect books of `ids`: exactly one each, none missing or
 * repeated, no message after it, and the reasons seen. A $disconnect sent
 * again with the same requestId (a retry after a crash: at least once, a
 * backend can tell) is counted apart as `redelivered`; `duplicate` counts
 * connections with two different $disconnect calls.
 */
export function disconnectBooks(rec, ids) {
  const b = { connections: ids.length, pairs: 0, missing: 0, duplicate: 0, redelivered: 0, afterDisc: 0, repeatedConnect: 0, reasons: {} };
  for (const id of ids) {
    const c = rec.conns.get(id);
    const n = c ? c.disc.length : 0;
    const distinct = c ? new Set(c.discIds).size : 0;
    if (n === 0) b.missing++;
    else if (distinct > 1) b.duplicate++;
    else if (n > 1) b.redelivered++;
    else b.pairs++;
    if (c) {
      b.afterDisc += c.afterDisc;
      if (c.connects > 1) b.repeatedConnect++;
      for (const r of c.disc) b.reasons[r] = (b.reasons[r] ?? 0) + 1;
    }
  }
  return b;
}

const fmtReasons = (r) => Object.entries(r).map(([k, v]) => `${v} x "${k}"`).join(', ') || 'none';

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

/** Opens `n` connections (tags prefix-0..n-1), `width` at a time; resolves { clients, errors }. */
export async function openClients(gw, rec, prefix, n, width = 50) {
  const clients = [];
  const errors = await inBatches(n, width, async (i) => {
    const tag = `${prefix}-${i}`;
    const ws = await connect(`${gw.url}/?tag=${tag}`, { timeoutMs: 10000 });
    const id = rec.idOf(tag);
    if (!id) { ws.terminate(); throw new Error('the backend did not see the $connect'); }
    ws.on('close', () => {});
    clients.push({ ws, id, tag });
  });
  return { clients, errors };
}

function errorKinds(errors) {
  const kinds = new Map();
  for (const e of errors) kinds.set(e.message.split('\n')[0], (kinds.get(e.message.split('\n')[0]) ?? 0) + 1);
  return [...kinds].slice(0, 4).map(([m, k]) => `${k} x ${m}`).join('; ');
}

// ---------------------------------------------------------------------------
// (a) churn with closes-after-send
// ---------------------------------------------------------------------------

/**
 * One churn client: connects, sends `frames` frames (0..frames-1) while
 * `posts` management posts go to it, waits for the posts' answers, then
 * close(1000) and waits for the close. Counts into `b`.
 */
async function churnClient(gw, rec, tag, frames, posts, b) {
  const ws = await connect(`${gw.url}/?tag=${tag}`, { timeoutMs: 10000 });
  const id = rec.idOf(tag);
  if (!id) { ws.terminate(); throw new Error('the backend did not see the $connect'); }
  let received = 0;
  ws.on('message', () => { received++; });
  const closed = new Promise((r) => ws.once('close', (code) => r(code)));
  const answers = [];
  for (let k = 0; k < Math.max(frames, posts); k++) {
    if (k < frames) ws.send(String(k));
    if (k < posts) answers.push(postTo(gw, id, `push ${k}`, { timeoutMs: 15000 }).then((r) => r.status, () => 'error'));
  }
  const statuses = await Promise.all(answers);
  ws.close(1000);
  const code = await Promise.race([closed, sleep(15000).then(() => 'timeout')]);
  if (code === 'timeout') ws.terminate();
  const acked = statuses.filter((s) => s === 200).length;
  b.ids.push(id);
  b.sent += frames;
  b.acked += acked;
  b.delivered += Math.min(received, acked);
  b.postsLost += Math.max(0, acked - received);
  for (const s of statuses) if (s !== 200) b.postStatus[s] = (b.postStatus[s] ?? 0) + 1;
  if (code !== 1000) b.closeCodes[code] = (b.closeCodes[code] ?? 0) + 1;
}

/**
 * Runs `clients` churn clients, `width` at a time, on a running gateway.
 * Resolves the round's books (the recorder forgets its connections).
 */
export async function churnRound(gw, rec, { prefix, clients, width = 50, frames = 20, posts = 5, settleMs = 30000 }) {
  const b = { ids: [], sent: 0, acked: 0, delivered: 0, postsLost: 0, postStatus: {}, closeCodes: {} };
  const errors = await inBatches(clients, width, (i) => churnClient(gw, rec, `${prefix}-${i}`, frames, posts, b));
  const complete = () => b.ids.every((id) => {
    const c = rec.conns.get(id);
    return c && c.disc.length >= 1 && c.count >= frames;
  });
  await settle(rec, complete, { capMs: settleMs });
  let arrived = 0; let lostFrames = 0; let reordered = 0; let dupFrames = 0;
  for (const id of b.ids) {
    const c = rec.conns.get(id);
    arrived += c ? c.count : 0;
    lostFrames += c ? c.gaps + (frames - c.next) : frames;
    dupFrames += c ? c.dups : 0;
    reordered += c && (c.gaps || c.dups) ? 1 : 0;
  }
  const books = disconnectBooks(rec, b.ids);
  rec.forget(b.ids);
  return {
    clients, errors: errors.length, errorKinds: errorKinds(errors), sent: b.sent, arrived, lostFrames, dupFrames, reordered,
    acked: b.acked, delivered: b.delivered, postsLost: b.postsLost, postStatus: b.postStatus, closeCodes: b.closeCodes, ...books,
  };
}

export function churnLosses(r) {
  return r.errors + r.lostFrames + r.dupFrames + r.postsLost + r.missing + r.duplicate + r.redelivered + r.afterDisc + r.repeatedConnect;
}

export function printChurn(r, what = 'churn') {
  log(`${what}: ${r.clients} clients (${r.errors} failed to connect${r.errors ? `: ${r.errorKinds}` : ''}), each sent frames then close(1000)`);
  log(`  frames: sent ${r.sent}, arrived ${r.arrived}, lost ${r.lostFrames}, duplicated ${r.dupFrames}, connections out of order ${r.reordered}`);
  log(`  $disconnect: ${r.pairs} exactly once, ${r.missing} missing, ${r.duplicate} repeated, ${r.redelivered} sent again (same requestId), ${r.afterDisc} messages after it; reasons: ${fmtReasons(r.reasons)}`);
  log(`  posts: acknowledged (200) ${r.acked}, delivered ${r.delivered}, lost ${r.postsLost}; other answers ${JSON.stringify(r.postStatus)}; close codes other than 1000 ${JSON.stringify(r.closeCodes)}`);
  log(`  lost in all: ${churnLosses(r)}`);
}

/** (a) as a whole: its own gateway, one round, samples. */
export async function churn({ clients = 100, width = 50, frames = 20, posts = 5 } = {}) {
  const rec = await startRecorder();
  const dataDir = tempDataDir();
  try {
    const gw = await startSoakGateway(rec, dataDir);
    const sampler = startSampler(gw, 500);
    const r = await churnRound(gw, rec, { prefix: 'churn', clients, width, frames, posts });
    r.samples = sampler.stop();
    await gw.stop('SIGTERM', { timeoutMs: 30000 });
    gw.removeTemp();
    printChurn(r);
    log(`  gateway: ${fmtSamples(r.samples)}`);
    return r;
  } finally {
    await rec.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------
// (b) SIGKILL + restart, (c) SIGTERM with a slow backend
// ---------------------------------------------------------------------------

/** Records on disk, read whole (no early exit: that is scenario d). */
export function registryCount(dataDir) {
  return new Promise((resolve) => {
    execFile(WSGATE_BIN, ['--connections', '--data', dataDir], { maxBuffer: 256 << 20 }, (err, stdout) => {
      resolve(err ? -1 : stdout.split('\n').filter(Boolean).length);
    });
  });
}

/**
 * Opens `n` connections, stops the gateway with `signal` (the backend
 * turning slow first when `slowMs`), restarts it on the same --data, and
 * counts each connection's $disconnect before the exit and after the
 * restart.
 */
async function stopAndRestart({ name, n, signal, slowMs = 0, width = 50, restartQuietMs = 5000, restartCapMs = 60000 }) {
  const rec = await startRecorder();
  const dataDir = tempDataDir();
  const r = { scenario: name, connections: n };
  try {
    const gw = await startSoakGateway(rec, dataDir);
    const sampler = startSampler(gw, 500);
    const { clients, errors } = await openClients(gw, rec, name, n, width);
    r.opened = clients.length;
    r.errors = errors.length;
    r.errorKinds = errorKinds(errors);
    r.recordsBefore = await registryCount(dataDir);
    if (slowMs) rec.setSlow(slowMs);
    sampler.take();
    const t0 = Date.now();
    await gw.stop(signal, { timeoutMs: 120000 });
    r.exitMs = Date.now() - t0;
    r.samples = sampler.stop();
    for (const c of clients) c.ws.terminate();
    const ids = clients.map((c) => c.id);
    // What the first run delivered (a slow call in progress as it exited
    // may still land: give it its turn).
    await sleep(slowMs ? slowMs + 100 : 200);
    r.beforeRestart = disconnectBooks(rec, ids);
    r.recordsAtRestart = await registryCount(dataDir);

    const gw2 = await startSoakGateway(rec, dataDir);
    const done = () => ids.every((id) => (rec.conns.get(id)?.disc.length ?? 0) >= 1);
    await settle(rec, done, { quietMs: restartQuietMs, capMs: restartCapMs, extraMs: 1000 });
    r.afterRestart = disconnectBooks(rec, ids);
    r.recordsAfter = await registryCount(dataDir);
    await gw2.stop('SIGTERM', { timeoutMs: 60000 });
    gw.removeTemp();
    gw2.removeTemp();
    r.abandoned = rec.stats.abandoned;
    r.lost = r.afterRestart.missing + r.afterRestart.duplicate + r.errors;
    return r;
  } finally {
    await rec.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

export function printStopRestart(r, what) {
  const b = r.beforeRestart; const a = r.afterRestart;
  log(`${what}: ${r.opened} of ${r.connections} connections open (${r.errors} failed${r.errors ? `: ${r.errorKinds}` : ''}), `
    + `${r.recordsBefore} records on disk; exit after ${r.exitMs} ms`);
  log(`  before the restart: ${b.pairs + b.redelivered} got their $disconnect, ${b.missing} had none, ${b.duplicate} more than one; `
    + `${r.recordsAtRestart} records left on disk`);
  log(`  after the restart:  ${a.pairs} got exactly one $disconnect, ${a.missing} never got one, ${a.duplicate} two different ones, `
    + `${a.redelivered} the same one again (same requestId); `
    + `${r.recordsAfter} records left; reasons: ${fmtReasons(a.reasons)}`);
  if (r.abandoned) log(`  calls the gateway gave up on before the slow backend's turn: ${r.abandoned}`);
  log(`  lost: ${r.lost}; gateway: ${fmtSamples(r.samples)}`);
}

/** (b) kill -9 with `n` open connections, restart on the same data folder. */
export async function killRestart({ n = 200, width = 50 } = {}) {
  const r = await stopAndRestart({ name: 'kill', n, signal: 'SIGKILL', width });
  printStopRestart(r, `kill -9 + restart (${n} connections)`);
  return r;
}

/** (c) SIGTERM while the backend answers $disconnect one at a time. */
export async function sigtermSlow({ n = 100, slowMs = 200, width = 50, restartCapMs } = {}) {
  const r = await stopAndRestart({
    name: 'term', n, signal: 'SIGTERM', slowMs, width,
    restartCapMs: restartCapMs ?? Math.max(30000, n * slowMs * 1.5),
  });
  printStopRestart(r, `SIGTERM with a slow backend (${n} connections, $disconnect answered one at a time, ${slowMs} ms each)`);
  return r;
}

/**
 * (b') item 5's "a second crash does not repeat or skip any": kill -9 with
 * `n` open connections, restart with the backend handling $disconnect one
 * at a time (`slowMs` each), kill -9 again once a third of them arrived (a
 * count, not a time), restart again: each connection's $disconnect exactly
 * once in all.
 */
export async function killDuringReplay({ n = 200, slowMs = 20, width = 50 } = {}) {
  const rec = await startRecorder();
  const dataDir = tempDataDir();
  const r = { scenario: 'kill during replay', connections: n };
  const count = (ids) => ids.filter((id) => (rec.conns.get(id)?.disc.length ?? 0) >= 1).length;
  try {
    const gw = await startSoakGateway(rec, dataDir);
    const { clients, errors } = await openClients(gw, rec, 'replay', n, width);
    r.opened = clients.length;
    r.errors = errors.length;
    r.errorKinds = errorKinds(errors);
    await gw.stop('SIGKILL');
    for (const c of clients) c.ws.terminate();
    const ids = clients.map((c) => c.id);
    rec.setSlow(slowMs);
    const gw2 = await startSoakGateway(rec, dataDir);
    await settle(rec, () => count(ids) >= Math.ceil(ids.length / 3), { quietMs: 5000, capMs: 30000, extraMs: 0 });
    await gw2.stop('SIGKILL');
    await sleep(slowMs + 100);
    r.atSecondKill = disconnectBooks(rec, ids);
    r.recordsAtSecondKill = await registryCount(dataDir);
    const gw3 = await startSoakGateway(rec, dataDir);
    await settle(rec, () => count(ids) >= ids.length, { quietMs: 5000, capMs: 30000 + n * slowMs * 2, extraMs: 1000 });
    r.afterRestart = disconnectBooks(rec, ids);
    r.recordsAfter = await registryCount(dataDir);
    await gw3.stop('SIGTERM', { timeoutMs: 60000 });
    for (const g of [gw, gw2, gw3]) g.removeTemp();
    r.lost = r.afterRestart.missing + r.afterRestart.duplicate + r.errors;
    const a = r.afterRestart;
    log(`kill -9, restart, kill -9 during the replay, restart (${n} connections, $disconnect handled one at a time, ${slowMs} ms each): `
      + `${r.opened} open (${r.errors} failed${r.errors ? `: ${r.errorKinds}` : ''})`);
    log(`  at the second kill: ${r.atSecondKill.pairs + r.atSecondKill.redelivered} had their $disconnect; ${r.recordsAtSecondKill} records on disk`);
    log(`  after the last restart: ${a.pairs} exactly once, ${a.missing} never, ${a.duplicate} two different ones, ${a.redelivered} the same one again (same requestId); ${r.recordsAfter} records left; `
      + `reasons: ${fmtReasons(a.reasons)}; lost: ${r.lost}`);
    return r;
  } finally {
    await rec.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------
// (d) a killed registry reader
// ---------------------------------------------------------------------------

/** Allocated bytes of DATA/data.mdb (LMDB's map is a sparse file). */
export function dataFileBytes(dataDir) {
  try { return fs.statSync(path.join(dataDir, 'data.mdb')).blocks * 512; } catch { return 0; }
}

/**
 * `wsgate --connections --data DIR | head -1`: resolves wsgate's exit
 * status (141 = killed by SIGPIPE).
 */
export function killedReader(dataDir) {
  return new Promise((resolve) => {
    execFile('bash', ['-c', `"$0" --connections --data "$1" | head -1 >/dev/null; exit \${PIPESTATUS[0]}`, WSGATE_BIN, dataDir],
      (err) => resolve(err ? (err.code ?? -1) : 0));
  });
}

/**
 * A reader killed inside its read transaction, whatever wsgate's own
 * listing does: LMDB's mdb_dump writing into a pipe nobody reads blocks
 * (the listing is larger than the pipe), and gets SIGKILL there. Resolves
 * true when it was blocked in the write when killed.
 */
export function stuckReaderKilled(dataDir) {
  // `sleep` never reads: mdb_dump fills the pipe and blocks in write(2)
  // inside its read transaction; wchan says so before the SIGKILL.
  const script = 'mdb_dump -a "$0" > >(sleep 3 >/dev/null 2>&1) 2>/dev/null & pid=$!; b=0; '
    + 'for i in $(seq 100); do grep -q pipe_w /proc/$pid/wchan 2>/dev/null && { b=1; break; }; sleep 0.02; done; '
    + 'kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null; echo $b';
  return new Promise((resolve) => {
    execFile('bash', ['-c', script, dataDir], (err, stdout) => resolve(!err && stdout.trim() === '1'));
  });
}

/**
 * While `churnFn()` runs, runs readers every `everyMs` (at most `max`):
 * `wsgate --connections | head -1` and, every other time (at most
 * `maxStuck`), mdb_dump killed inside its transaction: a dead reader may
 * cost the pages written until the gateway finds it (a grow step), so the
 * bound on the data file holds for a few of them, not for any number. Resolves { readers, sigpipe, statuses, killedInTxn }.
 */
export async function readersDuring(dataDir, churnFn, { everyMs = 300, max = 40, maxStuck = 4 } = {}) {
  const r = { readers: 0, sigpipe: 0, statuses: {}, stuck: 0, killedInTxn: 0 };
  let stop = false;
  const loop = (async () => {
    while (!stop && r.readers < max) {
      const s = await killedReader(dataDir);
      r.readers++;
      if (s === 141) r.sigpipe++;
      else r.statuses[s] = (r.statuses[s] ?? 0) + 1;
      if (r.readers % 2 === 0 && r.stuck < maxStuck) { r.stuck++; if (await stuckReaderKilled(dataDir)) r.killedInTxn++; }
      await sleep(everyMs);
    }
  })();
  try { await churnFn(); } finally { stop = true; await loop; }
  return r;
}

/** Connect-and-close churn (no messages): resolves { connected, refused }. */
export async function plainChurn(gw, rec, prefix, n, width = 50) {
  const out = { connected: 0, refused: 0, ids: [] };
  const errors = await inBatches(n, width, async (i) => {
    const tag = `${prefix}-${i}`;
    const ws = await connect(`${gw.url}/?tag=${tag}`, { timeoutMs: 10000 });
    out.connected++;
    const id = rec.idOf(tag);
    if (id) out.ids.push(id);
    const closed = new Promise((res) => ws.once('close', res));
    ws.close(1000);
    await Promise.race([closed, sleep(10000)]);
  });
  out.refused = errors.length;
  out.errorKinds = errorKinds(errors);
  return out;
}

/**
 * (d): `idle` connections stay open (so that the listing is larger than a
 * pipe and the reader dies writing it), `churnConns` connect and close
 * while readers are killed. The data file may grow by at most `boundBytes`.
 */
export async function killedReaderScenario({ idle = 600, churnConns = 1500, readers = 40, width = 50, boundBytes = 12 << 20 } = {}) {
  const rec = await startRecorder();
  const dataDir = tempDataDir();
  try {
    const gw = await startSoakGateway(rec, dataDir);
    const sampler = startSampler(gw, 500);
    const held = await openClients(gw, rec, 'idle', idle, width);
    // A warm-up churn so the file has its working size before the baseline.
    await plainChurn(gw, rec, 'warm', 200, width);
    const before = dataFileBytes(dataDir);
    let ch;
    const rd = await readersDuring(dataDir, async () => { ch = await plainChurn(gw, rec, 'churn', churnConns, width); },
      { max: readers });
    const after = dataFileBytes(dataDir);
    const probe = await plainChurn(gw, rec, 'probe', 20, 10);
    for (const c of held.clients) c.ws.close(1000);
    const ids = [...held.clients.map((c) => c.id), ...ch.ids, ...probe.ids];
    await settle(rec, () => ids.every((id) => (rec.conns.get(id)?.disc.length ?? 0) >= 1), { capMs: 20000 });
    const books = disconnectBooks(rec, ids);
    const samples = sampler.stop();
    await gw.stop('SIGTERM', { timeoutMs: 30000 });
    gw.removeTemp();
    const r = {
      idle: held.clients.length, idleErrors: held.errors.length, churned: ch.connected, refused: ch.refused + probe.refused,
      errorKinds: ch.errorKinds || probe.errorKinds, ...rd, before, after, growth: after - before, boundBytes,
      perConnection: Math.round((after - before) / Math.max(1, ch.connected)), books, samples,
    };
    r.overBound = r.growth > boundBytes;
    log(`killed registry reader: ${r.idle} idle connections held, ${r.churned} connected and closed `
      + `(${r.refused} refused${r.refused ? `: ${r.errorKinds}` : ''}), ${r.readers} readers run (\`| head -1\`), ${r.sigpipe} killed by SIGPIPE`
      + `${Object.keys(r.statuses).length ? `, other exit statuses ${JSON.stringify(r.statuses)}` : ''}`);
    log(`  mdb_dump killed (SIGKILL) inside its read transaction, blocked on a full pipe: ${r.killedInTxn}`);
    log(`  data.mdb: ${(before / 1048576).toFixed(1)} MiB -> ${(after / 1048576).toFixed(1)} MiB `
      + `(+${(r.growth / 1024).toFixed(0)} KiB, ${r.perConnection} bytes per churned connection; bound +${boundBytes >> 20} MiB)`);
    log(`  $disconnect: ${books.pairs} exactly once, ${books.missing} missing, ${books.duplicate + books.redelivered} repeated; gateway: ${fmtSamples(samples)}`);
    return r;
  } finally {
    await rec.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
