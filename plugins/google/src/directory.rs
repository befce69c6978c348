//! One run against the Directory API: the OU tree, then groups with their members, then
//! users page by page, each request through a [`Fetch`] (the host's `http` in the component,
//! a fake in tests).

use crate::convert::{self, group_id, ou_id};
use crate::settings::{self, Settings};
use crate::wire;
use roster_plugin::{Error, Group, Item, Listing};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{HashSet, VecDeque};

/// Users per page: the API's maximum.
pub const USERS_PAGE: u32 = 500;
/// Groups and members per page: the API's maximum.
pub const GROUPS_PAGE: u32 = 200;

/// An HTTP answer.
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// GETs a Directory API URL with the host-held credential.
pub trait Fetch: 'static {
    fn get(&mut self, url: &str) -> Result<Reply, Error>;

    /// Starts fetching `url` in the background, for a `get` of it that follows soon (the
    /// next page while this one is converted). By default nothing.
    fn prefetch(&mut self, _url: &str) {}
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn query(pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    q.finish()
}

/// Google's error message of a failed call (`{"error": {"message": …}}`).
fn google_message(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match v["error"]["message"].as_str() {
        Some(m) => m.to_string(),
        None => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

/// What a run reads through the API, for its requests and its messages.
pub struct Api<F> {
    pub fetch: F,
    pub settings: Settings,
}

impl<F: Fetch> Api<F> {
    fn base(&self) -> String {
        format!("{}/admin/directory/v1", self.settings.api)
    }

    /// GETs and parses a 2xx JSON answer; other answers are errors by class. `what` names
    /// the call and `scope` the scope it needs, for the admin.
    fn get(&mut self, url: &str, what: &str, scope: &str) -> Result<Value, Error> {
        let body = self.get_body(url, what, scope)?;
        parse(&body, what)
    }

    /// GETs a URL: the body of a 2xx answer; other answers are errors by class.
    fn get_body(&mut self, url: &str, what: &str, scope: &str) -> Result<Vec<u8>, Error> {
        let r = self.fetch.get(url)?;
        let msg = || google_message(&r.body);
        match r.status {
            200..=299 => Ok(r.body),
            401 => Err(Error::authentication(format!(
                "{what}: Google refused the token (HTTP 401: {})",
                msg()
            ))),
            403 => Err(Error::authentication(format!(
                "{what}: HTTP 403: {}: the service account's client id needs domain-wide \
                 delegation with the scope {} (Admin console: Security, API controls), and \
                 subject {} must be an administrator allowed to read {what}",
                msg(),
                settings::scope(scope),
                self.settings.subject
            ))),
            404 => Err(Error::config(format!(
                "{what}: not found (HTTP 404: {})",
                msg()
            ))),
            400 => Err(Error::config(format!("{what}: HTTP 400: {}", msg()))),
            429 | 500..=599 => Err(Error::unavailable(format!(
                "{what}: HTTP {}: {}",
                r.status,
                msg()
            ))),
            s => Err(Error::config(format!("{what}: HTTP {s}: {}", msg()))),
        }
    }

    fn org_units(&mut self) -> Result<Vec<Value>, Error> {
        let url = format!(
            "{}/customer/{}/orgunits?type=all",
            self.base(),
            enc(&self.settings.customer)
        );
        let v = self.get(&url, "organisational units", settings::ORGUNIT_SCOPE)?;
        Ok(match v.get("organizationUnits") {
            Some(Value::Array(a)) => a.clone(),
            None | Some(Value::Null) => Vec::new(),
            Some(_) => {
                return Err(Error::bad_data(
                    "organisational units: organizationUnits is not a list",
                ))
            }
        })
    }

    /// The customer or domain parameter of list calls.
    fn owner(&self) -> (&'static str, &str) {
        match &self.settings.domain {
            Some(d) => ("domain", d),
            None => ("customer", &self.settings.customer),
        }
    }

    /// The body of one page of `users.list`.
    pub fn users_body(&mut self, token: Option<&str>) -> Result<Vec<u8>, Error> {
        let url = self.users_url(token);
        self.get_body(&url, "users", settings::USER_SCOPE)
    }

    /// Asks for the next page of users while this one is converted.
    fn prefetch_users(&mut self, token: &str) {
        let next_url = self.users_url(Some(token));
        self.fetch.prefetch(&next_url);
    }

    fn users_url(&self, token: Option<&str>) -> String {
        let max = USERS_PAGE.to_string();
        let (owner, value) = self.owner();
        let mut p = vec![(owner, value), ("projection", "full"), ("maxResults", &max)];
        let q = self.settings.query.clone();
        if let Some(q) = &q {
            p.push(("query", q));
        }
        if let Some(t) = token {
            p.push(("pageToken", t));
        }
        format!("{}/users?{}", self.base(), query(&p))
    }

    fn groups_page(&mut self, token: Option<&str>) -> Result<(Vec<Value>, Option<String>), Error> {
        let max = GROUPS_PAGE.to_string();
        let (owner, value) = self.owner();
        let mut p = vec![(owner, value), ("maxResults", &max)];
        if let Some(t) = token {
            p.push(("pageToken", t));
        }
        let url = format!("{}/groups?{}", self.base(), query(&p));
        let v = self.get(&url, "groups", settings::GROUP_SCOPE)?;
        page(v, "groups")
    }

    fn group(&mut self, key: &str) -> Result<Value, Error> {
        let url = format!("{}/groups/{}", self.base(), enc(key));
        self.get(&url, &format!("group {key}"), settings::GROUP_SCOPE)
            .map_err(|e| match e {
                Error::Config(m) => Error::config(format!("groups: {m}")),
                other => other,
            })
    }

    /// Every direct member of a group, all pages: (user ids, group ids).
    fn members(&mut self, id: &str) -> Result<(Vec<String>, Vec<String>), Error> {
        let (mut users, mut groups) = (Vec::new(), Vec::new());
        let mut token: Option<String> = None;
        loop {
            let max = GROUPS_PAGE.to_string();
            let mut p = vec![("maxResults", max.as_str())];
            if let Some(t) = &token {
                p.push(("pageToken", t));
            }
            let url = format!("{}/groups/{}/members?{}", self.base(), enc(id), query(&p));
            let v = self.get(
                &url,
                &format!("members of group {id}"),
                settings::GROUP_SCOPE,
            )?;
            let (members, next) = page(v, "members")?;
            for m in members {
                let Some(mid) = m["id"].as_str() else {
                    continue;
                };
                match m["type"].as_str() {
                    Some("USER") => users.push(mid.to_string()),
                    Some("GROUP") => groups.push(mid.to_string()),
                    // CUSTOMER (everyone in the domain) and others are no one in particular.
                    _ => {}
                }
            }
            match next {
                Some(n) => token = Some(n),
                None => return Ok((users, groups)),
            }
        }
    }
}

/// A 2xx answer's JSON.
fn parse(body: &[u8], what: &str) -> Result<Value, Error> {
    serde_json::from_slice(body)
        .map_err(|e| Error::bad_data(format!("{what}: the answer is not JSON: {e}")))
}

/// The list under `key` and the next page's token of a list answer.
fn page(mut v: Value, key: &str) -> Result<(Vec<Value>, Option<String>), Error> {
    let items = match v.get_mut(key).map(Value::take) {
        Some(Value::Array(a)) => a,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => {
            return Err(Error::bad_data(format!(
                "{key}: the page's {key} is not a list"
            )))
        }
    };
    let next = v["nextPageToken"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    Ok((items, next))
}

enum Phase {
    OrgUnits,
    Groups,
    Users(Option<String>),
    Done,
}

/// The listing of one run.
pub struct Run<F> {
    api: Api<F>,
    phase: Phase,
    queue: VecDeque<Item>,
    /// OU paths sent as groups.
    ous: HashSet<String>,
    /// With `groups`: the users in scope (members, nested ones included).
    scope: Option<HashSet<String>>,
    pub users_seen: u64,
}

impl<F: Fetch> Run<F> {
    pub fn new(api: Api<F>) -> Run<F> {
        Run {
            api,
            phase: Phase::OrgUnits,
            queue: VecDeque::new(),
            ous: HashSet::new(),
            scope: None,
            users_seen: 0,
        }
    }

    fn org_units(&mut self) -> Result<(), Error> {
        let all = self.api.org_units()?;
        let s = &self.api.settings;
        let paths: HashSet<&str> = all
            .iter()
            .filter_map(|o| o["orgUnitPath"].as_str())
            .collect();
        if let Some(missing) =
            (s.org_units.iter()).find(|p| *p != "/" && !paths.contains(p.as_str()))
        {
            return Err(Error::config(format!(
                "org_units: {missing} is not an organisational unit of customer {}",
                s.customer
            )));
        }
        for ou in &all {
            let Some(g) = convert::org_unit(ou) else {
                continue;
            };
            let path = ou["orgUnitPath"].as_str().unwrap_or_default();
            if s.ou_in_scope(path) {
                self.ous.insert(path.to_string());
                self.queue.push_back(Item::Group(g));
            }
        }
        Ok(())
    }

    fn groups(&mut self) -> Result<(), Error> {
        let mut todo: VecDeque<Value> = VecDeque::new();
        let scoped = !self.api.settings.groups.is_empty();
        if scoped {
            for key in self.api.settings.groups.clone() {
                todo.push_back(self.api.group(&key)?);
            }
            self.scope = Some(HashSet::new());
        } else {
            let mut token = None;
            loop {
                let (groups, next) = self.api.groups_page(token.as_deref())?;
                todo.extend(groups);
                match next {
                    Some(n) => token = Some(n),
                    None => break,
                }
            }
        }
        let mut seen = HashSet::new();
        while let Some(g) = todo.pop_front() {
            let Some(id) = g["id"].as_str().map(str::to_string) else {
                continue;
            };
            if !seen.insert(id.clone()) {
                continue;
            }
            let (users, nested) = self.api.members(&id)?;
            if let Some(scope) = &mut self.scope {
                scope.extend(users.iter().cloned());
                // Nested groups of a scope group are in scope too; read them.
                for n in &nested {
                    if !seen.contains(n) {
                        todo.push_back(self.api.group(n)?);
                    }
                }
            }
            let email = g["email"].as_str().unwrap_or_default();
            let name = (g["name"].as_str())
                .filter(|n| !n.is_empty())
                .unwrap_or(email);
            let group = Group::new(group_id(&id), name)
                .locator(if email.is_empty() { id.as_str() } else { email })
                .attr("email", email)
                .members(users)
                .members(nested.iter().map(|n| group_id(n)));
            self.queue.push_back(Item::Group(group));
        }
        Ok(())
    }

    fn users(&mut self, token: Option<String>) -> Result<Option<String>, Error> {
        let body = self.api.users_body(token.as_deref())?;
        // Typed first; an answer that is not (a duplicate key, `users` not a list) goes the
        // way of a `Value`, which reports what is wrong with it.
        let fallback: Vec<Value>;
        let (users, next): (Vec<wire::User>, Option<String>) =
            match serde_json::from_slice::<wire::UsersPage>(&body) {
                Ok(p) => {
                    let next = p.next_page_token.filled().map(str::to_string);
                    (p.users.unwrap_or_default(), next)
                }
                Err(_) => {
                    let (values, next) = page(parse(&body, "users")?, "users")?;
                    fallback = values;
                    let users = (fallback.iter())
                        .map(|v| wire::User::deserialize(v).unwrap_or_default())
                        .collect();
                    (users, next)
                }
            };
        if let Some(n) = &next {
            self.api.prefetch_users(n);
        }
        let s = &self.api.settings;
        for u in &users {
            let mut user = match convert::user(u) {
                Ok(user) => user,
                Err(why) => {
                    let at = u.id.get().unwrap_or("a user without an id");
                    self.queue.push_back(Item::failed(at, why));
                    continue;
                }
            };
            let ou = u.org_unit_path.get().unwrap_or("/");
            if (u.suspended.0 && !s.include_suspended)
                || !s.ou_in_scope(ou)
                || self.scope.as_ref().is_some_and(|sc| !sc.contains(&user.id))
            {
                continue;
            }
            if self.ous.contains(ou) {
                user = user.member_of(ou_id(ou));
            }
            self.users_seen += 1;
            self.queue.push_back(Item::Row(user));
        }
        Ok(next)
    }
}

impl<F: Fetch> Listing for Run<F> {
    fn next(&mut self) -> Result<Option<Item>, Error> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Ok(Some(item));
            }
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::OrgUnits => {
                    self.org_units()?;
                    self.phase = Phase::Groups;
                }
                Phase::Groups => {
                    self.groups()?;
                    self.phase = Phase::Users(None);
                }
                Phase::Users(token) => {
                    if let Some(next) = self.users(token)? {
                        self.phase = Phase::Users(Some(next));
                    }
                }
                Phase::Done => return Ok(None),
            }
        }
    }
}

