// Issue 13, "any node answers for any connection": three gateway nodes and
// one nats-server on loopback. Management calls (the AWS SDK, unchanged) go
// to a node that does not hold the connection and are forwarded over NATS.
import {
  ApiGatewayManagementApiClient, PostToConnectionCommand, GetConnectionCommand, DeleteConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { mkdtempSync, writeFileSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  test, assert, startBackend, startGateway, makeApi, connectWithId, nextMessage, waitClose,
  postTo, getConn, sleep, mgmtRequest, waitUntil, runGateway,
} from './helpers.mjs';
import { natsSkip as skip, startNats, startCluster, freePort } from './nats.mjs';

const TIMEOUT_MS = 1500; // --cluster-timeout

function sdk(gw, stage = 'dev', credentials = { accessKeyId: 'x', secretAccessKey: 'y' }) {
  return new ApiGatewayManagementApiClient({
    endpoint: `${gw.mgmtUrl}/${stage}`,
    region: 'us-east-1',
    credentials,
    maxAttempts: 1,
  });
}

async function sdkStatus(promise) {
  try {
    await promise;
    return 200;
  } catch (e) {
    return e.$metadata?.httpStatusCode ?? e.name;
  }
}

test('cluster: POST, GET and DELETE through a node that does not hold the connection (AWS SDK)', { skip }, async (t) => {
  const { backend, nodes } = await startCluster(t);
  // One client per node; each is managed through the next node.
  const clients = [];
  for (const gw of nodes) clients.push(await connectWithId(gw, backend));
  for (let i = 0; i < nodes.length; i++) {
    const { ws, id } = clients[i];
    const via = sdk(nodes[(i + 1) % nodes.length]);
    await via.send(new PostToConnectionCommand({ ConnectionId: id, Data: Buffer.from(`hello ${i}`) }));
    assert.equal((await nextMessage(ws)).data, `hello ${i}`);
    const rec = await via.send(new GetConnectionCommand({ ConnectionId: id }));
    assert.ok(rec.ConnectedAt instanceof Date);
    assert.equal(rec.Identity.SourceIp, '127.0.0.1');
    assert.ok(rec.LastActiveAt instanceof Date);
  }
  // A binary-safe body of some size crosses intact.
  const big = 'x'.repeat(100000) + '\u00e9\u2713';
  await sdk(nodes[2]).send(new PostToConnectionCommand({ ConnectionId: clients[0].id, Data: Buffer.from(big) }));
  assert.equal((await nextMessage(clients[0].ws)).data, big);
  // Too large for the API: the same 413 as from the owner.
  const tooLarge = await postTo(nodes[1], clients[0].id, 'y'.repeat(131073));
  assert.equal(tooLarge.status, 413);

  // DELETE through node 3 closes node 1's client; $disconnect fires once.
  const { ws, id } = clients[0];
  const closed = waitClose(ws);
  await sdk(nodes[2]).send(new DeleteConnectionCommand({ ConnectionId: id }));
  await closed;
  await backend.waitForEvent('DISCONNECT', id);
  await sleep(300);
  assert.equal(backend.eventsOf('DISCONNECT', id).length, 1, 'one $disconnect');
  // Gone now, whichever node is asked.
  for (const gw of nodes) {
    assert.equal(await sdkStatus(sdk(gw).send(new PostToConnectionCommand({ ConnectionId: id, Data: Buffer.from('x') }))), 410);
    assert.equal((await getConn(gw, id)).status, 410);
  }
  // A forged ID is refused by the receiving node, without a trip.
  const forged = id.slice(0, 20) + (id[20] === 'A' ? 'B' : 'A') + id.slice(21);
  assert.equal((await postTo(nodes[1], forged, 'x')).status, 410);
  // A stage of another API: 403 at the receiving node.
  assert.equal(await sdkStatus(sdk(nodes[1], 'prod').send(new PostToConnectionCommand({ ConnectionId: clients[1].id, Data: Buffer.from('x') }))), 403);
});

test('cluster: channel membership and batch post through a node that does not hold the connections', { skip }, async (t) => {
  const { backend, nodes } = await startCluster(t);
  const c = [];
  for (const gw of nodes) c.push(await connectWithId(gw, backend));
  // Node 1 adds node 2's client to a channel; a publish on node 2 reaches it.
  let res = await mgmtRequest(nodes[0], 'PUT', `/@connections/${c[1].id}/channels/room-1`);
  assert.equal(res.status, 204);
  res = await mgmtRequest(nodes[1], 'POST', '/@channels/room-1', 'to the room');
  assert.equal(res.status, 200);
  assert.equal(JSON.parse(res.body).queued, 1);
  assert.equal((await nextMessage(c[1].ws)).data, 'to the room');
  // The owner's 400 (64 channels per connection) crosses with its type and message.
  for (let i = 0; i < 64; i++) {
    assert.equal((await mgmtRequest(nodes[0], 'PUT', `/@connections/${c[2].id}/channels/r${i}`)).status, 204);
  }
  res = await mgmtRequest(nodes[0], 'PUT', `/@connections/${c[2].id}/channels/r64`);
  assert.equal(res.status, 400);
  assert.equal(res.headers['x-amzn-errortype'], 'BadRequestException');
  assert.match(res.body.toString(), /too many channels/);
  res = await mgmtRequest(nodes[0], 'DELETE', `/@connections/${c[1].id}/channels/room-1`);
  assert.equal(res.status, 204);
  // A batch on node 1 reaches every node; a closed connection is listed gone.
  await mgmtRequest(nodes[0], 'DELETE', `/@connections/${c[2].id}`);
  await waitClose(c[2].ws);
  res = await mgmtRequest(nodes[0], 'POST', '/@connections',
    JSON.stringify({ connectionIds: c.map((x) => x.id), data: 'batch' }));
  assert.equal(res.status, 200);
  const out = JSON.parse(res.body);
  assert.equal(out.posted, 2);
  assert.deepEqual(out.gone, [c[2].id]);
  assert.equal((await nextMessage(c[0].ws)).data, 'batch');
  assert.equal((await nextMessage(c[1].ws)).data, 'batch');
});

test('cluster: a publish and a broadcast reach the members on every node, once each, in publish order', { skip }, async (t) => {
  const { backend, nodes } = await startCluster(t);
  const members = [];
  for (const gw of nodes) members.push(await connectWithId(gw, backend));
  members.push(await connectWithId(nodes[1], backend));
  const outsider = await connectWithId(nodes[2], backend);
  for (const [i, m] of members.entries()) {
    const via = nodes[(i + 1) % nodes.length]; // joined through another node
    assert.equal((await mgmtRequest(via, 'PUT', `/@connections/${m.id}/channels/room-x`)).status, 204);
  }
  const got = members.map(() => []);
  members.forEach((m, i) => m.ws.on('message', (d) => got[i].push(d.toString())));
  const outsiderGot = [];
  outsider.ws.on('message', (d) => outsiderGot.push(d.toString()));
  // 20 publishes through node 1: the answer counts node 1's deliveries.
  const sent = [];
  for (let k = 0; k < 20; k++) {
    const res = await mgmtRequest(nodes[0], 'POST', '/@channels/room-x', `m${k}`);
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body).queued, 1, 'node 1 holds one member');
    sent.push(`m${k}`);
  }
  await waitUntil(() => got.every((g) => g.length >= sent.length), 5000, 'every member to receive every publish');
  // The member count is the cluster's, whichever node is asked (each node
  // hears of the others within a second).
  for (const gw of nodes) {
    await waitUntil(async () => JSON.parse((await mgmtRequest(gw, 'GET', '/@channels/room-x')).body).members === 4,
      5000, 'the member count of every node');
  }
  await sleep(300); // nothing more arrives: once each
  for (const g of got) assert.deepEqual(g, sent);
  assert.deepEqual(outsiderGot, []);
  // A broadcast through node 3 reaches every open connection of the stage.
  const res = await mgmtRequest(nodes[2], 'POST', '/@broadcast', 'to all');
  assert.equal(res.status, 200);
  await waitUntil(() => got.every((g) => g.length === sent.length + 1) && outsiderGot.length === 1, 5000, 'the broadcast everywhere');
  await sleep(300);
  for (const g of got) assert.equal(g.at(-1), 'to all');
  assert.deepEqual(outsiderGot, ['to all']);
});

