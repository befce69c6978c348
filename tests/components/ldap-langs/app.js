// ldap-js: people from the source's LDAP connection through the SDK's ldapSearch (packed
// pages); the SDK test (tests/sdk_langs.rs) runs it against slapd. A user per entry with a
// uid (`notes` = the JSON of the attributes ldapSearch yielded), a failed entry per entry
// without one; a search that matches nothing must yield nothing.
import { plugin, User, Failed, BadDataError, ldapSearch } from '../../../sdk/js/roster-plugin.js';

const ATTRIBUTES = ['uid', 'cn', 'sn', 'mail', 'description', 'jpegPhoto', 'userPassword'];

export const connector = plugin({
  name: 'ldap-js', version: '0.1.0', description: "People through the SDK's ldapSearch",
  keys: [
    { name: 'count', type: 'integer', default: '2', description: 'LDAP page size' },
    { name: 'url', type: 'list', description: 'LDAP URLs' },
    { name: 'bind_dn', type: 'string', description: 'Bind DN' },
    { name: 'password', type: 'secret', description: 'Bind password' },
    { name: 'base_dn', type: 'list', description: 'Base DNs' },
  ],
  capabilities: { ldap: "searches the source's directory" },
  *run({ config }) {
    const pageSize = Number(config.count);
    const nothing = [...ldapSearch('(uid=nobody-by-that-name)', ['uid'], { pageSize })];
    if (nothing.length) throw new BadDataError(`a search that matches nothing yielded ${JSON.stringify(nothing)}`);
    for (const { dn, attributes } of ldapSearch('(objectClass=inetOrgPerson)', ATTRIBUTES, { pageSize })) {
      const uid = Object.entries(attributes).find(([k]) => k.toLowerCase() === 'uid')?.[1];
      if (!uid?.length) {
        yield Failed(dn, 'no uid');
        continue;
      }
      const sorted = Object.fromEntries(Object.entries(attributes).sort(([a], [b]) => (a < b ? -1 : 1)));
      yield User(dn, { username: uid[0], notes: JSON.stringify(sorted) });
    }
  },
});
