//! `files`: read-only access to the files the admin granted to one source.
//!
//! The policy ([`Grants`]) decides which paths a source may open; the context ([`FilesCtx`])
//! holds the grants and counts open files against a per-plugin cap, so a plugin cannot
//! exhaust the descriptors the host needs to commit.

use crate::bindings::roster::plugin::files::{self, FileError, Host, HostFile};
use anyhow::Result;
use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

/// Largest single read.
const MAX_READ: u32 = 1 << 20;
/// Files one plugin may hold open at once.
pub const MAX_OPEN_FILES: usize = 64;

/// The files one source may read, as canonical paths, and the directory relative paths
/// resolve against.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    base: PathBuf,
    files: HashSet<PathBuf>,
}

impl Grants {
    pub fn new(base: &Path) -> Self {
        Grants {
            base: base.to_path_buf(),
            files: HashSet::new(),
        }
    }

    /// Grant a path as written in the config. A path that does not exist yet is granted by
    /// its lexical absolute form, so the plugin gets a clear "not found".
    pub fn grant(&mut self, path: &str) {
        let p = self.base.join(path);
        self.files.insert(p.canonicalize().unwrap_or(p));
    }

    /// Checks a plugin's request and returns the real path to open. Canonicalising first
    /// defeats `..` and symlink escapes; only regular files pass, since opening a FIFO or a
    /// device could block the host outside any deadline.
    pub fn check(&self, path: &str) -> Result<PathBuf, FileError> {
        let p = self.base.join(path);
        let canon = p.canonicalize();
        let key = canon.as_ref().map(PathBuf::as_path).unwrap_or(&p);
        if !self.files.contains(key) {
            return Err(FileError::Denied(format!(
                "{path} is not granted to this source"
            )));
        }
        let real = canon.map_err(|e| io_error(path, e))?;
        match real.metadata() {
            Ok(m) if m.is_file() => Ok(real),
            Ok(_) => Err(FileError::Denied(format!("{path} is not a regular file"))),
            Err(e) => Err(io_error(path, e)),
        }
    }
}

fn io_error(path: &str, e: std::io::Error) -> FileError {
    match e.kind() {
        std::io::ErrorKind::NotFound => FileError::NotFound(path.to_string()),
        _ => FileError::Io(format!("{path}: {e}")),
    }
}

/// One plugin's file state: what it may open and how many files it holds.
#[derive(Debug, Default)]
pub struct FilesCtx {
    pub grants: Grants,
    /// The plugin declared the `files` capability; without it every open is denied, whatever
    /// the source config grants.
    pub declared: bool,
    open: usize,
}

impl FilesCtx {
    /// The context of a plugin that declared `files`, with what the config grants it.
    /// Without it (the default) every open is denied.
    pub fn granted(grants: Grants) -> Self {
        FilesCtx {
            grants,
            declared: true,
            open: 0,
        }
    }
}

/// The context and the store's resource table, borrowed for one host call.
pub struct FilesView<'a> {
    pub ctx: &'a mut FilesCtx,
    pub table: &'a mut ResourceTable,
}

/// Marker for linking `files` against a [`FilesView`].
pub struct Files;

impl HasData for Files {
    type Data<'a> = FilesView<'a>;
}

pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> FilesView<'_>,
) -> Result<()> {
    files::add_to_linker::<T, Files>(linker, view)?;
    Ok(())
}

/// An open granted file.
pub struct OpenFile {
    file: File,
    size: u64,
    name: String,
}

impl Host for FilesView<'_> {
    fn open(&mut self, path: String) -> Result<Resource<OpenFile>, FileError> {
        if !self.ctx.declared {
            return Err(FileError::Denied(format!(
                "{path}: this plugin did not declare the files capability, so no file is \
                 granted to it"
            )));
        }
        if self.ctx.open >= MAX_OPEN_FILES {
            return Err(FileError::Denied(format!(
                "{path}: this plugin already holds {MAX_OPEN_FILES} open files, the per-plugin \
                 limit; it must close files it no longer reads"
            )));
        }
        let real = self.ctx.grants.check(&path)?;
        let file = File::open(&real).map_err(|e| io_error(&path, e))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let handle = self
            .table
            .push(OpenFile {
                file,
                size,
                name: path,
            })
            .map_err(|e| FileError::Io(e.to_string()))?;
        self.ctx.open += 1;
        Ok(handle)
    }
}

