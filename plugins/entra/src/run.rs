//! One run against Graph, one request per step: the users (a full listing, a group scope's
//! transitive members, or the changes since a delta link), then the groups with their
//! members. Each call of [`Run::next`] makes at most one request, so a call into the plugin
//! stays short whatever the tenant's size.

use std::collections::{HashSet, VecDeque};

use serde_json::{json, Map, Value};

use crate::config::Settings;
use crate::date::{expiry_notice, Date};
use crate::graph::{self, Page, PAGE_SIZE};
use crate::Error;

/// An HTTP GET through the host, with the host-held Graph credential attached.
pub trait Transport {
    fn get(&mut self, url: &str, headers: &[(&str, &str)]) -> Result<Response, Error>;

    /// A hint that `get(url)` comes next: the transport may send it now, so Graph works on
    /// the next page while this one is turned into users and stored.
    fn prefetch(&mut self, _url: &str, _headers: &[(&str, &str)]) {}
}

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// What a run sends to the host.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// Values in the order of the run's columns.
    User {
        id: String,
        locator: String,
        values: Vec<Vec<String>>,
    },
    Group {
        id: String,
        name: String,
        members: Vec<String>,
    },
    RemovedUser(String),
    RemovedGroup(String),
    Failed {
        locator: String,
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Full,
    Delta,
}

/// The cursor kept between runs: the users' delta link and the groups the run sent (so a
/// delta run can remove the groups that are gone).
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    pub fingerprint: String,
    pub users: String,
    pub groups: Vec<String>,
}

impl Cursor {
    pub fn parse(s: &str) -> Option<Cursor> {
        let v: Value = serde_json::from_str(s).ok()?;
        if v["v"] != 1 {
            return None;
        }
        Some(Cursor {
            fingerprint: v["config"].as_str()?.to_string(),
            users: v["users"].as_str()?.to_string(),
            groups: (v["groups"].as_array()?.iter())
                .map(|g| g.as_str().map(str::to_string))
                .collect::<Option<_>>()?,
        })
    }

    pub fn render(&self) -> String {
        json!({"v": 1, "config": self.fingerprint, "users": self.users, "groups": self.groups})
            .to_string()
    }
}

#[derive(Debug)]
enum Step {
    /// `users/delta?$deltatoken=latest`: the delta link of this moment, for the next run.
    Latest,
    /// A page of users (a listing, a group's transitive members, or delta changes).
    Users {
        url: String,
        delta: bool,
        first: bool,
    },
    /// A scope group itself.
    Group(String),
    /// A page of groups (all of the tenant's, or the groups nested in a scope group).
    Groups(String),
    /// A page of one group's direct members.
    Members {
        id: String,
        name: String,
        url: String,
        members: Vec<String>,
    },
}

pub struct Run {
    pub settings: Settings,
    pub fields: Vec<String>,
    pub columns: Vec<String>,
    mode: Mode,
    steps: VecDeque<Step>,
    /// Users already sent (a scope's groups may share members).
    seen_users: HashSet<String>,
    groups_found: HashSet<String>,
    groups_sent: Vec<String>,
    previous_groups: Vec<String>,
    delta_link: Option<String>,
    notices: Vec<String>,
    /// Entries of the first page, read by `start`.
    pending: Vec<Out>,
}

/// How a run ended, for `finish`.
pub struct End {
    pub mode: Mode,
    pub cursor: Option<String>,
    pub notices: Vec<String>,
}

