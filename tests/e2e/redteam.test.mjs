// Red team of the newest surfaces: NATS messages from peers (cluster.c),
// the listing's cursor and pages (mgmt.c, channel.c), channel bounds.
// Each test names the defect it shows fixed.
import { mkdtempSync, writeFileSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  test, assert, startBackend, startGateway, makeApi, connectWithId, nextMessage,
  mgmtRequest, sleep, waitUntil, rawConnect, waitResponses,
} from './helpers.mjs';
import { natsSkip, startNats, natsPeer, clusterArgs, OP, fanout } from './nats.mjs';
import { ENV, messageKey, seal } from './cluster-seal.mjs';


const nodeArgs = (nats, node, workers = 1) => clusterArgs(nats, node, { workers });


test('redteam 1: a peer\'s broadcast with a 255-byte channel field is refused, not copied past the operation\'s 132-byte channel', { skip: natsSkip }, async (t) => {
  const nats = await startNats(t);
  // The peer holds the secret (its messages are sealed as a node's): what
  // is shown here is the decoding behind the seal.
  const key = messageKey(readFileSync(nats.secret, 'utf8'));
  const sealed = (data) => seal(key, { type: ENV.FANOUT, node: 9, subject: 'wsgate.default.fanout', payload: data });
  const backend = await startBackend();
  const gw = await startGateway({ routes: makeApi(backend.url), args: nodeArgs(nats, 1) });
  const { ws } = await connectWithId(gw, backend);
  const peer = await natsPeer(t, nats.port, 'redteam');
  // 255 bytes: past the field, over the operation's inbox link (a leaked
  // operation, or an assertion in libwebsockets) and more.
  peer.pub('wsgate.default.fanout', sealed(fanout(OP.BROADCAST, Buffer.alloc(255, 0x41), 'evil')));
  peer.pub('wsgate.default.fanout', sealed(fanout(OP.PUBLISH, Buffer.alloc(200, 0x41), 'evil too')));
  // Truncated and empty ones too.
  peer.pub('wsgate.default.fanout', sealed(Buffer.from([OP.BROADCAST, 0])));
  peer.pub('wsgate.default.fanout', sealed(Buffer.alloc(0)));
  peer.pub('wsgate.default.fanout', sealed(fanout(OP.BROADCAST, '', 'hello from a peer')));
  await peer.flush();
  // The well-formed broadcast arrives; the malformed ones do not.
  assert.equal((await nextMessage(ws)).data, 'hello from a peer');
  await sleep(200);
  ws.close();
  // The ASan build reports the leaked operation at exit.
  await gw.stop();
  assert.doesNotMatch(gw.output(), /LeakSanitizer|AddressSanitizer|Assertion/);
});

/** Every item of a listing, page after page, through gw. */
async function listAll(gw, query = '') {
  const ids = [];
  let cursor = null;
  for (let pages = 0; pages < 100; pages++) {
    const q = `limit=1000${query}${cursor ? `&cursor=${cursor}` : ''}`;
    const r = await mgmtRequest(gw, 'GET', `/@connections?${q}`);
    assert.equal(r.status, 200, r.text);
    const page = r.json();
    for (const it of page.items) ids.push(it.connectionId);
    cursor = page.cursor;
    if (cursor === null) return ids;
  }
  throw new Error('the listing never ended');
}

