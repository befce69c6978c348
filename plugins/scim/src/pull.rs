//! One pull: `/Users` then `/Groups`, page by page (`startIndex`/`count`), through a
//! [`Fetch`]; the cursor keeps the newest `meta.lastModified` seen and when the last full run
//! was, so later runs ask only for what changed until `full_sync_every` has passed.

use crate::convert;
use roster_plugin::{Config, Error, Item, Listing, Mode};
use serde_json::{json, Value};
use std::collections::VecDeque;

/// An HTTP answer.
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// GETs a URL below the provider's base with the host-held credential.
pub trait Fetch: 'static {
    fn get(&mut self, url: &str) -> Result<Reply, Error>;
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub url: String,
    pub filter: Option<String>,
    pub page_size: u32,
    /// Seconds; 0: every run is full.
    pub full_sync_every: u64,
}

impl Settings {
    pub fn from_config(c: &Config) -> Result<Settings, Error> {
        let page_size = match c.int("page_size") {
            None => 100,
            Some(n @ 1..=1000) => n as u32,
            Some(n) => {
                return Err(Error::config(format!(
                    "page_size: {n} is not between 1 and 1000"
                )))
            }
        };
        let every = c.str("full_sync_every").unwrap_or("24h");
        Ok(Settings {
            url: c.require_str("url")?.trim_end_matches('/').to_string(),
            filter: c
                .str("filter")
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(str::to_string),
            page_size,
            full_sync_every: parse_duration(every)
                .map_err(|e| Error::config(format!("full_sync_every: {e}")))?,
        })
    }
}

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

/// The cursor between runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cursor {
    /// The newest `meta.lastModified` seen.
    pub since: Option<String>,
    /// When the last full run started (Unix seconds).
    pub full: u64,
    /// What was pulled (url and filter): another config starts with a full run.
    pub of: String,
}

impl Cursor {
    pub fn parse(s: &str) -> Option<Cursor> {
        let v: Value = serde_json::from_str(s).ok()?;
        Some(Cursor {
            since: v["since"].as_str().map(str::to_string),
            full: v["full"].as_u64()?,
            of: v["of"].as_str()?.to_string(),
        })
    }

    pub fn to_json(&self) -> String {
        json!({"since": self.since, "full": self.full, "of": self.of}).to_string()
    }
}

/// What a run does, from the settings, the host's cursor and the time.
pub fn plan(s: &Settings, cursor: Option<&str>, now: u64) -> (Mode, Cursor, Option<String>) {
    let of = format!("{} {}", s.url, s.filter.as_deref().unwrap_or(""));
    let full = Cursor {
        since: None,
        full: now,
        of: of.clone(),
    };
    match cursor.and_then(Cursor::parse) {
        Some(c) if c.of != of => (
            Mode::Full,
            full,
            Some("the config changed: this run is full".into()),
        ),
        Some(c) if c.since.is_none() => (
            Mode::Full,
            full,
            Some("the provider keeps no meta.lastModified: every run is full".into()),
        ),
        Some(c) if s.full_sync_every > 0 && now < c.full + s.full_sync_every => {
            (Mode::Delta, c, None)
        }
        _ => (Mode::Full, full, None),
    }
}

