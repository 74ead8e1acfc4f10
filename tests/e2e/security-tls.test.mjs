// Issue 12, "Browsers and TLS", the TLS part: several certificates chosen by
// SNI (--tls DIR, repeated --tls-cert/--tls-key), reloaded on SIGHUP without
// dropping connections, TLS 1.2 and later only, ALPN http/1.1. Certificates
// are made at test time with `openssl req`; which one a handshake got is told
// by its SHA-256 fingerprint.
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import {
  assert, test, startPair, startGateway, runGateway, connect, nextMessage, waitUntil,
  echoHandler, makeApi, startBackend, writeRoutes,
} from './helpers.mjs';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgate-sni-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
let seq = 0;

/** A self-signed certificate for `names` (SAN DNS entries, the first also the
 * CN) written as BASE.crt + BASE.key in dir, or BASE.pem holding both. */
function makeCert(dir, base, names, { pem = false } = {}) {
  fs.mkdirSync(dir, { recursive: true });
  const work = path.join(tmp, `gen-${seq++}`);
  fs.mkdirSync(work);
  const crt = path.join(work, 'c.crt');
  const key = path.join(work, 'c.key');
  const san = names.length ? ['-addext', `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`] : [];
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${names[0] ?? 'nameless'}`,
    ...san, '-keyout', key, '-out', crt, '-days', '2'], { stdio: 'ignore' });
  const out = {};
  // Written beside, then renamed: a reload never reads a half-written file.
  const place = (file, data) => {
    fs.writeFileSync(`${file}.tmp`, data);
    fs.renameSync(`${file}.tmp`, file);
  };
  if (pem) {
    out.cert = out.key = path.join(dir, `${base}.pem`);
    place(out.cert, Buffer.concat([fs.readFileSync(crt), fs.readFileSync(key)]));
  } else {
    out.cert = path.join(dir, `${base}.crt`);
    out.key = path.join(dir, `${base}.key`);
    place(out.key, fs.readFileSync(key));
    place(out.cert, fs.readFileSync(crt));
  }
  out.fp = new X509Certificate(fs.readFileSync(crt)).fingerprint256;
  return out;
}

/** A TLS handshake; resolves the socket (the caller ends it), rejects with
 * the handshake's error. No servername: no SNI (Node sends none to an IP). */
function handshake(port, opts = {}) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...opts }, () => resolve(s));
    s.once('error', reject);
    s.setTimeout(5000, () => { s.destroy(); reject(new Error('handshake timed out')); });
  });
}

async function peerFp(port, servername) {
  const s = await handshake(port, servername ? { servername } : {});
  const fp = s.getPeerCertificate().fingerprint256;
  s.end();
  return fp;
}

function httpsGet(port, servername, pathName = '/nothing') {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path: pathName, servername, rejectUnauthorized: false, agent: false }, (res) => {
      const fp = res.socket.getPeerCertificate().fingerprint256;
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body, fp }));
    });
    req.on('error', reject);
  });
}

const wssFp = (ws) => ws._socket.getPeerCertificate().fingerprint256;

async function echo(ws, text) {
  ws.send(text);
  assert.equal((await nextMessage(ws)).data, text);
}

test('TLS by SNI (--tls DIR): each name gets its certificate, no SNI and unknown names the default, over wss:// and https://', async () => {
  const dir = path.join(tmp, 'dir1');
  const b = makeCert(dir, 'b', ['b.test', '*.b.test']);
  const dflt = makeCert(dir, 'default', ['a.test'], { pem: true }); // sorts after b: "default" makes it the default
  fs.writeFileSync(path.join(dir, 'README'), 'not a certificate: ignored');
  const { gw } = await startPair(echoHandler, {}, { args: ['--tls', dir] });
  assert.match(gw.output(), /tls: .*default\.pem serves a\.test \(and the default/);
  assert.match(gw.output(), /tls: .*b\.crt serves b\.test, \*\.b\.test\n/);

  assert.equal(await peerFp(gw.port), dflt.fp, 'no SNI: the default');
  assert.equal(await peerFp(gw.port, 'a.test'), dflt.fp);
  assert.equal(await peerFp(gw.port, 'b.test'), b.fp);
  assert.equal(await peerFp(gw.port, 'B.TEST'), b.fp, 'names match without case');
  assert.equal(await peerFp(gw.port, 'x.b.test'), b.fp, 'wildcard, one label');
  assert.equal(await peerFp(gw.port, 'y.x.b.test'), dflt.fp, 'a wildcard covers one label only');
  assert.equal(await peerFp(gw.port, 'unknown.example'), dflt.fp, 'an unknown name: the default');

  const wsB = await connect(`wss://127.0.0.1:${gw.port}/`, { rejectUnauthorized: false, servername: 'b.test' });
  assert.equal(wssFp(wsB), b.fp);
  await echo(wsB, 'via b');
  const wsNone = await connect(`wss://127.0.0.1:${gw.port}/`, { rejectUnauthorized: false });
  assert.equal(wssFp(wsNone), dflt.fp);
  await echo(wsNone, 'via default');

  const rb = await httpsGet(gw.port, 'b.test');
  assert.equal(rb.fp, b.fp);
  assert.equal(rb.status, 404);
  assert.deepEqual(JSON.parse(rb.body), { message: 'Not Found' });
  assert.equal((await httpsGet(gw.port, 'a.test')).fp, dflt.fp);
});