test('cluster: GET /@connections pages through every connection of every node exactly once', { skip }, async (t) => {
  const { backend, nodes } = await startCluster(t);
  const all = [];
  for (const gw of nodes) for (let k = 0; k < 3; k++) all.push(await connectWithId(gw, backend));
  for (const c of all.slice(2, 6)) {
    assert.equal((await mgmtRequest(nodes[0], 'PUT', `/@connections/${c.id}/channels/listed`)).status, 204);
  }
  const pages = async (gw, query, limit) => {
    const seen = [];
    let cursor = null;
    for (let i = 0; i < 60; i++) {
      const r = await mgmtRequest(gw, 'GET', `/@connections?limit=${limit}${query}${cursor ? `&cursor=${cursor}` : ''}`);
      assert.equal(r.status, 200, r.body.toString());
      const page = JSON.parse(r.body);
      assert.ok(page.items.length <= limit);
      for (const it of page.items) {
        assert.equal(it.identity.sourceIp, '127.0.0.1');
        seen.push(it.connectionId);
      }
      cursor = page.cursor;
      if (!cursor) return seen;
      assert.match(cursor, /^[0-9a-f]{10}$/);
    }
    assert.fail('too many pages');
  };
  // Every node has heard of the others before the listing starts.
  for (const gw of nodes) {
    await waitUntil(async () => (await pages(gw, '', 100)).length === all.length, 5000, 'every node listed');
  }
  for (const [gw, limit] of [[nodes[1], 1], [nodes[2], 2], [nodes[0], 4], [nodes[1], 100]]) {
    const seen = await pages(gw, '', limit);
    assert.deepEqual([...seen].sort(), all.map((c) => c.id).sort(), `limit ${limit}`);
    const members = await pages(gw, '&channel=listed', limit);
    assert.deepEqual([...members].sort(), all.slice(2, 6).map((c) => c.id).sort(), `channel, limit ${limit}`);
  }
  assert.equal((await mgmtRequest(nodes[0], 'GET', '/@connections?cursor=0000000000')).status, 400);
});

