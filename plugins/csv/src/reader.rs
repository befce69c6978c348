//! Streaming CSV reading: decoding, header handling, records with quoted newlines, and
//! recovery from broken rows.
//!
//! The text is read one physical line at a time and records are assembled from lines, so every
//! record knows the line it starts on, and a bad record can be re-read from the line after its
//! first one. Why not the `csv` crate: it is deliberately lenient (`"a"b` reads as `ab`, an
//! unterminated quote silently swallows the rest of the file) and it cannot re-parse from a
//! line, both of which this connector must do.
//!
//! Quoting follows RFC 4180 with the usual leniencies: a quote inside an unquoted field is
//! kept as text (`6" screen`), whitespace around a quoted field is ignored, and lines may end
//! in CRLF or LF. Text after a closing quote (`"a"b`) is a broken row.
//!
//! Recovery: a record is bad when its field count differs from the header's, its quoting is
//! broken, or a quoted field is still open at the end of the file (or after
//! [`MAX_RECORD_LINES`] lines or [`MAX_RECORD_BYTES`] bytes). A bad record is reported at its
//! first line, and reading resumes with the line after that one: the lines a stray quote
//! swallowed are read again as rows of their own. A multi-line record with the right field
//! count is accepted.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Chain, Cursor, Read};
use std::rc::Rc;

use encoding_rs::Encoding;
use encoding_rs_io::{DecodeReaderBytes, DecodeReaderBytesBuilder};

use crate::config::{normalise, Settings};
use crate::Error;

/// Longest physical line kept; longer lines are skipped as failed rows.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// A quoted field may span at most this many lines...
pub const MAX_RECORD_LINES: usize = 1000;
/// ...and a record at most this many bytes, before its quote counts as unterminated.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// Delimiters tried when none is configured, in order of preference on a tie.
const SNIFFED_DELIMITERS: [char; 3] = [',', ';', '\t'];

/// One item read from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    User(User),
    /// A row that could not be read; `line` is the physical line it starts on (header = 1).
    Failed {
        line: u64,
        reason: String,
    },
}

/// A good row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    /// The line the row starts on.
    pub line: u64,
    /// The names of the named columns, in header order (shared by all rows).
    pub names: Rc<[String]>,
    /// The trimmed values of each named column (none for an empty cell), as `names`.
    pub values: Vec<Vec<String>>,
}

impl User {
    /// (name, values) of every named column.
    pub fn attributes(&self) -> Vec<(String, Vec<String>)> {
        self.names
            .iter()
            .cloned()
            .zip(self.values.clone())
            .collect()
    }
}

/// A column of the header.
#[derive(Debug, Clone)]
pub struct Column {
    /// As in the header, trimmed. Empty for an unnamed column, which is not emitted.
    pub name: String,
    pub multi_valued: bool,
}

/// Where a row's id comes from.
#[derive(Debug, Clone)]
struct IdSource {
    column: usize,
    /// Reason for a failed row whose id is empty.
    missing: String,
}

type Decoded<R> = BufReader<Text<R>>;

/// The file as UTF-8: as it is, or decoded from its encoding.
enum Text<R> {
    Utf8(Chain<Cursor<Vec<u8>>, R>),
    Decoded(DecodeReaderBytes<Chain<Cursor<Vec<u8>>, R>, Vec<u8>>),
}

impl<R: Read> Read for Text<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Text::Utf8(r) => r.read(buf),
            Text::Decoded(r) => r.read(buf),
        }
    }
}

/// Reads users from a CSV byte stream.
pub struct CsvReader<R: Read> {
    lines: Lines<Decoded<R>>,
    parser: Parser,
    path: String,
    delimiter: char,
    delimiter_detected: bool,
    encoding: &'static Encoding,
    encoding_from_bom: bool,
    columns: Vec<Column>,
    /// The named columns' names.
    names: Rc<[String]>,
    id: IdSource,
    separator: String,
    notes: Vec<String>,
}

