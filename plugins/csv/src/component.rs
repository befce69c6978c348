//! The WebAssembly component: `roster:plugin/connector` on top of [`crate::reader`].

use std::cell::RefCell;
use std::io::{self, Read};

use crate::config::{Settings, MULTI_VALUE_COLUMNS_TOML};
use crate::reader::{self, CsvReader};
use crate::Error;

// The repository's wit/ directory, as copied by build.rs.
wit_bindgen::generate!({
    path: "../../wit",
    world: "source",
});

use exports::roster::plugin::connector::{
    Guest, GuestSession, RunEnd, RunRequest, Session, TestReport,
};
use roster::plugin::files::{self, FileError};
use roster::plugin::log::{log, Level};
use roster::plugin::types::{
    Attribute, Batch, Capability, ConfigKey, Entry, FailedEntry, KeyType, ObjectKind, PluginError,
    PluginInfo, Row, RunMode, SourceObject,
};

/// Entries per batch.
const BATCH_SIZE: usize = 2000;
/// Bytes asked of the host per read.
const READ_CHUNK: u32 = 256 * 1024;

struct Component;

export!(Component);

impl Guest for Component {
    type Session = CsvSession;

    fn info() -> PluginInfo {
        let key = |name: &str, ty, required, default: Option<&str>, description: &str| ConfigKey {
            name: name.to_string(),
            type_: ty,
            required,
            default: default.map(str::to_string),
            description: description.to_string(),
        };
        PluginInfo {
            name: "csv".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Reads users from a CSV file: one user per row, one attribute per column"
                .to_string(),
            config_keys: vec![
                key(
                    "path",
                    KeyType::File,
                    true,
                    None,
                    "The CSV file. Its first row names the columns.",
                ),
                key(
                    "delimiter",
                    KeyType::String,
                    false,
                    None,
                    "Field delimiter: one character such as \",\" or \";\", or \"tab\". \
                     Default: detected from the header row among comma, semicolon and tab.",
                ),
                key(
                    "encoding",
                    KeyType::String,
                    false,
                    Some("\"utf-8\""),
                    "Character encoding, such as \"utf-8\", \"windows-1250\", \"windows-1252\" or \
                     \"iso-8859-2\". A byte order mark at the start of the file takes precedence.",
                ),
                key(
                    "multi_value_separator",
                    KeyType::String,
                    false,
                    Some("\";\""),
                    "Separates the values of a multi-valued cell.",
                ),
                key(
                    "multi_value_columns",
                    KeyType::List,
                    false,
                    Some(MULTI_VALUE_COLUMNS_TOML),
                    "Columns whose cells hold several values, split on multi_value_separator. \
                     aliases, cards, pins and username_aliases are always multi-valued.",
                ),
                key(
                    "id_column",
                    KeyType::String,
                    false,
                    None,
                    "Column holding each user's stable id. Default: username, else \
                     username_aliases, else the first column.",
                ),
            ],
            capabilities: vec![
                Capability {
                    name: "files".to_string(),
                    reason: "reads the CSV file named by `path`".to_string(),
                },
                Capability {
                    name: "log".to_string(),
                    reason: "reports unreadable rows and header problems".to_string(),
                },
            ],
            defaults: Vec::new(),
            credentials: Vec::new(),
        }
    }

    fn test(config: String) -> Result<TestReport, PluginError> {
        let mut csv = start(&config)?;
        let mut users = 0u64;
        let mut failed = 0u64;
        let mut first_failure = None;
        let mut sample = None;
        while let Some(entry) = csv.next_entry().map_err(plugin_error)? {
            match entry {
                reader::Entry::User(user) => {
                    users += 1;
                    if sample.is_none() {
                        sample = Some(source_object(user));
                    }
                }
                reader::Entry::Failed { line, reason } => {
                    failed += 1;
                    first_failure.get_or_insert(format!("line {line}: {reason}"));
                }
            }
        }
        let mut messages = vec![csv.describe()];
        messages.extend(csv.notes().iter().cloned());
        if let Some(first) = first_failure {
            messages.push(format!("{failed} rows cannot be read; the first: {first}"));
        }
        Ok(TestReport {
            users: Some(users),
            groups: None,
            sample,
            messages,
        })
    }

