// Issue 10, "wss:// costs what TLS costs": after a TLS 1.3 handshake the
// gateway frees OpenSSL's SSL object and carries the session in its own
// record layer (src/tlsrec.c, keys from the keylog secrets); TLS 1.2 stays
// on OpenSSL. The gateway runs at --log-level debug so each test can see
// which path a session took. Memory per idle connection is a benchmark row
// (clients/bench/run.sh, idle_tls), not a test.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  assert, test, startBackend, startGateway, startHttpBackend, makeApi, connect, header,
  nextMessage, waitClose, waitUntil, postTo, deleteConn, echoHandler, WSGATE_BIN,
  selfSignedCert,
} from './helpers.mjs';

const { cert, key } = selfSignedCert('tlsoff');

const tlsArgs = ['--tls-cert', cert, '--tls-key', key, '--log-level', 'debug'];
const insecure = { rejectUnauthorized: false };
const wss = (gw) => `wss://127.0.0.1:${gw.port}/`;
const HANDED = /a TLS 1\.3 session \((\S+), (\d+) records? sent\) goes on in the gateway's record layer/g;
const handedOver = (gw) => [...gw.output().matchAll(HANDED)];
const stayed = (gw) => (gw.output().match(/a TLSv1\.2 session stays on OpenSSL/g) || []).length;

function pattern(n, seed) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed + (i >> 8)) & 0xff;
  return b;
}
// Text of n bytes (ASCII), distinct per seed.
const text = (n, seed) => Buffer.from(pattern(n, seed).map((c) => 0x21 + (c % 90))).toString();

/** Sends msg, in frames of at most 30 KB (AWS's frame limit is 32 KB). */
function sendFragmented(ws, msg) {
  const step = 30 * 1024;
  if (msg.length <= step) { ws.send(msg); return; }
  for (let off = 0; off < msg.length; off += step) {
    ws.send(msg.slice(off, off + step), { fin: off + step >= msg.length });
  }
}

const SIZES = [1, 16 * 1024, 100 * 1024];

let tagSeq = 0;
/** wss:// connection and its ID (from the CONNECT event). */
async function connectWithId(gw, aws, opts = {}) {
  const tag = `t${++tagSeq}`;
  const ws = await connect(wss(gw), { ...insecure, ...opts, headers: { 'X-Tag': tag } });
  const ev = await aws.waitFor((e) => e.requestContext?.eventType === 'CONNECT' && header(e.headers, 'X-Tag') === tag);
  return { ws, id: ev.requestContext.connectionId };
}

test('tls offload: messages of 1 B, 16 KB and 100 KB (fragmented) both ways through an HTTP_PROXY route, many times', async () => {
  const hb = await startHttpBackend((r) => ({ status: 200, body: r.body }));
  const aws = await startBackend(echoHandler);
  const api = makeApi(aws.url);
  api.integrations.hp = { type: 'HTTP_PROXY', uri: `${hb.origin}/echo`, timeoutMs: 5000 };
  api.routes.$default = { integration: 'hp', routeResponse: true };
  const gw = await startGateway({ routes: api, args: tlsArgs });
  const ws = await connect(wss(gw), insecure);
  const got = [];
  ws.on('message', (d) => got.push(String(d)));
  const sent = [];
  for (let round = 0; round < 8; round++) {
    for (const n of SIZES) {
      const m = text(n, round * 3 + n);
      sent.push(m);
      sendFragmented(ws, m);
    }
  }
  await waitUntil(() => got.length === sent.length, 20000, `${sent.length} answers`);
  for (let i = 0; i < sent.length; i++) assert.ok(got[i] === sent[i], `answer ${i} (${sent[i].length} B) differs`);
  assert.equal(handedOver(gw).length, 1, 'the session went to the record layer');
});

test('tls offload: a MOCK route answers every message of every size; management POSTs of every size reach the client', async () => {
  const aws = await startBackend(echoHandler);
  const api = makeApi(aws.url);
  api.integrations.m = { type: 'MOCK', statusCode: 200, body: 'pong' };
  api.routes.$default = { integration: 'm', routeResponse: true };
  const gw = await startGateway({ routes: api, args: tlsArgs });
  const { ws, id } = await connectWithId(gw, aws);
  const got = [];
  ws.on('message', (d, isBinary) => got.push({ d: Buffer.from(d), isBinary }));
  let n = 0;
  for (let round = 0; round < 10; round++) for (const size of SIZES) { sendFragmented(ws, text(size, round)); n++; }
  await waitUntil(() => got.length === n, 20000, `${n} pongs`);
  assert.ok(got.every((m) => m.d.toString() === 'pong'));
  got.length = 0;
  const posted = [];
  for (let round = 0; round < 10; round++) {
    for (const size of SIZES) {
      const b = pattern(size, round);
      b[0] = 0xff; // binary: not UTF-8
      const res = await postTo(gw, id, b);
      assert.equal(res.status, 200);
      posted.push(b);
    }
  }
  await waitUntil(() => got.length === posted.length, 20000, `${posted.length} posted messages`);
  for (let i = 0; i < posted.length; i++) {
    assert.ok(got[i].isBinary && got[i].d.equals(posted[i]), `posted message ${i} (${posted[i].length} B) differs`);
  }
  assert.equal(handedOver(gw).length, 1);
});

