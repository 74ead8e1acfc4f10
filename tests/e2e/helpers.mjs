// Shared helpers for the wsgate end-to-end tests: a real HTTP backend that
// plays the Lambda proxy integration, a launcher for the real gateway binary,
// and WebSocket / management API clients. Every wait has a timeout so a hung
// gateway fails the test instead of hanging the suite.

import { test as nodeTest, after as nodeAfter } from 'node:test';
import assert from 'node:assert/strict';
import { AsyncLocalStorage } from 'node:async_hooks';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

export { WebSocket, assert };

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const WSGATE_BIN = path.resolve(ROOT, process.env.WSGATE_BIN || 'build/wsgate');

export const DEFAULT_WAIT_MS = 5000;
const TEST_TIMEOUT_MS = 30000;

// ---------------------------------------------------------------------------
// Per-test resource tracking
// ---------------------------------------------------------------------------

// Resources (gateways, backends, clients) created while a test runs are
// recorded in its scope and released when it ends, pass or fail.
const scopes = new AsyncLocalStorage();
const liveProcs = new Set();

const liveServers = new Set();

function killLeftovers() {
  for (const p of liveProcs) {
    try { p.kill('SIGKILL'); } catch { /* already gone */ }
  }
  for (const srv of liveServers) {
    try { srv.closeAllConnections(); srv.close(); } catch { /* already closed */ }
  }
}

// A test that timed out may leave a gateway or a backend behind; they would
// keep this file's process (and so the whole suite) alive.
nodeAfter(killLeftovers);
process.on('exit', killLeftovers);

function track(kind, obj) {
  const scope = scopes.getStore();
  if (scope) scope[kind].push(obj);
  return obj;
}

/**
 * Like node:test's test(), plus: resources created inside are cleaned up at
 * the end, a gateway that crashed fails the test, and the gateway's output is
 * attached to the error of a failing test.
 */
export function test(name, opts, fn) {
  if (typeof opts === 'function') { fn = opts; opts = {}; }
  const limit = opts.timeout ?? TEST_TIMEOUT_MS;
  return nodeTest(name, { ...opts, timeout: limit + 30000 }, async (t) => {
    const scope = { gateways: [], backends: [], clients: [] };
    let err = null;
    let timer;
    try {
      await Promise.race([
        scopes.run(scope, () => fn(t)),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`test did not finish within ${limit} ms`)), limit);
        }),
      ]);
    } catch (e) {
      err = e;
    } finally {
      clearTimeout(timer);
    }
    const cleanupErrors = await cleanup(scope);
    const failure = err ?? cleanupErrors[0];
    if (failure) {
      for (const gw of scope.gateways) {
        const out = gw.output();
        const tail = out.length > 6000 ? '…' + out.slice(-6000) : out;
        const note = `\n--- wsgate output (pid ${gw.proc.pid}) ---\n${tail}--- end of wsgate output ---`;
        if (failure instanceof Error) failure.message += note;
        else console.error(note);
      }
      if (err && cleanupErrors.length) {
        for (const e of cleanupErrors) console.error('cleanup error:', e.message);
      }
      throw failure;
    }
  });
}

async function cleanup(scope) {
  const errors = [];
  for (const ws of scope.clients) {
    try { ws.terminate(); } catch { /* ignore */ }
  }
  // A request the backend is deliberately not answering would hold up a
  // graceful shutdown: drop those first.
  for (const b of scope.backends) b.dropHung();
  for (const gw of scope.gateways) {
    if (gw.stopped) continue;
    try {
      await gw.stop('SIGTERM');
    } catch (e) {
      errors.push(e);
    }
  }
  for (const b of scope.backends) {
    try { await b.close(); } catch (e) { errors.push(e); }
  }
  for (const gw of scope.gateways) gw.removeTemp();
  return errors;
}