test('redteam 2: a listing page from another node larger than NATS\'s max_payload is cut to fit, not lost (its node skipped after the timeout)', { skip: natsSkip }, async (t) => {
  const nats = await startNats(t, { config: 'max_payload: 65536' });
  // Each client joins 64 channels of 120 characters: ~8 KB per item.
  const names = Array.from({ length: 64 }, (_, i) => `${String(i).padStart(3, '0')}-${'c'.repeat(116)}`);
  const backend = await startBackend((e) => (e.requestContext.eventType === 'CONNECT'
    ? { statusCode: 200, subscribe: names } : { statusCode: 200 }));
  const api = makeApi(backend.url);
  const a = await startGateway({ routes: api, args: nodeArgs(nats, 1) });
  const b = await startGateway({ routes: api, args: nodeArgs(nats, 2) });
  const onB = [];
  for (let i = 0; i < 12; i++) onB.push((await connectWithId(b, backend)).id);
  // Node 1 has heard node 2's "alive".
  await sleep(1300);
  const t0 = Date.now();
  const listed = await listAll(a);
  const took = Date.now() - t0;
  t.diagnostic(`listed ${listed.length} in ${took} ms`);
  assert.deepEqual([...listed].sort(), [...onB].sort(), 'every connection of node 2, once');
  assert.ok(took < 1500, `no page waited for the cluster timeout (${took} ms)`);
  // The channel filter too.
  assert.equal((await listAll(a, `&channel=${names[63]}`)).length, 12);
});

test('redteam 3: a listing cursor is 8 hex digits exactly: signs, blanks and 0x are 400, not read by strtoull', async (t) => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: makeApi(backend.url), args: ['--workers', '2'] });
  await connectWithId(gw, backend);
  for (const bad of ['+0000000', '-0000000', '%200000000', '0x000000', '0X000000', '+1000000',
    '0000000g', '000000000', '0000000', '']) {
    const r = await mgmtRequest(gw, 'GET', `/@connections?cursor=${bad}`);
    assert.equal(r.status, 400, `cursor ${JSON.stringify(bad)}: ${r.status} ${r.text}`);
    assert.match(r.text, /Invalid cursor/);
  }
  for (const good of ['00000000', '01000000', '0000ffFF']) {
    const r = await mgmtRequest(gw, 'GET', `/@connections?cursor=${good}`);
    assert.equal(r.status, 200, `cursor ${good}: ${r.text}`);
  }
});

