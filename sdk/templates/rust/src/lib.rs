//! {{name}}: people and groups from a custom directory, a text file of one person a line:
//! `id; username; full name; email; group, group`.
use roster_plugin::prelude::*;

struct Directory;

impl Connector for Directory {
    fn info() -> Info {
        roster_plugin::info!("People and groups from a text file")
            .key(Key::file("path", "id; username; full name; email; groups").required())
            .capability("files", "reads the directory file at `path`")
    }

    fn open(config: Config, _request: Request) -> Result<Run, Error> {
        let text = files::read_to_string(config.require_str("path")?)?;
        let (mut items, mut groups) = (Vec::new(), std::collections::BTreeSet::new());
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match line.split(';').map(str::trim).collect::<Vec<_>>()[..] {
                [id, username, full_name, email, list] => {
                    let user = User::new(id).attr("username", username);
                    let mut user = user.attr("full_name", full_name).attr("email", email);
                    for group in list.split(',').map(str::trim).filter(|g| !g.is_empty()) {
                        groups.insert(group.to_string());
                        user = user.member_of(group);
                    }
                    items.push(Item::User(user));
                }
                _ => items.push(Item::failed(line, "expected 5 fields separated by ;")),
            }
        }
        items.extend(groups.iter().map(|g| Item::Group(Group::new(g, g))));
        Ok(Run::new(items))
    }
}

roster_plugin::export!(Directory);
