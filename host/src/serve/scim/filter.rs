//! RFC 7644 §3.4.2.2 filters: `userName eq "x"`, `emails[type eq "work"].value co "@a"`,
//! `not (active eq true) or meta.lastModified gt "2026-01-01T00:00:00Z"`, parsed into an AST.
//! Operators, keywords and attribute names are case-insensitive; string values are JSON
//! strings. Also parses PATCH paths (`members[value eq "2"]`, `emails[type eq "work"].value`).
//! Every error is an `invalidFilter` (or `invalidPath`) SCIM error.

use super::error::{ScimError, ScimType};

/// The longest filter accepted, in bytes.
pub const MAX_LEN: usize = 8 * 1024;
/// How deep parentheses, `not` and value paths may nest.
pub const MAX_DEPTH: usize = 32;
/// How many comparisons one filter may hold.
pub const MAX_TERMS: usize = 256;

/// `[urn:...:]attr[.sub]`. `attr` and `sub` keep the client's spelling; compare them with
/// [`AttrPath::is`] (names are case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub uri: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

impl AttrPath {
    /// Whether this path names `attr` (and `sub`), ignoring case.
    pub fn is(&self, attr: &str, sub: Option<&str>) -> bool {
        self.attr.eq_ignore_ascii_case(attr)
            && match (&self.sub, sub) {
                (None, None) => true,
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => false,
            }
    }
}

impl std::fmt::Display for AttrPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(uri) = &self.uri {
            write!(f, "{uri}:")?;
        }
        f.write_str(&self.attr)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Num(serde_json::Number),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    fn parse(word: &str) -> Option<CompareOp> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "co" => CompareOp::Co,
            "sw" => CompareOp::Sw,
            "ew" => CompareOp::Ew,
            "gt" => CompareOp::Gt,
            "ge" => CompareOp::Ge,
            "lt" => CompareOp::Lt,
            "le" => CompareOp::Le,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare(AttrPath, CompareOp, Literal),
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `attr[filter]`: some value of the multi-valued `attr` matches `filter`, whose paths
    /// name sub-attributes. `attr[f].sub op v` is parsed as `attr[f and sub op v]`.
    ValuePath(AttrPath, Box<Filter>),
}

/// A PATCH operation's target: `attr`, `attr.sub`, `attr[filter]`, `attr[filter].sub`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    /// The sub-attribute after `]`.
    pub sub: Option<String>,
}

/// Parses a `filter` query parameter.
pub fn parse(text: &str) -> Result<Filter, ScimError> {
    let mut p = Parser::new(text, ScimType::InvalidFilter)?;
    let f = p.or()?;
    p.end()?;
    Ok(f)
}

/// Parses a PATCH operation's `path`.
pub fn parse_path(text: &str) -> Result<PatchPath, ScimError> {
    let mut p = Parser::new(text, ScimType::InvalidPath)?;
    let attr = p.attr_path()?;
    let mut out = PatchPath {
        attr,
        filter: None,
        sub: None,
    };
    if p.peek() == Some(&Tok::LBracket) {
        if out.attr.sub.is_some() {
            return Err(p.error("a value filter follows an attribute, not a sub-attribute"));
        }
        p.next();
        p.depth += 1;
        out.filter = Some(p.or()?);
        p.expect(Tok::RBracket, "`]`")?;
        if let Some(Tok::Word(w)) = p.peek() {
            if let Some(sub) = w.strip_prefix('.') {
                let sub = sub.to_string();
                check_name(&sub).map_err(|m| p.error(m))?;
                out.sub = Some(sub);
                p.next();
            }
        }
    }
    p.end()?;
    Ok(out)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    LBracket,
    RBracket,
    /// An attribute path, an operator, a keyword, `true`/`false`/`null` or a number.
    Word(String),
    Str(String),
}

fn lex(text: &str) -> Result<Vec<(usize, Tok)>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'(' | b')' | b'[' | b']' => {
                out.push((
                    start,
                    match c {
                        b'(' => Tok::LParen,
                        b')' => Tok::RParen,
                        b'[' => Tok::LBracket,
                        _ => Tok::RBracket,
                    },
                ));
                i += 1;
            }
            b'"' => {
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return Err(format!("unterminated string at {start}")),
                        Some(b'\\') => i += 2,
                        Some(b'"') => break,
                        Some(_) => i += 1,
                    }
                }
                i += 1;
                let s: String = serde_json::from_str(&text[start..i])
                    .map_err(|e| format!("bad string at {start}: {e}"))?;
                out.push((start, Tok::Str(s)));
            }
            c if c.is_ascii_alphanumeric() || b":._$-+".contains(&c) => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || b":._$-+/".contains(&bytes[i]))
                {
                    i += 1;
                }
                out.push((start, Tok::Word(text[start..i].to_string())));
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(format!("unexpected character {ch:?} at {start}"));
            }
        }
    }
    Ok(out)
}