// ---------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Rejects with a clear message when `promise` is not settled within `ms`. */
export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Polls `fn` until it returns a truthy value; returns that value. */
export async function waitUntil(fn, timeoutMs = DEFAULT_WAIT_MS, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

// ---------------------------------------------------------------------------
// Backend (AWS_PROXY integration target)
// ---------------------------------------------------------------------------

/** Handler return values with a special meaning. */
export const DESTROY = Symbol('destroy the socket without answering');
export const GARBAGE = Symbol('answer 200 with a body that is not JSON');
export const HANG = Symbol('never answer');

/** Accepts every connection and echoes each message body unchanged. */
export function echoHandler(event) {
  if (event.requestContext?.eventType === 'MESSAGE') return { statusCode: 200, body: event.body };
  return { statusCode: 200 };
}

/**
 * Starts an HTTP server that receives the gateway's Lambda-proxy events.
 * handler(event, req) may return (or resolve to) a proxy response object,
 * DESTROY, GARBAGE or HANG. Every event is pushed to backend.events (with
 * the request path in event.__path and arrival time in event.__at, both
 * non-enumerable).
 */
export async function startBackend(handler = echoHandler) {
  const events = [];
  const waiters = new Set();
  const sockets = new Set();
  const hung = new Set();
  const requests = [];

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let event;
      try {
        event = JSON.parse(raw);
      } catch {
        event = { __unparsable: raw };
      }
      Object.defineProperty(event, '__path', { value: req.url, enumerable: false });
      Object.defineProperty(event, '__at', { value: Date.now(), enumerable: false });
      Object.defineProperty(event, '__headers', { value: req.headers, enumerable: false });
      requests.push({ method: req.method, url: req.url, headers: req.headers });
      events.push(event);
      for (const w of [...waiters]) w();

      let result;
      try {
        result = await handler(event, req);
      } catch (e) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`backend handler threw: ${e.message}`);
        return;
      }
      if (result === HANG) {
        hung.add(res);
        res.on('close', () => hung.delete(res));
        return;
      }
      if (result === DESTROY) {
        req.socket.destroy();
        return;
      }
      if (result === GARBAGE) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('this is <not> json {');
        return;
      }
      const body = JSON.stringify(result ?? { statusCode: 200 });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  liveServers.add(server);

  const backend = {
    port,
    url: `http://127.0.0.1:${port}/events`,
    events,
    requests,
    /** Events of one type ('CONNECT' | 'MESSAGE' | 'DISCONNECT'), optionally for one connection. */
    eventsOf(type, connectionId) {
      return events.filter((e) => e.requestContext?.eventType === type
        && (connectionId === undefined || e.requestContext?.connectionId === connectionId));
    },
    /** Resolves with the first recorded event matching predicate (past or future). */
    waitFor(predicate, timeoutMs = DEFAULT_WAIT_MS, what = 'a backend event') {
      const found = events.find(predicate);
      if (found) return Promise.resolve(found);
      let waiter;
      const p = new Promise((resolve) => {
        waiter = () => {
          const e = events.find(predicate);
          if (e) { waiters.delete(waiter); resolve(e); }
        };
        waiters.add(waiter);
      });
      return withTimeout(p, timeoutMs, what).finally(() => waiters.delete(waiter));
    },
    waitForEvent(type, connectionId, timeoutMs = DEFAULT_WAIT_MS) {
      return backend.waitFor(
        (e) => e.requestContext?.eventType === type
          && (connectionId === undefined || e.requestContext?.connectionId === connectionId),
        timeoutMs,
        `a ${type} event${connectionId ? ` for ${connectionId}` : ''}`,
      );
    },
    /** Drops the requests the handler chose to leave unanswered. */
    dropHung() {
      for (const res of hung) res.socket?.destroy();
      hung.clear();
    },
    async close() {
      backend.dropHung();
      liveServers.delete(server);
      await withTimeout(new Promise((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }), 3000, 'the backend to close');
    },
  };
  return track('backends', backend);
}

/** Returns a URL on 127.0.0.1 where nothing listens. */
export async function unusedUrl() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return `http://127.0.0.1:${port}/events`;
}

// ---------------------------------------------------------------------------
// API files
// ---------------------------------------------------------------------------

/**
 * A complete API definition whose three routes go to `uri`. `overrides` are
 * merged shallowly; limits and the integration are merged one level deeper.
 */
export function makeApi(uri, overrides = {}) {
  const api = {
    name: 'chat',
    stage: 'dev',
    basePath: '/',
    routeSelectionExpression: '$request.body.action',
    limits: { maxMessageBytes: 131072, idleTimeoutSeconds: 600, maxConnectionSeconds: 7200 },
    integrations: { backend: { type: 'AWS_PROXY', uri, timeoutMs: 5000 } },
    routes: {
      $connect: { integration: 'backend' },
      $disconnect: { integration: 'backend' },
      $default: { integration: 'backend', routeResponse: true },
    },
  };
  const { limits, integration, ...rest } = overrides;
  Object.assign(api, rest);
  if (limits) api.limits = { ...api.limits, ...limits };
  if (integration) api.integrations = { backend: { ...api.integrations.backend, ...integration } };
  return api;
}

