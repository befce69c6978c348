//! Delta cursors and the full-or-delta decision.
//!
//! A cursor is valid only under the config it was made with (its fingerprint), for the
//! same groups and memberships (the group graph's hash: a delta reads changed users only,
//! so any group change needs a full run), and for AD against the same DC (dsServiceName,
//! invocationId, and a highestCommittedUSN that did not go backwards). `full_sync_every`
//! sets how long deltas may follow a full run.

use serde_json::{json, Value};

/// Where the next delta starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    /// `modifyTimestamp >= since` (GeneralizedTime).
    Timestamp { since: String },
    /// `uSNChanged > usn` on the DC `dsa` (dsServiceName) with `invocation` (invocationId).
    Usn {
        usn: u64,
        dsa: String,
        invocation: Option<String>,
    },
    /// An RFC 4533 content synchronization cookie (OpenLDAP's syncprov), hex-encoded.
    Sync { cookie: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub config: String,
    pub groups: String,
    /// Unix seconds at the start of the last full run.
    pub full_at: u64,
    pub mark: Mark,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let mark = match &self.mark {
            Mark::Timestamp { since } => json!({"since": since}),
            Mark::Usn {
                usn,
                dsa,
                invocation,
            } => json!({"usn": usn, "dsa": dsa, "invocation": invocation}),
            Mark::Sync { cookie } => json!({"cookie": cookie}),
        };
        json!({"v": 1, "config": self.config, "groups": self.groups,
               "full_at": self.full_at, "mark": mark})
        .to_string()
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        let v: Value = serde_json::from_str(s).ok()?;
        if v["v"] != 1 {
            return None;
        }
        let m = &v["mark"];
        let mark = if let Some(since) = m["since"].as_str() {
            Mark::Timestamp {
                since: since.to_string(),
            }
        } else if let Some(cookie) = m["cookie"].as_str() {
            Mark::Sync {
                cookie: cookie.to_string(),
            }
        } else {
            Mark::Usn {
                usn: m["usn"].as_u64()?,
                dsa: m["dsa"].as_str()?.to_string(),
                invocation: m["invocation"].as_str().map(str::to_string),
            }
        };
        Some(Cursor {
            config: v["config"].as_str()?.to_string(),
            groups: v["groups"].as_str()?.to_string(),
            full_at: v["full_at"].as_u64()?,
            mark,
        })
    }
}

/// The AD domain controller a run talks to, from its root DSE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dc {
    pub dsa: String,
    pub invocation: Option<String>,
    pub highest_usn: u64,
}

/// What the run does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// A full listing; `why` is a notice for the run log when it replaces a delta the host
    /// asked for for an unusual reason.
    Full {
        why: Option<String>,
    },
    Delta {
        from: Mark,
    },
}

/// What the decision looks at besides the stored cursor.
#[derive(Debug, Clone)]
pub struct Now<'a> {
    pub delta_requested: bool,
    pub unix: u64,
    pub full_sync_every: u64,
    pub config: &'a str,
    pub groups: &'a str,
    pub dc: Option<&'a Dc>,
}