/// ATTRNAME = ALPHA *(ALPHA / DIGIT / "-" / "_"), and `$ref`.
fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = name == "$ref"
        || (chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not an attribute name"))
    }
}

fn split_path(word: &str) -> Result<AttrPath, String> {
    // A schema URN holds `:` and dots (`2.0`); the attribute follows its last `:`.
    let (uri, rest) = match word.rfind(':') {
        Some(i) if word[..4.min(word.len())].eq_ignore_ascii_case("urn:") => {
            (Some(word[..i].to_string()), &word[i + 1..])
        }
        Some(_) => return Err(format!("{word:?} is not an attribute path")),
        None => (None, word),
    };
    let (attr, sub) = match rest.split_once('.') {
        Some((a, s)) => (a, Some(s)),
        None => (rest, None),
    };
    check_name(attr)?;
    if let Some(s) = sub {
        check_name(s)?;
    }
    Ok(AttrPath {
        uri,
        attr: attr.to_string(),
        sub: sub.map(str::to_string),
    })
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    depth: usize,
    terms: usize,
    kind: ScimType,
}

impl Parser {
    fn new(text: &str, kind: ScimType) -> Result<Parser, ScimError> {
        if text.len() > MAX_LEN {
            return Err(ScimError::bad_request(
                kind,
                format!("longer than {MAX_LEN} bytes"),
            ));
        }
        let toks = lex(text).map_err(|m| ScimError::bad_request(kind, m))?;
        Ok(Parser {
            toks,
            pos: 0,
            depth: 0,
            terms: 0,
            kind,
        })
    }

    fn error(&self, msg: impl std::fmt::Display) -> ScimError {
        let at = match self.toks.get(self.pos) {
            Some((at, _)) => format!(" at {at}"),
            None => " at the end".to_string(),
        };
        ScimError::bad_request(self.kind, format!("{msg}{at}"))
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|(_, t)| t.clone());
        self.pos += 1;
        t
    }

    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<(), ScimError> {
        if self.peek() == Some(&tok) {
            self.next();
            Ok(())
        } else {
            Err(self.error(format!("expected {what}")))
        }
    }

    fn end(&self) -> Result<(), ScimError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error("unexpected text")),
        }
    }

    fn deeper(&mut self) -> Result<(), ScimError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!("nested deeper than {MAX_DEPTH}")));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Filter, ScimError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.next();
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, ScimError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.next();
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, ScimError> {
        if self.keyword("not") {
            self.next();
            if self.peek() != Some(&Tok::LParen) {
                return Err(self.error("`not` must be followed by `(`"));
            }
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.next();
            self.deeper()?;
            let f = self.or()?;
            self.expect(Tok::RParen, "`)`")?;
            self.depth -= 1;
            return Ok(f);
        }
        let path = self.attr_path()?;
        if self.peek() == Some(&Tok::LBracket) {
            if path.sub.is_some() {
                return Err(self.error("a value filter follows an attribute, not a sub-attribute"));
            }
            self.next();
            self.deeper()?;
            let inner = self.or()?;
            self.expect(Tok::RBracket, "`]`")?;
            self.depth -= 1;
            if inner_has_value_path(&inner) {
                return Err(self.error("value filters do not nest"));
            }
            // `attr[f].sub op v`
            if let Some(Tok::Word(w)) = self.peek() {
                if let Some(sub) = w.strip_prefix('.') {
                    let sub = sub.to_string();
                    check_name(&sub).map_err(|m| self.error(m))?;
                    self.next();
                    let sub_path = AttrPath {
                        uri: None,
                        attr: sub,
                        sub: None,
                    };
                    let cond = self.condition(sub_path)?;
                    return Ok(Filter::ValuePath(
                        path,
                        Box::new(Filter::And(Box::new(inner), Box::new(cond))),
                    ));
                }
            }
            return Ok(Filter::ValuePath(path, Box::new(inner)));
        }
        self.condition(path)
    }

    /// `op value` or `pr` after an attribute path.
    fn condition(&mut self, path: AttrPath) -> Result<Filter, ScimError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(self.error(format!("more than {MAX_TERMS} comparisons")));
        }
        let op = match self.next() {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("pr") => return Ok(Filter::Present(path)),
            Some(Tok::Word(w)) => match CompareOp::parse(&w) {
                Some(op) => op,
                None => {
                    self.pos -= 1;
                    return Err(self.error(format!("unknown operator {w:?}")));
                }
            },
            _ => {
                self.pos -= 1;
                return Err(self.error(format!("expected an operator after {path}")));
            }
        };
        let value = match self.next() {
            Some(Tok::Str(s)) => Literal::Str(s),
            Some(Tok::Word(w)) => match w.to_ascii_lowercase().as_str() {
                "true" => Literal::Bool(true),
                "false" => Literal::Bool(false),
                "null" => Literal::Null,
                _ => match serde_json::from_str::<serde_json::Number>(&w) {
                    Ok(n) => Literal::Num(n),
                    Err(_) => {
                        self.pos -= 1;
                        return Err(self.error(format!(
                            "expected a value (a quoted string, a number, true, false or null), found {w:?}"
                        )));
                    }
                },
            },
            _ => {
                self.pos -= 1;
                return Err(self.error(format!("expected a value after {}", op.as_str())));
            }
        };
        Ok(Filter::Compare(path, op, value))
    }

    fn attr_path(&mut self) -> Result<AttrPath, ScimError> {
        match self.peek() {
            Some(Tok::Word(w)) => {
                let w = w.clone();
                let path = split_path(&w).map_err(|m| self.error(m))?;
                self.next();
                Ok(path)
            }
            _ => Err(self.error("expected an attribute")),
        }
    }
}