test('tls offload: close codes cross both ways (client close to $disconnect, management DELETE to the client)', async () => {
  const aws = await startBackend(echoHandler);
  const gw = await startGateway({ routes: makeApi(aws.url), args: tlsArgs });
  const a = await connectWithId(gw, aws);
  a.ws.close(4003, 'offloaded bye');
  const disc = await aws.waitFor((e) => e.requestContext?.eventType === 'DISCONNECT' &&
    e.requestContext.connectionId === a.id);
  assert.equal(disc.requestContext.disconnectStatusCode, 4003);
  assert.equal(disc.requestContext.disconnectReason, 'offloaded bye');
  const b = await connectWithId(gw, aws);
  const closed = waitClose(b.ws);
  assert.equal((await deleteConn(gw, b.id)).status, 204);
  assert.equal((await closed).code, 1000);
  // The TLS session ended with our close_notify, not a reset.
  assert.equal(b.ws._socket?.destroyed ?? true, true);
  assert.equal(handedOver(gw).length, 2);
});

test('tls offload: every TLS 1.3 suite, a resumed session (its tickets counted) and a TLS 1.2 client (stays on OpenSSL)', async () => {
  const aws = await startBackend(echoHandler);
  const gw = await startGateway({ routes: makeApi(aws.url), args: tlsArgs });
  const suites = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];
  let session = null;
  for (const s of suites) {
    const ws = await connect(wss(gw), { ...insecure, ciphers: s, minVersion: 'TLSv1.3' });
    ws.send(`suite ${s}`);
    assert.equal(String((await nextMessage(ws)).data), `suite ${s}`);
    session = ws._socket.getSession(); // the last ticket received
    ws.close();
    await waitClose(ws);
  }
  assert.deepEqual(handedOver(gw).map((m) => m[1]), suites);
  // The tickets OpenSSL sent under the new key (2) were counted.
  assert.ok(handedOver(gw).every((m) => m[2] === '2'), gw.output().match(HANDED)?.join('\n'));
  assert.ok(session, 'a session ticket arrived');
  // The same hash as the ticket's suite (ChaCha20's SHA-256), or no PSK.
  const again = await connect(wss(gw), { ...insecure, session, ciphers: suites[2], minVersion: 'TLSv1.3' });
  assert.equal(again._socket.isSessionReused(), true, 'the ticket was accepted');
  again.send('resumed');
  assert.equal(String((await nextMessage(again)).data), 'resumed');
  again.close();
  await waitClose(again);
  assert.equal(handedOver(gw).length, 4);

  const old = await connect(wss(gw), { ...insecure, maxVersion: 'TLSv1.2' });
  assert.equal(old._socket.getProtocol(), 'TLSv1.2');
  const big = text(100 * 1024, 9);
  sendFragmented(old, big);
  assert.equal(String((await nextMessage(old)).data), big);
  old.close(4004);
  const disc = await aws.waitFor((e) => e.requestContext?.eventType === 'DISCONNECT' &&
    e.requestContext.disconnectStatusCode === 4004);
  assert.ok(disc);
  assert.equal(stayed(gw), 1);
  assert.equal(handedOver(gw).length, 4);
});

test('tls offload: a client KeyUpdate (with and without update_requested) is followed; the gateway answers with its own', async () => {
  const client = path.join(path.dirname(WSGATE_BIN), 'tls_keyupdate_client');
  assert.ok(fs.existsSync(client), `${client} (built by CMake) is missing`);
  const aws = await startBackend(echoHandler);
  const gw = await startGateway({ routes: makeApi(aws.url), args: tlsArgs });
  const out = await new Promise((resolve, reject) => {
    execFile(client, [String(gw.port), '6'], { timeout: 15000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
  // Rounds 0, 2, 4 asked for an update: three KeyUpdates came back.
  assert.equal(out.trim(), 'rounds 6 keyupdates-received 3 close 4005');
  const disc = await aws.waitFor((e) => e.requestContext?.eventType === 'DISCONNECT');
  assert.equal(disc.requestContext.disconnectStatusCode, 4005);
  assert.equal(handedOver(gw).length, 1);
});