impl Run {
    /// Plans a run. A delta request with a usable cursor reads the first page of changes
    /// here, so an expired delta link can still turn into a full run.
    pub fn start(
        settings: Settings,
        requested: Mode,
        cursor: Option<&str>,
        today: Date,
        net: &mut dyn Transport,
    ) -> Result<Run, Error> {
        let fields = graph::fields(&settings);
        let columns = graph::columns(&fields);
        let mut run = Run {
            settings,
            fields,
            columns,
            mode: Mode::Full,
            steps: VecDeque::new(),
            seen_users: HashSet::new(),
            groups_found: HashSet::new(),
            groups_sent: Vec::new(),
            previous_groups: Vec::new(),
            delta_link: None,
            notices: Vec::new(),
            pending: Vec::new(),
        };
        if let Some(exp) = run.settings.secret_expires {
            run.notices.extend(expiry_notice(exp, today));
        }
        let delta_capable = run.settings.use_delta && run.settings.groups.is_empty();
        let cursor = match (requested, cursor) {
            (Mode::Delta, Some(c)) if delta_capable => match Cursor::parse(c) {
                Some(c) if c.fingerprint == run.settings.fingerprint => Some(c),
                Some(_) => {
                    run.notices.push(
                        "the source's config changed since the last run; ran a full sync".into(),
                    );
                    None
                }
                None => {
                    run.notices
                        .push("the stored delta cursor is not usable; ran a full sync".into());
                    None
                }
            },
            _ => None,
        };
        if let Some(c) = cursor {
            run.mode = Mode::Delta;
            run.previous_groups = c.groups;
            run.steps.push_back(Step::Users {
                url: c.users,
                delta: true,
                first: true,
            });
            run.plan_groups();
            match run.step(net) {
                Ok(outs) => run.pending = outs,
                Err(StepError::Expired) => {
                    run.notices.push(
                        "the delta link expired (syncStateNotFound); ran a full sync instead"
                            .into(),
                    );
                    run.mode = Mode::Full;
                    run.steps.clear();
                    run.previous_groups.clear();
                    run.plan_full(delta_capable);
                }
                Err(StepError::Failed(e)) => return Err(e),
            }
        } else {
            run.plan_full(delta_capable);
        }
        Ok(run)
    }

    fn plan_full(&mut self, delta_capable: bool) {
        let s = &self.settings;
        let select = self.fields.join(",");
        if delta_capable {
            self.steps.push_back(Step::Latest);
        }
        if s.groups.is_empty() {
            self.steps.push_back(Step::Users {
                url: format!(
                    "{}/v1.0/users?$select={select}&$top={PAGE_SIZE}",
                    s.graph_url
                ),
                delta: false,
                first: true,
            });
        } else {
            for g in &s.groups {
                self.steps.push_back(Step::Users {
                    url: format!(
                        "{}/v1.0/groups/{g}/transitiveMembers/microsoft.graph.user?$select={select}&$top={PAGE_SIZE}",
                        s.graph_url
                    ),
                    delta: false,
                    first: true,
                });
            }
        }
        self.plan_groups();
    }

