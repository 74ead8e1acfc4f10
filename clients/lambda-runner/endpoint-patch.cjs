// Preloaded into every function's process (node --require): management
// API calls a handler makes with the AWS SDK go to the local gateway's
// management listener, whatever endpoint the handler wrote
// (https://{apiId}.execute-api.{region}.amazonaws.com/{stage}, or one built
// from requestContext.domainName and stage). The handler's file and its
// SDK stay untouched: the SDK's Node HTTP handler calls https.request at
// request time, and that is the one thing replaced here.
'use strict';
const http = require('node:http');
const https = require('node:https');
const { syncBuiltinESMExports } = require('node:module');

const target = new URL(process.env.WSGATE_MGMT_URL || 'http://127.0.0.1:8081');
const EXECUTE_API = /\.execute-api\.[a-z0-9-]+\.amazonaws\.com$/i;
// /{stage}/@connections/{id}: the management API's paths, on any host.
const MGMT_PATH = /^\/[^/?]+\/(@|%40)connections(\/|$|\?)/i;

function isManagementCall(opts) {
  const host = String(opts.hostname || opts.host || '').replace(/:\d+$/, '');
  return EXECUTE_API.test(host) || MGMT_PATH.test(String(opts.path || ''));
}

function redirect(opts) {
  // The signed Host header is kept: SigV4 on the gateway checks what was
  // signed. Only where the bytes go changes.
  const out = { ...opts, protocol: target.protocol, hostname: target.hostname,
    host: target.hostname, port: target.port || (target.protocol === 'https:' ? 443 : 80) };
  delete out.agent; // an https.Agent cannot carry plain http
  delete out.servername;
  return out;
}

const originalRequest = https.request;
https.request = function request(...args) {
  // The SDK passes one options object (and maybe a callback).
  const [opts, cb] = args;
  if (opts && typeof opts === 'object' && !(opts instanceof URL) && isManagementCall(opts)) {
    const r = redirect(opts);
    return (target.protocol === 'https:' ? originalRequest : http.request)(r, cb);
  }
  return originalRequest.apply(this, args);
};
syncBuiltinESMExports();

// require('@aws-sdk/...') from a handler without its own copy: the
// runtime's SDK, as in Lambda (sdk-hooks.mjs does the same for import).
const Module = require('node:module');
const originalResolve = Module._resolveFilename;
Module._resolveFilename = function resolveFilename(request, parent, ...rest) {
  try {
    return originalResolve.call(this, request, parent, ...rest);
  } catch (e) {
    if (e.code !== 'MODULE_NOT_FOUND' || !String(request).startsWith('@aws-sdk/')) throw e;
    return originalResolve.call(this, request, module, ...rest);
  }
};
module.exports = { isManagementCall, target };