fn inner_has_value_path(f: &Filter) -> bool {
    match f {
        Filter::ValuePath(..) => true,
        Filter::And(a, b) | Filter::Or(a, b) => inner_has_value_path(a) || inner_has_value_path(b),
        Filter::Not(a) => inner_has_value_path(a),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> AttrPath {
        split_path(s).unwrap()
    }

    fn cmp(p: &str, op: CompareOp, v: Literal) -> Filter {
        Filter::Compare(path(p), op, v)
    }

    fn s(v: &str) -> Literal {
        Literal::Str(v.to_string())
    }

    #[test]
    fn rfc7644_examples_parse() {
        for f in [
            r#"userName Eq "john""#,
            r#"name.familyName co "O'Malley""#,
            r#"userName sw "J""#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
            r#"title pr"#,
            r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
            r#"title pr and userType eq "Employee""#,
            r#"title pr or userType eq "Intern""#,
            r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
            r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType eq "Employee" and (emails.type eq "work")"#,
            r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
            r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
        ] {
            parse(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
    }

    #[test]
    fn precedence_and_case() {
        // and binds tighter than or; keywords and operators in any case.
        let f = parse(r#"a EQ "1" OR b eq "2" AND c Pr"#).unwrap();
        assert_eq!(
            f,
            Filter::Or(
                Box::new(cmp("a", CompareOp::Eq, s("1"))),
                Box::new(Filter::And(
                    Box::new(cmp("b", CompareOp::Eq, s("2"))),
                    Box::new(Filter::Present(path("c"))),
                )),
            )
        );
        let f = parse(r#"(a eq "1" or b eq "2") and not (c pr)"#).unwrap();
        assert!(matches!(f, Filter::And(ref l, ref r)
            if matches!(**l, Filter::Or(..)) && matches!(**r, Filter::Not(_))));
    }

    #[test]
    fn literals_and_escapes() {
        let f = parse(r#"x eq "a\"b\\c\u00e9\n""#).unwrap();
        assert_eq!(f, cmp("x", CompareOp::Eq, s("a\"b\\c\u{e9}\n")));
        assert_eq!(
            parse("x eq true").unwrap(),
            cmp("x", CompareOp::Eq, Literal::Bool(true))
        );
        assert_eq!(
            parse("x ne NULL").unwrap(),
            cmp("x", CompareOp::Ne, Literal::Null)
        );
        assert_eq!(
            parse("x gt -1.5e3").unwrap(),
            cmp("x", CompareOp::Gt, Literal::Num("-1.5e3".parse().unwrap()))
        );
        // Unicode inside a string is fine; only the structure is ASCII.
        assert_eq!(
            parse(r#"x eq "Žluťoučký kůň""#).unwrap(),
            cmp("x", CompareOp::Eq, s("Žluťoučký kůň"))
        );
    }

    #[test]
    fn paths_with_uris_and_subs() {
        let p = path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber");
        assert_eq!(
            p.uri.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!(p.attr, "employeeNumber");
        assert!(p.is("EMPLOYEENUMBER", None));
        let p = path("urn:ietf:params:scim:schemas:core:2.0:User:name.givenName");
        assert!(p.is("name", Some("givenname")));
        assert!(split_path("a.b.c").is_err());
        assert!(split_path("1abc").is_err());
        assert!(split_path("foo:bar").is_err());
    }

    #[test]
    fn value_paths() {
        let f = parse(r#"emails[type eq "work"].value co "@example.com""#).unwrap();
        assert_eq!(
            f,
            Filter::ValuePath(
                path("emails"),
                Box::new(Filter::And(
                    Box::new(cmp("type", CompareOp::Eq, s("work"))),
                    Box::new(cmp("value", CompareOp::Co, s("@example.com"))),
                ))
            )
        );
        assert!(parse(r#"emails[type eq "work"] and x pr"#).is_ok());
        assert!(parse(r#"emails[type eq "work"].value pr"#).is_ok());
        assert!(parse(r#"emails[x[y eq "1"]]"#).is_err());
        assert!(parse(r#"emails.value[type eq "work"]"#).is_err());
    }

    #[test]
    fn patch_paths() {
        let p = parse_path(r#"members[value eq "2819c223"]"#).unwrap();
        assert!(p.attr.is("members", None));
        assert!(p.filter.is_some() && p.sub.is_none());
        let p = parse_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(p.sub.as_deref(), Some("value"));
        let p = parse_path("name.givenName").unwrap();
        assert!(p.attr.is("name", Some("givenName")) && p.filter.is_none());
        let e = parse_path("emails[").unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidPath));
    }

    #[test]
    fn errors_are_invalid_filter() {
        for bad in [
            "",
            "userName",
            "userName eq",
            r#"userName eq "x"#,
            r#"userName eq "x" and"#,
            r#"userName xx "x""#,
            r#"userName eq john"#,
            r#"(userName eq "x""#,
            r#"userName eq "x")"#,
            r#"not userName eq "x""#,
            r#"userName eq "x" userName eq "y""#,
            r#"userName eq "\x""#,
            r#"userName eq 'x'"#,
            r#"userName eq "x" ; drop table users"#,
            r#"emails[type eq "work""#,
            "\u{0}",
        ] {
            let e = parse(bad).expect_err(bad);
            assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{bad}");
            assert_eq!(e.status, 400);
        }
    }

    #[test]
    fn caps() {
        let deep = format!(
            "{}a pr{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        assert!(parse(&deep).unwrap_err().detail.contains("deeper"));
        let ok = format!("{}a pr{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        parse(&ok).unwrap();
        let nots = format!(
            "{}(a pr){}",
            "not (".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        assert!(parse(&nots).is_err());
        let many = vec!["a pr"; MAX_TERMS + 1].join(" or ");
        assert!(parse(&many).unwrap_err().detail.contains("comparisons"));
        let long = format!(r#"a eq "{}""#, "x".repeat(MAX_LEN));
        assert!(parse(&long).unwrap_err().detail.contains("longer"));
    }

    /// Fuzz-ish: random token soups and mutations of valid filters never panic, and each
    /// either parses or is an invalidFilter error.
    #[test]
    fn random_input_never_panics() {
        let pieces = [
            "(",
            ")",
            "[",
            "]",
            " ",
            "and",
            "or",
            "not",
            "eq",
            "pr",
            "co",
            "\"x\"",
            "\"",
            "\\",
            "userName",
            "emails",
            ".value",
            "urn:a:b:c",
            "true",
            "null",
            "1",
            "-",
            "é",
            ":",
            ".",
        ];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let valid =
            r#"userName eq "a" and (emails[type eq "work"].value co "b" or not (active eq true))"#;
        for _ in 0..20_000 {
            let text: String = if rand() % 2 == 0 {
                (0..rand() % 12)
                    .map(|_| pieces[(rand() % pieces.len() as u64) as usize])
                    .collect::<Vec<_>>()
                    .join(if rand() % 2 == 0 { " " } else { "" })
            } else {
                let mut chars: Vec<char> = valid.chars().collect();
                for _ in 0..1 + rand() % 3 {
                    let i = (rand() % chars.len() as u64) as usize;
                    match rand() % 3 {
                        0 => {
                            chars.remove(i);
                        }
                        1 => chars.insert(i, pieces[(rand() % 5) as usize].chars().next().unwrap()),
                        _ => {
                            let j = (rand() % chars.len() as u64) as usize;
                            chars.swap(i, j)
                        }
                    }
                }
                chars.into_iter().collect()
            };
            if let Err(e) = parse(&text) {
                assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{text:?}");
            }
            let _ = parse_path(&text);
        }
    }
}