test('cluster: with managementAuth, the receiving node checks the signature; the owner trusts it', { skip }, async (t) => {
  const key = { accessKeyId: 'AKIDCLUSTER', secretAccessKey: 'cluster-mgmt-secret-0123456789' };
  const { backend, nodes } = await startCluster(t, {
    n: 2,
    api: { managementAuth: { keys: [{ accessKeyId: key.accessKeyId, secretAccessKeyEnv: 'WSGATE_TEST_CLUSTER_KEY' }] } },
    env: { WSGATE_TEST_CLUSTER_KEY: key.secretAccessKey },
  });
  const c2 = await connectWithId(nodes[1], backend);
  await sdk(nodes[0], 'dev', key).send(new PostToConnectionCommand({ ConnectionId: c2.id, Data: Buffer.from('signed') }));
  assert.equal((await nextMessage(c2.ws)).data, 'signed');
  const rec = await sdk(nodes[0], 'dev', key).send(new GetConnectionCommand({ ConnectionId: c2.id }));
  assert.ok(rec.ConnectedAt instanceof Date);
  // A wrong secret is refused at the receiving node; nothing reaches the owner.
  const wrong = { ...key, secretAccessKey: 'not-the-secret-at-all-0123456' };
  assert.equal(await sdkStatus(sdk(nodes[0], 'dev', wrong).send(new PostToConnectionCommand({ ConnectionId: c2.id, Data: Buffer.from('forged') }))), 403);
  assert.equal((await postTo(nodes[0], c2.id, 'unsigned')).status, 403);
  await sleep(200);
  assert.equal((await postTo(nodes[1], c2.id, 'x')).status, 403);
  assert.doesNotMatch(nodes[0].output() + nodes[1].output(), /cluster-mgmt-secret/);
});

