#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/ (run from anywhere; the
files are committed, this script says where they came from). Harnesses
that split their input take two leading bytes: a PRNG seed and the
largest piece size (see fuzz_common.h)."""
import json, os, shutil, struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, '..', '..')
OUT = os.path.join(HERE, 'corpus')


def put(name, i, data, split=False):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    if split:
        # a few split patterns per input: whole-ish, byte by byte, small
        for seed, mx in ((1, 0), (7, 1), (42, 13)):
            with open(os.path.join(d, f'seed-{i:03d}-{mx}'), 'wb') as f:
                f.write(bytes([seed, mx]) + data)
    else:
        with open(os.path.join(d, f'seed-{i:03d}'), 'wb') as f:
            f.write(data)


UPGRADE = ('GET /chat?token=abc&x=1 HTTP/1.1\r\nHost: gw.example.com\r\n'
           'Upgrade: websocket\r\nConnection: Upgrade\r\n'
           'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n')
heads = [
    UPGRADE + '\r\n',
    UPGRADE + 'Sec-WebSocket-Protocol: chat.v2, graphql-ws\r\nOrigin: https://app.example.com\r\n'
    'User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0\r\n'
    'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n',
    UPGRADE + 'Cookie: ' + 'a=' + 'x' * 3000 + '; b=2\r\n\r\n',
    UPGRADE + '\r\n\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58',  # a frame sent early
    'GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\r\n',
    'GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n'
    'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n',
    'GET /chat HTTP/1.1\r\nHost : evil\r\nTransfer-Encoding : chunked\r\n\r\n',
    'GET /chat HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n  b\r\n\r\n',
    'GET /chat?%00=1&q=%ZZ HTTP/1.1\r\nHost: h\r\n\r\n',
    'GET / HTTP/1.0\r\n\r\n',
    'POST /chat HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello',
    'GET /chat HTTP/1.1\nHost: h\nUpgrade: websocket\nConnection: upgrade\n\n',
    'GET http://gw.example.com/chat HTTP/1.1\r\nHost: gw.example.com\r\n\r\n',
]
for i, h in enumerate(heads):
    put('head', i, h, split=True)

reqs = [
    'GET /items HTTP/1.1\r\nHost: h\r\n\r\n',
    'GET /items/7?x=1&y=%20z HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n',
    'POST /rooms/r1/messages/m2 HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n'
    'Content-Length: 13\r\n\r\n{"text":"hi"}',
    'POST /api/upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n'
    '5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n',
    'GET /items HTTP/1.1\r\nHost: h\r\n\r\nGET /items/1 HTTP/1.1\r\nHost: h\r\n\r\n'
    'DELETE /pets/dog/3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
    'PUT /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody',
    'HEAD / HTTP/1.1\r\nHost: h\r\n\r\n',
    'OPTIONS /items HTTP/1.1\r\nHost: h\r\nOrigin: https://a.example\r\n'
    'Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\n',
    'GET /pets/cat/x/y HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n',
    'POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 999999999\r\n\r\n',
    'POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd',
    'POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n',
    'GET /%2e%2e/%2e%2e/admin HTTP/1.1\r\nHost: h\r\n\r\n',
    'PATCH /items/%E2%9C%93 HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n',
]
for i, r in enumerate(reqs):
    put('httpreq', i, r, split=True)

lambda_body = json.dumps({'statusCode': 200, 'body': 'hello',
                          'headers': {'Sec-WebSocket-Protocol': 'chat.v2'}})
resps = [
    'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s'
    % (len(lambda_body), lambda_body),
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;name=v\r\nWiki\r\n0\r\nTrailer: x\r\n\r\n',
    'HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n',
    'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n',
    'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n'
    'HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok',
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
    'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nbody until close',
    'HTTP/1.1 403 Forbidden\r\nSec-WebSocket-Protocol: x\r\nContent-Length: 0\r\n\r\n',
    'HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbad',
    'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n',
    'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    'HTTP/1.1 200 OK\r\n' + ''.join('X-H%d: v\r\n' % i for i in range(120)) + 'Content-Length: 0\r\n\r\n',
]
for i, r in enumerate(resps):
    put('httpresp', i, r, split=True)

lambdas = [
    {'statusCode': 200},
    {'statusCode': 200, 'body': 'hello'},
    {'statusCode': '201', 'body': {'a': [1, 2, {'b': None}]}},
    {'statusCode': 403, 'body': 'denied', 'headers': {'X-Reason': 'no'}},
    {'statusCode': 200, 'body': 'aGVsbG8gd29ybGQ=', 'isBase64Encoded': True},
    {'statusCode': 200, 'body': 'not base64!', 'isBase64Encoded': True},
    {'statusCode': 200, 'headers': {'Sec-WebSocket-Protocol': 'graphql-ws',
                                    'sec-websocket-protocol': 'chat'}},
    {'statusCode': 204, 'body': 'smuggled', 'cookies': ['a=1; Path=/', 'b=2']},
    {'statusCode': 200, 'multiValueHeaders': {'Set-Cookie': ['a=1', 'b=2']}, 'body': '\u00e9\ud83d\ude80'},
    {'statusCode': 99},
    {'statusCode': 600},
    {'statusCode': 2.5},
    {'body': None},
]
raw = ['[]', '"text"', '{"statusCode":200,"body":"a\\u0000b"}', '{"statusCode":200,"body":"\\ud800"}',
       '{"statusCode":1e400}', '{"statusCode":-9223372036854775808}', 'null', '{', '']
for i, l in enumerate(lambdas):
    put('lambda', i, json.dumps(l))
for i, l in enumerate(raw):
    put('lambda', 100 + i, l)

msgs = [
    '{"service":"chat","action":"join","data":{"room":"room1234"}}',
    '{"action":"sendmessage","message":"hi \\"there\\" \\u00e9"}',
    '{"data":{"items":[{"kind":"a"},{"kind":"b"}]}}',
    '{"a b":"spaced","a.b":"dotted","a":{"b":"nested"}}',
    '{"x":{"action":"inner"},"action":"outer"}',
    '{"action":123456789012345678901234567890}',
    '{"action":[1,{"x":[true,false,null]}]}',
    '[1,2]', '"just a string"', 'hello', '{"action":"\\ud83d\\ude80"}', '{"action":', '',
]
for i, m in enumerate(msgs):
    put('select', i, '\x00' + m)
exprs = [
    ('$request.body.action', msgs[0]),
    ('${request.body.service}/${request.body.action}', msgs[0]),
    ("$request.body['it\\'s']", '{"it\'s":"quoted"}'),
    ('$request.body.data.items[1].kind', msgs[2]),
    ('\\$default', msgs[0]),
    ('${request.body["a.b"]}', msgs[3]),
    ('$request.body.clé', '{"clé":"unicode key"}'),
    ('${request.body.a', msgs[3]),
    ('$request.header.x', msgs[0]),
]
for i, (e, m) in enumerate(exprs):
    put('select', 100 + i, '\x01' + e + '\n' + m)
paths = [('data.items[0].kind', msgs[2]), ("['a b']", msgs[3]), ('a.b', msgs[3])]
for i, (e, m) in enumerate(paths):
    put('select', 200 + i, '\x03' + e + '\n' + m)


def mp_str(s):
    b = s.encode()
    if len(b) < 32:
        return bytes([0xa0 | len(b)]) + b
    if len(b) < 256:
        return b'\xd9' + bytes([len(b)]) + b
    return b'\xda' + struct.pack('>H', len(b)) + b


def mp_uint(n):
    if n < 128:
        return bytes([n])
    if n < 1 << 32:
        return b'\xce' + struct.pack('>I', n)
    return b'\xcf' + struct.pack('>Q', n)


def record(fields):
    out = bytes([0x80 | len(fields)])
    for k, v in fields:
        out += mp_str(k) + (mp_str(v) if isinstance(v, str) else mp_uint(v))
    return out


full = [('id', 'AbCdEfGhIjKlMnOp'), ('api', 'chat'), ('stage', 'dev'), ('sourceIp', '127.0.0.1'),
        ('userAgent', 'Mozilla/5.0 ' + 'x' * 40), ('connectedAt', 1732960000000),
        ('lastActiveAt', 1732960005000), ('worker', 1), ('slot', 42), ('state', 1)]
regs = [record(full), record(full[:1]), record([('id', 'x'), ('userAgent', 'u' * 600)]),
        record([('id', 'a'), ('worker', 1 << 40)]), record([('state', 1)]),
        b'\x82\xa2id\xa1a\xa5extra\x93\x01\x02\x03', b'\xdf\xff\xff\xff\xff', b'\x81\xa2id\x92\xa1a\xa1b']
for i, r in enumerate(regs):
    put('registry', i, r)

for i, f in enumerate(sorted(os.listdir(os.path.join(ROOT, 'routes')))):
    with open(os.path.join(ROOT, 'routes', f), 'rb') as src:
        put('config', i, src.read())
configs = [
    {'name': 'shop', 'stage': 'prod', 'basePath': '/shop',
     'stageVariables': {'backend': '127.0.0.1:9000', 'v': 'x'},
     'integrations': {
         'be': {'type': 'HTTP_PROXY', 'uri': 'http://${stageVariables.backend}/static/{proxy}',
                'method': 'GET', 'timeoutMs': 5000, 'maxConnections': 8, 'maxQueue': 64,
                'requestParameters': {'integration.request.header.X-Conn': 'context.connectionId',
                                      'integration.request.querystring.room': 'route.request.body.room',
                                      'integration.request.header.X-S': "'static'",
                                      'integration.request.header.X-V': 'stageVariables.v'}},
         'mock': {'type': 'MOCK', 'statusCode': 201, 'body': '{"id":"${context.connectionId}","v":"${stageVariables.v}"}'},
         'lambda': {'type': 'AWS_PROXY', 'uri': 'https://localhost:9443/events', 'timeoutMs': 100}},
     'routes': {'$connect': {'integration': 'lambda'}, '$default': {'integration': 'mock', 'routeResponse': True},
                'GET /items/{id}': {'integration': 'mock'}, 'ANY /static/{proxy+}': {'integration': 'be'},
                'POST /rooms/{room}/messages': {'integration': 'lambda', 'maxInFlight': 4}},
     'limits': {'maxMessageBytes': 65536, 'idleTimeoutSeconds': 600, 'maxConnectionSeconds': 7200,
                'outboundBufferBytes': 1048576, 'maxRequestBytes': 1000000},
     'cors': {'allowOrigins': ['https://a.example', '*'], 'allowMethods': ['GET', 'POST'],
              'allowHeaders': ['content-type'], 'exposeHeaders': ['x-id'], 'maxAge': 600,
              'allowCredentials': False}},
    {'name': 'min', 'basePath': '/', 'routeSelectionExpression': '${request.body.service}/${request.body.action}',
     'integrations': {'m': {'type': 'MOCK'}}, 'routes': {'a/b': {'integration': 'm'}}},
    {'name': 'bad', 'basePath': 'x', 'integrations': {'m': {'type': 'NOPE', 'uri': 'ftp://[::1]:99999/'}},
     'routes': {'GET /{a}/{a}': {'integration': 'zz'}}},
    {'name': 'v6', 'basePath': '/v6', 'integrations': {'i': {'type': 'AWS_PROXY', 'uri': 'http://[::1]:9000/e'}},
     'routes': {'$default': {'integration': 'i'}}},
]
for i, c in enumerate(configs):
    put('config', 10 + i, json.dumps(c, indent=1, ensure_ascii=False))

mgmt = ['/@connections/AbCdEfGhIjKlMnOp', '/dev/@connections/AbCdEfGhIjKlMnOp', '/dev/@connections/',
        '/a/b/@connections/x', '/@connections/a/b', '/@connections//', 'http://h/@connections/a',
        '/dev/@connections/' + 'x' * 200, '/dev/@connections/0123456789abcdef?x=1', '//@connections/a']
for i, m in enumerate(mgmt):
    put('mgmt', i, m)
targets = ['/files/a/b.txt?x=1', '/files/a/../b', '/files/%2e%2e/etc/passwd', '/files/a%2fb/..%2f..',
           '/items/7', '/items/a%3Fb?c=d', '/items/x%23y', '/a/1/b/2?q=3', '/a/x&y=z/b/u;v',
           '/shop/items/3', '/shop/items/%41', '//files///x//', '/files/a/./b/', '/other/thing', '/']
for i, t in enumerate(targets):
    put('rest', i, bytes([0]) + t.encode())
    put('rest', 50 + i, bytes([1]) + t.encode())
answers = lambdas + [{'statusCode': 200, 'headers': {'X-A': 'b', 'X Y': 'sp', 'X-C': 'v\x0bw', ': e': 'x',
                                                   'Content-Length': '5', 'Access-Control-Allow-Origin': '*',
                                                   'X-N': 42}},
                     {'statusCode': 302, 'headers': {'Location': '/x'}, 'cookies': ['a=1', 'b=\r\nX: y', 3]},
                     {'statusCode': 200, 'body': [1, 2]}, [1, 2], {'x': 1}]
for i, a in enumerate(answers):
    put('rest', 100 + i, b'\x01https://a.example\n' + json.dumps(a).encode())
    put('rest', 200 + i, b'\x03https://evil.example\n' + json.dumps(a).encode())
bufs = [b'plain ascii', 'é€🚀'.encode(), b'\xed\xa0\x80', b'\xc0\xaf', b'\xf4\x90\x80\x80',
        b'\x00\x01\x1f"\\\x7f', b'aGVsbG8=', b'a%2Fb+c%zz%4', b'\xe2\x82', b'====', b'YQ', b'Y===']
for i, b in enumerate(bufs):
    put('buf', i, b)
invokes = [b'\x00{"action":"x","a":"v\\r\\nX-Evil: 1","b":"&c=d","o":{"k":[1,2]}}',
           b'\x01\x00\x01binary\xff', b'\x00plain text, not JSON',
           b'\x02' + heads[1].encode(), b'\x02GET /chat?q=a%0d%0aX:%20y&q=2&q HTTP/1.1\r\nHost: h\r\n'
           b'X-Client: c\r\nUpgrade: websocket\r\nConnection: Upgrade, X-Client\r\n'
           b'X-Wsgate-Connection-Id: spoof\r\nX-Forwarded-For: 1.2.3.4\r\nForwarded: for=x\r\n\r\n',
           b'\x03bye', b'\x07', b'\x04{"action":"lambda","a":"x\\u0000y"}', b'\x06' + heads[0].encode(),
           b'\x0a' + heads[0].encode()]
for i, b in enumerate(invokes):
    put('invoke', i, b)
print('corpus written to', OUT)
