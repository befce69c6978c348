//! `emit`: batches a plugin hands over during a call, spooled outside the plugin.
//!
//! A script source runs its whole script in one `next-batch` call and pushes each full batch
//! here. Each is checked against the same caps as a returned batch and written to an
//! anonymous temporary file (not kept in memory), and the runtime hands them to the run, in
//! order, before the batch the call returned. Host memory stays at about one batch.

use crate::bindings::roster::plugin::emit::{self, Host};
use crate::bindings::Batch;
use anyhow::{Context, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use wasmtime::component::{HasSelf, Linker};

/// One plugin's spool: one file, written at its end and read from the front.
#[derive(Debug, Default)]
pub struct EmitCtx {
    file: Option<File>,
    write_at: u64,
    read_at: u64,
    /// Batches written and not yet read back.
    pending: usize,
    /// Why a pushed batch was refused: the call fails with it, whatever the plugin returns.
    pub refused: Option<Refused>,
}

/// Why the host refused a pushed batch.
#[derive(Debug, Clone)]
pub enum Refused {
    OverCap(crate::batch::OverCap),
    /// The spool failed (a full disk): the message says how.
    Spool(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::OverCap(e) => e.fmt(f),
            Refused::Spool(m) => f.write_str(m),
        }
    }
}

impl EmitCtx {
    fn spool(&mut self, batch: &Batch) -> Result<()> {
        if self.file.is_none() {
            self.file = Some(tempfile::tempfile().context("creating the batch spool")?);
        }
        let file = self.file.as_mut().expect("created above");
        file.seek(SeekFrom::Start(self.write_at))?;
        let mut w = BufWriter::new(&mut *file);
        // One JSON document per line: serde_json escapes newlines inside strings.
        serde_json::to_writer(&mut w, batch)?;
        w.write_all(b"\n")?;
        w.flush()?;
        drop(w);
        self.write_at = file.stream_position()?;
        self.pending += 1;
        Ok(())
    }

    /// Batches pushed and not yet taken.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// The next spooled batch, oldest first. The spool's file is freed when the last one is
    /// taken.
    pub fn take(&mut self) -> Result<Option<Batch>> {
        if self.pending == 0 {
            return Ok(None);
        }
        let file = self.file.as_mut().context("the batch spool is gone")?;
        file.seek(SeekFrom::Start(self.read_at))?;
        let mut line = String::new();
        BufReader::new(&mut *file)
            .read_line(&mut line)
            .context("reading the batch spool")?;
        self.read_at += line.len() as u64;
        let batch = serde_json::from_str(&line).context("reading the batch spool")?;
        self.pending -= 1;
        if self.pending == 0 {
            *self = EmitCtx {
                refused: self.refused.take(),
                ..Default::default()
            };
        }
        Ok(Some(batch))
    }
}

pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> &mut EmitCtx,
) -> Result<()> {
    emit::add_to_linker::<T, HasSelf<EmitCtx>>(linker, view)?;
    Ok(())
}

impl Host for EmitCtx {
    fn push(&mut self, batch: Batch) -> Result<(), String> {
        if let Some(e) = &self.refused {
            return Err(e.to_string());
        }
        if let Err(e) = crate::batch::check(&batch) {
            let message = e.to_string();
            self.refused = Some(Refused::OverCap(e));
            return Err(message);
        }
        self.spool(&batch).map_err(|e| {
            let message = format!("spooling a batch: {e:#}");
            self.refused = Some(Refused::Spool(message.clone()));
            message
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::{Entry, ObjectKind, SourceObject};

    fn batch(ids: &[&str]) -> Batch {
        Batch {
            columns: Vec::new(),
            entries: ids
                .iter()
                .map(|id| {
                    Entry::Object(SourceObject {
                        kind: ObjectKind::User,
                        id: id.to_string(),
                        locator: None,
                        attributes: Vec::new(),
                        member_of: vec!["line\nbreak".into()],
                        members: Vec::new(),
                        parent: None,
                    })
                })
                .collect(),
        }
    }

    fn ids(b: &Batch) -> Vec<String> {
        b.entries
            .iter()
            .map(|e| match e {
                Entry::Object(o) => o.id.clone(),
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn pushed_batches_come_back_in_order_and_the_spool_resets() {
        let mut ctx = EmitCtx::default();
        ctx.push(batch(&["a", "b"])).unwrap();
        ctx.push(batch(&["c"])).unwrap();
        assert_eq!(ctx.pending(), 2);
        assert_eq!(ids(&ctx.take().unwrap().unwrap()), ["a", "b"]);
        ctx.push(batch(&["late"])).unwrap();
        assert_eq!(ids(&ctx.take().unwrap().unwrap()), ["c"]);
        assert_eq!(ids(&ctx.take().unwrap().unwrap()), ["late"]);
        assert!(ctx.take().unwrap().is_none());
        ctx.push(batch(&["d"])).unwrap();
        let b = ctx.take().unwrap().unwrap();
        assert_eq!(ids(&b), ["d"]);
        let Entry::Object(o) = &b.entries[0] else {
            unreachable!()
        };
        assert_eq!(o.member_of, ["line\nbreak"]);
    }

    #[test]
    fn a_batch_over_the_cap_is_refused_and_remembered() {
        let mut ctx = EmitCtx::default();
        let many: Vec<String> = (0..=crate::batch::MAX_BATCH_ENTRIES)
            .map(|i| i.to_string())
            .collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let e = ctx.push(batch(&refs)).unwrap_err();
        assert!(e.contains("10001 entries"), "{e}");
        assert!(ctx.refused.is_some());
        assert!(ctx.push(batch(&["a"])).is_err());
        assert_eq!(ctx.pending(), 0);
    }
}
