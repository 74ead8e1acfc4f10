// Several event loops (--workers): connections and management calls land on
// different loops (SO_REUSEPORT spreads them by source port), so a call for a
// connection held by another loop must be handed over and answered. With 4
// loops and 24 connections, each call made on a fresh TCP connection, the
// chance that no call crosses loops is 4^-48: the handover is exercised.
import http from 'node:http';
import {
  test, assert, startPair, connectWithId, nextMessage, waitClose, sleep, waitUntil,
} from './helpers.mjs';

const LOOPS = ['--workers', '4'];

/** One management request on its own TCP connection (no keep-alive). */
function fresh(gw, method, path, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${gw.mgmtUrl}${path}`, { method, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.setTimeout(5000, () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

test('with 4 loops, POST, GET and DELETE reach connections held by any loop', async () => {
  const { backend, gw } = await startPair(undefined, {}, { args: LOOPS });
  await waitUntil(() => /4 event loops running/.test(gw.output()), 5000, 'the 4 loops to start');
  const clients = [];
  for (let i = 0; i < 24; i++) clients.push(await connectWithId(gw, backend));
  // POST: every client gets exactly its own message.
  const posts = await Promise.all(clients.map((c, i) => fresh(gw, 'POST', `/dev/@connections/${c.id}`, `to-${i}`)));
  posts.forEach((r, i) => assert.equal(r.status, 200, `POST ${i}: ${r.status} ${r.body}`));
  for (const [i, c] of clients.entries()) assert.equal((await nextMessage(c.ws)).data, `to-${i}`);
  // GET: the owner's live values.
  const gets = await Promise.all(clients.map((c) => fresh(gw, 'GET', `/dev/@connections/${c.id}`)));
  for (const r of gets) {
    assert.equal(r.status, 200, r.body);
    const info = JSON.parse(r.body);
    assert.equal(info.identity.sourceIp, '127.0.0.1');
    assert.ok(Date.parse(info.lastActiveAt) >= Date.parse(info.connectedAt));
  }
  // DELETE: 204 and the client sees 1000, whichever loop answered.
  const closes = clients.map((c) => waitClose(c.ws));
  const dels = await Promise.all(clients.map((c) => fresh(gw, 'DELETE', `/dev/@connections/${c.id}`)));
  dels.forEach((r) => assert.equal(r.status, 204));
  for (const p of closes) assert.equal((await p).code, 1000);
  // Gone everywhere afterwards.
  const after = await Promise.all(clients.map((c) => fresh(gw, 'POST', `/dev/@connections/${c.id}`, 'late')));
  after.forEach((r) => {
    assert.equal(r.status, 410);
    assert.equal(r.headers['x-amzn-errortype'], 'GoneException');
  });
  await backend.waitFor(() => backend.events.filter((e) => e.requestContext.eventType === 'DISCONNECT').length === 24);
});

test('with 4 loops, a POST during a pending $connect waits on the owning loop', async () => {
  let release;
  const gate = new Promise((r) => { release = r; });
  const { backend, gw } = await startPair(async (ev) => {
    if (ev.requestContext.eventType === 'CONNECT') await gate;
    return { statusCode: 200, body: ev.body };
  }, {}, { args: LOOPS });
  const pending = [];
  for (let i = 0; i < 8; i++) pending.push(connectWithId(gw, backend));
  await backend.waitFor(() => backend.events.filter((e) => e.requestContext.eventType === 'CONNECT').length === 8);
  const ids = backend.events.filter((e) => e.requestContext.eventType === 'CONNECT')
    .map((e) => e.requestContext.connectionId);
  const posts = ids.map((id) => fresh(gw, 'POST', `/dev/@connections/${id}`, `early ${id}`));
  await sleep(200);
  release();
  const results = await Promise.all(posts);
  results.forEach((r) => assert.equal(r.status, 200));
  const clients = await Promise.all(pending);
  for (const c of clients) assert.equal((await nextMessage(c.ws)).data, `early ${c.id}`);
});

test('with 4 loops, SIGTERM closes every connection with 1001 and delivers each $disconnect', async () => {
  const { backend, gw } = await startPair(undefined, {}, { args: LOOPS });
  const clients = [];
  for (let i = 0; i < 16; i++) clients.push(await connectWithId(gw, backend));
  const closes = clients.map((c) => waitClose(c.ws));
  assert.equal(await gw.stop('SIGTERM'), 0);
  for (const p of closes) assert.equal((await p).code, 1001);
  const disc = backend.events.filter((e) => e.requestContext.eventType === 'DISCONNECT');
  assert.equal(disc.length, 16);
  disc.forEach((e) => assert.equal(e.requestContext.disconnectStatusCode, 1001));
});

test('wsgate --connections lists the registry while the gateway runs', async () => {
  const { execFileSync } = await import('node:child_process');
  const { WSGATE_BIN } = await import('./helpers.mjs');
  const { backend, gw } = await startPair(undefined, {}, { args: LOOPS });
  const a = await connectWithId(gw, backend, { headers: { 'User-Agent': 'lister/1' } });
  const b = await connectWithId(gw, backend);
  const list = () => execFileSync(WSGATE_BIN, ['--connections', '--data', gw.dataDir], { encoding: 'utf8' })
    .trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const rows = list();
  assert.deepEqual(rows.map((r) => r.id).sort(), [a.id, b.id].sort());
  const ra = rows.find((r) => r.id === a.id);
  assert.equal(ra.userAgent, 'lister/1');
  assert.equal(ra.sourceIp, '127.0.0.1');
  assert.ok(ra.loop >= 0 && ra.loop < 4);
  a.ws.close(1000);
  await backend.waitFor((e) => e.requestContext?.eventType === 'DISCONNECT');
  assert.deepEqual(list().map((r) => r.id), [b.id]);
});
