// roster connector SDK for JavaScript (componentize-js, world `source` of roster:plugin@0.1.0).
//
// An author declares the plugin's info once and writes a generator of users and groups; this
// module does the rest of the contract: the `session` resource, batching into WIT batches
// (at most 10,000 entries), the cursor and run mode, typed errors, and the host capabilities
// (granted files, HTTP with a host-held credential, paged LDAP search, logging).
//
//   import { plugin, User, readLines } from './roster-plugin.js';
//   export const connector = plugin({
//     name: 'people', version: '0.1.0', description: 'People from a granted file',
//     keys: [{ name: 'path', type: 'file', required: true, description: 'The file' }],
//     capabilities: { files: 'reads the configured file' },
//     *run(run) {
//       for (const line of readLines(run.config.path)) yield User(line, { username: line });
//     },
//   });
//
// Build: componentize-js app.js --wit wit -n source -d http fetch-event -o people.wasm

import { open as openFile } from 'roster:plugin/files@0.1.0';
import { send as httpSend } from 'roster:plugin/http@0.1.0';
import { connect as ldapConnect } from 'roster:plugin/ldap@0.1.0';
import { log as hostLog } from 'roster:plugin/log@0.1.0';

// The host's batch caps are 10,000 entries and 64 MiB of strings; flush well below the latter.
export const MAX_ENTRIES = 10000;
export const MAX_BATCH_BYTES = 16 << 20;

// ---- Typed errors ------------------------------------------------------------------------

/** Base of the typed errors; `tag` is the WIT `plugin-error` case. */
export class PluginError extends Error {
  constructor(tag, message) {
    super(message);
    this.tag = tag;
    // What componentize-js returns as the `err` of a result when an export throws.
    this.payload = { tag, val: String(message) };
  }
}
/** The source config is wrong; the admin must fix it (not retried). */
export class ConfigError extends PluginError {
  constructor(m) { super('config', m); }
}
/** Credentials were refused (not retried). */
export class AuthenticationError extends PluginError {
  constructor(m) { super('authentication', m); }
}
/** The source is unreachable or busy; worth a retry later. */
export class UnavailableError extends PluginError {
  constructor(m) { super('unavailable', m); }
}
/** The source sent something that cannot be understood as a whole; the run changes nothing. */
export class BadDataError extends PluginError {
  constructor(m) { super('bad-data', m); }
}

function witError(e) {
  if (e instanceof PluginError) return e;
  // An author's bug (a missing field, ...): keep the message, log the stack.
  log('error', String(e?.stack ?? e));
  return new BadDataError(`${e?.name ?? 'Error'}: ${e?.message ?? e}`);
}

// ---- What a run yields -------------------------------------------------------------------

function values(v) {
  if (v === undefined || v === null) return [];
  if (Array.isArray(v)) return v.filter((x) => x !== undefined && x !== null).map(String);
  return [String(v)];
}

function object(kind, id, opts) {
  const { locator, memberOf = [], members = [], parent, ...attributes } = opts;
  return {
    tag: 'object',
    val: {
      kind,
      id: String(id),
      locator: locator ?? undefined,
      attributes: Object.entries(attributes)
        .map(([name, v]) => ({ name, values: values(v) }))
        .filter((a) => a.values.length > 0),
      memberOf: memberOf.map(String),
      members: members.map(String),
      parent: parent === undefined || parent === null ? undefined : String(parent),
    },
  };
}

/** A user. Attributes named like roster fields (username, full_name, email, groups, ...)
 * fill them; `memberOf` lists ids of group objects; `locator` says where it was. */
export function User(id, { memberOf, locator, ...attributes } = {}) {
  return object('user', id, { memberOf, locator, ...attributes });
}

/** A group object; its `name` attribute names it. `members` are ids of users or groups. */
export function Group(id, opts = {}) {
  return object('group', id, opts);
}

/** An object that left the source (delta runs): kind is 'user' or 'group'. */
export function Removed(kind, id) {
  return { tag: 'removed', val: { kind, id: String(id) } };
}

