use std::io::{self, Cursor, Read};

use super::*;

fn settings() -> Settings {
    Settings::new("users.csv")
}

fn open_with(data: &[u8], settings: &Settings) -> Result<CsvReader<Cursor<Vec<u8>>>, Error> {
    CsvReader::open(Cursor::new(data.to_vec()), settings)
}

fn read_all<R: Read>(csv: &mut CsvReader<R>) -> Vec<Entry> {
    let mut out = Vec::new();
    while let Some(entry) = csv.next_entry().unwrap() {
        out.push(entry);
    }
    out
}

fn entries_with(data: &[u8], settings: &Settings) -> Vec<Entry> {
    read_all(&mut open_with(data, settings).unwrap())
}

fn entries(data: &str) -> Vec<Entry> {
    entries_with(data.as_bytes(), &settings())
}

/// Short form: "id" for a user, "!N reason" for a failed row.
fn summary(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| match e {
            Entry::User(u) => u.id.clone(),
            Entry::Failed { line, reason } => format!("!{line} {reason}"),
        })
        .collect()
}

fn user(entry: &Entry) -> &User {
    match entry {
        Entry::User(u) => u,
        Entry::Failed { line, reason } => panic!("line {line} failed: {reason}"),
    }
}

fn values<'a>(user: &'a User, name: &str) -> &'a [String] {
    let i = (user.names.iter())
        .position(|n| n == name)
        .unwrap_or_else(|| panic!("no attribute {name}"));
    &user.values[i]
}

#[test]
fn simple_file() {
    let got = entries("username,full_name,email\nalice,Alice A,alice@x\nbob,Bob B,bob@x\n");
    assert_eq!(summary(&got), ["alice", "bob"]);
    let alice = user(&got[0]);
    assert_eq!(
        alice.attributes(),
        vec![
            ("username".to_string(), vec!["alice".to_string()]),
            ("full_name".to_string(), vec!["Alice A".to_string()]),
            ("email".to_string(), vec!["alice@x".to_string()]),
        ]
    );
}

#[test]
fn names_and_values_are_trimmed_and_empty_cells_have_no_values() {
    let got = entries(" User Name ; Full Name ;Email\r\n alice ;  ; alice@x \r\n");
    let alice = user(&got[0]);
    assert_eq!(alice.id, "alice");
    assert_eq!(alice.attributes()[0].0, "User Name");
    assert_eq!(alice.attributes()[1].0, "Full Name");
    assert_eq!(values(alice, "Full Name"), [] as [String; 0]);
    assert_eq!(values(alice, "Email"), ["alice@x"]);
}

#[test]
fn delimiter_sniffing() {
    assert_eq!(sniff_delimiter("a,b,c"), ',');
    assert_eq!(sniff_delimiter("a;b;c"), ';');
    assert_eq!(sniff_delimiter("a\tb\tc"), '\t');
    // Counted outside quotes only.
    assert_eq!(sniff_delimiter("\"a,b,c\";\"d,e\";f"), ';');
    assert_eq!(sniff_delimiter("\"x;y;z;w\",b,c"), ',');
    // One column: comma.
    assert_eq!(sniff_delimiter("username"), ',');
    // More semicolons than commas.
    assert_eq!(sniff_delimiter("user,name;full;email"), ';');

    for (data, delimiter) in [
        ("username;full_name\nalice;Alice, A\n", ';'),
        ("username\tfull_name\nalice\tAlice; A\n", '\t'),
        ("username,full_name\nalice,Alice; A\n", ','),
        ("\n\nusername;full_name\nalice;Alice, A\n", ';'),
    ] {
        let mut csv = open_with(data.as_bytes(), &settings()).unwrap();
        assert_eq!(csv.delimiter(), delimiter, "{data:?}");
        assert!(csv.delimiter_detected());
        let got = read_all(&mut csv);
        assert_eq!(user(&got[0]).attributes().len(), 2, "{data:?}");
    }
}

#[test]
fn configured_delimiter_wins() {
    let mut s = settings();
    s.delimiter = Some(',');
    let mut csv = open_with(b"username,note\nalice,a;b;c;d\n", &s).unwrap();
    assert!(!csv.delimiter_detected());
    let got = read_all(&mut csv);
    assert_eq!(values(user(&got[0]), "note"), ["a;b;c;d"]);
}

#[test]
fn describe() {
    let csv = open_with(b"a;b;c;d;username\n", &settings()).unwrap();
    assert_eq!(
        csv.describe(),
        "delimiter ';' (detected), encoding utf-8, 5 columns"
    );
    let csv = open_with(b"a\tb\n", &settings()).unwrap();
    assert_eq!(
        csv.describe(),
        "delimiter tab (detected), encoding utf-8, 2 columns"
    );
}