pub fn decide(cursor: Option<&str>, now: &Now) -> Plan {
    let full = |why: Option<String>| Plan::Full { why };
    let Some(text) = cursor.filter(|_| now.delta_requested) else {
        return full(None);
    };
    let Some(c) = Cursor::decode(text) else {
        return full(Some(
            "the stored delta cursor is not one this connector wrote; ran a full sync".into(),
        ));
    };
    if now.full_sync_every == 0 || now.unix.saturating_sub(c.full_at) >= now.full_sync_every {
        // The regular rhythm: nothing to report.
        return full(None);
    }
    if c.config != now.config {
        return full(Some(
            "the source's config changed since the last run; ran a full sync".into(),
        ));
    }
    match (&c.mark, now.dc) {
        (
            Mark::Usn {
                usn,
                dsa,
                invocation,
            },
            Some(dc),
        ) => {
            if *dsa != dc.dsa {
                return full(Some(format!(
                    "the delta cursor comes from another domain controller ({dsa}, this is {}); \
                     ran a full sync",
                    dc.dsa
                )));
            }
            if invocation.is_some() && dc.invocation.is_some() && *invocation != dc.invocation {
                return full(Some(format!(
                    "the domain controller {dsa} has a new invocationId (restored from a \
                     backup?); ran a full sync"
                )));
            }
            if dc.highest_usn < *usn {
                return full(Some(format!(
                    "the domain controller's highestCommittedUSN ({}) is below the cursor's \
                     ({usn}): restored from a backup? ran a full sync",
                    dc.highest_usn
                )));
            }
        }
        (Mark::Timestamp { .. } | Mark::Sync { .. }, None) => {}
        _ => {
            return full(Some(
                "the delta cursor is of another kind than this server's; ran a full sync".into(),
            ))
        }
    }
    if c.groups != now.groups {
        return full(Some(
            "groups or group memberships changed since the last run; ran a full sync so that \
             memberships are complete"
                .into(),
        ));
    }
    Plan::Delta { from: c.mark }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// GeneralizedTime (`20261122063000Z`, fractions and offsets allowed) → Unix seconds.
pub fn parse_generalized(s: &str) -> Option<i64> {
    let s = s.trim();
    let digits = |a: usize, b: usize| -> Option<i64> {
        let part = s.get(a..b)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, mo, d, h) = (digits(0, 4)?, digits(4, 6)?, digits(6, 8)?, digits(8, 10)?);
    let mi = digits(10, 12).unwrap_or(0);
    let se = digits(12, 14).unwrap_or(0);
    let rest = s.get(14..).unwrap_or("");
    let rest = rest.trim_start_matches(|c: char| c == '.' || c == ',' || c.is_ascii_digit());
    let offset = match rest.as_bytes().first() {
        None | Some(b'Z') => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(3..5).and_then(|m| m.parse().ok()).unwrap_or(0);
            let o = oh * 3600 + om * 60;
            if sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset)
}

/// Unix seconds → GeneralizedTime in UTC.
pub fn format_generalized(t: i64) -> String {
    let days = t.div_euclid(86400);
    let secs = t.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

// Howard Hinnant's civil-calendar algorithms.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The `since` of the next timestamp delta: the newest change this run saw, moved back by
/// the run's duration (plus a margin), so a change made while the run was reading (whose
/// server time is after the run began) is read again next time rather than missed.
pub fn next_since(previous: Option<&str>, newest_seen: Option<i64>, run_secs: u64) -> String {
    let prev = previous.and_then(parse_generalized);
    let candidate = newest_seen.map(|t| t - run_secs as i64 - 2);
    let t = match (prev, candidate) {
        (Some(p), Some(c)) => p.max(c),
        (p, c) => p.or(c).unwrap_or(0),
    };
    format_generalized(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(mark: Mark) -> Cursor {
        Cursor {
            config: "cfg".into(),
            groups: "grp".into(),
            full_at: 1000,
            mark,
        }
    }

    fn now(dc: Option<&Dc>) -> Now<'_> {
        Now {
            delta_requested: true,
            unix: 2000,
            full_sync_every: 86400,
            config: "cfg",
            groups: "grp",
            dc,
        }
    }

    fn ts() -> Mark {
        Mark::Timestamp {
            since: "20261122063000Z".into(),
        }
    }

    fn usn() -> Mark {
        Mark::Usn {
            usn: 500,
            dsa: "CN=NTDS Settings,CN=DC1".into(),
            invocation: Some("inv-1".into()),
        }
    }

    fn dc(dsa: &str, inv: &str, usn: u64) -> Dc {
        Dc {
            dsa: dsa.into(),
            invocation: Some(inv.into()),
            highest_usn: usn,
        }
    }

    fn why(p: Plan) -> String {
        match p {
            Plan::Full { why: Some(w) } => w,
            other => panic!("expected a full run with a reason, got {other:?}"),
        }
    }

    #[test]
    fn cursors_round_trip() {
        let sync = Mark::Sync {
            cookie: hex(b"rid=000,csn=20261205"),
        };
        for m in [ts(), usn(), sync] {
            let c = cursor(m);
            assert_eq!(Cursor::decode(&c.encode()), Some(c));
        }
        assert_eq!(Cursor::decode("garbage"), None);
        assert_eq!(unhex(&hex(b"\x00\xffab")).unwrap(), b"\x00\xffab");
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn a_valid_cursor_gives_a_delta() {
        let text = cursor(ts()).encode();
        assert_eq!(decide(Some(&text), &now(None)), Plan::Delta { from: ts() });
        let text = cursor(usn()).encode();
        let d = dc("CN=NTDS Settings,CN=DC1", "inv-1", 900);
        assert_eq!(
            decide(Some(&text), &now(Some(&d))),
            Plan::Delta { from: usn() }
        );
    }

    #[test]
    fn full_runs_and_why() {
        let text = cursor(ts()).encode();
        assert_eq!(decide(None, &now(None)), Plan::Full { why: None });
        let mut n = now(None);
        n.delta_requested = false;
        assert_eq!(decide(Some(&text), &n), Plan::Full { why: None });
        // The rhythm: a full run without a notice.
        let mut n = now(None);
        n.unix = 1000 + 86400;
        assert_eq!(decide(Some(&text), &n), Plan::Full { why: None });
        let mut n = now(None);
        n.full_sync_every = 0;
        assert_eq!(decide(Some(&text), &n), Plan::Full { why: None });

        let mut n = now(None);
        n.config = "other";
        assert!(why(decide(Some(&text), &n)).contains("config changed"));
        let mut n = now(None);
        n.groups = "other";
        assert!(why(decide(Some(&text), &n)).contains("groups"));
        assert!(why(decide(Some("{}"), &now(None))).contains("not one this connector wrote"));
    }

    #[test]
    fn an_ad_cursor_is_bound_to_its_dc() {
        let text = cursor(usn()).encode();
        let other = dc("CN=NTDS Settings,CN=DC2", "inv-1", 900);
        assert!(why(decide(Some(&text), &now(Some(&other)))).contains("another domain controller"));
        let restored = dc("CN=NTDS Settings,CN=DC1", "inv-2", 900);
        assert!(why(decide(Some(&text), &now(Some(&restored)))).contains("invocationId"));
        let behind = dc("CN=NTDS Settings,CN=DC1", "inv-1", 400);
        assert!(why(decide(Some(&text), &now(Some(&behind)))).contains("highestCommittedUSN"));
        // A timestamp cursor meeting an AD server, and the other way round.
        assert!(why(decide(Some(&cursor(ts()).encode()), &now(Some(&other)))).contains("kind"));
        assert!(why(decide(Some(&text), &now(None))).contains("kind"));
    }

    #[test]
    fn generalized_time() {
        let t = parse_generalized("20261122063000Z").unwrap();
        assert_eq!(format_generalized(t), "20261122063000Z");
        assert_eq!(parse_generalized("19700101000000Z"), Some(0));
        assert_eq!(parse_generalized("20000301000000.0Z"), Some(951868800));
        assert_eq!(parse_generalized("20000301010000+0100"), Some(951868800));
        assert_eq!(parse_generalized("2000"), None);
        assert_eq!(parse_generalized("20001301000000Z"), None);
    }

    #[test]
    fn since_moves_back_by_the_run() {
        let seen = parse_generalized("20261122063000Z");
        assert_eq!(next_since(None, seen, 10), "20261122062948Z");
        // Never backwards past the previous mark.
        assert_eq!(
            next_since(Some("20261122070000Z"), seen, 10),
            "20261122070000Z"
        );
        assert_eq!(next_since(None, None, 10), "19700101000000Z");
    }
}
