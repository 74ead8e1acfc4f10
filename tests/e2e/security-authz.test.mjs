// Issue 12, authorizers on $connect (reference §5): a REQUEST authorizer
// called as a Lambda authorizer (its input, both output shapes, the cache),
// and a JWT authorizer checked against a JWKS. A refusal happens before any
// $connect call: the backends count what they got.
import { derivedApiId } from './aws-ids.mjs';
import {
  test, assert, checkApi as check, expectCheckError, startBackend, startGateway, makeApi, runGateway, writeRoutes, connect,
  connectRefused, nextMessage, send, waitUntil, unusedUrl, sleep, HANG, rawConnect, upgradeRequest,
} from './helpers.mjs';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';

const logged = (gw, re) => waitUntil(() => re.test(gw.output()), 3000, `a log line matching ${re}`);

/** An authorizer answering like AWS's samples: token "allow-*" → Allow, "deny" → Deny, else Unauthorized. */
function policyAuthorizer(event) {
  const token = event.headers?.Authorization ?? event.headers?.authorization;
  if (token === 'deny') {
    return { principalId: 'nobody', policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: 'Deny', Resource: event.methodArn }] } };
  }
  if (!token?.startsWith('allow-')) return { errorMessage: 'Unauthorized', errorType: 'Error' };
  return {
    principalId: `user-${token.slice(6)}`,
    policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: event.methodArn }] },
    context: { tenant: 'acme', level: 3, admin: true },
  };
}

/** An API whose $connect is guarded by authorizer `auth`, calling authUri. */
function authzApi(backendUrl, authUri, authorizer = {}) {
  const api = makeApi(backendUrl);
  api.integrations.authz = { type: 'AWS_PROXY', uri: authUri, timeoutMs: 2000 };
  api.authorizers = {
    auth: { type: 'REQUEST', integration: 'authz', identitySource: ['route.request.header.Authorization'], ...authorizer },
  };
  api.routes.$connect.authorizer = 'auth';
  return api;
}

test('item authorizers: an Allow reaches $connect, and principalId and context reach CONNECT, MESSAGE and DISCONNECT events', async () => {
  const backend = await startBackend();
  const auth = await startBackend(policyAuthorizer);
  const gw = await startGateway({ routes: authzApi(backend.url, auth.url) });
  const ws = await connect(`${gw.url}?room=42&room=43`, { headers: { Authorization: 'allow-ann', 'X-Extra': 'x' } });
  send(ws, 'hello');
  assert.equal((await nextMessage(ws)).data, 'hello');
  ws.close();
  const disc = await backend.waitFor((e) => e.requestContext?.eventType === 'DISCONNECT');

  // The authorizer's input, as AWS's (reference §5.3).
  assert.equal(auth.events.length, 1);
  const input = auth.events[0];
  assert.equal(input.type, 'REQUEST');
  assert.equal(input.methodArn, `arn:aws:execute-api:local:000000000000:${derivedApiId('chat')}/dev/$connect`);
  assert.equal(input.headers.Authorization, 'allow-ann');
  assert.deepEqual(input.multiValueHeaders['X-Extra'], ['x']);
  assert.deepEqual(input.queryStringParameters, { room: '43' });
  assert.deepEqual(input.multiValueQueryStringParameters, { room: ['42', '43'] });
  assert.deepEqual(input.stageVariables, {});
  assert.equal(input.requestContext.routeKey, '$connect');
  assert.equal(input.requestContext.eventType, 'CONNECT');
  assert.equal(input.requestContext.stage, 'dev');
  assert.equal(input.requestContext.apiId, derivedApiId('chat'));
  assert.equal(input.requestContext.identity.sourceIp, '127.0.0.1');
  assert.equal(input.requestContext.authorizer, undefined);

  const conn = backend.eventsOf('CONNECT');
  assert.equal(conn.length, 1);
  const id = conn[0].requestContext.connectionId;
  assert.equal(input.requestContext.connectionId, id, 'the authorizer sees the connection ID');
  for (const e of [conn[0], backend.eventsOf('MESSAGE', id)[0], disc]) {
    const a = e.requestContext.authorizer;
    assert.ok(a, `${e.requestContext.eventType} has requestContext.authorizer`);
    assert.equal(a.principalId, 'user-ann');
    // Values stringified, as AWS passes them on.
    assert.equal(a.tenant, 'acme');
    assert.equal(a.level, '3');
    assert.equal(a.admin, 'true');
    assert.equal(typeof a.integrationLatency, 'number');
  }
});

