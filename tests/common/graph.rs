//! A Microsoft Graph emulator on loopback for the Entra connector's tests: the token
//! endpoint, users with paging, groups with (transitive) members, users/delta, and faults
//! a test can switch on. It runs in the test process on its own threads (tiny_http).

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const TENANT: &str = "contoso-tenant";
pub const CLIENT_ID: &str = "app-1234";

/// Faults a test switches on.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Percentage of `/v1.0` requests answered 429 (with `Retry-After: 0`) or 503 (without),
    /// in turn.
    pub throttle_percent: u32,
    /// After this many more `/v1.0` requests, every token issued so far is revoked.
    pub revoke_after: Option<u32>,
    /// Every page of `/v1.0/users` waits this long.
    pub slow: Option<Duration>,
    /// The Nth page (1-based) of `/v1.0/users` is cut short mid-JSON.
    pub malformed_page: Option<u32>,
    /// `/v1.0/users` answers a 302 to this base URL.
    pub redirect_users_to: Option<String>,
    /// The nextLinks of `/v1.0/users` point at this base URL.
    pub next_link_base: Option<String>,
}

/// One request the emulator answered.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Logged {
    pub fn param(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
}

struct State {
    secret: String,
    token_lifetime: u64,
    tokens: HashMap<String, Instant>,
    token_count: u64,
    users: BTreeMap<String, Map<String, Value>>,
    groups: BTreeMap<String, (String, Vec<String>)>,
    /// Change sequence: the last change of each user id (removals included).
    seq: u64,
    changed: HashMap<String, u64>,
    removed: BTreeSet<String>,
    /// Delta tokens issued: token → the sequence number it stands for.
    delta_tokens: HashMap<String, u64>,
    faults: Faults,
    users_pages: u32,
    /// `/v1.0` requests served and throttled, for the throttling fault.
    served: u64,
    throttled: u64,
    rng: u64,
    log: Vec<Logged>,
}

