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

/// Builds the Python connector in `dir` (relative to the repository; its module is `app`)
/// with the Python SDK into `out`.
fn componentize_py(dir: &str, out: &Path) {
    let mut cmd = Command::new(tool("venv/bin/componentize-py"));
    cmd.arg("-d")
        .arg(repo().join("wit"))
        .args(["-w", "source", "componentize", "app", "-p"])
        .arg(repo().join(dir))
        .arg("-p")
        .arg(repo().join("sdk/python"))
        .arg("-o")
        .arg(out);
    build(cmd);
}

/// Builds the JavaScript connector `app` (relative to the repository) into `out`.
fn componentize_js(app: &str, out: &Path) {
    let mut cmd = Command::new(tool("node/node_modules/.bin/componentize-js"));
    // It resolves the app's imports from the working directory.
    cmd.current_dir(repo())
        .arg(app)
        .arg("--wit")
        .arg(repo().join("wit"))
        .args(["-n", "source", "-d", "http", "fetch-event", "-o"])
        .arg(out);
    build(cmd);
}

#[test]
fn a_javascript_connector_syncs_users_and_groups_from_granted_files() {
    let sb = Sandbox::new();
    let wasm = sb.path("unix.wasm");
    componentize_js("examples/plugins/unix-js/app.js", &wasm);
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
    componentize_py("examples/plugins/hr-api-python", &wasm);
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
    componentize_py("tests/components/service-account", &py);
    let js = build_dir.path("sa-js.wasm");
    componentize_js("tests/components/service-account/app.js", &js);
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

/// The SDKs' own unit tests (tests/sdk-unit): the packed LDAP page decoders of the Python and
/// JavaScript SDKs on hand-built pages, truncated at every byte, overlong, with trailing bytes
/// and with a DN or name that is not UTF-8 (BadDataError naming "packed LDAP page"), and
/// `ldap_search` / `ldapSearch` over a stubbed host (every page read, errors mapped).
#[test]
fn python_and_javascript_sdk_unit_tests_pass() {
    let mut py = Command::new(tool("venv/bin/python"));
    py.current_dir(repo())
        .args(["-m", "unittest", "discover", "-v", "-s", "tests/sdk-unit"])
        .args(["-p", "test_*.py"]);
    build(py);
    let mut js = Command::new("node");
    js.current_dir(repo()).args(["--test", "tests/sdk-unit/"]);
    build(js);
}

/// `ldap_search` (Python) and `ldapSearch` (JavaScript) read packed pages (`next-page-packed`)
/// from slapd and yield what they always did: each test connector
/// (tests/components/ldap-langs) puts the attributes it was given into `notes` as JSON.
/// Several attributes, multi-values, non-ASCII text, an empty value, a binary value that is
/// not UTF-8 (Python: latin-1; JavaScript: U+FFFD), an entry without a uid, a search that
/// matches nothing, and pages of one entry and of all of them.
#[test]
fn python_and_javascript_connectors_read_packed_ldap_pages() {
    use common::slapd::{self, Slapd};
    let suffix = slapd::SUFFIX;
    let people = slapd::PEOPLE;
    let mut ldif = format!(
        "dn: {suffix}\nobjectClass: dcObject\nobjectClass: organization\no: Example\n\
         dc: example\n\n\
         dn: {people}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: uid=ann,{people}\nobjectClass: inetOrgPerson\nuid: ann\ncn: Ann Smith\ncn: Annie\n\
         sn: Smith\nmail: ann@example.test\nmail: a.smith@example.test\n\
         description: first\ndescription: second\n\n\
         dn: uid=ben,{people}\nobjectClass: inetOrgPerson\nuid: ben\ncn: Ben\nsn: Jones\n\n\
         dn: cn=No Uid,{people}\nobjectClass: inetOrgPerson\ncn: No Uid\nsn: Uid\n\n\
         dn: uid=odd,{people}\nobjectClass: inetOrgPerson\nuid: odd\ncn: Odd\nsn: Ödd\n\
         jpegPhoto:: /9gAgP4KDQ==\nuserPassword:\n"
    );
    for i in 0..5 {
        ldif.push_str(&format!("description: value {i}\n"));
    }
    let server = Slapd::start(&ldif);

    let build_dir = Sandbox::new();
    let py = build_dir.path("ldap-python.wasm");
    componentize_py("tests/components/ldap-langs", &py);
    let js = build_dir.path("ldap-js.wasm");
    componentize_js("tests/components/ldap-langs/app.js", &js);

    // The photo's bytes ff d8 00 80 fe 0a 0d, as each SDK reads a value that is not UTF-8.
    let photo_py = "\u{ff}\u{d8}\u{0}\u{80}\u{fe}\n\r";
    let photo_js = "\u{fffd}\u{fffd}\u{0}\u{fffd}\u{fffd}\n\r";
    for (wasm, lang, photo) in [(&py, "python", photo_py), (&js, "js", photo_js)] {
        for count in [1, 500] {
            let sb = Sandbox::new();
            let source = format!(
                "[sources.l]\nplugin = {}\n[sources.l.config]\ncount = {count}\n\
                 url = [\"{}\"]\nbind_dn = \"{}\"\npassword = \"{}\"\nbase_dn = [\"{suffix}\"]\n",
                toml_str(wasm.to_str().unwrap()),
                server.url,
                slapd::ROOT_DN,
                slapd::ROOT_PW,
            );
            sb.write_config(&common::config(std::slice::from_ref(&source)));
            let s = sb.sync_ok(&[]);
            assert_counts(s.only(), &[("created", 3), ("failed", 1)]);
            assert_eq!(sb.users_by_name(), ["ann", "ben", "odd"], "{lang}");
            // The attributes each connector was given, names lower-cased.
            let attrs = |name: &str| {
                let user = sb.json(&["users", "show", name, "--json"]);
                let notes = user["notes"].as_str().unwrap_or_default();
                let map: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(notes).unwrap_or_else(|e| panic!("{lang}: {e}: {user:#}"));
                (map.into_iter())
                    .map(|(k, v)| (k.to_lowercase(), v))
                    .collect::<serde_json::Map<_, _>>()
            };
            let ann = attrs("ann");
            assert_eq!(ann["uid"], serde_json::json!(["ann"]), "{lang} {count}");
            assert_eq!(ann["cn"], serde_json::json!(["Ann Smith", "Annie"]));
            assert_eq!(ann["sn"], serde_json::json!(["Smith"]));
            assert_eq!(
                ann["mail"],
                serde_json::json!(["ann@example.test", "a.smith@example.test"])
            );
            assert_eq!(ann["description"], serde_json::json!(["first", "second"]));
            assert_eq!(ann.len(), 5, "{lang}: {ann:?}");
            assert_eq!(attrs("ben").len(), 3, "{lang}");
            let odd = attrs("odd");
            assert_eq!(odd["sn"], serde_json::json!(["Ödd"]), "{lang} {count}");
            assert_eq!(odd["jpegphoto"], serde_json::json!([photo]), "{lang}");
            assert_eq!(odd["userpassword"], serde_json::json!([""]), "{lang}");
            let descriptions: Vec<String> = (0..5).map(|i| format!("value {i}")).collect();
            assert_eq!(odd["description"], serde_json::json!(descriptions));

            // The host's errors keep their mapping: a refused bind fails the run.
            if count == 1 {
                let wrong = source.replace(slapd::ROOT_PW, "wrong");
                sb.write_config(&common::config(&[wrong]));
                let s = sb.sync(&[]);
                assert_ne!(code(&s.out), 0, "{lang}: {}", describe(&s.out));
                let run = s.only();
                assert_ne!(run["status"], "ok", "{lang}: {run:#}");
                assert_eq!(sb.users_by_name(), ["ann", "ben", "odd"], "{lang}");
            }
        }
    }
}
