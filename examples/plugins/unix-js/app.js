// unix-js: users and groups from granted passwd and group files (accounts from min_uid up).
import { plugin, User, Group, Failed, readLines } from '../../../sdk/js/roster-plugin.js';

export const connector = plugin({
  name: 'unix-js', version: '0.1.0', description: 'Users and groups from passwd and group files',
  keys: [
    { name: 'passwd', type: 'file', required: true, description: 'The passwd file' },
    { name: 'group', type: 'file', required: true, description: 'The group file' },
    { name: 'min_uid', type: 'integer', default: '1000', description: 'Lowest uid (and gid) synced' },
  ],
  capabilities: { files: 'reads the passwd and group files' },
  *run({ config }) {
    const users = new Map(); // login -> [user id, primary gid]
    let n = 0;
    for (const line of readLines(config.passwd)) {
      const [login, , uid, gid, gecos = ''] = line.split(':');
      n += 1;
      if (!line.trim() || line.startsWith('#')) continue;
      if (!/^\d+$/.test(uid) || !/^\d+$/.test(gid)) yield Failed(`passwd line ${n}`, 'not name:x:uid:gid:...');
      else if (+uid >= config.min_uid) {
        users.set(login, [`u${uid}`, gid]);
        yield User(`u${uid}`, { locator: `passwd line ${n}`, username: login, full_name: gecos.split(',')[0] });
      }
    }
    for (const line of readLines(config.group)) {
      const [name, , gid, list = ''] = line.split(':');
      const members = new Set([...users.values()].filter(([, g]) => g === gid).map(([id]) => id));
      for (const m of list.split(',')) if (users.has(m)) members.add(users.get(m)[0]);
      if (/^\d+$/.test(gid) && (+gid >= config.min_uid || members.size)) yield Group(`g${gid}`, { name, members: [...members] });
    }
  },
});