test('cluster: a node killed with SIGKILL: posts to its connections get 410 within the timeout; the others keep serving', { skip }, async (t) => {
  const { backend, nodes } = await startCluster(t);
  const c1 = await connectWithId(nodes[0], backend);
  const c3 = await connectWithId(nodes[2], backend);
  for (const c of [c1, c3]) {
    assert.equal((await mgmtRequest(nodes[1], 'PUT', `/@connections/${c.id}/channels/k`)).status, 204);
  }
  const members = async () => JSON.parse((await mgmtRequest(nodes[1], 'GET', '/@channels/k')).body).members;
  await waitUntil(async () => (await members()) === 2, 5000, 'both members counted');
  await nodes[2].stop('SIGKILL');
  // The dead node's members are no longer counted.
  await waitUntil(async () => (await members()) === 1, 5000, 'the dead node left out of the count');
  for (let i = 0; i < 3; i++) {
    const t0 = Date.now();
    const res = await postTo(nodes[1], c3.id, 'to a dead node', { timeoutMs: TIMEOUT_MS + 3000 });
    const took = Date.now() - t0;
    assert.equal(res.status, 410);
    assert.ok(took < TIMEOUT_MS + 2000, `410 after ${took} ms (timeout ${TIMEOUT_MS})`);
  }
  // The other nodes still serve, each other's connections included.
  assert.equal((await postTo(nodes[1], c1.id, 'still here')).status, 200);
  assert.equal((await nextMessage(c1.ws)).data, 'still here');
  const c2 = await connectWithId(nodes[1], backend);
  assert.equal((await postTo(nodes[0], c2.id, 'new one')).status, 200);
  assert.equal((await nextMessage(c2.ws)).data, 'new one');
});

test('cluster: a message over NATS\'s max_payload (1 MB by default) is 413 through another node, at once', { skip }, async (t) => {
  const { backend, nodes } = await startCluster(t, { n: 2, api: { limits: { maxMessageBytes: 2 << 20 } } });
  const c2 = await connectWithId(nodes[1], backend);
  const big = 'z'.repeat(1500000);
  const t0 = Date.now();
  const res = await postTo(nodes[0], c2.id, big);
  assert.equal(res.status, 413);
  assert.equal(res.headers['x-amzn-errortype'], 'PayloadTooLargeException');
  assert.ok(Date.now() - t0 < TIMEOUT_MS, 'not the timeout');
  // Under the limit, the same route works.
  assert.equal((await postTo(nodes[0], c2.id, 'small')).status, 200);
  assert.equal((await nextMessage(c2.ws)).data, 'small');
});

test('cluster: a node stopped with SIGTERM: posts to its connections get 410', { skip }, async (t) => {
  const { backend, nodes } = await startCluster(t, { n: 2 });
  const c2 = await connectWithId(nodes[1], backend);
  await nodes[1].stop('SIGTERM');
  const t0 = Date.now();
  const res = await postTo(nodes[0], c2.id, 'to a stopped node', { timeoutMs: TIMEOUT_MS + 3000 });
  const took = Date.now() - t0;
  assert.equal(res.status, 410, `status ${res.status} after ${took} ms`);
  // It left NATS: "no responders" answers at once, not the timeout.
  assert.ok(took < TIMEOUT_MS, `410 after ${took} ms (timeout ${TIMEOUT_MS})`);
});

test('cluster: a node restarted under the same node ID does not answer to its old connection IDs', { skip }, async (t) => {
  const { nats, backend, nodes } = await startCluster(t, { n: 1 });
  const args = ['--nats', nats.url, '--cluster-secret-file', nats.secret, '--node-id', '2', '--workers', '1'];
  const first = await startGateway({ routes: makeApi(backend.url), args });
  const old = await connectWithId(first, backend);
  await first.stop('SIGKILL');
  const second = await startGateway({ routes: makeApi(backend.url), args });
  // The same loop, slot and generation as the old one: only the epoch differs.
  const fresh = await connectWithId(second, backend);
  assert.notEqual(fresh.id, old.id);
  assert.equal((await postTo(nodes[0], old.id, 'for the old client')).status, 410);
  assert.equal((await postTo(second, old.id, 'for the old client')).status, 410);
  assert.equal((await postTo(nodes[0], fresh.id, 'for the new one')).status, 200);
  assert.equal((await nextMessage(fresh.ws)).data, 'for the new one');
});

