// Cluster messages are sealed (src/cluster_wire.h): a process that may
// publish on the cluster's NATS but lacks --cluster-secret-file delivers
// nothing, and a captured genuine message is not delivered twice. A raw NATS
// client (the text protocol) plays the attacker, with the real nats-server.
import {
  test, assert, startBackend, startGateway, makeApi, connectWithId, nextMessage,
  mgmtRequest, sleep, waitUntil,
} from './helpers.mjs';
import { natsSkip as skip, SECRET_TEXT, startNats, natsPeer, clusterArgs, OP, fanout, postOp } from './nats.mjs';
import { ENV, messageKey, seal } from './cluster-seal.mjs';

const TIMEOUT_MS = 1000;

const args = (nats, node) => clusterArgs(nats, node, { timeoutMs: TIMEOUT_MS });

async function rejected(gw) {
  const r = await mgmtRequest(gw, 'GET', '/metrics');
  const get = (reason) => Number((r.text.match(new RegExp(`^wsgate_cluster_messages_rejected_total\\{reason="${reason}"\\} (\\d+)`, 'm')) ?? [])[1] ?? NaN);
  return { mac: get('mac'), stale: get('stale'), replay: get('replay') };
}

async function twoNodes(t) {
  const nats = await startNats(t);
  const backend = await startBackend();
  const a = await startGateway({ routes: makeApi(backend.url), args: args(nats, 1) });
  const b = await startGateway({ routes: makeApi(backend.url), args: args(nats, 2) });
  const client = await connectWithId(a, backend);
  assert.equal((await mgmtRequest(b, 'PUT', `/@connections/${client.id}/channels/room`)).status, 204);
  return { nats, backend, a, b, client };
}

test('cluster auth: a NATS client without the secret cannot publish to a channel, broadcast or post to a connection (forged, or sealed with another key): nothing delivered, counted, logged', { skip }, async (t) => {
  const { nats, a, b, client } = await twoNodes(t);
  const peer = await natsPeer(t, nats.port);
  const wrongKey = messageKey('not the cluster secret, but long\n');
  const forged = [
    ['wsgate.default.chan.room', fanout(OP.PUBLISH, 'room', 'forged publish'), ''],
    ['wsgate.default.fanout', fanout(OP.BROADCAST, '', 'forged broadcast'), ''],
    ['wsgate.default.node.1.op', postOp(client.id, 'forged post'), '_INBOX.attacker.1'],
  ];
  peer.sub('_INBOX.attacker.>', 1);
  for (const [subject, data, reply] of forged) {
    peer.pub(subject, data, reply);
    // The wire format of this version, sealed with a key of the attacker's.
    const type = subject.endsWith('.op') ? ENV.OP : ENV.FANOUT;
    peer.pub(subject, seal(wrongKey, { type, node: 2, subject, reply, payload: data }), reply);
  }
  await peer.flush();
  // A genuine publish through node 2, sent after them, is the first thing the client gets.
  assert.equal((await mgmtRequest(b, 'POST', '/@channels/room', 'genuine')).status, 200);
  assert.equal((await nextMessage(client.ws)).data, 'genuine');
  await sleep(300);
  assert.equal(peer.msgs.length, 0, `no answer to a forged operation: ${peer.msgs.map((m) => m.data.toString())}`);
  await waitUntil(async () => (await rejected(a)).mac >= 6, 3000, 'six rejections counted');
  assert.match(a.output(), /cluster: .* from NATS .* dropped: its MAC does not hold/);
  // Genuine traffic still crosses both ways.
  assert.equal((await mgmtRequest(b, 'POST', `/@connections/${client.id}`, 'via node 2')).status, 200);
  assert.equal((await nextMessage(client.ws)).data, 'via node 2');
  assert.equal((await mgmtRequest(b, 'POST', '/@broadcast', 'to all')).status, 200);
  assert.equal((await nextMessage(client.ws)).data, 'to all');
});

