// Browser test of the dashboard example (issue 13): the real gateway
// (routes/dashboard.json), the dashboard backend
// (clients/examples/dashboard/server.mjs) and Debian's Chromium driven by
// playwright-core. Five tabs show the live values; each receives every
// update once, in order, and the backend makes one publish per update. The
// backend reaches the management API through a counting proxy of this test,
// so the publishes are counted where they travel, not as the backend says.
// Screenshot: test-artifacts/dashboard.png (dashboard-failure-N.png for each
// tab when the test fails).
//
//   node --test tests/browser/          (WSGATE_BIN=build/wsgate-asan to pick another binary)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import http from 'node:http';
import path from 'node:path';
import { ROOT, WSGATE_BIN, WAIT_MS, stop, screenshot, processGroup, launchBrowser } from './lib.mjs';

const INTERVAL_MS = 300; // between updates
const TABS = 5;
const UPDATES = 8;       // each tab waits for this many

const { procs, launch } = processGroup(); // every child, killed at the end whatever happens
const tmp = mkdtempSync(path.join(tmpdir(), 'wsgate-dashboard-'));
let browser, proxy, gatewayUrl, mgmtAddr, backendOut = '', gatewayOut = '';
const pages = [];
const publishes = []; // every POST the backend made: { url, seq, status, answer }


/** The backend's management API: records each request and forwards it to the gateway (502 until it is up). */
function countingProxy() {
  const srv = http.createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    const rec = { method: req.method, url: req.url, seq: JSON.parse(body || '{}').seq, status: 502, answer: null };
    publishes.push(rec);
    if (!mgmtAddr) return res.writeHead(502).end('gateway not up yet');
    try {
      const r = await fetch(`http://${mgmtAddr}${req.url}`, { method: req.method, body });
      rec.status = r.status;
      const text = await r.text();
      rec.answer = r.ok ? JSON.parse(text) : text;
      res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'text/plain' }).end(text);
    } catch (err) {
      res.writeHead(502).end(err.message);
    }
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(srv)));
}

before(async () => {
  proxy = await countingProxy();
  const backend = await launch(process.execPath, [path.join(ROOT, 'clients/examples/dashboard/server.mjs')],
    { PORT: '0', INTERVAL_MS: String(INTERVAL_MS), MGMT_URL: `http://127.0.0.1:${proxy.address().port}/dev` },
    /listening on http:\/\/127\.0\.0\.1:(\d+)\/events/, (d) => { backendOut += d; });
  const api = JSON.parse(readFileSync(path.join(ROOT, 'routes/dashboard.json'), 'utf8'));
  for (const integ of Object.values(api.integrations)) {
    integ.uri = integ.uri.replace('127.0.0.1:9100', `127.0.0.1:${backend.match[1]}`);
  }
  const routes = path.join(tmp, 'dashboard.json');
  writeFileSync(routes, JSON.stringify(api, null, 2));
  const gw = await launch(WSGATE_BIN,
    ['--routes', routes, '--listen', '127.0.0.1:0', '--mgmt-listen', '127.0.0.1:0', '--data', path.join(tmp, 'data')],
    {}, /listening on (127\.0\.0\.1:\d+) \(gateway\)[\s\S]*listening on (127\.0\.0\.1:\d+) \(management\)/,
    (d) => { gatewayOut += d; });
  gatewayUrl = `http://${gw.match[1]}${api.basePath.replace(/\/$/, '')}/`;
  mgmtAddr = gw.match[2];
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await Promise.all(procs.map(stop));
  await new Promise((r) => (proxy ? proxy.close(r) : r()));
  rmSync(tmp, { recursive: true, force: true });
});

test('issue 13: dashboard example: 5 tabs get every update once and in order, one publish per update', { timeout: 60000 }, async () => {
  try {
    await dashboard();
  } catch (err) {
    for (const [i, page] of pages.entries()) await screenshot(page, `dashboard-failure-${i + 1}.png`).catch(() => {});
    console.log(`--- gateway output\n${gatewayOut}\n--- backend output\n${backendOut}\n--- publishes\n${JSON.stringify(publishes)}`);
    throw err;
  }
});

async function dashboard() {
  // Five tabs of one browser window, each with its own socket.
  const context = await browser.newContext();
  for (let i = 0; i < TABS; i++) {
    const page = await context.newPage();
    pages.push(page);
    page.setDefaultTimeout(WAIT_MS);
    page.errors = [];
    page.on('pageerror', (e) => page.errors.push(e.message));
    const res = await page.goto(gatewayUrl);
    assert.equal(res.status(), 200);
    assert.match(res.headers()['content-type'], /^text\/html/);
    await page.locator('#status', { hasText: 'live' }).waitFor();
  }
  // Every tab sees UPDATES updates after the last one opened.
  for (const page of pages) {
    await page.waitForFunction((n) => window.received.length >= n, UPDATES, { timeout: WAIT_MS + UPDATES * INTERVAL_MS });
  }
  const seen = await Promise.all(pages.map((p) => p.evaluate(() => [...window.received])));

  // Each tab: consecutive updates from its first on (none lost, none twice, in order).
  for (const [i, seqs] of seen.entries()) {
    const expected = seqs.map((_, k) => seqs[0] + k);
    assert.deepEqual(seqs, expected, `tab ${i + 1} received ${seqs.join(',')}`);
  }
  // From the moment the last tab joined, every tab saw the same updates.
  const from = Math.max(...seen.map((s) => s[0]));
  const to = Math.min(...seen.map((s) => s.at(-1)));
  assert.ok(to - from + 1 >= UPDATES, `common range ${from}..${to}`);
  const common = seen.map((s) => s.filter((q) => q >= from && q <= to));
  for (const c of common) assert.deepEqual(c, common[0]);

  // The backend published each update once: one POST per seq, all to the
  // channel; each of the common ones queued for the 5 tabs by that one POST.
  assert.ok(publishes.length > 0);
  for (const p of publishes) assert.equal(`${p.method} ${p.url}`, 'POST /dev/@channels/dashboard');
  const seqs = publishes.map((p) => p.seq);
  assert.deepEqual(seqs, seqs.map((_, k) => k + 1), 'one POST per update, in order');
  for (let q = from; q <= to; q++) {
    const p = publishes[q - 1];
    assert.equal(p.status, 200, `publish ${q}: ${p.answer}`);
    assert.deepEqual(p.answer, { queued: TABS, skipped: 0 }, `publish ${q}`);
  }

  // The page shows the last update it received.
  for (const [i, page] of pages.entries()) {
    const last = await page.evaluate(() => window.received.at(-1));
    assert.equal(Number(await page.locator('#seq').textContent()), last, `tab ${i + 1}`);
    assert.match(await page.locator('#walk').textContent(), /^\d+(\.\d)?$/);
  }
  await screenshot(pages[0], 'dashboard.png');
  assert.deepEqual(pages.flatMap((p) => p.errors), [], 'no JavaScript errors in the pages');
  assert.doesNotMatch(gatewayOut, /Z error |AddressSanitizer|LeakSanitizer|runtime error:/, 'the gateway logged an error');
  await context.close();
}
