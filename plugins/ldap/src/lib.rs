//! roster's LDAP connector: users and groups from Active Directory, OpenLDAP or any LDAP
//! directory, through the connection the host opened and bound (the plugin never sees the
//! password).
//!
//! The logic is plain Rust, tested natively: [`config`] (profiles and their defaults),
//! [`entry`] (attribute values as text, users as rows), [`groups`] (the group graph:
//! member, memberUid, memberOf, nesting, range retrieval, scoping), [`cursor`] (delta
//! cursors and the full-or-delta decision) and [`run`] (a run's steps over any
//! [`run::Directory`]). `component` makes it a connector with the roster-plugin SDK.

pub mod config;
pub mod cursor;
pub mod entry;
pub mod groups;
pub mod report;
pub mod run;
pub mod sync;

#[cfg(target_arch = "wasm32")]
mod component;

/// Whole-run errors: the SDK's typed error.
pub use roster_plugin::Error;

/// An LDAP entry as the host hands it over: values are raw bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawEntry {
    pub dn: String,
    pub attributes: Vec<(String, Vec<Vec<u8>>)>,
}

impl RawEntry {
    /// The values of attribute `name` (case-insensitive; ranged names do not match).
    pub fn values(&self, name: &str) -> &[Vec<u8>] {
        self.attributes
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .unwrap_or(&[])
    }

    /// The first value of `name` as text.
    pub fn first_text(&self, name: &str) -> Option<String> {
        self.values(name)
            .first()
            .map(|v| entry::text_value(name, v))
            .filter(|v| !v.trim().is_empty())
    }
}

/// A DN in a form that compares equal however the server spelled it: RDNs split at
/// unescaped commas, trimmed around `=`, lower-cased.
pub fn normalise_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    let mut rdn = String::new();
    let mut chars = dn.chars();
    let push = |rdn: &mut String, out: &mut String| {
        let r = rdn.trim();
        if !r.is_empty() {
            if !out.is_empty() {
                out.push(',');
            }
            match r.split_once('=') {
                Some((t, v)) => {
                    out.push_str(&t.trim().to_lowercase());
                    out.push('=');
                    out.push_str(&v.trim().to_lowercase());
                }
                None => out.push_str(&r.to_lowercase()),
            }
        }
        rdn.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                rdn.push(c);
                if let Some(n) = chars.next() {
                    rdn.push(n);
                }
            }
            ',' => push(&mut rdn, &mut out),
            _ => rdn.push(c),
        }
    }
    push(&mut rdn, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_compare_however_spelled() {
        assert_eq!(
            normalise_dn("CN=Alice Smith, OU=Staff ,DC=Example,DC=test"),
            "cn=alice smith,ou=staff,dc=example,dc=test"
        );
        assert_eq!(
            normalise_dn("cn=Smith\\, Alice,dc=x"),
            "cn=smith\\, alice,dc=x"
        );
        assert_eq!(normalise_dn(""), "");
    }

    #[test]
    fn attribute_lookup_ignores_case() {
        let e = RawEntry {
            dn: "uid=a,dc=x".into(),
            attributes: vec![("givenName".into(), vec![b"Al".to_vec()])],
        };
        assert_eq!(e.first_text("givenname").as_deref(), Some("Al"));
        assert!(e.values("sn").is_empty());
    }
}