test('TLS by SNI: repeated --tls-cert/--tls-key pairs, the first is the default', async () => {
  const dir = path.join(tmp, 'pairs');
  const one = makeCert(dir, 'one', ['one.test']);
  const two = makeCert(dir, 'two', [], { pem: true }); // no SAN: the CN names it
  const { gw } = await startPair(echoHandler, {}, {
    args: ['--tls-cert', one.cert, '--tls-key', one.key, '--tls-cert', two.cert, '--tls-key', two.key],
  });
  assert.equal(await peerFp(gw.port), one.fp);
  assert.equal(await peerFp(gw.port, 'nameless'), two.fp, 'the CN when there is no SAN');
  assert.equal(await peerFp(gw.port, 'other.test'), one.fp);
  const ws = await connect(`wss://127.0.0.1:${gw.port}/`, { rejectUnauthorized: false, servername: 'nameless' });
  assert.equal(wssFp(ws), two.fp);
  await echo(ws, 'pairs');
});

test('TLS reload on SIGHUP: an open wss:// connection keeps working, new handshakes get the new certificate; a broken pair is refused whole and the old keeps serving', { timeout: 30000 }, async () => {
  const dir = path.join(tmp, 'reload');
  const a1 = makeCert(dir, 'a', ['a.test']);
  const b1 = makeCert(dir, 'b', ['b.test']);
  const { gw } = await startPair(echoHandler, {}, { args: ['--tls', dir] });
  const old = await connect(`wss://127.0.0.1:${gw.port}/`, { rejectUnauthorized: false, servername: 'b.test' });
  assert.equal(wssFp(old), b1.fp);
  await echo(old, 'before');

  // b replaced, c added: both seen by the next handshakes.
  const b2 = makeCert(dir, 'b', ['b.test']);
  const c = makeCert(dir, 'c', ['c.test']);
  assert.notEqual(b2.fp, b1.fp);
  gw.proc.kill('SIGHUP');
  await waitUntil(() => /tls: certificates read again \(3 pairs\)/.test(gw.output()), 5000, 'the certificates read again');
  assert.equal(await peerFp(gw.port, 'b.test'), b2.fp);
  assert.equal(await peerFp(gw.port, 'c.test'), c.fp);
  assert.equal(await peerFp(gw.port), a1.fp);
  await echo(old, 'after the reload');
  assert.equal(wssFp(old), b1.fp, 'the open connection keeps its certificate');
  const fresh = await connect(`wss://127.0.0.1:${gw.port}/`, { rejectUnauthorized: false, servername: 'b.test' });
  assert.equal(wssFp(fresh), b2.fp);
  await echo(fresh, 'new');

  // A key that does not match its certificate: refused whole (c's removal
  // is not applied either), logged with the file; b2 keeps serving.
  const stray = makeCert(path.join(tmp, 'stray'), 'x', ['x.test']);
  fs.copyFileSync(stray.key, path.join(dir, 'b.key'));
  fs.rmSync(c.cert);
  fs.rmSync(c.key);
  gw.proc.kill('SIGHUP');
  await waitUntil(() => /tls: reload refused: .*b\.key: the private key does not match the certificate .*b\.crt.*; the running certificates stay/.test(gw.output()),
    5000, 'the refusal naming the file');
  assert.equal(await peerFp(gw.port, 'b.test'), b2.fp);
  assert.equal(await peerFp(gw.port, 'c.test'), c.fp);
  await echo(old, 'still');
  await echo(fresh, 'still');

  // Not PEM at all, and a certificate without its key: refused too.
  fs.writeFileSync(path.join(dir, 'b.crt'), 'garbage\n');
  gw.proc.kill('SIGHUP');
  await waitUntil(() => /tls: reload refused: .*b\.crt: cannot load the certificate chain: .*expected a PEM certificate/.test(gw.output()),
    5000, 'the refusal of a file that is not PEM');
  makeCert(dir, 'b', ['b.test']);
  fs.rmSync(path.join(dir, 'a.key'));
  gw.proc.kill('SIGHUP');
  await waitUntil(() => /tls: reload refused: .*a\.crt: no a\.key next to it/.test(gw.output()), 5000, 'the refusal of a lone certificate');
  assert.equal(await peerFp(gw.port, 'b.test'), b2.fp);
  assert.equal(await peerFp(gw.port), a1.fp);
  assert.equal(old.readyState, 1);
  await echo(old, 'to the end');
});