pub struct Graph {
    base: String,
    state: Arc<Mutex<State>>,
    server: Arc<tiny_http::Server>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for Graph {
    fn drop(&mut self) {
        for _ in &self.workers {
            self.server.unblock();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// A user of the standard tenant: `user{i}@contoso.test`; every 10th has no `mail`, every
/// 25th is disabled.
pub fn user(i: usize) -> Value {
    let department = ["Sales", "IT", "Ops"][i % 3];
    json!({
        "id": format!("{i:08x}-0000-4000-8000-{i:012x}"),
        "userPrincipalName": format!("user{i}@contoso.test"),
        "mail": if i % 10 == 3 { Value::Null } else { format!("User{i}@contoso.test").into() },
        "displayName": format!("User Number {i}"),
        "givenName": format!("Given{i}"),
        "surname": format!("Sur{i}"),
        "accountEnabled": i % 25 != 7,
        "employeeId": format!("E{i:06}"),
        "mobilePhone": format!("+420 600 {i:06}"),
        "preferredLanguage": "en-US",
        "onPremisesSamAccountName": format!("user{i}"),
        "department": department,
        "jobTitle": "Clerk",
        "officeLocation": null,
        "employeeType": "staff",
    })
}

pub fn user_id(i: usize) -> String {
    user(i)["id"].as_str().unwrap().to_string()
}

impl Graph {
    /// An emulator holding `users` (see [`user`]) and no groups, accepting `secret`.
    pub fn start(secret: &str, users: usize) -> Graph {
        let server = Arc::new(
            tiny_http::Server::from_listener(super::nodelay_listener(), None)
                .expect("bind the emulator"),
        );
        let port = server.server_addr().to_ip().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let mut st = State {
            secret: secret.to_string(),
            token_lifetime: 3600,
            tokens: HashMap::new(),
            token_count: 0,
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            seq: 0,
            changed: HashMap::new(),
            removed: BTreeSet::new(),
            delta_tokens: HashMap::new(),
            faults: Faults::default(),
            users_pages: 0,
            served: 0,
            throttled: 0,
            rng: 0x9e37_79b9_7f4a_7c15,
            log: Vec::new(),
        };
        for i in 0..users {
            let u = user(i);
            st.users
                .insert(u["id"].as_str().unwrap().to_string(), obj(u));
        }
        let state = Arc::new(Mutex::new(st));
        let workers = (0..4)
            .map(|_| {
                let (server, state, base) = (server.clone(), state.clone(), base.clone());
                std::thread::spawn(move || {
                    while let Ok(mut rq) = server.recv() {
                        let mut body = String::new();
                        let _ = rq.as_reader().read_to_string(&mut body);
                        let (status, headers, payload, delay) = handle(&state, &base, &rq, &body);
                        if let Some(d) = delay {
                            std::thread::sleep(d);
                        }
                        let mut resp =
                            tiny_http::Response::from_data(payload).with_status_code(status);
                        for (k, v) in headers {
                            resp.add_header(
                                tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).unwrap(),
                            );
                        }
                        let _ = rq.respond(resp);
                    }
                })
            })
            .collect();
        Graph {
            base,
            state,
            server,
            workers,
        }
    }

    /// `http://127.0.0.1:PORT`: both the authority and the Graph base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    pub fn set_faults(&self, faults: Faults) {
        let mut st = self.st();
        st.faults = faults;
        st.users_pages = 0;
    }

    /// Seconds a token lasts (`expires_in`).
    pub fn set_token_lifetime(&self, secs: u64) {
        self.st().token_lifetime = secs;
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.st().log.clone()
    }

    pub fn clear_log(&self) {
        self.st().log.clear();
    }

    pub fn tokens_issued(&self) -> u64 {
        self.st().token_count
    }

    pub fn user_count(&self) -> usize {
        self.st().users.len()
    }

    /// Adds or replaces a user (a change for delta).
    pub fn put_user(&self, user: Value) {
        let mut st = self.st();
        let id = user["id"].as_str().expect("a user has an id").to_string();
        st.seq += 1;
        let seq = st.seq;
        st.changed.insert(id.clone(), seq);
        st.removed.remove(&id);
        st.users.insert(id, obj(user));
    }

    /// Changes some fields of a user.
    pub fn patch_user(&self, id: &str, patch: Value) {
        let mut u = Value::Object(self.st().users[id].clone());
        for (k, v) in patch.as_object().unwrap() {
            u[k] = v.clone();
        }
        self.put_user(u);
    }

    pub fn remove_user(&self, id: &str) {
        let mut st = self.st();
        st.users.remove(id);
        st.seq += 1;
        let seq = st.seq;
        st.changed.insert(id.to_string(), seq);
        st.removed.insert(id.to_string());
        for (_, members) in st.groups.values_mut() {
            members.retain(|m| m != id);
        }
    }

    /// Adds or replaces a group with its direct members (user or group ids).
    pub fn put_group(&self, id: &str, name: &str, members: &[String]) {
        self.st()
            .groups
            .insert(id.to_string(), (name.to_string(), members.to_vec()));
    }

    /// Every delta link issued so far answers 410 from now on.
    pub fn expire_delta_links(&self) {
        self.st().delta_tokens.clear();
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

type Answer = (u16, Vec<(String, String)>, Vec<u8>, Option<Duration>);

fn json_answer(status: u16, v: &Value) -> Answer {
    (
        status,
        vec![("Content-Type".into(), "application/json".into())],
        v.to_string().into_bytes(),
        None,
    )
}

fn graph_error(status: u16, code: &str, message: &str) -> Answer {
    json_answer(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

fn handle(state: &Mutex<State>, base: &str, rq: &tiny_http::Request, body: &str) -> Answer {
    let raw = rq.url().to_string();
    let (path, query) = raw.split_once('?').unwrap_or((&raw, ""));
    let headers: Vec<(String, String)> = rq
        .headers()
        .iter()
        .map(|h| (h.field.to_string(), h.value.to_string()))
        .collect();
    let mut st = state.lock().unwrap();
    let answer = route(
        &mut st,
        base,
        rq.method().as_str(),
        path,
        query,
        &headers,
        body,
    );
    st.log.push(Logged {
        method: rq.method().to_string(),
        path: path.to_string(),
        query: query.to_string(),
        status: answer.0,
        headers,
        body: body.to_string(),
    });
    answer
}

fn route(
    st: &mut State,
    base: &str,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &str,
) -> Answer {
    let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    if path == format!("/{TENANT}/oauth2/v2.0/token") && method == "POST" {
        return token(st, base, body);
    }
    let Some(rest) = path.strip_prefix("/v1.0/") else {
        return graph_error(404, "NotFound", "no such endpoint");
    };
    // Authorization first: a revoked or expired token is a 401.
    let auth = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let valid = auth
        .strip_prefix("Bearer ")
        .and_then(|t| st.tokens.get(t))
        .is_some_and(|until| Instant::now() < *until);
    if !valid {
        return graph_error(
            401,
            "InvalidAuthenticationToken",
            "Access token has expired or is not valid.",
        );
    }
    if let Some(n) = st.faults.revoke_after {
        if n == 0 {
            st.faults.revoke_after = None;
            st.tokens.clear();
            return graph_error(
                401,
                "InvalidAuthenticationToken",
                "Access token was revoked.",
            );
        }
        st.faults.revoke_after = Some(n - 1);
    }
    // Throttling spread evenly: request k fails when k·p/100 crosses an integer.
    st.served += 1;
    let (k, p) = (st.served, u64::from(st.faults.throttle_percent));
    if p > 0 && (k * p) / 100 != ((k - 1) * p) / 100 {
        st.throttled += 1;
        return if st.throttled % 2 == 1 {
            let mut a = graph_error(429, "TooManyRequests", "Too many requests");
            a.1.push(("Retry-After".into(), "0".into()));
            a
        } else {
            graph_error(503, "ServiceUnavailable", "Try again")
        };
    }
    let select: Option<Vec<String>> = params
        .get("$select")
        .map(|s| s.split(',').map(str::to_string).collect());
    let top: usize = params
        .get("$top")
        .and_then(|t| t.parse().ok())
        .unwrap_or(100)
        .clamp(1, 999);
    let skip = params.get("$skiptoken").map(|s| unhex(s));
    let count = params.get("$count").is_some_and(|c| c == "true");
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["users"] => {
            if let Some(to) = &st.faults.redirect_users_to {
                return (
                    302,
                    vec![("Location".into(), format!("{to}{path}?{query}"))],
                    Vec::new(),
                    None,
                );
            }
            st.users_pages += 1;
            let delay = st.faults.slow;
            let after = skip.clone().unwrap_or_default();
            let page: Vec<Value> = st
                .users
                .range::<String, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                .take(top)
                .map(|(_, u)| project(u, &select))
                .collect();
            let last = page.last().map(|u| u["id"].as_str().unwrap().to_string());
            let more = last.as_ref().is_some_and(|l| {
                st.users
                    .range::<String, _>((
                        std::ops::Bound::Excluded(l.clone()),
                        std::ops::Bound::Unbounded,
                    ))
                    .next()
                    .is_some()
            });
            let mut out =
                json!({"@odata.context": format!("{base}/v1.0/$metadata#users"), "value": page});
            if count {
                out["@odata.count"] = st.users.len().into();
            }
            if more {
                let link_base = st
                    .faults
                    .next_link_base
                    .clone()
                    .unwrap_or_else(|| base.to_string());
                let mut q = keep_query(query);
                q.push_str(&format!("&$skiptoken={}", hex(last.as_deref().unwrap())));
                out["@odata.nextLink"] = format!("{link_base}/v1.0/users?{q}").into();
            }
            if st.faults.malformed_page == Some(st.users_pages) {
                let text = out.to_string();
                return (
                    200,
                    vec![],
                    text.as_bytes()[..text.len() / 2].to_vec(),
                    delay,
                );
            }
            let mut a = json_answer(200, &out);
            a.3 = delay;
            a
        }
        ["users", "delta"] => delta(st, base, &params, &select, top.max(999)),
        ["groups"] => {
            let all: Vec<Value> = st
                .groups
                .iter()
                .map(|(id, (name, _))| project(&group_obj(id, name), &select))
                .collect();
            paged(all, base, "groups", query, top, skip, count)
        }
        ["groups", id] => match st.groups.get(*id) {
            Some((name, _)) => json_answer(200, &project(&group_obj(id, name), &select)),
            None => graph_error(404, "Request_ResourceNotFound", "Resource does not exist."),
        },
        ["groups", id, "members"] => {
            let Some((_, members)) = st.groups.get(*id) else {
                return graph_error(404, "Request_ResourceNotFound", "Resource does not exist.");
            };
            let all: Vec<Value> = members
                .iter()
                .filter_map(|m| {
                    if let Some(u) = st.users.get(m) {
                        let mut v = project(u, &select);
                        v["@odata.type"] = "#microsoft.graph.user".into();
                        Some(v)
                    } else {
                        st.groups.get(m).map(|(n, _)| {
                            let mut v = project(&group_obj(m, n), &select);
                            v["@odata.type"] = "#microsoft.graph.group".into();
                            v
                        })
                    }
                })
                .collect();
            paged(
                all,
                base,
                &format!("groups/{id}/members"),
                query,
                top,
                skip,
                count,
            )
        }
        ["groups", id, "transitiveMembers", kind] => {
            if !st.groups.contains_key(*id) {
                return graph_error(404, "Request_ResourceNotFound", "Resource does not exist.");
            }
            let (users, groups) = transitive(st, id);
            let all: Vec<Value> = match *kind {
                "microsoft.graph.user" => users
                    .iter()
                    .filter_map(|u| st.users.get(u))
                    .map(|u| project(u, &select))
                    .collect(),
                "microsoft.graph.group" => groups
                    .iter()
                    .map(|g| project(&group_obj(g, &st.groups[g].0), &select))
                    .collect(),
                _ => return graph_error(400, "BadRequest", "unsupported cast"),
            };
            paged(
                all,
                base,
                &format!("groups/{id}/transitiveMembers/{kind}"),
                query,
                top,
                skip,
                count,
            )
        }
        _ => graph_error(404, "NotFound", "no such endpoint"),
    }
}

fn token(st: &mut State, _base: &str, body: &str) -> Answer {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if get("grant_type") != "client_credentials" {
        return json_answer(400, &json!({"error": "unsupported_grant_type"}));
    }
    if get("client_id") != CLIENT_ID {
        return json_answer(
            400,
            &json!({"error": "unauthorized_client", "error_description": "AADSTS700016: Application not found."}),
        );
    }
    if get("client_secret") != st.secret {
        return json_answer(
            401,
            &json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}),
        );
    }
    if !get("scope").ends_with("/.default") {
        return json_answer(400, &json!({"error": "invalid_scope"}));
    }
    st.token_count += 1;
    let token = format!("tok-{}-{:x}", st.token_count, st.rng);
    let life = st.token_lifetime;
    st.tokens
        .insert(token.clone(), Instant::now() + Duration::from_secs(life));
    json_answer(
        200,
        &json!({"token_type": "Bearer", "expires_in": life, "ext_expires_in": life, "access_token": token}),
    )
}

/// users/delta: a full listing ending in a delta link, the changes since a delta link, or
/// (`$deltatoken=latest`) only a delta link.
fn delta(
    st: &mut State,
    base: &str,
    params: &HashMap<String, String>,
    select: &Option<Vec<String>>,
    top: usize,
) -> Answer {
    let select_q = select
        .as_ref()
        .map(|s| format!("$select={}&", s.join(",")))
        .unwrap_or_default();
    let issue = |st: &mut State| {
        let t = format!("dt{}x{:x}", st.seq, st.delta_tokens.len() + 1);
        st.delta_tokens.insert(t.clone(), st.seq);
        format!("{base}/v1.0/users/delta?{select_q}$deltatoken={t}")
    };
    // A continuation: "since:last id".
    let (since, after) = if let Some(skip) = params.get("$skiptoken") {
        let s = unhex(skip);
        let (since, after) = s.split_once(':').unwrap();
        (since.parse::<u64>().ok(), after.to_string())
    } else {
        match params.get("$deltatoken").map(String::as_str) {
            Some("latest") => {
                let link = issue(st);
                return json_answer(200, &json!({"value": [], "@odata.deltaLink": link}));
            }
            Some(t) => match st.delta_tokens.get(t) {
                Some(seq) => (Some(*seq), String::new()),
                None => {
                    return graph_error(
                        410,
                        "syncStateNotFound",
                        "The delta token has expired; start a full synchronization.",
                    )
                }
            },
            None => (None, String::new()),
        }
    };
    // Ids in this listing: all users, or those changed since `since`.
    let ids: Vec<String> = match since {
        None => st.users.keys().cloned().collect(),
        Some(s) => {
            let mut v: Vec<String> = st
                .changed
                .iter()
                .filter(|(_, c)| **c > s)
                .map(|(id, _)| id.clone())
                .collect();
            v.sort();
            v
        }
    };
    let rest: Vec<&String> = ids.iter().filter(|id| **id > after).collect();
    let page: Vec<Value> = rest
        .iter()
        .take(top)
        .map(|id| match st.users.get(*id) {
            Some(u) => project(u, select),
            None => json!({"id": id, "@removed": {"reason": "changed"}}),
        })
        .collect();
    let mut out = json!({"@odata.context": format!("{base}/v1.0/$metadata#users"), "value": page});
    if rest.len() > top {
        let last = rest[top - 1];
        let skip = hex(&format!(
            "{}:{last}",
            since.map(|s| s.to_string()).unwrap_or_default()
        ));
        out["@odata.nextLink"] =
            format!("{base}/v1.0/users/delta?{select_q}$skiptoken={skip}").into();
    } else {
        out["@odata.deltaLink"] = issue(st).into();
    }
    json_answer(200, &out)
}

fn group_obj(id: &str, name: &str) -> Map<String, Value> {
    obj(json!({"id": id, "displayName": name, "securityEnabled": true}))
}

/// Users and groups below a group, each once, sorted by id.
fn transitive(st: &State, id: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut users, mut groups) = (BTreeSet::new(), BTreeSet::new());
    let mut todo = vec![id.to_string()];
    let mut seen = BTreeSet::from([id.to_string()]);
    while let Some(g) = todo.pop() {
        for m in st.groups.get(&g).map(|(_, m)| m.as_slice()).unwrap_or(&[]) {
            if st.users.contains_key(m) {
                users.insert(m.clone());
            } else if st.groups.contains_key(m) && seen.insert(m.clone()) {
                groups.insert(m.clone());
                todo.push(m.clone());
            }
        }
    }
    (users, groups)
}

fn project(u: &Map<String, Value>, select: &Option<Vec<String>>) -> Value {
    match select {
        None => Value::Object(u.clone()),
        Some(fields) => {
            let mut out = Map::new();
            for f in fields {
                if let Some((k, v)) = u.iter().find(|(k, _)| k.eq_ignore_ascii_case(f)) {
                    out.insert(k.clone(), v.clone());
                }
            }
            // Graph always includes the id.
            if let Some(id) = u.get("id") {
                out.insert("id".into(), id.clone());
            }
            Value::Object(out)
        }
    }
}

/// Offset paging for the smaller collections; the skiptoken is an opaque offset.
fn paged(
    all: Vec<Value>,
    base: &str,
    path: &str,
    query: &str,
    top: usize,
    skip: Option<String>,
    count: bool,
) -> Answer {
    let from: usize = skip.and_then(|s| s.parse().ok()).unwrap_or(0);
    let total = all.len();
    let page: Vec<Value> = all.into_iter().skip(from).take(top).collect();
    let mut out = json!({"value": page});
    if count {
        out["@odata.count"] = total.into();
    }
    if from + top < total {
        let mut q = keep_query(query);
        q.push_str(&format!("&$skiptoken={}", hex(&(from + top).to_string())));
        out["@odata.nextLink"] = format!("{base}/v1.0/{path}?{q}").into();
    }
    json_answer(200, &out)
}

/// The query without `$skiptoken` and `$count`.
fn keep_query(query: &str) -> String {
    query
        .split('&')
        .filter(|p| !p.starts_with("$skiptoken=") && !p.starts_with("$count="))
        .collect::<Vec<_>>()
        .join("&")
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> String {
    let bytes: Vec<u8> = (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
