// ldap-js: people read through the host's LDAP connection with the SDK's ldapSearch (pages
// cross as one buffer each); the SDK test (tests/sdk_langs.rs) runs it against slapd.
import { plugin, User, ldapSearch } from '../../../sdk/js/roster-plugin.js';

export const connector = plugin({
  name: 'ldap-js', version: '0.1.0', description: "People through the host's LDAP connection",
  keys: [
    { name: 'url', type: 'url', required: true, description: 'The directory' },
    { name: 'base_dn', type: 'string', required: true, description: 'Where people are' },
    { name: 'bind_dn', type: 'string', description: 'Who reads' },
    { name: 'password', type: 'secret', description: 'Their password' },
  ],
  capabilities: { ldap: 'reads people' },
  *run() {
    // Two entries a page: several pages, each decoded from its buffer.
    const attrs = ['uid', 'cn', 'mail', 'description'];
    for (const { dn, attributes: a } of ldapSearch('(objectClass=inetOrgPerson)', attrs, { pageSize: 2 })) {
      yield User(dn, {
        username: a.uid[0],
        full_name: a.cn?.[0],
        email: a.mail?.[0],
        aliases: a.description ?? [],
      });
    }
  },
});
