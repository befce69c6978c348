//! {{name}}: people and groups from a custom directory, a text file of one person a line:
//! `id; username; full name; email; group, group`.
use roster_plugin::prelude::*;

struct Directory;

impl Connector for Directory {
    fn info() -> Info {
        Info::new("{{name}}", env!("CARGO_PKG_VERSION"), "People and groups from a text file")
            .key(Key::file("path", "The directory file: id; username; full name; email; groups").required())
            .capability("files", "reads the directory file at `path`")
    }

    fn open(config: Config, _request: Request) -> Result<Run, Error> {
        let text = files::read_to_string(config.require_str("path")?)?;
        let (mut items, mut groups) = (Vec::new(), std::collections::BTreeSet::new());
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#')) {
            let fields: Vec<&str> = line.split(';').map(str::trim).collect();
            let [id, username, full_name, email, member_of] = fields[..] else {
                items.push(Item::failed(format!("line {}", i + 1), "expected 5 fields separated by ;"));
                continue;
            };
            let mut user = User::new(id).locator(format!("line {}", i + 1)).attr("username", username)
                .attr("full_name", full_name).attr("email", email);
            for group in member_of.split(',').map(str::trim).filter(|g| !g.is_empty()) {
                groups.insert(group.to_string());
                user = user.member_of(group);
            }
            items.push(Item::User(user));
        }
        items.extend(groups.into_iter().map(|g| Item::Group(Group::new(g.clone(), g))));
        Ok(Run::new(items))
    }
}

roster_plugin::export!(Directory);
