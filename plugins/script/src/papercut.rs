//! `parse_papercut(line)`: a line of a PaperCut custom user directory program, as a user map.
//!
//! PaperCut's `all-users` output is one user per line, TAB-separated, in this order:
//! username, full name, email, department, office, primary card, other emails, secondary
//! card, username alias, home directory, PIN. Trailing fields may be left off.

use rhai::{Array, Dynamic, Map};

/// The map's keys: roster's fields where there is one (so the default mapping fills them),
/// PaperCut's own names otherwise.
pub fn parse(line: &str) -> Map {
    let f: Vec<&str> = line
        .trim_end_matches(['\r', '\n'])
        .split('\t')
        .map(str::trim)
        .collect();
    let get = |i: usize| f.get(i).copied().filter(|s| !s.is_empty());
    let mut map = Map::new();
    let mut put = |key: &str, v: Option<&str>| {
        if let Some(v) = v {
            map.insert(key.into(), v.to_string().into());
        }
    };
    put("username", get(0));
    put("full_name", get(1));
    put("email", get(2));
    put("department", get(3));
    put("office", get(4));
    put("home_directory", get(9));
    let list =
        |vals: Vec<&str>| -> Array { vals.into_iter().map(|v| v.to_string().into()).collect() };
    let cards: Vec<&str> = [get(5), get(7)].into_iter().flatten().collect();
    let other_emails: Vec<&str> = get(6)
        .map(|s| s.split([',', ';', ' ']).filter(|e| !e.is_empty()).collect())
        .unwrap_or_default();
    let aliases: Vec<&str> = get(8).into_iter().collect();
    let pins: Vec<&str> = get(10).into_iter().collect();
    for (key, vals) in [
        ("cards", cards),
        ("other_emails", other_emails),
        ("aliases", aliases),
        ("pins", pins),
    ] {
        if !vals.is_empty() {
            map.insert(key.into(), Dynamic::from_array(list(vals)));
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: &Map, k: &str) -> String {
        m.get(k).map(|v| v.to_string()).unwrap_or_default()
    }

    fn list(m: &Map, k: &str) -> Vec<String> {
        m.get(k)
            .map(|v| {
                v.clone()
                    .cast::<Array>()
                    .iter()
                    .map(|x| x.to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_full_papercut_line() {
        // As PaperCut's sample custom user program prints it.
        let line = "jsmith\tJohn Smith\tjohn.smith@example.com\tSales\tLevel 2\t1234567\t\
                    js@example.org,john@example.net\t7654321\tjohn.smith\t\\\\fs01\\home\\jsmith\t4321\n";
        let m = parse(line);
        assert_eq!(text(&m, "username"), "jsmith");
        assert_eq!(text(&m, "full_name"), "John Smith");
        assert_eq!(text(&m, "email"), "john.smith@example.com");
        assert_eq!(text(&m, "department"), "Sales");
        assert_eq!(text(&m, "office"), "Level 2");
        assert_eq!(list(&m, "cards"), ["1234567", "7654321"]);
        assert_eq!(
            list(&m, "other_emails"),
            ["js@example.org", "john@example.net"]
        );
        assert_eq!(list(&m, "aliases"), ["john.smith"]);
        assert_eq!(text(&m, "home_directory"), "\\\\fs01\\home\\jsmith");
        assert_eq!(list(&m, "pins"), ["4321"]);
    }

    #[test]
    fn short_and_sparse_lines_leave_out_what_is_empty() {
        let m = parse("guest\tGuest User\r\n");
        assert_eq!(m.len(), 2);
        assert_eq!(text(&m, "full_name"), "Guest User");
        let m = parse("kate\t\t\t\t\t\t\t99\t\t\t");
        assert_eq!(list(&m, "cards"), ["99"]);
        assert!(!m.contains_key("email") && !m.contains_key("pins"));
    }
}
