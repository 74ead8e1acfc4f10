// Issue 12, allowedOrigins in a real browser: Debian's Chromium (driven by
// playwright-core) opens the gateway's WebSocket from a page of an allowed
// origin and from a page of a forbidden one. The same small page server is
// reached as http://127.0.0.1:P (allowed) and http://localhost:P (another
// origin for the browser, forbidden); the browser sets Origin itself, which
// is the whole point: page scripts cannot forge it.
//
//   node --test tests/browser/          (WSGATE_BIN=build/wsgate-asan to pick another binary)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WSGATE_BIN, WAIT_MS, launchBrowser } from './lib.mjs';


const tmp = mkdtempSync(path.join(tmpdir(), 'wsgate-origins-'));
const servers = [];
let gateway, gatewayOut = '', browser, pagePort, wsUrl;
const events = []; // what the backend received

function listen(handler) {
  const srv = http.createServer(handler);
  servers.push(srv);
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(srv.address().port)));
}

before(async () => {
  pagePort = await listen((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>origin test</title><p>origin test</p>');
  });
  const backendPort = await listen((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const ev = JSON.parse(body);
      events.push(ev);
      const type = ev.requestContext.eventType;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(type === 'MESSAGE' ? { statusCode: 200, body: `echo:${ev.body}` } : { statusCode: 200 }));
    });
  });
  const api = {
    name: 'origins', stage: 'dev', basePath: '/',
    allowedOrigins: [`http://127.0.0.1:${pagePort}`],
    integrations: { backend: { type: 'AWS_PROXY', uri: `http://127.0.0.1:${backendPort}/events` } },
    routes: {
      $connect: { integration: 'backend' },
      $default: { integration: 'backend', routeResponse: true },
    },
  };
  writeFileSync(path.join(tmp, 'api.json'), JSON.stringify(api));
  gateway = spawn(WSGATE_BIN, ['--routes', path.join(tmp, 'api.json'), '--listen', '127.0.0.1:0',
    '--mgmt-listen', '127.0.0.1:0', '--data', path.join(tmp, 'data')], { stdio: ['ignore', 'pipe', 'pipe'] });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`wsgate did not start:\n${gatewayOut}`)), WAIT_MS);
    const onData = (d) => {
      gatewayOut += d;
      const m = /listening on 127\.0\.0\.1:(\d+) \(gateway\)[\s\S]*\(management\)/.exec(gatewayOut);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    };
    gateway.stdout.on('data', onData);
    gateway.stderr.on('data', onData);
    gateway.on('exit', (code) => { clearTimeout(timer); reject(new Error(`wsgate exited (${code}):\n${gatewayOut}`)); });
  });
  wsUrl = `ws://127.0.0.1:${port}/`;
  browser = await launchBrowser({ quic: true });
});

after(async () => {
  await browser?.close().catch(() => {});
  if (gateway && gateway.exitCode === null) {
    const exited = new Promise((r) => gateway.on('exit', r));
    gateway.kill('SIGTERM');
    const t = setTimeout(() => gateway.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }
  for (const s of servers) { s.closeAllConnections(); s.close(); }
  rmSync(tmp, { recursive: true, force: true });
  assert.doesNotMatch(gatewayOut, /AddressSanitizer|LeakSanitizer|runtime error:/);
});

/** Opens the page at pageUrl, then a WebSocket from it: 'open:<echo>' or 'refused'. */
async function tryFrom(pageUrl) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    await page.goto(pageUrl);
    return await page.evaluate((url) => new Promise((resolve) => {
      const ws = new WebSocket(url);
      ws.onopen = () => ws.send('hi');
      ws.onmessage = (e) => { resolve(`open:${e.data}`); ws.close(); };
      ws.onerror = () => resolve('refused');
    }), wsUrl);
  } finally {
    await context.close();
  }
}

test('item allowedOrigins: Chromium on a page of a forbidden origin cannot open the socket', { timeout: 30000 }, async () => {
  const before = events.length;
  assert.equal(await tryFrom(`http://localhost:${pagePort}/`), 'refused');
  assert.equal(events.length, before, 'no integration call for a forbidden origin');
  assert.match(gatewayOut, new RegExp(`Origin "http://localhost:${pagePort}" is not in allowedOrigins`));
});

test('item allowedOrigins: Chromium on a page of an allowed origin opens it and talks', { timeout: 30000 }, async () => {
  assert.equal(await tryFrom(`http://127.0.0.1:${pagePort}/`), 'open:echo:hi');
  const connect = events.find((e) => e.requestContext.eventType === 'CONNECT');
  assert.equal(connect.headers.Origin ?? connect.headers.origin, `http://127.0.0.1:${pagePort}`);
});
