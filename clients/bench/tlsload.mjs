// tlsload: a TLS-capable WebSocket load generator (Node's ws), for the
// wss:// rows of the benchmark; the same client runs against ws:// so that
// the two rows differ only by TLS. Prints one key=value line as wsload does.
//
//   node tlsload.mjs idle      --url wss://127.0.0.1:P/ -n N --pid P [--label L]
//       opens 20 warm-up connections, samples VmRSS of P, opens N more
//       (100 handshakes in flight), waits 1 s, samples again:
//       rss_per_conn_b = (after - before) / N; --hold S keeps them S s more
//   node tlsload.mjs roundtrip --url wss://127.0.0.1:P/ -c C -s S -d D --pid P
//       C connections, one S-byte text message in flight each (the route
//       answers each one), D seconds measured after 1 s of warm-up;
//       target_cpu_us_per_op from /proc/P/stat utime+stime
//
// Self-signed certificates are accepted (rejectUnauthorized: false).
import fs from 'node:fs';
import WebSocket from 'ws';

const argv = process.argv.slice(2);
const mode = argv[0];
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i > 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const url = opt('--url');
const pids = (opt('--pid', '') || '').split(',').filter(Boolean);
const label = opt('--label', '-');
const N = Number(opt('-n', 1000));
const C = Number(opt('-c', 100));
const SIZE = Number(opt('-s', 32));
const DUR = Number(opt('-d', 5));
const HS = Number(opt('--hs', 100));
if (!url || !['idle', 'roundtrip'].includes(mode)) {
  console.error('usage: tlsload.mjs idle|roundtrip --url ws[s]://H:P/ [-n N] [-c C] [-s S] [-d D] [--pid P[,P]] [--label L] [--hold S]');
  process.exit(2);
}
const hz = 100; // CLK_TCK on Linux
const ticks = () => pids.reduce((t, p) => {
  const f = fs.readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ');
  return t + Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
}, 0);
const rssKb = () => pids.reduce((t, p) =>
  t + Number(fs.readFileSync(`/proc/${p}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]), 0);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const open1 = () => new Promise((resolve, reject) => {
  const ws = new WebSocket(url, { perMessageDeflate: false, rejectUnauthorized: false });
  ws.once('open', () => resolve(ws));
  ws.once('error', reject);
});
async function openMany(n) {
  const out = [];
  let failed = 0;
  for (let i = 0; i < n; i += HS) {
    const r = await Promise.allSettled(Array.from({ length: Math.min(HS, n - i) }, open1));
    for (const x of r) if (x.status === 'fulfilled') out.push(x.value); else failed++;
  }
  return { socks: out, failed };
}
const pct = (a, q) => (a.length ? a[Math.min(a.length - 1, Math.floor(a.length * q))] : 0);

if (mode === 'idle') {
  const warm = (await openMany(20)).socks;
  await sleep(300);
  const before = rssKb();
  const c0 = ticks();
  const t0 = process.hrtime.bigint();
  const { socks, failed } = await openMany(N);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const c1 = ticks();
  await sleep(1000);
  const after = rssKb();
  const cpu = (c1 - c0) / hz;
  console.log(`mode=idle target=${label} ops=${socks.length} secs=${secs.toFixed(3)} ` +
    `ops_per_s=${(socks.length / secs).toFixed(1)} target_cpu_s=${cpu.toFixed(3)} ` +
    `target_cpu_us_per_op=${(cpu * 1e6 / Math.max(1, socks.length)).toFixed(2)} conns=${socks.length} ` +
    `failed=${failed} rss_before_kb=${before} rss_after_kb=${after} ` +
    `rss_per_conn_b=${((after - before) * 1024 / Math.max(1, socks.length)).toFixed(0)} ` +
    `note=node_ws_${url.split(':')[0]}`);
  // --hold S: keep the connections S seconds more (to inspect the target).
  await sleep(Number(opt('--hold', 0)) * 1000);
  for (const ws of [...socks, ...warm]) ws.terminate();
} else {
  const { socks, failed } = await openMany(C);
  const msg = 'x'.repeat(SIZE);
  let measuring = false;
  let stop = false;
  let count = 0;
  let closed = 0;
  const lat = [];
  for (const ws of socks) {
    let t = 0n;
    const send = () => { t = process.hrtime.bigint(); ws.send(msg); };
    ws.on('message', () => {
      if (measuring) { count++; if (lat.length < 2e6) lat.push(Number(process.hrtime.bigint() - t) / 1e3); }
      if (!stop) send();
    });
    ws.on('close', () => closed++);
    send();
  }
  await sleep(1000);
  const u0 = process.cpuUsage();
  const c0 = ticks();
  const t0 = process.hrtime.bigint();
  measuring = true;
  await sleep(DUR * 1000);
  measuring = false;
  const c1 = ticks();
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const u1 = process.cpuUsage(u0);
  stop = true;
  lat.sort((a, b) => a - b);
  const cpu = (c1 - c0) / hz;
  const lcpu = (u1.user + u1.system) / 1e6;
  console.log(`mode=roundtrip target=${label} ops=${count} secs=${secs.toFixed(3)} ` +
    `ops_per_s=${(count / secs).toFixed(1)} target_cpu_s=${cpu.toFixed(3)} ` +
    `target_cpu_us_per_op=${(cpu * 1e6 / Math.max(1, count)).toFixed(2)} ` +
    `load_cpu_us_per_op=${(lcpu * 1e6 / Math.max(1, count)).toFixed(2)} conns=${socks.length} ` +
    `failed=${failed} closed=${closed} size=${SIZE} p50_us=${pct(lat, 0.5).toFixed(0)} ` +
    `p99_us=${pct(lat, 0.99).toFixed(0)} note=node_ws_${url.split(':')[0]}`);
  await sleep(100);
  for (const ws of socks) ws.terminate();
}
process.exit(0);