test('item authorizers: a Deny gets 403, "Unauthorized" 401, neither calls $connect', async () => {
  const backend = await startBackend();
  const auth = await startBackend(policyAuthorizer);
  const gw = await startGateway({ routes: authzApi(backend.url, auth.url, { authorizerResultTtlInSeconds: 0 }) });
  assert.equal(await connectRefused(gw.url, { headers: { Authorization: 'deny' } }), 403);
  assert.equal(await connectRefused(gw.url, { headers: { Authorization: 'bogus' } }), 401);
  assert.equal(auth.events.length, 2);
  assert.equal(backend.events.length, 0, 'no $connect (nor $disconnect) call');
  await logged(gw, /upgrade refused \(403, request \S+, api chat, 127\.0\.0\.1\): authorizer auth: the policy does not allow the methodArn/);
  await logged(gw, /upgrade refused \(401, request \S+, api chat, 127\.0\.0\.1\): authorizer auth: the authorizer said Unauthorized/);
  assert.ok(!gw.output().includes('bogus'), 'the token is never logged');
});

test('item authorizers: a missing or empty identity source gets 401 without calling the authorizer', async () => {
  const backend = await startBackend();
  const auth = await startBackend(policyAuthorizer);
  const api = authzApi(backend.url, auth.url, { identitySource: 'route.request.header.Authorization, route.request.querystring.token' });
  const gw = await startGateway({ routes: api });
  assert.equal(await connectRefused(gw.url), 401);
  assert.equal(await connectRefused(`${gw.url}?token=t`), 401);
  assert.equal(await connectRefused(`${gw.url}?token=`, { headers: { Authorization: 'allow-a' } }), 401);
  assert.equal(await connectRefused(gw.url, { headers: { Authorization: 'allow-a' } }), 401);
  assert.equal(auth.events.length, 0, 'the authorizer is not called');
  assert.equal(backend.events.length, 0);
  const ws = await connect(`${gw.url}?token=t`, { headers: { Authorization: 'allow-a' } });
  ws.close();
  assert.equal(auth.events.length, 1);
  assert.equal(auth.events[0].queryStringParameters.token, 't');
});

test('item authorizers: results are cached by identity (Allow and Deny), and not with a TTL of 0', async () => {
  const backend = await startBackend();
  const auth = await startBackend(policyAuthorizer);
  const gw = await startGateway({ routes: authzApi(backend.url, auth.url) });
  for (let i = 0; i < 3; i++) {
    const ws = await connect(gw.url, { headers: { Authorization: 'allow-bob' } });
    ws.close();
  }
  assert.equal(auth.events.length, 1, 'one authorizer call for three connects with the same token');
  await waitUntil(() => backend.eventsOf('CONNECT').length === 3);
  for (const e of backend.eventsOf('CONNECT')) assert.equal(e.requestContext.authorizer.principalId, 'user-bob');
  const ws = await connect(gw.url, { headers: { Authorization: 'allow-eve' } });
  ws.close();
  assert.equal(auth.events.length, 2, 'another identity is another call');
  assert.equal(await connectRefused(gw.url, { headers: { Authorization: 'deny' } }), 403);
  assert.equal(await connectRefused(gw.url, { headers: { Authorization: 'deny' } }), 403);
  assert.equal(auth.events.length, 3, 'a Deny is cached too');
  assert.equal(await connectRefused(gw.url, { headers: { Authorization: 'nope' } }), 401);
  assert.equal(await connectRefused(gw.url, { headers: { Authorization: 'nope' } }), 401);
  assert.equal(auth.events.length, 5, '"Unauthorized" is not cached');

  const auth2 = await startBackend(policyAuthorizer);
  const gw2 = await startGateway({ routes: authzApi(backend.url, auth2.url, { authorizerResultTtlInSeconds: 0 }) });
  for (let i = 0; i < 3; i++) {
    const w = await connect(gw2.url, { headers: { Authorization: 'allow-bob' } });
    w.close();
  }
  assert.equal(auth2.events.length, 3, 'TTL 0: a call per connect');
});

test('item authorizers: a cached result expires after authorizerResultTtlInSeconds', async () => {
  const backend = await startBackend();
  const auth = await startBackend(policyAuthorizer);
  const gw = await startGateway({ routes: authzApi(backend.url, auth.url, { authorizerResultTtlInSeconds: 1 }) });
  (await connect(gw.url, { headers: { Authorization: 'allow-x' } })).close();
  (await connect(gw.url, { headers: { Authorization: 'allow-x' } })).close();
  assert.equal(auth.events.length, 1);
  await sleep(1100);
  (await connect(gw.url, { headers: { Authorization: 'allow-x' } })).close();
  assert.equal(auth.events.length, 2);
});