/// `roster sources test`: the OUs and the first page of users, without reading everything.
pub fn test<F: Fetch>(
    api: Api<F>,
) -> Result<(u64, Option<roster_plugin::User>, Vec<String>), Error> {
    let mut run = Run::new(api);
    run.org_units()?;
    let ous = run.queue.len() as u64;
    run.queue.clear();
    let next = run.users(None)?;
    let sample = run.queue.iter().find_map(|i| match i {
        Item::Row(r) => Some(r.clone().into_user(&convert::columns())),
        _ => None,
    });
    let mut messages = vec![format!(
        "{} users on the first page{}",
        run.users_seen,
        if next.is_some() {
            ", more pages follow"
        } else {
            ""
        }
    )];
    if !run.api.settings.groups.is_empty() {
        messages.push("users are limited to the members of `groups` in a run".into());
    }
    Ok((ous, sample, messages))
}

#[cfg(test)]
mod tests {
    use super::*;
    use roster_plugin::Config;
    use serde_json::json;
    use std::collections::HashMap;

    /// Answers by URL path and query, in order; records what was asked.
    #[derive(Default)]
    struct Fake {
        answers: HashMap<String, (u16, Value)>,
        /// Bodies given as text (what a `Value` cannot hold, such as a duplicate key).
        raw: HashMap<String, String>,
        asked: std::rc::Rc<std::cell::RefCell<Vec<String>>>,
    }