    fn open(request: RunRequest) -> Result<Session, PluginError> {
        // Always a full listing: a CSV file has no changes to ask for.
        let csv = start(&request.config)?;
        for note in csv.notes() {
            log(Level::Warn, note);
        }
        log(Level::Debug, &csv.describe());
        Ok(Session::new(CsvSession {
            state: RefCell::new(State::Reading(Box::new(csv))),
        }))
    }
}

/// Parse the config, open the file through the host and read the header.
fn start(config: &str) -> Result<CsvReader<HostFile>, PluginError> {
    let settings = Settings::from_json(config).map_err(plugin_error)?;
    let path = &settings.path;
    let file = files::open(path).map_err(|e| match e {
        FileError::Denied(message) => PluginError::Config(message),
        FileError::NotFound(_) => PluginError::Config(format!("CSV file not found: {path}")),
        FileError::Io(message) => {
            PluginError::Unavailable(format!("cannot open CSV file {path}: {message}"))
        }
    })?;
    CsvReader::open(HostFile::new(file), &settings).map_err(plugin_error)
}

fn plugin_error(e: Error) -> PluginError {
    match e {
        Error::Config(m) => PluginError::Config(m),
        Error::BadData(m) => PluginError::BadData(m),
        Error::Unavailable(m) => PluginError::Unavailable(m),
    }
}

fn source_object(user: reader::User) -> SourceObject {
    SourceObject {
        kind: ObjectKind::User,
        id: user.id,
        locator: Some(line_locator(user.line)),
        attributes: (user.names.iter().cloned())
            .zip(user.values)
            .map(|(name, values)| Attribute { name, values })
            .collect(),
        member_of: Vec::new(),
        members: Vec::new(),
        parent: None,
    }
}

/// "line N", without the formatting machinery (it runs once per row).
fn line_locator(line: u64) -> String {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(line);
    let mut s = String::with_capacity(5 + digits.len());
    s.push_str("line ");
    s.push_str(digits);
    s
}

/// A user as a row of the batch, whose columns are the file's named columns.
fn row(user: reader::User) -> Row {
    Row {
        kind: ObjectKind::User,
        id: user.id,
        locator: Some(line_locator(user.line)),
        values: user.values,
        member_of: Vec::new(),
        members: Vec::new(),
        parent: None,
    }
}

struct CsvSession {
    state: RefCell<State>,
}

enum State {
    Reading(Box<CsvReader<HostFile>>),
    Done,
}

impl GuestSession for CsvSession {
    fn next_batch(&self) -> Result<Option<Batch>, PluginError> {
        let mut state = self.state.borrow_mut();
        let State::Reading(csv) = &mut *state else {
            return Ok(None);
        };
        let columns = csv.names().to_vec();
        let mut batch = Vec::with_capacity(BATCH_SIZE);
        while batch.len() < BATCH_SIZE {
            match csv.next_entry() {
                Ok(Some(reader::Entry::User(user))) => batch.push(Entry::Row(row(user))),
                Ok(Some(reader::Entry::Failed { line, reason })) => {
                    batch.push(Entry::Failed(FailedEntry {
                        locator: line_locator(line),
                        reason,
                    }))
                }
                Ok(None) => {
                    // Closes the file.
                    *state = State::Done;
                    break;
                }
                Err(e) => {
                    *state = State::Done;
                    return Err(plugin_error(e));
                }
            }
        }
        Ok((!batch.is_empty()).then_some(Batch {
            columns,
            entries: batch,
        }))
    }

    fn finish(&self) -> Result<RunEnd, PluginError> {
        *self.state.borrow_mut() = State::Done;
        Ok(RunEnd {
            mode: RunMode::Full,
            cursor: None,
            notices: Vec::new(),
        })
    }
}

/// A granted file as `std::io::Read`, fetched from the host in 256 KiB chunks.
struct HostFile {
    file: files::File,
    chunk: Vec<u8>,
    pos: usize,
    eof: bool,
}

impl HostFile {
    fn new(file: files::File) -> HostFile {
        HostFile {
            file,
            chunk: Vec::new(),
            pos: 0,
            eof: false,
        }
    }
}

impl Read for HostFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pos == self.chunk.len() {
            if self.eof {
                return Ok(0);
            }
            self.chunk = self.file.read(READ_CHUNK).map_err(|e| {
                io::Error::other(match e {
                    FileError::Denied(m) | FileError::NotFound(m) | FileError::Io(m) => m,
                })
            })?;
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

guest_alloc::install!();