test('cluster: NATS restarted, the cluster recovers without restarting the gateways', { skip }, async (t) => {
  const { nats, backend, nodes } = await startCluster(t, { n: 2 });
  const c2 = await connectWithId(nodes[1], backend);
  assert.equal((await postTo(nodes[0], c2.id, 'before')).status, 200);
  assert.equal((await nextMessage(c2.ws)).data, 'before');
  await nats.stop();
  // Meanwhile: a bounded 410, never a hang.
  const t0 = Date.now();
  assert.equal((await postTo(nodes[0], c2.id, 'during', { timeoutMs: TIMEOUT_MS + 3000 })).status, 410);
  const took = Date.now() - t0;
  assert.ok(took < TIMEOUT_MS + 2000, `410 after ${took} ms`);
  t.diagnostic(`a post while NATS is down: 410 after ${took} ms`);
  await startNats(t, { port: nats.port });
  // Each node reconnects and subscribes again on its own.
  await waitUntil(async () => (await postTo(nodes[0], c2.id, 'after')).status === 200, 15000, 'a cross-node post after the NATS restart');
  // Nothing sent during the outage runs late: 'during' was answered 410
  // and is never delivered.
  let m;
  do {
    m = await nextMessage(c2.ws);
    assert.notEqual(m.data, 'during');
  } while (m.data !== 'after');
  // The local path never depended on NATS.
  assert.equal((await postTo(nodes[1], c2.id, 'local')).status, 200);
});

test('cluster: options: --nats needs the shared secret, a taken node ID is refused, a generated one is printed', { skip }, async (t) => {
  const nats = await startNats(t);
  const backend = await startBackend();
  let r = await runGateway(['--nats', nats.url, '--check', '--routes', '/nonexistent']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--cluster-secret-file/);
  r = await runGateway(['--node-id', '3']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /need --nats/);
  const short = path.join(nats.dir, 'short');
  writeFileSync(short, 'short');
  r = await runGateway(['--nats', nats.url, '--cluster-secret-file', short]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /16 to 4096 bytes/);
  assert.doesNotMatch(r.stderr, /short\n/);
  const open = path.join(nats.dir, 'open');
  writeFileSync(open, 'a cluster secret that others can read', { mode: 0o644 });
  chmodSync(open, 0o644);
  r = await runGateway(['--nats', nats.url, '--cluster-secret-file', open, '--routes', '/nonexistent']);
  assert.match(r.stderr, /readable by others \(mode 644\): chmod 600/);

  const args = ['--nats', nats.url, '--cluster-secret-file', nats.secret];
  const a = await startGateway({ routes: makeApi(backend.url), args: [...args, '--node-id', '7'] });
  assert.match(a.output(), /cluster "default" node 7 over NATS/);
  const data = mkdtempSync(path.join(tmpdir(), 'wsgate-data-'));
  t.after(() => rmSync(data, { recursive: true, force: true }));
  r = await runGateway(['--routes', a.routesDir, '--listen', '127.0.0.1:0', '--mgmt-listen', '127.0.0.1:0',
    '--data', data, ...args, '--node-id', '7']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--node-id 7: another node of cluster "default" holds it/);
  // No NATS there: a clear error at start, not a node that cannot reach the others.
  const nowhere = await freePort();
  r = await runGateway(['--routes', a.routesDir, '--listen', '127.0.0.1:0', '--mgmt-listen', '127.0.0.1:0',
    '--data', data, '--nats', `nats://127.0.0.1:${nowhere}`, '--cluster-secret-file', nats.secret]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`cluster: nats://127.0.0.1:${nowhere}: `));
  const b = await startGateway({ routes: makeApi(backend.url), args });
  const node = Number(/cluster "default" node (\d+) over NATS/.exec(b.output())[1]);
  assert.ok(node >= 1 && node <= 255 && node !== 7, `generated node ${node}`);
  assert.doesNotMatch(a.output() + b.output(), /long enough/, 'the secret is never logged');
  // The generated node serves and is served.
  const cb = await connectWithId(b, backend);
  assert.equal((await postTo(a, cb.id, 'via 7')).status, 200);
  assert.equal((await nextMessage(cb.ws)).data, 'via 7');
});
