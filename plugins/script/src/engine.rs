//! The Rhai engine both roles run on: limits, the functions that reach the host, and error
//! messages that carry `file:line:col`.

use crate::values::{from_json, to_map};
use crate::Host;
use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, ParseError, Position, AST};
use std::rc::Rc;

/// Operations one mapping call (one entry) may take by default.
pub const MAPPING_OPERATIONS: u64 = 1_000_000;
/// Operations a whole source run may take by default; the source's `timeout` applies too.
pub const SOURCE_OPERATIONS: u64 = 1_000_000_000;
/// Largest string a script may build, in bytes; Rhai counts the strings inside an array or
/// map together, so it also bounds a file read whole by read_lines or read_csv.
pub const MAX_STRING: usize = 64 << 20;
/// Largest array (for example the lines of a file).
pub const MAX_ARRAY: usize = 1_000_000;
/// Largest object map.
pub const MAX_MAP: usize = 100_000;
/// Deepest function-call nesting.
pub const MAX_CALL_LEVELS: usize = 64;

type Result<T> = std::result::Result<T, Box<EvalAltResult>>;

/// An engine with the limits and every host function. `max_operations` 0 means the default
/// is not lifted: callers pass the role's default or the admin's override.
pub fn new(host: Rc<dyn Host>, max_operations: u64) -> Engine {
    let mut engine = Engine::new();
    engine.set_max_operations(max_operations);
    engine.set_max_string_size(MAX_STRING);
    engine.set_max_array_size(MAX_ARRAY);
    engine.set_max_map_size(MAX_MAP);
    engine.set_max_call_levels(MAX_CALL_LEVELS);
    // No `import` of other script files: a script reads only what the host granted.
    engine.set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
    let h = host.clone();
    engine.on_print(move |s| h.log(false, s));
    let h = host.clone();
    engine.on_debug(move |s, _, pos| h.log(true, &format!("{pos:?}: {s}")));

    let h = host.clone();
    engine.register_fn("read_lines", move |path: &str| -> Result<Array> {
        let text = read_text(&*h, path)?;
        Ok(text
            .lines()
            .map(|l| Dynamic::from(l.trim_end_matches('\r').to_string()))
            .collect())
    });
    let h = host.clone();
    engine.register_fn("read_csv", move |path: &str| -> Result<Array> {
        read_csv(&*h, path, None)
    });
    let h = host.clone();
    engine.register_fn(
        "read_csv",
        move |path: &str, delimiter: &str| -> Result<Array> {
            read_csv(&*h, path, Some(delimiter))
        },
    );
    let h = host.clone();
    engine.register_fn("read_json", move |path: &str| -> Result<Dynamic> {
        let bytes = h.read_file(path).map_err(runtime)?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| runtime(format!("read_json({path:?}): not JSON: {e}")))?;
        Ok(from_json(v))
    });
    let h = host.clone();
    engine.register_fn("http_get", move |url: &str| -> Result<String> {
        http_text(&*h, url)
    });
    let h = host.clone();
    engine.register_fn("http_get_json", move |url: &str| -> Result<Dynamic> {
        let text = http_text(&*h, url)?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| runtime(format!("http_get_json({url:?}): not JSON: {e}")))?;
        Ok(from_json(v))
    });
    let h = host;
    engine.register_fn(
        "ldap_search",
        move |filter: &str, attributes: Array| -> Result<Array> {
            let names: Vec<String> = attributes.into_iter().map(|a| a.to_string()).collect();
            let entries = h.ldap_search(filter, &names).map_err(runtime)?;
            Ok(entries
                .into_iter()
                .map(|e| {
                    let mut map = to_map(e.attributes);
                    map.insert("dn".into(), e.dn.into());
                    Dynamic::from_map(map)
                })
                .collect())
        },
    );
    engine.register_fn("parse_papercut", |line: &str| -> Map {
        crate::papercut::parse(line)
    });
    engine
}

fn runtime(message: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(message.into()),
        Position::NONE,
    ))
}

fn read_text(host: &dyn Host, path: &str) -> Result<String> {
    let bytes = host.read_file(path).map_err(runtime)?;
    String::from_utf8(bytes).map_err(|_| runtime(format!("{path}: not UTF-8 text")))
}

