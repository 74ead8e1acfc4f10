// Issue 11 item 7: a registry reader killed inside its read transaction
// (`wsgate --connections | head -1` dying of SIGPIPE, or any LMDB reader
// killed) must not pin LMDB's old pages: freed pages are reused and the data
// file stays bounded while the gateway churns connections.

import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import path from 'node:path';
import {
  test, assert, startBackend, startGateway, makeApi, connect, waitClose,
  runGateway, WSGATE_BIN, waitUntil,
} from './helpers.mjs';

// Long User-Agents make a listing of the open connections larger than a
// pipe (64 KB), so that its writer is still inside the registry when the
// reader of the pipe has gone.
const UA = `churn-test/${'u'.repeat(500)}`;
const HELD = 150;
const CHURN = 2000;
// Pages a churn reuses stay within one or two growth steps (1 MB) of the
// file; a reader pinning old pages made it grow by tens of MB.
const MAX_GROWTH = 4 << 20;

async function startChurnPair() {
  const backend = await startBackend();
  const api = makeApi(backend.url);
  // No $connect / $disconnect calls: the churn costs only the registry.
  api.routes = { $default: { integration: 'backend' } };
  const gw = await startGateway({ routes: api, args: ['--workers', '2'] });
  return { backend, gw };
}

function mdbStat(args) {
  return new Promise((resolve, reject) => {
    const p = spawn('mdb_stat', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.on('error', reject);
    p.on('close', () => resolve(out));
  });
}

/** Bytes LMDB has used in data.mdb (its high-water mark: pages are never given back). */
async function size(gw) {
  const out = await mdbStat(['-e', gw.dataDir]);
  const pages = out.match(/Number of pages used: (\d+)/);
  const psize = out.match(/Page size: (\d+)/);
  assert.ok(pages && psize, out);
  // The file itself is sparse (the map's size); its blocks follow the pages.
  assert.ok(statSync(path.join(gw.dataDir, 'data.mdb')).blocks * 512 >= Number(pages[1]) * Number(psize[1]));
  return Number(pages[1]) * Number(psize[1]);
}

async function holdConnections(gw, n) {
  const held = [];
  for (let i = 0; i < n; i++) held.push(await connect(gw.url, { headers: { 'User-Agent': UA } }));
  return held;
}

/** Opens and closes n connections, 20 at a time; each is in the registry while open. */
async function churn(gw, n) {
  const one = async () => {
    const ws = await connect(gw.url, { headers: { 'User-Agent': UA } });
    ws.close(1000);
    await waitClose(ws);
  };
  for (let i = 0; i < n; i += 20) await Promise.all(Array.from({ length: Math.min(20, n - i) }, one));
}

/** `wsgate --connections --data DIR | head -c 1`: the listing's reader leaves at once. */
function listIntoClosedPipe(gw) {
  return new Promise((resolve, reject) => {
    const p = spawn('sh', ['-c', '"$0" --connections --data "$1" | head -c 1 >/dev/null',
      WSGATE_BIN, gw.dataDir], { stdio: 'ignore' });
    p.on('error', reject);
    p.on('close', resolve);
  });
}

/** PIDs in LMDB's reader table holding a transaction (mdb_stat -r: pid, thread, txnid). */
async function readers(gw) {
  const out = await mdbStat(['-r', gw.dataDir]);
  return out.split('\n').map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length === 3 && /^\d+$/.test(f[0]) && f[2] !== '-')
    .map((f) => Number(f[0]));
}

function alive(pid) {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

test('item 7: `wsgate --connections | head -c 1` leaves no stale reader; the data file stays bounded under churn', { timeout: 90000 }, async () => {
  const { gw } = await startChurnPair();
  await holdConnections(gw, HELD);
  const listing = await runGateway(['--connections', '--data', gw.dataDir]);
  assert.equal(listing.stdout.split('\n').filter(Boolean).length, HELD);
  assert.ok(listing.stdout.length > 65536, `listing of ${listing.stdout.length} bytes fits a pipe`);
  for (let i = 0; i < 5; i++) await listIntoClosedPipe(gw);
  const dead = (await readers(gw)).filter((pid) => !alive(pid));
  assert.deepEqual(dead, [], 'reader slots of killed listings');
  const before = await size(gw);
  await churn(gw, CHURN);
  const grown = (await size(gw)) - before;
  if (process.env.WSGATE_TEST_VERBOSE) console.log(`data.mdb grew by ${grown} bytes over ${CHURN} connections`);
  assert.ok(grown <= MAX_GROWTH, `data.mdb grew by ${(grown / 1048576).toFixed(1)} MB over ${CHURN} connections`);
});

test('item 7: a reader SIGKILLed inside its transaction is cleared by the gateway; the data file stays bounded', { timeout: 90000 }, async () => {
  const { gw } = await startChurnPair();
  await holdConnections(gw, HELD);
  // mdb_dump writes the records into a pipe nobody reads: it blocks in its
  // read transaction, and dies there.
  const dump = spawn('mdb_dump', ['-a', gw.dataDir], { stdio: ['ignore', 'pipe', 'ignore'] });
  dump.stdout.pause();
  await waitUntil(async () => (await readers(gw)).includes(dump.pid), 5000, 'mdb_dump to hold a reader');
  const exited = new Promise((r) => dump.on('close', r));
  dump.kill('SIGKILL');
  await exited;
  const before = await size(gw);
  await churn(gw, CHURN);
  const grown = (await size(gw)) - before;
  if (process.env.WSGATE_TEST_VERBOSE) console.log(`data.mdb grew by ${grown} bytes over ${CHURN} connections`);
  assert.ok(grown <= MAX_GROWTH, `data.mdb grew by ${(grown / 1048576).toFixed(1)} MB over ${CHURN} connections`);
  // And the periodic check clears the slot even without a churn to prompt it.
  await waitUntil(async () => !(await readers(gw)).includes(dump.pid), 8000, 'the dead reader to be cleared');
});

test('item 7: `wsgate --connections` into a closed pipe exits quietly', async () => {
  const { gw } = await startChurnPair();
  await holdConnections(gw, HELD);
  const r = await new Promise((resolve, reject) => {
    const p = spawn('bash', ['-c', 'set -o pipefail; "$0" --connections --data "$1" | head -c 1 >/dev/null; echo $?',
      WSGATE_BIN, gw.dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('error', reject);
    p.on('close', () => resolve({ out, err }));
  });
  assert.equal(r.err, '');
  assert.equal(r.out.trim(), '0', 'the listing failed the pipeline');
});
