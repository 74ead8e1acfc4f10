// Issue 13, channel interest across a cluster: a node subscribes to a
// channel's NATS subject only while it holds members of it, so a publish
// reaches only the nodes that have members. Three gateway nodes and one
// nats-server with its monitoring port (-m), which shows what each node
// is subscribed to and how many messages the server sent it.
import {
  test, assert, connectWithId, nextMessage, waitClose,
  sleep, mgmtRequest, waitUntil,
} from './helpers.mjs';
import { natsSkip as skip, startNats, startCluster } from './nats.mjs';

const PREFIX = 'wsgate.default.';

/** What the server knows of node n's connection: its subjects and the messages it sent it. */
async function nodeView(nats, n) {
  const res = await fetch(`http://127.0.0.1:${nats.mport}/connz?subs=detail&limit=1024`);
  const { connections } = await res.json();
  for (const c of connections ?? []) {
    const subs = (c.subscriptions_list_detail ?? []).map((s) => s.subject);
    if (subs.includes(`${PREFIX}node.${n}.op`)) {
      return { outMsgs: c.out_msgs, subjects: subs, channels: subs.filter((s) => s.startsWith(`${PREFIX}chan.`)) };
    }
  }
  throw new Error(`node ${n} is not connected to NATS`);
}

/** The documented token of a channel name: A-Z a-z 0-9 _ - : as they are, every other byte %XX. */
function token(name) {
  let out = '';
  for (const b of Buffer.from(name, 'utf8')) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9_:-]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const join = (via, id, ch) => mgmtRequest(via, 'PUT', `/@connections/${id}/channels/${encodeURIComponent(ch)}`);
const leave = (via, id, ch) => mgmtRequest(via, 'DELETE', `/@connections/${id}/channels/${encodeURIComponent(ch)}`);
const publish = (via, ch, body) => mgmtRequest(via, 'POST', `/@channels/${encodeURIComponent(ch)}`, body);

test('issue 13 interest: a node without members of a channel receives none of its publishes; the node with members gets each, in order', { skip }, async (t) => {
  const { nats, backend, nodes } = await startCluster(t, { monitor: true });
  const m = await connectWithId(nodes[0], backend);
  assert.equal((await join(nodes[0], m.id, 'only-on-1')).status, 204);
  const before = await Promise.all([1, 2, 3].map((n) => nodeView(nats, n)));
  const N = 100;
  for (let k = 0; k < N; k++) {
    const res = await publish(nodes[1], 'only-on-1', `p${k}`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.json(), { queued: 0, skipped: 0 }, 'the answer counts the receiving node (2) only');
  }
  for (let k = 0; k < N; k++) assert.equal((await nextMessage(m.ws)).data, `p${k}`);
  const after = await Promise.all([1, 2, 3].map((n) => nodeView(nats, n)));
  const got = after.map((v, i) => v.outMsgs - before[i].outMsgs);
  t.diagnostic(`messages the server sent each node during ${N} publishes through node 2: ${got.join(', ')}`);
  assert.ok(got[0] >= N, `node 1 (the member's) got ${got[0]}`);
  // Heartbeats (one a second from each other node) are all node 3 may see.
  assert.ok(got[2] < 20, `node 3 (no member) got ${got[2]} messages for ${N} publishes`);
  assert.deepEqual(after[2].channels, []);
  assert.deepEqual(after[0].channels, [`${PREFIX}chan.only-on-1`]);
});

test('issue 13 interest: the join\'s 204 comes after the subscription reached NATS; the last member gone, the node unsubscribes', { skip }, async (t) => {
  const { nats, backend, nodes } = await startCluster(t, { monitor: true });
  const a = await connectWithId(nodes[2], backend);
  const b = await connectWithId(nodes[2], backend);
  const subject = `${PREFIX}chan.${token('room.z')}`;
  assert.deepEqual((await nodeView(nats, 3)).channels, []);
  // Joined through node 1: the 204 waits for node 3's subscription, so the
  // server has it at once, and a publish right after reaches the member.
  assert.equal((await join(nodes[0], a.id, 'room.z')).status, 204);
  assert.deepEqual((await nodeView(nats, 3)).channels, [subject]);
  assert.deepEqual((await nodeView(nats, 1)).channels, []);
  assert.deepEqual((await nodeView(nats, 2)).channels, []);
  assert.equal((await publish(nodes[1], 'room.z', 'one')).status, 200);
  assert.equal((await nextMessage(a.ws)).data, 'one');
  // A second member (possibly on the other loop): still one subscription.
  assert.equal((await join(nodes[2], b.id, 'room.z')).status, 204);
  assert.equal((await leave(nodes[1], a.id, 'room.z')).status, 204);
  await sleep(200);
  assert.deepEqual((await nodeView(nats, 3)).channels, [subject], 'b is still a member');
  assert.equal((await publish(nodes[0], 'room.z', 'two')).status, 200);
  assert.equal((await nextMessage(b.ws)).data, 'two');
  // The last member closes: the node leaves the subject.
  b.ws.close();
  await waitClose(b.ws);
  await waitUntil(async () => (await nodeView(nats, 3)).channels.length === 0, 5000, 'node 3 to unsubscribe');
  const before = (await nodeView(nats, 3)).outMsgs;
  for (let k = 0; k < 50; k++) assert.equal((await publish(nodes[0], 'room.z', `x${k}`)).status, 200);
  const got = (await nodeView(nats, 3)).outMsgs - before;
  assert.ok(got < 15, `node 3 got ${got} messages for 50 publishes after its last member left`);
  // a left before: it receives none of them.
  await sleep(200);
  assert.equal(a.ws.readyState, 1);
  await assert.rejects(nextMessage(a.ws, 200));
});

