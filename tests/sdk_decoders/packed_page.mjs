// The JavaScript SDK's decoder of packed LDAP pages (`unpackPage`), run natively with the
// component's imports stubbed (node --import ./register.mjs): pages decode to their entries,
// broken buffers throw BadDataError. Run by tests/sdk_langs.rs; exits non-zero on a failure.
import assert from 'node:assert/strict';
import { unpackPage, BadDataError } from '../../sdk/js/roster-plugin.js';

const u32 = (n) => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, n, true); return b; };
const bytes = (s) => (typeof s === 'string' ? new TextEncoder().encode(s) : Uint8Array.from(s));
const s = (v) => { const b = bytes(v); return cat(u32(b.length), b); };
function cat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

const page = cat(
  u32(2),
  s('uid=ann,dc=t'), u32(2),
  s('uid'), u32(1), s('ann'),
  s('description'), u32(2), s('first'), s('café'),
  s('uid=zoë,dc=t'), u32(0),
);
assert.deepEqual(unpackPage(page), [
  { dn: 'uid=ann,dc=t', attributes: { uid: ['ann'], description: ['first', 'café'] } },
  { dn: 'uid=zoë,dc=t', attributes: {} },
]);
assert.deepEqual(unpackPage(u32(0)), []);
const broken = {
  'truncated': page.subarray(0, page.length - 1),
  '1 bytes after the last entry': cat(page, bytes('x')),
  'a count exceeds the buffer': u32(1_000_000),
  'a value exceeds the buffer': cat(u32(1), u32(50), bytes('uid')),
  'a DN or name is not UTF-8': cat(u32(1), s([0xff]), u32(0)),
};
for (const [why, buf] of Object.entries(broken)) {
  assert.throws(() => unpackPage(buf), (e) => e instanceof BadDataError && e.message === `packed LDAP page: ${why}`, why);
}
console.log('ok');
