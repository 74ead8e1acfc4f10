// Issue 10, "wss:// costs what TLS costs": a busy wss:// connection keeps a
// keyed cipher context per direction (a record only sets its nonce); one
// idle for 5-10 s gives them back, so that idle connections stay small, and
// its next message keys new ones. The release is a debug log line.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  assert, test, startGateway, makeApi, connect, nextMessage, waitUntil,
} from './helpers.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsgate-tlsidle-'));
const cert = path.join(dir, 'cert.pem');
const key = path.join(dir, 'key.pem');
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
  '-nodes', '-subj', '/CN=localhost', '-keyout', key, '-out', cert, '-days', '2'], { stdio: 'ignore' });
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

const RELEASED = /an idle connection's cipher contexts released/g;

test('tls offload: an idle connection releases its cipher contexts after 5-10 s and its next messages are answered', async () => {
  const api = makeApi('http://127.0.0.1:9/');
  api.integrations.m = { type: 'MOCK', statusCode: 200, body: 'pong' };
  api.routes = { $default: { integration: 'm', routeResponse: true } };
  const gw = await startGateway({ routes: api, args: ['--tls-cert', cert, '--tls-key', key, '--log-level', 'debug'] });
  const ws = await connect(`wss://127.0.0.1:${gw.port}/`, { rejectUnauthorized: false });
  const released = () => (gw.output().match(RELEASED) || []).length;
  // Busy for 6 s: a message every 200 ms keeps the contexts.
  const t0 = Date.now();
  while (Date.now() - t0 < 6000) {
    ws.send('ping');
    assert.equal((await nextMessage(ws)).data, 'pong');
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(released(), 0, 'not released while busy');
  await waitUntil(() => released() === 1, 12000, 'released once idle');
  for (let i = 0; i < 3; i++) {
    ws.send(`again ${i}`);
    assert.equal((await nextMessage(ws)).data, 'pong', 'answered with new contexts');
  }
  ws.close();
});