#[test]
fn utf8_bom_is_stripped() {
    let data = b"\xEF\xBB\xBFusername;full_name\nj\xC3\xA1n;J\xC3\xA1n\n";
    let mut csv = open_with(data, &settings()).unwrap();
    assert_eq!(csv.columns()[0].name, "username");
    assert_eq!(csv.delimiter(), ';');
    let got = read_all(&mut csv);
    assert_eq!(user(&got[0]).id, "ján");
    assert_eq!(user(&got[0]).attributes()[0].0, "username");
}

#[test]
fn bom_overrides_configured_encoding() {
    let mut s = settings();
    s.encoding = encoding_rs::WINDOWS_1250;
    let data = b"\xEF\xBB\xBFusername\nj\xC3\xA1n\n";
    let mut csv = open_with(data, &s).unwrap();
    assert_eq!(csv.encoding(), encoding_rs::UTF_8);
    assert!(csv.encoding_from_bom());
    assert_eq!(csv.notes().len(), 1);
    assert_eq!(summary(&read_all(&mut csv)), ["ján"]);
}

#[test]
fn utf16_with_bom() {
    let text = "username,full_name\nžofia,Žofia Ňuková\n";
    let mut data = vec![0xFF, 0xFE];
    for unit in text.encode_utf16() {
        data.extend_from_slice(&unit.to_le_bytes());
    }
    let got = entries_with(&data, &settings());
    assert_eq!(values(user(&got[0]), "full_name"), ["Žofia Ňuková"]);
}

#[test]
fn windows_1250_decoding() {
    // "Šťastný" and "Łódź" in windows-1250.
    let data = b"username;full_name\nstastny;\x8A\x9Dastn\xFD\nlodz;\xA3\xF3d\x9F\n";
    let mut s = settings();
    s.encoding = crate::config::parse_encoding("windows-1250").unwrap();
    let mut csv = open_with(data, &s).unwrap();
    assert_eq!(
        csv.describe(),
        "delimiter ';' (detected), encoding windows-1250, 2 columns"
    );
    let got = read_all(&mut csv);
    assert_eq!(values(user(&got[0]), "full_name"), ["Šťastný"]);
    assert_eq!(values(user(&got[1]), "full_name"), ["Łódź"]);
}

#[test]
fn invalid_utf8_is_replaced() {
    let got = entries_with(b"username,full_name\nalice,Al\xFFice\n", &settings());
    assert_eq!(values(user(&got[0]), "full_name"), ["Al\u{FFFD}ice"]);
}

/// Hands out the data a few bytes at a time, to cross every chunk boundary.
struct Trickle(Vec<u8>, usize);

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(2).min(self.0.len() - self.1);
        buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
        self.1 += n;
        Ok(n)
    }
}

#[test]
fn small_reads_cross_bom_and_characters() {
    let data = "\u{FEFF}username;full_name\nján;\"Ján\nNovák\"\nžofia;Žofia\n";
    let mut csv = CsvReader::open(Trickle(data.as_bytes().to_vec(), 0), &settings()).unwrap();
    let got = read_all(&mut csv);
    assert_eq!(summary(&got), ["ján", "žofia"]);
    assert_eq!(values(user(&got[0]), "full_name"), ["Ján\nNovák"]);
}

#[test]
fn multi_value_splitting() {
    let data = "username;cards;PINs;Username Aliases;groups;full_name\n\
                alice;\"c1;c2; ;c3 \";1234;al;g1;\"Alice; the first\"\n\
                bob;;;;;\n";
    let got = entries(data);
    let alice = user(&got[0]);
    assert_eq!(values(alice, "cards"), ["c1", "c2", "c3"]);
    assert_eq!(values(alice, "PINs"), ["1234"]);
    assert_eq!(values(alice, "Username Aliases"), ["al"]);
    // Not multi-valued: one value, separator and all.
    assert_eq!(values(alice, "full_name"), ["Alice; the first"]);
    let bob = user(&got[1]);
    assert_eq!(values(bob, "cards"), [] as [String; 0]);

    let mut s = settings();
    s.delimiter = Some(',');
    s.multi_value_separator = "|".to_string();
    s.multi_value_columns = vec![crate::config::normalise("Group-Names")];
    let got = entries_with(b"username,group_names,aliases\nalice,a|b||c,x|y\n", &s);
    let alice = user(&got[0]);
    assert_eq!(values(alice, "group_names"), ["a", "b", "c"]);
    assert_eq!(values(alice, "aliases"), ["x", "y"]);
}

#[test]
fn wrong_field_count() {
    let got =
        entries("username,full_name,email\nalice,A,a@x\nbob,B\ncarol,C,c@x,extra\ndave,D,d@x\n");
    assert_eq!(
        summary(&got),
        [
            "alice",
            "!3 expected 3 fields, found 2",
            "!4 expected 3 fields, found 4",
            "dave"
        ]
    );
}