/// A CSV file as an array of maps, one per row, keyed by the header row. Without a
/// delimiter, the header's most frequent of `,` `;` and TAB.
fn read_csv(host: &dyn Host, path: &str, delimiter: Option<&str>) -> Result<Array> {
    let bytes = host.read_file(path).map_err(runtime)?;
    let delimiter = match delimiter {
        Some("tab") | Some("\t") => b'\t',
        Some(d) if d.len() == 1 => d.as_bytes()[0],
        Some(d) => {
            return Err(runtime(format!(
                "read_csv: the delimiter must be one character or \"tab\", got {d:?}"
            )))
        }
        None => {
            let header = bytes.split(|b| *b == b'\n').next().unwrap_or(&[]);
            *[b',', b';', b'\t']
                .iter()
                .max_by_key(|d| header.iter().filter(|b| b == d).count())
                .unwrap_or(&b',')
        }
    };
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(bytes);
    let headers: Vec<rhai::ImmutableString> = reader
        .headers()
        .map_err(|e| runtime(format!("{path}: {e}")))?
        .iter()
        .map(|h| h.trim().into())
        .collect();
    let mut rows = Array::new();
    for record in reader.records() {
        let record = record.map_err(|e| runtime(format!("{path}: {e}")))?;
        let map: Map = headers
            .iter()
            .zip(record.iter())
            .map(|(h, v)| (h.as_str().into(), Dynamic::from(v.to_string())))
            .collect();
        rows.push(Dynamic::from_map(map));
    }
    Ok(rows)
}

fn http_text(host: &dyn Host, url: &str) -> Result<String> {
    let (status, body) = host.http_get(url).map_err(runtime)?;
    if !(200..300).contains(&status) {
        return Err(runtime(format!("GET {url}: HTTP {status}")));
    }
    String::from_utf8(body).map_err(|_| runtime(format!("GET {url}: the body is not UTF-8")))
}

/// Compiles a script; an error reads `name:line:col: reason`.
pub fn compile(engine: &Engine, name: &str, text: &str) -> std::result::Result<AST, String> {
    let mut ast = engine.compile(text).map_err(|e| parse_error(name, &e))?;
    ast.set_source(name);
    Ok(ast)
}

fn parse_error(name: &str, e: &ParseError) -> String {
    format!("{}: {}", at(name, e.1), e.0)
}

fn at(name: &str, pos: Position) -> String {
    match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => format!("{name}:{l}:{c}"),
        (Some(l), None) => format!("{name}:{l}"),
        _ => name.to_string(),
    }
}

