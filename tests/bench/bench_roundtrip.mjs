// Round trips for instruction counting (callgrind): C connections, each
// sending N messages one at a time and waiting for the answer. Usage:
//   node tests/bench/bench_roundtrip.mjs ws://127.0.0.1:PORT/ C N
import WebSocket from 'ws';

const [url, c = '10', n = '1000'] = process.argv.slice(2);
const conns = await Promise.all(Array.from({ length: Number(c) }, () => new Promise((resolve, reject) => {
  const ws = new WebSocket(url);
  ws.once('open', () => resolve(ws));
  ws.once('error', reject);
})));
const payload = 'x'.repeat(32);
await Promise.all(conns.map(async (ws) => {
  for (let i = 0; i < Number(n); i++) {
    await new Promise((resolve) => { ws.once('message', resolve); ws.send(payload); });
  }
}));
for (const ws of conns) ws.terminate();
