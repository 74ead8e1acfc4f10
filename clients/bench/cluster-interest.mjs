// Cluster publish traffic (issue 13, channel interest): one nats-server
// (with its monitoring port) and three nodes on loopback; M members of one
// channel, all on node 1; P publishes through node 2 by C concurrent
// keep-alive publishers. Prints, per node, the messages and bytes the NATS
// server sent it during the publishes (its /connz counters) and the CPU
// it used meanwhile, the publish rate and the members' deliveries.
//
//   node clients/bench/cluster-interest.mjs [--bin build/wsgate] [--members 100]
//        [--publishes 5000] [--concurrency 8] [--bytes 64] [--label after]
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';

const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : dflt);
const bin = opt('bin', 'build/wsgate');
const M = Number(opt('members', 100));
const P = Number(opt('publishes', 5000));
const C = Number(opt('concurrency', 8));
const BYTES = Number(opt('bytes', 64));
const label = opt('label', path.basename(bin));
const J = Number(opt('joins', 300));
const NATS = process.env.NATS_SERVER_BIN || 'nats-server';

const procs = [];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgate-bench-interest-'));
function cleanup() {
  for (const p of procs) { try { p.kill('SIGKILL'); } catch { /* gone */ } }
  fs.rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);

async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

function waitOutput(proc, re, what) {
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`${what}: no ${re} in\n${out}`)), 10000);
    const on = (d) => {
      out += d;
      const m = out.match(re);
      if (m) { clearTimeout(t); resolve(m); }
    };
    proc.stdout?.on('data', on);
    proc.stderr?.on('data', on);
  });
}

const natsPort = await freePort();
const monPort = await freePort();
const nats = spawn(NATS, ['-a', '127.0.0.1', '-p', String(natsPort), '-m', String(monPort)], { stdio: ['ignore', 'pipe', 'pipe'] });
procs.push(nats);
await waitOutput(nats, /Server is ready/, 'nats-server');

const backend = http.createServer((req, res) => { req.resume(); req.on('end', () => res.end('{"statusCode":200}')); });
await new Promise((r) => backend.listen(0, '127.0.0.1', r));
fs.writeFileSync(path.join(dir, 'api.json'), JSON.stringify({
  name: 'bench', stage: 'dev',
  integrations: { b: { type: 'AWS_PROXY', uri: `http://127.0.0.1:${backend.address().port}/` } },
  routes: { $connect: { integration: 'b' }, $default: { integration: 'b' } },
}));
fs.writeFileSync(path.join(dir, 'secret'), 'a cluster secret for the benchmark\n', { mode: 0o600 });

const nodes = [];
for (let n = 1; n <= 3; n++) {
  const p = spawn(bin, ['--routes', path.join(dir, 'api.json'), '--listen', '127.0.0.1:0',
    '--mgmt-listen', '127.0.0.1:0', '--data', path.join(dir, `data${n}`), '--log-level', 'warn',
    '--nats', `nats://127.0.0.1:${natsPort}`, '--cluster-secret-file', path.join(dir, 'secret'),
    '--node-id', String(n), '--workers', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(p);
  const gwP = waitOutput(p, /listening on 127\.0\.0\.1:(\d+) \(gateway\)/, `node ${n}`);
  const mgP = waitOutput(p, /listening on 127\.0\.0\.1:(\d+) \(management\)/, `node ${n}`);
  nodes.push({ n, pid: p.pid, gw: Number((await gwP)[1]), mgmt: Number((await mgP)[1]) });
}

const agent = new http.Agent({ keepAlive: true, maxSockets: C });
function mgmt(node, method, p, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: node.mgmt, method, path: p, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** CPU seconds (user + system) of a process, from /proc. */
function cpu(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // clock ticks: 100 a second on Linux
}

async function connz() {
  const res = await fetch(`http://127.0.0.1:${monPort}/connz?subs=detail&limit=1024`);
  const out = {};
  for (const c of (await res.json()).connections ?? []) {
    const subs = (c.subscriptions_list_detail ?? []).map((s) => s.subject);
    const n = subs.map((s) => s.match(/^wsgate\.default\.node\.(\d+)\.op$/)).find(Boolean);
    if (n) out[n[1]] = { msgs: c.out_msgs, bytes: c.out_bytes };
  }
  return out;
}

// M members on node 1: each learns its ID from its $connect event.
const ids = [];
backend.removeAllListeners('request');
backend.on('request', (req, res) => {
  let b = '';
  req.on('data', (d) => { b += d; });
  req.on('end', () => {
    try {
      const e = JSON.parse(b);
      if (e.requestContext?.eventType === 'CONNECT') ids.push(e.requestContext.connectionId);
    } catch { /* not ours */ }
    res.end('{"statusCode":200}');
  });
});
let delivered = 0;
const sockets = [];
for (let i = 0; i < M; i++) {
  const ws = new WebSocket(`ws://127.0.0.1:${nodes[0].gw}/`);
  await new Promise((r, j) => { ws.once('open', r); ws.once('error', j); });
  ws.on('message', () => { delivered++; });
  sockets.push(ws);
}
while (ids.length < M) await new Promise((r) => setTimeout(r, 10));
for (const id of ids) {
  const st = await mgmt(nodes[0], 'PUT', `/@connections/${id}/channels/bench.room`);
  if (st !== 204) throw new Error(`join: ${st}`);
}
await new Promise((r) => setTimeout(r, 1200)); // heartbeats settle

const body = Buffer.alloc(BYTES, 'x');
const before = await connz();
const cpu0 = nodes.map((x) => cpu(x.pid));
const t0 = process.hrtime.bigint();
let next = 0;
await Promise.all(Array.from({ length: C }, async () => {
  while (next < P) {
    next++;
    const st = await mgmt(nodes[1], 'POST', '/@channels/bench.room', body);
    if (st !== 200) throw new Error(`publish: ${st}`);
  }
}));
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
const deadline = Date.now() + 20000;
while (delivered < P * M && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
const after = await connz();
const cpu1 = nodes.map((x) => cpu(x.pid));
const row = [1, 2, 3].map((n) => `${after[n].msgs - before[n].msgs} msgs, ${((after[n].bytes - before[n].bytes) / 1024).toFixed(0)} KiB, ${(cpu1[n - 1] - cpu0[n - 1]).toFixed(2)} s CPU`);
// Joins that each need a new subscription on node 1 (a channel no member
// of node 1 is in), sent through node 2, one at a time; each left again.
const lat = [];
for (let i = 0; i < J; i++) {
  const j0 = process.hrtime.bigint();
  const st = await mgmt(nodes[1], 'PUT', `/@connections/${ids[0]}/channels/j.${i}`);
  lat.push(Number(process.hrtime.bigint() - j0) / 1000);
  if (st !== 204) throw new Error(`join: ${st}`);
  await mgmt(nodes[1], 'DELETE', `/@connections/${ids[0]}/channels/j.${i}`);
}
lat.sort((a, b) => a - b);
const pct = (q) => Math.round(lat[Math.min(lat.length - 1, Math.floor(q * lat.length))]);
console.log(`| ${label} | ${M} on node 1 | ${P} via node 2 | ${row.join(' | ')} | ${Math.round(P / secs)} | ${delivered}/${P * M} | ${pct(0.5)} / ${pct(0.99)} |`);
for (const ws of sockets) ws.terminate();
agent.destroy();
backend.close();
process.exit(0);
