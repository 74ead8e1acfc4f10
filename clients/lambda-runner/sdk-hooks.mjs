// Module resolution hook of the function processes (registered by
// worker.mjs): Lambda's Node.js runtimes provide the AWS SDK v3, so a
// handler may import @aws-sdk/* without bundling it. A handler's own
// copy wins; without one, the copy beside the runner is used.
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (e) {
    if (e?.code !== 'ERR_MODULE_NOT_FOUND' || !specifier.startsWith('@aws-sdk/')) throw e;
    return next(specifier, { ...context, parentURL: import.meta.url });
  }
}