test('redteam 4: a channel name with CR/LF from an integration\'s answer cannot forge a line of the gateway\'s log', async (t) => {
  const forged = '2020-01-01T00:00:00.000Z error FORGED by a subscribe list';
  const backend = await startBackend((e) => (e.requestContext.eventType === 'CONNECT'
    // (one warning per 10 s is logged: the unsubscribe list's, applied first)
    ? { statusCode: 200, unsubscribe: [`room\n${forged}\r${forged}\u001b[2J`], subscribe: 'ok' }
    : { statusCode: 200 }));
  const gw = await startGateway({ routes: makeApi(backend.url) });
  await connectWithId(gw, backend);
  await waitUntil(() => /asked to leave channel/.test(gw.output()), 3000, 'the warning');
  await gw.stop();
  const lines = gw.output().split(/\r\n|\r|\n/);
  assert.ok(!lines.some((l) => l.startsWith('2020-01-01')), `a forged line:\n${gw.output()}`);
  assert.doesNotMatch(gw.output(), /\u001b/, 'no terminal escapes');
  assert.match(gw.output(), /asked to leave channel "room\\n2020/, 'the name, escaped');
});

test('redteam 5: a SIGHUP storm (200 reloads, the files changing) while clients connect, talk, join channels and close', async (t) => {
  // $connect takes 30 ms, so reloads land during it; half the answers
  // subscribe to a channel.
  let n = 0;
  const backend = await startBackend(async (e) => {
    const type = e.requestContext.eventType;
    if (type === 'CONNECT') {
      await sleep(30);
      return { statusCode: 200, ...(++n % 2 ? { subscribe: ['storm'] } : {}) };
    }
    if (type === 'MESSAGE') return { statusCode: 200, body: e.body };
    return { statusCode: 200 };
  });
  const api = (v) => makeApi(backend.url, { limits: { maxMessageBytes: 131072 + v } });
  const gw = await startGateway({ routes: api(0), args: ['--workers', '2'] });
  const file = path.join(gw.routesDir, 'chat.json');
  let storming = true;
  const storm = (async () => {
    for (let i = 0; i < 200 && storming; i++) {
      if (i % 10 === 0) writeFileSync(file, JSON.stringify(api(i)));
      gw.proc.kill('SIGHUP');
      await sleep(10);
    }
  })();
  const clients = async (k) => {
    for (let j = 0; j < 40 && (storming || j < 8); j++) {
      const { ws } = await connectWithId(gw, backend);
      ws.send(`m-${k}-${j}`);
      assert.equal((await nextMessage(ws)).data, `m-${k}-${j}`);
      ws.close();
    }
  };
  await Promise.all([storm.then(() => { storming = false; }),
    ...Array.from({ length: 6 }, (_, k) => clients(k))]);
  storming = false;
  // Still serving; the channel publish reaches a member that joined during it.
  const { ws } = await connectWithId(gw, backend);
  const { ws: ws2 } = await connectWithId(gw, backend);
  const r = await mgmtRequest(gw, 'POST', '/@channels/storm', 'after');
  assert.equal(r.status, 200);
  assert.equal(r.json().queued, 1, r.text);
  const got = await Promise.race([nextMessage(ws, 2000), nextMessage(ws2, 2000)]);
  assert.equal(got.data, 'after');
  ws.close();
  ws2.close();
  await waitUntil(() => backend.eventsOf('DISCONNECT').length === backend.eventsOf('CONNECT').length,
    5000, 'one $disconnect per $connect');
  await gw.stop();
});

test('redteam 6: a node with another cluster secret is named in the log and left out of listings, whose IDs no node here can reach', { skip: natsSkip }, async (t) => {
  const nats = await startNats(t);
  const other = path.join(path.dirname(nats.secret), 'other');
  writeFileSync(other, 'another secret, long enough too\n', { mode: 0o600 });
  const backend = await startBackend();
  const a = await startGateway({ routes: makeApi(backend.url), args: nodeArgs(nats, 1) });
  const b = await startGateway({
    routes: makeApi(backend.url),
    args: [...nodeArgs(nats, 2)].map((x) => (x === nats.secret ? other : x)),
  });
  const { id } = await connectWithId(b, backend);
  // Node 1 hears node 2's "alive" within a second.
  await waitUntil(() => /node 2 .*another --cluster-secret-file/.test(a.output()), 4000, 'the warning on node 1');
  // The connection is unreachable from node 1 (its ID does not verify here)...
  assert.equal((await mgmtRequest(a, 'POST', `/@connections/${id}`, 'x')).status, 410);
  // ...so node 1 does not list it either.
  assert.deepEqual(await listAll(a), []);
  // A node with the right secret is listed.
  const c = await startGateway({ routes: makeApi(backend.url), args: nodeArgs(nats, 3) });
  const { id: id3 } = await connectWithId(c, backend);
  await sleep(1300);
  assert.deepEqual(await listAll(a), [id3]);
});

test('redteam 7: a listing\'s query arguments are read whatever their length: an over-long channel is 400, not "no filter", and a long argument before limit does not hide it', async (t) => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: makeApi(backend.url) });
  await connectWithId(gw, backend);
  await connectWithId(gw, backend);
  let r = await mgmtRequest(gw, 'GET', `/@connections?channel=${'a'.repeat(300)}`);
  assert.equal(r.status, 400, `an over-long channel name: ${r.status} ${r.text.slice(0, 200)}`);
  assert.match(r.text, /Invalid channel name/);
  r = await mgmtRequest(gw, 'GET', `/@connections?pad=${'x'.repeat(300)}&limit=1`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json().items.length, 1, 'limit=1 after a long argument');
  r = await mgmtRequest(gw, 'GET', `/@connections?limit=1&cursor=${'0'.repeat(250)}`);
  assert.equal(r.status, 400, `an over-long cursor: ${r.status}`);
});

/** The hash constructor SignatureV4 wants, on node:crypto. */
class Sha256 {
  constructor(secret) { this.h = secret ? createHmac('sha256', secret) : createHash('sha256'); }
  update(d) { this.h.update(typeof d === 'string' ? Buffer.from(d) : d); }
  async digest() { return new Uint8Array(this.h.digest()); }
}

