// Plain ws:// clients that reset (RST) or close (FIN) at every stage of a
// connection's life, in bounded parallel races. After each scenario the
// gateway serves, its descriptors and memory are back to the baseline, and
// every $connect the backend approved got exactly one $disconnect.
import {
  faultTest, assert, closedOf, raceScenario, openSocket, rawUpgrade, upgradeHead, hangUp, frame, jitter, sleep,
  readStatus, httpRequest, pushRace,
} from './lib.mjs';
import { deleteConn } from '../e2e/helpers.mjs';

const heads = [upgradeHead('/?tag=cut'), httpRequest('POST', '/rest/a', 'hello')];

faultTest('clients resetting or closing mid-head (upgrade and REST heads cut anywhere) leave the gateway clean', { timeout: 120000 }, async () => {
  await raceScenario({
    name: 'mid-head',
    total: 1000,
    width: 50,
    race: async ({ gw }, i) => {
      const { tcp } = await openSocket(gw.port);
      const head = heads[i & 2 ? 1 : 0];
      const cut = jitter(1, head.length - 1);
      const closed = closedOf(tcp);
      tcp.write(head.slice(0, cut), () => setTimeout(() => hangUp(tcp, i), jitter(0, 3)));
      await closed;
    },
  });
});

faultTest('a client that closes (FIN) mid-head is let go at once, not at the head timeout', { timeout: 60000 }, async () => {
  await raceScenario({
    name: 'mid-head FIN',
    total: 1000,
    width: 50,
    settleMs: 3000,
    race: async ({ gw }, i) => {
      const { tcp } = await openSocket(gw.port);
      const head = heads[i & 1];
      tcp.end(head.slice(0, jitter(1, head.length - 1)));
      await sleep(20);
      tcp.destroy();
    },
  });
});

faultTest('clients resetting while a slow $connect is in flight leave the gateway clean', { timeout: 120000 }, async () => {
  await raceScenario({
    name: 'reset during $connect',
    total: 1000,
    width: 40,
    accounting: false, // see the next test
    race: async ({ gw }, i) => {
      const { tcp } = await openSocket(gw.port);
      const closed = closedOf(tcp);
      tcp.write(upgradeHead(`/?mode=slow&delay=${jitter(5, 40)}&tag=s${i}`));
      setTimeout(() => hangUp(tcp, i), jitter(1, 40));
      await closed;
    },
  });
});

faultTest('a $connect the backend approved after the client left still gets its $disconnect', {
  timeout: 60000,
}, async () => {
  await raceScenario({
    name: 'ghost $connect',
    total: 100,
    width: 20,
    race: async ({ gw, backend }, i) => {
      const { tcp } = await openSocket(gw.port);
      const closed = closedOf(tcp);
      tcp.write(upgradeHead(`/?mode=slow&delay=60&tag=g${i}`));
      setTimeout(() => hangUp(tcp, i), 20);
      await closed;
      await sleep(80);
      assert.ok(backend.connects.size > 0);
    },
  });
});

/** The ways a client can stop in the middle of a frame. */
function partialFrame(i) {
  const big = frame(0x1, 'x'.repeat(2000));
  switch ((i + 1000) % 5) {
    case 0: return big.subarray(0, 1); // first header byte
    case 1: return big.subarray(0, 3); // in the extended length
    case 2: return big.subarray(0, 8 + jitter(0, 1000)); // in the payload
    case 3: return Buffer.concat([frame(0x1, '{"action":"x","n":1}'), big.subarray(0, 100)]);
    default: return frame(0x1, 'first fragment', { fin: false }); // a message never finished
  }
}

faultTest('clients resetting mid-frame leave the gateway clean and every connection gets one $disconnect', { timeout: 120000 }, async () => {
  await raceScenario({
    name: 'mid-frame',
    total: 1000,
    width: 40,
    race: async ({ gw }, i) => {
      const { tcp, sock, status } = await rawUpgrade(gw.port, `tag=f${i}`);
      assert.equal(status, 101);
      const closed = closedOf(tcp);
      sock.write(partialFrame(i), () => setTimeout(() => hangUp(tcp, i), jitter(0, 2)));
      await closed;
    },
  });
});

faultTest('clients resetting while their message is at the backend (slow, cut or reset answers)', { timeout: 120000 }, async () => {
  const bodies = ['slow:30', 'break', 'reset', 'slow:5'];
  await raceScenario({
    name: 'during a message call',
    total: 1000,
    width: 40,
    race: async ({ gw }, i) => {
      const { tcp, sock, status } = await rawUpgrade(gw.port, `tag=m${i}`);
      assert.equal(status, 101);
      const closed = closedOf(tcp);
      sock.write(frame(0x1, bodies[(i + 1000) % bodies.length]), () => setTimeout(() => hangUp(tcp, i), jitter(0, 30)));
      await closed;
    },
  });
});

for (const workers of [2, 4]) {
  faultTest(`clients resetting while management POSTs to them are in flight (${workers} event loops)`, { timeout: 120000 }, async () => {
    const statuses = new Map();
    const ctx = await raceScenario({
      name: `during pushes, ${workers} loops`,
      workers,
      total: 1000,
      width: 40,
      stop: false,
      race: pushRace(statuses),
    });
    const seen = Object.fromEntries(statuses);
    for (const s of statuses.keys()) assert.ok(s === 200 || s === 410, `management POST answers: ${JSON.stringify(seen)}`);
    await ctx.gw.stop();
  });
}

faultTest('a refused upgrade read to the end, then reset, leaves the gateway clean', { timeout: 60000 }, async () => {
  await raceScenario({
    name: 'after a refusal',
    total: 1000,
    width: 40,
    race: async ({ gw }, i) => {
      const { tcp } = await openSocket(gw.port);
      const closed = closedOf(tcp);
      tcp.write(upgradeHead(`/?mode=refuse&tag=x${i}`));
      const { status } = await readStatus(tcp).catch(() => ({ status: 0 }));
      assert.ok(status === 403 || status === 0, `status ${status}`);
      hangUp(tcp, i);
      await closed;
    },
  });
});

faultTest('management DELETEs racing the client\'s own close or reset: exactly one $disconnect each', { timeout: 120000 }, async () => {
  const statuses = new Map();
  await raceScenario({
    name: 'DELETE races',
    total: 1000,
    width: 40,
    race: async ({ gw, backend }, i) => {
      const { tcp, sock, status } = await rawUpgrade(gw.port, `tag=k${i}`);
      assert.equal(status, 101);
      sock.on('data', () => {});
      let id;
      for (let k = 0; k < 50 && !(id = backend.idOfTag(`k${i}`)); k++) await sleep(5);
      assert.ok(id, `the backend saw k${i}`);
      const closed = closedOf(tcp);
      const del = deleteConn(gw, id).then((r) => r.status, (e) => `error: ${e.message}`);
      setTimeout(() => {
        if (i & 2) sock.write(frame(0x8, Buffer.from([0x0f, 0xa0])), () => hangUp(tcp, i));
        else hangUp(tcp, i);
      }, jitter(0, 3));
      const s = await del;
      statuses.set(s, (statuses.get(s) ?? 0) + 1);
      await closed;
    },
  });
  for (const s of statuses.keys()) assert.ok(s === 204 || s === 410, `DELETE answers: ${JSON.stringify(Object.fromEntries(statuses))}`);
});
