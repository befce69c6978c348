//! One source's run inside its transaction: the plugin is driven on one thread, a mapping
//! script (if any) runs on a second, and users are mapped and staged into SQLite on the
//! caller's. Bounded channels keep at most a few batches in flight, so memory stays bounded.

use super::{SyncFlags, SyncObserver};
use crate::config::SourceConfig;
use crate::mapping::Mapper;
use crate::runtime::{ObjectKind, Plugin, RunMode, RunRequest};
use crate::scripts::{MappingStage, Scripted};
use crate::session::{self, EntrySink, Incoming};
use crate::store::{Outcome, Run};
use anyhow::{anyhow, Result};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

/// What the run needs to know of its source.
pub(super) struct Context<'a> {
    pub src: &'a SourceConfig,
    pub flags: SyncFlags,
    pub mapper: &'a Mapper,
    /// Warn about attributes that fill no field (see `SeenNames::notices`).
    pub warn_unused: bool,
}

/// Runs the plugin into `run` and merges. Any error rolls the run's transaction back.
pub(super) fn run(
    ctx: &Context,
    plugin: &mut Plugin,
    request: &RunRequest,
    stage: Option<&mut MappingStage>,
    mut run: Run<'_>,
    observer: &mut dyn SyncObserver,
) -> Result<Outcome> {
    let (src, flags, mapper) = (ctx.src, ctx.flags, ctx.mapper);
    let started = std::time::Instant::now();
    std::thread::scope(|scope| -> Result<Outcome> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Item>>(2);
        // A mapping script runs on a thread of its own between the two, so reading,
        // scripting and staging overlap.
        let (tx, script) = match stage {
            None => (tx, None),
            Some(stage) => {
                let (to_script, from_reader) = std::sync::mpsc::sync_channel::<Vec<Item>>(2);
                let script = scope.spawn(move || -> Result<()> {
                    let mut busy = std::time::Duration::ZERO;
                    let mut users = 0u64;
                    for items in from_reader {
                        let t = std::time::Instant::now();
                        users += items.iter().filter(|i| matches!(i, Item::User(_))).count() as u64;
                        let items = scripted(stage, items)?;
                        busy += t.elapsed();
                        if tx.send(items).is_err() {
                            anyhow::bail!("staging stopped");
                        }
                    }
                    tracing::debug!(
                        "mapping script busy {busy:?} for {users} users ({:.1} µs per user)",
                        busy.as_secs_f64() * 1e6 / users.max(1) as f64
                    );
                    Ok(())
                });
                (to_script, Some(script))
            }
        };
        let reader = scope.spawn(move || -> Result<session::RunEnd> {
            let mut sink = Batches {
                tx,
                items: Vec::new(),
            };
            session::drive(plugin, request, &mut sink)
        });
        let mut seen = 0u64;
        let mut names = SeenNames::default();
        let staged = (|| -> Result<()> {
            let mut busy = std::time::Duration::ZERO;
            for items in &rx {
                let t = std::time::Instant::now();
                seen += items.len() as u64;
                for item in items {
                    names.note(&item);
                    item.stage(&mut run, mapper)?;
                }
                busy += t.elapsed();
                observer.entries_read(&src.name, seen);
                if observer.cancelled() {
                    return Err(super::Cancelled.into());
                }
            }
            tracing::debug!("staging thread busy {busy:?}");
            Ok(())
        })();
        // On a staging error the reader (and the script) stop at their next send.
        drop(rx);
        let end = reader
            .join()
            .map_err(|_| anyhow!("the plugin thread panicked"))?;
        staged?;
        // A script error comes before the reader's "staging stopped" it caused.
        if let Some(script) = script {
            script
                .join()
                .map_err(|_| anyhow!("the mapping script thread panicked"))??;
        }
        let mut end = match end? {
            session::RunEnd::Finished(end) => end,
            session::RunEnd::Stopped => anyhow::bail!("staging stopped"),
        };
        end.notices
            .extend(names.notices(mapper, &src.config, ctx.warn_unused));
        tracing::debug!(
            "source {}: {seen} entries read and staged in {:?}",
            src.name,
            started.elapsed()
        );
        for n in &end.notices {
            tracing::warn!("source {}: {n}", src.name);
            observer.notice(&src.name, n);
        }
        if observer.cancelled() {
            return Err(super::Cancelled.into());
        }
        observer.merging(&src.name, seen);
        run.finish(
            end.mode == RunMode::Full,
            end.cursor,
            end.notices,
            flags.force,
        )
    })
}

/// The plugin thread's sink: a batch's entries, as items, go over the channel at its end.
struct Batches {
    tx: SyncSender<Vec<Item>>,
    items: Vec<Item>,
}

impl Batches {
    fn push(&mut self, item: Item) -> Result<bool> {
        self.items.push(item);
        Ok(true)
    }
}

impl EntrySink for Batches {
    fn entry(&mut self, entry: Incoming) -> Result<bool> {
        if entry.kind() == ObjectKind::User {
            return self.push(Item::User(entry));
        }
        let obj = entry.into_object();
        self.push(Item::Group {
            name: crate::mapping::group_name(&obj),
            anchor: obj.id,
            parent: obj.parent,
            member_of: obj.member_of,
            members: obj.members,
        })
    }

    fn removed(&mut self, kind: ObjectKind, anchor: String) -> Result<bool> {
        let kind = if kind == ObjectKind::User {
            "user"
        } else {
            "group"
        };
        self.push(Item::Removed { kind, anchor })
    }

