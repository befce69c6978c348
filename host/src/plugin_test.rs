//! `roster plugin test`: runs a connector in the same sandbox, with the same limits and
//! grants as a sync, without touching a database; maps its users as a sync would, and checks
//! the contract a sync relies on.

use crate::config::{Config, ConfigError, SourceConfig};
use crate::mapping::Mapper;
use crate::runtime::{CallError, ObjectKind, Row, RunMode, RunRequest, Runtime, SourceObject};
use crate::session::{self, EntrySink, Incoming, Prepared};
use crate::store::Store;
use anyhow::Result;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// The rules a connector's output must keep.
pub const RULES: &[(&str, &str)] = &[
    ("unique-ids", "ids are unique per kind within a run"),
    (
        "member-references",
        "member, member-of and parent references of a full run resolve to objects it lists",
    ),
    (
        "row-columns",
        "every row has one value list per batch column",
    ),
    (
        "batch-caps",
        "batches stay under the host's entry and byte caps",
    ),
    (
        "delta-cursor",
        "a run that ends in delta mode returns a cursor",
    ),
];

/// A broken rule, with what broke it.
#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub rule: &'static str,
    pub detail: String,
}

/// What the plugin says about itself.
#[derive(Debug, Serialize)]
pub struct PluginSummary {
    pub name: String,
    pub version: String,
    pub description: String,
    pub sha256: String,
    pub capabilities: Vec<(String, String)>,
    pub config_keys: Vec<String>,
}

/// A user as `roster users list` shows it.
#[derive(Debug, Serialize)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub full_name: Option<String>,
    pub email: Option<String>,
    pub groups: Vec<String>,
    pub active: bool,
}

#[derive(Debug, Serialize)]
pub struct GroupView {
    pub id: String,
    pub name: String,
    pub parent: Option<String>,
    pub members: usize,
}

#[derive(Debug, Serialize)]
pub struct FailedView {
    pub entry: String,
    pub reason: String,
}

/// One run (full, then delta when the full run returned a cursor).
#[derive(Debug, Default, Serialize)]
pub struct RunReport {
    pub requested: &'static str,
    pub mode: &'static str,
    pub cursor: Option<String>,
    pub batches: u64,
    pub users: u64,
    pub groups: u64,
    pub removed: u64,
    /// The first users, mapped.
    pub shown_users: Vec<UserView>,
    pub shown_groups: Vec<GroupView>,
    /// Entries the plugin or the mapping could not use.
    pub failed: Vec<FailedView>,
    pub notices: Vec<String>,
    pub millis: u64,
    pub peak_memory: u64,
    /// The run failed as a whole (a plugin error, a trap, a limit).
    pub error: Option<String>,
}

/// How long the plugin took to start, in milliseconds.
#[derive(Debug, Serialize)]
pub struct Startup {
    /// Compiling the component, or loading it from the compile cache.
    pub load_ms: f64,
    /// Instantiating it and its first `info` call.
    pub first_info_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub plugin: PluginSummary,
    pub startup: Startup,
    /// Why the source config does not validate against the plugin's keys.
    pub config_error: Option<String>,
    pub runs: Vec<RunReport>,
    pub violations: Vec<Violation>,
}

impl Report {
    /// Config valid, runs complete, contract kept.
    pub fn passed(&self) -> bool {
        self.config_error.is_none()
            && self.violations.is_empty()
            && self.runs.iter().all(|r| r.error.is_none())
    }
}