test('redteam 8: with managementAuth, a query argument the signature does not cover (over 255 bytes, or past the 32nd) is 403, not dropped from the check and then read', async (t) => {
  const KEY = 'AKIAWSGATEREDTEAM000';
  const SECRET = randomBytes(30).toString('base64');
  const backend = await startBackend();
  const gw = await startGateway({
    routes: makeApi(backend.url, { managementAuth: { keys: [{ accessKeyId: KEY, secretAccessKeyEnv: 'WSGATE_TEST_RT_SECRET' }] } }),
    env: { WSGATE_TEST_RT_SECRET: SECRET },
  });
  await connectWithId(gw, backend);
  await connectWithId(gw, backend);
  const signer = new SignatureV4({ service: 'execute-api', region: 'us-east-1', sha256: Sha256,
    credentials: { accessKeyId: KEY, secretAccessKey: SECRET } });
  const sign = async (query) => (await signer.sign({ method: 'GET', protocol: 'http:', hostname: '127.0.0.1',
    port: gw.mgmtPort, path: '/@connections', query, headers: { host: `127.0.0.1:${gw.mgmtPort}` } })).headers;
  // Signed as it is sent: 200.
  let r = await mgmtRequest(gw, 'GET', '/@connections?limit=2', undefined, { headers: await sign({ limit: '2' }) });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json().items.length, 2);
  // The same signature with an argument added that it does not cover.
  const headers = await sign({ limit: '2' });
  r = await mgmtRequest(gw, 'GET', `/@connections?limit=2&a=${'1'.repeat(300)}`, undefined, { headers });
  assert.equal(r.status, 403, `an unsigned 300-byte argument: ${r.status} ${r.text.slice(0, 120)}`);
  const many = Array.from({ length: 32 }, (_, i) => `p${String(i).padStart(2, '0')}=x`);
  const q = Object.fromEntries(many.map((kv) => kv.split('=')));
  r = await mgmtRequest(gw, 'GET', `/@connections?${many.join('&')}&zz=1`, undefined, { headers: await sign(q) });
  assert.equal(r.status, 403, `an unsigned 33rd argument: ${r.status} ${r.text.slice(0, 120)}`);
});

/** A heartbeat as a node holding this secret sends it (cluster.c alive_tag). */
/** Node `node`'s heartbeat, sealed (a fresh sequence each time). */
const aliveFor = (secretText, node) => () => seal(messageKey(secretText),
  { type: ENV.ALIVE, node, subject: 'wsgate.default.alive' });

test('redteam 9: a peer that answers every LIST page "200, nothing, more loops" cannot keep a listing going for ever', { skip: natsSkip }, async (t) => {
  const nats = await startNats(t);
  const backend = await startBackend();
  const gw = await startGateway({ routes: makeApi(backend.url), args: nodeArgs(nats, 1) });
  const { id } = await connectWithId(gw, backend);
  const peer = await natsPeer(t, nats.port, 'redteam');
  // Node 9 holds the secret (its heartbeat is right) but answers 200 with
  // no items to every loop it is asked for, never 204 ("no such loop").
  const alive = aliveFor('a cluster secret that is long enough\n', 9);
  peer.sub('wsgate.default.node.9.op', 1);
  let asked = 0;
  const key = messageKey('a cluster secret that is long enough\n');
  const stop = peer.serve((m) => {
    asked++;
    return seal(key, { type: ENV.REPLY, node: 9, subject: m.reply, payload: Buffer.from('2000000000000000000') });
  });
  const beat = setInterval(() => peer.pub('wsgate.default.alive', alive()), 300);
  t.after(() => { stop(); clearInterval(beat); });
  peer.pub('wsgate.default.alive', alive());
  await peer.flush();
  await sleep(300);
  const r = await mgmtRequest(gw, 'GET', '/@connections?limit=1000', undefined, { timeoutMs: 8000 }).catch((e) => { t.diagnostic(`asked ${asked}`); throw e; });
  t.diagnostic(`node 9 was asked ${asked} times`);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json().items.map((i) => i.connectionId), [id]);
  assert.equal(r.json().cursor, null);
  assert.ok(asked <= 256, `node 9 asked ${asked} times: at most once per loop number`);
});