/** An entry that could not be read; the run goes on without it. */
export function Failed(locator, reason) {
  return { tag: 'failed', val: { locator: String(locator), reason: String(reason) } };
}

function size(e) {
  const v = e.val;
  if (e.tag === 'object') {
    let n = v.id.length;
    for (const a of v.attributes) for (const x of a.values) n += x.length;
    for (const m of v.memberOf) n += m.length;
    for (const m of v.members) n += m.length;
    return n + v.attributes.length * 8;
  }
  if (e.tag === 'failed') return v.locator.length + v.reason.length;
  return v.id.length;
}

// ---- A run -------------------------------------------------------------------------------

/** One run, as the author's `run` sees it: `config` (declared defaults filled in; secrets
 * never appear), `requested` ('full' or 'delta'), `cursor` (the last committed one). Set
 * `mode = 'delta'` when the listing is one (default 'full'), `nextCursor` for the next delta
 * run, and call `notice()` for things the admin should know. */
export class Run {
  constructor(info, request) {
    let config;
    try {
      config = JSON.parse(request.config || '{}');
    } catch (e) {
      throw new ConfigError(`config is not JSON: ${e.message}`);
    }
    for (const k of info.keys ?? []) {
      if (!(k.name in config) && k.default !== undefined) config[k.name] = tomlValue(k.default);
      if (k.required && !(k.name in config) && k.type !== 'secret') {
        throw new ConfigError(`missing required key \`${k.name}\` (${k.description ?? ''})`);
      }
    }
    this.config = config;
    this.requested = request.mode;
    this.cursor = request.cursor ?? null;
    this.mode = 'full';
    this.nextCursor = null;
    this.notices = [];
  }

  notice(message) {
    this.notices.push(String(message));
  }
}