impl HostFile for FilesView<'_> {
    fn read(&mut self, file: Resource<OpenFile>, max: u32) -> Result<Vec<u8>, FileError> {
        let f = self
            .table
            .get_mut(&file)
            .map_err(|e| FileError::Io(e.to_string()))?;
        let mut buf = vec![0; max.min(MAX_READ) as usize];
        let n = f
            .file
            .read(&mut buf)
            .map_err(|e| FileError::Io(format!("{}: {e}", f.name)))?;
        buf.truncate(n);
        Ok(buf)
    }

    fn size(&mut self, file: Resource<OpenFile>) -> u64 {
        self.table.get(&file).map(|f| f.size).unwrap_or(0)
    }

    fn drop(&mut self, file: Resource<OpenFile>) -> wasmtime::Result<()> {
        self.table.delete(file)?;
        self.ctx.open -= 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("users.csv"), "a\n").unwrap();
        std::fs::write(d.path().join("other.csv"), "b\n").unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        d
    }

    #[test]
    fn a_granted_file_is_allowed_by_any_spelling() {
        let d = dir();
        let mut g = Grants::new(d.path());
        g.grant("users.csv");
        assert!(g.check("users.csv").is_ok());
        assert!(g.check("./sub/../users.csv").is_ok());
        let abs = d.path().join("users.csv");
        assert!(g.check(abs.to_str().unwrap()).is_ok());
    }

    #[test]
    fn anything_else_is_denied() {
        let d = dir();
        let mut g = Grants::new(d.path());
        g.grant("users.csv");
        for p in ["other.csv", "../users.csv", "/etc/passwd", "sub", ""] {
            assert!(
                matches!(g.check(p), Err(FileError::Denied(_))),
                "{p} should be denied"
            );
        }
    }

    #[test]
    fn a_symlink_to_an_ungranted_file_is_denied() {
        let d = dir();
        std::os::unix::fs::symlink(d.path().join("other.csv"), d.path().join("link.csv")).unwrap();
        let mut g = Grants::new(d.path());
        g.grant("users.csv");
        assert!(matches!(g.check("link.csv"), Err(FileError::Denied(_))));
        // Granting the link grants what it points at, by its real path.
        g.grant("link.csv");
        assert!(g.check("other.csv").is_ok());
    }

    #[test]
    fn a_granted_missing_file_is_not_found() {
        let d = dir();
        let mut g = Grants::new(d.path());
        g.grant("later.csv");
        assert!(matches!(g.check("later.csv"), Err(FileError::NotFound(_))));
    }

    #[test]
    fn a_granted_directory_is_not_a_regular_file() {
        let d = dir();
        let mut g = Grants::new(d.path());
        g.grant("sub");
        let Err(FileError::Denied(m)) = g.check("sub") else {
            panic!("a directory must be refused")
        };
        assert!(m.contains("not a regular file"), "{m}");
    }

    #[test]
    fn open_files_are_capped_per_plugin_and_freed_on_drop() {
        let d = dir();
        let mut g = Grants::new(d.path());
        g.grant("users.csv");
        let mut ctx = FilesCtx::granted(g);
        let mut table = ResourceTable::new();
        let mut view = FilesView {
            ctx: &mut ctx,
            table: &mut table,
        };
        let mut held = Vec::new();
        for _ in 0..MAX_OPEN_FILES {
            held.push(view.open("users.csv".into()).unwrap());
        }
        let Err(FileError::Denied(m)) = view.open("users.csv".into()) else {
            panic!("the cap must refuse")
        };
        assert!(m.contains("per-plugin limit"), "{m}");
        HostFile::drop(&mut view, held.pop().unwrap()).unwrap();
        assert!(view.open("users.csv".into()).is_ok());
    }
}
