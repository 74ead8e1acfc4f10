// Management POST rate on one loop: one connection, N sequential POSTs
// over one keep-alive HTTP connection, the client reading every message.
// Prints figures; asserts nothing.
//   WSGATE_BIN=build/wsgate node tests/bench/bench_mgmt_post.mjs [N]
// Registry reads per POST: run it with LD_PRELOAD=/tmp/mdb_get_count.so
// (tests/bench/mdb_get_count.c) for N=0 and N=2000 and compare the counts
// in /tmp/mdb_get.PID (issue 10: 2 reads per POST before, 0 after).
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { startPair, connectWithId, WSGATE_BIN } from '../e2e/helpers.mjs';

const N = Number(process.argv[2] || 5000);
const { backend, gw } = await startPair(undefined, {}, { args: ['--workers', '1'] });
const c = await connectWithId(gw, backend);
let got = 0;
c.ws.on('message', () => { got++; });
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const post = (body) => new Promise((resolve, reject) => {
  const req = http.request({ host: '127.0.0.1', port: gw.mgmtPort, method: 'POST', path: `/dev/@connections/${c.id}`, agent,
    headers: { 'content-length': body.length } }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
  req.on('error', reject);
  req.end(body);
});
for (let i = 0; i < 500; i++) await post('warm');
// The gateway's own CPU time (user + system, in clock ticks of 10 ms):
// less disturbed by other load on the machine than the wall time.
const cpuTicks = () => readFileSync(`/proc/${gw.proc.pid}/stat`, 'utf8').split(') ')[1].split(' ')
  .slice(11, 13).reduce((a, b) => a + Number(b), 0);
const c0 = cpuTicks();
const t0 = process.hrtime.bigint();
for (let i = 0; i < N; i++) if (await post('x') !== 200) throw new Error('POST failed');
const us = Number(process.hrtime.bigint() - t0) / 1e3 / N;
const cpuUs = ((cpuTicks() - c0) * 1e4) / N;
console.log(`${WSGATE_BIN}: ${N} POSTs, ${us.toFixed(1)} us each, ${(1e6 / us).toFixed(0)}/s, gateway CPU ${cpuUs.toFixed(1)} us per POST`);
agent.destroy();
await gw.stop();
await backend.close?.();
process.exit(0);
