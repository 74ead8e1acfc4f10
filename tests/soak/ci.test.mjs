// Issue 11, "Proof, kept as a suite": the CI-sized run of the reliability
// scenarios (tests/soak/lib.mjs) against the release build. Each prints what
// it sent, what arrived and what was lost, and fails on any loss. A scenario
// whose fix is not on main yet is marked todo: it runs and prints its
// losses, and does not fail the run; remove the todo with the fix.
//
//   WSGATE_BIN=build/wsgate nice node --test --test-concurrency=1 tests/soak/
//
// SOAK_SCALE=N multiplies the counts.
import { test, assert } from '../e2e/helpers.mjs';
import {
  churn, killDuringReplay, killRestart, sigtermSlow, killedReaderScenario,
} from './lib.mjs';

const SCALE = Number(process.env.SOAK_SCALE || 1);
const n = (k) => Math.max(1, Math.round(k * SCALE));

// Items 5 and 6 are fixed (the $disconnect outbox). What the README
// documents remains: a call in flight when the gateway is killed, or exits
// at the drain deadline, is sent again by the next start with the same
// requestId (at least once). The books count that apart ("the same one
// again", printed); a connection with no $disconnect, or with two different
// calls, fails.

// One churn run, two verdicts: the frames and $disconnect books (items 1-2,
// fixed), and the posts (a finding of this suite, not fixed yet).
let churnRun = null;
const churnOnce = async () => { churnRun ??= await churn({ clients: n(300), frames: 20, posts: 5 }); return churnRun; };

test('item 1: churn with closes-after-send: every frame reaches the backend in order, then exactly one $disconnect', { timeout: 120000 }, async () => {
  const r = await churnOnce();
  assert.equal(r.errors, 0, `${r.errors} clients failed to connect: ${r.errorKinds}`);
  assert.equal(r.lostFrames, 0, `${r.lostFrames} of ${r.sent} frames never reached the backend`);
  assert.equal(r.dupFrames, 0, `${r.dupFrames} frames reached the backend twice`);
  assert.equal(r.reordered, 0, `${r.reordered} connections had frames out of order`);
  assert.equal(r.missing, 0, `${r.missing} connections got no $disconnect`);
  assert.equal(r.duplicate + r.redelivered, 0, `${r.duplicate + r.redelivered} connections got more than one $disconnect`);
  assert.equal(r.afterDisc, 0, `${r.afterDisc} messages reached the backend after their $disconnect`);
  assert.equal(r.repeatedConnect, 0, 'no $connect delivered twice');
});

test('item 2: churn: every post answered 200 before the client\'s close(1000) reaches the client', { timeout: 120000 }, async () => {
  const r = await churnOnce();
  assert.deepEqual(r.postStatus, {}, 'every post to an open connection is answered 200');
  assert.equal(r.postsLost, 0, `${r.postsLost} of ${r.acked} posts answered 200 never reached their client`);
});

test('item 5: kill -9 with open connections, restart on the same data folder: each connection gets exactly one $disconnect', { timeout: 120000 }, async () => {
  const r = await killRestart({ n: n(300) });
  assert.equal(r.errors, 0, `${r.errors} clients failed to connect: ${r.errorKinds}`);
  assert.equal(r.afterRestart.missing, 0, `${r.afterRestart.missing} of ${r.opened} connections never got their $disconnect`);
  assert.equal(r.afterRestart.duplicate, 0, `${r.afterRestart.duplicate} connections got more than one $disconnect`);
  assert.equal(r.recordsAfter, 0, `${r.recordsAfter} records of the killed run are left in the registry`);
});

test('item 5: kill -9 again while the restarted gateway replays $disconnect, restart: none skipped, none sent as two different calls (one in flight at the kill may come again, same requestId)', { timeout: 150000 }, async () => {
  const r = await killDuringReplay({ n: n(200), slowMs: 20 });
  assert.equal(r.errors, 0, `${r.errors} clients failed to connect: ${r.errorKinds}`);
  assert.equal(r.afterRestart.missing, 0, `${r.afterRestart.missing} of ${r.opened} connections never got their $disconnect`);
  assert.equal(r.afterRestart.duplicate, 0, `${r.afterRestart.duplicate} connections got more than one $disconnect`);
  assert.equal(r.recordsAfter, 0, `${r.recordsAfter} records are left in the registry`);
});

test('item 6: SIGTERM while the backend answers $disconnect one at a time (200 ms): each connection gets its $disconnect, after a restart at the latest, never as two different calls', { timeout: 150000 }, async () => {
  const r = await sigtermSlow({ n: n(100), slowMs: 200 });
  assert.equal(r.errors, 0, `${r.errors} clients failed to connect: ${r.errorKinds}`);
  assert.equal(r.afterRestart.missing, 0, `${r.afterRestart.missing} of ${r.opened} connections never got their $disconnect`);
  assert.equal(r.afterRestart.duplicate, 0, `${r.afterRestart.duplicate} connections got more than one $disconnect`);
});

test('item 7: registry readers that die or leave early (`wsgate --connections | head -1`, mdb_dump killed inside its transaction) while connections churn: the LMDB data file stays bounded and every upgrade succeeds', { timeout: 120000 }, async () => {
  const r = await killedReaderScenario({ idle: 600, churnConns: n(1500), readers: 40 });
  assert.ok(r.readers > 0, 'readers ran while the connections churned');
  assert.equal(r.refused, 0, `${r.refused} upgrades failed: ${r.errorKinds}`);
  assert.ok(!r.overBound, `data.mdb grew by ${r.growth} bytes (${r.perConnection} per churned connection), more than ${r.boundBytes}`);
  assert.equal(r.books.missing + r.books.duplicate + r.books.redelivered, 0, '$connect/$disconnect pairs balance');
});
