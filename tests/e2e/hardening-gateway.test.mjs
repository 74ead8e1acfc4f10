// Hardening of the gateway core (issue 9): what any client can do to the
// loop, the listeners and the handover to libwebsockets.
import net from 'node:net';
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import {
  test, assert, startPair, connect, connectWithId, nextMessage, waitClose, postTo, sleep, waitUntil,
} from './helpers.mjs';

/** Inodes of the sockets the process holds. */
function socketInodes(pid) {
  const out = new Set();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(m[1]);
    } catch { /* closed meanwhile */ }
  }
  return out;
}

function tryUnixConnect(path) {
  return new Promise((resolve) => {
    const s = net.connect({ path });
    const done = (ok) => { s.destroy(); resolve(ok); };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    setTimeout(() => done(false), 2000);
  });
}

test('item 20: nothing listens on a unix socket that another process can reach', async () => {
  const { gw } = await startPair(undefined, {}, { args: ['--workers', '2'] });
  const mine = socketInodes(gw.proc.pid);
  const named = [];
  for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 8 && mine.has(f[6])) named.push(f[7]);
  }
  for (const name of named) {
    // An abstract name is reachable by any process of the network namespace.
    assert.ok(!name.startsWith('@'), `the gateway listens on the abstract unix socket ${name}`);
    assert.ok(!existsSync(name), `the gateway's unix socket ${name} exists on disk`);
    assert.equal(await tryUnixConnect(name), false, `unix socket ${name} of the gateway accepted a connection`);
  }
});

test('item 4: subprotocol names chosen by clients never exhaust the gateway', { timeout: 90000 }, async () => {
  const { backend, gw } = await startPair();
  // Well past the old 64-per-loop table, one after the other.
  for (let i = 0; i < 300; i++) {
    const ws = await connect(gw.url + '/', { protocols: [`junk-${i}`] });
    assert.equal(ws.protocol, `junk-${i}`);
    ws.close();
    await waitClose(ws);
  }
  // 70 held at once: more than the table holds; the extra are refused
  // cleanly (never a hang), and once they close every name works again.
  const held = [];
  for (let i = 0; i < 70; i++) {
    try { held.push(await connect(gw.url + '/', { protocols: [`held-${i}`] })); } catch { /* refused: fine */ }
  }
  assert.ok(held.length >= 60, `only ${held.length} of 70 held subprotocol connections opened`);
  for (const ws of held) { ws.close(); await waitClose(ws); }
  await sleep(100);
  const legit = await connectWithId(gw, backend, { protocols: ['chat.v1'] });
  assert.equal(legit.ws.protocol, 'chat.v1');
  legit.ws.send('hello');
  assert.equal((await nextMessage(legit.ws)).data, 'hello');
  assert.equal((await postTo(gw, legit.id, 'pushed')).status, 200);
  assert.equal((await nextMessage(legit.ws)).data, 'pushed');
});