    impl Fetch for Fake {
        fn get(&mut self, url: &str) -> Result<Reply, Error> {
            let rel = url
                .strip_prefix("https://admin.googleapis.com/admin/directory/v1")
                .unwrap();
            self.asked.borrow_mut().push(rel.to_string());
            if let Some(body) = self.raw.get(rel) {
                let body = body.clone().into_bytes();
                return Ok(Reply { status: 200, body });
            }
            let (status, v) = self.answers.get(rel).cloned().unwrap_or((
                404,
                json!({"error": {"code": 404, "message": "Resource Not Found"}}),
            ));
            Ok(Reply {
                status,
                body: v.to_string().into_bytes(),
            })
        }

        fn prefetch(&mut self, url: &str) {
            let rel = url.strip_prefix("https://admin.googleapis.com/admin/directory/v1");
            self.asked
                .borrow_mut()
                .push(format!("ahead {}", rel.unwrap()));
        }
    }

    fn settings(extra: &str) -> Settings {
        let json = format!(r#"{{"subject": "admin@ex.com"{extra}}}"#);
        Settings::from_config(&Config::from_json(&json).unwrap()).unwrap()
    }

    fn tenant() -> Fake {
        let mut f = Fake::default();
        let mut put = |k: &str, v: Value| {
            f.answers.insert(k.to_string(), (200, v));
        };
        put(
            "/customer/my_customer/orgunits?type=all",
            json!({"organizationUnits": [
                {"orgUnitPath": "/Staff", "name": "Staff", "parentOrgUnitPath": "/"},
                {"orgUnitPath": "/Staff/IT", "name": "IT", "parentOrgUnitPath": "/Staff"},
                {"orgUnitPath": "/Students", "name": "Students", "parentOrgUnitPath": "/"}]}),
        );
        put(
            "/users?customer=my_customer&projection=full&maxResults=500",
            json!({"users": [
                {"id": "1", "primaryEmail": "a@ex.com", "orgUnitPath": "/Staff/IT"},
                {"id": "2", "primaryEmail": "b@ex.com", "orgUnitPath": "/Students", "suspended": true}],
                "nextPageToken": "p 2"}),
        );
        put(
            "/users?customer=my_customer&projection=full&maxResults=500&pageToken=p+2",
            json!({"users": [{"id": "3", "primaryEmail": "c@ex.com", "orgUnitPath": "/Students"},
                             {"id": "4"}]}),
        );
        put(
            "/groups?customer=my_customer&maxResults=200",
            json!({"groups": [{"id": "g1", "email": "all@ex.com", "name": "All"}]}),
        );
        put(
            "/groups/all%40ex.com",
            json!({"id": "g1", "email": "all@ex.com", "name": "All"}),
        );
        put(
            "/groups/g1/members?maxResults=200",
            json!({"members": [{"id": "1", "type": "USER"}, {"id": "g2", "type": "GROUP"},
                               {"id": "C0", "type": "CUSTOMER"}], "nextPageToken": "m2"}),
        );
        put(
            "/groups/g1/members?maxResults=200&pageToken=m2",
            json!({"members": [{"id": "3", "type": "USER"}]}),
        );
        put(
            "/groups/g2",
            json!({"id": "g2", "email": "it@ex.com", "name": "IT team"}),
        );
        put(
            "/groups/g2/members?maxResults=200",
            json!({"members": [{"id": "2", "type": "USER"}]}),
        );
        f
    }

    fn items(s: Settings, f: Fake) -> Result<Vec<Item>, Error> {
        let run = Run::new(Api {
            fetch: f,
            settings: s,
        });
        roster_plugin::Run::from_listing(run).collect().map(|r| r.0)
    }

    fn ids(items: &[Item]) -> Vec<String> {
        (items.iter())
            .map(|i| match i {
                Item::User(u) => format!("user {} in {:?}", u.id, u.member_of),
                Item::Group(g) => format!("group {} {:?} {:?}", g.id, g.parent, g.members),
                Item::Failed { locator, reason } => format!("failed {locator}: {reason}"),
                Item::Removed { id, .. } => format!("removed {id}"),
                Item::Row(r) => format!("user {} in {:?}", r.id, r.member_of),
            })
            .collect()
    }

    #[test]
    fn the_tree_groups_and_pages_of_users() {
        let f = tenant();
        let asked = f.asked.clone();
        let got = ids(&items(settings(""), f).unwrap());
        // The second page is asked for ahead, then read.
        let second = "/users?customer=my_customer&projection=full&maxResults=500&pageToken=p+2";
        let asked = asked.borrow();
        let n = asked.len();
        assert_eq!(
            asked[n - 2..],
            [format!("ahead {second}"), second.to_string()]
        );
        assert_eq!(
            got,
            [
                "group ou:/Staff None []",
                "group ou:/Staff/IT Some(\"ou:/Staff\") []",
                "group ou:/Students None []",
                "group group:g1 None [\"1\", \"3\", \"group:g2\"]",
                "user 1 in [\"ou:/Staff/IT\"]",
                "user 3 in [\"ou:/Students\"]",
                "failed 4: the user has no primaryEmail",
            ]
        );
    }

    #[test]
    fn a_page_the_typed_read_refuses_is_read_as_a_value_with_the_same_result() {
        let first = "/users?customer=my_customer&projection=full&maxResults=500";
        let second = format!("{first}&pageToken=p+2");
        let typed = ids(&items(settings(""), tenant()).unwrap());
        // A duplicate key (the last one counts, as in `Value`) fails the typed read.
        let mut f = tenant();
        let mut page = f.answers[first].1.to_string();
        page.insert_str(1, r#""users": 5, "#);
        assert!(serde_json::from_str::<wire::UsersPage>(&page).is_err());
        f.raw.insert(first.to_string(), page);
        let mut page = f.answers[&second].1.to_string();
        page.insert_str(1, r#""users": [], "#);
        f.raw.insert(second, page);
        assert_eq!(ids(&items(settings(""), f).unwrap()), typed);
        // `users` that is not a list is reported, as before.
        let mut f = tenant();
        f.raw
            .insert(first.to_string(), r#"{"users": 5}"#.to_string());
        let err = items(settings(""), f).unwrap_err();
        assert!(err.to_string().contains("is not a list"), "{err}");
    }

    #[test]
    fn scopes_by_org_unit_group_and_suspension() {
        let got = ids(&items(
            settings(r#", "org_units": ["/Staff"], "include_suspended": true"#),
            tenant(),
        )
        .unwrap());
        assert_eq!(
            got,
            [
                "group ou:/Staff None []",
                "group ou:/Staff/IT Some(\"ou:/Staff\") []",
                "group group:g1 None [\"1\", \"3\", \"group:g2\"]",
                "user 1 in [\"ou:/Staff/IT\"]",
                "failed 4: the user has no primaryEmail",
            ]
        );
        // Group scope: g1 and the g2 nested in it; user 2 (suspended) is a member of g2.
        let got = ids(&items(
            settings(r#", "groups": ["all@ex.com"], "include_suspended": true"#),
            tenant(),
        )
        .unwrap());
        assert_eq!(
            got[3..],
            [
                "group group:g1 None [\"1\", \"3\", \"group:g2\"]",
                "group group:g2 None [\"2\"]",
                "user 1 in [\"ou:/Staff/IT\"]",
                "user 2 in [\"ou:/Students\"]",
                "user 3 in [\"ou:/Students\"]",
                "failed 4: the user has no primaryEmail",
            ]
        );
        let err = items(settings(r#", "org_units": ["/Nope"]"#), tenant()).unwrap_err();
        assert!(
            err.to_string()
                .contains("/Nope is not an organisational unit"),
            "{err}"
        );
        let err = items(settings(r#", "groups": ["nobody@ex.com"]"#), tenant()).unwrap_err();
        assert!(
            matches!(err, Error::Config(ref m) if m.starts_with("groups: group nobody@ex.com: not found")),
            "{err:?}"
        );
    }

    #[test]
    fn a_403_names_the_scope_and_the_subject() {
        let mut f = tenant();
        f.answers.insert(
            "/groups?customer=my_customer&maxResults=200".into(),
            (403, json!({"error": {"code": 403, "message": "Not Authorized to access this resource/api"}})),
        );
        let err = items(settings(""), f).unwrap_err();
        let Error::Authentication(m) = err else {
            panic!("{err:?}")
        };
        assert!(
            m.contains("Not Authorized to access this resource/api"),
            "{m}"
        );
        assert!(m.contains("admin.directory.group.readonly"), "{m}");
        assert!(m.contains("admin@ex.com"), "{m}");
    }

    #[test]
    fn a_domain_and_a_query_go_to_users_list() {
        let mut f = tenant();
        let groups = (200, json!({"groups": []}));
        f.answers
            .insert("/groups?domain=ex.com&maxResults=200".into(), groups);
        let asked = f.asked.clone();
        let _ = items(
            settings(r#", "domain": "ex.com", "query": "orgName='Staff' isSuspended=false""#),
            f,
        );
        let asked = asked.borrow();
        let users = asked.iter().find(|a| a.starts_with("/users")).unwrap();
        assert_eq!(
            users,
            "/users?domain=ex.com&projection=full&maxResults=500&query=orgName%3D%27Staff%27+isSuspended%3Dfalse"
        );
    }
}