test('item authorizers: the simple shape {isAuthorized, context}, and policies matched with wildcards as IAM does', async () => {
  const backend = await startBackend();
  const answers = {
    simple: { isAuthorized: true, context: { user: 'sam', n: 1.5, tags: ['a', 'b'] } },
    no: { isAuthorized: false },
    wild: { principalId: 'w', policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:*', Effect: 'Allow', Resource: `arn:aws:execute-api:*:*:${derivedApiId('chat')}/*` }] } },
    star: { principalId: 's', policyDocument: { Statement: { Action: '*', Effect: 'Allow', Resource: '*' } } },
    // REST-style ARN: does not match …/dev/$connect (reference §5.4)
    rest: { principalId: 'r', policyDocument: { Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: `arn:aws:execute-api:*:*:${derivedApiId('chat')}/dev/*/*` }] } },
    other: { principalId: 'o', policyDocument: { Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: 'arn:aws:execute-api:*:*:other/*' }] } },
    both: { principalId: 'b', policyDocument: { Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: '*' }, { Action: 'execute-api:Invoke', Effect: 'Deny', Resource: `arn:aws:execute-api:local:*:${derivedApiId('chat')}/dev/$connect` }] } },
    objctx: { principalId: 'x', policyDocument: { Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: '*' }] }, context: { o: { a: 1 } } },
    nopid: { policyDocument: { Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: '*' }] } },
    badbool: { isAuthorized: 'yes' },
    crash: { errorMessage: 'Invalid token', errorType: 'Error' },
  };
  const auth = await startBackend((event) => answers[event.headers.Authorization]);
  const gw = await startGateway({ routes: authzApi(backend.url, auth.url, { authorizerResultTtlInSeconds: 0 }) });
  const expect = { no: 403, rest: 403, other: 403, both: 403, objctx: 500, nopid: 500, badbool: 500, crash: 500 };
  for (const [token, status] of Object.entries(expect)) {
    assert.equal(await connectRefused(gw.url, { headers: { Authorization: token } }), status, token);
  }
  assert.equal(backend.events.length, 0);
  for (const token of ['simple', 'wild', 'star']) (await connect(gw.url, { headers: { Authorization: token } })).close();
  const conns = await waitUntil(() => backend.eventsOf('CONNECT').length === 3 && backend.eventsOf('CONNECT'));
  assert.deepEqual(conns[0].requestContext.authorizer.user, 'sam');
  assert.deepEqual(conns[0].requestContext.authorizer.n, '1.5');
  assert.deepEqual(conns[0].requestContext.authorizer.tags, ['a', 'b']);
  assert.equal(conns[0].requestContext.authorizer.principalId, undefined);
  assert.equal(conns[1].requestContext.authorizer.principalId, 'w');
  assert.equal(conns[2].requestContext.authorizer.principalId, 's');
});

test('item authorizers: an authorizer that is down, slow, answers garbage or too much gets 500 without calling $connect', async () => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: authzApi(backend.url, await unusedUrl(), { authorizerResultTtlInSeconds: 0 }) });
  assert.equal(await connectRefused(gw.url, { headers: { Authorization: 'allow-a' } }), 500);
  await logged(gw, /upgrade refused \(500, request \S+, api chat, 127\.0\.0\.1\): authorizer auth: the authorizer could not be reached/);

  const big = { principalId: 'p', policyDocument: { Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: '*' }] }, context: { pad: 'x'.repeat(9000) } };
  const auth = await startBackend((event) => (event.headers.Authorization === 'big' ? big : 'not a policy'));
  const gw2 = await startGateway({ routes: authzApi(backend.url, auth.url, { authorizerResultTtlInSeconds: 0 }) });
  assert.equal(await connectRefused(gw2.url, { headers: { Authorization: 'big' } }), 500);
  assert.equal(await connectRefused(gw2.url, { headers: { Authorization: 'x' } }), 500);
  assert.equal(backend.events.length, 0);
});

test('item authorizers: a slow authorizer times out with 500; a client that leaves during the call costs no $connect and no $disconnect', async () => {
  const backend = await startBackend();
  const auth = await startBackend((event) => (event.headers.Authorization === 'slow' ? HANG : policyAuthorizer(event)));
  const api = authzApi(backend.url, auth.url, { authorizerResultTtlInSeconds: 0 });
  api.integrations.authz.timeoutMs = 300;
  const gw = await startGateway({ routes: api });
  const t0 = Date.now();
  assert.equal(await connectRefused(gw.url, { headers: { Authorization: 'slow' } }), 500);
  assert.ok(Date.now() - t0 >= 250, 'answered after the authorizer timeout');
  await logged(gw, /authorizer auth: the authorizer timed out/);

  const sock = await rawConnect(gw.port);
  sock.write(upgradeRequest('/', { Authorization: 'slow' }));
  await waitUntil(() => auth.events.length === 2);
  sock.destroy();
  await sleep(500);
  assert.equal(backend.events.length, 0, 'no $connect and no $disconnect');
  // The gateway goes on serving.
  const ws = await connect(gw.url, { headers: { Authorization: 'allow-z' } });
  ws.close();
  await backend.waitFor((e) => e.requestContext?.eventType === 'DISCONNECT');
  assert.equal(backend.eventsOf('CONNECT').length, 1);
});

