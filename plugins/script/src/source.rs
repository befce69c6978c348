//! The source role: a script that calls `emit_user` / `emit_group`. Entries are gathered
//! into batches; each full batch goes to a sink (the host's `emit` capability) while the
//! script runs, so a script that emits a million users holds only one batch.

use crate::engine;
use crate::values::{from_map, to_values};
use crate::{Attributes, Host};
use rhai::{Dynamic, EvalAltResult, Map, Position, Scope};
use std::cell::RefCell;
use std::rc::Rc;

/// Entries per batch handed to the host (its cap is 10,000).
pub const BATCH_ENTRIES: usize = 5_000;
/// Bytes of text per batch (the host's cap is 64 MiB).
pub const BATCH_BYTES: usize = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
}

/// One emitted user or group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emitted {
    pub kind: Kind,
    pub id: String,
    pub attributes: Attributes,
    pub member_of: Vec<String>,
    pub members: Vec<String>,
    pub parent: Option<String>,
}

impl Emitted {
    fn bytes(&self) -> usize {
        self.id.len()
            + (self.attributes.iter())
                .map(|(n, v)| n.len() + v.iter().map(String::len).sum::<usize>())
                .sum::<usize>()
            + (self.member_of.iter().chain(&self.members))
                .map(String::len)
                .sum::<usize>()
    }
}

/// Where full batches go.
pub type Sink = Box<dyn FnMut(Vec<Emitted>) -> Result<(), String>>;

struct Emitter {
    batch: Vec<Emitted>,
    bytes: usize,
    sink: Sink,
    users: u64,
    groups: u64,
}

impl Emitter {
    fn add(&mut self, e: Emitted) -> Result<(), String> {
        match e.kind {
            Kind::User => self.users += 1,
            Kind::Group => self.groups += 1,
        }
        self.bytes += e.bytes();
        self.batch.push(e);
        if self.batch.len() >= BATCH_ENTRIES || self.bytes >= BATCH_BYTES {
            self.bytes = 0;
            (self.sink)(std::mem::take(&mut self.batch))?;
        }
        Ok(())
    }
}

/// How a run ended: the last, partial batch and the counts.
#[derive(Debug)]
pub struct Finished {
    pub last: Vec<Emitted>,
    pub users: u64,
    pub groups: u64,
}

/// Runs a source script to its end. Errors read `name:line:col: reason`.
pub fn run(
    host: Rc<dyn Host>,
    name: &str,
    text: &str,
    max_operations: u64,
    sink: Sink,
) -> Result<Finished, String> {
    let mut engine = engine::new(host, max_operations);
    let emitter = Rc::new(RefCell::new(Emitter {
        batch: Vec::new(),
        bytes: 0,
        sink,
        users: 0,
        groups: 0,
    }));
    let e = emitter.clone();
    engine.register_fn(
        "emit_user",
        move |user: Map| -> Result<(), Box<EvalAltResult>> {
            let u = user_entry(user).map_err(|m| runtime(format!("emit_user: {m}")))?;
            e.borrow_mut().add(u).map_err(runtime)
        },
    );
    let e = emitter.clone();
    engine.register_fn(
        "emit_group",
        move |group: Map| -> Result<(), Box<EvalAltResult>> {
            let g = group_entry(group).map_err(|m| runtime(format!("emit_group: {m}")))?;
            e.borrow_mut().add(g).map_err(runtime)
        },
    );
    let ast = engine::compile(&engine, name, text)?;
    engine
        .run_ast_with_scope(&mut Scope::new(), &ast)
        .map_err(|e| engine::describe(name, *e))?;
    drop(engine);
    let emitter = Rc::try_unwrap(emitter)
        .map_err(|_| "the script's engine is still in use".to_string())?
        .into_inner();
    Ok(Finished {
        last: emitter.batch,
        users: emitter.users,
        groups: emitter.groups,
    })
}

fn runtime(message: String) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(message.into(), Position::NONE))
}

fn take_text(map: &mut Map, key: &str) -> Result<Option<String>, String> {
    match map.remove(key) {
        None => Ok(None),
        Some(v) => {
            let mut vals = to_values(v).map_err(|e| format!("`{key}`: {e}"))?;
            if vals.len() > 1 {
                return Err(format!("`{key}` must be one value, got {}", vals.len()));
            }
            Ok(vals.pop().filter(|s| !s.is_empty()))
        }
    }
}

fn take_list(map: &mut Map, key: &str) -> Result<Vec<String>, String> {
    map.remove(key)
        .map(|v| to_values(v).map_err(|e| format!("`{key}`: {e}")))
        .unwrap_or(Ok(Vec::new()))
}

