// Issue 14, admin page: the real gateway (the e2e helpers' echo backend and
// API), Debian's Chromium driven by playwright-core, the page served by the
// management listener at /admin/. A ws client connects: its connection
// appears in the page's list, the page posts to it (the client receives
// it) and disconnects it (the client sees the close). With managementAuth
// the page asks for a key and signs each call in the browser (SigV4 with
// WebCrypto). Screenshots: test-artifacts/admin.png, admin-signed.png
// (admin-failure-N.png when a test fails).
//
//   node --test tests/browser/admin.test.mjs   (WSGATE_BIN=build/wsgate-asan to pick another binary)
import { before, after } from 'node:test';
import {
  test, assert, startBackend, startGateway, makeApi, connectWithId, nextMessage, waitClose,
} from '../e2e/helpers.mjs';
import { WAIT_MS, screenshot, launchBrowser } from './lib.mjs';

let browser, failures = 0;

before(async () => {
  browser = await launchBrowser();
});

after(async () => { await browser?.close().catch(() => {}); });

/** Opens the admin page of gw; JavaScript errors collected in page.errors. */
async function openAdmin(gw) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  const res = await page.goto(`${gw.mgmtUrl}/admin/`);
  assert.equal(res.status(), 200);
  assert.match(res.headers()['content-type'], /^text\/html/);
  assert.match(res.headers()['content-security-policy'], /default-src 'self'/);
  return page;
}

/** The page finds client's row, opens it, posts to it and disconnects it. */
async function postAndDisconnect(page, client, id, shot) {
  const row = page.locator(`#conns tr[data-id="${id}"]`);
  await row.waitFor(); // the list refreshes every 2 s
  assert.equal(await row.locator('td').nth(1).textContent(), '127.0.0.1');
  await row.locator('button.open-conn').click();
  await page.locator('#d-record').filter({ hasText: '"sourceIp": "127.0.0.1"' }).waitFor();

  const received = nextMessage(client, WAIT_MS);
  await page.fill('#d-message', 'hello from the admin page');
  await page.click('#d-post');
  assert.deepEqual(await received, { data: 'hello from the admin page', isBinary: false });
  await page.locator('#d-status').filter({ hasText: 'Posted 25 bytes.' }).waitFor();
  await screenshot(page, shot);

  const closed = waitClose(client, WAIT_MS);
  await page.click('#d-delete');
  await closed;
  await page.locator('#d-status').filter({ hasText: 'Disconnected.' }).waitFor();
  await row.waitFor({ state: 'detached' });
}

async function withFailureShot(page, fn) {
  try {
    await fn();
  } catch (err) {
    if (page) await screenshot(page, `admin-failure-${++failures}.png`).catch(() => {});
    throw err;
  }
}

test('issue 14 admin page: a connection appears, the page posts to it and disconnects it', { timeout: 60000 }, async () => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: makeApi(backend.url) });
  const { ws, id } = await connectWithId(gw, backend);
  const page = await openAdmin(gw);
  await withFailureShot(page, async () => {
    // The APIs and their routes, from GET /@apis.
    const apis = page.locator('#apis tbody tr');
    await apis.first().waitFor();
    assert.equal(await apis.count(), 1);
    assert.match(await apis.first().textContent(), /chat.*dev.*\$connect → backend \(AWS_PROXY\)/s);
    assert.equal(await page.locator('#f-api option').count(), 2);
    // The live count, from GET /metrics once a second.
    await page.locator('#stat-open').filter({ hasText: /^1$/ }).waitFor();
    // The channel filter is the listing's: no member of this channel.
    await page.fill('#f-channel', 'nobody-here');
    await page.click('#filters button[type=submit]');
    await page.locator('#page-info').filter({ hasText: /^0 shown/ }).waitFor();
    await page.fill('#f-channel', '');
    // The source IP filter: another address hides the row, ours shows it.
    await page.fill('#f-ip', '10.9.9.9');
    await page.click('#filters button[type=submit]');
    await page.locator('#page-info').filter({ hasText: /^0 shown of 1/ }).waitFor();
    await page.fill('#f-ip', '127.0.0.1');
    await page.click('#filters button[type=submit]');
    await postAndDisconnect(page, ws, id, 'admin.png');
    await page.locator('#stat-open').filter({ hasText: /^0$/ }).waitFor();

    // Pagination: 11 connections, 10 a page.
    for (let i = 0; i < 11; i++) await connectWithId(gw, backend);
    await page.fill('#f-ip', '');
    await page.selectOption('#f-limit', '10');
    const info = page.locator('#page-info');
    await page.click('#filters button[type=submit]');
    await info.filter({ hasText: /^10 shown$/ }).waitFor();
    await page.click('#next-page');
    await info.filter({ hasText: /^1 shown \(not the first page\)$/ }).waitFor();
    assert.equal(await page.locator('#next-page').isDisabled(), true);
    await page.click('#prev-page');
    await info.filter({ hasText: /^10 shown$/ }).waitFor();
    // An API filter sets the stage filter (the listing's /{stage} prefix).
    await page.selectOption('#f-api', '0');
    assert.equal(await page.locator('#f-stage').inputValue(), 'dev');
    await info.filter({ hasText: /^10 shown$/ }).waitFor();
    assert.deepEqual(page.errors, [], 'no JavaScript errors in the page');
  });
});

test('issue 14 admin page: with managementAuth, the page asks for a key and signs its calls', { timeout: 60000 }, async () => {
  const KEY = 'AKIDADMINPAGETEST';
  const SECRET = 'admin-page-secret-0123456789';
  const backend = await startBackend();
  const gw = await startGateway({
    routes: makeApi(backend.url, {
      managementAuth: { keys: [{ accessKeyId: KEY, secretAccessKeyEnv: 'WSGATE_TEST_ADMIN_SECRET' }] },
    }),
    env: { WSGATE_TEST_ADMIN_SECRET: SECRET },
  });
  const { ws, id } = await connectWithId(gw, backend);
  const page = await openAdmin(gw);
  await withFailureShot(page, async () => {
    // The page itself holds no secret: unsigned, /@apis is refused and the
    // page asks for a key.
    await page.locator('#login').waitFor();
    assert.equal(await page.locator('#main').isHidden(), true);
    // A wrong secret: refused, still asking.
    await page.fill('#akid', KEY);
    await page.fill('#secret', 'not-the-secret');
    await page.click('#login-form button');
    await page.locator('#login-error').filter({ hasText: /403 InvalidSignatureException/ }).waitFor();
    // The right one: every call from here on is signed in the browser.
    await page.fill('#secret', SECRET);
    await page.click('#login-form button');
    await page.locator('#main').waitFor();
    assert.match(await page.locator('#auth-state').textContent(), new RegExp(`signed as ${KEY}`));
    await page.locator('#stat-open').filter({ hasText: /^1$/ }).waitFor();
    await postAndDisconnect(page, ws, id, 'admin-signed.png');
    assert.deepEqual(page.errors, [], 'no JavaScript errors in the page');
  });
});