/**
 * Writes API files into a fresh temporary folder. `files` maps a file name to
 * an object (written as JSON) or a string (written as is).
 */
export function writeRoutes(files) {
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-routes-'));
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(dir, name);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  }
  return dir;
}

function routesToFiles(routes) {
  if (Array.isArray(routes)) {
    return Object.fromEntries(routes.map((api, i) => [`${api.name ?? 'api'}-${i}.json`, api]));
  }
  if (routes && typeof routes === 'object' && 'routes' in routes && 'integrations' in routes) {
    return { [`${routes.name ?? 'api'}.json`]: routes };
  }
  return routes; // already { 'file.json': content }
}

// ---------------------------------------------------------------------------
// Gateway process
// ---------------------------------------------------------------------------

const CRASH_MARKERS = [/ERROR: AddressSanitizer/, /ERROR: LeakSanitizer/, /runtime error:/, /ThreadSanitizer/];

function crashMarker(out) {
  return CRASH_MARKERS.find((re) => re.test(out));
}

/**
 * Starts the gateway.
 *  routes: one API object, an array of them, or { 'name.json': object|string }
 *  routesFile: pass the single file rather than the folder to --routes
 *  env, args: extra environment and arguments
 * Resolves once both listeners are announced on stderr.
 */
export async function startGateway({ routes, routesFile = false, env = {}, args = [], startTimeoutMs = 10000 } = {}) {
  const files = routesToFiles(routes);
  const routesDir = writeRoutes(files);
  const dataDir = mkdtempSync(path.join(tmpdir(), 'wsgate-data-'));
  const routesArg = routesFile ? path.join(routesDir, Object.keys(files)[0]) : routesDir;

  const argv = ['--routes', routesArg, '--listen', '127.0.0.1:0', '--mgmt-listen', '127.0.0.1:0', '--data', dataDir, ...args];
  const proc = spawn(WSGATE_BIN, argv, {
    env: { ...process.env, ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? 'detect_leaks=1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveProcs.add(proc);

  let out = '';
  let exitInfo = null;
  let stopRequested = false;
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      liveProcs.delete(proc);
      resolve(exitInfo);
    });
  });
  // 'close' fires after the output pipes are drained too.
  const closed = new Promise((resolve) => proc.on('close', resolve));
  const spawnError = new Promise((_, reject) => proc.on('error', (e) => reject(new Error(`cannot run ${WSGATE_BIN}: ${e.message}`))));
  spawnError.catch(() => {});
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });

  const gw = {
    proc,
    routesDir,
    dataDir,
    output: () => out,
    get exitInfo() { return exitInfo; },
    exited,
    removeTemp() {
      rmSync(routesDir, { recursive: true, force: true });
      rmSync(dataDir, { recursive: true, force: true });
    },
    /**
     * Sends `signal` and waits for the exit. Fails when the gateway crashed:
     * died by a signal (other than a SIGKILL we sent), exited with a code
     * other than `expectCode` (0 by default), exited before being asked to,
     * or printed a sanitizer report.
     */
    async stop(signal = 'SIGTERM', { expectCode = 0, timeoutMs = 8000 } = {}) {
      gw.stopped = true;
      const alreadyExited = exitInfo !== null;
      const wasRequested = stopRequested;
      stopRequested = true;
      if (!alreadyExited) proc.kill(signal);
      let info;
      try {
        info = await withTimeout(exited, timeoutMs, `wsgate to exit after ${signal}`);
      } catch (e) {
        proc.kill('SIGKILL');
        await exited;
        await withTimeout(closed, 2000, 'output').catch(() => {});
        throw e;
      }
      await withTimeout(closed, 2000, 'output').catch(() => {});
      const marker = crashMarker(out);
      if (marker) throw new Error(`wsgate reported a sanitizer error (${marker})`);
      if (alreadyExited && !wasRequested) {
        throw new Error(`wsgate exited unexpectedly (code ${info.code}, signal ${info.signal})`);
      }
      if (signal === 'SIGKILL' && info.signal === 'SIGKILL') return null;
      if (info.signal) throw new Error(`wsgate died from signal ${info.signal} after ${signal}`);
      if (expectCode !== null && info.code !== expectCode) {
        throw new Error(`wsgate exited with code ${info.code} after ${signal}, expected ${expectCode}`);
      }
      return info.code;
    },
  };
  track('gateways', gw);

  const ports = {};
  const listening = new Promise((resolve) => {
    const check = () => {
      for (const m of out.matchAll(/wsgate: listening on ([^\s]+):(\d+) \((gateway|management)\)/g)) {
        ports[m[3]] = Number(m[2]);
      }
      if (ports.gateway && ports.management) resolve();
    };
    proc.stderr.on('data', check);
    proc.stdout.on('data', check);
  });
  const diedEarly = exited.then((info) => {
    throw new Error(`wsgate exited before listening (code ${info.code}, signal ${info.signal})\n${out}`);
  });
  diedEarly.catch(() => {});
  await withTimeout(Promise.race([listening, diedEarly, spawnError]), startTimeoutMs, `wsgate to announce its listeners\n${out}`);

  gw.port = ports.gateway;
  gw.mgmtPort = ports.management;
  gw.url = `ws://127.0.0.1:${gw.port}`;
  gw.mgmtUrl = `http://127.0.0.1:${gw.mgmtPort}`;
  return gw;
}