    fn plan_groups(&mut self) {
        let s = &self.settings;
        if !s.import_groups {
            return;
        }
        if s.groups.is_empty() {
            self.steps.push_back(Step::Groups(format!(
                "{}/v1.0/groups?$select=id,displayName&$top={PAGE_SIZE}",
                s.graph_url
            )));
        } else {
            for g in &s.groups {
                self.steps.push_back(Step::Group(g.clone()));
            }
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The next entries (possibly none, when a page completed nothing yet), or None when
    /// the run has listed everything.
    pub fn next(&mut self, net: &mut dyn Transport) -> Result<Option<Vec<Out>>, Error> {
        if !self.pending.is_empty() {
            return Ok(Some(std::mem::take(&mut self.pending)));
        }
        if self.steps.is_empty() {
            // Last, in a delta run: the groups that are gone since the last run.
            let sent: HashSet<&String> = self.groups_sent.iter().collect();
            let gone: Vec<Out> = (self.previous_groups.iter())
                .filter(|g| !sent.contains(g))
                .map(|g| Out::RemovedGroup(g.clone()))
                .collect();
            self.previous_groups.clear();
            return Ok((!gone.is_empty()).then_some(gone));
        }
        match self.step(net) {
            Ok(outs) => Ok(Some(outs)),
            Err(StepError::Expired) => Err(Error::Unavailable(
                "the delta link expired in the middle of a delta run; the next run starts over"
                    .into(),
            )),
            Err(StepError::Failed(e)) => Err(e),
        }
    }

    pub fn finish(&mut self) -> End {
        let mut groups = std::mem::take(&mut self.groups_sent);
        groups.sort();
        let cursor = self.delta_link.take().map(|users| {
            Cursor {
                fingerprint: self.settings.fingerprint.clone(),
                users,
                groups,
            }
            .render()
        });
        End {
            mode: self.mode,
            cursor,
            notices: std::mem::take(&mut self.notices),
        }
    }
}

enum StepError {
    /// A 410 (`syncStateNotFound`) on a delta page.
    Expired,
    Failed(Error),
}

impl From<Error> for StepError {
    fn from(e: Error) -> Self {
        StepError::Failed(e)
    }
}

impl Run {
    /// One request, and what it completed.
    fn step(&mut self, net: &mut dyn Transport) -> Result<Vec<Out>, StepError> {
        let Some(step) = self.steps.pop_front() else {
            return Ok(Vec::new());
        };
        let g = self.settings.graph_url.clone();
        match step {
            Step::Latest => {
                let url = format!(
                    "{g}/v1.0/users/delta?$select={}&$deltatoken=latest",
                    self.fields.join(",")
                );
                let page = fetch(net, &url, "the users' delta link", &[])?;
                match page.delta_link {
                    Some(link) => self.delta_link = Some(link),
                    None => {
                        return Err(Error::BadData(
                            "Graph answered $deltatoken=latest without a delta link".into(),
                        )
                        .into())
                    }
                }
                Ok(Vec::new())
            }
            Step::Users { url, delta, first } => {
                let headers: &[(&str, &str)] = if delta {
                    &[("Prefer", "odata.maxpagesize=999")]
                } else {
                    &[]
                };
                let resp = net.get(&url, headers)?;
                if delta && resp.status == 410 {
                    return Err(StepError::Expired);
                }
                let what = if delta { "user changes" } else { "users" };
                let page = page_of(resp, &url, what, first)?;
                if let Some(next) = &page.next_link {
                    net.prefetch(next, headers);
                }
                let mut outs = Vec::with_capacity(page.items.len());
                for u in &page.items {
                    outs.extend(self.user(u, delta));
                }
                if let Some(next) = page.next_link {
                    self.steps.push_front(Step::Users {
                        url: next,
                        delta,
                        first: false,
                    });
                } else if delta {
                    match page.delta_link {
                        Some(link) => self.delta_link = Some(link),
                        None => {
                            return Err(Error::BadData(
                                "Graph ended the user changes without a delta link".into(),
                            )
                            .into())
                        }
                    }
                }
                Ok(outs)
            }
            Step::Group(id) => {
                let url = format!("{g}/v1.0/groups/{id}?$select=id,displayName");
                let resp = net.get(&url, &[])?;
                if resp.status == 404 {
                    return Err(Error::Config(format!(
                        "groups: no group with the id {id} in the tenant"
                    ))
                    .into());
                }
                let body = ok_body(resp, &url)?;
                let v: Value = serde_json::from_slice(&body).map_err(|e| {
                    Error::BadData(format!("Graph sent a malformed group {id}: {e}"))
                })?;
                if let Some(o) = v.as_object() {
                    self.found_group(o);
                }
                self.steps.push_front(Step::Groups(format!(
                    "{g}/v1.0/groups/{id}/transitiveMembers/microsoft.graph.group?$select=id,displayName&$top={PAGE_SIZE}"
                )));
                Ok(Vec::new())
            }
            Step::Groups(url) => {
                let page = fetch(net, &url, "groups", &[])?;
                for o in &page.items {
                    self.found_group(o);
                }
                if let Some(next) = page.next_link {
                    self.steps.push_front(Step::Groups(next));
                }
                Ok(Vec::new())
            }
            Step::Members {
                id,
                name,
                url,
                mut members,
            } => {
                let page = fetch(net, &url, "group members", &[])?;
                members.extend(
                    (page.items.iter()).filter_map(|m| m.get("id")?.as_str().map(str::to_string)),
                );
                if let Some(next) = page.next_link {
                    self.steps.push_front(Step::Members {
                        id,
                        name,
                        url: next,
                        members,
                    });
                    return Ok(Vec::new());
                }
                self.groups_sent.push(id.clone());
                Ok(vec![Out::Group { id, name, members }])
            }
        }
    }

    fn found_group(&mut self, o: &Map<String, Value>) {
        let Some(id) = o.get("id").and_then(Value::as_str) else {
            return;
        };
        if !self.groups_found.insert(id.to_string()) {
            return;
        }
        let name = graph::text(o, "displayName")
            .map(|s| s.into_owned())
            .unwrap_or_else(|| id.to_string());
        self.steps.push_back(Step::Members {
            id: id.to_string(),
            name,
            url: format!(
                "{}/v1.0/groups/{id}/members?$select=id&$top={PAGE_SIZE}",
                self.settings.graph_url
            ),
            members: Vec::new(),
        });
    }

    fn user(&mut self, u: &Map<String, Value>, delta: bool) -> Option<Out> {
        let Some(id) = u.get("id").and_then(Value::as_str) else {
            return Some(Out::Failed {
                locator: graph::user_locator(u),
                reason: "Graph listed a user without an id".into(),
            });
        };
        if delta
            && (u.contains_key("@removed")
                || (graph::disabled(u) && !self.settings.include_disabled))
        {
            return Some(Out::RemovedUser(id.to_string()));
        }
        if graph::disabled(u) && !self.settings.include_disabled {
            return None;
        }
        // A user in several groups of the scope is sent once.
        if !self.settings.groups.is_empty() && !self.seen_users.insert(id.to_string()) {
            return None;
        }
        let locator = graph::user_locator(u);
        Some(match graph::user_row(u, &self.settings, &self.fields) {
            Ok(values) => Out::User {
                id: id.to_string(),
                locator,
                values,
            },
            Err(reason) => Out::Failed { locator, reason },
        })
    }
}

/// GET a page and parse it.
fn fetch(
    net: &mut dyn Transport,
    url: &str,
    what: &str,
    headers: &[(&str, &str)],
) -> Result<Page, Error> {
    let resp = net.get(url, headers)?;
    page_of(resp, url, what, false)
}

fn page_of(resp: Response, url: &str, what: &str, first: bool) -> Result<Page, Error> {
    if first && resp.status == 404 {
        return Err(Error::Config(format!(
            "Graph has no {url}: {}",
            graph::error_text(&resp.body)
        )));
    }
    let body = ok_body(resp, url)?;
    Page::parse(&body, what)
}

/// The body of a 2xx response; other statuses as errors that say what to do.
fn ok_body(resp: Response, url: &str) -> Result<Vec<u8>, Error> {
    let path = url.split('?').next().unwrap_or(url);
    let why = graph::error_text(&resp.body);
    match resp.status {
        200..=299 => Ok(resp.body),
        401 | 403 => Err(Error::Authentication(format!(
            "Graph refused {path} (HTTP {}{}{why}): the app needs the application permissions              User.Read.All and Group.Read.All, with admin consent",
            resp.status,
            if why.is_empty() { "" } else { ": " }
        ))),
        400 | 404 => Err(Error::Config(format!(
            "Graph refused {path} (HTTP {}): {why}",
            resp.status
        ))),
        s => Err(Error::Unavailable(format!(
            "Graph answered HTTP {s} for {path}{}{why}",
            if why.is_empty() { "" } else { ": " }
        ))),
    }
}

/// What `roster sources test` shows: counts where Graph gives them, and a sample user.
pub struct TestInfo {
    pub users: Option<u64>,
    pub groups: Option<u64>,
    pub sample: Option<Out>,
    pub columns: Vec<String>,
    pub messages: Vec<String>,
}

/// Acquires a token (through the host) and reads one page of users.
pub fn test(settings: Settings, today: Date, net: &mut dyn Transport) -> Result<TestInfo, Error> {
    let mut run = Run::start(settings, Mode::Full, None, today, net)?;
    let s = run.settings.clone();
    let select = run.fields.join(",");
    let count: &[(&str, &str)] = &[("ConsistencyLevel", "eventual")];
    let url = match s.groups.first() {
        None => format!("{}/v1.0/users?$select={select}&$top={PAGE_SIZE}&$count=true", s.graph_url),
        Some(g) => format!(
            "{}/v1.0/groups/{g}/transitiveMembers/microsoft.graph.user?$select={select}&$top={PAGE_SIZE}&$count=true",
            s.graph_url
        ),
    };
    let resp = net.get(&url, count)?;
    let page = page_of(resp, &url, "users", true)?;
    let on_page = page.items.len();
    let users = page
        .count
        .or((page.next_link.is_none()).then_some(on_page as u64));
    let sample = page.items.iter().find_map(|u| match run.user(u, false) {
        Some(o @ Out::User { .. }) => Some(o),
        _ => None,
    });
    let mut groups = None;
    if s.import_groups && s.groups.is_empty() {
        let url = format!("{}/v1.0/groups?$select=id&$top=1&$count=true", s.graph_url);
        let resp = net.get(&url, count)?;
        groups = page_of(resp, &url, "groups", true)?.count;
    }
    let mut messages = vec![format!(
        "acquired a token and read {on_page} users on the first page{}",
        match (s.groups.first(), s.groups.len()) {
            (Some(g), 1) => format!(" of group {g}'s members"),
            (Some(g), n) => format!(" of group {g}'s members (one of {n} groups)"),
            _ => String::new(),
        }
    )];
    messages.append(&mut run.notices);
    Ok(TestInfo {
        users,
        groups,
        sample,
        columns: run.columns.clone(),
        messages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Canned answers by URL; every request is recorded.
    #[derive(Default)]
    struct Fake {
        answers: HashMap<String, (u16, String)>,
        asked: Vec<String>,
        /// URLs the run said come next.
        ahead: Vec<String>,
    }

    impl Fake {
        fn on(&mut self, url: &str, status: u16, body: Value) -> &mut Self {
            self.answers
                .insert(url.to_string(), (status, body.to_string()));
            self
        }
    }

    impl Transport for Fake {
        fn get(&mut self, url: &str, _: &[(&str, &str)]) -> Result<Response, Error> {
            self.asked.push(url.to_string());
            let (status, body) = self
                .answers
                .get(url)
                .cloned()
                .unwrap_or_else(|| panic!("unexpected request {url}"));
            Ok(Response {
                status,
                body: body.into_bytes(),
            })
        }

        fn prefetch(&mut self, url: &str, _: &[(&str, &str)]) {
            self.ahead.push(url.to_string());
        }
    }

    const G: &str = "http://g";

    fn settings(extra: Value) -> Settings {
        let mut m = json!({"tenant_id": "t", "client_id": "c", "graph_url": G});
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        Settings::from_json(&m.to_string()).unwrap()
    }

    fn select(s: &Settings) -> String {
        graph::fields(s).join(",")
    }

    fn user(id: &str, enabled: bool) -> Value {
        json!({"id": id, "userPrincipalName": format!("{id}@t"), "accountEnabled": enabled})
    }

    fn drain(run: &mut Run, net: &mut Fake) -> Vec<Out> {
        let mut all = Vec::new();
        while let Some(outs) = run.next(net).unwrap() {
            all.extend(outs);
        }
        all
    }

    fn ids(outs: &[Out]) -> Vec<String> {
        outs.iter()
            .map(|o| match o {
                Out::User { id, .. } => format!("user {id}"),
                Out::Group { id, members, .. } => format!("group {id} {}", members.join(" ")),
                Out::RemovedUser(id) => format!("-user {id}"),
                Out::RemovedGroup(id) => format!("-group {id}"),
                Out::Failed { locator, .. } => format!("failed {locator}"),
            })
            .collect()
    }

    fn today() -> Date {
        Date::parse("2026-11-22").unwrap()
    }

    #[test]
    fn a_full_run_pages_users_and_groups_and_keeps_a_delta_link() {
        let s = settings(json!({}));
        let sel = select(&s);
        let mut net = Fake::default();
        net.on(&format!("{G}/v1.0/users/delta?$select={sel}&$deltatoken=latest"), 200,
               json!({"value": [], "@odata.deltaLink": "http://g/d1"}))
            .on(&format!("{G}/v1.0/users?$select={sel}&$top=999"), 200,
                json!({"value": [user("a", true), user("b", false)], "@odata.nextLink": "http://g/p2"}))
            .on("http://g/p2", 200, json!({"value": [user("c", true)]}))
            .on(&format!("{G}/v1.0/groups?$select=id,displayName&$top=999"), 200,
                json!({"value": [{"id": "g1", "displayName": "Staff"}, {"id": "g2", "displayName": "IT"}]}))
            .on(&format!("{G}/v1.0/groups/g1/members?$select=id&$top=999"), 200,
                json!({"value": [{"id": "a"}, {"id": "g2"}], "@odata.nextLink": "http://g/m2"}))
            .on("http://g/m2", 200, json!({"value": [{"id": "c"}]}))
            .on(&format!("{G}/v1.0/groups/g2/members?$select=id&$top=999"), 200, json!({"value": []}));
        let mut run = Run::start(s.clone(), Mode::Delta, None, today(), &mut net).unwrap();
        assert_eq!(run.mode(), Mode::Full);
        let outs = drain(&mut run, &mut net);
        assert_eq!(
            ids(&outs),
            ["user a", "user c", "group g1 a g2 c", "group g2 "]
        );
        // The second page of users is asked for before the first is turned into users.
        assert_eq!(net.ahead, ["http://g/p2"]);
        let end = run.finish();
        assert_eq!(end.mode, Mode::Full);
        let c = Cursor::parse(&end.cursor.unwrap()).unwrap();
        assert_eq!(c.users, "http://g/d1");
        assert_eq!(c.groups, ["g1", "g2"]);
        assert_eq!(c.fingerprint, s.fingerprint);
        assert!(end.notices.is_empty());
    }

    #[test]
    fn a_delta_run_sends_changes_and_removals_and_a_410_falls_back() {
        let s = settings(json!({"import_groups": true}));
        let sel = select(&s);
        let cursor = Cursor {
            fingerprint: s.fingerprint.clone(),
            users: "http://g/d1".into(),
            groups: vec!["g1".into(), "old".into()],
        }
        .render();
        let mut net = Fake::default();
        net.on("http://g/d1", 200, json!({"value": [user("a", true), {"id": "b", "@removed": {"reason": "deleted"}}, user("c", false)], "@odata.nextLink": "http://g/d1b"}))
            .on("http://g/d1b", 200, json!({"value": [], "@odata.deltaLink": "http://g/d2"}))
            .on(&format!("{G}/v1.0/groups?$select=id,displayName&$top=999"), 200, json!({"value": [{"id": "g1", "displayName": "Staff"}]}))
            .on(&format!("{G}/v1.0/groups/g1/members?$select=id&$top=999"), 200, json!({"value": [{"id": "a"}]}));
        let mut run = Run::start(s.clone(), Mode::Delta, Some(&cursor), today(), &mut net).unwrap();
        assert_eq!(run.mode(), Mode::Delta);
        let outs = drain(&mut run, &mut net);
        assert_eq!(
            ids(&outs),
            ["user a", "-user b", "-user c", "group g1 a", "-group old"]
        );
        let end = run.finish();
        assert_eq!(end.mode, Mode::Delta);
        assert_eq!(
            Cursor::parse(&end.cursor.unwrap()).unwrap().users,
            "http://g/d2"
        );

        // The same cursor, expired: a full run, said so.
        net.on(
            "http://g/d1",
            410,
            json!({"error": {"code": "syncStateNotFound", "message": "expired"}}),
        )
        .on(
            &format!("{G}/v1.0/users/delta?$select={sel}&$deltatoken=latest"),
            200,
            json!({"value": [], "@odata.deltaLink": "http://g/d3"}),
        )
        .on(
            &format!("{G}/v1.0/users?$select={sel}&$top=999"),
            200,
            json!({"value": [user("a", true)]}),
        );
        let mut run = Run::start(s.clone(), Mode::Delta, Some(&cursor), today(), &mut net).unwrap();
        assert_eq!(run.mode(), Mode::Full);
        assert_eq!(ids(&drain(&mut run, &mut net)), ["user a", "group g1 a"]);
        let end = run.finish();
        assert!(
            end.notices[0].contains("syncStateNotFound"),
            "{:?}",
            end.notices
        );
        assert_eq!(
            Cursor::parse(&end.cursor.unwrap()).unwrap().users,
            "http://g/d3"
        );

        // A cursor made under another config is not used.
        let other = settings(json!({"include_disabled": true}));
        let run = Run::start(other, Mode::Delta, Some(&cursor), today(), &mut net).unwrap();
        assert_eq!(run.mode(), Mode::Full);
    }

    #[test]
    fn a_group_scope_lists_transitive_members_once_and_the_nested_groups() {
        let s = settings(json!({"groups": ["g1", "g9"]}));
        let sel = select(&s);
        let mut net = Fake::default();
        net.on(&format!("{G}/v1.0/groups/g1/transitiveMembers/microsoft.graph.user?$select={sel}&$top=999"), 200,
               json!({"value": [user("a", true), user("b", true)]}))
            .on(&format!("{G}/v1.0/groups/g9/transitiveMembers/microsoft.graph.user?$select={sel}&$top=999"), 200,
                json!({"value": [user("b", true), user("c", true)]}))
            .on(&format!("{G}/v1.0/groups/g1?$select=id,displayName"), 200, json!({"id": "g1", "displayName": "Staff"}))
            .on(&format!("{G}/v1.0/groups/g1/transitiveMembers/microsoft.graph.group?$select=id,displayName&$top=999"), 200,
                json!({"value": [{"id": "g2", "displayName": "IT"}]}))
            .on(&format!("{G}/v1.0/groups/g9?$select=id,displayName"), 404, json!({"error": {"code": "Request_ResourceNotFound"}}));
        let mut run = Run::start(s, Mode::Delta, Some("whatever"), today(), &mut net).unwrap();
        let mut outs = Vec::new();
        let err = loop {
            match run.next(&mut net) {
                Ok(Some(o)) => outs.extend(o),
                Ok(None) => panic!("a missing scope group must fail the run"),
                Err(e) => break e,
            }
        };
        assert_eq!(ids(&outs), ["user a", "user b", "user c"]);
        assert!(
            matches!(&err, Error::Config(m) if m.contains("g9")),
            "{err:?}"
        );
        assert_eq!(run.finish().cursor, None, "a group scope has no delta");
    }

    #[test]
    fn statuses_become_errors_that_say_what_to_do() {
        let s = settings(json!({"import_groups": false, "use_delta": false}));
        let sel = select(&s);
        let url = format!("{G}/v1.0/users?$select={sel}&$top=999");
        for (status, body, want) in [
            (
                403,
                json!({"error": {"code": "Authorization_RequestDenied", "message": "no"}}),
                "User.Read.All",
            ),
            (
                500,
                json!({"error": {"code": "x", "message": "boom"}}),
                "HTTP 500",
            ),
            (200, json!({"value": 3}), "malformed"),
        ] {
            let mut net = Fake::default();
            net.on(&url, status, body);
            let mut run = Run::start(s.clone(), Mode::Full, None, today(), &mut net).unwrap();
            let e = run.next(&mut net).unwrap_err();
            assert!(e.to_string().contains(want), "{status}: {e}");
        }
    }

    #[test]
    fn the_secret_expiry_is_a_notice_of_every_run_and_of_the_test() {
        let s = settings(
            json!({"secret_expires": "2026-11-25", "import_groups": false, "use_delta": false}),
        );
        let sel = select(&s);
        let mut net = Fake::default();
        net.on(
            &format!("{G}/v1.0/users?$select={sel}&$top=999"),
            200,
            json!({"value": [user("a", true)]}),
        )
        .on(
            &format!("{G}/v1.0/users?$select={sel}&$top=999&$count=true"),
            200,
            json!({"value": [user("a", true)], "@odata.count": 1}),
        );
        let mut run = Run::start(s.clone(), Mode::Full, None, today(), &mut net).unwrap();
        drain(&mut run, &mut net);
        let end = run.finish();
        assert!(
            end.notices[0].contains("expires on 2026-11-25 (in 3 days)"),
            "{:?}",
            end.notices
        );
        let t = test(s, today(), &mut net).unwrap();
        assert_eq!(t.users, Some(1));
        assert!(matches!(t.sample, Some(Out::User { ref id, .. }) if id == "a"));
        assert!(t.messages.iter().any(|m| m.contains("2026-11-25")));
    }
}
