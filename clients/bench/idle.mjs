// Idle-connection benchmark: opens N WebSocket connections to a freshly
// started gateway (with a $connect integration, on loopback), then prints the
// connect rate and the gateway's resident memory per idle connection.
//
//   node clients/bench/idle.mjs [N=10000] [--bin build/wsgate]
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';

const args = process.argv.slice(2);
const N = Number(args.find((a) => /^\d+$/.test(a)) || 10000);
const bin = args.includes('--bin') ? args[args.indexOf('--bin') + 1] : 'build/wsgate';

const backend = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => res.end('{"statusCode":200}'));
});
await new Promise((r) => backend.listen(0, '127.0.0.1', r));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgate-bench-'));
fs.writeFileSync(path.join(dir, 'api.json'), JSON.stringify({
  name: 'bench', stage: 'dev',
  integrations: { b: { type: 'AWS_PROXY', uri: `http://127.0.0.1:${backend.address().port}/` } },
  routes: { $connect: { integration: 'b' }, $default: { integration: 'b' } },
}));
const gw = spawn(bin, ['--routes', path.join(dir, 'api.json'), '--listen', '127.0.0.1:0',
  '--mgmt-listen', '127.0.0.1:0', '--data', path.join(dir, 'data'), '--log-level', 'warn'],
{ stdio: ['ignore', 'ignore', 'pipe'] });
const port = await new Promise((resolve, reject) => {
  let out = '';
  gw.stderr.on('data', (d) => {
    out += d;
    const m = out.match(/listening on [^:]+:(\d+) \(gateway\)/);
    if (m) resolve(Number(m[1]));
  });
  gw.on('exit', (c) => reject(new Error(`gateway exited ${c}: ${out}`)));
});
const rss = () => Number(fs.readFileSync(`/proc/${gw.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]);

// Warm up allocator and lws tables with a few connections, then measure.
const open1 = () => new Promise((resolve, reject) => {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false });
  ws.once('open', () => resolve(ws));
  ws.once('error', reject);
});
const warm = await Promise.all(Array.from({ length: 20 }, open1));
await new Promise((r) => setTimeout(r, 300));
const before = rss();
const socks = [];
const t0 = process.hrtime.bigint();
const BATCH = 200;
for (let i = 0; i < N; i += BATCH) {
  socks.push(...await Promise.all(Array.from({ length: Math.min(BATCH, N - i) }, open1)));
}
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
await new Promise((r) => setTimeout(r, 1000));
const after = rss();
console.log(`connections held:        ${socks.length + warm.length}`);
console.log(`connect rate:            ${Math.round(N / secs)} conn/s (with a $connect call each, batches of ${BATCH})`);
console.log(`gateway RSS:             ${before} KiB -> ${after} KiB`);
console.log(`memory per idle conn:    ${((after - before) * 1024 / N).toFixed(0)} bytes`);
for (const ws of [...socks, ...warm]) ws.terminate();
gw.kill('SIGTERM');
await new Promise((r) => gw.on('exit', r));
backend.close();
fs.rmSync(dir, { recursive: true, force: true });
