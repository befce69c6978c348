//! Reading files the admin granted: keys of type `file` and the source's `files = [...]`.
//! Needs the `files` capability.

use crate::bindings::roster::plugin::files::{self, FileError};
use crate::Error;

/// An open granted file; implements [`std::io::Read`].
pub struct File(files::File);

/// Opens a granted file (relative paths resolve against the roster config's directory).
pub fn open(path: &str) -> Result<File, Error> {
    files::open(path).map(File).map_err(|e| error(path, e))
}

/// The whole file.
pub fn read(path: &str) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut open(path)?, &mut out)
        .map_err(|e| Error::unavailable(format!("reading {path}: {e}")))?;
    Ok(out)
}

/// The whole file as UTF-8 text.
pub fn read_to_string(path: &str) -> Result<String, Error> {
    String::from_utf8(read(path)?)
        .map_err(|e| Error::bad_data(format!("{path} is not UTF-8 text: {e}")))
}

impl File {
    /// Total size in bytes.
    pub fn size(&self) -> u64 {
        self.0.size()
    }
}

impl std::io::Read for File {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let max = buf.len().min(1 << 20) as u32;
        let chunk = (self.0.read(max)).map_err(|e| std::io::Error::other(message(e)))?;
        // The host returns at most `max` bytes.
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        Ok(n)
    }
}

fn message(e: FileError) -> String {
    match e {
        FileError::Denied(m) => format!("denied: {m}"),
        FileError::NotFound(m) => format!("not found: {m}"),
        FileError::Io(m) => m,
    }
}

/// A file the admin must fix is a config error; an I/O failure may pass.
fn error(path: &str, e: FileError) -> Error {
    match e {
        FileError::Denied(m) => Error::config(format!("denied: {m}")),
        FileError::NotFound(_) => Error::config(format!("{path}: not found")),
        FileError::Io(m) => Error::unavailable(format!("{path}: {m}")),
    }
}
