// Browser test of the chat example: the real gateway (routes/chat.json), the
// chat backend (clients/examples/chat/server.mjs) and Debian's Chromium
// driven by playwright-core. Two users join a room, one types and sends, the
// other sees the typing notice and the message, and after a reload the
// message comes back from the REST history. Screenshot: test-artifacts/chat.png
// (test-artifacts/chat-failure-N.png for each page when the test fails).
//
//   node --test tests/browser/          (WSGATE_BIN=build/wsgate-asan to pick another binary)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { ROOT, WSGATE_BIN, WAIT_MS, freePort, stop, screenshot, processGroup, launchBrowser } from './lib.mjs';

const ROOM = 'browser-test';

const { procs, launch } = processGroup(); // every child, killed at the end whatever happens
const tmp = mkdtempSync(path.join(tmpdir(), 'wsgate-chat-'));
let browser, gatewayUrl, mgmtPort, backendOut = '', gatewayOut = '';
const pages = [];      // every page opened, screenshotted when the test fails


before(async () => {
  // The backend on an ephemeral port, then the gateway pointed at it. The
  // management port is picked first because the backend needs its URL; if
  // someone takes it meanwhile the gateway fails to bind and we try again.
  for (let attempt = 1; ; attempt++) {
    mgmtPort = await freePort();
    const backend = await launch(process.execPath, [path.join(ROOT, 'clients/examples/chat/server.mjs')],
      { PORT: '0', MGMT_URL: `http://127.0.0.1:${mgmtPort}/dev` },
      /listening on http:\/\/127\.0\.0\.1:(\d+)\/events/, (d) => { backendOut += d; });
    const api = JSON.parse(readFileSync(path.join(ROOT, 'routes/chat.json'), 'utf8'));
    for (const integ of Object.values(api.integrations)) {
      integ.uri = integ.uri.replace('127.0.0.1:9000', `127.0.0.1:${backend.match[1]}`);
    }
    const routes = path.join(tmp, 'chat.json');
    writeFileSync(routes, JSON.stringify(api, null, 2));
    try {
      const gw = await launch(WSGATE_BIN,
        ['--routes', routes, '--listen', '127.0.0.1:0', '--mgmt-listen', `127.0.0.1:${mgmtPort}`, '--data', path.join(tmp, 'data')],
        {}, /listening on (127\.0\.0\.1:\d+) \(gateway\)[\s\S]*\(management\)/, (d) => { gatewayOut += d; });
      gatewayUrl = `http://${gw.match[1]}${api.basePath.replace(/\/$/, '')}/`;
      break;
    } catch (err) {
      await stop(backend.proc);
      if (attempt === 3) throw err;
    }
  }
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await Promise.all(procs.map(stop));
  rmSync(tmp, { recursive: true, force: true });
});

/** A page as one user: a fresh browser context, JavaScript errors collected. */
async function openAs(name) {
  const context = await browser.newContext();
  const page = await context.newPage();
  pages.push(page);
  page.setDefaultTimeout(WAIT_MS);
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  const res = await page.goto(gatewayUrl);
  assert.equal(res.status(), 200);
  assert.match(res.headers()['content-type'], /^text\/html/);
  // The name prompt and the room field.
  await page.fill('#name', name);
  await page.fill('#room', ROOM);
  await page.click('#join button');
  await page.locator('#text').waitFor({ state: 'visible' });
  await page.waitForFunction(() => !document.querySelector('#text').disabled);
  return page;
}

const log = (page) => page.locator('#log');

test('two users chat in one room through the gateway', { timeout: 50000 }, async () => {
  try {
    await chat();
  } catch (err) {
    for (const [i, page] of pages.entries()) await screenshot(page, `chat-failure-${i + 1}.png`).catch(() => {});
    console.log(`--- gateway output\n${gatewayOut}\n--- backend output\n${backendOut}`);
    throw err;
  }
});

async function chat() {
  const ada = await openAs('ada');
  await assertText(log(ada), `ada joined #${ROOM}`);
  const bob = await openAs('bob');
  await assertText(log(ada), `bob joined #${ROOM}`);
  await assertText(log(bob), `bob joined #${ROOM}`);

  // Ada types: Bob sees the typing notice, Ada does not.
  await ada.locator('#text').pressSequentially('hello from ada', { delay: 20 });
  await assertText(bob.locator('#typing'), 'ada is typing…');
  assert.equal(await ada.locator('#typing').textContent(), '');

  // Ada sends: both see the message, and Bob's typing notice goes away.
  await ada.locator('#text').press('Enter');
  await assertText(log(bob), 'ada: hello from ada');
  await assertText(log(ada), 'ada: hello from ada');
  await assertText(bob.locator('#typing'), '', true);
  assert.equal(await ada.locator('#text').inputValue(), '', 'the message field is cleared');

  // The history over REST holds the message.
  const res = await fetch(`${gatewayUrl}rooms/${ROOM}/messages`);
  assert.equal(res.status, 200);
  const history = await res.json();
  assert.equal(history.length, 1);
  assert.deepEqual({ ...history[0], at: 'x' }, { type: 'message', room: ROOM, from: 'ada', text: 'hello from ada', at: 'x' });

  // Bob reloads: the page rejoins (its address now says ?name=bob&room=...)
  // and shows the message from the history; Ada sees Bob leave and come back.
  assert.match(bob.url(), new RegExp(`\\?name=bob&room=${ROOM}$`));
  await bob.reload();
  await bob.waitForFunction(() => !document.querySelector('#text').disabled);
  await assertText(log(bob), 'ada: hello from ada');
  await assertText(log(ada), 'bob left');
  assert.equal(await log(bob).locator('li.message').count(), 1, 'the message is shown once');

  // Bob answers after the reload: his new connection reaches Ada.
  await bob.locator('#text').fill('hi ada');
  await bob.locator('#send button').click();
  await assertText(log(ada), 'bob: hi ada');
  await screenshot(ada, 'chat.png');

  assert.deepEqual([...ada.errors, ...bob.errors], [], 'no JavaScript errors in the pages');
}

test('a connection without a name is refused with 401', { timeout: 15000 }, async () => {
  const url = gatewayUrl.replace(/^http/, 'ws').replace(/\/$/, '');
  const status = await new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode); res.resume(); });
    ws.on('open', () => { ws.close(); reject(new Error('connected without a name')); });
    ws.on('error', reject);
  });
  assert.equal(status, 401);
});

/** Waits until `locator` contains `text` (or, with exact, has exactly that text). */
async function assertText(locator, text, exact = false) {
  const deadline = Date.now() + WAIT_MS;
  let seen;
  while (Date.now() < deadline) {
    seen = await locator.textContent();
    if (exact ? seen === text : seen.includes(text)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`expected ${JSON.stringify(text)} in ${await locator.evaluate((el) => el.id)}, found ${JSON.stringify(seen)}`);
}
