// The host's interfaces (roster:plugin/*) for roster-plugin.test.mjs: a test sets
// `globalThis.rosterHost.connect` to answer `ldapConnect()`.
globalThis.rosterHost ??= {};
export const open = (...a) => globalThis.rosterHost.open(...a);
export const send = (...a) => globalThis.rosterHost.send(...a);
export const connect = (...a) => globalThis.rosterHost.connect(...a);
export const log = () => {};
