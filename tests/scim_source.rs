//! The SCIM connector end to end: `roster` pulling from the third-party reference server
//! `scim2-server` (PyPI, installed by `make setup` under target/sdk-tools/scim-venv), started
//! by the test on a free port with a bearer token.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "scim-T0KEN-5f1d";

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn scim2_server() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let path = target.join("sdk-tools/scim-venv/bin/scim2-server");
    assert!(
        path.exists(),
        "{} is missing: run `make setup`",
        path.display()
    );
    path
}

impl Server {
    fn start() -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(scim2_server())
            .args([
                "--hostname",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--bearer-token",
                TOKEN,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start scim2-server");
        let mut s = Server {
            child,
            addr: format!("127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("scim2-server exited at start: {status}");
            }
            if std::net::TcpStream::connect(&s.addr).is_ok()
                && s.call("GET", "/ServiceProviderConfig", None).0 == 200
            {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "scim2-server did not answer within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// One HTTP/1.1 request with the bearer token: (status, JSON body).
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut c = std::net::TcpStream::connect(&self.addr).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            c,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/scim+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        let status = out
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let json = out
            .split_once("\r\n\r\n")
            .and_then(|(_, b)| serde_json::from_str(b).ok());
        (status, json.unwrap_or(Value::Null))
    }

    fn post(&self, path: &str, body: Value) -> String {
        let (status, v) = self.call("POST", path, Some(&body));
        assert_eq!(status, 201, "POST {path}: {v}");
        v["id"].as_str().unwrap().to_string()
    }
}

fn user(i: usize) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "userName": format!("user{i:03}"),
        "name": {"givenName": format!("Given{i}"), "familyName": format!("Family{i}")},
        "emails": [{"value": format!("user{i}@central.test"), "primary": true}],
        "phoneNumbers": [{"value": format!("+1 555 {i:04}")}],
        "active": i % 50 != 7,
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": format!("E{i:04}")},
    })
}

fn sandbox(s: &Server, config: &str) -> Sandbox {
    std::env::set_var("SCIM_TOKEN", TOKEN);
    let sb = Sandbox::new();
    sb.write_config(&common::config(&[format!(
        "[sources.central]\nplugin = \"scim\"\nmax_deletions = \"100%\"\n\
         [sources.central.config]\nurl = \"{}\"\ntoken = {{ env = \"SCIM_TOKEN\" }}\n{config}\n",
        s.base()
    )]));
    sb
}

#[test]
fn pulls_users_and_groups_page_by_page_then_only_what_changed() {
    let s = Server::start();
    let ids: Vec<String> = (0..250).map(|i| s.post("/Users", user(i))).collect();
    let member = |id: &String| json!({"value": id});
    let it = s.post(
        "/Groups",
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "IT",
               "members": ids[10..15].iter().map(member).collect::<Vec<_>>()}),
    );
    let mut staff: Vec<Value> = ids[0..10].iter().map(member).collect();
    staff.push(json!({"value": it, "type": "Group"}));
    s.post(
        "/Groups",
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Staff", "members": staff}),
    );

    let sb = sandbox(&s, "page_size = 100");
    let r = sb.sync_ok(&[]);
    assert_eq!(r.only()["mode"], "full");
    assert_counts(r.only(), &[("created", 250), ("failed", 0)]);
    let u = sb.user("user012");
    assert_eq!(u["full_name"], "Given12 Family12");
    assert_eq!(u["email"], "user12@central.test");
    assert_eq!(u["personal_number"], "E0012");
    assert_eq!(u["phone"], "+1 555 0012");
    assert_eq!(strs(&u["groups"]), ["Staff|IT"]);
    assert_eq!(strs(&sb.user("user001")["groups"]), ["Staff"]);
    assert_eq!(sb.user("user007")["active"], false);

    // One user changed, one added, one deleted: the next run is a delta of the two.
    let mut changed = user(3);
    changed["name"]["givenName"] = "Renamed".into();
    let (status, v) = s.call("PUT", &format!("/Users/{}", ids[3]), Some(&changed));
    assert_eq!(status, 200, "{v}");
    s.post("/Users", user(999));
    let (status, _) = s.call("DELETE", &format!("/Users/{}", ids[4]), None);
    assert_eq!(status, 204);
    let r = sb.sync_ok(&[]);
    assert_eq!(r.only()["mode"], "delta", "{:#}", r.only());
    assert_counts(
        r.only(),
        &[("created", 1), ("updated", 1), ("deactivated", 0)],
    );
    assert_eq!(sb.user("user003")["full_name"], "Renamed Family3");
    assert_eq!(
        sb.user("user004")["active"],
        true,
        "a delta cannot see deletions"
    );

    // `roster sync --full` reads everything now, whatever the cursor: the deletion applies.
    let r = sb.sync_ok(&["--full"]);
    assert_eq!(r.only()["mode"], "full");
    assert_counts(
        r.only(),
        &[("deactivated", 1), ("created", 0), ("updated", 0)],
    );
    assert_eq!(sb.user("user004")["active"], false);
    // The next plain run is a delta again.
    let (status, _) = s.call("DELETE", &format!("/Users/{}", ids[5]), None);
    assert_eq!(status, 204);
    let r = sb.sync_ok(&[]);
    assert_eq!(r.only()["mode"], "delta", "{:#}", r.only());
    assert_eq!(sb.user("user005")["active"], true);

    // A full run (full_sync_every = "0") applies the deletion.
    sb.write_config(&std::fs::read_to_string(sb.config_path()).unwrap().replace(
        "page_size = 100",
        "page_size = 100\nfull_sync_every = \"0\"",
    ));
    let r = sb.sync_ok(&[]);
    assert_eq!(r.only()["mode"], "full");
    assert_counts(
        r.only(),
        &[("deactivated", 1), ("created", 0), ("updated", 0)],
    );
    assert_eq!(sb.user("user005")["active"], false);
}

#[test]
fn a_filter_a_wrong_token_and_a_wrong_url_are_reported() {
    let s = Server::start();
    for i in 0..5 {
        s.post("/Users", user(i));
    }
    let sb = sandbox(&s, "filter = 'userName sw \"user00\"'");
    sb.sync_ok(&[]);
    assert_eq!(sb.users().len(), 5);

    let sb = sandbox(&s, "filter = 'userName sw \"user003\"'");
    sb.sync_ok(&[]);
    assert_eq!(sb.users_by_name(), ["user003"]);

    let sb = sandbox(&s, "");
    let out = sb.roster_env(&["sync", "--json"], &[("SCIM_TOKEN", "wrong")]);
    assert_ne!(code(&out), 0);
    assert!(
        describe(&out).contains("check the token"),
        "{}",
        describe(&out)
    );
    assert!(!describe(&out).contains("wrong"), "{}", describe(&out));
    assert!(sb.users().is_empty());

    let sb = Sandbox::new();
    sb.write_config(&common::config(&[format!(
        "[sources.central]\nplugin = \"scim\"\n[sources.central.config]\nurl = \"{}/nope\"\ntoken = \"{TOKEN}\"\n",
        s.base()
    )]));
    let s2 = sb.sync(&[]);
    assert_ne!(code(&s2.out), 0);
    assert!(
        describe(&s2.out).contains("is not found"),
        "{}",
        describe(&s2.out)
    );
}