test('item authorizers: --check names the file, the key and what was expected', async () => {
  const base = authzApi('http://127.0.0.1:9/events', 'http://127.0.0.1:9/auth');
  await expectCheckError({ ...base, routes: { ...base.routes, $connect: { integration: 'backend', authorizer: 'nope' } } },
    ['api.json: routes.$connect.authorizer: unknown authorizer "nope"']);
  await expectCheckError({ ...base, routes: { ...base.routes, $default: { integration: 'backend', authorizer: 'auth' } } },
    ['api.json: routes.$default.authorizer: only $connect takes an authorizer']);
  await expectCheckError({ ...base, authorizers: { auth: { type: 'TOKEN', integration: 'authz' } } },
    ['api.json: authorizers.auth.type: expected "REQUEST" or "JWT", found "TOKEN"']);
  await expectCheckError({ ...base, authorizers: { auth: { type: 'REQUEST', integration: 'missing' } } },
    ['api.json: authorizers.auth.integration: unknown integration "missing"']);
  await expectCheckError({ ...base, authorizers: { auth: { type: 'REQUEST', integration: 'authz', identitySource: ['$request.header.X'] } } },
    ['api.json: authorizers.auth.identitySource[0]: expected route.request.header.NAME, route.request.querystring.NAME or stageVariables.NAME, found "$request.header.X"']);
  await expectCheckError({ ...base, authorizers: { auth: { type: 'REQUEST', integration: 'authz', authorizerResultTtlInSeconds: 3601, identitySource: ['route.request.header.A'] } } },
    ['api.json: authorizers.auth.authorizerResultTtlInSeconds: expected an integer from 0 to 3600, found 3601']);
  await expectCheckError({ ...base, authorizers: { auth: { type: 'REQUEST', integration: 'authz', authorizerResultTtlInSeconds: 60 } } },
    ['api.json: authorizers.auth.authorizerResultTtlInSeconds: caching needs an identitySource']);
  await expectCheckError({ ...base, authorizers: { auth: { type: 'REQUEST', integration: 'authz', identitySources: [] } } },
    ['api.json: authorizers.auth.identitySources: unknown key']);
  const ok = await check(base);
  assert.equal(ok.code, 0, ok.output);
});

// ---------------------------------------------------------------------------
// JWT authorizers: keys made at test time with node:crypto
// ---------------------------------------------------------------------------

const keyPairs = {
  RS256: generateKeyPairSync('rsa', { modulusLength: 2048 }),
  ES256: generateKeyPairSync('ec', { namedCurve: 'P-256' }),
  ES384: generateKeyPairSync('ec', { namedCurve: 'P-384' }),
  EdDSA: generateKeyPairSync('ed25519'),
};
keyPairs.RS384 = keyPairs.RS256;
keyPairs.RS512 = keyPairs.RS256;
const kidOf = (alg) => (alg.startsWith('RS') ? 'rsa-1' : `${alg}-1`);
const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 });