impl<R: Read> CsvReader<R> {
    /// Start reading: detect a byte order mark, read the header, settle the delimiter and the
    /// id column. `raw` is the file's bytes, in the configured encoding.
    pub fn open(mut raw: R, settings: &Settings) -> Result<CsvReader<R>, Error> {
        let path = settings.path.clone();
        let io_error = |e: io::Error| Error::Unavailable(format!("reading CSV file {path}: {e}"));

        // A byte order mark names the encoding whatever the config says (as browsers do).
        let mut head = Vec::with_capacity(3);
        (&mut raw)
            .take(3)
            .read_to_end(&mut head)
            .map_err(io_error)?;
        let (encoding, bom_len) = Encoding::for_bom(&head).unwrap_or((settings.encoding, 0));
        let encoding_from_bom = bom_len > 0;
        head.drain(..bom_len);
        let bytes = Cursor::new(head).chain(raw);
        // UTF-8 is read as is: `Lines` checks it and replaces what is invalid.
        let text = if encoding == encoding_rs::UTF_8 {
            Text::Utf8(bytes)
        } else {
            Text::Decoded(
                DecodeReaderBytesBuilder::new()
                    .encoding(Some(encoding))
                    .build(bytes),
            )
        };
        let mut lines = Lines::new(BufReader::with_capacity(64 * 1024, text));

        let mut notes = Vec::new();
        if encoding_from_bom && encoding != settings.encoding {
            notes.push(format!(
                "{path} starts with a {} byte order mark: read as {}, not {}",
                encoding.name(),
                encoding.name(),
                settings.encoding.name()
            ));
        }

        let (delimiter, delimiter_detected) = match settings.delimiter {
            Some(d) => (d, false),
            None => {
                let first = lines.first_text_line().map_err(io_error)?;
                let d = first.as_deref().map_or(',', sniff_delimiter);
                (d, true)
            }
        };
        let mut parser = Parser::new(delimiter);

        let header = match parser.next_record(&mut lines, None).map_err(io_error)? {
            None => {
                return Err(Error::BadData(format!(
                    "CSV file {path} is empty: no header row"
                )))
            }
            Some(Record::Bad { line, reason }) => {
                return Err(Error::BadData(format!(
                    "CSV file {path}: cannot read the header row (line {line}): {reason}"
                )))
            }
            Some(Record::Fields { fields, .. }) => fields,
        };

        let mut columns = Vec::with_capacity(header.len());
        let mut normalised: Vec<String> = Vec::with_capacity(header.len());
        for (i, name) in header.into_iter().enumerate() {
            if name.is_empty() {
                notes.push(format!(
                    "column {} of the header of {path} has no name; its values are ignored",
                    i + 1
                ));
            }
            let norm = normalise(&name);
            columns.push(Column {
                multi_valued: settings.is_multi_valued(&norm),
                name,
            });
            normalised.push(norm);
        }
        if columns.iter().all(|c| c.name.is_empty()) {
            return Err(Error::BadData(format!(
                "CSV file {path}: the header row has no column names"
            )));
        }
        check_duplicates(&path, &columns, &normalised)?;
        let id = id_source(settings, &columns, &normalised)?;

        let names = (columns.iter())
            .filter(|c| !c.name.is_empty())
            .map(|c| c.name.clone())
            .collect();
        Ok(CsvReader {
            lines,
            parser,
            path,
            delimiter,
            delimiter_detected,
            encoding,
            encoding_from_bom,
            columns,
            names,
            id,
            separator: settings.multi_value_separator.clone(),
            notes,
        })
    }

