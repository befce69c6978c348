//! Attribute values as text, and user entries as rows of roster fields plus raw attributes.

use crate::config::{Piece, Rule, Settings, FIELDS};
use crate::RawEntry;

/// A value as text: objectGUID in canonical GUID form, objectSid as `S-1-…`, UTF-8 as it
/// is, any other binary value in base64 (as LDIF shows it).
pub fn text_value(name: &str, bytes: &[u8]) -> String {
    if bytes.len() == 16
        && (name.eq_ignore_ascii_case("objectGUID")
            || name.eq_ignore_ascii_case("msDS-ConsistencyGuid"))
    {
        return guid_text(bytes.try_into().expect("16 bytes"));
    }
    if name.eq_ignore_ascii_case("objectSid") {
        if let Some(s) = sid_text(bytes) {
            return s;
        }
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => base64(bytes),
    }
}

/// The mixed-endian GUID text of AD's 16 raw objectGUID bytes: the first three groups are
/// little-endian.
pub fn guid_text(b: &[u8; 16]) -> String {
    let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
    let mut s = String::with_capacity(36);
    for (i, &k) in order.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{:02x}", b[k]));
    }
    s
}

/// A binary SID as `S-1-5-21-…`.
pub fn sid_text(b: &[u8]) -> Option<String> {
    if b.len() < 8 {
        return None;
    }
    let count = b[1] as usize;
    if b.len() != 8 + 4 * count {
        return None;
    }
    let authority = b[2..8].iter().fold(0u64, |a, &x| (a << 8) | u64::from(x));
    let mut s = format!("S-{}-{}", b[0], authority);
    for i in 0..count {
        let o = 8 + 4 * i;
        let sub = u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        s.push_str(&format!("-{sub}"));
    }
    Some(s)
}

pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// AD's userAccountControl: bit 0x2 is ACCOUNTDISABLE.
pub fn is_disabled(entry: &RawEntry) -> bool {
    entry
        .first_text("userAccountControl")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .is_some_and(|uac| uac & 0x2 != 0)
}

/// The entry's anchor under `settings`, or why it has none.
pub fn anchor(entry: &RawEntry, settings: &Settings) -> Result<String, String> {
    if settings.anchor_is_dn() {
        return Ok(entry.dn.clone());
    }
    entry.first_text(&settings.anchor).ok_or_else(|| {
        format!(
            "no anchor: attribute {} is missing (is it readable by the bind account?)",
            settings.anchor
        )
    })
}

/// The value a field's rules give: the first rule with a non-empty result.
pub fn field_value(entry: &RawEntry, rules: &[Rule]) -> Option<String> {
    rules.iter().find_map(|r| match r {
        Rule::Attr(a) => entry.first_text(a).map(|v| v.trim().to_string()),
        Rule::Template(pieces) => {
            let mut out = String::new();
            for p in pieces {
                match p {
                    Piece::Text(t) => out.push_str(t),
                    Piece::Attr(a) => out.push_str(entry.first_text(a)?.trim()),
                }
            }
            Some(out).filter(|o| !o.trim().is_empty())
        }
    })
}

/// Columns that come before the raw attributes in every row.
pub const FIXED_COLUMNS: [&str; 8] = [
    "username",
    "full_name",
    "email",
    "personal_number",
    "phone",
    "language",
    "active",
    "dn",
];

/// The columns of a batch of user rows: roster's fields (filled by the profile's rules), the
/// DN, then the configured attributes; with `*` or `+`, also every other attribute the
/// page's entries carry, in name order.
pub fn columns(settings: &Settings, page: &[RawEntry]) -> Vec<String> {
    let mut cols: Vec<String> = FIXED_COLUMNS.iter().map(|c| c.to_string()).collect();
    let add = |cols: &mut Vec<String>, a: &str| {
        if a != "*" && a != "+" && !cols.iter().any(|c| c.eq_ignore_ascii_case(a)) {
            cols.push(a.to_string());
        }
    };
    for a in &settings.attributes {
        add(&mut cols, a);
    }
    if settings.wildcard() {
        let mut extra: Vec<&str> = page
            .iter()
            .flat_map(|e| e.attributes.iter().map(|(n, _)| n.as_str()))
            .filter(|n| !n.contains(';'))
            .collect();
        extra.sort_by_key(|n| n.to_ascii_lowercase());
        for a in extra {
            add(&mut cols, a);
        }
    }
    cols
}

/// A user entry turned into the values of `columns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: String,
    pub values: Vec<Vec<String>>,
    pub disabled: bool,
}