/// A user map: `id` (the anchor; default the username), `member_of` (group ids), and every
/// other key an attribute.
pub fn user_entry(mut map: Map) -> Result<Emitted, String> {
    let id = take_text(&mut map, "id")?;
    let member_of = take_list(&mut map, "member_of")?;
    let attributes = from_map(map)?;
    let id = match id {
        Some(id) => id,
        None => (attributes.iter())
            .find(|(n, _)| n == "username")
            .and_then(|(_, v)| v.first().cloned())
            .filter(|u| !u.is_empty())
            .ok_or("the user has neither an `id` nor a `username`")?,
    };
    Ok(Emitted {
        kind: Kind::User,
        id,
        attributes,
        member_of,
        members: Vec::new(),
        parent: None,
    })
}

/// A group map: `id` (required), `name` (default the id), `members` (user or group ids),
/// `parent` (a group id), `member_of`; other keys are attributes.
pub fn group_entry(mut map: Map) -> Result<Emitted, String> {
    let id = take_text(&mut map, "id")?.ok_or("the group has no `id`")?;
    let members = take_list(&mut map, "members")?;
    let member_of = take_list(&mut map, "member_of")?;
    let parent = take_text(&mut map, "parent")?;
    if !map.contains_key("name") {
        map.insert("name".into(), Dynamic::from(id.clone()));
    }
    Ok(Emitted {
        kind: Kind::Group,
        id,
        attributes: from_map(map)?,
        member_of,
        members,
        parent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tests::FakeHost;

    fn collect(script: &str) -> Result<(Vec<Vec<Emitted>>, Finished), String> {
        let pushed = Rc::new(RefCell::new(Vec::new()));
        let p = pushed.clone();
        let sink: Sink = Box::new(move |b| {
            p.borrow_mut().push(b);
            Ok(())
        });
        let mut host = FakeHost::default();
        host.files
            .insert("hr.txt".into(), "jdoe\tJane Doe\tjane@x\n".into());
        let f = run(Rc::new(host), "hr.rhai", script, 10_000_000, sink)?;
        let pushed = pushed.borrow().clone();
        Ok((pushed, f))
    }

    #[test]
    fn users_and_groups_stream_in_full_batches() {
        let (pushed, f) = collect(
            r#"for i in 0..12000 {
                   emit_user(#{ username: `u${i}`, full_name: `User ${i}`, member_of: [`g${i % 3}`] });
               }
               for g in 0..3 { emit_group(#{ id: `g${g}`, name: `Group ${g}`, parent: if g > 0 { "g0" } else { () } }); }"#,
        )
        .unwrap();
        assert_eq!(pushed.len(), 2);
        assert!(pushed.iter().all(|b| b.len() == BATCH_ENTRIES));
        assert_eq!(f.last.len(), 2003);
        assert_eq!((f.users, f.groups), (12000, 3));
        let u = &pushed[0][7];
        assert_eq!(u.id, "u7");
        assert_eq!(u.member_of, ["g1"]);
        let g = f.last.last().unwrap();
        assert_eq!(
            (g.kind, g.id.as_str(), g.parent.as_deref()),
            (Kind::Group, "g2", Some("g0"))
        );
        assert!(g
            .attributes
            .contains(&("name".into(), vec!["Group 2".into()])));
    }

    #[test]
    fn a_user_may_carry_an_anchor_and_any_attributes() {
        let (_, f) = collect(
            r#"let u = parse_papercut(read_lines("hr.txt")[0]); u.id = "E-17"; u.floor = 3; emit_user(u);"#,
        )
        .unwrap();
        let u = &f.last[0];
        assert_eq!(u.id, "E-17");
        assert!(u.attributes.contains(&("floor".into(), vec!["3".into()])));
        assert!(u
            .attributes
            .contains(&("username".into(), vec!["jdoe".into()])));
    }

    #[test]
    fn bad_entries_fail_with_the_position() {
        let e = collect("emit_user(#{ full_name: \"x\" });").unwrap_err();
        assert!(
            e.starts_with("hr.rhai:1:1: emit_user: the user has neither"),
            "{e}"
        );
        let e = collect("\n emit_group(#{ name: \"x\" });").unwrap_err();
        assert!(
            e.starts_with("hr.rhai:2:2: emit_group: the group has no `id`"),
            "{e}"
        );
    }

    #[test]
    fn a_refused_batch_stops_the_script() {
        let sink: Sink = Box::new(|_| Err("batch over the cap".into()));
        let e = run(
            Rc::new(FakeHost::default()),
            "s.rhai",
            "for i in 0..6000 { emit_user(#{ username: `u${i}` }); } print(\"unreachable\");",
            10_000_000,
            sink,
        )
        .unwrap_err();
        assert!(e.contains("batch over the cap"), "{e}");
    }
}
