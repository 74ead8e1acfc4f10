// wss:// and https:// clients (gateway started with --tls-cert/--tls-key)
// that reset at every stage: during the TLS handshake, mid-head, during
// $connect and its refusal, mid-frame on the relay, and during the TLS
// shutdown. Item 1(b) itself is in item1.test.mjs.
import {
  faultTest, assert, closedOf, raceScenario, openSocket, rawUpgrade, upgradeHead, hangUp, reset, frame, jitter, sleep,
  httpRequest, pushRace,
} from './lib.mjs';
import net from 'node:net';
import tls from 'node:tls';

faultTest('clients resetting during the TLS handshake leave the gateway clean', { timeout: 120000 }, async () => {
  await raceScenario({
    name: 'TLS handshake',
    tls: true,
    total: 1000,
    width: 50,
    race: async ({ gw }, i) => {
      const tcp = net.connect(gw.port, '127.0.0.1');
      tcp.on('error', () => {});
      const closed = closedOf(tcp);
      await new Promise((r) => tcp.once('connect', r));
      if (i % 3 === 0) {
        // A ClientHello cut short, by hand.
        tcp.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]),
          () => hangUp(tcp, i));
      } else {
        const sock = tls.connect({ socket: tcp, rejectUnauthorized: false, servername: 'localhost' });
        sock.on('error', () => {});
        setTimeout(() => hangUp(tcp, i), jitter(0, 6));
      }
      await closed;
    },
  });
});

faultTest('wss clients resetting mid-head, during a slow $connect and during a refusal leave the gateway clean', { timeout: 120000 }, async () => {
  const head = upgradeHead('/?tag=cut');
  await raceScenario({
    name: 'TLS before the handover',
    tls: true,
    total: 1000,
    width: 40,
    accounting: false, // approvals after the client left: see ws-resets' ghost test
    race: async ({ gw }, i) => {
      const { tcp, sock } = await openSocket(gw.port, { tls: true });
      const closed = closedOf(tcp);
      switch (i % 3) {
        case 0:
          sock.write(head.slice(0, jitter(1, head.length - 1)), () => hangUp(tcp, i));
          break;
        case 1:
          sock.write(upgradeHead(`/?mode=slow&delay=${jitter(5, 30)}&tag=s${i}`));
          setTimeout(() => hangUp(tcp, i), jitter(1, 30));
          break;
        default:
          sock.write(upgradeHead(`/?mode=refuse&delay=30&tag=r${i}`));
          setTimeout(() => hangUp(tcp, i), jitter(24, 36));
      }
      await closed;
    },
  });
});

faultTest('https REST requests reset mid-body and during a backend call leave the gateway clean', { timeout: 120000 }, async () => {
  await raceScenario({
    name: 'TLS REST',
    tls: true,
    total: 1000,
    width: 40,
    race: async ({ gw }, i) => {
      const { tcp, sock } = await openSocket(gw.port, { tls: true });
      const closed = closedOf(tcp);
      if (i & 2) {
        sock.write(httpRequest('POST', `/rest/b${i}`, 'x'.repeat(500), { declared: 1000 }),
          () => setTimeout(() => hangUp(tcp, i), jitter(0, 3)));
      } else {
        sock.write(httpRequest('GET', `/rest/c${i}/slow`));
        setTimeout(() => hangUp(tcp, i), jitter(1, 60));
      }
      await closed;
    },
  });
});

faultTest('wss clients resetting mid-frame on the relay leave the gateway clean', { timeout: 120000 }, async () => {
  const big = frame(0x1, 'y'.repeat(3000));
  await raceScenario({
    name: 'TLS mid-frame',
    tls: true,
    total: 1000,
    width: 40,
    race: async ({ gw }, i) => {
      const { tcp, sock, status } = await rawUpgrade(gw.port, `tag=f${i}`, { tls: true });
      assert.equal(status, 101);
      const closed = closedOf(tcp);
      sock.write(big.subarray(0, jitter(1, big.length - 1)), () => setTimeout(() => hangUp(tcp, i), jitter(0, 2)));
      await closed;
    },
  });
});

faultTest('wss clients resetting during the TLS shutdown (close_notify then RST, close frame then close_notify)', { timeout: 120000 }, async () => {
  await raceScenario({
    name: 'TLS shutdown',
    tls: true,
    total: 1000,
    width: 40,
    race: async ({ gw }, i) => {
      const { tcp, sock, status } = await rawUpgrade(gw.port, `tag=z${i}`, { tls: true });
      assert.equal(status, 101);
      const closed = closedOf(tcp);
      if (i & 2) sock.write(frame(0x8, Buffer.from([0x03, 0xe8])));
      if (i & 1) {
        tcp.holdFin = true;
        sock.end(); // close_notify, then RST
        setTimeout(() => reset(tcp), jitter(0, 3));
      } else {
        sock.end(); // close_notify and FIN
      }
      await closed;
    },
  });
});

faultTest('wss clients resetting while management POSTs to them are in flight', { timeout: 120000 }, async () => {
  const statuses = new Map();
  const ctx = await raceScenario({
    name: 'TLS during pushes',
    tls: true,
    total: 1000,
    width: 40,
    stop: false,
    race: pushRace(statuses, { tls: true }),
  });
  const seen = Object.fromEntries(statuses);
  for (const s of statuses.keys()) assert.ok(s === 200 || s === 410, `management POST answers: ${JSON.stringify(seen)}`);
  await ctx.gw.stop();
});
