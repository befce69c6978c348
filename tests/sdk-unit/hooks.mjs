// Module hooks for roster-plugin.test.mjs: `roster:plugin/...` imports resolve to the stub,
// and the SDK file (a .js with no package.json) loads as an ES module.
const stub = new URL('./host-stub.mjs', import.meta.url).href;

export async function resolve(specifier, context, next) {
  if (specifier.startsWith('roster:plugin/')) return { url: stub, shortCircuit: true };
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (url.endsWith('/roster-plugin.js')) return next(url, { ...context, format: 'module' });
  return next(url, context);
}
