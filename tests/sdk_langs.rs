//! The Python and JavaScript SDKs (`sdk/python`, `sdk/js`): each example connector under
//! `examples/plugins/` is built with its language's real toolchain (componentize-py,
//! componentize-js; `make setup` installs both under `target/sdk-tools/`), installed, and
//! synced end to end.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A tool `make setup` installs under target/sdk-tools; a missing one fails the test.
fn tool(rel: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let path = target.join("sdk-tools").join(rel);
    assert!(
        path.exists(),
        "{} is missing: run `make setup`, which installs the SDK toolchains",
        path.display()
    );
    path
}

/// Runs a build command, failing the test with its output when it fails.
fn build(mut cmd: Command) {
    let out = cmd.output().expect("start the build tool");
    assert!(out.status.success(), "build failed\n{}", describe(&out));
}

#[test]
fn a_javascript_connector_syncs_users_and_groups_from_granted_files() {
    let sb = Sandbox::new();
    let wasm = sb.path("unix.wasm");
    let mut cmd = Command::new(tool("node/node_modules/.bin/componentize-js"));
    // It resolves the app's imports from the working directory.
    cmd.current_dir(repo())
        .arg("examples/plugins/unix-js/app.js")
        .arg("--wit")
        .arg(repo().join("wit"))
        .args(["-n", "source", "-d", "http", "fetch-event", "-o"])
        .arg(&wasm);
    build(cmd);
    sb.write_file(
        "passwd",
        "root:x:0:0:root:/root:/bin/bash\n\
         ann:x:1000:1000:Ann Smith,,,:/home/ann:/bin/bash\n\
         ben:x:1001:1001:Ben Jones:/home/ben:/bin/sh\n\
         not a passwd line\n",
    );
    sb.write_file(
        "group",
        "root:x:0:\nann:x:1000:\nben:x:1001:\nstaff:x:2000:ann,ben\n",
    );
    sb.write_config(
        "database = \"roster.db\"\n[sources.unix]\nplugin = \"unix-js\"\n\
         [sources.unix.config]\npasswd = \"passwd\"\ngroup = \"group\"\n",
    );
    sb.roster_ok(&["plugin", "install", wasm.to_str().unwrap(), "--yes"]);
    let s = sb.sync_ok(&[]);
    // root is below min_uid; the malformed line is a failed entry, the run goes on.
    assert_counts(s.only(), &[("created", 2), ("failed", 1)]);
    assert_eq!(sb.users_by_name(), ["ann", "ben"]);
    assert_eq!(sb.user("ann")["full_name"], "Ann Smith");
    let staff = (sb.groups().into_iter())
        .find(|g| g["path"] == "staff" || g["name"] == "staff")
        .expect("the staff group");
    assert_eq!(staff["members"], 2, "{staff:#}");
    // Nothing changed: the second run changes nothing.
    let s = sb.sync_ok(&[]);
    assert_counts(
        s.only(),
        &[("created", 0), ("updated", 0), ("unchanged", 2)],
    );
}