/// The SCIM error's detail (RFC 7644 §3.12), else the body's start.
fn detail(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match (v["detail"].as_str(), v["scimType"].as_str()) {
        (Some(d), Some(t)) => format!("{t}: {d}"),
        (Some(d), None) => d.to_string(),
        _ => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

enum Phase {
    Users(u64),
    Groups(u64),
    Done,
}

pub struct Pull<F> {
    fetch: F,
    settings: Settings,
    mode: Mode,
    cursor: Cursor,
    phase: Phase,
    queue: VecDeque<Item>,
    /// Users another roster says have a PIN but sent no PIN hashes for.
    pins_withheld: u64,
}

impl<F: Fetch> Pull<F> {
    pub fn new(fetch: F, settings: Settings, mode: Mode, cursor: Cursor) -> Pull<F> {
        Pull {
            fetch,
            settings,
            mode,
            cursor,
            phase: Phase::Users(1),
            queue: VecDeque::new(),
            pins_withheld: 0,
        }
    }

    /// The filter of `/Users`: the admin's, and in a delta run what changed since the cursor.
    fn users_filter(&self) -> Option<String> {
        let since = match (self.mode, &self.cursor.since) {
            // `ge`: a change in the same instant as the newest seen is not missed.
            (Mode::Delta, Some(t)) => Some(format!("meta.lastModified ge \"{t}\"")),
            _ => None,
        };
        match (&self.settings.filter, since) {
            (Some(f), Some(s)) => Some(format!("({f}) and {s}")),
            (Some(f), None) => Some(f.clone()),
            (None, s) => s,
        }
    }

    /// One page of a resource type: its resources and whether more follow.
    fn page(
        &mut self,
        resource: &str,
        start: u64,
        filter: Option<&str>,
    ) -> Result<(Vec<Value>, bool), Error> {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("startIndex", &start.to_string());
        q.append_pair("count", &self.settings.page_size.to_string());
        if let Some(f) = filter {
            q.append_pair("filter", f);
        }
        let url = format!("{}/{resource}?{}", self.settings.url, q.finish());
        let r = self.fetch.get(&url)?;
        let what = format!("{}/{resource}", self.settings.url);
        let m = || detail(&r.body);
        let mut v: Value = match r.status {
            200..=299 => serde_json::from_slice(&r.body)
                .map_err(|e| Error::bad_data(format!("{what}: the answer is not JSON: {e}")))?,
            401 | 403 => return Err(Error::authentication(format!("{what}: HTTP {}: {} (check the token or the user name and password)", r.status, m()))),
            400 if filter.is_some() => return Err(Error::config(format!("filter: {what} refused it: {}", m()))),
            404 => return Err(Error::config(format!("url: {what} is not found (HTTP 404): url must be the SCIM base, such as https://host/scim/v2"))),
            429 | 500..=599 => return Err(Error::unavailable(format!("{what}: HTTP {}: {}", r.status, m()))),
            s => return Err(Error::config(format!("{what}: HTTP {s}: {}", m()))),
        };
        let resources = match v.get_mut("Resources").map(Value::take) {
            Some(Value::Array(a)) => a,
            None | Some(Value::Null) => Vec::new(),
            Some(_) => return Err(Error::bad_data(format!("{what}: Resources is not a list"))),
        };
        let total = v["totalResults"].as_u64().ok_or_else(|| {
            Error::bad_data(format!("{what}: the list response has no totalResults"))
        })?;
        let more = !resources.is_empty() && start - 1 + (resources.len() as u64) < total;
        Ok((resources, more))
    }
}

impl<F: Fetch> Listing for Pull<F> {
    fn next(&mut self) -> Result<Option<Item>, Error> {
        loop {
            if let Some(i) = self.queue.pop_front() {
                return Ok(Some(i));
            }
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Users(start) => {
                    let filter = self.users_filter();
                    let (users, more) = self.page("Users", start, filter.as_deref())?;
                    let n = users.len() as u64;
                    for u in users {
                        if let Some(t) = u["meta"]["lastModified"].as_str() {
                            if self.cursor.since.as_deref().is_none_or(|s| t > s) {
                                self.cursor.since = Some(t.to_string());
                            }
                        }
                        if convert::pins_withheld(&u) {
                            self.pins_withheld += 1;
                        }
                        self.queue.push_back(match convert::user(&u) {
                            Ok(user) => Item::User(user),
                            Err(why) => Item::failed(
                                u["id"].as_str().unwrap_or("a resource without an id"),
                                why,
                            ),
                        });
                    }
                    self.phase = if more {
                        Phase::Users(start + n)
                    } else {
                        Phase::Groups(1)
                    };
                }
                // Groups are read whole every run: their member lists are complete.
                Phase::Groups(start) => {
                    let (groups, more) = self.page("Groups", start, None)?;
                    let n = groups.len() as u64;
                    for g in groups {
                        self.queue.push_back(match convert::group(&g) {
                            Ok(group) => Item::Group(group),
                            Err(why) => Item::failed(
                                g["id"].as_str().unwrap_or("a group without an id"),
                                why,
                            ),
                        });
                    }
                    if more {
                        self.phase = Phase::Groups(start + n);
                    }
                }
                Phase::Done => return Ok(None),
            }
        }
    }

    fn finish(&mut self, end: &mut roster_plugin::End) -> Result<(), Error> {
        end.mode = self.mode;
        end.cursor = Some(self.cursor.to_json());
        if self.pins_withheld > 0 {
            end.notices.push(format!(
                "{} users have a PIN at the other roster, but no PIN hashes were sent: its token \
                 needs role replica (roster tokens create NAME --role replica) for PINs to travel",
                self.pins_withheld
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    struct Fake(Rc<RefCell<Vec<String>>>);

    impl Fetch for Fake {
        fn get(&mut self, url: &str) -> Result<Reply, Error> {
            self.0.borrow_mut().push(url.to_string());
            let q: std::collections::HashMap<String, String> =
                form_urlencoded::parse(url.split_once('?').unwrap().1.as_bytes())
                    .into_owned()
                    .collect();
            let start: usize = q["startIndex"].parse().unwrap();
            let body = if url.contains("/Users") {
                let all: Vec<Value> = (0..5)
                    .map(|i| json!({"id": format!("u{i}"), "userName": format!("user{i}"),
                                    "meta": {"lastModified": format!("2026-01-0{}T00:00:00Z", i + 1)}}))
                    .collect();
                let page: Vec<Value> = all.into_iter().skip(start - 1).take(2).collect();
                json!({"totalResults": 5, "startIndex": start, "itemsPerPage": page.len(), "Resources": page})
            } else {
                json!({"totalResults": 1, "Resources": [{"id": "g1", "displayName": "Staff", "members": [{"value": "u1"}]}]})
            };
            Ok(Reply {
                status: 200,
                body: body.to_string().into_bytes(),
            })
        }
    }

    fn settings(extra: &str) -> Settings {
        let c = Config::from_json(&format!(
            r#"{{"url": "https://scim.example/v2/", "page_size": 2{extra}}}"#
        ))
        .unwrap();
        Settings::from_config(&c).unwrap()
    }

    #[test]
    fn pages_of_users_then_groups_and_a_cursor() {
        let asked = Rc::new(RefCell::new(Vec::new()));
        let (mode, cursor, _) = plan(&settings(""), None, 1000);
        assert_eq!(mode, Mode::Full);
        let pull = Pull::new(Fake(asked.clone()), settings(""), mode, cursor);
        let (items, end) = roster_plugin::Run::from_listing(pull).collect().unwrap();
        assert_eq!(items.len(), 6);
        assert_eq!(asked.borrow().len(), 4, "{:?}", asked.borrow());
        assert!(asked.borrow()[2].ends_with("startIndex=5&count=2"));
        let c = Cursor::parse(end.cursor.as_deref().unwrap()).unwrap();
        assert_eq!(
            (c.since.as_deref(), c.full),
            (Some("2026-01-05T00:00:00Z"), 1000)
        );

        // Within full_sync_every: a delta asking for changes since then.
        let (mode, cursor, _) = plan(&settings(""), Some(&c.to_json()), 1000 + 3600);
        assert_eq!(mode, Mode::Delta);
        let pull = Pull::new(Fake(asked.clone()), settings(""), mode, cursor);
        let since = "meta.lastModified ge \"2026-01-05T00:00:00Z\"";
        assert_eq!(pull.users_filter().unwrap(), since);
        // With a filter: another config, so a full run first; its deltas keep the filter.
        let s = settings(r#", "filter": "active eq true""#);
        let (mode, _, notice) = plan(&s, Some(&c.to_json()), 1000 + 3600);
        assert_eq!(mode, Mode::Full);
        assert_eq!(
            notice.as_deref(),
            Some("the config changed: this run is full")
        );
        let c2 = Cursor {
            of: "https://scim.example/v2 active eq true".into(),
            ..c.clone()
        };
        let (mode, cursor, _) = plan(&s, Some(&c2.to_json()), 1000 + 3600);
        let pull = Pull::new(Fake(asked.clone()), s, mode, cursor);
        assert_eq!(
            pull.users_filter().unwrap(),
            format!("(active eq true) and {since}")
        );
        // After full_sync_every, or with "0": full again.
        assert_eq!(
            plan(&settings(""), Some(&c.to_json()), 1000 + 86400).0,
            Mode::Full
        );
        let every0 = settings(r#", "full_sync_every": "0""#);
        assert_eq!(plan(&every0, Some(&c.to_json()), 1001).0, Mode::Full);
        let none = Cursor {
            since: None,
            ..c.clone()
        }
        .to_json();
        assert!(plan(&settings(""), Some(&none), 6)
            .2
            .unwrap()
            .contains("no meta.lastModified"));
    }
}
