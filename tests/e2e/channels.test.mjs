// Issue 13, channels and broadcast (single node): a connection joins named
// channels by the management API or from its route integration's answer;
// one publish reaches every member once, on every loop; batch post,
// broadcast, listing with pagination.
import { SignatureV4 } from '@smithy/signature-v4';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import {
  test, assert, startPair, connectWithId, nextMessage, sleep, waitUntil,
  mgmtRequest, echoHandler, startBackend, startHttpBackend, startGateway, makeApi, connect, rssKiB,
} from './helpers.mjs';

const loopOf = (id) => Buffer.from(id, 'base64url')[1];
const join = (gw, id, ch) => mgmtRequest(gw, 'PUT', `/@connections/${id}/channels/${ch}`);
const leave = (gw, id, ch) => mgmtRequest(gw, 'DELETE', `/@connections/${id}/channels/${ch}`);
const publish = (gw, ch, body) => mgmtRequest(gw, 'POST', `/@channels/${ch}`, body);
const members = async (gw, ch) => {
  const r = await mgmtRequest(gw, 'GET', `/@channels/${ch}`);
  assert.equal(r.status, 200, r.text);
  return r.json().members;
};

/** Messages received by ws from now on, collected. */
function collect(ws) {
  const got = [];
  ws.on('message', (d) => got.push(d.toString()));
  return got;
}

/** Connects until there are n clients and both loops hold some. */
async function clientsOnTwoLoops(gw, backend, n) {
  const cs = [];
  for (let i = 0; i < 40 && (cs.length < n || new Set(cs.map((c) => loopOf(c.id))).size < 2); i++) {
    cs.push(await connectWithId(gw, backend));
  }
  assert.equal(new Set(cs.map((c) => loopOf(c.id))).size, 2, 'clients on both loops');
  return cs;
}

// A backend whose "join" route answers with the channels to join.
function chatHandler(event) {
  const body = event.requestContext?.eventType === 'MESSAGE' ? JSON.parse(event.body || '{}') : {};
  if (body.action === 'join') return { statusCode: 200, subscribe: [body.room], body: 'joined' };
  if (body.action === 'joinh') return { statusCode: 200, headers: { 'X-Wsgate-Subscribe': `${body.room}, other-room` }, body: 'joined' };
  if (body.action === 'leave') return { statusCode: 200, headers: { 'X-Wsgate-Unsubscribe': body.room }, body: 'left' };
  return echoHandler(event);
}

test('issue 13 channels: join by PUT and by integration answer; a publish reaches each member exactly once across 2 loops', async () => {
  const { backend, gw } = await startPair(chatHandler, {}, { args: ['--workers', '2'] });
  const cs = await clientsOnTwoLoops(gw, backend, 6);
  const got = cs.map((c) => collect(c.ws));
  const byPut = cs.filter((_, i) => i % 3 === 0);
  const byField = cs.filter((_, i) => i % 3 === 1);
  const byHeader = cs.filter((_, i) => i % 3 === 2);
  for (const c of byPut) assert.equal((await join(gw, c.id, 'room-1')).status, 204);
  // Joining twice is fine (PUT is idempotent).
  assert.equal((await join(gw, byPut[0].id, 'room-1')).status, 204);
  for (const c of byField) c.ws.send(JSON.stringify({ action: 'join', room: 'room-1' }));
  for (const c of byHeader) c.ws.send(JSON.stringify({ action: 'joinh', room: 'room-1' }));
  await waitUntil(() => [...byField, ...byHeader].every((c) => got[cs.indexOf(c)].length === 1), 5000, 'joined answers');
  assert.equal(await members(gw, 'room-1'), cs.length);
  assert.equal(await members(gw, 'other-room'), byHeader.length);
  for (const g of got) g.length = 0;

  for (let k = 0; k < 20; k++) {
    const r = await publish(gw, 'room-1', `msg-${k}`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json(), { queued: cs.length, skipped: 0 });
  }
  const want = Array.from({ length: 20 }, (_, k) => `msg-${k}`);
  await waitUntil(() => got.every((g) => g.length >= 20), 5000, 'every member has 20 messages');
  await sleep(100);
  for (const g of got) assert.deepEqual(g, want, 'each message once, in publish order');
  // A channel nobody joined: nothing queued.
  assert.deepEqual((await publish(gw, 'empty-room', 'x')).json(), { queued: 0, skipped: 0 });
  await gw.stop();
});