#[test]
fn a_python_connector_reads_an_api_with_a_token_the_host_holds() {
    // The HR API wants the bearer token; it pages its employees.
    let api = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let base = format!("http://{}/api", api.server_addr().to_ip().unwrap());
    let next = format!("{base}/employees?page=2");
    std::thread::spawn(move || {
        for req in api.incoming_requests() {
            let authorised = (req.headers().iter())
                .any(|h| h.field.equiv("Authorization") && h.value == "Bearer hr-tok-42");
            let body = match (authorised, req.url()) {
                (false, _) => None,
                (true, "/api/departments") => Some(
                    r#"[{"id": "d1", "name": "Engineering"}, {"id": "d2", "name": "Ops", "parent": "d1"}]"#
                        .to_string(),
                ),
                (true, "/api/employees") => Some(format!(
                    r#"{{"items": [{{"id": "e1", "login": "ann", "name": "Ann A", "email": "ann@example.com", "department": "d1"}}], "next": "{next}"}}"#
                )),
                (true, "/api/employees?page=2") => Some(
                    r#"{"items": [{"id": "e2", "login": "ben", "name": "Ben B", "department": "d2", "active": false}], "next": null}"#
                        .to_string(),
                ),
                (true, _) => Some("{}".to_string()),
            };
            let response = match body {
                Some(b) => tiny_http::Response::from_string(b),
                None => tiny_http::Response::from_string("{}").with_status_code(401),
            };
            req.respond(response).ok();
        }
    });
    let sb = Sandbox::new();
    let wasm = sb.path("hr-api.wasm");
    let mut cmd = Command::new(tool("venv/bin/componentize-py"));
    cmd.arg("-d")
        .arg(repo().join("wit"))
        .args(["-w", "source", "componentize", "app", "-p"])
        .arg(repo().join("examples/plugins/hr-api-python"))
        .arg("-p")
        .arg(repo().join("sdk/python"))
        .arg("-o")
        .arg(&wasm);
    build(cmd);
    sb.write_config(&format!(
        "database = \"roster.db\"\n[sources.hr]\nplugin = \"hr-api\"\n\
         [sources.hr.config]\nurl = \"{base}\"\ntoken = {{ env = \"HR_TOKEN\" }}\n"
    ));
    sb.roster_ok(&["plugin", "install", wasm.to_str().unwrap(), "--yes"]);
    let out = sb.roster_env(&["sync", "--json"], &[("HR_TOKEN", "hr-tok-42")]);
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("hr-tok-42"), "the token is in the output");
    assert_eq!(sb.users_by_name(), ["ann", "ben"]);
    let ann = sb.user("ann");
    assert_eq!(ann["email"], "ann@example.com");
    assert_eq!(ann["active"], true);
    assert_eq!(sb.user("ben")["active"], false);
    let paths: Vec<String> = (sb.groups().iter())
        .map(|g| g["path"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(paths.contains(&"Engineering|Ops".to_string()), "{paths:?}");
    // Without the token the API refuses, and the run fails, changing nothing.
    let before = sb.db_state();
    let out = sb.roster_env(&["sync"], &[("HR_TOKEN", "wrong")]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert_eq!(sb.db_state(), before);
}

/// `roster plugin new --lang LANG`, built as its README says, passes `roster plugin test`.
fn generated_project_builds_and_passes_plugin_test(lang: &str, build_cmd: impl Fn() -> Command) {
    let sb = Sandbox::new();
    let project = sb.path("acme-people");
    sb.roster_ok(&[
        "plugin",
        "new",
        "acme-people",
        "--lang",
        lang,
        "--dir",
        project.to_str().unwrap(),
    ]);
    assert!(
        project.join("wit/plugin.wit").exists(),
        "the contract is written"
    );
    let mut cmd = build_cmd();
    cmd.current_dir(&project);
    build(cmd);
    let out = sb
        .command()
        .current_dir(&project)
        .args([
            "plugin",
            "test",
            "acme-people.wasm",
            "--set",
            "path=example/people.txt",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["plugin"]["name"], "acme-people");
    let run = &report["runs"][0];
    assert_eq!(
        (run["users"].as_u64(), run["groups"].as_u64()),
        (Some(3), Some(2)),
        "{report:#}"
    );
    assert_eq!(run["shown_users"][0]["username"], "alice");

    // Installed and synced like any connector.
    let wasm = project.join("acme-people.wasm");
    sb.write_file(
        "people.txt",
        std::fs::read(project.join("example/people.txt")).unwrap(),
    );
    sb.write_config(
        "database = \"roster.db\"\n[sources.people]\nplugin = \"acme-people\"\n\
         [sources.people.config]\npath = \"people.txt\"\n",
    );
    sb.roster_ok(&["plugin", "install", wasm.to_str().unwrap(), "--yes"]);
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("created", 3)]);
    assert_eq!(sb.users_by_name(), ["alice", "bob", "carol"]);
}

#[test]
fn a_generated_python_project_builds_and_passes_plugin_test() {
    generated_project_builds_and_passes_plugin_test("python", || {
        let mut cmd = Command::new(tool("venv/bin/componentize-py"));
        cmd.args([
            "-d",
            "wit",
            "-w",
            "source",
            "componentize",
            "app",
            "-o",
            "acme-people.wasm",
        ]);
        cmd
    });
}

#[test]
fn a_generated_javascript_project_builds_and_passes_plugin_test() {
    generated_project_builds_and_passes_plugin_test("js", || {
        let mut cmd = Command::new(tool("node/node_modules/.bin/componentize-js"));
        cmd.args([
            "app.js",
            "--wit",
            "wit",
            "-n",
            "source",
            "-d",
            "http",
            "fetch-event",
        ])
        .args(["-o", "acme-people.wasm"]);
        cmd
    });
}

/// The service-account credential from Python and JavaScript: each test connector
/// (tests/components/service-account) reads users.list of the Google emulator with a token
/// the host got by signing an assertion with the key; the plugin never sees key or token.
#[test]
fn python_and_javascript_connectors_use_a_service_account_the_host_holds() {
    use common::google::{self, Workspace, ADMIN, CLIENT_EMAIL};
    let w = Workspace::start(3);
    let build_dir = Sandbox::new();
    let py = build_dir.path("sa-python.wasm");
    let mut cmd = Command::new(tool("venv/bin/componentize-py"));
    cmd.arg("-d")
        .arg(repo().join("wit"))
        .args(["-w", "source", "componentize", "app", "-p"])
        .arg(repo().join("tests/components/service-account"))
        .arg("-p")
        .arg(repo().join("sdk/python"))
        .arg("-o")
        .arg(&py);
    build(cmd);
    let js = build_dir.path("sa-js.wasm");
    let mut cmd = Command::new(tool("node/node_modules/.bin/componentize-js"));
    cmd.current_dir(repo())
        .arg("tests/components/service-account/app.js")
        .arg("--wit")
        .arg(repo().join("wit"))
        .args(["-n", "source", "-d", "http", "fetch-event", "-o"])
        .arg(&js);
    build(cmd);
    for (wasm, plugin) in [(&py, "sa-python"), (&js, "sa-js")] {
        let sb = Sandbox::new();
        w.write_key(&sb.path("sa.json"));
        sb.write_config(&common::config(&[format!(
            "[sources.dir]\nplugin = \"{plugin}\"\n[sources.dir.config]\n\
             key_file = \"sa.json\"\nsubject = \"{ADMIN}\"\napi_url = \"{}\"\n",
            w.base()
        )]));
        sb.roster_ok(&["plugin", "install", wasm.to_str().unwrap(), "--yes"]);
        let before = w.tokens_issued();
        let s = sb.sync_ok(&[]);
        assert_counts(s.only(), &[("created", 3), ("failed", 0)]);
        assert_eq!(w.tokens_issued(), before + 1, "{plugin}: one token");
        let claims = w.last_claims();
        assert_eq!(claims["iss"], CLIENT_EMAIL, "{plugin}");
        assert_eq!(claims["sub"], ADMIN, "{plugin}");
        assert_eq!(
            claims["scope"],
            "https://www.googleapis.com/auth/admin.directory.user.readonly"
        );
        let email = google::user(1)["primaryEmail"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(sb.user(&email)["email"], email.as_str(), "{plugin}");
        let out = stdout(&s.out);
        assert!(
            !out.contains("PRIVATE KEY") && !out.contains("ya29."),
            "{out}"
        );
    }
}

#[test]
fn python_and_javascript_connectors_read_ldap_pages_through_the_host() {
    use common::slapd::{self, Slapd, PEOPLE, ROOT_DN, ROOT_PW, SUFFIX};
    let mut ldif = format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
         dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n"
    );
    // Five people: more than two pages of two; one with two descriptions, one with none,
    // one with a name beyond ASCII.
    let people: [(&str, &str, &[&str]); 5] = [
        ("ann", "Ann Archer", &["ann-a", "ann-b"]),
        ("ben", "Ben Baker", &[]),
        ("cho", "Chloë Ørsted", &["cho-x"]),
        ("dan", "Dan Dale", &[]),
        ("eve", "Eve East", &[]),
    ];
    for (uid, cn, descriptions) in people {
        ldif.push('\n');
        slapd::ldif_line(&mut ldif, "dn", &format!("uid={uid},{PEOPLE}"));
        ldif.push_str("objectClass: inetOrgPerson\n");
        slapd::ldif_line(&mut ldif, "uid", uid);
        slapd::ldif_line(&mut ldif, "cn", cn);
        slapd::ldif_line(&mut ldif, "sn", cn.split(' ').next_back().unwrap());
        slapd::ldif_line(&mut ldif, "mail", &format!("{uid}@example.test"));
        for d in descriptions {
            slapd::ldif_line(&mut ldif, "description", d);
        }
    }
    let server = Slapd::start(&ldif);
    let build_dir = Sandbox::new();
    let py = build_dir.path("ldap-python.wasm");
    let mut cmd = Command::new(tool("venv/bin/componentize-py"));
    cmd.arg("-d")
        .arg(repo().join("wit"))
        .args(["-w", "source", "componentize", "app", "-p"])
        .arg(repo().join("tests/components/ldap-sdk"))
        .arg("-p")
        .arg(repo().join("sdk/python"))
        .arg("-o")
        .arg(&py);
    build(cmd);
    let js = build_dir.path("ldap-js.wasm");
    let mut cmd = Command::new(tool("node/node_modules/.bin/componentize-js"));
    cmd.current_dir(repo())
        .arg("tests/components/ldap-sdk/app.js")
        .arg("--wit")
        .arg(repo().join("wit"))
        .args(["-n", "source", "-d", "http", "fetch-event", "-o"])
        .arg(&js);
    build(cmd);
    for (wasm, plugin) in [(&py, "ldap-python"), (&js, "ldap-js")] {
        let sb = Sandbox::new();
        sb.write_config(&common::config(&[format!(
            "[sources.dir]\nplugin = \"{plugin}\"\n[sources.dir.config]\n\
             url = \"{}\"\nbind_dn = \"{ROOT_DN}\"\npassword = \"{ROOT_PW}\"\nbase_dn = \"{SUFFIX}\"\n",
            server.url
        )]));
        sb.roster_ok(&["plugin", "install", wasm.to_str().unwrap(), "--yes"]);
        let s = sb.sync_ok(&[]);
        assert_counts(s.only(), &[("created", 5), ("failed", 0)]);
        assert_eq!(
            sb.users_by_name(),
            ["ann", "ben", "cho", "dan", "eve"],
            "{plugin}"
        );
        let ann = sb.user("ann");
        assert_eq!(
            ann["aliases"],
            serde_json::json!(["ann-a", "ann-b"]),
            "{plugin}"
        );
        assert_eq!(ann["email"], "ann@example.test", "{plugin}");
        assert_eq!(sb.user("cho")["full_name"], "Chloë Ørsted", "{plugin}");
        assert_eq!(sb.user("ben")["aliases"], serde_json::json!([]), "{plugin}");
        let out = stdout(&s.out);
        assert!(
            !out.contains(ROOT_PW),
            "{plugin}: the password is in the output"
        );
    }
}

/// The Python and JavaScript decoders of packed LDAP pages, run natively with the component
/// imports stubbed (tests/sdk_decoders/): entries as the pages hold them, and each kind of
/// broken buffer refused with BadDataError.
#[test]
fn the_packed_page_decoders_read_pages_and_refuse_broken_ones() {
    let dir = repo().join("tests/sdk_decoders");
    let mut py = Command::new(tool("venv/bin/python"));
    py.arg(dir.join("packed_page.py"));
    build(py);
    let mut node = Command::new("node");
    node.current_dir(&dir)
        .args(["--import", "./register.mjs", "packed_page.mjs"]);
    build(node);
}
