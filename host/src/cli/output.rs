//! How the commands print: aligned tables and JSON. Stored data may hold anything a
//! directory sent, so text shown on a terminal has its control characters escaped.

use anyhow::Result;
use serde::Serialize;
use std::borrow::Cow;
use std::fmt::Write;

/// A value for one line or cell: every control character escaped, so stored data cannot
/// move the cursor, clear the screen, ring the bell or break a table row.
pub fn clean(s: &str) -> Cow<'_, str> {
    escape(s, |_| true)
}

/// Free text that may span lines (messages, reasons): as [`clean`], but newlines and tabs
/// stay.
pub fn clean_text(s: &str) -> Cow<'_, str> {
    escape(s, |c| c != '\n' && c != '\t')
}

fn escape(s: &str, escaped: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() && escaped(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() && escaped(c) {
            // C0 and DEL as \x1b; C1 (U+0080..U+009F) as \u{9b}.
            if c.is_ascii() {
                let _ = write!(out, "\\x{:02x}", c as u32);
            } else {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Prints a value as pretty JSON (which escapes control characters itself).
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints an aligned table.
pub fn table(headers: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
    print!("{}", render_table(headers, rows));
}

fn render_table(headers: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = (rows.into_iter())
        .map(|r| r.iter().map(|c| clean(c).into_owned()).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let s: Vec<String> = (cells.iter().enumerate())
            .map(|(i, c)| format!("{c}{}", " ".repeat(widths[i] - c.chars().count())))
            .collect();
        out.push_str(s.join("  ").trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(clean("alice"), "alice");
        assert!(matches!(clean("Anna Lee"), Cow::Borrowed(_)));
        assert_eq!(clean("\u{1b}[2J\u{7}x\0"), "\\x1b[2J\\x07x\\x00");
        assert_eq!(clean("a\u{9b}b\u{7f}"), "a\\u{9b}b\\x7f");
        assert_eq!(clean("a\nb\tc"), "a\\x0ab\\x09c");
        assert_eq!(clean_text("a\nb\tc\u{1b}"), "a\nb\tc\\x1b");
        assert_eq!(clean("Šárka Nováková"), "Šárka Nováková");
    }

    #[test]
    fn tables_align_and_escape_cells() {
        let t = render_table(
            &["NAME", "EMAIL"],
            [
                vec!["ann".to_string(), "a@x".into()],
                vec!["\u{1b}[2J".into(), String::new()],
            ],
        );
        assert_eq!(t, "NAME     EMAIL\nann      a@x\n\\x1b[2J\n");
        assert!(!t.contains('\u{1b}'));
    }
}
