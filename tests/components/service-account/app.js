// sa-js: users of a Directory API (users.list) read with a service-account credential the
// host holds; the SDK test (tests/sdk_langs.rs) runs it against the Google emulator.
import { plugin, User, getJson } from '../../../sdk/js/roster-plugin.js';

const SCOPE = 'https://www.googleapis.com/auth/admin.directory.user.readonly';

export const connector = plugin({
  name: 'sa-js', version: '0.1.0', description: 'Users through a host-held service account',
  keys: [
    { name: 'key_file', type: 'secret', required: true, description: "The service account's JSON key file" },
    { name: 'subject', type: 'string', required: true, description: 'The admin to act for' },
    { name: 'api_url', type: 'url', required: true, description: "The Directory API's base URL" },
  ],
  capabilities: { http: 'reads users.list' },
  credentials: [{ name: 'directory', serviceAccount: { keyFile: 'key_file', subject: '{subject}', scope: SCOPE } }],
  *run({ config }) {
    const base = `${config.api_url.replace(/\/$/, '')}/admin/directory/v1/users?customer=my_customer`;
    let token = '';
    for (;;) {
      const body = getJson(base + token, { credential: 'directory' });
      for (const u of body.users ?? []) yield User(u.id, { username: u.primaryEmail, email: u.primaryEmail });
      if (!body.nextPageToken) break;
      token = `&pageToken=${body.nextPageToken}`;
    }
  },
});