/**
 * Runs the gateway to completion (for --help, --version, --check and config
 * errors). Resolves { code, signal, stdout, stderr, output }.
 */
export async function runGateway(args, { env = {}, timeoutMs = 10000 } = {}) {
  const proc = spawn(WSGATE_BIN, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  liveProcs.add(proc);
  let stdout = '';
  let stderr = '';
  let killedListening = false;
  const onOutput = () => {
    // A gateway that was expected to exit but started serving: stop it now
    // rather than waiting for the timeout; the caller sees the output.
    if (!killedListening && /listening on .*\(management\)/.test(stdout + stderr)) {
      killedListening = true;
      proc.kill('SIGKILL');
    }
  };
  proc.stdout.on('data', (d) => { stdout += d; onOutput(); });
  proc.stderr.on('data', (d) => { stderr += d; onOutput(); });
  const done = new Promise((resolve, reject) => {
    proc.on('error', reject);
    proc.on('close', (code, signal) => { liveProcs.delete(proc); resolve({ code, signal }); });
  });
  let res;
  try {
    res = await withTimeout(done, timeoutMs, `wsgate ${args.join(' ')} to exit`);
  } catch (e) {
    proc.kill('SIGKILL');
    throw new Error(`${e.message}\nstdout: ${stdout}\nstderr: ${stderr}`);
  }
  const output = stdout + stderr;
  const marker = crashMarker(output);
  if (marker) throw new Error(`wsgate reported a sanitizer error:\n${output}`);
  if (killedListening) return { code: null, signal: 'SIGKILL', started: true, stdout, stderr, output };
  if (res.signal) throw new Error(`wsgate ${args.join(' ')} died from signal ${res.signal}:\n${output}`);
  return { ...res, started: false, stdout, stderr, output };
}

/** A self-signed P-256 certificate for localhost in a folder removed at exit: { cert, key }. */
export function selfSignedCert(tag = 'cert') {
  const dir = mkdtempSync(path.join(tmpdir(), `wsgate-${tag}-`));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-subj', '/CN=localhost', '-keyout', key, '-out', cert, '-days', '2'], { stdio: 'ignore' });
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return { cert, key };
}

/** Answers REST events with their routeKey; WebSocket events as the echo backend. */
export function routeKeyEcho(e) {
  if (e.version === '2.0') {
    return { statusCode: 200, headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ routeKey: e.routeKey }) };
  }
  return { statusCode: 200, body: e.body };
}

/** A WebSocket API with REST routes beside it (GET /hello, and `routes`), on routeKeyEcho. */
export async function startMixed(args = ['--mgmt-on-gateway'], { apiExtra = {}, env = {}, routes = {} } = {}) {
  const backend = await startBackend(routeKeyEcho);
  const api = makeApi(backend.url, apiExtra);
  api.routes['GET /hello'] = { integration: 'backend' };
  for (const [key, route] of Object.entries(routes)) api.routes[key] = route;
  const gw = await startGateway({ routes: api, args, env });
  return { gw, backend };
}

