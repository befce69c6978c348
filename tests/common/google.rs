//! A Google Workspace emulator on loopback for the Google connector's tests: the OAuth2
//! token endpoint of a service account (RFC 7523: it verifies the assertion's RS256
//! signature against the test's key pair and its iss, sub, scope, aud and lifetime), and
//! the Admin SDK Directory API's users.list, orgunits.list, groups.list, groups.get and
//! members.list with their paging, scopes, admin privileges, errors and throttling.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const CLIENT_EMAIL: &str = "roster-sync@roster-test.iam.gserviceaccount.com";
pub const CLIENT_ID: &str = "104857600000000000001";
pub const ADMIN: &str = "admin@example.test";
pub const CUSTOMER: &str = "C01abc234";
pub const SCOPE_BASE: &str = "https://www.googleapis.com/auth/admin.directory.";

/// A test key pair made once per test process by openssl: (PEM PKCS#8 private key, PKCS#1
/// DER public key).
pub fn key_pair() -> &'static (String, Vec<u8>) {
    static PAIR: OnceLock<(String, Vec<u8>)> = OnceLock::new();
    PAIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("key.pem");
        let run = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .output()
                .expect("run openssl (Debian package openssl)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        };
        let p = pem.to_str().unwrap();
        run(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            p,
        ]);
        let public = run(&["rsa", "-in", p, "-RSAPublicKey_out", "-outform", "DER"]);
        (std::fs::read_to_string(&pem).unwrap(), public)
    })
}

/// Faults a test switches on.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Percentage of API requests answered 429 (quota) or 503 (backend error), in turn.
    pub throttle_percent: u32,
}

#[derive(Debug, Clone)]
pub struct Logged {
    pub path: String,
    pub query: String,
    pub status: u16,
}