    fn failed(&mut self, locator: String, reason: String) -> Result<bool> {
        self.push(Item::Failed { locator, reason })
    }

    fn batch_end(&mut self) -> Result<bool> {
        if self.tx.send(std::mem::take(&mut self.items)).is_err() {
            anyhow::bail!("staging stopped");
        }
        Ok(true)
    }
}

/// The attribute names a source sent with its users, for one warning per run about those
/// that fill nothing (a misspelt header) and about a password column.
#[derive(Default)]
struct SeenNames {
    names: indexmap::IndexSet<String>,
    /// A batch's columns are noted once, not per row.
    last_columns: Option<Arc<[String]>>,
}

impl SeenNames {
    fn note(&mut self, item: &Item) {
        let Item::User(incoming) = item else { return };
        if let Incoming::Row(columns, _) = incoming {
            if (self.last_columns.as_ref()).is_some_and(|l| Arc::ptr_eq(l, columns)) {
                return;
            }
            self.last_columns = Some(columns.clone());
        }
        for name in incoming.names() {
            self.add(name);
        }
    }

    fn add(&mut self, name: &str) {
        if !self.names.contains(name) {
            self.names.insert(name.to_string());
        }
    }

    /// Names in the connector's own config (such as a CSV `id_column`) count as used.
    fn notices(&self, mapper: &Mapper, config: &toml::Table, warn_unused: bool) -> Vec<String> {
        let named = |n: &str| {
            config.values().any(|v| match v {
                toml::Value::String(s) => s == n,
                toml::Value::Array(a) => a.iter().any(|v| v.as_str() == Some(n)),
                _ => false,
            })
        };
        let mut notices = Vec::new();
        if let Some(p) = (self.names.iter())
            .find(|n| crate::mapping::normalise_name(n) == crate::mapping::PASSWORD)
        {
            notices.push(format!(
                "column {p:?} is not imported: roster never syncs passwords. Leave it out of \
                 the export"
            ));
        }
        let unused: Vec<&str> = (mapper.unused(self.names.iter().map(String::as_str)))
            .into_iter()
            .filter(|n| warn_unused && !named(n))
            .collect();
        if !unused.is_empty() {
            let list: Vec<String> = unused.iter().map(|n| format!("{n:?}")).collect();
            notices.push(format!(
                "{} fill{} no roster field and no [map] template: {}. Check the spelling, or \
                 use {} in a template",
                if unused.len() == 1 {
                    "this attribute"
                } else {
                    "these attributes"
                },
                if unused.len() == 1 { "s" } else { "" },
                list.join(", "),
                if unused.len() == 1 { "it" } else { "them" },
            ));
        }
        notices
    }
}

/// Runs a batch's users through the mapping script; other items pass as they are.
fn scripted(stage: &mut MappingStage, items: Vec<Item>) -> Result<Vec<Item>> {
    let mut users = Vec::new();
    let mut slots: Vec<Option<Item>> = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Item::User(incoming) => {
                users.push(incoming.into_object());
                slots.push(None);
            }
            other => slots.push(Some(other)),
        }
    }
    let mut results = stage.map(users)?.into_iter();
    Ok(slots
        .into_iter()
        .map(|slot| {
            slot.unwrap_or_else(|| match results.next().expect("one result per user") {
                Scripted::Keep(o) => Item::User(Incoming::Object(o)),
                Scripted::Drop { id, locator } => Item::Dropped {
                    anchor: id,
                    locator,
                },
                Scripted::Failed { locator, reason } => Item::Failed { locator, reason },
            })
        })
        .collect())
}

/// One entry from the plugin thread, to be staged on the database thread.
enum Item {
    User(Incoming),
    Group {
        anchor: String,
        name: String,
        parent: Option<String>,
        member_of: Vec<String>,
        members: Vec<String>,
    },
    Removed {
        kind: &'static str,
        anchor: String,
    },
    Failed {
        locator: String,
        reason: String,
    },
    /// A user the mapping script dropped.
    Dropped {
        anchor: String,
        locator: String,
    },
}

impl Item {
    /// Users are mapped here, on the database thread: it balances the two threads' work.
    fn stage(self, run: &mut crate::store::Run<'_>, mapper: &Mapper) -> Result<()> {
        match self {
            Item::User(incoming) => {
                let raw = incoming.raw_hash(mapper);
                if run.stage_unchanged(raw, incoming.locator()) {
                    return run.stage_edges(incoming.id(), incoming.member_of(), &[]);
                }
                let obj = incoming.into_object();
                let locator = obj.locator.as_deref().unwrap_or(&obj.id);
                match mapper.map(&obj) {
                    Ok(m) => {
                        run.stage(locator, &obj.id, raw, m)?;
                        run.stage_edges(&obj.id, &obj.member_of, &[])
                    }
                    Err(reason) => run.fail(locator, &reason),
                }
            }
            Item::Group {
                anchor,
                name,
                parent,
                member_of,
                members,
            } => {
                run.stage_group(&anchor, &anchor, &name, parent.as_deref())?;
                run.stage_edges(&anchor, &member_of, &members)
            }
            Item::Removed { kind, anchor } => run.stage_removal(kind, &anchor),
            Item::Failed { locator, reason } => run.fail(&locator, &reason),
            Item::Dropped { anchor, locator } => run.stage_dropped(&anchor, &locator),
        }
    }
}