/** Runs --check on one API file (and files beside it); resolves the runGateway result. */
export async function checkApi(api, extraFiles = {}) {
  const dir = writeRoutes({ 'api.json': api });
  try {
    for (const [name, text] of Object.entries(extraFiles)) writeFileSync(path.join(dir, name), text);
    return await runGateway(['--check', '--routes', path.join(dir, 'api.json')]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** --check must refuse the API, and say each of lines on stderr. */
export async function expectCheckError(api, lines, extraFiles) {
  const res = await checkApi(api, extraFiles);
  assert.notEqual(res.code, 0, `--check accepted it:\n${res.output}`);
  for (const l of lines) assert.ok(res.stderr.includes(l), `stderr should contain ${JSON.stringify(l)}:\n${res.stderr}`);
  return res;
}

// ---------------------------------------------------------------------------
// WebSocket clients
// ---------------------------------------------------------------------------

const queues = new WeakMap();

function instrument(ws) {
  const q = { messages: [], waiters: [], close: null, closeWaiters: [] };
  queues.set(ws, q);
  ws.on('message', (data, isBinary) => {
    const msg = { data: isBinary ? Buffer.from(data) : data.toString('utf8'), isBinary };
    const w = q.waiters.shift();
    if (w) w(msg);
    else q.messages.push(msg);
  });
  ws.on('close', (code, reason) => {
    q.close = { code, reason: reason.toString('utf8') };
    for (const w of q.closeWaiters.splice(0)) w(q.close);
  });
  ws.on('error', () => { /* surfaced through close / connect() */ });
  return q;
}

/**
 * Opens a WebSocket. Resolves with the open socket; rejects with an error
 * whose `status` is the HTTP status when the upgrade is refused.
 * opts: { protocols, headers, timeoutMs, ...ws options }
 */
export function connect(url, { protocols, timeoutMs = DEFAULT_WAIT_MS, ...opts } = {}) {
  const ws = new WebSocket(url, protocols, { handshakeTimeout: timeoutMs, ...opts });
  instrument(ws);
  track('clients', ws);
  const p = new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (req, res) => {
      const err = new Error(`upgrade refused with HTTP ${res.statusCode}`);
      err.status = res.statusCode;
      err.headers = res.headers;
      res.resume();
      req.destroy();
      reject(err);
    });
    ws.once('error', (e) => reject(e));
    ws.once('close', (code) => reject(new Error(`closed (${code}) before opening`)));
  });
  return withTimeout(p, timeoutMs + 1000, `WebSocket ${url} to open`).catch((e) => {
    ws.terminate();
    throw e;
  });
}

/** Expects the upgrade to be refused; resolves the HTTP status. */
export async function connectRefused(url, opts) {
  let ws;
  try {
    ws = await connect(url, opts);
  } catch (e) {
    if (typeof e.status === 'number') return e.status;
    throw new Error(`expected an HTTP refusal, got: ${e.message}`);
  }
  ws.terminate();
  throw new Error('expected the upgrade to be refused, but the WebSocket opened');
}

/**
 * The next message received on ws: { data, isBinary } where data is a string
 * for text frames and a Buffer for binary frames.
 */
export function nextMessage(ws, timeoutMs = DEFAULT_WAIT_MS) {
  const q = queues.get(ws);
  if (q.messages.length) return Promise.resolve(q.messages.shift());
  if (q.close) return Promise.reject(new Error(`socket closed (${q.close.code} ${q.close.reason}) while waiting for a message`));
  let waiter;
  const p = new Promise((resolve, reject) => {
    waiter = resolve;
    q.waiters.push(waiter);
    q.closeWaiters.push((c) => reject(new Error(`socket closed (${c.code} ${c.reason}) while waiting for a message`)));
  });
  return withTimeout(p, timeoutMs, 'a WebSocket message').finally(() => {
    const i = q.waiters.indexOf(waiter);
    if (i >= 0) q.waiters.splice(i, 1);
  });
}

/** Messages already received and not yet consumed. */
export function pendingMessages(ws) {
  return queues.get(ws).messages;
}