#[test]
fn quoted_newline_accepted() {
    let data = "username,address,email\r\nalice,\"1 Main St\r\nSpringfield\",a@x\r\nbob,\"x\"\"y\",b@x\r\n";
    let got = entries(data);
    assert_eq!(summary(&got), ["alice", "bob"]);
    assert_eq!(values(user(&got[0]), "address"), ["1 Main St\nSpringfield"]);
    assert_eq!(values(user(&got[1]), "address"), ["x\"y"]);
}

#[test]
fn line_numbers_count_physical_lines() {
    let data = "username,note\n\
                alice,\"two\nlines\"\n\
                \n\
                bob\n\
                carol,\"three\n\nlines\"\n\
                dave\n";
    let got = entries(data);
    assert_eq!(
        summary(&got),
        [
            "alice",
            "!5 expected 2 fields, found 1",
            "carol",
            "!9 expected 2 fields, found 1"
        ]
    );
}

#[test]
fn unterminated_quote_at_end_of_file_resyncs() {
    let data = "username,full_name,email\n\
                alice,\"Alice,alice@x\n\
                bob,Bob,bob@x\n\
                carol,Carol,carol@x\n";
    assert_eq!(
        summary(&entries(data)),
        ["!2 unterminated quoted field", "bob", "carol"]
    );
    // Without a final line ending.
    let data = "username,full_name,email\nbob,Bob,bob@x\ncarol,\"Carol,carol@x";
    assert_eq!(
        summary(&entries(data)),
        ["bob", "!3 unterminated quoted field"]
    );
}

#[test]
fn stray_quote_closed_later_resyncs() {
    // The quote opened on line 2 is "closed" by the one on line 4, followed by text.
    let data = "username,full_name,email\n\
                alice,\"Alice,alice@x\n\
                bob,Bob,bob@x\n\
                carol,\"Carol\",carol@x\n\
                dave,Dave,dave@x\n";
    assert_eq!(
        summary(&entries(data)),
        [
            "!2 broken quoting: text after the closing quote of field 2",
            "bob",
            "carol",
            "dave"
        ]
    );
    // "Closed" by a quote at the end of line 4: the record has the wrong field count.
    let data = "username,full_name,email\n\
                alice,\"Alice,alice@x\n\
                bob,Bob,bob@x\n\
                carol,Carol,carol@x,\"\n\
                dave,Dave,dave@x\n";
    assert_eq!(
        summary(&entries(data)),
        [
            "!2 expected 3 fields, found 2",
            "bob",
            "!4 unterminated quoted field",
            "dave"
        ]
    );
}

#[test]
fn broken_quoting_on_one_line() {
    let data = "username,full_name\nalice,\"Alice\"x\nbob,\"Bob\" \nc\"arol,6\" screen\n";
    let got = entries(data);
    assert_eq!(
        summary(&got),
        [
            "!2 broken quoting: text after the closing quote of field 2",
            "bob",
            "c\"arol"
        ]
    );
    assert_eq!(values(user(&got[1]), "full_name"), ["Bob"]);
    assert_eq!(values(user(&got[2]), "full_name"), ["6\" screen"]);
}

#[test]
fn runaway_quote_is_bounded() {
    let mut data = String::from("username,note\nalice,\"runaway\n");
    for i in 0..(MAX_RECORD_LINES + 10) {
        data.push_str(&format!("u{i},n{i}\n"));
    }
    let got = entries(&data);
    assert_eq!(
        got[0],
        Entry::Failed {
            line: 2,
            reason: format!(
                "unterminated quoted field (not closed within {MAX_RECORD_LINES} lines)"
            )
        }
    );
    assert_eq!(got.len(), MAX_RECORD_LINES + 11);
    assert_eq!(user(&got[1]).id, "u0");
    assert_eq!(
        user(got.last().unwrap()).id,
        format!("u{}", MAX_RECORD_LINES + 9)
    );
}

#[test]
fn overlong_line_is_skipped() {
    let mut data = String::from("username,note\nalice,");
    data.push_str(&"x".repeat(MAX_LINE_BYTES + 5));
    data.push_str("\nbob,b\n");
    assert_eq!(
        summary(&entries(&data)),
        [
            format!("!2 line is longer than {MAX_LINE_BYTES} bytes"),
            "bob".to_string()
        ]
    );
}

#[test]
fn blank_and_delimiter_only_rows_are_skipped() {
    let data = "username;full_name;email\n\nalice;A;a@x\n;;\n  \n;;;;\nbob;B;b@x\n\n";
    assert_eq!(summary(&entries(data)), ["alice", "bob"]);
}