/// Tests the plugin of `src` (its config, limits and map) and shows the first `limit` users
/// and groups of each run. `store` is read only to find installed plugins.
pub fn test(
    cfg: &Config,
    src: &SourceConfig,
    store: Option<&Store>,
    rt: &Runtime,
    limit: usize,
) -> Result<Report> {
    let bytes = crate::plugins::resolve(&src.plugin, store, &cfg.local_base(), &cfg.dir)?;
    let ms = |t: std::time::Instant| t.elapsed().as_secs_f64() * 1000.0;
    let t = std::time::Instant::now();
    let component = rt.load(&bytes)?;
    let load_ms = ms(t);
    let t = std::time::Instant::now();
    let info = crate::plugins::inspect_loaded(rt, &component)?;
    let startup = Startup {
        load_ms,
        first_info_ms: ms(t),
    };
    let mut report = Report {
        startup,
        plugin: PluginSummary {
            name: info.name.clone(),
            version: info.version.clone(),
            description: info.description.clone(),
            sha256: crate::plugins::sha256(&bytes),
            capabilities: (info.capabilities.iter())
                .map(|c| (c.name.clone(), c.reason.clone()))
                .collect(),
            config_keys: info.config_keys.iter().map(|k| k.name.clone()).collect(),
        },
        config_error: None,
        runs: Vec::new(),
        violations: Vec::new(),
    };
    let setup = |report: &mut Report| -> Result<Option<(Prepared, Mapper)>> {
        let prepared = match session::prepare(cfg, src, store, rt) {
            Ok(p) => p,
            Err(e) if e.downcast_ref::<ConfigError>().is_some() => {
                report.config_error = Some(format!("{e:#}"));
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        // PINs are hashed with a throwaway key: nothing here is stored.
        let mapper = match session::mapping(src, &prepared.info.defaults, b"plugin-test".to_vec()) {
            Ok((_, m)) => m,
            Err(e) => {
                report.config_error = Some(e.to_string());
                return Ok(None);
            }
        };
        Ok(Some((prepared, mapper)))
    };
    let Some((prepared, mapper)) = setup(&mut report)? else {
        return Ok(report);
    };
    let full = run(prepared, &mapper, None, limit, &mut report.violations);
    let cursor = (full.error.is_none())
        .then(|| full.cursor.clone())
        .flatten();
    report.runs.push(full);
    if let Some(cursor) = cursor {
        // A fresh instance, as the next sync would have.
        if let Some((prepared, _)) = setup(&mut report)? {
            let delta = run(
                prepared,
                &mapper,
                Some(cursor),
                limit,
                &mut report.violations,
            );
            report.runs.push(delta);
        }
    }
    Ok(report)
}

/// (group id, name, parent, members, member-of) of a group a run listed.
type ListedGroup = (String, String, Option<String>, Vec<String>, Vec<String>);

/// Everything a run listed that the checks need after its end.
#[derive(Default)]
struct Seen {
    users: HashMap<String, String>,
    groups: HashMap<String, String>,
    group_list: Vec<ListedGroup>,
    /// (what refers, kind of reference, id referred to, must be a group).
    references: Vec<(String, &'static str, String, bool)>,
    /// Users shown, with their own member-of ids.
    shown: Vec<(UserView, Vec<String>)>,
}

fn run(
    mut prepared: Prepared,
    mapper: &Mapper,
    cursor: Option<String>,
    limit: usize,
    violations: &mut Vec<Violation>,
) -> RunReport {
    let delta = cursor.is_some();
    let mut r = RunReport {
        requested: if delta { "delta" } else { "full" },
        mode: "full",
        ..Default::default()
    };
    let request = RunRequest {
        config: prepared.config_json.clone(),
        mode: if delta { RunMode::Delta } else { RunMode::Full },
        cursor,
    };
    let mut seen = Seen::default();
    let mut broken = Vec::new();
    let started = std::time::Instant::now();
    let plugin = &mut prepared.plugin;
    let mut sink = Checks {
        mapper,
        limit,
        r: &mut r,
        seen: &mut seen,
        broken: &mut broken,
    };
    let outcome = session::drive(plugin, &request, &mut sink).map(|end| match end {
        session::RunEnd::Finished(end) => end,
        session::RunEnd::Stopped => unreachable!("the checks never stop a run"),
    });
    r.millis = started.elapsed().as_millis() as u64;
    r.peak_memory = plugin.peak_memory();
    match outcome {
        Ok(end) => {
            r.mode = match end.mode {
                RunMode::Full => "full",
                RunMode::Delta => "delta",
            };
            if end.mode == RunMode::Delta && end.cursor.is_none() {
                broken.push(Violation {
                    rule: "delta-cursor",
                    detail: format!(
                        "the {} run ended in delta mode without a cursor: the next run could \
                         not continue from it",
                        r.requested
                    ),
                });
            }
            r.cursor = end.cursor;
            r.notices = end.notices;
            if end.mode == RunMode::Full {
                broken.extend(dangling(&seen));
            }
        }
        Err(e) => match e.downcast::<CallError>() {
            Ok(e @ CallError::BatchCap(_)) => broken.push(Violation {
                rule: "batch-caps",
                detail: e.to_string(),
            }),
            Ok(e) => r.error = Some(e.message()),
            Err(e) => r.error = Some(format!("{e:#}")),
        },
    }
    // A user's groups by the paths a sync would store (`Staff|IT`).
    let paths: HashMap<String, String> = group_paths(&seen.group_list).into_iter().collect();
    for (mut user, member_of) in seen.shown {
        let listed_in = (seen.group_list.iter())
            .filter(|(_, _, _, members, _)| members.contains(&user.id))
            .map(|(id, ..)| id.as_str());
        for g in member_of.iter().map(String::as_str).chain(listed_in) {
            let name = paths.get(g).map(String::as_str).unwrap_or(g).to_string();
            if !user.groups.contains(&name) {
                user.groups.push(name);
            }
        }
        r.shown_users.push(user);
    }
    violations.extend(broken);
    r
}

/// The run's sink: counts, checks and shows what the plugin sends.
struct Checks<'a> {
    mapper: &'a Mapper,
    limit: usize,
    r: &'a mut RunReport,
    seen: &'a mut Seen,
    broken: &'a mut Vec<Violation>,
}

impl EntrySink for Checks<'_> {
    fn batch(&mut self, _columns: &std::sync::Arc<[String]>, _entries: usize) -> Result<bool> {
        self.r.batches += 1;
        Ok(true)
    }

    fn entry(&mut self, entry: Incoming) -> Result<bool> {
        let (mapper, limit) = (self.mapper, self.limit);
        object(
            entry.into_object(),
            mapper,
            limit,
            self.r,
            self.seen,
            self.broken,
        );
        Ok(true)
    }

    fn removed(&mut self, _kind: ObjectKind, _id: String) -> Result<bool> {
        self.r.removed += 1;
        Ok(true)
    }

    fn failed(&mut self, entry: String, reason: String) -> Result<bool> {
        self.r.failed.push(FailedView { entry, reason });
        Ok(true)
    }

    fn misfit(&mut self, row: Row, columns: usize) -> Result<bool> {
        self.broken.push(Violation {
            rule: "row-columns",
            detail: format!(
                "row {} has {} value lists for the batch's {} columns",
                row.locator.as_deref().unwrap_or(&row.id),
                row.values.len(),
                columns
            ),
        });
        Ok(true)
    }
}

/// The path of every group, as a sync places them: the same nesting edges (a group's
/// members and member-of among groups), sorted.
fn group_paths(list: &[ListedGroup]) -> Vec<(String, String)> {
    let groups: HashMap<String, (String, Option<String>)> = (list.iter())
        .map(|(id, name, parent, ..)| (id.clone(), (name.clone(), parent.clone())))
        .collect();
    let mut edges: Vec<(String, String)> = Vec::new();
    for (id, _, _, members, member_of) in list {
        edges.extend(members.iter().map(|m| (id.clone(), m.clone())));
        edges.extend(member_of.iter().map(|g| (g.clone(), id.clone())));
    }
    edges.retain(|(g, m)| groups.contains_key(g) && groups.contains_key(m));
    edges.sort();
    edges.dedup();
    crate::group_tree::paths(groups, edges)
}

/// Notes one user or group: counts it, checks its id, maps and keeps the first few to show.
fn object(
    obj: SourceObject,
    mapper: &Mapper,
    limit: usize,
    r: &mut RunReport,
    seen: &mut Seen,
    broken: &mut Vec<Violation>,
) {
    let locator = obj.locator.clone().unwrap_or_else(|| obj.id.clone());
    let (kind, ids) = match obj.kind {
        ObjectKind::User => ("user", &mut seen.users),
        ObjectKind::Group => ("group", &mut seen.groups),
    };
    if let Some(first) = ids.insert(obj.id.clone(), locator.clone()) {
        let at = if first == obj.id && locator == obj.id {
            String::new()
        } else {
            format!(" ({first}, {locator})")
        };
        broken.push(Violation {
            rule: "unique-ids",
            detail: format!("{kind} id {:?} appears twice{at}", obj.id),
        });
    }
    let what = format!("{kind} {locator}");
    for g in &obj.member_of {
        seen.references
            .push((what.clone(), "member-of", g.clone(), true));
    }
    if obj.kind == ObjectKind::Group {
        r.groups += 1;
        for m in &obj.members {
            seen.references
                .push((what.clone(), "member", m.clone(), false));
        }
        if let Some(p) = &obj.parent {
            seen.references
                .push((what.clone(), "parent", p.clone(), true));
        }
        let name = crate::mapping::group_name(&obj);
        if r.shown_groups.len() < limit {
            r.shown_groups.push(GroupView {
                id: obj.id.clone(),
                name: name.clone(),
                parent: obj.parent.clone(),
                members: obj.members.len(),
            });
        }
        seen.group_list
            .push((obj.id, name, obj.parent, obj.members, obj.member_of));
        return;
    }
    r.users += 1;
    match mapper.map(&obj) {
        Ok(m) if seen.shown.len() < limit => {
            let rec = m.record;
            let view = UserView {
                id: obj.id,
                username: rec.username,
                full_name: rec.full_name,
                email: rec.email,
                groups: rec.groups,
                active: rec.active,
            };
            seen.shown.push((view, obj.member_of));
        }
        Ok(_) => {}
        Err(reason) => r.failed.push(FailedView {
            entry: locator,
            reason,
        }),
    }
}

/// References of a full run to objects it does not list.
fn dangling(seen: &Seen) -> Vec<Violation> {
    let mut reported = HashSet::new();
    (seen.references.iter())
        .filter(|(_, _, id, group)| {
            !(seen.groups.contains_key(id) || (!group && seen.users.contains_key(id)))
        })
        .filter(|(what, how, id, _)| reported.insert((what.clone(), *how, id.clone())))
        .map(|(what, how, id, group)| Violation {
            rule: "member-references",
            detail: format!(
                "{what} names {id:?} as its {how}, but the run lists no {} with that id",
                if *group { "group" } else { "user or group" }
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_show_by_the_path_a_sync_stores() {
        let g = |id: &str, name: &str, parent: Option<&str>, members: &[&str], of: &[&str]| {
            (
                id.to_string(),
                name.to_string(),
                parent.map(String::from),
                members.iter().map(|m| m.to_string()).collect(),
                of.iter().map(|m| m.to_string()).collect(),
            )
        };
        let list = vec![
            g("s", "Staff", None, &["i"], &[]),
            g("i", "IT", None, &["u1"], &[]),
            g("n", "Net", None, &[], &["i"]),
            g("x", "Extra", Some("n"), &[], &[]),
        ];
        let paths: HashMap<String, String> = group_paths(&list).into_iter().collect();
        assert_eq!(paths["i"], "Staff|IT");
        assert_eq!(paths["n"], "Staff|IT|Net");
        assert_eq!(paths["x"], "Staff|IT|Net|Extra");
        assert_eq!(paths["s"], "Staff");
    }
}