test('issue 13 channels: leave (by DELETE and by integration), member count, and a close leaves every channel', async () => {
  const { backend, gw } = await startPair(chatHandler, {}, { args: ['--workers', '2'] });
  const cs = await clientsOnTwoLoops(gw, backend, 4);
  for (const c of cs) assert.equal((await join(gw, c.id, 'lobby')).status, 204);
  assert.equal(await members(gw, 'lobby'), cs.length);
  assert.equal((await leave(gw, cs[0].id, 'lobby')).status, 204);
  // Leaving a channel one is not in is fine too.
  assert.equal((await leave(gw, cs[0].id, 'lobby')).status, 204);
  cs[1].ws.send(JSON.stringify({ action: 'leave', room: 'lobby' }));
  assert.equal((await nextMessage(cs[1].ws)).data.toString(), 'left');
  assert.equal(await members(gw, 'lobby'), cs.length - 2);
  cs[2].ws.close(1000);
  await backend.waitForEvent('DISCONNECT', cs[2].id);
  await waitUntil(async () => (await members(gw, 'lobby')) === cs.length - 3, 5000, 'the closed member gone');
  const got = cs.map((c) => collect(c.ws));
  assert.deepEqual((await publish(gw, 'lobby', 'hi')).json(), { queued: cs.length - 3, skipped: 0 });
  await waitUntil(() => got.slice(3).every((g) => g.length === 1), 5000, 'the remaining members served');
  await sleep(100);
  assert.deepEqual(got[0], []);
  assert.deepEqual(got[1], []);
  await gw.stop();
});

test('issue 13 channels: bad channel names are 400, an unknown connection is 410, other methods 405', async () => {
  const { backend, gw } = await startPair(undefined, {}, { args: ['--workers', '2'] });
  const c = await connectWithId(gw, backend);
  for (const bad of ['bad%20name', 'a'.repeat(129), 'x%2Fy', 'caf%C3%A9', 'semi%3Bcolon']) {
    const r = await join(gw, c.id, bad);
    assert.equal(r.status, 400, `PUT ${bad}: ${r.text}`);
    assert.equal(r.headers['x-amzn-errortype'], 'BadRequestException');
    assert.equal((await publish(gw, bad, 'x')).status, 400, `POST ${bad}`);
  }
  assert.equal((await join(gw, c.id, 'a'.repeat(128))).status, 204);
  assert.equal((await join(gw, 'AAAAAAAAAAAAAAAAAAAAAAAA', 'room')).status, 410);
  assert.equal((await join(gw, 'nope', 'room')).status, 410);
  // At most 64 channels per connection.
  for (let i = 1; i < 64; i++) assert.equal((await join(gw, c.id, `ch-${i}`)).status, 204);
  const over = await join(gw, c.id, 'one-too-many');
  assert.equal(over.status, 400);
  assert.match(over.text, /too many channels/);
  assert.equal((await mgmtRequest(gw, 'PUT', `/@connections/${c.id}`)).status, 405);
  assert.equal((await mgmtRequest(gw, 'PUT', '/@channels/room')).status, 405);
  assert.equal((await mgmtRequest(gw, 'GET', '/@broadcast')).status, 405);
  assert.equal((await mgmtRequest(gw, 'GET', '/@channels/room?x')).status, 200);
  // A stage that does not exist is refused as for @connections.
  assert.equal((await mgmtRequest(gw, 'POST', '/nostage/@channels/room', 'x')).status, 403);
  assert.equal((await mgmtRequest(gw, 'POST', '/dev/@channels/room', 'x')).status, 200);
  await gw.stop();
});

