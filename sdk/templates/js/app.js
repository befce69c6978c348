// {{name}}: people and groups from a custom directory, a text file of one person a line:
// `id; username; full name; email; group, group`.
import { plugin, User, Group, Failed, readLines } from './roster-plugin.js';

export const connector = plugin({
  name: '{{name}}', version: '0.1.0', description: 'People and groups from a text file',
  keys: [{ name: 'path', type: 'file', required: true, description: 'id; username; full name; email; groups' }],
  capabilities: { files: 'reads the directory file at `path`' },
  *run({ config }) {
    const groups = new Set();
    for (const line of readLines(config.path)) {
      if (!line.trim()) continue;
      const fields = line.split(';').map((f) => f.trim());
      if (fields.length !== 5) {
        yield Failed(line, 'expected 5 fields separated by ;');
        continue;
      }
      const [id, username, full_name, email, names] = fields;
      const memberOf = names.split(',').map((g) => g.trim()).filter((g) => g);
      memberOf.forEach((g) => groups.add(g));
      yield User(id, { username, full_name, email, memberOf });
    }
    for (const g of [...groups].sort()) yield Group(g, { name: g });
  },
});