/// The row of a user entry, or the reason it cannot be one (a failed entry).
pub fn user_row(
    entry: &RawEntry,
    settings: &Settings,
    columns: &[String],
) -> Result<UserRow, String> {
    let id = anchor(entry, settings)?;
    let disabled = settings.reads_account_control() && is_disabled(entry);
    let mut values = Vec::with_capacity(columns.len());
    for (i, (field, key)) in FIELDS.iter().enumerate() {
        let v = field_value(entry, &settings.fields[i]);
        if *field == "username" && v.is_none() {
            let names: Vec<String> = settings.fields[0]
                .iter()
                .flat_map(|r| r.attributes())
                .map(str::to_string)
                .collect();
            return Err(format!(
                "no username: {} missing or empty (set {key} to the attribute that holds it)",
                names.join(", ")
            ));
        }
        values.push(v.into_iter().collect());
    }
    values.push(vec![if disabled { "false" } else { "true" }.to_string()]);
    values.push(vec![entry.dn.clone()]);
    for col in &columns[FIXED_COLUMNS.len()..] {
        values.push(
            entry
                .values(col)
                .iter()
                .map(|v| text_value(col, v))
                .collect(),
        );
    }
    Ok(UserRow {
        id,
        values,
        disabled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dn: &str, attrs: &[(&str, &[&[u8]])]) -> RawEntry {
        RawEntry {
            dn: dn.into(),
            attributes: attrs
                .iter()
                .map(|(n, vs)| (n.to_string(), vs.iter().map(|v| v.to_vec()).collect()))
                .collect(),
        }
    }

    fn settings(json: &str) -> Settings {
        Settings::from_json(json).unwrap()
    }

    #[test]
    fn guid_text_is_mixed_endian() {
        let bytes: [u8; 16] = [
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ];
        assert_eq!(guid_text(&bytes), "33221100-5544-7766-8899-aabbccddeeff");
        assert_eq!(
            text_value("objectGUID", &bytes),
            "33221100-5544-7766-8899-aabbccddeeff"
        );
        // Not 16 bytes: not a GUID.
        assert_eq!(text_value("objectGUID", b"abc"), "abc");
    }

    #[test]
    fn sid_and_binary_values() {
        // S-1-5-21-1-2-3-500
        let mut sid = vec![1u8, 5, 0, 0, 0, 0, 0, 5];
        for sub in [21u32, 1, 2, 3, 500] {
            sid.extend_from_slice(&sub.to_le_bytes());
        }
        assert_eq!(text_value("objectSid", &sid), "S-1-5-21-1-2-3-500");
        assert_eq!(text_value("jpegPhoto", &[0xff, 0xd8, 0xff]), "/9j/");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(
            text_value("cn", "Žofie Nováková".as_bytes()),
            "Žofie Nováková"
        );
    }

    #[test]
    fn ad_user_becomes_a_row() {
        let s = settings(r#"{"profile": "ad"}"#);
        let guid: &[u8] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
        let e = entry(
            "CN=Alice,OU=Staff,DC=example,DC=test",
            &[
                ("objectGUID", &[guid]),
                ("sAMAccountName", &[b"alice"]),
                ("cn", &[b"Alice"]),
                ("mail", &[b"alice@example.test"]),
                ("telephoneNumber", &[b"+1 555"]),
                ("userAccountControl", &[b"514"]),
                ("givenName", &[b"Alice"]),
            ],
        );
        let cols = columns(&s, std::slice::from_ref(&e));
        let row = user_row(&e, &s, &cols).unwrap();
        assert_eq!(row.id, "04030201-0605-0807-090a-0b0c0d0e0f10");
        assert!(row.disabled, "514 has bit 0x2");
        let get = |c: &str| {
            let i = cols.iter().position(|x| x == c).unwrap();
            row.values[i].clone()
        };
        assert_eq!(get("username"), ["alice"]);
        assert_eq!(get("full_name"), ["Alice"], "displayName missing: cn");
        assert_eq!(get("phone"), ["+1 555"], "mobile missing: telephoneNumber");
        assert_eq!(get("active"), ["false"]);
        assert_eq!(get("dn"), ["CN=Alice,OU=Staff,DC=example,DC=test"]);
        assert_eq!(get("givenName"), ["Alice"], "raw attributes for templates");
        assert!(get("language").is_empty());
        assert_eq!(row.values.len(), cols.len());
    }

    #[test]
    fn openldap_full_name_falls_back_to_given_name_and_surname() {
        let s = settings(r#"{"profile": "openldap"}"#);
        let e = entry(
            "uid=bob,ou=people,dc=example,dc=test",
            &[
                ("entryUUID", &[b"0f6f0c52-0000-1000-8000-000000000001"]),
                ("uid", &[b"bob"]),
                ("givenName", &[b"Bob"]),
                ("sn", &[b"Jones"]),
                ("employeeNumber", &[b"42"]),
                ("userAccountControl", &[b"2"]),
            ],
        );
        let cols = columns(&s, &[]);
        let row = user_row(&e, &s, &cols).unwrap();
        assert_eq!(row.values[1], ["Bob Jones"]);
        assert_eq!(row.values[3], ["42"]);
        assert!(
            !row.disabled,
            "userAccountControl means nothing to OpenLDAP"
        );
    }

    #[test]
    fn no_username_or_anchor_is_a_failed_entry() {
        let s = settings(r#"{"profile": "openldap"}"#);
        let cols = columns(&s, &[]);
        let e = entry(
            "cn=nobody,dc=x",
            &[("entryUUID", &[b"u-1"]), ("cn", &[b"Nobody"])],
        );
        let reason = user_row(&e, &s, &cols).unwrap_err();
        assert!(reason.contains("no username: uid"), "{reason}");
        let e = entry("uid=x,dc=x", &[("uid", &[b"x"])]);
        let reason = user_row(&e, &s, &cols).unwrap_err();
        assert!(reason.contains("entryUUID"), "{reason}");
    }

    #[test]
    fn wildcard_columns_follow_the_page() {
        let s = settings(r#"{"attributes": ["*", "uid"]}"#);
        let e = entry(
            "uid=a,dc=x",
            &[
                ("uid", &[b"a"]),
                ("sn", &[b"A"]),
                ("member;range=0-1", &[b"x"]),
            ],
        );
        let cols = columns(&s, &[e]);
        assert_eq!(&cols[FIXED_COLUMNS.len()..], ["uid", "sn"]);
    }
}
