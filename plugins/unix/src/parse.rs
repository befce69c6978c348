//! The line formats: `passwd(5)`, `group(5)` and the GECOS field.

/// One `passwd` line: `name:password:uid:gid:gecos:home:shell`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passwd<'a> {
    pub name: &'a str,
    pub uid: u32,
    pub gid: u32,
    pub gecos: &'a str,
    pub home: &'a str,
    pub shell: &'a str,
}

/// One `group` line: `name:password:gid:member,member,…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLine<'a> {
    pub name: &'a str,
    pub gid: u32,
    pub members: Vec<&'a str>,
}

/// What a line is: an entry, nothing (blank, comment, NIS `+`/`-` compat line), or broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<T> {
    Entry(T),
    Skip,
    Malformed(String),
}

/// Blank lines, `#` comments and the `+`/`-` lines of NIS compat mode (`+::::::`,
/// `+@netgroup`, `-user`) are not accounts.
fn skipped(line: &str) -> bool {
    line.trim().is_empty()
        || line.starts_with('#')
        || line.starts_with('+')
        || line.starts_with('-')
}

fn id(field: &str, what: &str) -> Result<u32, String> {
    field
        .parse()
        .map_err(|_| format!("{what} {field:?} is not a number"))
}

pub fn passwd(line: &str) -> Line<Passwd<'_>> {
    if skipped(line) {
        return Line::Skip;
    }
    let f: Vec<&str> = line.split(':').collect();
    if f.len() != 7 {
        return Line::Malformed(format!(
            "{} fields where passwd has 7 (name:password:uid:gid:gecos:home:shell)",
            f.len()
        ));
    }
    if f[0].is_empty() {
        return Line::Malformed("the user name is empty".into());
    }
    let (uid, gid) = match (id(f[2], "uid"), id(f[3], "gid")) {
        (Ok(u), Ok(g)) => (u, g),
        (Err(e), _) | (_, Err(e)) => return Line::Malformed(e),
    };
    Line::Entry(Passwd {
        name: f[0],
        uid,
        gid,
        gecos: f[4],
        home: f[5],
        shell: f[6],
    })
}

pub fn group(line: &str) -> Line<GroupLine<'_>> {
    if skipped(line) {
        return Line::Skip;
    }
    let f: Vec<&str> = line.split(':').collect();
    if f.len() != 4 {
        return Line::Malformed(format!(
            "{} fields where group has 4 (name:password:gid:members)",
            f.len()
        ));
    }
    if f[0].is_empty() {
        return Line::Malformed("the group name is empty".into());
    }
    let gid = match id(f[2], "gid") {
        Ok(g) => g,
        Err(e) => return Line::Malformed(e),
    };
    let members = (f[3].split(','))
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect();
    Line::Entry(GroupLine {
        name: f[0],
        gid,
        members,
    })
}

/// The GECOS field: `Full Name,Room,Work phone,Home phone,Other` (chfn(1)); any part may be
/// missing. `&` in the name stands for the login, capitalised (BSD finger's convention).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gecos {
    pub full_name: Option<String>,
    pub room: Option<String>,
    pub work_phone: Option<String>,
    pub home_phone: Option<String>,
    pub other: Option<String>,
}

pub fn gecos(raw: &str, login: &str) -> Gecos {
    let mut parts = raw.splitn(5, ',').map(str::trim);
    let mut next = || parts.next().filter(|s| !s.is_empty()).map(str::to_string);
    let full_name = next().map(|n| {
        if n.contains('&') {
            let mut cap = login.chars();
            let cap: String = match cap.next() {
                Some(c) => c.to_uppercase().chain(cap).collect(),
                None => String::new(),
            };
            n.replace('&', &cap)
        } else {
            n
        }
    });
    Gecos {
        full_name,
        room: next(),
        work_phone: next(),
        home_phone: next(),
        other: next(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines_parse_and_broken_ones_say_why() {
        assert_eq!(
            passwd("alice:x:1000:1000:Alice Smith,B12,+1 555 0100,,:/home/alice:/bin/bash"),
            Line::Entry(Passwd {
                name: "alice",
                uid: 1000,
                gid: 1000,
                gecos: "Alice Smith,B12,+1 555 0100,,",
                home: "/home/alice",
                shell: "/bin/bash",
            })
        );
        for skip in [
            "",
            "  ",
            "# comment",
            "+::::::",
            "+@staff::::::",
            "-bob::::::",
        ] {
            assert_eq!(passwd(skip), Line::Skip, "{skip:?}");
        }
        let bad = |l| match passwd(l) {
            Line::Malformed(m) => m,
            other => panic!("{l:?}: {other:?}"),
        };
        assert_eq!(
            bad("alice:x:1000:1000:/home/alice:/bin/bash"),
            "6 fields where passwd has 7 (name:password:uid:gid:gecos:home:shell)"
        );
        assert_eq!(
            bad("bob:x:10o1:100::/home/bob:/bin/sh"),
            "uid \"10o1\" is not a number"
        );
        assert_eq!(
            bad("bob:x:1001:-1::/home/bob:/bin/sh"),
            "gid \"-1\" is not a number"
        );
        assert_eq!(bad(":x:1001:100::/:/bin/sh"), "the user name is empty");
        // A shadow line is not a passwd line.
        assert!(bad("alice:$6$salt$hash:19000:0:99999:7:::").starts_with("9 fields"));
    }

    #[test]
    fn group_lines_parse_with_their_members() {
        assert_eq!(
            group("staff:x:50:alice, bob,,"),
            Line::Entry(GroupLine {
                name: "staff",
                gid: 50,
                members: vec!["alice", "bob"],
            })
        );
        assert_eq!(
            group("empty:*:51:"),
            Line::Entry(GroupLine {
                name: "empty",
                gid: 51,
                members: vec![],
            })
        );
        assert!(matches!(group("staff:x:50"), Line::Malformed(_)));
        assert!(matches!(group("staff:x:abc:"), Line::Malformed(_)));
    }

    #[test]
    fn gecos_is_split_into_name_room_and_phones() {
        assert_eq!(
            gecos("Alice Smith,B12,+1 555 0100,555 0199,on leave", "alice"),
            Gecos {
                full_name: Some("Alice Smith".into()),
                room: Some("B12".into()),
                work_phone: Some("+1 555 0100".into()),
                home_phone: Some("555 0199".into()),
                other: Some("on leave".into()),
            }
        );
        assert_eq!(gecos("", "x"), Gecos::default());
        assert_eq!(
            gecos("Bob,,,", "bob"),
            Gecos {
                full_name: Some("Bob".into()),
                ..Default::default()
            }
        );
        // The rest of the field, commas and all, is "other".
        assert_eq!(
            gecos("A,1,2,3,x=1,y=2", "a").other.as_deref(),
            Some("x=1,y=2")
        );
        assert_eq!(
            gecos("& Jones", "mary").full_name.as_deref(),
            Some("Mary Jones")
        );
        assert_eq!(
            gecos("Žofie Nováková", "zn").full_name.as_deref(),
            Some("Žofie Nováková")
        );
    }
}