/// A runtime error as `name:line:col: reason`, at the innermost position (inside the
/// script function that failed), naming the functions it was called through.
pub fn describe(name: &str, e: EvalAltResult) -> String {
    let mut calls = Vec::new();
    let mut outer = e.position();
    let mut inner = e;
    while let EvalAltResult::ErrorInFunctionCall(f, _, nested, pos) = inner {
        calls.push(f);
        if !pos.is_none() {
            outer = pos;
        }
        inner = *nested;
    }
    let mut pos = inner.take_position();
    if pos.is_none() {
        pos = outer;
    }
    let reason = match &inner {
        EvalAltResult::ErrorRuntime(v, _) if v.is_string() => v.to_string(),
        EvalAltResult::ErrorTooManyOperations(_) | EvalAltResult::ErrorTerminated(..) => {
            "too many operations: the script ran past its limit (script_max_operations); \
             an endless loop?"
                .to_string()
        }
        _ => inner.to_string(),
    };
    let via = if calls.is_empty() {
        String::new()
    } else {
        format!(" (in {})", calls.join(" < "))
    };
    format!("{}: {reason}{via}", at(name, pos))
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::LdapEntry;
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// A host with some files and URLs granted; anything else is denied as the real one is.
    #[derive(Default)]
    pub struct FakeHost {
        pub files: HashMap<String, String>,
        pub urls: HashMap<String, (u16, String)>,
        pub ldap: Vec<LdapEntry>,
        pub log: RefCell<Vec<String>>,
    }

    impl Host for FakeHost {
        fn read_file(&self, path: &str) -> std::result::Result<Vec<u8>, String> {
            (self.files.get(path).map(|t| t.as_bytes().to_vec()))
                .ok_or_else(|| format!("{path} is not granted to this source"))
        }
        fn http_get(&self, url: &str) -> std::result::Result<(u16, Vec<u8>), String> {
            (self.urls.get(url).map(|(s, b)| (*s, b.as_bytes().to_vec())))
                .ok_or_else(|| format!("{url}: origin not granted to this source"))
        }
        fn ldap_search(
            &self,
            filter: &str,
            _attributes: &[String],
        ) -> std::result::Result<Vec<LdapEntry>, String> {
            if self.ldap.is_empty() {
                return Err("the ldap capability is not granted to this source".into());
            }
            self.log.borrow_mut().push(format!("search {filter}"));
            Ok(self.ldap.clone())
        }
        fn log(&self, _debug: bool, message: &str) {
            self.log.borrow_mut().push(message.to_string());
        }
    }

    fn eval(host: FakeHost, script: &str) -> std::result::Result<Dynamic, String> {
        let engine = new(Rc::new(host), 100_000);
        let ast = compile(&engine, "t.rhai", script)?;
        engine
            .eval_ast::<Dynamic>(&ast)
            .map_err(|e| describe("t.rhai", *e))
    }

    #[test]
    fn files_are_read_as_lines_csv_and_json() {
        let mut host = FakeHost::default();
        host.files.insert("a.txt".into(), "one\r\ntwo\n".into());
        host.files.insert(
            "a.csv".into(),
            "\u{feff}user;name\nalice;Alice A\nbob;Bob\n".into(),
        );
        host.files.insert(
            "a.json".into(),
            r#"{"users": [{"n": 1}, {"n": 2.5}]}"#.into(),
        );
        let v = eval(
            host,
            r#"let l = read_lines("a.txt"); let c = read_csv("a.csv");
               let j = read_json("a.json");
               `${l[1]}|${c.len()}|${c[0].user}|${c[1].name}|${j.users[1].n}`"#,
        )
        .unwrap();
        assert_eq!(v.to_string(), "two|2|alice|Bob|2.5");
    }

    #[test]
    fn an_ungranted_file_or_origin_is_an_error_naming_it_with_its_position() {
        let e = eval(
            FakeHost::default(),
            "let x = 1;\n  read_lines(\"/etc/shadow\")",
        )
        .unwrap_err();
        assert!(e.starts_with("t.rhai:2:3: "), "{e}");
        assert!(e.contains("/etc/shadow is not granted"), "{e}");
        let e = eval(FakeHost::default(), "http_get(\"https://evil.example/x\")").unwrap_err();
        assert!(
            e.contains("https://evil.example/x: origin not granted"),
            "{e}"
        );
    }

    #[test]
    fn http_json_and_status_errors() {
        let mut host = FakeHost::default();
        host.urls
            .insert("https://hr/api".into(), (200, r#"[{"u": "x"}]"#.into()));
        host.urls.insert("https://hr/gone".into(), (404, "".into()));
        let h2 = FakeHost {
            urls: host.urls.clone(),
            ..Default::default()
        };
        assert_eq!(
            eval(host, r#"http_get_json("https://hr/api")[0].u"#)
                .unwrap()
                .to_string(),
            "x"
        );
        let e = eval(h2, r#"http_get("https://hr/gone")"#).unwrap_err();
        assert!(e.contains("HTTP 404"), "{e}");
    }

    #[test]
    fn ldap_entries_are_maps_with_their_dn() {
        let mut host = FakeHost::default();
        host.ldap.push(LdapEntry {
            dn: "uid=a,dc=x".into(),
            attributes: vec![
                ("uid".into(), vec!["a".into()]),
                ("mail".into(), vec!["a@x".into(), "b@x".into()]),
            ],
        });
        let v = eval(
            host,
            r#"let e = ldap_search("(uid=*)", ["uid", "mail"]); `${e[0].dn} ${e[0].uid} ${e[0].mail.len()}`"#,
        )
        .unwrap();
        assert_eq!(v.to_string(), "uid=a,dc=x a 2");
    }

    #[test]
    fn limits_stop_loops_and_huge_values() {
        let e = eval(FakeHost::default(), "let i = 0;\nloop { i += 1; }").unwrap_err();
        assert!(e.starts_with("t.rhai:2:"), "{e}");
        assert!(e.contains("too many operations"), "{e}");
        let e = eval(
            FakeHost::default(),
            "let s = \"xxxxxxxx\"; loop { s += s; }",
        )
        .unwrap_err();
        assert!(e.contains("ength of string"), "{e}");
        let e = eval(FakeHost::default(), "let a = []; a.pad(2000000, 0); a").unwrap_err();
        assert!(e.contains("ize of array"), "{e}");
        let e = eval(FakeHost::default(), "fn f(n) { f(n + 1) } f(0)").unwrap_err();
        assert!(e.contains("Stack overflow"), "{e}");
    }

    #[test]
    fn syntax_errors_carry_their_position() {
        let e = eval(FakeHost::default(), "let x = 1;\nlet y = ;").unwrap_err();
        assert!(e.starts_with("t.rhai:2:9: "), "{e}");
    }

    #[test]
    fn an_error_inside_a_function_points_inside_it() {
        let e = eval(
            FakeHost::default(),
            "fn inner(x) {\n  x.nope()\n}\ninner(1)",
        )
        .unwrap_err();
        assert!(e.starts_with("t.rhai:2:5: "), "{e}");
        assert!(e.contains("nope") && e.contains("(in inner)"), "{e}");
    }
}
