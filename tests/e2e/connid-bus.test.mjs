// Issue 10 §2: a connection ID names where its connection lives (loop,
// slot, generation) under a MAC, and management calls travel as operations
// to that loop. What a user sees: IDs are short and URL-safe, never
// repeat, and an ID that was forged or outlived its connection finds
// nothing (410), even when its slot now holds another connection.
import { execFileSync } from 'node:child_process';
import {
  test, assert, startPair, connectWithId, nextMessage, pendingMessages, waitClose,
  sleep, postTo, getConn, deleteConn, mgmtRequest, WSGATE_BIN,
} from './helpers.mjs';

const ID_RE = /^[A-Za-z0-9_-]{24}$/;
// The ID's bytes: node, loop, API, slot (3 bytes), generation (4), MAC (8).
const bytes = (id) => Buffer.from(id, 'base64url');
const slotOf = (id) => bytes(id).readUIntBE(3, 3);
const genOf = (id) => bytes(id).readUInt32BE(6);
const loopOf = (id) => bytes(id)[1];

/** id with one character changed at position i (still the ID alphabet). */
const alter = (id, i) => id.slice(0, i) + (id[i] === 'A' ? 'B' : 'A') + id.slice(i + 1);
/** id with its fields rewritten; the MAC is kept (so it no longer matches). */
function rewrite(id, fn) {
  const b = bytes(id);
  fn(b);
  return b.toString('base64url');
}

async function closeAndWait(c, backend) {
  c.ws.close(1000);
  await waitClose(c.ws);
  await backend.waitFor((e) => e.requestContext?.eventType === 'DISCONNECT'
    && e.requestContext.connectionId === c.id);
}

test('issue 10 §2: IDs are at most 24 URL-safe characters and never repeat, even as slots are reused', async () => {
  const { backend, gw } = await startPair(undefined, {}, { args: ['--workers', '1'] });
  const seen = new Set();
  const slots = new Set();
  for (let i = 0; i < 12; i++) {
    const c = await connectWithId(gw, backend);
    assert.match(c.id, ID_RE);
    assert.ok(!seen.has(c.id), `ID ${c.id} issued twice`);
    seen.add(c.id);
    slots.add(slotOf(c.id));
    await closeAndWait(c, backend);
  }
  // One at a time on one loop: the same slot over and over, never the same ID.
  assert.equal(slots.size, 1);
  await gw.stop();
});

test('issue 10 §2: a forged ID (right shape, wrong MAC) is refused 410 and reaches no one', async () => {
  const { backend, gw } = await startPair(undefined, {}, { args: ['--workers', '1'] });
  const c = await connectWithId(gw, backend);
  const forged = [
    alter(c.id, 23),                                  // the MAC
    alter(c.id, 0),                                   // node and loop
    rewrite(c.id, (b) => { b.writeUInt32BE(genOf(c.id) + 1, 6); }), // next generation
    rewrite(c.id, (b) => { b.writeUIntBE(slotOf(c.id) ^ 1, 3, 3); }), // a neighbour slot
  ];
  for (const id of forged) {
    assert.match(id, ID_RE);
    assert.notEqual(id, c.id);
    const p = await postTo(gw, id, 'forged');
    assert.equal(p.status, 410, `POST ${id}`);
    assert.equal(p.headers['x-amzn-errortype'], 'GoneException');
    assert.equal((await getConn(gw, id)).status, 410, `GET ${id}`);
    assert.equal((await deleteConn(gw, id)).status, 410, `DELETE ${id}`);
  }
  // Wrong shapes: too short, too long, outside the alphabet, earlier 16-character IDs.
  for (const id of [c.id.slice(0, 23), `${c.id}A`, `${c.id.slice(0, 23)}.`, c.id.slice(0, 16)]) {
    assert.equal((await postTo(gw, encodeURIComponent(id), 'x')).status, 410, `POST ${id}`);
  }
  await sleep(100);
  assert.deepEqual(pendingMessages(c.ws), []);
  // The genuine ID still works.
  assert.equal((await postTo(gw, c.id, 'real')).status, 200);
  assert.equal((await nextMessage(c.ws)).data.toString(), 'real');
  await gw.stop();
});

test('issue 10 §2: a stale ID whose slot a new connection took is refused 410; the new connection receives nothing', async () => {
  const { backend, gw } = await startPair(undefined, {}, { args: ['--workers', '1'] });
  const a = await connectWithId(gw, backend);
  await closeAndWait(a, backend);
  const b = await connectWithId(gw, backend);
  assert.equal(slotOf(b.id), slotOf(a.id), 'the new connection reuses the slot');
  assert.notEqual(genOf(b.id), genOf(a.id));
  const p = await postTo(gw, a.id, 'for a, not b');
  assert.equal(p.status, 410);
  assert.equal(p.headers['x-amzn-errortype'], 'GoneException');
  assert.equal((await getConn(gw, a.id)).status, 410);
  assert.equal((await deleteConn(gw, a.id)).status, 410);
  await sleep(100);
  assert.deepEqual(pendingMessages(b.ws), []);
  assert.equal(b.ws.readyState, 1, 'the DELETE of the stale ID left the new connection open');
  assert.equal((await postTo(gw, b.id, 'for b')).status, 200);
  assert.equal((await nextMessage(b.ws)).data.toString(), 'for b');
  await gw.stop();
});

test('issue 10 §2: with 4 loops the ID names the loop that holds the connection, and calls on any loop reach it', async () => {
  const { backend, gw } = await startPair(undefined, {}, { args: ['--workers', '4'] });
  const clients = [];
  for (let i = 0; i < 12; i++) clients.push(await connectWithId(gw, backend));
  const rows = execFileSync(WSGATE_BIN, ['--connections', '--data', gw.dataDir], { encoding: 'utf8' })
    .trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
  for (const c of clients) {
    const row = rows.find((r) => r.id === c.id);
    assert.ok(row, `${c.id} in the registry`);
    assert.equal(loopOf(c.id), row.loop, `the loop named by ${c.id}`);
    assert.equal(slotOf(c.id), row.slot ?? slotOf(c.id));
  }
  for (const c of clients) {
    const r = await mgmtRequest(gw, 'POST', `/dev/@connections/${c.id}`, `hi ${c.id}`);
    assert.equal(r.status, 200);
    assert.equal((await nextMessage(c.ws)).data.toString(), `hi ${c.id}`);
  }
  await gw.stop();
});
