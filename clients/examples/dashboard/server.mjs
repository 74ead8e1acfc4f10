// A live dashboard backend for wsgate, with Node's standard library only.
//
// Every viewer is a member of the wsgate channel "dashboard" (README,
// "Channels and broadcast"): the $connect answer subscribes it, so the
// backend keeps no list of viewers. Once per INTERVAL_MS it publishes one
// JSON update to the channel, whatever the number of viewers:
//   POST {MGMT_URL}/@channels/dashboard
// The next update is sent only after the gateway has answered the previous
// one, which keeps updates in order at every viewer.
//
// wsgate POSTs its events (the WebSocket $connect and the REST "GET /" that
// serves the page) to POST /events as AWS Lambda proxy events.
//
//   PORT=9100 MGMT_URL=http://127.0.0.1:8081/dev node server.mjs
import http from 'node:http';
import os from 'node:os';
import { readFileSync } from 'node:fs';

const PORT = Number(process.env.PORT ?? 9100); // 0: any free port (printed below)
const MGMT_URL = process.env.MGMT_URL ?? 'http://127.0.0.1:8081/dev';
const INTERVAL_MS = Number(process.env.INTERVAL_MS ?? 1000);
const CHANNEL = 'dashboard';

const page = readFileSync(new URL('index.html', import.meta.url), 'utf8');
const reply = (statusCode, body = '', type = 'text/plain') => ({ statusCode, headers: { 'content-type': type }, body });

let seq = 0;  // updates published so far
let walk = 50; // a random walk, kept within 0..100

/** The next update: a sequence number, the time and a few live values. */
function nextUpdate() {
  walk = Math.min(100, Math.max(0, walk + (Math.random() - 0.5) * 10));
  return { seq: ++seq, time: new Date().toISOString(), walk: Math.round(walk * 10) / 10, load: os.loadavg()[0] };
}

/** One publish to the channel: every viewer gets it. */
async function publish(update) {
  try {
    const res = await fetch(`${MGMT_URL}/@channels/${CHANNEL}`, { method: 'POST', body: JSON.stringify(update) });
    if (!res.ok) console.error(`publish ${update.seq}: HTTP ${res.status} ${await res.text()}`);
    else await res.arrayBuffer();
  } catch (err) {
    console.error(`publish ${update.seq}: ${err.message}`);
  }
}

async function tick() {
  await publish(nextUpdate());
  setTimeout(tick, INTERVAL_MS);
}

function onEvent(ev) {
  if (ev.version === '2.0') { // REST: the page
    if (ev.routeKey === 'GET /') return reply(200, page, 'text/html; charset=utf-8');
    return reply(404, 'not found');
  }
  if (ev.requestContext.routeKey === '$connect') return { ...reply(200), subscribe: [CHANNEL] };
  return reply(400, `unknown route ${ev.requestContext.routeKey}`);
}

const server = http.createServer(async (req, res) => {
  let answer;
  try {
    let body = '';
    for await (const chunk of req) body += chunk;
    if (req.method !== 'POST' || req.url !== '/events') throw new Error(`unexpected ${req.method} ${req.url}`);
    answer = onEvent(JSON.parse(body));
  } catch (err) {
    console.error(err);
    answer = reply(500, 'internal error');
  }
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
});

server.listen(PORT, '127.0.0.1', () => {
  console.log(`dashboard backend: listening on http://127.0.0.1:${server.address().port}/events (management API ${MGMT_URL}, an update every ${INTERVAL_MS} ms)`);
  setTimeout(tick, INTERVAL_MS);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