// Declared defaults are TOML literals; the simple ones are JSON too.
function tomlValue(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function witInfo(info) {
  const credential = (c) => {
    if (c.bearer) return { name: c.name, kind: { tag: 'bearer', val: c.bearer } };
    if (c.basic) return { name: c.name, kind: { tag: 'basic', val: c.basic } };
    if (c.oauth2) return { name: c.name, kind: { tag: 'oauth2', val: c.oauth2 } };
    if (c.serviceAccount) return { name: c.name, kind: { tag: 'service-account', val: c.serviceAccount } };
    throw new TypeError(`credential ${c.name}: give bearer, basic, oauth2 or serviceAccount`);
  };
  return {
    name: info.name,
    version: info.version,
    description: info.description ?? '',
    configKeys: (info.keys ?? []).map((k) => ({
      name: k.name,
      type: k.type ?? 'string',
      required: !!k.required,
      default: k.default ?? undefined,
      description: k.description ?? '',
    })),
    capabilities: Object.entries(info.capabilities ?? {}).map(([name, reason]) => ({ name, reason })),
    defaults: Object.entries(info.defaults ?? {}),
    credentials: (info.credentials ?? []).map(credential),
  };
}

/**
 * The `connector` export: `export const connector = plugin({...})`.
 *
 * `spec`: name, version, description, keys ([{name, type, required, default (TOML), description}]),
 * capabilities ({files: 'why', ...}), credentials ([{name, bearer: 'secret_key'}, {name, basic:
 * {username, password}}, {name, oauth2: {tokenUrl, clientId, clientSecret, scope}}, {name,
 * serviceAccount: {keyFile, subject, scope}}: a service account's JSON key, named by the secret
 * key holding its path; the host signs the RS256 assertion and exchanges it at the key's
 * token_uri, RFC 7523, and neither key nor token reaches the plugin]), defaults
 * ({pair_by: '"email"'}), `run(run)`: a generator (or any iterable) of User/Group/Removed/Failed,
 * and optionally `test(run)` returning {users, groups, sample, messages}; by default
 * `sources test` runs the listing and counts what it yields.
 */
export function plugin(spec) {
  const info = witInfo(spec);

  class Session {
    constructor(run, items) {
      this.run = run;
      this.items = items;
      this.done = false;
    }

    nextBatch() {
      if (this.done) return undefined;
      const entries = [];
      let bytes = 0;
      try {
        for (;;) {
          const next = this.items.next();
          if (next.done) break;
          entries.push(next.value);
          bytes += size(next.value);
          if (entries.length >= MAX_ENTRIES || bytes >= MAX_BATCH_BYTES) {
            return { columns: [], entries };
          }
        }
      } catch (e) {
        this.done = true;
        throw witError(e);
      }
      this.done = true;
      return entries.length ? { columns: [], entries } : undefined;
    }

    finish() {
      return {
        mode: this.run.mode === 'delta' ? 'delta' : 'full',
        cursor: this.run.nextCursor ?? undefined,
        notices: this.run.notices,
      };
    }
  }

  return {
    Session,
    info() {
      return info;
    },
    open(request) {
      try {
        const run = new Run(spec, request);
        return new Session(run, spec.run(run)[Symbol.iterator]());
      } catch (e) {
        throw witError(e);
      }
    },
    test(config) {
      try {
        const run = new Run(spec, { config, mode: 'full', cursor: undefined });
        if (spec.test) {
          const r = spec.test(run);
          return {
            users: r.users ?? undefined,
            groups: r.groups ?? undefined,
            sample: r.sample?.val,
            messages: r.messages ?? [],
          };
        }
        let users = 0n;
        let groups = 0n;
        let failed = 0;
        let sample;
        for (const e of spec.run(run)) {
          if (e.tag === 'object' && e.val.kind === 'user') {
            users += 1n;
            sample ??= e.val;
          } else if (e.tag === 'object') {
            groups += 1n;
          } else if (e.tag === 'failed') {
            failed += 1;
          }
        }
        const messages = [...run.notices];
        if (failed) messages.push(`${failed} entries could not be read`);
        return { users, groups, sample, messages };
      } catch (e) {
        throw witError(e);
      }
    },
  };
}

// ---- Host capabilities -------------------------------------------------------------------

/** Log into roster's log: level is trace, debug, info, warn or error. */
export function log(level, message) {
  hostLog(level, String(message));
}

function fileError(e) {
  const err = e?.payload ?? e;
  // Not granted, or not there: the config names the wrong file.
  if (err?.tag === 'io') return new UnavailableError(err.val);
  if (err?.tag === 'denied' || err?.tag === 'not-found') return new ConfigError(err.val);
  return e;
}

/** A granted file's bytes (a `file` config key's value, or one in the source's `files`),
 * a chunk (Uint8Array) at a time. */
export function* readChunks(path, chunk = 1 << 20) {
  let file;
  try {
    file = openFile(path);
  } catch (e) {
    throw fileError(e);
  }
  for (;;) {
    let data;
    try {
      data = file.read(chunk);
    } catch (e) {
      throw fileError(e);
    }
    if (data.length === 0) return;
    yield data;
  }
}

/** A granted file's whole content as bytes. */
export function readFile(path) {
  const parts = [...readChunks(path)];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A granted UTF-8 text file's lines, without line ends, read as a stream. */
export function* readLines(path) {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let rest = '';
  try {
    for (const data of readChunks(path)) {
      const lines = (rest + decoder.decode(data, { stream: true })).split('\n');
      rest = lines.pop();
      for (const line of lines) yield line.replace(/\r$/, '');
    }
    rest += decoder.decode();
  } catch (e) {
    if (e instanceof TypeError) throw new BadDataError(`${path}: not UTF-8`);
    throw e;
  }
  if (rest) yield rest.replace(/\r$/, '');
}

/** An HTTP request to a granted origin; `credential` names one of the plugin's credentials,
 * which the host attaches (the plugin never sees the secret). Returns {status, headers, body,
 * text(), json()}. */
export function send(method, url, { headers = [], body, credential } = {}) {
  let r;
  try {
    const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body;
    r = httpSend({ method, url, headers, body: bytes ?? undefined, credential: credential ?? undefined });
  } catch (e) {
    const err = e?.payload ?? e;
    if (err?.tag === 'denied') throw new ConfigError(`${url}: ${err.val}`);
    if (err?.tag === 'authentication') throw new AuthenticationError(err.val);
    if (err?.tag === 'too-large') throw new BadDataError(`${url}: ${err.val}`);
    if (err?.tag) throw new UnavailableError(err.val); // the host names the URL
    throw e;
  }
  return {
    status: r.status,
    headers: r.headers,
    body: r.body,
    header: (name) => r.headers.find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1],
    text: () => new TextDecoder().decode(r.body),
    json() {
      try {
        return JSON.parse(new TextDecoder().decode(r.body));
      } catch (e) {
        throw new BadDataError(`${url}: the response is not JSON: ${e.message}`);
      }
    },
  };
}

/** GET a JSON document; HTTP errors become typed errors (401/403: authentication,
 * 429/5xx: unavailable, others: bad data). */
export function getJson(url, { credential, headers = [] } = {}) {
  const r = send('GET', url, { headers: [['Accept', 'application/json'], ...headers], credential });
  if (r.status === 401 || r.status === 403) throw new AuthenticationError(`${url}: HTTP ${r.status}`);
  if (r.status === 429 || r.status >= 500) throw new UnavailableError(`${url}: HTTP ${r.status}`);
  if (r.status < 200 || r.status >= 300) throw new BadDataError(`${url}: HTTP ${r.status}`);
  return r.json();
}

/** Entries of a paged search through the host's bound connection, one page in memory at a
 * time, as {dn, attributes: {name: [text values]}}. Pages cross as one buffer each
 * (`next-page-packed`, decoded by `unpackLdapPage`). */
export function* ldapSearch(filter, attributes, { base, scope = 'subtree', pageSize = 0 } = {}) {
  try {
    const search = ldapConnect().search({
      base: base ?? undefined,
      scope,
      filter,
      attributes,
      pageSize,
      showDeleted: false,
    });
    for (;;) {
      const buf = search.nextPagePacked();
      if (buf === undefined || buf === null) return;
      yield* unpackLdapPage(buf);
    }
  } catch (e) {
    // A malformed page is bad data, not the server's error.
    if (e instanceof PluginError) throw e;
    const err = e?.payload ?? e;
    if (err?.tag === 'invalid-credentials') throw new AuthenticationError(err.val);
    if (err?.tag === 'no-such-base' || err?.tag === 'denied') throw new ConfigError(err.val);
    if (err?.tag) throw new UnavailableError(err.val);
    throw e;
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const lossyUtf8 = new TextDecoder();

/** Decodes a page in the contract's packed layout (`next-page-packed` in wit/host.wit: u32
 * little-endian counts and lengths, `entry-count, { dn, attribute-count, { name,
 * value-count, { value } } }`) into ldapSearch's [{dn, attributes: {name: [text values]}}].
 * A truncated or malformed buffer throws BadDataError ("packed LDAP page: ..."). */
export function unpackLdapPage(buf) {
  const bytes = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.byteLength;
  const broken = (what) => new BadDataError(`packed LDAP page: ${what}`);
  let at = 0;
  const u32 = () => {
    if (end - at < 4) throw broken('truncated');
    const n = view.getUint32(at, true);
    at += 4;
    return n;
  };
  // Bounded by the bytes left (each item takes at least 4), so a broken buffer cannot make
  // us build what it does not back.
  const count = () => {
    const n = u32();
    if (n > (end - at) >>> 2) throw broken('a count exceeds the buffer');
    return n;
  };
  const field = () => {
    const n = u32();
    if (n > end - at) throw broken('a value exceeds the buffer');
    const v = bytes.subarray(at, at + n);
    at += n;
    return v;
  };
  const name = () => {
    const v = field();
    try {
      return strictUtf8.decode(v);
    } catch {
      throw broken('a DN or name is not UTF-8');
    }
  };
  const entries = [];
  for (let n = count(); n > 0; n--) {
    const dn = name();
    const attributes = {};
    for (let a = count(); a > 0; a--) {
      const attr = name();
      const values = [];
      for (let c = count(); c > 0; c--) values.push(lossyUtf8.decode(field()));
      attributes[attr] = values;
    }
    entries.push({ dn, attributes });
  }
  if (at !== end) throw broken(`${end - at} bytes after the last entry`);
  return entries;
}
