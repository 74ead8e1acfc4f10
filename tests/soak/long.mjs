// The long run of the reliability scenarios (issue 11): scripts/soak.sh
// runs it. For --minutes M (default 30):
//  - one gateway lives the whole run: churn rounds (clients connect, send
//    frames, receive management posts, close(1000)) go on against it, while
//    long-lived clients stay connected and send a frame every 30 s; its RSS,
//    descriptors and LMDB data file are sampled every 10 s;
//  - every ~5 minutes the churn pauses for one run each of kill -9 +
//    restart, SIGTERM with a slow backend, and killed registry readers, each
//    on a gateway of its own (they stop it, or fill its data file);
// then prints the books as Markdown tables (for docs/reliability.md).
// Bounded by time; loopback only.
//
//   node tests/soak/long.mjs [--minutes M] [--json FILE]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WSGATE_BIN, rssKiB } from '../e2e/helpers.mjs';
import {
  startRecorder, startSoakGateway, tempDataDir, startSampler, fdCount, dataFileBytes, churnRound, churnLosses,
  killRestart, killDuringReplay, sigtermSlow, killedReaderScenario, disconnectBooks, settle, openClients, sleep,
  startProgress,
} from './lib.mjs';

const argv = process.argv.slice(2);
const opt = (name, dflt) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : dflt; };
const MINUTES = Number(opt('--minutes', 30));
const JSON_OUT = opt('--json', null);
const CYCLE_MS = Number(opt('--cycle-minutes', 5)) * 60000;
const SCENARIO_BUDGET_MS = Number(opt('--scenario-budget', 150)) * 1000; // what one set of b, c and d may take
const HELD = 100;

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
function commit() {
  try {
    const head = execFileSync('git', ['-C', ROOT, 'log', '-1', '--format=%h %s'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim();
    return dirty ? `${head} (with local changes)` : head;
  } catch { return 'unknown'; }
}

// Stopped from outside (Ctrl-C, timeout): exit so that helpers.mjs kills
// the gateways it started.
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

const COMMIT = commit(); // the code measured (a commit during the run is not)
const t0 = Date.now();
const deadline = t0 + MINUTES * 60000;
const mmss = (s) => `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
const clock = () => mmss(Math.round((Date.now() - t0) / 1000));
const say = (...a) => { progress?.clear(); console.log(`[${clock()}]`, ...a); };

const churnTotals = {
  rounds: 0, clients: 0, errors: 0, sent: 0, arrived: 0, lostFrames: 0, dupFrames: 0, reordered: 0,
  acked: 0, delivered: 0, postsLost: 0, pairs: 0, missing: 0, duplicate: 0, redelivered: 0, afterDisc: 0, repeatedConnect: 0,
  postStatus: {}, closeCodes: {}, lost: 0,
};
function addChurn(r) {
  churnTotals.rounds++;
  for (const k of Object.keys(churnTotals)) if (typeof r[k] === 'number' && k !== 'rounds') churnTotals[k] += r[k];
  for (const [k, v] of Object.entries(r.postStatus)) churnTotals.postStatus[k] = (churnTotals.postStatus[k] ?? 0) + v;
  for (const [k, v] of Object.entries(r.closeCodes)) churnTotals.closeCodes[k] = (churnTotals.closeCodes[k] ?? 0) + v;
  churnTotals.lost += churnLosses(r);
}
const kills = []; const replays = []; const terms = []; const readers = [];

// On a terminal (never in CI): scenario, elapsed/total, connections, messages
// and losses so far, on stderr; the books on stdout are unchanged.
let scenario = 'starting';
let heldSent = 0;
const sumLost = (list) => list.reduce((a, r) => a + (r.lost ?? 0), 0);
const progress = startProgress(() => {
  const secs = (Date.now() - t0) / 1000;
  const msgs = churnTotals.sent + churnTotals.delivered + heldSent;
  const conns = churnTotals.clients + HELD + [...kills, ...replays, ...terms].reduce((a, r) => a + (r.opened ?? 0), 0);
  const lost = churnTotals.lost + sumLost(kills) + sumLost(replays) + sumLost(terms);
  return `soak ${scenario}: ${clock()} / ${mmss(Math.round(MINUTES * 60))}, ${conns} connections, ${msgs} messages `
    + `(${(msgs / Math.max(secs, 1)).toFixed(0)}/s), ${lost} lost`;
});

// --- the long-lived gateway -------------------------------------------------
const rec = await startRecorder();
const dataDir = tempDataDir();
const gw = await startSoakGateway(rec, dataDir, {});
say(`wsgate ${WSGATE_BIN} (pid ${gw.proc.pid}), commit ${COMMIT}, ${MINUTES} minutes`);
const series = [];
const sample = () => {
  if (gw.exitInfo) return;
  series.push({
    t: Math.round((Date.now() - t0) / 1000), rss: rssKiB(gw.proc.pid), fds: fdCount(gw.proc.pid),
    data: dataFileBytes(dataDir), connections: churnTotals.clients + HELD,
  });
};
sample();
const sampler = setInterval(sample, 10000);

// Long-lived clients: a frame every 30 s each, numbered like the churn's.
scenario = 'opening long-lived clients';
const held = await openClients(gw, rec, 'held', HELD, 25);
const heldSeq = new Map(held.clients.map((c) => [c, 0]));
const heldTimer = setInterval(() => {
  for (const c of held.clients) {
    if (c.ws.readyState !== 1) continue;
    c.ws.send(String(heldSeq.get(c)));
    heldSeq.set(c, heldSeq.get(c) + 1);
    heldSent++;
  }
}, 30000);

let lastProgress = Date.now();
let round = 0;
let nextScenarios = Date.now() + CYCLE_MS;
process.env.SOAK_QUIET = '1';
while (Date.now() < deadline) {
  if (Date.now() >= nextScenarios && deadline - Date.now() > SCENARIO_BUDGET_MS) {
    delete process.env.SOAK_QUIET;
    say('--- scenarios on gateways of their own ---');
    scenario = 'kill -9 + restart';
    kills.push(await killRestart({ n: 500 }));
    scenario = 'kill -9 during the replay';
    replays.push(await killDuringReplay({ n: 300, slowMs: 20 }));
    scenario = 'SIGTERM, slow backend';
    terms.push(await sigtermSlow({ n: 200, slowMs: 200 }));
    scenario = 'killed registry readers';
    readers.push(await killedReaderScenario({ idle: 600, churnConns: 2000, readers: 40 }));
    process.env.SOAK_QUIET = '1';
    nextScenarios = Date.now() + CYCLE_MS;
    continue;
  }
  scenario = `churn round ${round + 1}`;
  const r = await churnRound(gw, rec, { prefix: `r${round++}`, clients: 200, width: 50, frames: 20, posts: 5 });
  addChurn(r);
  if (churnLosses(r) - r.postsLost) {
    say(`churn round ${round}: ${r.lostFrames} frames lost, ${r.dupFrames} duplicated, ${r.missing} $disconnect missing, `
      + `${r.duplicate} repeated, ${r.postsLost} of ${r.acked} posts lost, ${r.errors} failed connects (${r.errorKinds})`);
  }
  if (Date.now() - lastProgress > 60000) {
    lastProgress = Date.now();
    const s = series[series.length - 1];
    say(`churn: ${churnTotals.clients} connections, ${churnTotals.sent} frames (${churnTotals.lostFrames} lost), `
      + `${churnTotals.acked} posts answered 200 (${churnTotals.postsLost} not delivered), ${churnTotals.missing} $disconnect missing; RSS ${s.rss} KiB, fds ${s.fds}, data.mdb ${(s.data / 1048576).toFixed(1)} MiB`);
  }
  await sleep(200);
}

// --- wind down --------------------------------------------------------------
progress.stop();
clearInterval(heldTimer);
sample();
for (const c of held.clients) c.ws.close(1000);
const heldIds = held.clients.map((c) => c.id);
await settle(rec, () => held.clients.every((c) => {
  const k = rec.conns.get(c.id);
  return k && k.disc.length >= 1 && k.count >= heldSeq.get(c);
}), { capMs: 20000 });
const heldBooks = disconnectBooks(rec, heldIds);
let heldArrived = 0; let heldLost = 0;
for (const c of held.clients) {
  const k = rec.conns.get(c.id);
  heldArrived += k ? k.count : 0;
  heldLost += k ? k.gaps + (heldSeq.get(c) - k.next) + k.dups : heldSeq.get(c);
}
clearInterval(sampler);
sample();
await gw.stop('SIGTERM', { timeoutMs: 30000 });
gw.removeTemp();
await rec.close();
fs.rmSync(dataDir, { recursive: true, force: true });
const elapsedMin = ((Date.now() - t0) / 60000).toFixed(1);

// --- the tables -------------------------------------------------------------
const sum = (list, f) => list.reduce((a, r) => a + f(r), 0);
const c = churnTotals;
const lines = [];
const out = (s = '') => lines.push(s);
out(`Soak run: ${elapsedMin} minutes, commit ${COMMIT}, ${process.env.SOAK_BIN_LABEL ?? path.relative(ROOT, WSGATE_BIN)} with 2 event loops, on ${new Date(t0).toISOString()}.`);
out();
out('| Scenario | Runs | Connections | Messages sent / arrived | $connect/$disconnect pairs | Posts 200 / delivered | Lost |');
out('|---|---|---|---|---|---|---|');
out(`| churn with closes-after-send (200 clients a round, 20 frames and 5 posts each) | ${c.rounds} | ${c.clients} (${c.errors} failed) `
  + `| ${c.sent} / ${c.arrived} (${c.lostFrames} lost, ${c.dupFrames} repeated, ${c.reordered} out of order) `
  + `| ${c.pairs} (${c.missing} missing, ${c.duplicate} repeated, ${c.redelivered} sent again, ${c.afterDisc} messages after it) `
  + `| ${c.acked} / ${c.delivered} (${c.postsLost} lost${Object.keys(c.postStatus).length ? `; other answers ${JSON.stringify(c.postStatus)}` : ''}) | ${c.lost} |`);
out(`| long-lived connections (a frame every 30 s, the whole run) | 1 | ${held.clients.length} (${held.errors.length} failed) `
  + `| ${heldSent} / ${heldArrived} | ${heldBooks.pairs} (${heldBooks.missing} missing, ${heldBooks.duplicate} repeated) | - | ${heldLost + heldBooks.missing + heldBooks.duplicate + heldBooks.redelivered} |`);
if (kills.length) {
  out(`| kill -9 + restart on the same data | ${kills.length} | ${sum(kills, (r) => r.opened)} `
    + `| - | ${sum(kills, (r) => r.afterRestart.pairs)} (${sum(kills, (r) => r.afterRestart.missing)} missing, ${sum(kills, (r) => r.afterRestart.duplicate)} repeated, ${sum(kills, (r) => r.afterRestart.redelivered)} sent again with the same requestId) | - | ${sum(kills, (r) => r.lost)} |`);
}
if (replays.length) {
  out(`| kill -9, restart, kill -9 again during the replay (after a third), restart | ${replays.length} | ${sum(replays, (r) => r.opened)} `
    + `| - | ${sum(replays, (r) => r.afterRestart.pairs)} (${sum(replays, (r) => r.afterRestart.missing)} missing, ${sum(replays, (r) => r.afterRestart.duplicate)} repeated, ${sum(replays, (r) => r.afterRestart.redelivered)} sent again with the same requestId) | - | ${sum(replays, (r) => r.lost)} |`);
}
if (terms.length) {
  out(`| SIGTERM, backend answering $disconnect one at a time (200 ms), then restart | ${terms.length} | ${sum(terms, (r) => r.opened)} `
    + `| - | ${sum(terms, (r) => r.afterRestart.pairs)} (${sum(terms, (r) => r.beforeRestart.pairs)} before the exit; ${sum(terms, (r) => r.afterRestart.missing)} missing, ${sum(terms, (r) => r.afterRestart.duplicate)} repeated, ${sum(terms, (r) => r.afterRestart.redelivered)} sent again with the same requestId) | - | ${sum(terms, (r) => r.lost)} |`);
}
if (readers.length) {
  const maxGrowth = Math.max(...readers.map((r) => r.growth));
  out(`| killed registry readers (600 held, 2,000 churned, \`--connections \\| head -1\`) | ${readers.length} | ${sum(readers, (r) => r.books.connections)} (${sum(readers, (r) => r.refused)} refused) `
    + `| - | ${sum(readers, (r) => r.books.pairs)} (${sum(readers, (r) => r.books.missing)} missing, ${sum(readers, (r) => r.books.duplicate + r.books.redelivered)} repeated) `
    + `| - | data.mdb +${(maxGrowth / 1048576).toFixed(1)} MiB at most (${readers.filter((r) => r.overBound).length} runs over +${readers[0].boundBytes >> 20} MiB); ${sum(readers, (r) => r.readers)} readers, ${sum(readers, (r) => r.sigpipe)} died of SIGPIPE |`);
}
out();
out('The long-lived gateway over time (sampled every 10 s; shown every ~2 minutes):');
out();
out('| Time | Connections so far | RSS (MiB) | Descriptors | data.mdb allocated (MiB) |');
out('|---|---|---|---|---|');
let lastShown = -Infinity;
series.forEach((s, i) => {
  if (s.t - lastShown < 115 && (i !== series.length - 1 || s.t === lastShown)) return;
  lastShown = s.t;
  out(`| ${String(Math.floor(s.t / 60)).padStart(2, '0')}:${String(s.t % 60).padStart(2, '0')} | ${s.connections} | ${(s.rss / 1024).toFixed(1)} | ${s.fds} | ${(s.data / 1048576).toFixed(1)} |`);
});
const rssAll = series.map((s) => s.rss); const fdAll = series.map((s) => s.fds);
out();
out(`RSS min ${(Math.min(...rssAll) / 1024).toFixed(1)} MiB, max ${(Math.max(...rssAll) / 1024).toFixed(1)} MiB; descriptors min ${Math.min(...fdAll)}, max ${Math.max(...fdAll)}.`);
if (kills.length || terms.length) {
  out();
  out('Runs of the stop-and-restart scenarios ($disconnect per connection, before the exit / after the restart):');
  out();
  for (const r of kills) out(`- kill -9: ${r.opened} open; ${r.beforeRestart.pairs} / ${r.afterRestart.pairs} got it, ${r.afterRestart.missing} never; reasons: ${JSON.stringify(r.afterRestart.reasons)}`);
  for (const r of replays) out(`- kill -9 during the replay: ${r.opened} open; ${r.atSecondKill.pairs + r.atSecondKill.redelivered} had it at the second kill; ${r.afterRestart.pairs} exactly once in the end, ${r.afterRestart.missing} never, ${r.afterRestart.duplicate} two different ones, ${r.afterRestart.redelivered} the same one again`);
  for (const r of terms) out(`- SIGTERM (slow backend): ${r.opened} open, exit after ${(r.exitMs / 1000).toFixed(1)} s; ${r.beforeRestart.pairs} / ${r.afterRestart.pairs} got it, ${r.afterRestart.missing} never, ${r.afterRestart.duplicate} two different ones, ${r.afterRestart.redelivered} the same one again; reasons: ${JSON.stringify(r.afterRestart.reasons)}`);
  for (const r of readers) out(`- killed readers: ${r.readers} run, ${r.sigpipe} died of SIGPIPE; data.mdb ${(r.before / 1048576).toFixed(1)} -> ${(r.after / 1048576).toFixed(1)} MiB (${r.perConnection} bytes per churned connection); ${r.refused} upgrades refused`);
}
console.log(`\n${lines.join('\n')}`);
if (JSON_OUT) {
  fs.writeFileSync(JSON_OUT, JSON.stringify({
    minutes: Number(elapsedMin), commit: COMMIT, churn: churnTotals, held: { sent: heldSent, arrived: heldArrived, lost: heldLost, books: heldBooks },
    kills, replays, terms, readers, series, table: lines.join('\n'),
  }, null, 1));
}
const lost = c.lost + heldLost + heldBooks.missing + heldBooks.duplicate + heldBooks.redelivered + sum(kills, (r) => r.lost) + sum(replays, (r) => r.lost) + sum(terms, (r) => r.lost)
  + readers.filter((r) => r.overBound).length + sum(readers, (r) => r.refused);
process.exitCode = lost ? 1 : 0;
