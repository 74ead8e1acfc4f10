// Issue 14, admin page, the HTTP side (the page itself is driven in
// Chromium by tests/browser/admin.test.mjs): /admin/ serves the embedded
// files without authentication and without secrets, GET /@apis lists the
// APIs and their routes (with managementAuth: signed, the key's own APIs
// only), and a stage named "admin" keeps its management paths.
import { SignatureV4 } from '@smithy/signature-v4';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import {
  test, assert, startBackend, startGateway, makeApi, connectWithId, nextMessage, mgmtRequest,
} from './helpers.mjs';

class Sha256 {
  constructor(secret) { this.h = secret ? createHmac('sha256', secret) : createHash('sha256'); }
  update(d) { this.h.update(typeof d === 'string' ? Buffer.from(d) : d); }
  async digest() { return new Uint8Array(this.h.digest()); }
}

async function signed(gw, method, pathname, key, secret) {
  const signer = new SignatureV4({
    service: 'execute-api', region: 'us-east-1', sha256: Sha256,
    credentials: { accessKeyId: key, secretAccessKey: secret },
  });
  const req = await signer.sign({
    method, protocol: 'http:', hostname: '127.0.0.1', port: gw.mgmtPort, path: pathname, query: {},
    headers: { host: `127.0.0.1:${gw.mgmtPort}` },
  });
  return mgmtRequest(gw, method, pathname, undefined, { headers: req.headers });
}

test('issue 14 admin page: /admin/ files and GET /@apis without managementAuth', async () => {
  const backend = await startBackend();
  const gw = await startGateway({
    routes: makeApi(backend.url, {
      routes: {
        $connect: { integration: 'backend' },
        $disconnect: { integration: 'backend' },
        $default: { integration: 'backend', routeResponse: true },
        'GET /items/{id}': { integration: 'backend' },
      },
    }),
  });
  for (const p of ['/admin', '/admin/', '/admin/index.html']) {
    const res = await mgmtRequest(gw, 'GET', p);
    assert.equal(res.status, 200, p);
    assert.match(res.headers['content-type'], /^text\/html/);
    assert.match(res.text, /<script src="\/admin\/admin\.js"/);
    assert.match(res.headers['content-security-policy'], /default-src 'self'/);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
  }
  const js = await mgmtRequest(gw, 'GET', '/admin/admin.js');
  assert.equal(js.status, 200);
  assert.match(js.headers['content-type'], /^text\/javascript/);
  assert.equal((await mgmtRequest(gw, 'GET', '/admin/admin.css')).status, 200);
  assert.equal((await mgmtRequest(gw, 'GET', '/admin/nothing.js')).status, 404);
  assert.equal((await mgmtRequest(gw, 'POST', '/admin/', 'x')).status, 405);

  const apis = await mgmtRequest(gw, 'GET', '/@apis');
  assert.equal(apis.status, 200);
  const body = apis.json();
  assert.equal(body.managementAuth, false);
  assert.equal(body.apis.length, 1);
  const [api] = body.apis;
  assert.equal(api.name, 'chat');
  assert.equal(api.stage, 'dev');
  assert.equal(api.routeSelectionExpression, '$request.body.action');
  assert.deepEqual(api.routes.map((r) => r.routeKey).sort(), ['$connect', '$default', '$disconnect']);
  assert.deepEqual(api.routes[0].integration, 'backend');
  assert.deepEqual(api.routes[0].integrationType, 'AWS_PROXY');
  assert.deepEqual(api.restRoutes.map((r) => [r.method, r.routeKey]), [['GET', 'GET /items/{id}']]);
  assert.doesNotMatch(apis.text, new RegExp(backend.url.replace(/[/.]/g, '\\$&')), 'no integration URI');
  assert.equal((await mgmtRequest(gw, 'POST', '/@apis', '{}')).status, 403, 'GET only');
});

test('issue 14 admin page: with managementAuth, the page is served unsigned and holds no secret; /@apis lists the signing key\'s APIs', async () => {
  const keys = { a: 'AKIAWSGATEADMINAAAAA', b: 'AKIAWSGATEADMINBBBBB' };
  const secrets = { a: randomBytes(30).toString('base64'), b: randomBytes(30).toString('base64') };
  const backend = await startBackend();
  const api = (n) => makeApi(backend.url, {
    name: n, stage: n, basePath: `/${n}`,
    managementAuth: { keys: [{ accessKeyId: keys[n], secretAccessKeyEnv: `WSGATE_TEST_ADMIN_${n.toUpperCase()}` }] },
  });
  const gw = await startGateway({
    routes: [api('a'), api('b')],
    env: { WSGATE_TEST_ADMIN_A: secrets.a, WSGATE_TEST_ADMIN_B: secrets.b },
  });
  for (const p of ['/admin/', '/admin/admin.js', '/admin/admin.css']) {
    const res = await mgmtRequest(gw, 'GET', p);
    assert.equal(res.status, 200, p);
    for (const s of [...Object.values(secrets), ...Object.values(keys)]) assert.ok(!res.text.includes(s), `${p} holds no key`);
  }
  const unsigned = await mgmtRequest(gw, 'GET', '/@apis');
  assert.equal(unsigned.status, 403);
  assert.equal(unsigned.headers['x-amzn-errortype'], 'ForbiddenException');
  for (const n of ['a', 'b']) {
    const res = await signed(gw, 'GET', '/@apis', keys[n], secrets[n]);
    assert.equal(res.status, 200);
    assert.equal(res.json().managementAuth, true);
    assert.deepEqual(res.json().apis.map((x) => x.name), [n], `key ${n} sees its API only`);
  }
  const wrong = await signed(gw, 'GET', '/@apis', keys.a, secrets.b);
  assert.equal(wrong.status, 403);
  assert.equal(wrong.headers['x-amzn-errortype'], 'InvalidSignatureException');
});

test('issue 14 admin page: a stage named "admin" keeps its management paths', async () => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: makeApi(backend.url, { stage: 'admin' }) });
  const { ws, id } = await connectWithId(gw, backend);
  const received = nextMessage(ws);
  const res = await mgmtRequest(gw, 'POST', `/admin/@connections/${id}`, 'to the admin stage');
  assert.equal(res.status, 200);
  assert.equal((await received).data, 'to the admin stage');
  assert.equal((await mgmtRequest(gw, 'GET', `/admin/@connections/${id}`)).status, 200);
  assert.equal((await mgmtRequest(gw, 'GET', '/admin/')).status, 200, 'and the page is still there');
});
