// What the cluster tests share: Debian's nats-server on loopback (with the
// cluster secret beside it), a cluster of gateway nodes, a bare NATS client
// speaking the text protocol (as a hostile peer would), and the payloads of
// cluster messages (src/cluster_wire.h).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { startBackend, startGateway, makeApi, withTimeout } from './helpers.mjs';

export const NATS_BIN = process.env.NATS_SERVER_BIN || 'nats-server';
const haveNats = spawnSync(NATS_BIN, ['--version']).status === 0;
// In CI nats-server must be there (scripts/install-deps.sh installs it).
if (!haveNats && process.env.CI) throw new Error(`${NATS_BIN} is missing in CI`);
/** The `skip` option of a test that needs nats-server. */
export const natsSkip = haveNats ? false
  : `${NATS_BIN} not found (apt-get install nats-server, or scripts/install-deps.sh)`;

export const SECRET_TEXT = 'a cluster secret that is long enough\n';

export async function freePort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/**
 * A nats-server on loopback, gone after the test t. `port` and `mport`
 * restart one on the same ports; `monitor` adds its HTTP monitoring (`-m`);
 * `config` is appended to its configuration file (e.g. a small
 * max_payload). Its folder holds the cluster secret (`secret`, mode 600).
 */
export async function startNats(t, { port, mport, monitor = false, config = '' } = {}) {
  port = port ?? await freePort();
  if (monitor || mport) mport = mport ?? await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-nats-'));
  const conf = path.join(dir, 'nats.conf');
  writeFileSync(conf, `listen: 127.0.0.1:${port}\n${mport ? `http: 127.0.0.1:${mport}\n` : ''}${config}\n`);
  writeFileSync(path.join(dir, 'secret'), SECRET_TEXT, { mode: 0o600 });
  const proc = spawn(NATS_BIN, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const ready = new Promise((resolve, reject) => {
    const check = (d) => { out += d; if (/Server is ready/.test(out)) resolve(); };
    proc.stdout.on('data', check);
    proc.stderr.on('data', check);
    proc.on('exit', (code) => reject(new Error(`nats-server exited (${code}):\n${out}`)));
  });
  const exited = new Promise((r) => proc.on('exit', r));
  const nats = {
    port,
    mport,
    url: `nats://127.0.0.1:${port}`,
    secret: path.join(dir, 'secret'),
    dir,
    async stop() { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL'); await exited; },
  };
  t.after(async () => { await nats.stop(); rmSync(dir, { recursive: true, force: true }); });
  await withTimeout(ready, 10000, `nats-server to start\n${out}`);
  return nats;
}

/** The gateway options of node `node` of the cluster on nats. */
export function clusterArgs(nats, node, { timeoutMs = 1500, workers = 2, url = nats.url } = {}) {
  return ['--nats', url, '--cluster-secret-file', nats.secret, '--node-id', String(node),
    '--cluster-timeout', String(timeoutMs), '--workers', String(workers)];
}

/**
 * nats + one backend (`handler`) + n nodes, node i with --node-id i+1;
 * `api` overrides the API file, `natsUrl(i, nats)` (may be async) picks a
 * node's NATS address (a proxy, say).
 */
export async function startCluster(t, {
  n = 3, api = {}, env = {}, handler, natsUrl, monitor = false, timeoutMs = 1500, workers = 2,
} = {}) {
  const nats = await startNats(t, { monitor });
  const backend = await startBackend(handler);
  const nodes = [];
  for (let i = 0; i < n; i++) {
    nodes.push(await startGateway({
      routes: makeApi(backend.url, api),
      env,
      args: clusterArgs(nats, i + 1, { timeoutMs, workers, url: natsUrl ? await natsUrl(i, nats) : nats.url }),
    }));
  }
  return { nats, backend, nodes };
}

/** A bare NATS client: PUB, SUB, PING/PONG and the MSGs it receives (in msgs). */
export async function natsPeer(t, port, name = 'peer') {
  const sock = net.connect(port, '127.0.0.1');
  let buf = Buffer.alloc(0);
  const msgs = [];
  let pong = null;
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      const eol = buf.indexOf('\r\n');
      if (eol < 0) return;
      const line = buf.subarray(0, eol).toString();
      if (line.startsWith('MSG ')) {
        const parts = line.split(' ');
        const len = Number(parts[parts.length - 1]);
        if (buf.length < eol + 2 + len + 2) return;
        msgs.push({ subject: parts[1], reply: parts.length === 5 ? parts[3] : '', data: Buffer.from(buf.subarray(eol + 2, eol + 2 + len)) });
        buf = buf.subarray(eol + 2 + len + 2);
        continue;
      }
      if (line === 'PING') sock.write('PONG\r\n');
      if (line === 'PONG' && pong) { const w = pong; pong = null; w(); }
      buf = buf.subarray(eol + 2);
    }
  });
  await new Promise((r, j) => { sock.once('connect', r); sock.once('error', j); });
  sock.setNoDelay(true);
  sock.write(`CONNECT {"verbose":false,"pedantic":false,"name":"${name}"}\r\n`);
  const peer = {
    msgs,
    pub(subject, data, reply = '') {
      sock.write(Buffer.concat([Buffer.from(`PUB ${subject}${reply ? ` ${reply}` : ''} ${data.length}\r\n`), data, Buffer.from('\r\n')]));
    },
    sub(subject, sid) { sock.write(`SUB ${subject} ${sid}\r\n`); },
    /** Everything sent before has been handled (and forwarded) by NATS. */
    flush() { return withTimeout(new Promise((r) => { pong = r; sock.write('PING\r\n'); }), 3000, 'NATS PONG'); },
    /** Answers every message with answer(msg) (a Buffer, or null for none); returns the stop function. */
    serve(answer) {
      const tick = setInterval(() => {
        while (msgs.length) {
          const m = msgs.shift();
          const a = answer(m);
          if (a && m.reply) peer.pub(m.reply, a);
        }
      }, 5);
      return () => clearInterval(tick);
    },
    close() { sock.destroy(); },
  };
  t.after(() => sock.destroy());
  await peer.flush();
  return peer;
}

// The kinds of src/op.h (enum gw_op_kind) that cross NATS.
export const OP = { POST: 1, GET: 2, DELETE: 3, JOIN: 4, LEAVE: 5, PUBLISH: 6, COUNT: 7, BROADCAST: 8, LIST: 9 };

/** A fan-out payload (cluster.c): kind, binary, the API mask (32 bytes), the channel's length and name, the message. */
export function fanout(kind, channel, message) {
  const ch = Buffer.isBuffer(channel) ? channel : Buffer.from(channel);
  return Buffer.concat([Buffer.from([kind, 0]), Buffer.alloc(32, 0xff), Buffer.from([ch.length]), ch, Buffer.from(message)]);
}

/** A forwarded POST: kind, the connection ID, the message. */
export const postOp = (id, message) => Buffer.concat([Buffer.from([OP.POST]), Buffer.from(id), Buffer.from(message)]);
