//! Driving a plugin through one run: `open`, `next-batch` until the end, `finish`, each
//! entry handed to an [`EntrySink`] as it arrives.

use super::entry::{misfit_reason, Incoming};
use crate::runtime::{Entry, ObjectKind, Plugin, Row, RunRequest};
use anyhow::Result;
use std::sync::Arc;

/// Receives a run's entries, like ripgrep's `Sink` receives matches: every method may stop
/// the run by returning `Ok(false)` (the plugin is not asked to finish) or fail it with an
/// error. Calls come in order: per batch `batch`, then its entries, then `batch_end`.
pub trait EntrySink {
    /// A batch begins; a row of it has one value list per column.
    fn batch(&mut self, _columns: &Arc<[String]>) -> Result<bool> {
        Ok(true)
    }
    /// A user or a group, as a row or an object.
    fn entry(&mut self, entry: Incoming) -> Result<bool>;
    /// The source says a user or group is gone (a delta run).
    fn removed(&mut self, kind: ObjectKind, id: String) -> Result<bool>;
    /// An entry the plugin could not read, at `locator`, and why.
    fn failed(&mut self, locator: String, reason: String) -> Result<bool>;
    /// A row that does not fit its batch's columns. By default a failed entry.
    fn misfit(&mut self, row: Row, columns: usize) -> Result<bool> {
        let reason = misfit_reason(row.values.len(), columns);
        self.failed(row.locator.unwrap_or(row.id), reason)
    }
    /// The batch's entries were all handed over.
    fn batch_end(&mut self) -> Result<bool> {
        Ok(true)
    }
}

/// How a driven run ended.
#[derive(Debug)]
pub enum RunEnd {
    /// The plugin finished: the mode it ran in, the cursor for the next run, its notices.
    Finished(crate::runtime::RunEnd),
    /// The sink stopped the run early.
    Stopped,
}

/// Runs `plugin` once with `request`, handing every entry to `sink`. A failed call is a
/// [`crate::runtime::CallError`] in the error; so is anything the sink returns.
pub fn drive(
    plugin: &mut Plugin,
    request: &RunRequest,
    sink: &mut dyn EntrySink,
) -> Result<RunEnd> {
    let session = plugin.open(request)?;
    let mut busy = std::time::Duration::ZERO;
    let mut t = std::time::Instant::now();
    while let Some(batch) = plugin.next_batch(&session)? {
        busy += t.elapsed();
        let columns: Arc<[String]> = batch.columns.into();
        if !(sink.batch(&columns)?
            && hand_over(batch.entries, &columns, sink)?
            && sink.batch_end()?)
        {
            return Ok(RunEnd::Stopped);
        }
        t = std::time::Instant::now();
    }
    tracing::debug!("plugin busy {busy:?}");
    Ok(RunEnd::Finished(plugin.finish(&session)?))
}

