//! The connector's config: `[sources.NAME.config]` as JSON. The connection keys (`url`,
//! `bind_dn`, `password`, TLS, `base_dn`, `timeout`) are the host's; this module reads the
//! rest, starting from the profile's defaults.

use roster_plugin::Config;
use serde_json::Value;

use crate::Error;

/// Which directory the defaults are made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Ad,
    OpenLdap,
    Generic,
}

impl Profile {
    pub fn parse(s: &str) -> Result<Profile, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ad" | "activedirectory" | "active-directory" => Ok(Profile::Ad),
            "openldap" => Ok(Profile::OpenLdap),
            "generic" | "" => Ok(Profile::Generic),
            other => Err(Error::Config(format!(
                "profile: {other:?} is not a profile (use \"ad\", \"openldap\" or \"generic\")"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::Ad => "ad",
            Profile::OpenLdap => "openldap",
            Profile::Generic => "generic",
        }
    }
}

/// How changes are found in delta runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracking {
    /// AD: `uSNChanged` against the DC's `highestCommittedUSN`.
    Usn,
    /// `modifyTimestamp` high-water mark.
    Timestamp,
}

/// One way to get a field's value: an attribute, or a `%attr%` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Attr(String),
    Template(Vec<Piece>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Attr(String),
}

impl Rule {
    /// `"cn"` is an attribute; anything with `%` is a template such as `"%givenName% %sn%"`.
    pub fn parse(s: &str) -> Result<Rule, Error> {
        if !s.contains('%') {
            return Ok(Rule::Attr(s.trim().to_string()));
        }
        let mut pieces = Vec::new();
        let mut rest = s;
        while let Some(start) = rest.find('%') {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 1..];
            let end = after
                .find('%')
                .ok_or_else(|| Error::Config(format!("template {s:?}: unclosed %")))?;
            if end == 0 {
                pieces.push(Piece::Text("%".into()));
            } else {
                pieces.push(Piece::Attr(after[..end].to_string()));
            }
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Rule::Template(pieces))
    }

    /// The attributes this rule reads.
    pub fn attributes(&self) -> Vec<&str> {
        match self {
            Rule::Attr(a) => vec![a.as_str()],
            Rule::Template(p) => p
                .iter()
                .filter_map(|p| match p {
                    Piece::Attr(a) => Some(a.as_str()),
                    Piece::Text(_) => None,
                })
                .collect(),
        }
    }
}

/// The roster fields the connector fills, with their config keys.
pub const FIELDS: [(&str, &str); 6] = [
    ("username", "username_attribute"),
    ("full_name", "full_name_attribute"),
    ("email", "email_attribute"),
    ("personal_number", "personal_number_attribute"),
    ("phone", "phone_attribute"),
    ("language", "language_attribute"),
];

/// A parsed, checked config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub profile: Profile,
    pub user_filter: String,
    /// Empty: groups are not read.
    pub group_filter: String,
    /// The attributes fetched for users; each becomes a column of the rows.
    pub attributes: Vec<String>,
    /// `dn`, `objectGUID`, `entryUUID` or any attribute.
    pub anchor: String,
    /// Per field of [`FIELDS`], the rules tried in order.
    pub fields: Vec<Vec<Rule>>,
    /// Only members of these groups (directly or through nesting).
    pub groups: Vec<String>,
    pub include_disabled: bool,
    /// Seconds between full runs; 0: every run is full.
    pub full_sync_every: u64,
    pub page_size: u32,
    pub tracking: Tracking,
    /// A fingerprint of the whole config: a delta cursor is valid only under the same one.
    pub fingerprint: String,
}

fn defaults(
    profile: Profile,
) -> (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
) {
    match profile {
        Profile::Ad => (
            "(&(objectCategory=person)(objectClass=user))",
            "(objectClass=group)",
            &[
                "objectGUID",
                "sAMAccountName",
                "userPrincipalName",
                "displayName",
                "cn",
                "givenName",
                "sn",
                "mail",
                "employeeID",
                "mobile",
                "telephoneNumber",
                "preferredLanguage",
                "department",
                "title",
                "userAccountControl",
            ],
            "objectGUID",
        ),
        Profile::OpenLdap => (
            "(|(objectClass=inetOrgPerson)(objectClass=posixAccount))",
            "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))",
            &[
                "entryUUID",
                "uid",
                "cn",
                "givenName",
                "sn",
                "displayName",
                "mail",
                "employeeNumber",
                "mobile",
                "telephoneNumber",
                "preferredLanguage",
                "departmentNumber",
                "title",
            ],
            "entryUUID",
        ),
        Profile::Generic => (
            "(objectClass=person)",
            "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup)(objectClass=group))",
            &[
                "uid",
                "sAMAccountName",
                "cn",
                "givenName",
                "sn",
                "displayName",
                "mail",
                "employeeNumber",
                "employeeID",
                "mobile",
                "telephoneNumber",
                "preferredLanguage",
            ],
            "dn",
        ),
    }
}