/** Resolves { code, reason } once ws is closed (immediately if it already is). */
export function waitClose(ws, timeoutMs = DEFAULT_WAIT_MS) {
  const q = queues.get(ws);
  if (q.close) return Promise.resolve(q.close);
  const p = new Promise((resolve) => q.closeWaiters.push(resolve));
  return withTimeout(p, timeoutMs, 'the WebSocket to close');
}

/**
 * Sends a ping and resolves when the matching pong arrives: proves the
 * connection is open and the gateway is serving it.
 */
export function pingPong(ws, timeoutMs = DEFAULT_WAIT_MS) {
  const token = `ping-${Math.random().toString(36).slice(2)}`;
  let onPong;
  const p = new Promise((resolve) => {
    onPong = (data) => { if (data.toString() === token) resolve(); };
    ws.on('pong', onPong);
  });
  ws.ping(token);
  return withTimeout(p, timeoutMs, 'a pong').finally(() => ws.off('pong', onPong));
}

/** Sends one message and waits until ws has handed it to the kernel. */
export function send(ws, data, opts = {}) {
  return new Promise((resolve, reject) => ws.send(data, opts, (err) => (err ? reject(err) : resolve())));
}

// ---------------------------------------------------------------------------
// Management API
// ---------------------------------------------------------------------------

/**
 * One request to the management listener. `id` may be given instead of a
 * full path. Resolves { status, headers (lower-case names), body (Buffer), text, json() }.
 */
export function mgmtRequest(gw, method, pathname, body, { headers = {}, timeoutMs = DEFAULT_WAIT_MS } = {}) {
  const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body);
  const p = new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port: gw.mgmtPort,
      method,
      path: pathname,
      headers: {
        ...(payload ? { 'content-type': 'application/octet-stream', 'content-length': payload.length } : {}),
        ...headers,
      },
      agent: false,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        resolve({
          status: res.statusCode,
          headers: res.headers,
          body: buf,
          text: buf.toString('utf8'),
          json: () => JSON.parse(buf.toString('utf8')),
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
  return withTimeout(p, timeoutMs, `${method} ${pathname} on the management API`);
}

export const postTo = (gw, id, body, opts) => mgmtRequest(gw, 'POST', `/@connections/${id}`, body, opts);
export const getConn = (gw, id, opts) => mgmtRequest(gw, 'GET', `/@connections/${id}`, undefined, opts);
export const deleteConn = (gw, id, opts) => mgmtRequest(gw, 'DELETE', `/@connections/${id}`, undefined, opts);

/** Case-insensitive header lookup on a plain headers object. */
export function header(headers, name) {
  const key = Object.keys(headers ?? {}).find((k) => k.toLowerCase() === name.toLowerCase());
  return key === undefined ? undefined : headers[key];
}

// ---------------------------------------------------------------------------
// Convenience
// ---------------------------------------------------------------------------

/**
 * Starts a backend with `handler` and a gateway with one API pointing at it.
 * Resolves { backend, gw }.
 */
export async function startPair(handler = echoHandler, apiOverrides = {}, gatewayOpts = {}) {
  const backend = await startBackend(handler);
  const gw = await startGateway({ routes: makeApi(backend.url, apiOverrides), ...gatewayOpts });
  return { backend, gw };
}

let clientSeq = 0;

/**
 * Connects and resolves { ws, id, connectEvent }, the ID being taken from the
 * CONNECT event. Each client sends a unique X-Test-Client header so that
 * concurrent connections are told apart.
 */
export async function connectWithId(gw, backend, opts = {}, urlPath = '/') {
  const tag = `c${process.pid}-${++clientSeq}`;
  const ws = await connect(gw.url + urlPath, { ...opts, headers: { ...(opts.headers ?? {}), 'X-Test-Client': tag } });
  const ev = await backend.waitFor(
    (e) => e.requestContext?.eventType === 'CONNECT' && header(e.headers, 'X-Test-Client') === tag,
    DEFAULT_WAIT_MS,
    `the CONNECT event carrying X-Test-Client: ${tag}`,
  );
  return { ws, id: ev.requestContext.connectionId, connectEvent: ev };
}

// ---------------------------------------------------------------------------
// Raw TCP
// ---------------------------------------------------------------------------

/** Opens a plain TCP socket to 127.0.0.1:port; collects what it receives in sock.received. */
export function rawConnect(port, timeoutMs = DEFAULT_WAIT_MS) {
  const sock = net.connect(port, '127.0.0.1');
  sock.received = Buffer.alloc(0);
  sock.on('data', (d) => { sock.received = Buffer.concat([sock.received, d]); });
  sock.on('error', () => {});
  sock.closedPromise = new Promise((r) => sock.on('close', r));
  track('clients', { terminate: () => sock.destroy() });
  return withTimeout(new Promise((resolve, reject) => {
    sock.once('connect', () => resolve(sock));
    sock.once('error', reject);
  }), timeoutMs, `TCP connection to port ${port}`);
}

/**
 * Parses consecutive HTTP/1.1 responses in buf; `methods` tells which
 * answered HEAD. A 1xx/204/304 has no body whatever it says (RFC 9112
 * §6.3). Returns { responses: [{ status, headers, head, rawHead, body }],
 * rest } with only the complete responses; rest is what follows them.
 */
export function parseResponses(buf, methods) {
  const out = [];
  let i = 0;
  for (const m of methods) {
    const end = buf.indexOf('\r\n\r\n', i);
    if (end < 0) break;
    const lines = buf.subarray(i, end).toString('latin1').split('\r\n');
    const status = Number(lines[0].split(' ')[1]);
    const headers = {};
    for (const line of lines.slice(1)) {
      const c = line.indexOf(':');
      const k = line.slice(0, c).trim().toLowerCase();
      const v = line.slice(c + 1).trim();
      headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
    }
    const noBody = m === 'HEAD' || status === 204 || status === 304 || status < 200;
    const len = noBody ? 0 : Number(headers['content-length'] ?? 0);
    if (end + 4 + len > buf.length) break;
    out.push({ status, headers, head: lines[0], rawHead: lines, body: buf.subarray(end + 4, end + 4 + len) });
    i = end + 4 + len;
  }
  return { responses: out, rest: buf.subarray(i) };
}

/** Waits until sock (from rawConnect) has received one response per method; resolves parseResponses' result. */
export async function waitResponses(sock, methods, timeoutMs = 8000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = parseResponses(sock.received, methods);
    if (r.responses.length === methods.length) return r;
    if (Date.now() > deadline || (sock.destroyed && !sock.readableLength)) {
      throw new Error(`expected ${methods.length} responses, got ${r.responses.length}`
        + `${sock.destroyed ? ' and the connection was closed' : ' in time'}; received: `
        + JSON.stringify(sock.received.toString('latin1').slice(0, 1500)));
    }
    await sleep(20);
  }
}

