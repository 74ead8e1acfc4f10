// One invoke path for WebSocket and REST routes (issue 10 §3): the request
// line, Host, hop-by-hop handling and X-Forwarded-* are written in one
// place (src/integration.c), so both kinds of route agree where they used
// to disagree, and keep the differences their tests pin down
// (X-Forwarded-Port on REST calls only).
import http from 'node:http';
import {
  test, assert, startBackend, startHttpBackend, startGateway, makeApi, connect,
} from './helpers.mjs';

const restApi = (integrations, routes) => ({ name: 'shop', stage: 'dev', basePath: '/', integrations, routes });

/** A REST request with the given headers; resolves to the status. */
function request(gw, path, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: gw.port, path, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end();
  });
}

test('issue 10 §3: every backend request names the backend\'s port in Host (REST AWS_PROXY as REST HTTP_PROXY and WebSocket calls)', async () => {
  const backend = await startBackend(() => ({ statusCode: 200, body: 'ok' }));
  const hb = await startHttpBackend(() => ({ status: 200, body: 'x' }));
  const rest = await startGateway({ routes: restApi(
    { l: { type: 'AWS_PROXY', uri: backend.url }, p: { type: 'HTTP_PROXY', uri: `${hb.origin}/p` } },
    { 'GET /l': { integration: 'l' }, 'GET /p': { integration: 'p' } },
  ) });
  assert.equal(await request(rest, '/l', { Host: 'front.example' }), 200);
  assert.equal(await request(rest, '/p', { Host: 'front.example' }), 200);
  assert.equal(backend.requests[0].headers.host, `127.0.0.1:${backend.port}`);
  assert.equal(hb.requests[0].headers.host, `127.0.0.1:${hb.port}`);

  const ws = await startGateway({ routes: makeApi(backend.url) });
  const c = await connect(ws.url);
  await backend.waitForEvent('CONNECT');
  assert.equal(backend.requests.at(-1).headers.host, `127.0.0.1:${backend.port}`);
  c.close();
});

test('issue 10 §3: a client\'s gateway headers are left out of a WebSocket $connect Lambda event, as of a REST one', async () => {
  const spoof = {
    'X-Forwarded-Host': 'evil.example', Forwarded: 'for=10.9.8.7', 'X-Amzn-RequestId': 'spoofed',
    'X-Wsgate-Connection-Id': 'spoofed', 'X-Forwarded-Port': '443', 'X-Tag': 'kept',
  };
  const backend = await startBackend(() => ({ statusCode: 200, body: 'ok' }));
  const ws = await startGateway({ routes: makeApi(backend.url) });
  const c = await connect(ws.url, { headers: spoof });
  const ev = await backend.waitForEvent('CONNECT');
  const wsKeys = Object.keys(ev.headers).map((k) => k.toLowerCase());
  c.close();

  const rest = await startGateway({ routes: restApi(
    { l: { type: 'AWS_PROXY', uri: backend.url } }, { 'GET /l': { integration: 'l' } },
  ) });
  assert.equal(await request(rest, '/l', spoof), 200);
  const restEv = backend.events.at(-1);
  for (const keys of [wsKeys, Object.keys(restEv.headers)]) {
    for (const h of ['x-forwarded-host', 'forwarded', 'x-amzn-requestid', 'x-wsgate-connection-id'])
      assert.ok(!keys.includes(h), `${h} left out (${keys})`);
    assert.ok(keys.includes('x-tag'));
  }
  // X-Forwarded-Port: the gateway's own on both (AWS adds it to CONNECT
  // events too, issue 15 item 4), never the client's spoofed 443.
  const wsPort = Object.entries(ev.headers).filter(([k]) => k.toLowerCase() === 'x-forwarded-port').map(([, v]) => v);
  assert.deepEqual(wsPort, [String(ws.port)]);
  assert.equal(restEv.headers['x-forwarded-port'], String(rest.port));
});

test('issue 10 §3: REST HTTP_PROXY: X-Forwarded-Port is the listener\'s; hop-by-hop and Connection-listed headers stay behind', async () => {
  const hb = await startHttpBackend(() => ({ status: 200, body: 'x' }));
  const rest = await startGateway({ routes: restApi(
    { p: { type: 'HTTP_PROXY', uri: `${hb.origin}/p` } }, { 'GET /p': { integration: 'p' } },
  ) });
  assert.equal(await request(rest, '/p', {
    'X-Forwarded-Port': '1', 'X-Hop': 'no', Connection: 'x-hop', 'X-Keep': 'yes',
  }), 200);
  const h = hb.requests[0].headers;
  assert.equal(h['x-forwarded-port'], String(rest.port));
  assert.equal(h['x-hop'], undefined);
  assert.equal(h['x-keep'], 'yes');
  assert.match(h['x-amzn-requestid'] ?? '', /^\S+$/);
});