#[test]
fn id_selection() {
    // username wins, wherever it is.
    let got = entries("full_name,User-Name,username_aliases\nAlice,alice,al;ali\n");
    assert_eq!(user(&got[0]).id, "alice");
    // else the first alias.
    let got = entries("full_name,username_aliases\nAlice,al;ali\n");
    assert_eq!(user(&got[0]).id, "al");
    // else the first column.
    let got = entries("email,full_name\na@x,Alice\n");
    assert_eq!(user(&got[0]).id, "a@x");
    // id_column, normalised like every column name.
    let mut s = settings();
    s.id_column = Some("employee id".to_string());
    let got = entries_with(b"username,Employee_ID\nalice,E1\nbob,\n", &s);
    assert_eq!(
        summary(&got),
        ["E1", "!3 no id: column 'Employee_ID' is empty"]
    );
    s.id_column = Some("badge".to_string());
    match open_with(b"username,Employee_ID\n", &s) {
        Err(Error::Config(m)) => {
            assert!(m.starts_with("id_column:") && m.contains("'badge'"), "{m}")
        }
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn empty_username_fails() {
    let got = entries("username,full_name\n,Nobody\n\" \",Blank\nbob,Bob\n");
    assert_eq!(summary(&got), ["!2 no username", "!3 no username", "bob"]);
}

#[test]
fn whole_file_errors() {
    let err = |data: &[u8]| open_with(data, &settings()).err().unwrap();
    assert_eq!(
        err(b""),
        Error::BadData("CSV file users.csv is empty: no header row".to_string())
    );
    assert_eq!(
        err(b"\xEF\xBB\xBF\r\n\n"),
        Error::BadData("CSV file users.csv is empty: no header row".to_string())
    );
    match err(b"username,User Name,e-mail,EMAIL\n") {
        Error::Config(m) => {
            assert!(
                m.contains("'username' and 'User Name'") && m.contains("'e-mail' and 'EMAIL'"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
    match err(b"username,\"broken\n") {
        Error::BadData(m) => assert!(m.contains("unterminated quoted field"), "{m}"),
        other => panic!("{other:?}"),
    }
}

struct FailingReader(usize);

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let data = b"username\nalice\nbob\n";
        if self.0 >= data.len() {
            return Err(io::Error::other("disk on fire"));
        }
        let n = buf.len().min(data.len() - self.0);
        buf[..n].copy_from_slice(&data[self.0..self.0 + n]);
        self.0 += n;
        Ok(n)
    }
}

#[test]
fn io_error_is_unavailable() {
    let mut csv = CsvReader::open(FailingReader(0), &settings()).unwrap();
    let mut result = Ok(None);
    for _ in 0..10 {
        result = csv.next_entry();
        if result.is_err() {
            break;
        }
    }
    match result {
        Err(Error::Unavailable(m)) => assert!(m.contains("disk on fire"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unnamed_columns_are_not_emitted() {
    let mut csv = open_with(b"username;full_name;\nalice;A;\nbob;B;x\n", &settings()).unwrap();
    assert_eq!(csv.notes().len(), 1);
    let got = read_all(&mut csv);
    assert_eq!(summary(&got), ["alice", "bob"]);
    assert_eq!(user(&got[1]).attributes().len(), 2);
}

#[test]
fn rows_with_and_without_quotes_read_alike() {
    // Rows without quotes take a shortcut past the parser; both must agree.
    let got = entries(
        "username, full name ,cards\n a , Alice A , C1; C2 ;\n\" a \",\" Alice A \",\" C1; C2 ;\"\n",
    );
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(user(&got[0]).attributes(), user(&got[1]).attributes());
    assert_eq!(values(user(&got[0]), "cards"), ["C1", "C2"]);
    assert_eq!(values(user(&got[0]), "username"), ["a"]);
}

#[test]
fn one_line_records_read_as_the_parser_reads_them() {
    // `split_line` is a shortcut for the parser; both must agree on every line it accepts.
    let lines = [
        "a,b,c",
        " a , b ,c ",
        "\"a,1\",b,\"c\"\"d\"",
        " \"a\" , \"\" ,",
        "\"x\"\"\",\"\"\"y\",z",
        "6\" screen,b\"c,d",
        ",,",
        "\t\"a\"\t,b",
    ];
    for delimiter in [',', ';', '\t'] {
        for line in lines {
            let line = line.replace(',', &delimiter.to_string());
            let mut fields = Fields::new(delimiter);
            let parsed = match fields.feed(&line, true) {
                Ok(true) => Some(fields.fields),
                _ => None,
            };
            let split = split_line(&line, delimiter)
                .map(|f| f.into_iter().map(|f| f.into_owned()).collect::<Vec<_>>());
            assert_eq!(split, parsed, "{line:?} with {delimiter:?}");
        }
    }
    // Broken or unfinished quoting is left to the parser.
    assert_eq!(split_line("\"a\"b,c", ','), None);
    assert_eq!(split_line("\"a,b", ','), None);
}