    /// The next user or failed row; `None` at the end of the file.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, Error> {
        let io_error =
            |e: io::Error, path: &str| Error::Unavailable(format!("reading CSV file {path}: {e}"));
        // The common case first: a line without quotes is one record, split at delimiters.
        while self.lines.replay.is_empty() {
            let Some(raw) = self.lines.fill().map_err(|e| io_error(e, &self.path))? else {
                return Ok(None);
            };
            if !raw.too_long {
                if let Some(fields) = std::str::from_utf8(&self.lines.buf)
                    .ok()
                    .and_then(|text| split_line(text, self.delimiter))
                {
                    match self.one_line(raw.number, &fields) {
                        Some(entry) => return Ok(Some(entry)),
                        None => continue,
                    }
                }
            }
            // Anything else goes to the parser.
            let line = self.lines.take(raw);
            self.lines.push_back(vec![line]);
        }
        let record = self
            .parser
            .next_record(&mut self.lines, Some(self.columns.len()))
            .map_err(|e| Error::Unavailable(format!("reading CSV file {}: {e}", self.path)))?;
        Ok(record.map(|record| match record {
            Record::Bad { line, reason } => Entry::Failed { line, reason },
            Record::Fields { line, fields } => self.user(line, fields.iter().map(String::as_str)),
        }))
    }

    /// A record of one line, split by [`split_line`]. `None` for a blank line or one of only
    /// delimiters.
    fn one_line(&self, line: u64, fields: &[std::borrow::Cow<'_, str>]) -> Option<Entry> {
        if fields.iter().all(|f| f.is_empty()) {
            return None;
        }
        let n = self.columns.len();
        if fields.len() != n {
            return Some(Entry::Failed {
                line,
                reason: format!("expected {n} fields, found {}", fields.len()),
            });
        }
        Some(self.user(line, fields.iter().map(|f| f.as_ref())))
    }

    fn user<'a>(&self, line: u64, fields: impl Iterator<Item = &'a str>) -> Entry {
        let mut row = Vec::with_capacity(self.names.len());
        let mut id = None;
        let mut sep = self.separator.chars();
        let sep_char = match (sep.next(), sep.next()) {
            (Some(c), None) => Some(c),
            _ => None,
        };
        for (i, (column, value)) in self.columns.iter().zip(fields).enumerate() {
            let values: Vec<String> = if value.is_empty() {
                Vec::new()
            } else if column.multi_valued {
                let keep = |v: &str| {
                    let v = v.trim();
                    (!v.is_empty()).then(|| v.to_string())
                };
                match sep_char {
                    Some(c) => value.split(c).filter_map(keep).collect(),
                    None => value
                        .split(self.separator.as_str())
                        .filter_map(keep)
                        .collect(),
                }
            } else {
                vec![value.to_string()]
            };
            if i == self.id.column {
                id = values.first().cloned();
            }
            if !column.name.is_empty() {
                row.push(values);
            }
        }
        match id {
            Some(id) => Entry::User(User {
                id,
                line,
                names: self.names.clone(),
                values: row,
            }),
            None => Entry::Failed {
                line,
                reason: self.id.missing.clone(),
            },
        }
    }

    pub fn delimiter(&self) -> char {
        self.delimiter
    }

    /// Whether the delimiter was detected rather than configured.
    pub fn delimiter_detected(&self) -> bool {
        self.delimiter_detected
    }

    /// The encoding the file is read in.
    pub fn encoding(&self) -> &'static Encoding {
        self.encoding
    }

    /// Whether a byte order mark chose the encoding.
    pub fn encoding_from_bom(&self) -> bool {
        self.encoding_from_bom
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The names of the named columns: the attributes every user has.
    pub fn names(&self) -> &Rc<[String]> {
        &self.names
    }

    /// Things worth a warning in the log (unnamed columns, a BOM that overrode the encoding).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// "delimiter ';', encoding utf-8, 5 columns", for `test`.
    pub fn describe(&self) -> String {
        let delimiter = match self.delimiter {
            '\t' => "tab".to_string(),
            d => format!("'{d}'"),
        };
        format!(
            "delimiter {delimiter}{}, encoding {}{}, {} columns",
            if self.delimiter_detected {
                " (detected)"
            } else {
                ""
            },
            self.encoding.name().to_ascii_lowercase(),
            if self.encoding_from_bom {
                " (byte order mark)"
            } else {
                ""
            },
            self.columns.len()
        )
    }
}

fn check_duplicates(path: &str, columns: &[Column], normalised: &[String]) -> Result<(), Error> {
    let mut duplicates = Vec::new();
    for (i, norm) in normalised.iter().enumerate() {
        if columns[i].name.is_empty() {
            continue;
        }
        if let Some(j) = normalised[..i].iter().position(|n| n == norm) {
            duplicates.push(format!("'{}' and '{}'", columns[j].name, columns[i].name));
        }
    }
    if duplicates.is_empty() {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "CSV file {path} has duplicate columns: {} (names are compared ignoring case, spaces, '_' and '-')",
            duplicates.join(", ")
        )))
    }
}