/// The default rules of each field of [`FIELDS`].
fn default_fields(profile: Profile) -> [&'static [&'static str]; 6] {
    match profile {
        Profile::Ad => [
            &["sAMAccountName"],
            &["displayName", "cn"],
            &["mail"],
            &["employeeID"],
            &["mobile", "telephoneNumber"],
            &["preferredLanguage"],
        ],
        Profile::OpenLdap => [
            &["uid"],
            &["cn", "%givenName% %sn%"],
            &["mail"],
            &["employeeNumber"],
            &["mobile", "telephoneNumber"],
            &["preferredLanguage"],
        ],
        Profile::Generic => [
            &["uid", "sAMAccountName"],
            &["displayName", "cn", "%givenName% %sn%"],
            &["mail"],
            &["employeeNumber", "employeeID"],
            &["mobile", "telephoneNumber"],
            &["preferredLanguage"],
        ],
    }
}

/// The profile defaults as an admin would write them, for `info()`.
pub fn default_text(profile: Profile, key: &str) -> String {
    let (user, group, attrs, anchor) = defaults(profile);
    let list = |items: &[&str]| {
        let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
        format!("[{}]", quoted.join(", "))
    };
    match key {
        "user_filter" => format!("{user:?}"),
        "group_filter" => format!("{group:?}"),
        "attributes" => list(attrs),
        "anchor" => format!("{anchor:?}"),
        _ => match FIELDS.iter().position(|(_, k)| *k == key) {
            Some(i) => list(default_fields(profile)[i]),
            None => String::new(),
        },
    }
}

impl Settings {
    /// Parse the JSON config. Unknown keys are ignored (the host validates against `info()`,
    /// and the connection keys are the host's); errors name the key.
    pub fn from_json(json: &str) -> Result<Settings, Error> {
        Settings::from_config(&Config::from_json(json)?)
    }