test('redteam 10: CR, LF, quotes and control bytes in paths and headers stay inside one JSON access-log line each', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-redteam-alog-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'access.log');
  const backend = await startBackend();
  const format = '{"id":"$context.requestId","type":"$context.eventType","path":"$context.path",'
    + '"ua":"$context.identity.userAgent","err":"$context.error.messageString","method":"$context.httpMethod"}';
  const gw = await startGateway({ routes: makeApi(backend.url, { accessLog: { destination: file, format } }) });
  const evil = '%0d%0a%7b%22forged%22%3a1%7d%0a%22%5c%01%7f%e2%80%a8';
  // A WebSocket upgrade, a REST request and management calls, each with
  // the same bytes in the path (and the upgrade in its User-Agent too).
  const { ws } = await connectWithId(gw, backend, { headers: { 'User-Agent': 'ua "\\ }' } }, `/?q=${evil}`);
  ws.close();
  await mgmtRequest(gw, 'GET', `/@connections/${evil}`);
  await mgmtRequest(gw, 'POST', `/dev/@channels/${evil}`, 'x');
  const sock = await rawConnect(gw.port);
  sock.write(`GET /rest/${evil} HTTP/1.1\r\nHost: h\r\nUser-Agent: a\u0001"b\r\nConnection: close\r\n\r\n`);
  await sock.closedPromise;
  let parsed = [];
  await waitUntil(() => {
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    const raw = text.split('\n').filter(Boolean);
    parsed = raw.map((l) => JSON.parse(l)); // each line is one JSON object
    return parsed.length >= 3;
  }, 5000, 'the access log lines').catch((e) => { t.diagnostic(readFileSync(file, 'utf8')); throw e; });
  assert.ok(!parsed.some((l) => 'forged' in l), 'no forged object');
  assert.equal(parsed.find((l) => l.type === 'CONNECT').ua, 'ua "\\ }');
});

test('redteam 11: libwebsockets\' own warnings that a client causes (too many query arguments) are rate-limited, not one log line per request', async (t) => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: makeApi(backend.url) });
  const path100 = `/@connections?${'a=1&'.repeat(100)}limit=1`;
  // The gateway answers these itself (431, polish item 2) before
  // libwebsockets' parser would drop them with a warning.
  for (let i = 0; i < 20; i++) {
    const rs = await Promise.all(Array.from({ length: 10 }, () => mgmtRequest(gw, 'GET', path100).catch(() => null)));
    for (const r of rs) if (r) assert.equal(r.status, 431);
  }
  // Still serving; ten seconds later a refusal is logged again, with the count.
  assert.equal((await mgmtRequest(gw, 'GET', '/@connections?limit=1')).status, 200);
  // A request after a POST on a kept-alive connection is still parsed by
  // libwebsockets alone (README known gaps): its warnings are rate-limited.
  const afterPost = async () => {
    const sock = await rawConnect(gw.mgmtPort);
    sock.write('POST /@connections/abc HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi');
    await waitResponses(sock, ['POST']);
    sock.write(`GET ${path100} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await sock.closedPromise;
  };
  for (let i = 0; i < 20; i++) await Promise.all(Array.from({ length: 5 }, afterPost));
  await sleep(1100);
  await afterPost();
  const n = gw.output().split('\n').filter((l) => /lws: |management request refused/.test(l)).length;
  t.diagnostic(`${n} log lines for 300 requests`);
  assert.ok(n <= 30, `${n} log lines for 300 requests`);
  await gw.stop();
  assert.match(gw.output(), /similar libwebsockets lines not logged/);
});