function jwks() {
  const keys = ['RS256', 'ES256', 'ES384', 'EdDSA'].map((alg) => ({ ...keyPairs[alg].publicKey.export({ format: 'jwk' }), kid: kidOf(alg), use: 'sig' }));
  // An encryption key is skipped, not refused.
  keys.push({ ...generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' }), kid: 'enc', use: 'enc' });
  return JSON.stringify({ keys });
}

const ISSUER = 'https://issuer.example.com/';
const now = () => Math.floor(Date.now() / 1000);

function signJwt(claims, { alg = 'RS256', key = keyPairs[alg].privateKey, kid = kidOf(alg) } = {}) {
  const input = `${Buffer.from(JSON.stringify({ alg, typ: 'JWT', ...(kid === null ? {} : { kid }) })).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  const data = Buffer.from(input);
  const sig = alg === 'EdDSA' ? sign(null, data, key)
    : alg.startsWith('ES') ? sign(`sha${alg.slice(2)}`, data, { key, dsaEncoding: 'ieee-p1363' })
      : sign(`sha${alg.slice(2)}`, data, key);
  return `${input}.${sig.toString('base64url')}`;
}

const goodClaims = (extra = {}) => ({ iss: ISSUER, aud: 'chat-app', sub: 'user-7', exp: now() + 300, iat: now() - 10, ...extra });

function jwtApi(backendUrl, identitySource = 'route.request.header.Authorization') {
  const api = makeApi(backendUrl);
  api.authorizers = {
    jwt: { type: 'JWT', identitySource, jwtConfiguration: { issuer: ISSUER, audience: ['other', 'chat-app'], jwksFile: 'keys/jwks.json', leewaySeconds: 5 } },
  };
  api.routes.$connect.authorizer = 'jwt';
  return { 'chat.json': api, 'keys/jwks.json': jwks() };
}

test('item JWT authorizer: tokens signed with the JWKS keys (RS256/384/512, ES256/384, EdDSA) connect; claims reach requestContext.authorizer.jwt.claims', async () => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: jwtApi(backend.url) });
  for (const alg of ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'EdDSA']) {
    const ws = await connect(gw.url, { headers: { Authorization: `Bearer ${signJwt(goodClaims({ alg_used: alg }), { alg })}` } });
    send(ws, alg);
    assert.equal((await nextMessage(ws)).data, alg);
    ws.close();
  }
  const bare = await connect(gw.url, { headers: { Authorization: signJwt(goodClaims({ aud: ['x', 'chat-app'] })) } });
  bare.close();
  await waitUntil(() => backend.eventsOf('DISCONNECT').length === 7);
  const conns = backend.eventsOf('CONNECT');
  assert.deepEqual(conns.map((e) => e.requestContext.authorizer.jwt.claims.alg_used).slice(0, 6), ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'EdDSA']);
  assert.equal(conns[0].requestContext.authorizer.jwt.claims.sub, 'user-7');
  assert.equal(conns[0].requestContext.authorizer.jwt.claims.iss, ISSUER);
  const id = conns[0].requestContext.connectionId;
  assert.equal(backend.eventsOf('MESSAGE', id)[0].requestContext.authorizer.jwt.claims.sub, 'user-7');
  assert.equal(backend.eventsOf('DISCONNECT', id)[0].requestContext.authorizer.jwt.claims.sub, 'user-7');
});

test('item JWT authorizer: a wrong key, an expired token, a bad issuer or audience, nbf in the future, alg none or a tampered payload get 401 with no $connect call', async () => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: jwtApi(backend.url) });
  const good = signJwt(goodClaims());
  const [h, , s] = good.split('.');
  const cases = {
    'wrong key': signJwt(goodClaims(), { key: stranger.privateKey }),
    'unknown kid': signJwt(goodClaims(), { kid: 'nope' }),
    expired: signJwt(goodClaims({ exp: now() - 60 })),
    'no exp': signJwt({ iss: ISSUER, aud: 'chat-app' }),
    issuer: signJwt(goodClaims({ iss: 'https://evil.example.com/' })),
    audience: signJwt(goodClaims({ aud: 'someone-else' })),
    nbf: signJwt(goodClaims({ nbf: now() + 120 })),
    none: `${Buffer.from('{"alg":"none","kid":"rsa-1"}').toString('base64url')}.${Buffer.from(JSON.stringify(goodClaims())).toString('base64url')}.`,
    tampered: `${h}.${Buffer.from(JSON.stringify(goodClaims({ sub: 'admin' }))).toString('base64url')}.${s}`,
    garbage: 'not-a-token',
    'ES256 with an RSA kid': signJwt(goodClaims(), { alg: 'ES256', kid: 'rsa-1' }),
  };
  for (const [what, token] of Object.entries(cases)) {
    assert.equal(await connectRefused(gw.url, { headers: { Authorization: `Bearer ${token}` } }), 401, what);
  }
  assert.equal(await connectRefused(gw.url), 401, 'no token');
  assert.equal(backend.events.length, 0, 'no $connect call');
  await logged(gw, /upgrade refused \(401, request \S+, api chat, 127\.0\.0\.1\): authorizer jwt: the token's signature is not valid/);
  assert.ok(!gw.output().includes(cases['wrong key'].slice(0, 40)), 'the token is never logged');
  // Within the leeway (5 s): still valid.
  (await connect(gw.url, { headers: { Authorization: signJwt(goodClaims({ exp: now() - 2, nbf: now() + 2 })) } })).close();
});

test('item JWT authorizer: a token without a kid is refused 401 as on AWS (the kid must match a key of the JWKS), not tried against every key of its type', async () => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: jwtApi(backend.url) });
  // Signed with a key the JWKS holds, every claim right: only the kid is missing.
  for (const alg of ['RS256', 'ES256', 'EdDSA']) {
    const token = signJwt(goodClaims(), { alg, kid: null });
    assert.equal(await connectRefused(gw.url, { headers: { Authorization: `Bearer ${token}` } }), 401, alg);
  }
  await logged(gw, /authorizer jwt: the token has no kid/);
  assert.equal(backend.events.length, 0, 'no $connect call');
  // The same token with its kid connects.
  (await connect(gw.url, { headers: { Authorization: signJwt(goodClaims()) } })).close();
});

test('item JWT authorizer: a valid token is cached no longer than its exp', async () => {
  const backend = await startBackend();
  const files = jwtApi(backend.url);
  files['chat.json'].authorizers.jwt.jwtConfiguration.leewaySeconds = 0;
  const gw = await startGateway({ routes: files });
  const exp = now() + 2;
  const token = signJwt(goodClaims({ exp }));
  (await connect(gw.url, { headers: { Authorization: token } })).close();
  (await connect(gw.url, { headers: { Authorization: token } })).close();
  await sleep(Math.max(0, exp * 1000 - Date.now()) + 100);
  assert.equal(await connectRefused(gw.url, { headers: { Authorization: token } }), 401, 'expired, cached or not');
  await logged(gw, /authorizer jwt: the token has expired/);
  assert.equal(backend.eventsOf('CONNECT').length, 2);
});

test('item JWT authorizer: the token from a query parameter; --check validates the JWT keys and the JWKS file', async () => {
  const backend = await startBackend();
  const gw = await startGateway({ routes: jwtApi(backend.url, 'route.request.querystring.access_token') });
  (await connect(`${gw.url}?access_token=${signJwt(goodClaims(), { alg: 'ES256' })}`)).close();
  assert.equal(await connectRefused(`${gw.url}?access_token=${signJwt(goodClaims({ exp: now() - 100 }))}`), 401);

  const files = jwtApi('http://127.0.0.1:9/events');
  const api = files['chat.json'];
  const withJwt = (cfg, extra = {}) => ({ ...api, authorizers: { jwt: { type: 'JWT', identitySource: 'route.request.header.Authorization', ...extra, jwtConfiguration: cfg } } });
  const cfg = api.authorizers.jwt.jwtConfiguration;
  await expectCheckError(withJwt({ ...cfg, jwksFile: 'missing.json' }), ['api.json: authorizers.jwt.jwtConfiguration.jwksFile: "missing.json": cannot read it']);
  await expectCheckError(withJwt({ ...cfg, jwksFile: 'bad.jwks' }), ['api.json: authorizers.jwt.jwtConfiguration.jwksFile: "bad.jwks": keys[0]: expected kty RSA, EC (crv P-256 or P-384) or OKP (crv Ed25519)'],
    { 'bad.jwks': JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }) });
  await expectCheckError(withJwt({ ...cfg, audience: [] }), ['api.json: authorizers.jwt.jwtConfiguration.audience: expected an array of 1 to 50 strings']);
  await expectCheckError(withJwt({ ...cfg, leewaySeconds: 3600 }), ['api.json: authorizers.jwt.jwtConfiguration.leewaySeconds: expected an integer from 0 to 300, found 3600']);
  await expectCheckError(withJwt({ audience: ['a'], jwksFile: 'k.jwks' }), ['api.json: authorizers.jwt.jwtConfiguration.issuer: missing'], { 'k.jwks': jwks() });
  await expectCheckError(withJwt({ ...cfg, jwksFile: 'k.jwks' }, { identitySource: ['route.request.header.A', 'route.request.header.B'] }),
    ['api.json: authorizers.jwt.identitySource: expected one route.request.header.NAME or route.request.querystring.NAME'], { 'k.jwks': jwks() });
  const ok = await check(withJwt({ ...cfg, jwksFile: 'k.jwks' }), { 'k.jwks': jwks() });
  assert.equal(ok.code, 0, ok.output);
});

test('item JWT authorizer: jwksUri is fetched over https when the configuration loads (caFile), and --check reports an unreachable or untrusted one', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-jwks-'));
  try {
    const cert = (name) => {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=127.0.0.1',
        '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', path.join(dir, `${name}.key`), '-out', path.join(dir, `${name}.pem`), '-days', '2'], { stdio: 'ignore' });
      return { key: readFileSync(path.join(dir, `${name}.key`)), cert: readFileSync(path.join(dir, `${name}.pem`)), file: path.join(dir, `${name}.pem`) };
    };
    const good = cert('good');
    const other = cert('other');
    let fetched = 0;
    const server = https.createServer({ key: good.key, cert: good.cert }, (req, res) => {
      fetched++;
      if (req.url !== '/.well-known/jwks.json') { res.writeHead(404); res.end(); return; }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(jwks());
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `https://127.0.0.1:${server.address().port}/.well-known/jwks.json`;
      const backend = await startBackend();
      const files = jwtApi(backend.url);
      const api = files['chat.json'];
      const cfg = { issuer: ISSUER, audience: ['chat-app'], jwksUri: url, caFile: good.file };
      api.authorizers.jwt.jwtConfiguration = cfg;
      const gw = await startGateway({ routes: api });
      assert.equal(fetched, 1, 'fetched once, at load');
      (await connect(gw.url, { headers: { Authorization: `Bearer ${signJwt(goodClaims(), { alg: 'EdDSA' })}` } })).close();
      assert.equal(await connectRefused(gw.url, { headers: { Authorization: signJwt(goodClaims(), { key: stranger.privateKey }) } }), 401);
      assert.equal(fetched, 1, 'not fetched per connect');

      const withCfg = (c) => ({ ...api, authorizers: { jwt: { ...api.authorizers.jwt, jwtConfiguration: c } } });
      await expectCheckError(withCfg({ ...cfg, caFile: other.file }), [`api.json: authorizers.jwt.jwtConfiguration.jwksUri: "${url}": TLS with 127.0.0.1 failed`]);
      await expectCheckError(withCfg({ ...cfg, jwksUri: `${url}x` }), [`api.json: authorizers.jwt.jwtConfiguration.jwksUri: "${url}x": answered HTTP 404 (expected 200)`]);
      await expectCheckError(withCfg({ ...cfg, jwksUri: `https://127.0.0.1:${(new URL(await unusedUrl())).port}/k` }), ['jwtConfiguration.jwksUri', 'cannot connect to 127.0.0.1']);
      await expectCheckError(withCfg({ ...cfg, jwksUri: 'http://127.0.0.1/k' }), ['api.json: authorizers.jwt.jwtConfiguration.jwksUri: expected an https:// URL']);
      await expectCheckError(withCfg({ ...cfg, jwksFile: 'k.jwks' }), ['api.json: authorizers.jwt.jwtConfiguration.jwksUri: expected either jwksFile or jwksUri, not both']);
    } finally {
      server.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------
// A jwksUri kept fresh: by kid and on a timer (jwksRefreshSeconds), off the loops
// ---------------------------------------------------------------------------

const rotated = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwksOf = (...pairs) => JSON.stringify({ keys: pairs.map(([pair, kid]) => ({ ...pair.publicKey.export({ format: 'jwk' }), kid, use: 'sig' })) });

/** An https JWKS host (a test CA) whose answer the test changes: host.answer = { status, body, delayMs }. */
async function withJwksHost(fn) {
  const dir = mkdtempSync(path.join(tmpdir(), 'wsgate-jwks-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', path.join(dir, 'ca.key'), '-out', path.join(dir, 'ca.pem'), '-days', '2'], { stdio: 'ignore' });
  const host = { fetched: 0, answer: { status: 200, body: jwksOf([keyPairs.RS256, 'rsa-1'], [keyPairs.ES256, 'ES256-1']), delayMs: 0 } };
  const server = https.createServer({ key: readFileSync(path.join(dir, 'ca.key')), cert: readFileSync(path.join(dir, 'ca.pem')) }, (req, res) => {
    host.fetched++;
    const { status, body, delayMs } = host.answer;
    setTimeout(() => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(body); }, delayMs);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  host.cfg = (extra = {}) => ({ issuer: ISSUER, audience: ['chat-app'], jwksUri: `https://127.0.0.1:${server.address().port}/jwks.json`, caFile: path.join(dir, 'ca.pem'), ...extra });
  try {
    return await fn(host);
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function jwksGateway(host, backend, extra) {
  const api = jwtApi(backend.url)['chat.json'];
  api.authorizers.jwt.jwtConfiguration = host.cfg(extra);
  return startGateway({ routes: api });
}

const bearer = (token) => ({ headers: { Authorization: `Bearer ${token}` } });

test('item JWT authorizer: key rotation: a token with a new kid connects once the jwksUri serves it (fetched by kid, no SIGHUP), and the upgrade waits without holding the loop', async () => {
  await withJwksHost(async (host) => {
    const backend = await startBackend();
    const gw = await jwksGateway(host, backend);
    assert.equal(host.fetched, 1, 'fetched once, at load');
    // The issuer rotates: its JWKS now has rsa-2 too, served slowly.
    host.answer = { status: 200, body: jwksOf([keyPairs.RS256, 'rsa-1'], [rotated, 'rsa-2']), delayMs: 700 };
    const started = Date.now();
    const token = signJwt(goodClaims(), { key: rotated.privateKey, kid: 'rsa-2' });
    const pending = connect(gw.url, bearer(token));
    await waitUntil(() => host.fetched === 2, 3000, 'a fetch by kid');
    // Another upgrade of the rotation waits for the same fetch; one leaves while waiting.
    const second = connect(gw.url, bearer(token));
    const leaver = await rawConnect(new URL(gw.url).port);
    leaver.write(upgradeRequest(new URL(gw.url).pathname, { Authorization: `Bearer ${token}` }));
    await sleep(100);
    assert.equal(leaver.received.length, 0, 'still waiting for the fetch');
    leaver.destroy();
    // Meanwhile the loop serves others: a known kid connects at once.
    const other = await connect(gw.url, bearer(signJwt(goodClaims())));
    assert.ok(Date.now() - started < 600, `a known kid waited ${Date.now() - started} ms behind the fetch`);
    other.close();
    const ws = await pending;
    assert.ok(Date.now() - started >= 650, 'the rotated kid connected after the fetch');
    send(ws, 'rotated');
    assert.equal((await nextMessage(ws)).data, 'rotated');
    ws.close();
    (await second).close();
    assert.equal(host.fetched, 2);
    await waitUntil(() => backend.eventsOf('DISCONNECT').length === 3);
    await sleep(200);
    assert.equal(backend.eventsOf('CONNECT').length, 3, 'no $connect for the client that left');
  });
});

test('item JWT authorizer: made-up kids cause one fetch of the jwksUri per 10 s at most, and are refused 401', async () => {
  await withJwksHost(async (host) => {
    const backend = await startBackend();
    const gw = await jwksGateway(host, backend);
    for (let i = 0; i < 15; i++) {
      assert.equal(await connectRefused(gw.url, bearer(signJwt(goodClaims(), { kid: `random-${i}-${Math.random()}` }))), 401);
    }
    assert.equal(host.fetched, 2, 'the load, then one fetch by kid');
    // (The refusals' log line is rate-limited: the first says why.)
    await logged(gw, /authorizer jwt: no key of the JWKS has the token's kid and alg/);
    // Rate-limited, even for a kid the host serves now.
    host.answer = { ...host.answer, body: jwksOf([keyPairs.RS256, 'rsa-1'], [rotated, 'rsa-2']) };
    assert.equal(await connectRefused(gw.url, bearer(signJwt(goodClaims(), { key: rotated.privateKey, kid: 'rsa-2' }))), 401);
    assert.equal(host.fetched, 2);
    (await connect(gw.url, bearer(signJwt(goodClaims())))).close();
    assert.equal(backend.eventsOf('CONNECT').length, 1, 'no $connect call for a refused kid');
  });
});

test('item JWT authorizer: jwksRefreshSeconds: the timer drops a removed key (even for a cached token); a failed refresh keeps the keys and is logged; --check validates it', async () => {
  await withJwksHost(async (host) => {
    const backend = await startBackend();
    const gw = await jwksGateway(host, backend, { jwksRefreshSeconds: 1 });
    const es = signJwt(goodClaims(), { alg: 'ES256' });
    (await connect(gw.url, bearer(es))).close(); // cached from now on
    // The issuer removes ES256-1: the next timed fetch drops it.
    host.answer = { ...host.answer, body: jwksOf([keyPairs.RS256, 'rsa-1']) };
    const before = host.fetched;
    await waitUntil(() => host.fetched > before, 4000, 'a timed fetch');
    await sleep(200);
    await logged(gw, /authorizer jwt: the JWKS from \S+ changed, its new keys are in use/);
    assert.equal(await connectRefused(gw.url, bearer(es)), 401, 'the cached token of a removed key');
    assert.equal(await connectRefused(gw.url, bearer(signJwt(goodClaims({ sub: 'new' }), { alg: 'ES256' }))), 401);
    // The host fails: the keys stay.
    host.answer = { ...host.answer, status: 503 };
    const failed = host.fetched;
    await waitUntil(() => host.fetched > failed, 4000, 'a timed fetch');
    await logged(gw, /authorizer jwt: refreshing the JWKS from \S+ failed, keeping the keys it has: answered HTTP 503/);
    (await connect(gw.url, bearer(signJwt(goodClaims())))).close();
    host.answer = { ...host.answer, status: 200 };

    const api = jwtApi(backend.url)['chat.json'];
    const withCfg = (c) => ({ ...api, authorizers: { jwt: { ...api.authorizers.jwt, jwtConfiguration: c } } });
    await expectCheckError(withCfg(host.cfg({ jwksRefreshSeconds: 0 })), ['api.json: authorizers.jwt.jwtConfiguration.jwksRefreshSeconds: expected an integer from 1 to 86400, found 0']);
    await expectCheckError(withCfg({ ...api.authorizers.jwt.jwtConfiguration, jwksFile: 'k.jwks', jwksRefreshSeconds: 60 }),
      ['api.json: authorizers.jwt.jwtConfiguration.jwksRefreshSeconds: only a jwksUri is refreshed'], { 'k.jwks': jwks() });
    const ok = await check(withCfg(host.cfg({ jwksRefreshSeconds: 60 })));
    assert.equal(ok.code, 0, ok.output);
  });
});