test('issue 13 channels: a slow reader skips messages (counted), the other members are served', { timeout: 30000 }, async () => {
  const { backend, gw } = await startPair(undefined, { limits: { outboundBufferBytes: 256 * 1024 } }, { args: ['--workers', '2'] });
  const slow = await connectWithId(gw, backend);
  const fast = await connectWithId(gw, backend);
  for (const c of [slow, fast]) assert.equal((await join(gw, c.id, 'feed')).status, 204);
  slow.ws._socket.pause();
  const got = collect(fast.ws);
  const chunk = 'x'.repeat(60 * 1024);
  let skipped = 0;
  let n = 0;
  for (; n < 400 && skipped < 3; n++) {
    const r = await publish(gw, 'feed', chunk);
    assert.equal(r.status, 200);
    skipped += r.json().skipped;
    // The fast member keeps up.
    await waitUntil(() => got.length === n + 1, 5000, 'the fast member has each message');
  }
  assert.ok(skipped >= 3, `no skips after ${n} publishes of 60 KB to a member that does not read`);
  const list = (await mgmtRequest(gw, 'GET', '/@connections?channel=feed')).json();
  const rec = (id) => list.items.find((i) => i.connectionId === id);
  assert.equal(rec(slow.id).channelSkips, skipped);
  assert.equal(rec(fast.id).channelSkips, 0);
  assert.equal(got.length, n);
  assert.match(gw.output(), /deliveries skipped on this loop/);
  slow.ws._socket.destroy();
  await gw.stop();
});

test('issue 13 batch post: one request, several connections; the gone IDs are listed', async () => {
  const { backend, gw } = await startPair(undefined, {}, { args: ['--workers', '2'] });
  const cs = await clientsOnTwoLoops(gw, backend, 3);
  const gone = await connectWithId(gw, backend);
  gone.ws.close(1000);
  await backend.waitForEvent('DISCONNECT', gone.id);
  const ids = [...cs.map((c) => c.id), gone.id, 'not-an-id'];
  const r = await mgmtRequest(gw, 'POST', '/@connections', JSON.stringify({ connectionIds: ids, data: 'batch!' }));
  assert.equal(r.status, 200, r.text);
  const a = r.json();
  assert.equal(a.posted, cs.length);
  assert.deepEqual(a.gone.sort(), [gone.id, 'not-an-id'].sort());
  assert.deepEqual(a.failed, []);
  for (const c of cs) assert.equal((await nextMessage(c.ws)).data.toString(), 'batch!');
  // Malformed bodies.
  for (const body of ['nope', '{}', '{"connectionIds":[1],"data":"x"}', '{"connectionIds":[],"data":5}']) {
    const b = await mgmtRequest(gw, 'POST', '/@connections', body);
    assert.equal(b.status, 400, body);
  }
  await gw.stop();
});

test('issue 13 broadcast: POST /@broadcast reaches every open connection of the stage once', async () => {
  const { backend, gw } = await startPair(undefined, {}, { args: ['--workers', '2'] });
  const cs = await clientsOnTwoLoops(gw, backend, 4);
  const got = cs.map((c) => collect(c.ws));
  const r = await mgmtRequest(gw, 'POST', '/dev/@broadcast', 'to all');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json(), { queued: cs.length, skipped: 0 });
  await waitUntil(() => got.every((g) => g.length === 1), 5000, 'everyone has it');
  await sleep(100);
  for (const g of got) assert.deepEqual(g, ['to all']);
  await gw.stop();
});