/** A valid WebSocket upgrade request. */
export function upgradeRequest(urlPath = '/', headers = {}) {
  const lines = [
    `GET ${urlPath} HTTP/1.1`,
    'Host: 127.0.0.1',
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version: 13',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/**
 * Parses the server-to-client frames that follow the HTTP response head in
 * `buf` (as collected by rawConnect). Returns [{ opcode, fin, payload }];
 * an incomplete trailing frame is left out.
 */
export function serverFrames(buf) {
  const start = buf.indexOf('\r\n\r\n');
  if (start < 0) return [];
  const frames = [];
  let i = start + 4;
  while (i + 2 <= buf.length) {
    const fin = (buf[i] & 0x80) !== 0;
    const opcode = buf[i] & 0x0f;
    const masked = (buf[i + 1] & 0x80) !== 0;
    let len = buf[i + 1] & 0x7f;
    let j = i + 2;
    if (len === 126) { if (j + 2 > buf.length) break; len = buf.readUInt16BE(j); j += 2; }
    else if (len === 127) { if (j + 8 > buf.length) break; len = Number(buf.readBigUInt64BE(j)); j += 8; }
    if (masked) j += 4;
    if (j + len > buf.length) break;
    frames.push({ opcode, fin, payload: buf.subarray(j, j + len) });
    i = j + len;
  }
  return frames;
}

/** Resident set size of a process in KiB (Linux). */
export function rssKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = status.match(/VmRSS:\s+(\d+)\s+kB/);
  return m ? Number(m[1]) : 0;
}

// ---------------------------------------------------------------------------
// Plain HTTP(S) backend (HTTP_PROXY targets, raw Lambda answers, restarts)
// ---------------------------------------------------------------------------

/** Handler result for startHttpBackend: write these bytes as the whole answer, then close. */
export const raw = (bytes) => ({ [RAW]: Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes) });
const RAW = Symbol('raw answer');

