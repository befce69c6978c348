//! `files`: read-only access to the files the admin granted to one source.

use crate::runtime::roster::plugin::files::{FileError, Host, HostFile};
use crate::runtime::HostState;
use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use wasmtime::component::Resource;

/// Largest single read.
const MAX_READ: u32 = 1 << 20;

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
        let p = self.resolve(path);
        self.files.insert(p.canonicalize().unwrap_or(p));
    }

    fn resolve(&self, path: &str) -> PathBuf {
        self.base.join(path)
    }

    /// Checks a plugin's request. Canonicalising first defeats `..` and symlink escapes.
    fn check(&self, path: &str) -> Result<PathBuf, FileError> {
        let p = self.resolve(path);
        let canon = p.canonicalize();
        let key = canon.as_ref().map(PathBuf::as_path).unwrap_or(&p);
        if !self.files.contains(key) {
            return Err(FileError::Denied(format!(
                "{path} is not granted to this source"
            )));
        }
        canon.map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => FileError::NotFound(path.to_string()),
            _ => FileError::Io(format!("{path}: {e}")),
        })
    }
}

/// An open granted file.
pub struct OpenFile {
    file: File,
    size: u64,
    name: String,
}

impl Host for HostState {
    fn open(&mut self, path: String) -> Result<Resource<OpenFile>, FileError> {
        let real = self.grants.check(&path)?;
        let file = File::open(&real).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => FileError::NotFound(path.clone()),
            _ => FileError::Io(format!("{path}: {e}")),
        })?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        self.table()
            .push(OpenFile {
                file,
                size,
                name: path,
            })
            .map_err(|e| FileError::Io(e.to_string()))
    }
}

impl HostFile for HostState {
    fn read(&mut self, file: Resource<OpenFile>, max: u32) -> Result<Vec<u8>, FileError> {
        let f = self
            .table()
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
        self.table().get(&file).map(|f| f.size).unwrap_or(0)
    }

    fn drop(&mut self, file: Resource<OpenFile>) -> wasmtime::Result<()> {
        self.table().delete(file)?;
        Ok(())
    }
}
