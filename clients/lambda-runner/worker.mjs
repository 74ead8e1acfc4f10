// One function's process, as a Lambda execution environment: its own
// environment variables and module state, the handler loaded once (the
// cold start) and invoked per request. The runner (runner.mjs) forks it
// with endpoint-patch.cjs preloaded and talks to it over IPC.
import { existsSync } from 'node:fs';
import { register } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

register('./sdk-hooks.mjs', import.meta.url);

const codeDir = process.env.LAMBDA_TASK_ROOT;
const handlerSpec = process.env._HANDLER;
const name = process.env.AWS_LAMBDA_FUNCTION_NAME;
let handlerPromise = null;

// "dir/app.handler": module dir/app (.js, .mjs or .cjs), export handler.
async function loadHandler() {
  const slash = handlerSpec.lastIndexOf('/');
  const dot = handlerSpec.indexOf('.', slash + 1);
  if (dot < 0) throw Object.assign(new Error(`Bad handler ${handlerSpec}`), { name: 'Runtime.MalformedHandlerName' });
  const base = path.resolve(codeDir, handlerSpec.slice(0, dot));
  const file = ['.js', '.mjs', '.cjs'].map((e) => base + e).find((f) => existsSync(f));
  if (!file) throw Object.assign(new Error(`Cannot find module '${handlerSpec.slice(0, dot)}'`), { name: 'Runtime.ImportModuleError' });
  const mod = await import(pathToFileURL(file).href);
  let fn = mod;
  for (const part of handlerSpec.slice(dot + 1).split('.')) fn = fn?.[part] ?? (fn === mod ? mod.default?.[part] : undefined);
  if (typeof fn !== 'function') {
    throw Object.assign(new Error(`${handlerSpec} is undefined or not exported`), { name: 'Runtime.HandlerNotFound' });
  }
  return fn;
}

// What Lambda reports for an error: errorType, errorMessage, trace.
function lambdaError(e) {
  if (e instanceof Error) {
    return { errorType: e.name || 'Error', errorMessage: e.message, trace: String(e.stack || '').split('\n') };
  }
  return { errorType: typeof e, errorMessage: typeof e === 'string' ? e : JSON.stringify(e) ?? String(e), trace: [] };
}

function makeContext(msg, settle) {
  const region = process.env.AWS_REGION;
  return {
    awsRequestId: msg.requestId,
    functionName: name,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${region}:123456789012:function:${name}`,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: `/aws/lambda/${name}`,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    callbackWaitsForEmptyEventLoop: true,
    identity: undefined,
    clientContext: undefined,
    getRemainingTimeInMillis: () => Math.max(0, msg.deadline - Date.now()),
    done: (err, res) => settle(err, res),
    succeed: (res) => settle(null, res),
    fail: (err) => settle(err ?? new Error('failed')),
  };
}

function invoke(handler, msg) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (err, res) => {
      if (settled) return;
      settled = true;
      if (err) reject(err); else resolve(res);
    };
    const context = makeContext(msg, settle);
    try {
      const r = handler(msg.event, context, settle);
      if (r && typeof r.then === 'function') r.then((v) => settle(null, v), (e) => settle(e ?? new Error('rejected')));
      else if (handler.length < 3) settle(null, r);
    } catch (e) {
      settle(e);
    }
  });
}

process.on('message', async (msg) => {
  try {
    // A failed init is tried again at the next call, as Lambda does.
    handlerPromise ??= loadHandler().catch((e) => { handlerPromise = null; throw e; });
    const handler = await handlerPromise;
    const result = await invoke(handler, msg);
    process.send({ id: msg.id, ok: true, result: result === undefined ? null : result });
  } catch (e) {
    const err = lambdaError(e);
    console.error(`${new Date().toISOString()}\t${msg.requestId}\tERROR\tInvoke Error \t${JSON.stringify(err)}`);
    process.send({ id: msg.id, ok: false, error: err });
  }
});
// An error the handler left behind (a timer, a forgotten promise) ends
// the environment, as in Lambda; the runner starts a fresh one.
process.on('unhandledRejection', (e) => {
  console.error(`${name}: unhandled rejection: ${e?.stack || e}`);
  process.exit(1);
});