/**
 * Starts an HTTP server (HTTPS when `tls` = { key, cert } is given) on
 * 127.0.0.1 (`port` 0 = ephemeral). handler(r, req, res) receives the
 * recorded request r = { method, url, path, query (URLSearchParams), headers,
 * body (Buffer), text, socketId, at } and may return (or resolve to)
 * { status, headers, body } (body: string, Buffer, or an object sent as
 * JSON), DESTROY, HANG or raw(bytes). r.answeredAt is set once answered.
 * The backend can be killed (server and every socket closed) and restarted on
 * the same port.
 */
export async function startHttpBackend(handler = () => ({ status: 200 }), { tls = null, port = 0 } = {}) {
  const requests = [];
  const waiters = new Set();
  const sockets = new Set();
  const hung = new Set();
  const socketIds = new WeakMap();
  let socketSeq = 0;
  let server = null;

  const onRequest = (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      if (!socketIds.has(req.socket)) socketIds.set(req.socket, ++socketSeq);
      const u = new URL(req.url, 'http://x');
      const r = {
        method: req.method, url: req.url, path: u.pathname, query: u.searchParams,
        headers: req.headers, rawHeaders: req.rawHeaders, body, text: body.toString('utf8'),
        socketId: socketIds.get(req.socket), at: Date.now(), answeredAt: null,
      };
      requests.push(r);
      for (const w of [...waiters]) w();
      let result;
      try {
        result = await handler(r, req, res);
      } catch (e) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`backend handler threw: ${e.message}`);
        r.answeredAt = Date.now();
        return;
      }
      r.answeredAt = Date.now();
      if (result === HANG) {
        hung.add(res);
        res.on('close', () => hung.delete(res));
        return;
      }
      if (result === DESTROY) { req.socket.destroy(); return; }
      if (result && result[RAW]) { req.socket.end(result[RAW]); return; }
      const { status = 200, headers = {}, body: out = '' } = result ?? {};
      const buf = Buffer.isBuffer(out) ? out : Buffer.from(typeof out === 'string' ? out : JSON.stringify(out));
      res.writeHead(status, { 'content-length': buf.length, ...headers });
      res.end(buf);
    });
  };

  async function listen(p) {
    const srv = tls ? https.createServer({ key: tls.key, cert: tls.cert }, onRequest) : http.createServer(onRequest);
    srv.on('connection', (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    srv.on('tlsClientError', () => { /* a client that rejected our certificate */ });
    await new Promise((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(p, '127.0.0.1', resolve);
    });
    server = srv;
    liveServers.add(srv);
    return srv.address().port;
  }

  const boundPort = await listen(port);
  const origin = `${tls ? 'https' : 'http'}://127.0.0.1:${boundPort}`;

  const backend = {
    port: boundPort,
    origin,
    requests,
    /** Resolves with the first recorded request matching predicate (past or future). */
    waitFor(predicate, timeoutMs = DEFAULT_WAIT_MS, what = 'a backend request') {
      const found = requests.find(predicate);
      if (found) return Promise.resolve(found);
      let waiter;
      const p = new Promise((resolve) => {
        waiter = () => {
          const r = requests.find(predicate);
          if (r) { waiters.delete(waiter); resolve(r); }
        };
        waiters.add(waiter);
      });
      return withTimeout(p, timeoutMs, what).finally(() => waiters.delete(waiter));
    },
    /** Resolves once n requests have been recorded in all. */
    waitForCount(n, timeoutMs = DEFAULT_WAIT_MS) {
      return backend.waitFor(() => requests.length >= n, timeoutMs, `${n} backend requests (have ${requests.length})`)
        .then(() => requests.slice(0, n));
    },
    dropHung() {
      for (const res of hung) res.socket?.destroy();
      hung.clear();
    },
    get listening() { return server !== null; },
    /** Closes the server and every socket (as if the process died). */
    async kill() {
      if (!server) return;
      const srv = server;
      server = null;
      backend.dropHung();
      liveServers.delete(srv);
      await withTimeout(new Promise((resolve) => {
        srv.close(() => resolve());
        for (const s of sockets) s.destroy();
      }), 3000, 'the backend to close');
    },
    /** Listens again on the same port. */
    async restart() {
      if (server) throw new Error('backend is already listening');
      await listen(boundPort);
    },
    close() { return backend.kill(); },
  };
  return track('backends', backend);
}
