// A chat backend for wsgate, with Node's standard library only.
//
// wsgate POSTs every event (WebSocket and REST) to POST /events as an AWS
// Lambda proxy event; this server answers with a Lambda proxy response.
// Rooms are wsgate channels (README, "Channels and broadcast"): the join
// route's answer subscribes the connection ("subscribe": ["room.NAME"]) and
// unsubscribes it from its previous room, and a message to a room is one
// publish, whatever the number of members:
//   POST {MGMT_URL}/@channels/room.NAME
// The backend keeps no list of who is in a room and never posts to each
// member; it remembers each connection's name and room only, to sign its
// messages and announce its departure.
//
//   PORT=9000 MGMT_URL=http://127.0.0.1:8081/dev node server.mjs
import http from 'node:http';
import { readFileSync } from 'node:fs';

const PORT = Number(process.env.PORT ?? 9000); // 0: any free port (printed below)
const MGMT_URL = process.env.MGMT_URL ?? 'http://127.0.0.1:8081/dev';
const KEEP = 50; // messages kept per room

const users = new Map(); // connectionId -> { name, room }: who, not who is where
const rooms = new Map(); // room -> last KEEP messages
const page = readFileSync(new URL('index.html', import.meta.url), 'utf8'); // the single-page UI

const reply = (statusCode, body = '', type = 'text/plain') => ({ statusCode, headers: { 'content-type': type }, body });
const json = (value) => reply(200, JSON.stringify(value), 'application/json');
const roomName = (s) => String(s ?? '').toLowerCase().replace(/[^a-z0-9_-]/g, '').slice(0, 32) || 'lobby';

const channel = (room) => `room.${room}`;

/** Sends a payload to every member of `room`: one publish to its channel. */
async function publish(room, payload) {
  try {
    const res = await fetch(`${MGMT_URL}/@channels/${channel(room)}`, { method: 'POST', body: JSON.stringify(payload) });
    if (!res.ok) console.error(`publish to ${room}: HTTP ${res.status} ${await res.text()}`);
  } catch (err) {
    console.error(`publish to ${room}: ${err.message}`);
  }
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
      // The connection has left its channels already: the others hear of it.
      if (user?.room) await publish(user.room, { type: 'left', room: user.room, from: user.name });
      users.delete(id);
      return reply(200);
    case 'join': {
      if (!user) return reply(200); // unknown connection (backend restarted)
      const old = user.room;
      user.room = roomName(msg.room);
      if (old && old !== user.room) await publish(old, { type: 'left', room: old, from: user.name });
      const joined = { type: 'joined', room: user.room, from: user.name };
      // The room's members hear it now; the joiner, from this answer (the
      // join route has routeResponse), which also makes it a member.
      await publish(user.room, joined);
      return {
        statusCode: 200,
        body: JSON.stringify(joined),
        subscribe: [channel(user.room)],
        unsubscribe: old && old !== user.room ? [channel(old)] : [],
      };
    }
    case 'sendmessage': {
      if (!user?.room) return reply(200);
      const m = { type: 'message', room: user.room, from: user.name, text: String(msg.text ?? ''), at: new Date().toISOString() };
      const list = rooms.get(user.room) ?? [];
      rooms.set(user.room, [...list, m].slice(-KEEP));
      await publish(user.room, m);
      return reply(200);
    }
    case 'typing':
      // Every member gets it, the typist too: the page ignores its own.
      if (user?.room) await publish(user.room, { type: 'typing', room: user.room, from: user.name });
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