test('cluster auth: a forged reply to a forwarded operation (the owner gone, an attacker answering for it) is as if none came: 410 after the timeout', { skip }, async (t) => {
  const nats = await startNats(t);
  const backend = await startBackend();
  const a = await startGateway({ routes: makeApi(backend.url), args: args(nats, 1) });
  const b = await startGateway({ routes: makeApi(backend.url), args: args(nats, 2) });
  const { id } = await connectWithId(b, backend);
  await b.stop();
  const peer = await natsPeer(t, nats.port);
  peer.sub('wsgate.default.node.2.op', 1);
  const wrongKey = messageKey('not the cluster secret, but long\n');
  let answered = 0;
  const tick = setInterval(() => {
    while (peer.msgs.length) {
      const m = peer.msgs.shift();
      if (!m.reply) continue;
      answered++;
      peer.pub(m.reply, Buffer.from('200'));
      peer.pub(m.reply, seal(wrongKey, { type: ENV.REPLY, node: 2, subject: m.reply, payload: Buffer.from('200') }));
    }
  }, 5);
  t.after(() => clearInterval(tick));
  await peer.flush();
  const t0 = Date.now();
  const r = await mgmtRequest(a, 'POST', `/@connections/${id}`, 'to nobody');
  assert.ok(answered >= 1, 'the attacker saw the request');
  assert.equal(r.status, 410, `a forged 200 taken: ${r.status} ${r.text}`);
  assert.ok(Date.now() - t0 >= TIMEOUT_MS - 100, 'answered by the timeout');
});

test('cluster auth: a captured genuine channel publish, broadcast or forwarded POST replayed on NATS is not delivered again; a stale one neither', { skip }, async (t) => {
  const { nats, a, b, client } = await twoNodes(t);
  const peer = await natsPeer(t, nats.port);
  peer.sub('wsgate.default.chan.room', 1);
  peer.sub('wsgate.default.fanout', 2);
  peer.sub('wsgate.default.node.1.op', 3);
  await peer.flush();
  assert.equal((await mgmtRequest(b, 'POST', '/@channels/room', 'once (publish)')).status, 200);
  assert.equal((await nextMessage(client.ws)).data, 'once (publish)');
  assert.equal((await mgmtRequest(b, 'POST', '/@broadcast', 'once (broadcast)')).status, 200);
  assert.equal((await nextMessage(client.ws)).data, 'once (broadcast)');
  assert.equal((await mgmtRequest(b, 'POST', `/@connections/${client.id}`, 'once (post)')).status, 200);
  assert.equal((await nextMessage(client.ws)).data, 'once (post)');
  const captured = [];
  while (peer.msgs.length) captured.push(peer.msgs.shift());
  assert.equal(captured.length, 3, `captured ${captured.map((m) => m.subject)}`);
  for (const m of captured) peer.pub(m.subject, m.data, m.reply);
  // Sealed right (the secret known), but stamped a minute ago, as a node 3
  // never heard of (so no later sequence of its hides the staleness).
  const key = messageKey(SECRET_TEXT);
  const old = BigInt(Date.now() - 60000) * 1000000n;
  peer.pub('wsgate.default.fanout', seal(key, { type: ENV.FANOUT, node: 3, seq: old, subject: 'wsgate.default.fanout', payload: fanout(OP.BROADCAST, '', 'stale') }));
  await peer.flush();
  assert.equal((await mgmtRequest(b, 'POST', '/@channels/room', 'after the replays')).status, 200);
  assert.equal((await nextMessage(client.ws)).data, 'after the replays', 'no replay delivered');
  await waitUntil(async () => { const r = await rejected(a); return r.replay >= 3 && r.stale >= 1; }, 3000, 'replays and the stale one counted');
  // A node holding the secret, stamping fresh sequences, is heard (as node 3).
  peer.pub('wsgate.default.fanout', seal(key, { type: ENV.FANOUT, node: 3, subject: 'wsgate.default.fanout', payload: fanout(OP.BROADCAST, '', 'fresh') }));
  assert.equal((await nextMessage(client.ws)).data, 'fresh');
});
