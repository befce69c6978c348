//! The WebAssembly component: [`crate::reader`] as a `roster-plugin` connector. Rows go out
//! as [`Row`]s of the file's named columns.

use crate::config::{Settings, MULTI_VALUE_COLUMNS_TOML};
use crate::reader::{self, CsvReader};
use crate::Error;
use roster_plugin::files::{self, FileError};
use roster_plugin::{log, Config, Connector, Info, Item, Key, Listing, Request, Row, Run};
use roster_plugin::{TestReport, User};

struct Csv;

roster_plugin::export!(Csv);

impl Connector for Csv {
    fn info() -> Info {
        Info::new(
            "csv",
            env!("CARGO_PKG_VERSION"),
            "Reads users from a CSV file: one user per row, one attribute per column",
        )
        .key(Key::file("path", "The CSV file. Its first row names the columns.").required())
        .key(Key::string(
            "delimiter",
            "Field delimiter: one character such as \",\" or \";\", or \"tab\". \
             Default: detected from the header row among comma, semicolon and tab.",
        ))
        .key(
            Key::string(
                "encoding",
                "Character encoding, such as \"utf-8\", \"windows-1250\", \"windows-1252\" or \
                 \"iso-8859-2\". A byte order mark at the start of the file takes precedence.",
            )
            .default("\"utf-8\""),
        )
        .key(
            Key::string(
                "multi_value_separator",
                "Separates the values of a multi-valued cell.",
            )
            .default("\";\""),
        )
        .key(
            Key::list(
                "multi_value_columns",
                "Columns whose cells hold several values, split on multi_value_separator. \
                 aliases, cards, pins and username_aliases are always multi-valued.",
            )
            .default(MULTI_VALUE_COLUMNS_TOML),
        )
        .key(Key::string(
            "id_column",
            "Column holding each user's stable id. Default: username, else \
             username_aliases, else the first column.",
        ))
        .capability("files", "reads the CSV file named by `path`")
        .capability("log", "reports unreadable rows and header problems")
    }

    fn test(config: Config) -> Result<TestReport, Error> {
        let mut csv = start(&config)?;
        let mut users = 0u64;
        let mut failed = 0u64;
        let mut first_failure = None;
        let mut sample = None;
        while let Some(entry) = csv.next_entry()? {
            match entry {
                reader::Entry::User(user) => {
                    users += 1;
                    if sample.is_none() {
                        sample = Some(User {
                            locator: Some(line_locator(user.line)),
                            attributes: user.attributes(),
                            id: user.id,
                            member_of: Vec::new(),
                        });
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

    fn open(config: Config, _request: Request) -> Result<Run, Error> {
        // Always a full listing: a CSV file has no changes to ask for.
        let csv = start(&config)?;
        for note in csv.notes() {
            log::warn(note);
        }
        log::debug(&csv.describe());
        let columns = csv.names().to_vec();
        Ok(Run::from_listing(Rows(Some(Box::new(csv)))).columns(columns))
    }
}

/// Parse the config, open the file through the host and read the header.
fn start(config: &Config) -> Result<CsvReader<files::File>, Error> {
    let settings = Settings::from_config(config)?;
    let path = &settings.path;
    let file = files::File::open(path).map_err(|e| match e {
        FileError::Denied(message) => Error::Config(message),
        FileError::NotFound(_) => Error::Config(format!("CSV file not found: {path}")),
        FileError::Io(message) => {
            Error::Unavailable(format!("cannot open CSV file {path}: {message}"))
        }
    })?;
    CsvReader::open(file, &settings)
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

/// The file's rows; dropping the reader closes the file.
struct Rows(Option<Box<CsvReader<files::File>>>);

impl Listing for Rows {
    fn next(&mut self) -> Result<Option<Item>, Error> {
        let Some(csv) = &mut self.0 else {
            return Ok(None);
        };
        match csv.next_entry() {
            Ok(Some(reader::Entry::User(user))) => Ok(Some(Item::Row(Row {
                id: user.id,
                locator: Some(line_locator(user.line)),
                values: user.values,
                member_of: Vec::new(),
            }))),
            Ok(Some(reader::Entry::Failed { line, reason })) => {
                Ok(Some(Item::failed(line_locator(line), reason)))
            }
            Ok(None) => {
                self.0 = None;
                Ok(None)
            }
            Err(e) => {
                self.0 = None;
                Err(e)
            }
        }
    }

    fn finish(&mut self, _end: &mut roster_plugin::End) -> Result<(), Error> {
        self.0 = None;
        Ok(())
    }
}

guest_alloc::install!();