test('issue 13 interest: names with dots and colons map to one token each, are isolated from each other; wildcards are refused', { skip }, async (t) => {
  const { nats, backend, nodes } = await startCluster(t, { monitor: true });
  // Each would collide with another, or make an invalid subject, if the
  // name's dots were copied into the subject.
  const names = ['a', 'a.b', 'a.b.c', 'a..b', '.a', 'a.', 'a:b', 'A.b', 'a_b', 'a-b'];
  const members = [];
  for (const [i, name] of names.entries()) {
    const owner = nodes[i % 3];
    const c = await connectWithId(owner, backend);
    const got = [];
    c.ws.on('message', (d) => got.push(d.toString()));
    assert.equal((await join(nodes[(i + 1) % 3], c.id, name)).status, 204, name);
    members.push({ name, node: (i % 3) + 1, got });
  }
  for (const m of members) {
    const view = await nodeView(nats, m.node);
    assert.ok(view.channels.includes(`${PREFIX}chan.${token(m.name)}`), `${m.name}: ${view.channels}`);
    for (const s of view.subjects.filter((x) => !x.startsWith('_INBOX'))) {
      assert.ok(!/[*> ]/.test(s) && !s.includes('..') && !s.endsWith('.'), `a valid literal subject: ${s}`);
    }
  }
  // One publish per name, through a node that holds no member of it.
  for (const [i, m] of members.entries()) {
    assert.equal((await publish(nodes[(i + 2) % 3], m.name, `to ${m.name}`)).status, 200);
  }
  await waitUntil(() => members.every((m) => m.got.length >= 1), 5000, 'every member to get its message');
  await sleep(300);
  for (const m of members) assert.deepEqual(m.got, [`to ${m.name}`], m.name);
  // Wildcards, blanks and non-ASCII are not channel names (400), so no
  // subscription can ever match more than one channel.
  const c = await connectWithId(nodes[0], backend);
  for (const bad of ['*', '>', 'a.*', 'a.>', 'a b', 'caf\u00e9']) {
    assert.equal((await join(nodes[1], c.id, bad)).status, 400, bad);
    assert.equal((await publish(nodes[1], bad, 'x')).status, 400, bad);
  }
});

test('issue 13 interest: a member joined through any node gets a publish sent in the very next request, 50 times', { skip }, async (t) => {
  const { backend, nodes } = await startCluster(t, { monitor: true });
  const clients = [];
  for (let i = 0; i < 6; i++) clients.push(await connectWithId(nodes[i % 3], backend));
  let prev = null;
  for (let k = 0; k < 50; k++) {
    // A fresh channel each even round; each odd round the same channel, its
    // previous member (on another node) leaving just before.
    const ch = `race-${Math.floor(k / 2)}`;
    const member = clients[k % 6];
    if (k % 2 && prev) assert.equal((await leave(nodes[k % 3], prev.id, ch)).status, 204);
    assert.equal((await join(nodes[(k + 1) % 3], member.id, ch)).status, 204);
    assert.equal((await publish(nodes[(k + 2) % 3], ch, `m${k}`)).status, 200);
    assert.equal((await nextMessage(member.ws, 3000)).data, `m${k}`, `round ${k}`);
    prev = member;
  }
  // Leave and join again at once, the subscription possibly being removed
  // meanwhile: the join waits for a new one.
  const m = clients[0];
  for (let k = 0; k < 20; k++) {
    assert.equal((await join(nodes[0], m.id, 'again')).status, 204);
    assert.equal((await publish(nodes[1 + (k % 2)], 'again', `a${k}`)).status, 200);
    assert.equal((await nextMessage(m.ws, 3000)).data, `a${k}`, `again ${k}`);
    assert.equal((await leave(nodes[2], m.id, 'again')).status, 204);
  }
});

test('issue 13 interest: NATS restarted, the nodes subscribe to their channels again; a join during the outage is answered and counts after', { skip }, async (t) => {
  const { nats, backend, nodes } = await startCluster(t, { n: 2, monitor: true });
  const a = await connectWithId(nodes[1], backend);
  const b = await connectWithId(nodes[1], backend);
  assert.equal((await join(nodes[1], a.id, 'before')).status, 204);
  await nats.stop();
  const t0 = Date.now();
  assert.equal((await join(nodes[1], b.id, 'during')).status, 204);
  assert.ok(Date.now() - t0 < 2500, `a local join while NATS is down answered after ${Date.now() - t0} ms`);
  const again = await startNats(t, { port: nats.port, mport: nats.mport });
  await waitUntil(async () => {
    try {
      return (await nodeView(again, 2)).channels.length === 2 && !!(await nodeView(again, 1));
    } catch { return false; }
  }, 15000, 'node 2 to subscribe again to both channels');
  await waitUntil(async () => (await publish(nodes[0], 'before', 'b1')).status === 200, 5000, 'a publish');
  assert.equal((await nextMessage(a.ws, 5000)).data, 'b1');
  assert.equal((await publish(nodes[0], 'during', 'd1')).status, 200);
  assert.equal((await nextMessage(b.ws, 5000)).data, 'd1');
});
