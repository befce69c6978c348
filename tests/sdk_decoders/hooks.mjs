// Resolves the component's `roster:` imports to a stub, so the SDK loads natively.
const STUB = 'data:text/javascript,export const open = null, send = null, connect = null, log = null;';
export async function resolve(specifier, context, next) {
  if (specifier.startsWith('roster:')) return { url: STUB, shortCircuit: true };
  return next(specifier, context);
}
