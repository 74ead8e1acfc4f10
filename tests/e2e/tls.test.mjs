// wss:// and https:// on the gateway listener (--tls-cert/--tls-key): the
// handshake is held for $connect exactly as on ws://, so a refusal's HTTP
// status reaches the client through TLS too.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import {
  assert, test, startPair, connect, connectRefused, nextMessage, waitClose,
  postTo, header, echoHandler,
} from './helpers.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgate-tls-'));
const cert = path.join(dir, 'cert.pem');
const key = path.join(dir, 'key.pem');
execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost',
  '-keyout', key, '-out', cert, '-days', '2'], { stdio: 'ignore' });
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

const tlsArgs = { args: ['--tls-cert', cert, '--tls-key', key] };
const wss = (gw, p = '/') => `wss://127.0.0.1:${gw.port}${p}`;
const insecure = { rejectUnauthorized: false };

test('wss: $connect accepts, messages flow both ways, $disconnect gets the close code', async () => {
  const { backend, gw } = await startPair(echoHandler, {}, tlsArgs);
  const ws = await connect(wss(gw, '/?room=1'), { ...insecure, headers: { 'X-Tag': 'tls-1' } });
  const ev = await backend.waitFor((e) => e.requestContext?.eventType === 'CONNECT');
  assert.equal(header(ev.headers, 'X-Tag'), 'tls-1');
  assert.deepEqual(ev.queryStringParameters, { room: '1' });
  ws.send('over tls');
  assert.equal((await nextMessage(ws)).data, 'over tls');
  ws.close(4002, 'tls bye');
  const disc = await backend.waitFor((e) => e.requestContext?.eventType === 'DISCONNECT');
  assert.equal(disc.requestContext.disconnectStatusCode, 4002);
  assert.equal(disc.requestContext.disconnectReason, 'tls bye');
});

test('wss: a $connect refusal reaches the client as its HTTP status', async () => {
  const { backend, gw } = await startPair((e) => (e.requestContext.eventType === 'CONNECT'
    ? { statusCode: 403, body: 'no' } : { statusCode: 200 }), {}, tlsArgs);
  assert.equal(await connectRefused(wss(gw), insecure), 403);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(backend.events.filter((e) => e.requestContext.eventType === 'DISCONNECT').length, 0);
});

test('wss: the subprotocol chosen by $connect is returned', async () => {
  const { gw } = await startPair((e) => (e.requestContext.eventType === 'CONNECT'
    ? { statusCode: 200, headers: { 'Sec-WebSocket-Protocol': 'v2' } } : { statusCode: 200 }), {}, tlsArgs);
  const ws = await connect(wss(gw), { ...insecure, protocols: ['v1', 'v2'] });
  assert.equal(ws.protocol, 'v2');
});

test('wss: large messages cross the TLS relay intact in both directions', async () => {
  const { backend, gw } = await startPair(echoHandler, {}, tlsArgs);
  const ws = await connect(wss(gw), insecure);
  const ev = await backend.waitFor((e) => e.requestContext?.eventType === 'CONNECT');
  const big = 'x'.repeat(120 * 1024);
  // In frames of 30 KB: AWS closes a frame over 32 KB (limits.maxFrameBytes).
  for (let i = 0; i < 4; i++) ws.send(big.slice(i * 30720, (i + 1) * 30720), { fin: i === 3 });
  assert.equal((await nextMessage(ws)).data, big);
  const bin = Buffer.alloc(100 * 1024);
  for (let i = 0; i < bin.length; i++) bin[i] = (i * 7 + 3) & 0xff;
  const res = await postTo(gw, ev.requestContext.connectionId, Buffer.concat([Buffer.from([0xff]), bin]));
  assert.equal(res.status, 200);
  const m = await nextMessage(ws);
  assert.equal(m.isBinary, true);
  assert.ok(m.data.equals(Buffer.concat([Buffer.from([0xff]), bin])));
});

test('https: plain requests on the TLS listener get the JSON 404, and a closed socket ends the connection', async () => {
  const { backend, gw } = await startPair(echoHandler, {}, tlsArgs);
  const body = await new Promise((resolve, reject) => {
    https.get({ host: '127.0.0.1', port: gw.port, path: '/nothing', ...insecure }, (res) => {
      let b = '';
      res.on('data', (d) => { b += d; });
      res.on('end', () => resolve({ status: res.statusCode, b }));
    }).on('error', reject);
  });
  assert.equal(body.status, 404);
  assert.deepEqual(JSON.parse(body.b), { message: 'Not Found' });
  const ws = await connect(wss(gw), insecure);
  await backend.waitFor((e) => e.requestContext?.eventType === 'CONNECT');
  ws._socket.destroy();
  const disc = await backend.waitFor((e) => e.requestContext?.eventType === 'DISCONNECT');
  assert.equal(disc.requestContext.disconnectStatusCode, 1006);
});

test('a server-initiated close crosses the relay (management DELETE over wss)', async () => {
  const { backend, gw } = await startPair(echoHandler, {}, tlsArgs);
  const ws = await connect(wss(gw), insecure);
  const ev = await backend.waitFor((e) => e.requestContext?.eventType === 'CONNECT');
  const closed = waitClose(ws);
  const res = await (await import('./helpers.mjs')).deleteConn(gw, ev.requestContext.connectionId);
  assert.equal(res.status, 204);
  const { code } = await closed;
  assert.equal(code, 1000);
});
