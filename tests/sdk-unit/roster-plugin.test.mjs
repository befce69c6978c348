// Unit tests of the JavaScript SDK's pure parts (sdk/js/roster-plugin.js), outside a
// component: the host's interfaces are stubbed (host-stub.mjs, through hooks.mjs).
//
//   node --test tests/sdk-unit/
//
// tests/sdk_langs.rs runs them; the end-to-end LDAP test there runs the same code in a component.
import { register } from 'node:module';
import { test } from 'node:test';
import assert from 'node:assert/strict';

register('./hooks.mjs', import.meta.url);
const sdk = await import('../../sdk/js/roster-plugin.js');

/** The layout written out by hand, as wit/host.wit documents it. */
function packed(entries) {
  const out = [];
  const n = (x) => out.push(x & 0xff, (x >>> 8) & 0xff, (x >>> 16) & 0xff, x >>> 24);
  const put = (b) => {
    n(b.length);
    out.push(...b);
  };
  const utf8 = (s) => new TextEncoder().encode(s);
  n(entries.length);
  for (const [dn, attrs] of entries) {
    put(utf8(dn));
    n(attrs.length);
    for (const [name, values] of attrs) {
      put(utf8(name));
      n(values.length);
      for (const v of values) put(typeof v === 'string' ? utf8(v) : v);
    }
  }
  return new Uint8Array(out);
}

const PHOTO = new Uint8Array([0xff, 0xd8, 0x00, 0x80]);
const PAGE = [
  ['uid=ann,dc=example', [['uid', ['ann']], ['cn', ['Änn', 'Ann']], ['jpegPhoto', [PHOTO, '']]]],
  ['cn=empty', []],
];
const WANT = [
  {
    dn: 'uid=ann,dc=example',
    attributes: { uid: ['ann'], cn: ['Änn', 'Ann'], jpegPhoto: ['\ufffd\ufffd\u0000\ufffd', ''] },
  },
  { dn: 'cn=empty', attributes: {} },
];

test('a packed page decodes to its entries', () => {
  assert.deepEqual(sdk.unpackLdapPage(packed(PAGE)), WANT);
  assert.deepEqual(sdk.unpackLdapPage(packed([])), []);
  // A view into a larger buffer, as bindings may hand over.
  const buf = packed(PAGE);
  const big = new Uint8Array(buf.length + 7);
  big.set(buf, 3);
  assert.deepEqual(sdk.unpackLdapPage(big.subarray(3, 3 + buf.length)), WANT);
});

function assertBroken(buf, what = '') {
  assert.throws(
    () => sdk.unpackLdapPage(buf),
    (e) => e instanceof sdk.BadDataError && e.message.includes('packed LDAP page') && e.message.includes(what),
  );
}

test('a broken packed page is bad data', () => {
  const buf = packed([['uid=ann', [['uid', ['ann']]]]]);
  for (let cut = 0; cut < buf.length; cut++) assertBroken(buf.subarray(0, cut));
  assertBroken(new Uint8Array([...buf, 0]), '1 bytes after the last entry');
  // A count no buffer backs is refused before anything is built.
  assertBroken(new Uint8Array([0xff, 0xff, 0xff, 0xff]), 'count exceeds');
  assertBroken(new Uint8Array([1, 0, 0, 0, 99, 0, 0, 0, 0x61, 0, 0, 0, 0]), 'value exceeds');
  let bad = packed([['\0', []]]);
  bad[8] = 0xff;
  assertBroken(bad, 'UTF-8');
  bad = packed([['a', [['\0', []]]]]);
  bad[17] = 0xff;
  assertBroken(bad, 'UTF-8');
});

function search(pages) {
  globalThis.rosterHost.connect = () => ({
    search: () => ({
      nextPagePacked() {
        const p = pages.shift();
        if (p instanceof Error) throw p;
        return p;
      },
      nextPage() {
        throw new Error('the SDK reads packed pages');
      },
    }),
  });
  return [...sdk.ldapSearch('(uid=*)', ['uid'])];
}

test('ldapSearch reads every packed page', () => {
  const got = search([packed(PAGE), packed([]), packed(PAGE.slice(0, 1)), undefined]);
  assert.deepEqual(got, [...WANT, WANT[0]]);
});

test('a broken page is bad data; host errors keep their mapping', () => {
  assert.throws(() => search([packed(PAGE).subarray(0, 9)]), (e) => e instanceof sdk.BadDataError && /packed LDAP page/.test(e.message));
  const hostError = (tag) => Object.assign(new Error(tag), { payload: { tag, val: "the host's message" } });
  for (const [tag, kind] of [
    ['invalid-credentials', sdk.AuthenticationError],
    ['no-such-base', sdk.ConfigError],
    ['denied', sdk.ConfigError],
    ['unreachable', sdk.UnavailableError],
  ]) {
    assert.throws(() => search([hostError(tag)]), (e) => e instanceof kind && e.message === "the host's message");
  }
});