/// The id comes from `id_column` if set, else `username`, else `username_aliases`, else the
/// first named column.
fn id_source(
    settings: &Settings,
    columns: &[Column],
    normalised: &[String],
) -> Result<IdSource, Error> {
    let find = |name: &str| normalised.iter().position(|n| n == name);
    if let Some(wanted) = &settings.id_column {
        let column = find(&normalise(wanted)).ok_or_else(|| {
            Error::Config(format!(
                "id_column: CSV file {} has no column '{wanted}' (columns: {})",
                settings.path,
                columns
                    .iter()
                    .filter(|c| !c.name.is_empty())
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        return Ok(IdSource {
            column,
            missing: format!("no id: column '{}' is empty", columns[column].name),
        });
    }
    if let Some(column) = find("username") {
        return Ok(IdSource {
            column,
            missing: "no username".to_string(),
        });
    }
    let column = find("usernamealiases")
        .or_else(|| columns.iter().position(|c| !c.name.is_empty()))
        .unwrap_or(0);
    Ok(IdSource {
        column,
        missing: format!("no id: column '{}' is empty", columns[column].name),
    })
}

/// The most frequent of `,` `;` TAB outside quotes; `,` when there is none.
pub fn sniff_delimiter(line: &str) -> char {
    let mut counts = [0usize; SNIFFED_DELIMITERS.len()];
    let mut quoted = false;
    for c in line.chars() {
        if c == '"' {
            quoted = !quoted;
        } else if !quoted {
            if let Some(i) = SNIFFED_DELIMITERS.iter().position(|&d| d == c) {
                counts[i] += 1;
            }
        }
    }
    let mut best = 0;
    for i in 1..counts.len() {
        if counts[i] > counts[best] {
            best = i;
        }
    }
    SNIFFED_DELIMITERS[best]
}

/// One physical line.
#[derive(Debug)]
struct Line {
    /// 1-based line number.
    number: u64,
    /// Without the line ending (LF or CRLF).
    text: String,
    /// Whether a line ending followed (false only for the last line of a file).
    terminated: bool,
    /// The line was longer than [`MAX_LINE_BYTES`]; `text` is empty.
    too_long: bool,
}

/// The fields of a one-line record, read as [`Fields::feed`] reads them but without copying
/// what needs no unescaping. `None` when the record goes on past this line or its quoting is
/// broken: the parser then reads it (and reports it) the slow way.
fn split_line(text: &str, delimiter: char) -> Option<Vec<std::borrow::Cow<'_, str>>> {
    use std::borrow::Cow;
    let space = |c: char| c.is_whitespace() && c != delimiter;
    let mut fields = Vec::with_capacity(16);
    let mut rest = text;
    loop {
        let start = rest.trim_start_matches(space);
        if let Some(quoted) = start.strip_prefix('"') {
            // Quoted: up to the closing quote, `""` standing for one quote.
            let mut value = Cow::Borrowed("");
            let mut at = quoted;
            let after = loop {
                let close = memchr::memchr(b'"', at.as_bytes())?;
                let (part, tail) = (&at[..close], &at[close + 1..]);
                if let Some(tail) = tail.strip_prefix('"') {
                    value.to_mut().push_str(part);
                    value.to_mut().push('"');
                    at = tail;
                } else {
                    match &mut value {
                        Cow::Borrowed(_) => value = Cow::Borrowed(part),
                        Cow::Owned(v) => v.push_str(part),
                    }
                    break tail;
                }
            };
            fields.push(match value {
                Cow::Borrowed(v) => Cow::Borrowed(v.trim()),
                Cow::Owned(v) => Cow::Owned(v.trim().to_string()),
            });
            let after = after.trim_start_matches(space);
            match after.strip_prefix(delimiter) {
                Some(next) => rest = next,
                None if after.is_empty() => return Some(fields),
                None => return None,
            }
        } else {
            match find_char(start, delimiter) {
                Some(i) => {
                    fields.push(Cow::Borrowed(start[..i].trim()));
                    rest = &start[i + delimiter.len_utf8()..];
                }
                None => {
                    fields.push(Cow::Borrowed(start.trim()));
                    return Some(fields);
                }
            }
        }
    }
}

/// `text.find(c)`, with memchr's word-at-a-time search for an ASCII `c`.
fn find_char(text: &str, c: char) -> Option<usize> {
    if c.is_ascii() {
        memchr::memchr(c as u8, text.as_bytes())
    } else {
        text.find(c)
    }
}

/// A line read into `Lines::buf`.
struct RawLine {
    number: u64,
    terminated: bool,
    too_long: bool,
}

/// Physical lines of decoded text, with a queue of lines to read again.
struct Lines<B> {
    reader: B,
    number: u64,
    replay: VecDeque<Line>,
    buf: Vec<u8>,
}

impl<B: BufRead> Lines<B> {
    fn new(reader: B) -> Lines<B> {
        Lines {
            reader,
            number: 0,
            replay: VecDeque::new(),
            buf: Vec::new(),
        }
    }

    fn next(&mut self) -> io::Result<Option<Line>> {
        if let Some(line) = self.replay.pop_front() {
            return Ok(Some(line));
        }
        Ok(self.fill()?.map(|raw| self.take(raw)))
    }

    /// Reads the next physical line into `buf` (without its line ending).
    fn fill(&mut self) -> io::Result<Option<RawLine>> {
        self.buf.clear();
        let mut read_any = false;
        let mut too_long = false;
        let mut terminated = false;
        loop {
            let available = self.reader.fill_buf()?;
            if available.is_empty() {
                break;
            }
            read_any = true;
            let (chunk, used) = match memchr::memchr(b'\n', available) {
                Some(i) => {
                    terminated = true;
                    (&available[..i], i + 1)
                }
                None => (available, available.len()),
            };
            if !too_long {
                if self.buf.len() + chunk.len() > MAX_LINE_BYTES {
                    too_long = true;
                    self.buf = Vec::new();
                } else {
                    self.buf.extend_from_slice(chunk);
                }
            }
            self.reader.consume(used);
            if terminated {
                break;
            }
        }
        if !read_any {
            return Ok(None);
        }
        self.number += 1;
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        Ok(Some(RawLine {
            number: self.number,
            terminated,
            too_long,
        }))
    }

    /// The line in `buf` as text. Invalid UTF-8 (in a file read as UTF-8, or cut at
    /// MAX_LINE_BYTES) becomes U+FFFD.
    fn take(&mut self, raw: RawLine) -> Line {
        let text = match String::from_utf8(std::mem::take(&mut self.buf)) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        Line {
            number: raw.number,
            text,
            terminated: raw.terminated,
            too_long: raw.too_long,
        }
    }

    /// Read these lines again, before anything else.
    fn push_back(&mut self, lines: Vec<Line>) {
        for line in lines.into_iter().rev() {
            self.replay.push_front(line);
        }
    }

    /// The first line with text on it (left to be read again), for delimiter detection.
    fn first_text_line(&mut self) -> io::Result<Option<String>> {
        let mut skipped = Vec::new();
        let mut found = None;
        while let Some(line) = self.next()? {
            let has_text = !line.too_long && !line.text.trim().is_empty();
            if has_text {
                found = Some(line.text.clone());
            }
            skipped.push(line);
            if has_text {
                break;
            }
        }
        self.push_back(skipped);
        Ok(found)
    }
}

/// What the parser made of the lines starting at `line`.
#[derive(Debug)]
enum Record {
    Fields { line: u64, fields: Vec<String> },
    Bad { line: u64, reason: String },
}

/// Splits records into fields.
struct Parser {
    delimiter: char,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a field (leading whitespace is skipped).
    FieldStart,
    Unquoted,
    Quoted,
    /// Just read a quote inside a quoted field: the closing quote or the first of a pair.
    QuoteInQuoted,
    /// After a closing quote and maybe whitespace: only a delimiter or the line end may follow.
    AfterQuoted,
}

/// A record being assembled line by line.
struct Fields {
    delimiter: char,
    fields: Vec<String>,
    current: String,
    state: State,
}

impl Fields {
    fn new(delimiter: char) -> Fields {
        Fields {
            delimiter,
            fields: Vec::new(),
            current: String::new(),
            state: State::FieldStart,
        }
    }

    /// Feed one line. `Ok(true)`: the record is complete; `Ok(false)`: a quoted field goes
    /// on to the next line.
    fn feed(&mut self, text: &str, terminated: bool) -> Result<bool, String> {
        for c in text.chars() {
            match self.state {
                State::FieldStart => {
                    if c == self.delimiter {
                        self.end_field();
                    } else if c == '"' {
                        self.state = State::Quoted;
                    } else if !c.is_whitespace() {
                        self.current.push(c);
                        self.state = State::Unquoted;
                    }
                }
                State::Unquoted => {
                    if c == self.delimiter {
                        self.end_field();
                    } else {
                        self.current.push(c);
                    }
                }
                State::Quoted => {
                    if c == '"' {
                        self.state = State::QuoteInQuoted;
                    } else {
                        self.current.push(c);
                    }
                }
                State::QuoteInQuoted | State::AfterQuoted => {
                    if c == '"' && self.state == State::QuoteInQuoted {
                        self.current.push('"');
                        self.state = State::Quoted;
                    } else if c == self.delimiter {
                        self.end_field();
                    } else if c.is_whitespace() {
                        self.state = State::AfterQuoted;
                    } else {
                        return Err(format!(
                            "broken quoting: text after the closing quote of field {}",
                            self.fields.len() + 1
                        ));
                    }
                }
            }
        }
        if self.state == State::Quoted {
            if !terminated {
                return Err("unterminated quoted field".to_string());
            }
            self.current.push('\n');
            return Ok(false);
        }
        self.end_field();
        Ok(true)
    }

    fn end_field(&mut self) {
        let trimmed = self.current.trim();
        let value = if trimmed.len() == self.current.len() {
            std::mem::take(&mut self.current)
        } else {
            let value = trimmed.to_string();
            self.current.clear();
            value
        };
        self.fields.push(value);
        self.state = State::FieldStart;
    }
}

impl Parser {
    fn new(delimiter: char) -> Parser {
        Parser { delimiter }
    }

    /// The next record, skipping blank lines. With `expected` (data rows, not the header), a
    /// record with another field count is bad and a record of only empty fields is skipped like
    /// a blank line. After a bad record, reading resumes at the line after its first line.
    fn next_record<B: BufRead>(
        &mut self,
        lines: &mut Lines<B>,
        expected: Option<usize>,
    ) -> io::Result<Option<Record>> {
        loop {
            let first = match lines.next()? {
                None => return Ok(None),
                Some(line) if line.too_long => {
                    return Ok(Some(Record::Bad {
                        line: line.number,
                        reason: format!("line is longer than {MAX_LINE_BYTES} bytes"),
                    }))
                }
                Some(line) if line.text.trim().is_empty() => continue,
                Some(line) => line,
            };
            let start = first.number;
            let mut record = Fields::new(self.delimiter);
            // Lines after the first, kept to be read again if the record turns out bad.
            let mut more: Vec<Line> = Vec::new();
            let mut bytes = first.text.len();
            let mut outcome = record.feed(&first.text, first.terminated);
            let problem = loop {
                match outcome {
                    Err(reason) => break Some(reason),
                    Ok(true) => break None,
                    Ok(false) => {}
                }
                if more.len() + 1 >= MAX_RECORD_LINES || bytes > MAX_RECORD_BYTES {
                    break Some(format!(
                        "unterminated quoted field (not closed within {} lines)",
                        more.len() + 1
                    ));
                }
                let Some(line) = lines.next()? else {
                    break Some("unterminated quoted field".to_string());
                };
                if line.too_long {
                    more.push(line);
                    break Some(
                        "unterminated quoted field (runs into an overlong line)".to_string(),
                    );
                }
                bytes += line.text.len() + 1;
                outcome = record.feed(&line.text, line.terminated);
                more.push(line);
            };
            let fields = record.fields;
            let problem = problem.or_else(|| match expected {
                Some(_) if fields.iter().all(String::is_empty) => None,
                Some(n) if fields.len() != n => {
                    Some(format!("expected {n} fields, found {}", fields.len()))
                }
                _ => None,
            });
            if let Some(reason) = problem {
                lines.push_back(more);
                return Ok(Some(Record::Bad {
                    line: start,
                    reason,
                }));
            }
            if expected.is_some() && fields.iter().all(String::is_empty) {
                // Rows of nothing but delimiters (spreadsheet exports) count as blank lines.
                continue;
            }
            return Ok(Some(Record::Fields {
                line: start,
                fields,
            }));
        }
    }
}

#[cfg(test)]
mod tests;
