// Issue 11, items 5 and 6: $disconnect is never lost. A kill -9 leaves the
// open connections' records on disk and the next start sends each its
// $disconnect (1006) once, even when killed again during that replay; a
// SIGTERM whose drain deadline passes leaves the calls still owed in the
// outbox for the next start; a burst of closes is never refused by the
// backend's bounded queue.
//
// "Delivered" below means the backend answered the call on a socket that
// was still open: a call the gateway died waiting for was not acknowledged
// and is sent again by the next start (at least once, same requestId).

import {
  test, assert, startBackend, startGateway, startHttpBackend, makeApi, connect, sleep, waitUntil,
  header, unusedUrl, waitClose,
} from './helpers.mjs';

/** A backend that records each DISCONNECT it answered; serial: one at a time. */
async function recorder({ delayMs = 0, serial = false } = {}) {
  const answered = [];
  let chain = Promise.resolve();
  const backend = await startBackend(async (event, req) => {
    if (event.requestContext?.eventType !== 'DISCONNECT') return { statusCode: 200 };
    const work = async () => {
      if (req.socket.destroyed) return; // the gateway is gone: never answered
      if (delayMs) await sleep(delayMs);
      if (!req.socket.destroyed) answered.push(event);
    };
    if (serial) {
      const p = chain.then(work);
      chain = p.catch(() => {});
      await p;
    } else {
      await work();
    }
    return { statusCode: 200 };
  });
  backend.answered = answered;
  backend.answeredIds = () => answered.map((e) => e.requestContext.connectionId);
  return backend;
}

/** Opens n clients at once; resolves their connection IDs from the CONNECT events. */
let openSeq = 0;
async function openClients(gw, backend, n, headers = {}) {
  const tag = `r${process.pid}-${++openSeq}-`;
  const clients = await Promise.all(Array.from({ length: n }, (_, i) =>
    connect(gw.url, { headers: { ...headers, 'X-Test-Client': tag + i }, timeoutMs: 15000 })));
  await waitUntil(() => backend.eventsOf('CONNECT')
    .filter((e) => (header(e.headers, 'X-Test-Client') ?? '').startsWith(tag)).length === n,
  10000, `${n} CONNECT events`);
  const byTag = new Map(backend.eventsOf('CONNECT')
    .map((e) => [header(e.headers, 'X-Test-Client'), e.requestContext.connectionId]));
  const ids = clients.map((_, i) => byTag.get(tag + i)); // in the clients' order
  return { clients, ids };
}

/** waitUntil whose failure says what was seen by then (what() is evaluated late). */
async function waitFor(cond, ms, what) {
  try {
    await waitUntil(cond, ms, 'the condition');
  } catch {
    throw new Error(`timed out after ${ms} ms waiting for ${what()}`);
  }
}

function counts(list) {
  const m = new Map();
  for (const id of list) m.set(id, (m.get(id) ?? 0) + 1);
  return m;
}

/** Every id of ids delivered exactly once, nothing else. */
function assertExactlyOnce(backend, ids, what) {
  const c = counts(backend.answeredIds());
  const missing = ids.filter((id) => !c.has(id));
  const repeated = [...c].filter(([, n]) => n > 1).map(([id]) => id);
  assert.equal(missing.length, 0, `${what}: ${missing.length} of ${ids.length} never got $disconnect`);
  assert.equal(repeated.length, 0, `${what}: ${repeated.length} got $disconnect more than once`);
  assert.equal(c.size, ids.length, `${what}: $disconnect for connections never opened`);
}

/**
 * Every id of ids delivered, nothing else; a repeat is allowed only as the
 * same call sent again (same requestId), at most twice in all, and for no
 * more connections than calls can be in flight when a gateway is killed or
 * reaches its drain deadline (the at-least-once window, README "Closing").
 */
function assertAtLeastOnce(backend, ids, what, maxResent = 8) {
  const byId = new Map();
  for (const e of backend.answered) {
    const list = byId.get(e.requestContext.connectionId) ?? [];
    list.push(e.requestContext.requestId);
    byId.set(e.requestContext.connectionId, list);
  }
  assert.deepEqual(ids.filter((id) => !byId.has(id)), [], `${what}: never got $disconnect`);
  assert.equal(byId.size, ids.length, `${what}: $disconnect for connections never opened`);
  const resent = [...byId].filter(([, rids]) => rids.length > 1);
  for (const [id, rids] of resent) {
    assert.equal(rids.length, 2, `${what}: ${id} got $disconnect ${rids.length} times`);
    assert.equal(rids[0], rids[1], `${what}: ${id} got two different $disconnect calls`);
  }
  assert.ok(resent.length <= maxResent, `${what}: ${resent.length} calls sent again, more than could be in flight`);
}

// 300 clients of one address open at once: more than its default bound of
// connections still sending their head.
const MANY_CLIENTS = ['--max-pending-heads-per-ip', '0'];

const restart = (prev, backend, api, args = []) =>
  startGateway({ routes: api ?? makeApi(backend.url, { integration: { timeoutMs: 29000 } }),
    args: ['--data', prev.dataDir, ...args] });

