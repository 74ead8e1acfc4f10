// Issue 9 item 1: an object freed by one event of an epoll batch while a
// later event of the same batch still names it.
//  (a) ws://: a $connect refusal arriving as the client hangs up;
//  (b) wss://: a client sends a close frame and drops TCP, so both relay
//      sockets are ready in one batch.
import {
  faultTest, assert, closedOf, races, inBatches, jitter, startAccountingBackend, faultApi, startFaultGateway,
  openSocket, rawUpgrade, upgradeHead, hangUp, frame, tlsArgs, baseline, assertRecovered, sleep,
} from './lib.mjs';

const WIDTH = 40;

/** One upgrade refused after `delay` ms, the client gone after ~the same time. */
async function refusedRace(port, i) {
  const { tcp } = await openSocket(port);
  const closed = closedOf(tcp);
  tcp.write(upgradeHead(`/?mode=refuse&delay=30&tag=r${i}`));
  setTimeout(() => hangUp(tcp, i), jitter(24, 36));
  await closed;
}

faultTest('item 1a: $connect refusals racing client hang-ups (40 parallel upgrades closing after ~30 ms, backend answers 403 after 30 ms)', { timeout: 120000 }, async () => {
  const backend = await startAccountingBackend();
  const gw = await startFaultGateway(faultApi(backend), { workers: 1 });
  await inBatches(WIDTH, WIDTH, (i) => refusedRace(gw.port, i));
  await sleep(200);
  const base = baseline(gw, [backend.port], 16);

  const total = races(1000);
  await inBatches(total, WIDTH, (i) => refusedRace(gw.port, WIDTH + i));
  assert.equal(gw.exitInfo, null, 'the gateway is still running');
  assert.ok(backend.connects.size >= total / 2, `the backend saw ${backend.connects.size} $connect calls`);
  await assertRecovered(gw, backend, base);
  await gw.stop();
});

/** One wss connection that sends a close frame and drops TCP at once. */
async function closeAndDrop(port, i) {
  const { tcp, sock, status } = await rawUpgrade(port, `mode=ok&tag=t${i}`, { tls: true });
  if (status !== 101) { tcp.destroy(); return; }
  const closed = closedOf(tcp);
  const payload = Buffer.from([0x03, 0xe8]);
  sock.write(frame(0x8, payload), () => hangUp(tcp, i));
  await closed;
}

faultTest('item 1b: wss clients sending a close frame and dropping TCP at once', { timeout: 120000 }, async () => {
  const backend = await startAccountingBackend();
  const gw = await startFaultGateway(faultApi(backend), { args: tlsArgs() });
  await inBatches(20, 20, (i) => closeAndDrop(gw.port, i));
  await sleep(300);
  const base = baseline(gw, [backend.port], 32);

  const total = races(400);
  await inBatches(total, WIDTH, (i) => closeAndDrop(gw.port, 20 + i));
  assert.equal(gw.exitInfo, null, 'the gateway is still running');
  await assertRecovered(gw, backend, base, { tls: true });
  await gw.stop();
});