impl Logged {
    pub fn param(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
}

/// A group: (email, name, members as (id, type)).
type GroupEntry = (String, String, Vec<(String, String)>);

struct State {
    base: String,
    public_key: Vec<u8>,
    /// Scopes the client id is delegated in the Admin console (short names).
    delegated: HashSet<String>,
    /// What the subject may read: "users", "groups", "orgunits".
    privileges: HashSet<String>,
    tokens: HashMap<String, (Instant, Vec<String>)>,
    token_count: u64,
    token_lifetime: u64,
    /// The last assertion's claims, for the tests.
    last_claims: Value,
    users: BTreeMap<String, Value>,
    org_units: Vec<Value>,
    /// id → (email, name, members as (id, type)).
    groups: BTreeMap<String, GroupEntry>,
    faults: Faults,
    served: u64,
    throttled: u64,
    log: Vec<Logged>,
}

pub struct Workspace {
    base: String,
    state: Arc<Mutex<State>>,
    server: Arc<tiny_http::Server>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for Workspace {
    fn drop(&mut self) {
        for _ in &self.workers {
            self.server.unblock();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// The numeric id of user `i`.
pub fn user_id(i: usize) -> String {
    format!("1{i:011}")
}

/// User `i` of the standard domain: in /Staff, /Staff/IT, /Students or the root in turn;
/// every 25th suspended; every 10th with an alias.
pub fn user(i: usize) -> Value {
    let ou = ["/Staff", "/Staff/IT", "/Students", "/"][i % 4];
    let department = ["Sales", "IT", "Ops"][i % 3];
    let mut u = json!({
        "kind": "admin#directory#user",
        "id": user_id(i),
        "primaryEmail": format!("user{i}@example.test"),
        "name": {"givenName": format!("Given{i}"), "familyName": format!("Family{i}"),
                 "fullName": format!("Given{i} Family{i}")},
        "isAdmin": false,
        "suspended": i % 25 == 7,
        "archived": false,
        "orgUnitPath": ou,
        "externalIds": [{"value": format!("E{i:06}"), "type": "organization"}],
        "phones": [{"value": format!("+1 555 {i:06}"), "type": "mobile", "primary": true}],
        "organizations": [{"department": department, "title": "Clerk", "primary": true}],
        "nonEditableAliases": [format!("user{i}@example.test.test-google-a.com")],
        "customerId": CUSTOMER,
    });
    if i.is_multiple_of(10) {
        u["aliases"] = json!([format!("u{i}@example.test")]);
    }
    u
}

fn ou(path: &str, name: &str, parent: &str) -> Value {
    json!({"kind": "admin#directory#orgUnit", "orgUnitPath": path, "name": name,
           "orgUnitId": format!("id:{}", path.replace('/', "_")), "parentOrgUnitPath": parent})
}

impl Workspace {
    /// An emulator with `users` standard users, the OUs /Staff, /Staff/IT and /Students,
    /// and no groups; every scope delegated, the admin may read everything.
    pub fn start(users: usize) -> Workspace {
        let server = Arc::new(
            tiny_http::Server::from_listener(super::nodelay_listener(), None)
                .expect("bind the emulator"),
        );
        let port = server.server_addr().to_ip().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let st = State {
            base: base.clone(),
            public_key: key_pair().1.clone(),
            delegated: ["user.readonly", "group.readonly", "orgunit.readonly"]
                .map(String::from)
                .into(),
            privileges: ["users", "groups", "orgunits"].map(String::from).into(),
            tokens: HashMap::new(),
            token_count: 0,
            token_lifetime: 3600,
            last_claims: Value::Null,
            users: (0..users).map(|i| (user_id(i), user(i))).collect(),
            org_units: vec![
                ou("/Staff", "Staff", "/"),
                ou("/Staff/IT", "IT", "/Staff"),
                ou("/Students", "Students", "/"),
            ],
            groups: BTreeMap::new(),
            faults: Faults::default(),
            served: 0,
            throttled: 0,
            log: Vec::new(),
        };
        let state = Arc::new(Mutex::new(st));
        let workers = (0..4)
            .map(|_| {
                let (server, state) = (server.clone(), state.clone());
                std::thread::spawn(move || {
                    while let Ok(mut rq) = server.recv() {
                        let mut body = String::new();
                        let _ = rq.as_reader().read_to_string(&mut body);
                        let (status, headers, payload) = handle(&state, &rq, &body);
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
        Workspace {
            base,
            state,
            server,
            workers,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Writes the service account's JSON key file, as Google hands it out, to `path`.
    pub fn write_key(&self, path: &Path) {
        let key = json!({
            "type": "service_account",
            "project_id": "roster-test",
            "private_key_id": "0123456789abcdef",
            "private_key": key_pair().0,
            "client_email": CLIENT_EMAIL,
            "client_id": CLIENT_ID,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": format!("{}/token", self.base),
        });
        std::fs::write(path, serde_json::to_string_pretty(&key).unwrap()).unwrap();
    }

    pub fn set_faults(&self, f: Faults) {
        self.st().faults = f;
    }

    /// The scopes delegated to the client id (short names: "user.readonly").
    pub fn set_delegated(&self, scopes: &[&str]) {
        self.st().delegated = scopes.iter().map(|s| s.to_string()).collect();
    }

    /// What the admin may read ("users", "groups", "orgunits").
    pub fn set_privileges(&self, what: &[&str]) {
        self.st().privileges = what.iter().map(|s| s.to_string()).collect();
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

    /// A token for every scope without an assertion: for a plain client (the benchmark's).
    pub fn mint_token(&self) -> String {
        let mut st = self.st();
        let scopes = ["user.readonly", "group.readonly", "orgunit.readonly"]
            .map(|s| format!("{SCOPE_BASE}{s}"))
            .to_vec();
        let tok = format!("ya29.plain-{}", now());
        let until = Instant::now() + Duration::from_secs(86400);
        st.tokens.insert(tok.clone(), (until, scopes));
        tok
    }

    pub fn last_claims(&self) -> Value {
        self.st().last_claims.clone()
    }

    pub fn put_user(&self, u: Value) {
        let id = u["id"].as_str().unwrap().to_string();
        self.st().users.insert(id, u);
    }

    pub fn patch_user(&self, id: &str, patch: Value) {
        let mut st = self.st();
        let u = st.users.get_mut(id).unwrap();
        for (k, v) in patch.as_object().unwrap() {
            u[k] = v.clone();
        }
    }

    pub fn remove_user(&self, id: &str) {
        let mut st = self.st();
        st.users.remove(id);
        for (_, _, m) in st.groups.values_mut() {
            m.retain(|(mid, _)| mid != id);
        }
    }

    /// A group with direct members: user ids, and group ids prefixed `group:`.
    pub fn put_group(&self, id: &str, email: &str, name: &str, members: &[String]) {
        let members = (members.iter())
            .map(|m| match m.strip_prefix("group:") {
                Some(g) => (g.to_string(), "GROUP".to_string()),
                None => (m.clone(), "USER".to_string()),
            })
            .collect();
        self.st()
            .groups
            .insert(id.into(), (email.into(), name.into(), members));
    }
}

type Answer = (u16, Vec<(String, String)>, Vec<u8>);

fn answer(status: u16, v: &Value) -> Answer {
    (
        status,
        vec![(
            "Content-Type".into(),
            "application/json; charset=UTF-8".into(),
        )],
        v.to_string().into_bytes(),
    )
}

/// The Directory API's error shape.
fn api_error(code: u16, message: &str, reason: &str) -> Answer {
    answer(
        code,
        &json!({"error": {"code": code, "message": message,
                          "errors": [{"message": message, "domain": "global", "reason": reason}]}}),
    )
}

/// The token endpoint's error shape.
fn token_error(code: u16, error: &str, description: &str) -> Answer {
    answer(
        code,
        &json!({"error": error, "error_description": description}),
    )
}

fn handle(state: &Mutex<State>, rq: &tiny_http::Request, body: &str) -> Answer {
    let raw = rq.url().to_string();
    let (path, query) = raw.split_once('?').unwrap_or((&raw, ""));
    let auth = (rq.headers().iter())
        .find(|h| h.field.equiv("Authorization"))
        .map(|h| h.value.to_string())
        .unwrap_or_default();
    let mut st = state.lock().unwrap();
    let a = if path == "/token" && rq.method() == &tiny_http::Method::Post {
        token(&mut st, body)
    } else {
        api(&mut st, path, query, &auth)
    };
    st.log.push(Logged {
        path: path.into(),
        query: query.into(),
        status: a.0,
    });
    a
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// RFC 7523: a JWT bearer assertion for a token.
fn token(st: &mut State, body: &str) -> Answer {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return token_error(400, "unsupported_grant_type", "Invalid grant_type: ");
    }
    let Some(jwt) = form.get("assertion") else {
        return token_error(
            400,
            "invalid_request",
            "Missing required parameter: assertion",
        );
    };
    let parts: Vec<&str> = jwt.split('.').collect();
    let decode = |p: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()
    };
    let (Some(header), Some(claims), Ok(sig)) = (
        parts.first().and_then(|p| decode(p)),
        parts.get(1).and_then(|p| decode(p)),
        URL_SAFE_NO_PAD.decode(parts.get(2).unwrap_or(&"")),
    ) else {
        return token_error(400, "invalid_grant", "Invalid JWT Signature.");
    };
    let signed = format!("{}.{}", parts[0], parts[1]);
    if parts.len() != 3
        || header["alg"] != "RS256"
        || UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &st.public_key)
            .verify(signed.as_bytes(), &sig)
            .is_err()
    {
        return token_error(400, "invalid_grant", "Invalid JWT Signature.");
    }
    st.last_claims = claims.clone();
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap_or(0),
        claims["exp"].as_u64().unwrap_or(0),
    );
    let t = now();
    if exp <= t || iat > t + 60 || exp < iat || exp - iat > 3600 {
        return token_error(
            400,
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable \
             timeframe. Check your iat and exp values in the JWT claim.",
        );
    }
    if claims["iss"] != CLIENT_EMAIL {
        return token_error(401, "invalid_client", "The OAuth client was not found.");
    }
    if claims["aud"] != format!("{}/token", st.base).as_str() {
        return token_error(400, "invalid_grant", "Invalid JWT: Failed audience check.");
    }
    if claims["sub"] != ADMIN {
        return token_error(400, "invalid_grant", "Invalid email or User ID");
    }
    let scopes: Vec<String> = claims["scope"]
        .as_str()
        .unwrap_or("")
        .split(' ')
        .map(String::from)
        .collect();
    let delegated = scopes.iter().all(|s| {
        s.strip_prefix(SCOPE_BASE)
            .is_some_and(|short| st.delegated.contains(short))
    });
    if scopes.is_empty() || !delegated {
        return token_error(
            401,
            "unauthorized_client",
            "Client is unauthorized to retrieve access tokens using this method, or client not \
             authorized for any of the scopes requested.",
        );
    }
    st.token_count += 1;
    let tok = format!("ya29.test-{}-{}", st.token_count, now());
    let until = Instant::now() + Duration::from_secs(st.token_lifetime);
    st.tokens.insert(tok.clone(), (until, scopes));
    answer(
        200,
        &json!({"access_token": tok, "expires_in": st.token_lifetime, "token_type": "Bearer"}),
    )
}

fn api(st: &mut State, path: &str, query: &str, auth: &str) -> Answer {
    let Some(rest) = path.strip_prefix("/admin/directory/v1/") else {
        return api_error(404, "Not Found", "notFound");
    };
    let token = auth
        .strip_prefix("Bearer ")
        .and_then(|t| st.tokens.get(t))
        .cloned();
    let Some((until, scopes)) = token.filter(|(until, _)| Instant::now() < *until) else {
        return api_error(
            401,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, \
             login cookie or other valid authentication credential.",
            "authError",
        );
    };
    let _ = until;
    // Throttling spread evenly: request k fails when k·p/100 crosses an integer.
    st.served += 1;
    let (k, p) = (st.served, u64::from(st.faults.throttle_percent));
    if p > 0 && (k * p) / 100 != ((k - 1) * p) / 100 {
        st.throttled += 1;
        return if st.throttled % 2 == 1 {
            api_error(
                429,
                "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user'",
                "rateLimitExceeded",
            )
        } else {
            api_error(503, "The service is currently unavailable.", "backendError")
        };
    }
    let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let parts: Vec<String> = rest
        .split('/')
        .map(|p| {
            url::form_urlencoded::parse(format!("x={p}").as_bytes())
                .next()
                .unwrap()
                .1
                .into_owned()
        })
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let need = |st: &State, scope: &str, privilege: &str| -> Option<Answer> {
        if !scopes.iter().any(|s| s == &format!("{SCOPE_BASE}{scope}")) {
            return Some(api_error(
                403,
                "Request had insufficient authentication scopes.",
                "insufficientPermissions",
            ));
        }
        if !st.privileges.contains(privilege) {
            return Some(api_error(
                403,
                "Not Authorized to access this resource/api",
                "forbidden",
            ));
        }
        None
    };
    let customer_ok = |c: &str| c == "my_customer" || c == CUSTOMER;
    let max = |default: usize, cap: usize| -> Result<usize, Answer> {
        match params.get("maxResults") {
            None => Ok(default),
            Some(m) => match m.parse::<usize>() {
                Ok(n) if (1..=cap).contains(&n) => Ok(n),
                _ => Err(api_error(400, "Invalid Input: maxResults", "invalid")),
            },
        }
    };
    let start: usize = params
        .get("pageToken")
        .and_then(|t| t.strip_prefix("pt-")?.parse().ok())
        .unwrap_or(0);
    // A page of `n` from `start` out of `total` items (cloned only when on the page).
    let paged =
        |items: &mut dyn Iterator<Item = Value>, total: usize, key: &str, n: usize| -> Answer {
            let page: Vec<Value> = items.skip(start).take(n).collect();
            let mut out = json!({ "kind": format!("admin#directory#{key}"), "etag": "\"e\"" });
            out[key] = page.into();
            if start + n < total {
                out["nextPageToken"] = format!("pt-{}", start + n).into();
            }
            answer(200, &out)
        };
    match parts.as_slice() {
        ["users"] => {
            if let Some(e) = need(st, "user.readonly", "users") {
                return e;
            }
            match (params.get("customer"), params.get("domain")) {
                (Some(c), _) if !customer_ok(c) => {
                    return api_error(400, "Bad Request", "badRequest")
                }
                (None, Some(d)) if d != "example.test" => {
                    return api_error(
                        403,
                        "Not Authorized to access this resource/api",
                        "forbidden",
                    )
                }
                (None, None) => return api_error(400, "Bad Request", "badRequest"),
                _ => {}
            }
            let n = match max(100, 500) {
                Ok(n) => n,
                Err(e) => return e,
            };
            let filter = match params.get("query").map(|q| user_query(q)) {
                Some(Err(e)) => return e,
                Some(Ok(f)) => f,
                None => Vec::new(),
            };
            let full = params.get("projection").map(String::as_str) == Some("full");
            let keep = |u: &&Value| filter.iter().all(|(k, v)| matches_term(u, k, v));
            let total = st.users.values().filter(keep).count();
            let users: Vec<Value> = (st.users.values().filter(keep).skip(start).take(n))
                .map(|u| {
                    let mut u = u.clone();
                    if !full {
                        for k in ["externalIds", "phones", "organizations"] {
                            u.as_object_mut().unwrap().remove(k);
                        }
                    }
                    u
                })
                .collect();
            // Users are filtered before they are cloned, page by page.
            let mut page = json!({ "kind": "admin#directory#users", "etag": "\"e\"" });
            page["users"] = users.into();
            if start + n < total {
                page["nextPageToken"] = format!("pt-{}", start + n).into();
            }
            answer(200, &page)
        }
        ["customer", c, "orgunits"] => {
            if let Some(e) = need(st, "orgunit.readonly", "orgunits") {
                return e;
            }
            if !customer_ok(c) {
                return api_error(400, "Bad Request", "badRequest");
            }
            answer(
                200,
                &json!({"kind": "admin#directory#orgUnits", "organizationUnits": st.org_units}),
            )
        }
        ["groups"] => {
            if let Some(e) = need(st, "group.readonly", "groups") {
                return e;
            }
            let n = match max(200, 200) {
                Ok(n) => n,
                Err(e) => return e,
            };
            let mut groups = st.groups.iter().map(|(id, g)| group_json(id, g));
            paged(&mut groups, st.groups.len(), "groups", n)
        }
        ["groups", key] | ["groups", key, "members"] => {
            if let Some(e) = need(st, "group.readonly", "groups") {
                return e;
            }
            let found =
                (st.groups.iter()).find(|(id, (email, _, _))| id.as_str() == *key || email == key);
            let Some((id, g)) = found else {
                return api_error(404, "Resource Not Found: groupKey", "notFound");
            };
            if parts.len() == 2 {
                return answer(200, &group_json(id, g));
            }
            let n = match max(200, 200) {
                Ok(n) => n,
                Err(e) => return e,
            };
            let mut members = (g.2.iter()).map(|(mid, ty)| {
                json!({"kind": "admin#directory#member", "id": mid, "type": ty,
                       "role": "MEMBER", "status": "ACTIVE"})
            });
            paged(&mut members, g.2.len(), "members", n)
        }
        _ => api_error(404, "Not Found", "notFound"),
    }
}

fn group_json(id: &str, (email, name, members): &GroupEntry) -> Value {
    json!({"kind": "admin#directory#group", "id": id, "email": email, "name": name,
           "directMembersCount": members.len().to_string()})
}

/// The few terms of the users.list query language the tests use: `field=value` or
/// `field='value'` joined by spaces, for orgUnitPath, isSuspended and email.
fn user_query(q: &str) -> Result<Vec<(String, String)>, Answer> {
    let mut terms = Vec::new();
    for t in q.split_whitespace() {
        let Some((k, v)) = t.split_once('=') else {
            return Err(api_error(400, "Invalid Input", "invalid"));
        };
        if !["orgUnitPath", "isSuspended", "email"].contains(&k) {
            return Err(api_error(400, "Invalid Input", "invalid"));
        }
        terms.push((k.to_string(), v.trim_matches('\'').to_string()));
    }
    Ok(terms)
}

fn matches_term(u: &Value, k: &str, v: &str) -> bool {
    match k {
        // Google's orgUnitPath term matches the unit and every unit below it.
        "orgUnitPath" => u["orgUnitPath"]
            .as_str()
            .is_some_and(|p| p == v || p.starts_with(&format!("{v}/"))),
        "isSuspended" => u["suspended"] == (v == "true"),
        "email" => u["primaryEmail"] == v,
        _ => false,
    }
}