test('item 5: after kill -9 with 300 open connections, the restart sends each exactly one $disconnect (1006), shaped like a normal one', { timeout: 40000 }, async () => {
  const backend = await recorder();
  const api = makeApi(backend.url, { integration: { timeoutMs: 29000 } });
  const a = await startGateway({ routes: api, args: MANY_CLIENTS });
  const { clients, ids } = await openClients(a, backend, 301);
  // One normal close, to compare the shape of the events.
  clients[0].close(1000, 'bye');
  await waitUntil(() => backend.answered.length === 1, 5000, 'the normal $disconnect');
  const normal = backend.answered[0];
  assert.equal(normal.requestContext.connectionId, ids[0]);
  await a.stop('SIGKILL');
  const open = ids.slice(1);

  const b = await restart(a, backend, api);
  await waitFor(() => backend.answered.length >= ids.length, 20000,
    () => `$disconnect for the ${open.length} connections of the killed run (got ${backend.answered.length - 1})`);
  await sleep(300); // anything extra would show up now
  assertExactlyOnce(backend, ids, 'after kill -9 and restart');
  assert.match(b.output(), /300 connections were open when the previous run ended/);

  const connects = new Map(backend.eventsOf('CONNECT').map((e) => [e.requestContext.connectionId, e]));
  for (const ev of backend.answered.slice(1)) {
    const rc = ev.requestContext;
    assert.equal(rc.eventType, 'DISCONNECT');
    assert.equal(rc.routeKey, '$disconnect');
    assert.equal(rc.disconnectStatusCode, 1006);
    assert.match(rc.disconnectReason, /restarted/);
    assert.equal(rc.apiId, normal.requestContext.apiId);
    assert.equal(rc.stage, normal.requestContext.stage);
    assert.equal(rc.domainName, normal.requestContext.domainName);
    assert.equal(rc.identity.sourceIp, normal.requestContext.identity.sourceIp);
    assert.equal(rc.identity.userAgent, normal.requestContext.identity.userAgent);
    assert.equal(rc.connectedAt, connects.get(rc.connectionId).requestContext.connectedAt);
    assert.deepEqual(Object.keys(rc).sort(), Object.keys(normal.requestContext).sort());
    assert.deepEqual(Object.keys(ev).sort(), Object.keys(normal).sort());
  }
  // The restarted gateway's registry holds only its own connections.
  const res = await fetch(`${b.mgmtUrl}/@connections/${open[0]}`);
  assert.equal(res.status, 410);
});

test('item 5: kill -9 again during the replay (slow backend): the next start sends the rest, none twice, none skipped', { timeout: 40000 }, async () => {
  const backend = await recorder({ delayMs: 100, serial: true });
  const a = await startGateway({ routes: makeApi(backend.url, { integration: { timeoutMs: 29000 } }) });
  const { ids } = await openClients(a, backend, 60);
  await a.stop('SIGKILL');

  const b = await restart(a, backend);
  await waitFor(() => backend.answered.length >= 10, 10000,
    () => `the replay to be under way (${backend.answered.length} answered)`);
  await b.stop('SIGKILL');
  const before = backend.answered.length;
  assert.ok(before < ids.length, `the replay finished before the second kill (${before})`);

  const c = await restart(a, backend);
  await waitFor(() => backend.answered.length >= ids.length, 20000,
    () => `the rest of the replay (${backend.answered.length} of ${ids.length})`);
  await sleep(300);
  // A call cut off by the kill may go again, as the same call (same requestId).
  assertAtLeastOnce(backend, ids, 'after a second kill -9 during the replay');
  assert.ok(c.output().includes('calls owed from an earlier run'));
});

test('item 6: SIGTERM with a backend answering one call at a time: every connection gets $disconnect (1001), the rest after the restart', { timeout: 40000 }, async () => {
  const backend = await recorder({ delayMs: 200, serial: true });
  const a = await startGateway({ routes: makeApi(backend.url, { integration: { timeoutMs: 29000 } }),
    args: ['--drain-seconds', '2'] });
  const { ids } = await openClients(a, backend, 30);
  const t0 = Date.now();
  await a.stop('SIGTERM', { timeoutMs: 10000 });
  assert.ok(Date.now() - t0 < 6000, `the drain took ${Date.now() - t0} ms with --drain-seconds 2`);
  const atExit = backend.answered.length;
  assert.ok(atExit < ids.length, `all were answered before the drain deadline (${atExit})`);
  assert.match(a.output(), /\$disconnect calls stay in the outbox for the next start/);

  await restart(a, backend);
  await waitFor(() => backend.answered.length >= ids.length, 20000,
    () => `$disconnect after the restart (${backend.answered.length} of ${ids.length})`);
  await sleep(300);
  // At least once across the drain deadline (README, Closing).
  assertAtLeastOnce(backend, ids, 'SIGTERM, drain deadline, restart');
  for (const e of backend.answered) assert.equal(e.requestContext.disconnectStatusCode, 1001);
});

