// A chat backend for wsgate, with Node's standard library only.
//
// wsgate POSTs every event (WebSocket and REST) to POST /events as an AWS
// Lambda proxy event; this server answers with a Lambda proxy response and
// pushes messages to clients through the management API:
//   POST {MGMT_URL}/@connections/{id}
//
//   PORT=9000 MGMT_URL=http://127.0.0.1:8081/dev node server.mjs
import http from 'node:http';
import { readFileSync } from 'node:fs';

const PORT = Number(process.env.PORT ?? 9000); // 0: any free port (printed below)
const MGMT_URL = process.env.MGMT_URL ?? 'http://127.0.0.1:8081/dev';
const KEEP = 50; // messages kept per room

const users = new Map(); // connectionId -> { name, room }
const rooms = new Map(); // room -> last KEEP messages
const page = readFileSync(new URL('index.html', import.meta.url), 'utf8'); // the single-page UI

const reply = (statusCode, body = '', type = 'text/plain') => ({ statusCode, headers: { 'content-type': type }, body });
const json = (value) => reply(200, JSON.stringify(value), 'application/json');
const roomName = (s) => String(s ?? '').toLowerCase().replace(/[^a-z0-9_-]/g, '').slice(0, 32) || 'lobby';

/** Sends one JSON payload to a connection; 410 means it is gone, so forget it. */
async function send(id, payload) {
  try {
    const res = await fetch(`${MGMT_URL}/@connections/${encodeURIComponent(id)}`,
      { method: 'POST', body: JSON.stringify(payload) });
    if (res.status === 410) users.delete(id); // gone (closed without our knowing): forget it
    else if (!res.ok) console.error(`post to ${id}: HTTP ${res.status} ${await res.text()}`);
  } catch (err) {
    console.error(`post to ${id}: ${err.message}`);
  }
}

/** Sends a payload to everyone in `room` (but `except`). */
function broadcast(room, payload, except) {
  const ids = [...users].filter(([id, u]) => u.room === room && id !== except).map(([id]) => id);
  return Promise.all(ids.map((id) => send(id, payload)));
}

async function leave(id) {
  const u = users.get(id);
  if (u?.room) await broadcast(u.room, { type: 'left', room: u.room, from: u.name }, id);
}

/** WebSocket events: route keys $connect, $disconnect, join, sendmessage, typing. */
async function onSocket(ev) {
  const { routeKey, connectionId: id } = ev.requestContext;
  const user = users.get(id);
  const msg = ev.body ? JSON.parse(ev.body) : {};
  switch (routeKey) {
    case '$connect': {
      const name = String(ev.queryStringParameters?.name ?? '').trim().slice(0, 32);
      if (!name) return reply(401, 'a name is required: ?name=...');
      users.set(id, { name, room: null });
      return reply(200);
    }
    case '$disconnect':
      await leave(id);
      users.delete(id);
      return reply(200);
    case 'join': {
      if (!user) return reply(200); // unknown connection (backend restarted)
      await leave(id);
      user.room = roomName(msg.room);
      await broadcast(user.room, { type: 'joined', room: user.room, from: user.name });
      return reply(200);
    }
    case 'sendmessage': {
      if (!user?.room) return reply(200);
      const m = { type: 'message', room: user.room, from: user.name, text: String(msg.text ?? ''), at: new Date().toISOString() };
      const list = rooms.get(user.room) ?? [];
      rooms.set(user.room, [...list, m].slice(-KEEP));
      await broadcast(user.room, m);
      return reply(200);
    }
    case 'typing':
      if (user?.room) await broadcast(user.room, { type: 'typing', room: user.room, from: user.name }, id);
      return reply(200);
    default:
      return reply(400, `unknown route ${routeKey}`);
  }
}

/** REST events (payload format 2.0): the history and the page. */
function onRest(ev) {
  if (ev.routeKey === 'GET /rooms/{room}/messages') return json(rooms.get(roomName(ev.pathParameters?.room)) ?? []);
  if (ev.routeKey === 'GET /') return reply(200, page, 'text/html; charset=utf-8');
  return reply(404, 'not found');
}

const server = http.createServer(async (req, res) => {
  let answer;
  try {
    let body = '';
    for await (const chunk of req) body += chunk;
    if (req.method !== 'POST' || req.url !== '/events') throw new Error(`unexpected ${req.method} ${req.url}`);
    const ev = JSON.parse(body);
    answer = ev.version === '2.0' ? onRest(ev) : await onSocket(ev);
  } catch (err) {
    console.error(err);
    answer = reply(500, 'internal error');
  }
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
});

server.listen(PORT, '127.0.0.1', () => {
  console.log(`chat backend: listening on http://127.0.0.1:${server.address().port}/events (management API ${MGMT_URL})`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
