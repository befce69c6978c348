//! Reading files the admin granted: keys of type `file` and the source's `files = [...]`.
//! Needs the `files` capability.

use crate::bindings::roster::plugin::files;
pub use crate::bindings::roster::plugin::files::FileError;
use crate::Error;

/// Bytes asked of the host per read: few calls across the boundary, whatever the reader's
/// own buffer size.
const CHUNK: u32 = 256 * 1024;

/// An open granted file; implements [`std::io::Read`], fetching from the host in chunks of
/// 256 KiB.
pub struct File {
    file: files::File,
    chunk: Vec<u8>,
    pos: usize,
    eof: bool,
}

/// Opens a granted file (relative paths resolve against the roster config's directory).
pub fn open(path: &str) -> Result<File, Error> {
    File::open(path).map_err(|e| error(path, e))
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
    /// Opens a granted file, with the host's own error: for a connector that words its
    /// errors itself ([`open`] makes them typed errors).
    pub fn open(path: &str) -> Result<File, FileError> {
        files::open(path).map(|file| File {
            file,
            chunk: Vec::new(),
            pos: 0,
            eof: false,
        })
    }

    /// Total size in bytes.
    pub fn size(&self) -> u64 {
        self.file.size()
    }
}

impl std::io::Read for File {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pos == self.chunk.len() {
            if self.eof {
                return Ok(0);
            }
            self.chunk = (self.file.read(CHUNK)).map_err(|e| std::io::Error::other(message(e)))?;
            self.pos = 0;
            if self.chunk.is_empty() {
                self.eof = true;
                return Ok(0);
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
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