    /// The same from the SDK's config. Its declared defaults are ours; the fingerprint is of
    /// the admin's own keys.
    pub fn from_config(map: &Config) -> Result<Settings, Error> {
        let string =
            |key: &str| -> Result<Option<String>, Error> { Ok(map.string(key)?.map(String::from)) };
        let list = |key: &str| map.strings(key);
        let profile = Profile::parse(&string("profile")?.unwrap_or_default())?;
        let (user_filter, group_filter, attributes, anchor) = defaults(profile);
        let user_filter = filter(map, "user_filter")?.unwrap_or_else(|| user_filter.into());
        if user_filter.is_empty() {
            return Err(Error::Config(
                "user_filter: must not be empty (for example \"(objectClass=person)\")".into(),
            ));
        }
        let group_filter = filter(map, "group_filter")?.unwrap_or_else(|| group_filter.into());
        let attributes = match list("attributes")? {
            Some(a) => a,
            None => attributes.iter().map(|s| s.to_string()).collect(),
        };
        let anchor = string("anchor")?
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| anchor.into());
        let mut fields = Vec::new();
        for (i, (field, key)) in FIELDS.iter().enumerate() {
            let texts = match list(key)? {
                Some(t) => t,
                None => default_fields(profile)[i]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            };
            let rules = texts
                .iter()
                .map(|t| Rule::parse(t).map_err(|e| Error::Config(format!("{key}: {e}"))))
                .collect::<Result<Vec<_>, _>>()?;
            if *field == "username" && rules.is_empty() {
                return Err(Error::Config(format!(
                    "{key}: must name at least one attribute"
                )));
            }
            fields.push(rules);
        }
        let groups = list("groups")?.unwrap_or_default();
        if !groups.is_empty() && group_filter.is_empty() {
            return Err(Error::Config(
                "groups: needs a group_filter that finds those groups".into(),
            ));
        }
        let include_disabled = map.boolean("include_disabled")?.unwrap_or(false);
        let full_sync_every = match string("full_sync_every")? {
            Some(d) => {
                parse_duration(&d).map_err(|e| Error::Config(format!("full_sync_every: {e}")))?
            }
            None => 24 * 3600,
        };
        let page_size = match map.value("page_size") {
            None => 1000,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(n @ 1..=100_000) => n as u32,
                _ => {
                    return Err(Error::Config(format!(
                        "page_size: {n} is not between 1 and 100000"
                    )))
                }
            },
            Some(other) => {
                return Err(Error::Config(format!(
                    "page_size: expected a number, found {other}"
                )))
            }
        };
        let tracking = match profile {
            Profile::Ad => Tracking::Usn,
            _ => Tracking::Timestamp,
        };
        Ok(Settings {
            profile,
            user_filter,
            group_filter,
            attributes,
            anchor,
            fields,
            groups,
            include_disabled,
            full_sync_every,
            page_size,
            tracking,
            fingerprint: fingerprint(&Value::Object(map.given()).to_string()),
        })
    }

    /// Whether the anchor is the entry's DN.
    pub fn anchor_is_dn(&self) -> bool {
        self.anchor.eq_ignore_ascii_case("dn")
            || self.anchor.eq_ignore_ascii_case("distinguishedName")
    }

    /// Whether `userAccountControl` decides who is disabled.
    pub fn reads_account_control(&self) -> bool {
        self.profile != Profile::OpenLdap
    }

    /// The attribute that tracks changes, fetched with every user.
    pub fn change_attribute(&self) -> &'static str {
        match self.tracking {
            Tracking::Usn => "uSNChanged",
            Tracking::Timestamp => "modifyTimestamp",
        }
    }

    /// What to ask the server for, per user: the columns' attributes plus what the
    /// connector itself reads (anchor, field rules, memberOf, uid for memberUid groups,
    /// userAccountControl, the change attribute). Case-insensitively unique.
    pub fn user_request(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |a: &str| {
            if !a.is_empty()
                && !a.eq_ignore_ascii_case("dn")
                && !out.iter().any(|o| o.eq_ignore_ascii_case(a))
            {
                out.push(a.to_string());
            }
        };
        for a in &self.attributes {
            add(a);
        }
        if !self.anchor_is_dn() {
            add(&self.anchor);
        }
        for rules in &self.fields {
            for r in rules {
                for a in r.attributes() {
                    add(a);
                }
            }
        }
        if !self.group_filter.is_empty() {
            add("memberOf");
            add("uid");
        }
        if self.reads_account_control() {
            add("userAccountControl");
        }
        add(self.change_attribute());
        out
    }

    /// What to ask the server for, per group.
    pub fn group_request(&self) -> Vec<String> {
        let mut out = vec![
            "cn".to_string(),
            "member".to_string(),
            "uniqueMember".to_string(),
            "memberUid".to_string(),
        ];
        if !self.anchor_is_dn() {
            out.push(self.anchor.clone());
        }
        out
    }

    /// Whether the columns include every attribute the server returns (`*` or `+`).
    pub fn wildcard(&self) -> bool {
        self.attributes.iter().any(|a| a == "*" || a == "+")
    }
}

/// A filter key: trimmed, wrapped in parentheses when the admin left them out.
fn filter(config: &Config, key: &str) -> Result<Option<String>, Error> {
    Ok(config.string(key)?.map(|f| {
        let f = f.trim();
        if f.is_empty() || f.starts_with('(') {
            f.to_string()
        } else {
            format!("({f})")
        }
    }))
}

/// "30s", "15m", "24h", "7d", "0" → seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (use e.g. \"24h\")"))?;
    let mult = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?} (use s, m, h or d)"
            ))
        }
    };
    Ok(n * mult)
}

/// FNV-1a, 64 bits, as hex: cheap and stable across builds.
pub fn fingerprint(s: &str) -> String {
    let mut h = Fnv::new();
    h.write(s.as_bytes());
    h.hex()
}