test('TLS 1.2 and later only: a TLS 1.1 client gets protocol_version; 1.2 and 1.3 connect', async () => {
  const dir = path.join(tmp, 'versions');
  makeCert(dir, 'default', ['v.test']);
  const { gw } = await startPair(echoHandler, {}, { args: ['--tls', dir] });
  // SECLEVEL=0 lets Node's OpenSSL offer TLS 1.1 at all: the refusal is the gateway's.
  await assert.rejects(handshake(gw.port, { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }),
    (e) => e.code === 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
  for (const v of ['TLSv1.2', 'TLSv1.3']) {
    const s = await handshake(gw.port, { minVersion: v, maxVersion: v });
    assert.equal(s.getProtocol(), v);
    if (v === 'TLSv1.2') assert.match(s.getCipher().name, /^ECDHE-RSA-AES\d+-GCM-SHA\d+$|CHACHA20/);
    s.end();
  }
});

test('ALPN: http/1.1 is selected when offered, a client offering only h2 gets no_application_protocol, no ALPN proceeds without', async () => {
  const dir = path.join(tmp, 'alpn');
  makeCert(dir, 'default', ['alpn.test']);
  const { gw } = await startPair(echoHandler, {}, { args: ['--tls', dir] });
  const s = await handshake(gw.port, { ALPNProtocols: ['h2', 'http/1.1'] });
  assert.equal(s.alpnProtocol, 'http/1.1');
  s.end();
  await assert.rejects(handshake(gw.port, { ALPNProtocols: ['h2'] }),
    (e) => e.code === 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL');
  const none = await handshake(gw.port);
  assert.equal(none.alpnProtocol, false);
  none.end();
  const ws = await connect(`wss://127.0.0.1:${gw.port}/`, { rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
  assert.equal(ws._socket.alpnProtocol, 'http/1.1');
  await echo(ws, 'alpn');
});

test('TLS options are validated with the file and what was expected, at start and by --check', async () => {
  const backend = await startBackend();
  const routes = writeRoutes({ 'api.json': makeApi(backend.url) });
  const dir = path.join(tmp, 'opts');
  const good = makeCert(dir, 'good', ['good.test']);
  const other = makeCert(path.join(tmp, 'opts-other'), 'other', ['other.test']);
  const data = fs.mkdtempSync(path.join(tmp, 'data-'));
  const base = ['--routes', routes, '--listen', '127.0.0.1:0', '--mgmt-listen', '127.0.0.1:0', '--data', data];
  const cases = [
    [['--tls-cert', good.cert], 2, /--tls-cert .*good\.crt: no --tls-key after it/],
    [['--tls-key', good.key], 2, /--tls-key .*good\.key: expected after its --tls-cert/],
    [['--tls', dir, '--tls-cert', good.cert, '--tls-key', good.key], 2, /--tls DIR and --tls-cert\/--tls-key are alternatives/],
    [['--tls-cert', path.join(dir, 'missing.crt'), '--tls-key', good.key], 1, /missing\.crt: cannot read it: No such file or directory \(expected a PEM certificate chain\)/],
    [['--tls-cert', good.cert, '--tls-key', other.key], 1, /other\.key: the private key does not match the certificate .*good\.crt \(expected the key the certificate was made for\)/],
    [['--tls-cert', good.key, '--tls-key', good.key], 1, /good\.key: cannot load the certificate chain: .*\(expected a PEM certificate/],
    [['--tls', path.join(tmp, 'nowhere')], 1, /nowhere: cannot read the folder: No such file or directory \(expected a folder of NAME\.crt \+ NAME\.key or NAME\.pem files\)/],
    [['--tls', fs.mkdtempSync(path.join(tmp, 'empty-'))], 1, /no certificate in the folder/],
  ];
  for (const [args, code, re] of cases) {
    const r = await runGateway([...base, ...args]);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.output}`);
    assert.match(r.output, re, args.join(' '));
    assert.equal(r.started, false);
  }
  const bad = await runGateway(['--routes', routes, '--check', '--tls-cert', good.cert, '--tls-key', other.key]);
  assert.equal(bad.code, 1, bad.output);
  assert.match(bad.output, /wsgate: TLS: .*other\.key: the private key does not match/);
  const ok = await runGateway(['--routes', routes, '--check', '--tls', dir]);
  assert.equal(ok.code, 0, ok.output);
  assert.match(ok.output, /configuration OK/);
  await backend.close?.();
});

test('TLS reload under handshakes: 10 SIGHUPs while 4 clients handshake in a loop on 2 event loops; none fails, each gets one of the two certificates', { timeout: 30000 }, async () => {
  const dir = path.join(tmp, 'race');
  const v1 = makeCert(path.join(tmp, 'race-v1'), 'default', ['race.test']);
  const v2 = makeCert(path.join(tmp, 'race-v2'), 'default', ['race.test']);
  // Key then certificate, each renamed into place: a reload in between sees
  // a mismatch and is refused, which is part of the storm.
  const install = (v) => {
    fs.mkdirSync(dir, { recursive: true });
    for (const f of [v.key, v.cert]) {
      fs.copyFileSync(f, path.join(dir, `${path.basename(f)}.tmp`));
      fs.renameSync(path.join(dir, `${path.basename(f)}.tmp`), path.join(dir, path.basename(f)));
    }
  };
  install(v1);
  const { gw } = await startPair(echoHandler, {}, { args: ['--tls', dir, '--workers', '2'] });
  const seen = new Set();
  let stop = false;
  let done = 0;
  const client = async () => {
    while (!stop) {
      seen.add(await peerFp(gw.port, 'race.test'));
      done++;
    }
  };
  const clients = [client(), client(), client(), client()];
  for (let i = 0; i < 10; i++) {
    install(i % 2 ? v1 : v2);
    gw.proc.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 60));
  }
  stop = true;
  await Promise.all(clients);
  assert.ok(done >= 8, `${done} handshakes`);
  for (const fp of seen) assert.ok(fp === v1.fp || fp === v2.fp, fp);
  // The last files written (v1) win once the reloads settle.
  await waitUntil(async () => (await peerFp(gw.port, 'race.test')) === v1.fp, 5000, "the last certificate written");
  const ws = await connect(`wss://127.0.0.1:${gw.port}/`, { rejectUnauthorized: false, servername: 'race.test' });
  await echo(ws, 'after the storm');
});