fn hand_over(
    entries: Vec<Entry>,
    columns: &Arc<[String]>,
    sink: &mut dyn EntrySink,
) -> Result<bool> {
    for e in entries {
        let go_on = match e {
            Entry::Object(o) => sink.entry(Incoming::Object(o))?,
            Entry::Row(r) if r.values.len() != columns.len() => sink.misfit(r, columns.len())?,
            Entry::Row(r) => sink.entry(Incoming::Row(columns.clone(), r))?,
            Entry::Removed(r) => sink.removed(r.kind, r.id)?,
            Entry::Failed(f) => sink.failed(f.locator, f.reason)?,
        };
        if !go_on {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::runtime::{RunMode, Runtime, SourceObject};

    /// What the sink was handed, in order; it stops after `stop_after` entries.
    #[derive(Default)]
    struct Log {
        events: Vec<String>,
        stop_after: Option<usize>,
        entries: usize,
    }

    impl EntrySink for Log {
        fn batch(&mut self, columns: &Arc<[String]>) -> Result<bool> {
            self.events.push(format!("batch {}", columns.join(",")));
            Ok(true)
        }
        fn entry(&mut self, entry: Incoming) -> Result<bool> {
            let row = matches!(entry, Incoming::Row(..));
            let obj = entry.into_object();
            let names: Vec<_> = obj.attributes.iter().map(|a| a.name.as_str()).collect();
            self.events.push(format!(
                "{} {} {} [{}]",
                if row { "row" } else { "object" },
                obj.id,
                obj.locator.as_deref().unwrap_or("-"),
                names.join(",")
            ));
            self.entries += 1;
            Ok(self.stop_after != Some(self.entries))
        }
        fn removed(&mut self, kind: ObjectKind, id: String) -> Result<bool> {
            self.events.push(format!("removed {kind:?} {id}"));
            Ok(true)
        }
        fn failed(&mut self, locator: String, reason: String) -> Result<bool> {
            self.events.push(format!("failed {locator}: {reason}"));
            Ok(true)
        }
        fn batch_end(&mut self) -> Result<bool> {
            self.events.push("end".into());
            Ok(true)
        }
    }

    fn row(id: &str, values: usize) -> Entry {
        Entry::Row(Row {
            kind: ObjectKind::User,
            id: id.into(),
            locator: Some(format!("line {id}")),
            values: vec![vec!["v".to_string()]; values],
            member_of: Vec::new(),
            members: Vec::new(),
            parent: None,
        })
    }

    #[test]
    fn rows_objects_removals_and_misfits_reach_the_sink_in_order() {
        let columns: Arc<[String]> = vec!["username".to_string(), "mail".to_string()].into();
        let group = Entry::Object(SourceObject {
            kind: ObjectKind::Group,
            id: "g".into(),
            locator: None,
            attributes: Vec::new(),
            member_of: Vec::new(),
            members: Vec::new(),
            parent: None,
        });
        let removed = Entry::Removed(crate::bindings::roster::plugin::types::Removal {
            kind: ObjectKind::User,
            id: "gone".into(),
        });
        let mut log = Log::default();
        let entries = vec![row("2", 2), row("3", 1), group, removed];
        assert!(hand_over(entries, &columns, &mut log).unwrap());
        assert_eq!(
            log.events,
            [
                "row 2 line 2 [username,mail]",
                // A misfit is a failed entry unless the sink says otherwise.
                "failed line 3: the plugin sent a row that does not fit its batch's columns \
                 (1 value lists, 2 columns)",
                "object g - []",
                "removed ObjectKind::User gone",
            ]
        );
    }

    #[test]
    fn a_sink_that_says_stop_stops_the_batch() {
        let columns: Arc<[String]> = vec!["username".to_string()].into();
        let mut log = Log {
            stop_after: Some(1),
            ..Default::default()
        };
        assert!(!hand_over(vec![row("1", 1), row("2", 1)], &columns, &mut log).unwrap());
        assert_eq!(log.events, ["row 1 line 1 [username]"]);
    }

    fn csv_plugin(dir: &std::path::Path, csv: &str) -> (super::super::Prepared, RunRequest) {
        std::fs::write(dir.join("users.csv"), csv).unwrap();
        let cfg = Config::parse(
            "[sources.p]\nplugin = 'csv'\n[sources.p.config]\npath = 'users.csv'\n",
            dir,
        )
        .unwrap();
        let rt = Runtime::new(dir.join("cache")).unwrap();
        let prepared = super::super::prepare(&cfg, &cfg.sources[0], None, &rt).unwrap();
        let request = RunRequest {
            config: prepared.config_json.clone(),
            mode: RunMode::Full,
            cursor: None,
        };
        (prepared, request)
    }

    #[test]
    fn a_real_plugin_is_driven_to_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let (mut p, request) = csv_plugin(dir.path(), "username,mail\nalice,a@x\n\"bob,b@x\n");
        let mut log = Log::default();
        let RunEnd::Finished(end) = drive(&mut p.plugin, &request, &mut log).unwrap() else {
            panic!("the sink never stops")
        };
        assert_eq!(end.mode, RunMode::Full);
        assert_eq!(log.events.first().unwrap(), "batch username,mail");
        assert!(log
            .events
            .contains(&"row alice line 2 [username,mail]".to_string()));
        assert!(
            log.events.iter().any(|e| e.starts_with("failed line 3")),
            "{:?}",
            log.events
        );
        assert_eq!(log.events.last().unwrap(), "end");
    }

    #[test]
    fn a_run_the_sink_stops_is_not_finished() {
        let dir = tempfile::tempdir().unwrap();
        let (mut p, request) = csv_plugin(dir.path(), "username\nalice\nbob\n");
        let mut log = Log {
            stop_after: Some(1),
            ..Default::default()
        };
        let end = drive(&mut p.plugin, &request, &mut log).unwrap();
        assert!(matches!(end, RunEnd::Stopped), "{end:?}");
        assert_eq!(
            log.events,
            ["batch username", "row alice line 2 [username]"]
        );
    }
}