/// FNV-1a hasher for fingerprints.
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv {
    pub fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    /// A string and a separator, so ("ab", "c") and ("a", "bc") differ.
    pub fn field(&mut self, s: &str) {
        self.write(s.as_bytes());
        self.write(&[0xff]);
    }
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Settings {
        Settings::from_json(json).unwrap()
    }

    #[test]
    fn profiles_set_defaults() {
        let ad = parse(r#"{"profile": "ad"}"#);
        assert_eq!(ad.anchor, "objectGUID");
        assert_eq!(ad.tracking, Tracking::Usn);
        assert_eq!(ad.fields[0], vec![Rule::Attr("sAMAccountName".into())]);
        assert_eq!(
            ad.fields[1],
            vec![Rule::Attr("displayName".into()), Rule::Attr("cn".into())]
        );
        assert!(ad
            .user_request()
            .contains(&"userAccountControl".to_string()));
        assert!(!ad.include_disabled);
        assert_eq!(ad.full_sync_every, 86400);

        let ol = parse(r#"{"profile": "openldap"}"#);
        assert_eq!(ol.anchor, "entryUUID");
        assert_eq!(ol.tracking, Tracking::Timestamp);
        assert_eq!(ol.fields[0], vec![Rule::Attr("uid".into())]);
        assert_eq!(ol.fields[3], vec![Rule::Attr("employeeNumber".into())]);
        let req = ol.user_request();
        assert!(req.contains(&"entryUUID".to_string()));
        assert!(req.contains(&"modifyTimestamp".to_string()));
        assert!(!req.contains(&"userAccountControl".to_string()));

        let generic = parse("{}");
        assert_eq!(generic.profile, Profile::Generic);
        assert!(generic.anchor_is_dn());
        assert!(!generic.user_request().iter().any(|a| a == "dn"));
    }

    #[test]
    fn every_default_can_be_overridden() {
        let s = parse(
            r#"{"profile": "openldap", "user_filter": "objectClass=person",
                "group_filter": "", "attributes": ["uid", "cn"], "anchor": "dn",
                "username_attribute": "mail", "full_name_attribute": ["%sn%, %givenName%"],
                "groups": [], "include_disabled": true, "full_sync_every": "1h",
                "page_size": 50}"#,
        );
        assert_eq!(s.user_filter, "(objectClass=person)");
        assert_eq!(s.group_filter, "");
        assert_eq!(s.attributes, ["uid", "cn"]);
        assert!(s.anchor_is_dn());
        assert_eq!(s.fields[0], vec![Rule::Attr("mail".into())]);
        assert_eq!(
            s.fields[1],
            vec![Rule::Template(vec![
                Piece::Attr("sn".into()),
                Piece::Text(", ".into()),
                Piece::Attr("givenName".into())
            ])]
        );
        assert!(s.include_disabled);
        assert_eq!(s.full_sync_every, 3600);
        assert_eq!(s.page_size, 50);
        // The rules' attributes are fetched even when not listed as columns.
        let req = s.user_request();
        assert!(req.contains(&"mail".to_string()) && req.contains(&"givenName".to_string()));
        assert!(
            !req.contains(&"memberOf".to_string()),
            "no groups, no memberOf"
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = |j: &str| match Settings::from_json(j) {
            Err(Error::Config(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(err(r#"{"profile": "novell"}"#).starts_with("profile:"));
        assert!(err(r#"{"include_disabled": "yes"}"#).starts_with("include_disabled:"));
        assert!(err(r#"{"full_sync_every": "soon"}"#).starts_with("full_sync_every:"));
        assert!(err(r#"{"username_attribute": []}"#).starts_with("username_attribute:"));
        assert!(err(r#"{"full_name_attribute": "%cn"}"#).starts_with("full_name_attribute:"));
        assert!(err(r#"{"groups": ["cn=x"], "group_filter": ""}"#).starts_with("groups:"));
        assert!(err(r#"{"page_size": 0}"#).starts_with("page_size:"));
    }

    #[test]
    fn fingerprint_follows_the_config() {
        let a = parse(r#"{"profile": "openldap", "url": "ldap://a"}"#);
        let b = parse(r#"{"url": "ldap://a", "profile": "openldap"}"#);
        let c = parse(r#"{"profile": "openldap", "url": "ldap://b"}"#);
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, c.fingerprint);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("24h"), Ok(86400));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("90m"), Ok(5400));
        assert!(parse_duration("1w").is_err());
    }

    #[test]
    fn info_defaults_read_as_toml() {
        assert_eq!(default_text(Profile::Ad, "anchor"), "\"objectGUID\"");
        assert_eq!(
            default_text(Profile::OpenLdap, "full_name_attribute"),
            "[\"cn\", \"%givenName% %sn%\"]"
        );
    }
}