test('issue 13 listing: GET /@connections pages through every connection exactly once', async () => {
  const { backend, gw } = await startPair(undefined, {}, { args: ['--workers', '2'] });
  const cs = await clientsOnTwoLoops(gw, backend, 9);
  for (const c of cs.slice(0, 4)) assert.equal((await join(gw, c.id, 'listed')).status, 204);
  const pages = async (query, limit) => {
    const seen = [];
    let cursor = null;
    for (let i = 0; i < 50; i++) {
      const q = `/@connections?limit=${limit}${query}${cursor ? `&cursor=${cursor}` : ''}`;
      const r = await mgmtRequest(gw, 'GET', q);
      assert.equal(r.status, 200, r.text);
      const page = r.json();
      assert.ok(page.items.length <= limit);
      for (const it of page.items) {
        assert.match(it.connectedAt, /^\d{4}-\d\d-\d\dT/);
        assert.equal(it.identity.sourceIp, '127.0.0.1');
        seen.push(it.connectionId);
      }
      cursor = page.cursor;
      if (!cursor) return seen;
    }
    assert.fail('too many pages');
  };
  for (const limit of [1, 2, 4, 100]) {
    const seen = await pages('', limit);
    assert.deepEqual([...seen].sort(), cs.map((c) => c.id).sort(), `limit ${limit}`);
  }
  const seen = await pages('&channel=listed', 3);
  assert.deepEqual([...seen].sort(), cs.slice(0, 4).map((c) => c.id).sort());
  const one = (await mgmtRequest(gw, 'GET', '/@connections?channel=listed')).json();
  assert.deepEqual(one.items.find((i) => i.connectionId === cs[0].id).channels, ['listed']);
  for (const q of ['limit=0', 'limit=1001', 'limit=x', 'cursor=zz', 'cursor=7f000000', 'channel=a%20b']) {
    assert.equal((await mgmtRequest(gw, 'GET', `/@connections?${q}`)).status, 400, q);
  }
  await gw.stop();
});

test('issue 13 channels: an HTTP_PROXY answer joins by its X-Wsgate-Subscribe header', async () => {
  const http = await startHttpBackend((r) => (r.text.includes('join')
    ? { status: 200, headers: { 'X-Wsgate-Subscribe': 'h-1, h-2', 'x-wsgate-subscribe': 'h-3' }, body: 'ok' }
    : { status: 200, body: 'plain' }));
  const gw = await startGateway({
    routes: makeApi(`http://127.0.0.1:${http.port}/`, { integration: { type: 'HTTP_PROXY' } }),
  });
  const ws = await connect(gw.url);
  ws.send('please join');
  assert.equal((await nextMessage(ws)).data.toString(), 'ok');
  for (const ch of ['h-1', 'h-2', 'h-3']) {
    assert.equal((await mgmtRequest(gw, 'GET', `/@channels/${ch}`)).json().members, 1, ch);
  }
  assert.deepEqual((await publish(gw, 'h-2', 'via header')).json(), { queued: 1, skipped: 0 });
  assert.equal((await nextMessage(ws)).data.toString(), 'via header');
  await gw.stop();
});

/** The hash constructor SignatureV4 wants, on node:crypto. */
class Sha256 {
  constructor(secret) { this.h = secret ? createHmac('sha256', secret) : createHash('sha256'); }
  update(d) { this.h.update(typeof d === 'string' ? Buffer.from(d) : d); }
  async digest() { return new Uint8Array(this.h.digest()); }
}

