//! Copies the plugin contract (`wit/*.wit` at the repository root) into OUT_DIR for
//! `wit_bindgen::generate!`.
//!
//! Workaround, to remove once the WIT is fixed: `wit/plugin.wit` declares a function named
//! `map`, and `map` is a keyword for the WIT parser of wit-bindgen 0.61 (and of wasmtime 48's
//! bindgen), so it must be written `%map`. The copy escapes such declarations; on a fixed WIT
//! this is a no-op. Escaping changes only the syntax, not the name: the component is the same.
use std::path::PathBuf;
use std::{env, fs};

/// WIT keywords that the contract uses as plain names.
const KEYWORDS: &[&str] = &["map"];

fn main() {
    let wit = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("../../../wit");
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap()).join("wit");
    println!("cargo:rerun-if-changed={}", wit.display());
    fs::create_dir_all(&out).unwrap();
    for entry in fs::read_dir(&wit).unwrap_or_else(|e| panic!("read {}: {e}", wit.display())) {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wit") {
            let text = fs::read_to_string(&path).unwrap();
            fs::write(out.join(path.file_name().unwrap()), escape_keywords(&text)).unwrap();
        }
    }
}

/// `    map: func(...)` becomes `    %map: func(...)`.
fn escape_keywords(text: &str) -> String {
    let mut result = String::with_capacity(text.len() + 16);
    for line in text.split_inclusive('\n') {
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let is_keyword_decl = KEYWORDS.iter().any(|k| {
            body.strip_prefix(k)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        });
        result.push_str(indent);
        if is_keyword_decl {
            result.push('%');
        }
        result.push_str(body);
    }
    result
}