test('item 6: 300 clients dropping at once with a backend queue of 1: no $disconnect refused, all delivered once', { timeout: 40000 }, async () => {
  const backend = await recorder({ delayMs: 5 });
  // No $connect call, so opening 300 clients does not meet the tiny queue.
  const api = makeApi(backend.url, {
    integration: { timeoutMs: 29000, maxConnections: 1, maxQueue: 1 },
    routes: { $disconnect: { integration: 'backend' }, $default: { integration: 'backend' } },
  });
  const gw = await startGateway({ routes: api, args: MANY_CLIENTS });
  const clients = await Promise.all(Array.from({ length: 300 }, () => connect(gw.url, { timeoutMs: 15000 })));
  for (const ws of clients) ws.terminate();
  await waitFor(() => backend.answered.length >= 300, 20000,
    () => `300 $disconnect calls (got ${backend.answered.length}, ${backend.eventsOf("DISCONNECT").length} arrived; refused for a full queue: ${(gw.output().match(/queue is full/g) ?? []).length} logged)`);
  await sleep(300);
  const c = counts(backend.answeredIds());
  assert.equal(c.size, 300);
  assert.equal(backend.answered.length, 300, 'a $disconnect was sent twice');
  assert.doesNotMatch(gw.output(), /queue is full/);
});

/** A backend on a fixed port that records the DISCONNECT events it answered. */
async function backendOn(port, seen) {
  return startHttpBackend((r) => {
    const ev = JSON.parse(r.text);
    if (ev.requestContext?.eventType === 'DISCONNECT') seen.push(ev.requestContext.connectionId);
    return { status: 200, headers: { 'content-type': 'application/json' }, body: '{"statusCode":200}' };
  }, { port });
}

test('item 6: $disconnect waits for a backend that is down, while it runs and across a restart, and arrives once it is back', { timeout: 40000 }, async () => {
  const url = await unusedUrl();
  const port = Number(new URL(url).port);
  const api = makeApi(url, { routes: { $disconnect: { integration: 'backend' }, $default: { integration: 'backend' } } });
  const seen = [];
  const a = await startGateway({ routes: api });
  let clients = await Promise.all(Array.from({ length: 20 }, () => connect(a.url)));
  await Promise.all(clients.map((ws) => { ws.close(1000); return waitClose(ws); }));
  await sleep(1500); // refused, retried, refused...
  let backend = await backendOn(port, seen);
  await waitFor(() => seen.length >= 20, 10000, () => `20 $disconnect once the backend is back (got ${seen.length})`);
  assert.equal(new Set(seen).size, 20);
  await backend.close();

  // Down again: closes during a SIGTERM stay stored, and the exit does not
  // wait for a backend that refuses.
  clients = await Promise.all(Array.from({ length: 10 }, () => connect(a.url)));
  const t0 = Date.now();
  await a.stop('SIGTERM', { timeoutMs: 10000 });
  assert.ok(Date.now() - t0 < 4000, `the exit waited ${Date.now() - t0} ms for a backend that is down`);
  backend = await backendOn(port, seen);
  await startGateway({ routes: api, args: ['--data', a.dataDir] });
  await waitFor(() => seen.length >= 30, 10000, () => `the 10 stored $disconnect after the restart (got ${seen.length - 20})`);
  await sleep(300);
  assert.equal(seen.length, 30, 'a $disconnect arrived twice');
  assert.equal(new Set(seen).size, 30);
});

test('item 5: after kill -9, the restart\'s $disconnect carries the authorizer\'s requestContext.authorizer, as a normal one does', async () => {
  const backend = await recorder();
  const auth = await startBackend((event) => ({
    principalId: 'user-ann',
    policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: event.methodArn }] },
    context: { tenant: 'acme', level: 3 },
  }));
  const api = makeApi(backend.url);
  api.integrations.authz = { type: 'AWS_PROXY', uri: auth.url, timeoutMs: 2000 };
  api.authorizers = { auth: { type: 'REQUEST', integration: 'authz', identitySource: ['route.request.header.Authorization'] } };
  api.routes.$connect.authorizer = 'auth';
  const a = await startGateway({ routes: api });
  const allow = { Authorization: 'allow-ann' };
  const { clients, ids } = await openClients(a, backend, 3, allow);
  for (const ws of clients) ws.terminate();
  await waitFor(() => backend.answered.length === 3, 5000, () => 'the normal $disconnect calls');
  const normal = backend.answered[0].requestContext.authorizer;
  const more = await openClients(a, backend, 3, allow);
  await a.stop('SIGKILL');
  await restart(a, backend, api);
  await waitFor(() => backend.answered.length >= 6, 10000, () => `the replayed $disconnect (${backend.answered.length - 3})`);
  assertExactlyOnce(backend, [...ids, ...more.ids], 'with an authorizer');
  for (const e of backend.answered.slice(3)) {
    const got = e.requestContext.authorizer;
    assert.ok(got, 'the replayed $disconnect has requestContext.authorizer');
    assert.equal(got.principalId, 'user-ann');
    assert.equal(got.tenant, 'acme');
    assert.deepEqual(Object.keys(got).sort(), Object.keys(normal).sort());
  }
});