test('issue 13 channels: with managementAuth, a key publishes to its own API\'s members only; unsigned is 403', async () => {
  const KEY_A = 'AKIAWSGATECHANAAAAAA';
  const KEY_B = 'AKIAWSGATECHANBBBBBB';
  const SECRET_A = randomBytes(30).toString('base64');
  const SECRET_B = randomBytes(30).toString('base64');
  const backend = await startBackend();
  const api = (n, key) => makeApi(backend.url, {
    name: n, stage: n, basePath: `/${n}`,
    managementAuth: { keys: [{ accessKeyId: key, secretAccessKeyEnv: `WSGATE_TEST_CHAN_${n.toUpperCase()}` }] },
  });
  const gw = await startGateway({
    routes: [api('a', KEY_A), api('b', KEY_B)],
    env: { WSGATE_TEST_CHAN_A: SECRET_A, WSGATE_TEST_CHAN_B: SECRET_B },
  });
  const signed = async (method, pathname, body, key = KEY_A, secret = SECRET_A) => {
    const signer = new SignatureV4({
      service: 'execute-api', region: 'us-east-1', sha256: Sha256,
      credentials: { accessKeyId: key, secretAccessKey: secret },
    });
    const headers = { host: `127.0.0.1:${gw.mgmtPort}` };
    if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
    const req = await signer.sign({
      method, protocol: 'http:', hostname: '127.0.0.1', port: gw.mgmtPort, path: pathname, query: {}, headers, body,
    });
    return mgmtRequest(gw, method, pathname, body, { headers: req.headers });
  };
  const a = await connectWithId(gw, backend, {}, '/a');
  const b = await connectWithId(gw, backend, {}, '/b');
  assert.equal((await signed('PUT', `/@connections/${a.id}/channels/room`)).status, 204);
  // Key A cannot reach B's connection; key B can.
  assert.equal((await signed('PUT', `/@connections/${b.id}/channels/room`)).status, 403);
  assert.equal((await signed('PUT', `/@connections/${b.id}/channels/room`, undefined, KEY_B, SECRET_B)).status, 204);
  // Unsigned: 403 on every new endpoint.
  assert.equal((await mgmtRequest(gw, 'POST', '/@channels/room', 'x')).status, 403);
  assert.equal((await mgmtRequest(gw, 'GET', '/@channels/room')).status, 403);
  assert.equal((await mgmtRequest(gw, 'POST', '/@broadcast', 'x')).status, 403);
  assert.equal((await mgmtRequest(gw, 'GET', '/@connections')).status, 403);
  assert.equal((await mgmtRequest(gw, 'PUT', `/@connections/${a.id}/channels/room`)).status, 403);
  // A wrong secret.
  assert.equal((await signed('POST', '/@channels/room', 'x', KEY_A, SECRET_B)).status, 403);
  // Key A's publish reaches A's member, not B's.
  const r = await signed('POST', '/@channels/room', 'for a');
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json(), { queued: 1, skipped: 0 });
  assert.equal((await nextMessage(a.ws)).data.toString(), 'for a');
  // Key B under stage a: not a key of that stage's API.
  assert.equal((await signed('POST', '/a/@channels/room', 'x', KEY_B, SECRET_B)).status, 403);
  const bb = await signed('POST', '/@broadcast', 'for b', KEY_B, SECRET_B);
  assert.deepEqual(bb.json(), { queued: 1, skipped: 0 });
  assert.equal((await nextMessage(b.ws)).data.toString(), 'for b');
  await sleep(100);
  await gw.stop();
});

test('issue 13 channels: a publish is one copy per loop, not one per member (memory with slow members)', { timeout: 60000 }, async () => {
  const { backend, gw } = await startPair(undefined, { limits: { maxMessageBytes: 1 << 20, outboundBufferBytes: 8 << 20 } },
    { args: ['--workers', '1'] });
  const cs = [];
  for (let i = 0; i < 60; i++) cs.push(await connectWithId(gw, backend));
  for (const c of cs) {
    assert.equal((await join(gw, c.id, 'big')).status, 204);
    c.ws._socket.pause(); // nobody reads: what is published stays queued
  }
  const msg = 'y'.repeat(1 << 20);
  const pub = async () => {
    const r = await publish(gw, 'big', msg);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json().queued, cs.length);
  };
  // The first one goes to the sockets: the kernel and libwebsockets keep
  // what each does not take, per socket. The next ones wait in the queues.
  await pub();
  await sleep(200);
  // Each further publish adds one shared copy (1 MB), where copies would
  // add 60 MB. Now and then a publish also finds the kernel's buffers of
  // every socket full, and libwebsockets keeps the rest of a message per
  // socket: at most two such steps are allowed.
  const steps = [];
  for (let k = 0; k < 6; k++) {
    const before = rssKiB(gw.proc.pid);
    await pub();
    steps.push(rssKiB(gw.proc.pid) - before);
  }
  const small = steps.filter((kib) => kib < 30 * 1024).length;
  assert.ok(small >= 4, `RSS steps per publish of 1 MB to 60 members (KiB): ${steps.join(', ')}`);
  for (const c of cs) c.ws._socket.destroy();
  await gw.stop();
});
