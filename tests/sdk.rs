//! The plugin SDK end to end: `roster plugin new` writes a Rust project that builds offline
//! and passes `roster plugin test`; `plugin test` names each contract rule a connector
//! breaks; install shows a review and needs `--yes` off a terminal; upgrade shows the
//! capability diff; undeclared capabilities are denied; an unknown contract version is
//! refused at install and at run.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `roster plugin test ARGS --json` from `dir`: exit code and report.
fn plugin_test(sb: &Sandbox, dir: &Path, args: &[&str]) -> (i32, Value) {
    let out = sb
        .command()
        .current_dir(dir)
        .args(["plugin", "test"])
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "plugin test {args:?}: no JSON report ({e})\n{}",
            describe(&out)
        )
    });
    (code(&out), report)
}

/// Every violation's detail, one a line.
fn details(report: &Value) -> String {
    (report["violations"].as_array().unwrap().iter())
        .map(|v| v["detail"].as_str().unwrap().to_string() + "\n")
        .collect()
}

fn rules(report: &Value) -> Vec<String> {
    (report["violations"].as_array().unwrap().iter())
        .map(|v| v["rule"].as_str().unwrap().to_string())
        .collect()
}

/// Builds a generated Rust project offline, into a target directory shared by the runs of
/// this test (under the workspace's target/).
fn cargo_build(project: &Path) -> PathBuf {
    let target = repo_root().join("target/plugin-new");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--offline",
        "--release",
        "--target",
        "wasm32-wasip2",
    ])
    .current_dir(project)
    .env("CARGO_TARGET_DIR", &target);
    // The test runs under cargo: its CARGO_* variables and flags are for the host build.
    for (k, _) in std::env::vars() {
        if (k.starts_with("CARGO_") && k != "CARGO_HOME") || k == "RUSTFLAGS" {
            cmd.env_remove(k);
        }
    }
    cmd.env("CARGO_TARGET_DIR", &target);
    let out = cmd.output().expect("run cargo");
    assert!(
        out.status.success(),
        "the generated project does not build (is wasm32-wasip2 installed? make setup)\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target.join("wasm32-wasip2/release/acme_people.wasm")
}

#[test]
fn a_generated_rust_connector_builds_offline_passes_plugin_test_and_syncs() {
    let sb = Sandbox::new();
    let project = sb.path("acme-people");
    let out = sb.roster_ok(&[
        "plugin",
        "new",
        "acme-people",
        "--lang",
        "rust",
        "--dir",
        project.to_str().unwrap(),
    ]);
    assert!(stdout(&out).contains("wrote"), "{}", describe(&out));
    let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
    assert!(readme.contains("cargo build --release --target wasm32-wasip2"));
    assert!(readme.contains("release/acme_people.wasm"), "{readme}");
    // The author's code stays within 30 lines.
    let lib = std::fs::read_to_string(project.join("src/lib.rs")).unwrap();
    let code_lines = (lib.lines())
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("//"))
        .count();
    assert!(code_lines <= 30, "{code_lines} lines:\n{lib}");

    let wasm = cargo_build(&project);
    let wasm = wasm.to_str().unwrap();
    // As the README says, from the project directory.
    let (rc, report) = plugin_test(&sb, &project, &[wasm, "--set", "path=example/people.txt"]);
    assert_eq!(rc, 0, "{report:#}");
    assert_eq!(report["plugin"]["name"], "acme-people");
    let run = &report["runs"][0];
    assert_eq!(
        (run["users"].as_u64(), run["groups"].as_u64()),
        (Some(3), Some(2))
    );
    let alice = &run["shown_users"][0];
    assert_eq!(alice["username"], "alice");
    assert_eq!(alice["email"], "alice@example.org");
    assert_eq!(sorted(&["IT", "Staff"]), {
        let mut g = strs(&alice["groups"]);
        g.sort();
        g
    });
    assert!(rules(&report).is_empty());
    let text = sb
        .command()
        .current_dir(&project)
        .args(["plugin", "test", wasm, "--set", "path=example/people.txt"])
        .output()
        .unwrap();
    assert!(
        stdout(&text).contains("contract: ok"),
        "{}",
        describe(&text)
    );

    // Installed and synced like any connector.
    let mut people = std::fs::read_to_string(project.join("example/people.txt")).unwrap();
    people.push_str("1004; dave\n");
    sb.write_file("people.txt", people);
    sb.write_config(
        "[sources.people]\nplugin = \"acme-people\"\n[sources.people.config]\npath = \"people.txt\"\n",
    );
    sb.roster_ok(&["plugin", "install", wasm, "--yes"]);
    let s = sb.sync_ok(&[]);
    assert_counts(s.only(), &[("created", 3), ("failed", 1)]);
    assert_eq!(usernames(&sb.users()), ["alice", "bob", "carol"]);
    assert_eq!(sb.user("alice")["full_name"], "Alice Liddell");
}

#[test]
fn plugin_test_names_each_broken_contract_rule() {
    let sb = Sandbox::new();
    let wasm = hostile_wasm();
    let wasm = wasm.to_str().unwrap();
    let (rc, report) = plugin_test(&sb, sb.root(), &[wasm, "--set", "mode=ok"]);
    assert_eq!((rc, rules(&report)), (0, vec![]), "{report:#}");
    assert_eq!(report["runs"][0]["users"], 3);

    for (mode, rule, needle) in [
        ("duplicate-ids", "unique-ids", "\"u1\" appears twice"),
        ("dangling-member", "member-references", "\"u9\""),
        (
            "bad-row",
            "row-columns",
            "1 value lists for the batch's 2 columns",
        ),
        ("delta-no-cursor", "delta-cursor", "without a cursor"),
        ("huge-batch", "batch-caps", "10000 entries"),
    ] {
        let set = format!("mode={mode}");
        let (rc, report) = plugin_test(&sb, sb.root(), &[wasm, "--set", &set]);
        assert_eq!(rc, 1, "{mode}: {report:#}");
        assert_eq!(rules(&report)[0], rule, "{mode}: {report:#}");
        let details = details(&report);
        assert!(details.contains(needle), "{mode}: {details}");
        let out = sb.roster(&["plugin", "test", wasm, "--set", &set]);
        assert_eq!(code(&out), 1);
        assert!(
            stdout(&out).contains(&format!("contract broken: {rule}: ")),
            "{mode}: {}",
            describe(&out)
        );
    }
    // Both dangling references are named: a member and a member-of.
    let (_, report) = plugin_test(&sb, sb.root(), &[wasm, "--set", "mode=dangling-member"]);
    let details = details(&report);
    assert!(
        details.contains("\"g-missing\" as its member-of"),
        "{details}"
    );
    // The delta run is a second run from the full run's cursor.
    let (_, report) = plugin_test(&sb, sb.root(), &[wasm, "--set", "mode=delta-no-cursor"]);
    assert_eq!(report["runs"][0]["cursor"], "c1");
    assert_eq!(report["runs"][1]["requested"], "delta");

    // A config the plugin's keys refuse is a config error, shown after its info.
    let (rc, report) = plugin_test(&sb, sb.root(), &[wasm, "--set", "colour=blue"]);
    assert_eq!(rc, 2);
    assert!(report["config_error"]
        .as_str()
        .unwrap()
        .contains("unknown key `colour`"));
    assert_eq!(report["plugin"]["name"], "hostile");
    // A failing run is no pass, and no database was written.
    let (rc, report) = plugin_test(&sb, sb.root(), &[wasm, "--set", "mode=trap"]);
    assert_eq!(rc, 1);
    assert!(report["runs"][0]["error"]
        .as_str()
        .unwrap()
        .contains("trapped"));
    assert!(!sb.db_path().exists());
}

#[test]
fn plugin_test_takes_a_source_from_the_config() {
    let sb = Sandbox::new();
    let wasm = hostile_wasm();
    sb.write_config(
        "[sources.h]\nplugin = \"hostile\"\n[sources.h.config]\nmode = \"directory\"\ncount = 1\n",
    );
    let (rc, report) = plugin_test(&sb, sb.root(), &[wasm.to_str().unwrap(), "--source", "h"]);
    assert_eq!(rc, 0, "{report:#}");
    let run = &report["runs"][0];
    assert_eq!(
        (run["users"].as_u64(), run["groups"].as_u64()),
        (Some(4), Some(3))
    );
    let u3 = (run["shown_users"].as_array().unwrap().iter())
        .find(|u| u["id"] == "u3")
        .unwrap();
    assert_eq!(strs(&u3["groups"]), ["Staff"]);
    assert!(!sb.db_path().exists(), "plugin test wrote a database");
}

#[test]
fn install_shows_a_review_and_needs_yes_off_a_terminal() {
    let sb = Sandbox::new();
    sb.write_config("");
    let wasm = hostile_wasm();
    let wasm = wasm.to_str().unwrap();
    let out = sb.roster(&["plugin", "install", wasm]);
    assert_ne!(code(&out), 0, "{}", describe(&out));
    assert!(stderr(&out).contains("--yes"), "{}", describe(&out));
    let review = stdout(&out);
    let sha = plugins_sha(wasm);
    for needle in [
        "hostile 0.1.0",
        sha.as_str(),
        "files    read-file mode tries to open `path`",
        "http     http-get mode fetches `path`",
        "ldap ",
        "api_token",
        "mode ",
    ] {
        assert!(
            review.contains(needle),
            "review lacks {needle:?}:\n{review}"
        );
    }
    assert!(!stdout(&sb.roster_ok(&["plugin", "list"])).contains("installed"));

    let out = sb.roster_ok(&["plugin", "install", wasm, "--yes"]);
    assert!(
        stdout(&out).contains("installed hostile"),
        "{}",
        describe(&out)
    );
    assert!(stdout(&sb.roster_ok(&["plugin", "list"])).contains(&sha[..16]));
}

/// Runs roster on a pseudo-terminal (util-linux `script`), typing `answer`.
fn on_terminal(sb: &Sandbox, args: &[&str], answer: &str) -> std::process::Output {
    use std::io::Write;
    let quote = |a: &str| format!("'{}'", a.replace('\'', "'\\''"));
    let line: Vec<String> = std::iter::once(roster_bin())
        .chain(args.iter().copied())
        .map(quote)
        .collect();
    let mut child = sb
        .command()
        .get_envs()
        .fold(Command::new("script"), |mut c, (k, v)| {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
            c
        })
        .current_dir(sb.root())
        .args(["-qec", &line.join(" "), "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux `script` (Debian: bsdutils) runs roster on a terminal");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn on_a_terminal_install_asks_and_only_yes_installs() {
    let sb = Sandbox::new();
    sb.write_config("");
    let wasm = undeclared_wasm();
    let wasm = wasm.to_str().unwrap();
    let out = on_terminal(&sb, &["plugin", "install", wasm], "n\n");
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.contains("install it? [y/N]"), "{text}");
    assert!(text.contains("nothing changed"), "{text}");
    assert!(!stdout(&sb.roster_ok(&["plugin", "list"])).contains("undeclared"));

    let out = on_terminal(&sb, &["plugin", "install", wasm], "y\n");
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        stdout(&out).contains("installed undeclared"),
        "{}",
        describe(&out)
    );
    assert!(stdout(&sb.roster_ok(&["plugin", "list"])).contains("undeclared"));
}

fn plugins_sha(path: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn upgrade_shows_the_capability_diff_and_asks_again_when_it_grows() {
    let sb = Sandbox::new();
    sb.write_config("");
    let (small, big) = (undeclared_wasm(), hostile_wasm());
    let (small, big) = (small.to_str().unwrap(), big.to_str().unwrap());
    sb.roster_ok(&["plugin", "install", small, "--name", "conn", "--yes"]);

    let out = sb.roster(&["plugin", "upgrade", "conn", big]);
    assert_ne!(code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    for needle in [
        "+ files",
        "+ http",
        "+ ldap",
        "undeclared 0.1.0",
        "-> 0.1.0",
    ] {
        let needle = needle.replace("undeclared ", "conn ");
        assert!(text.contains(&needle), "lacks {needle:?}:\n{text}");
    }
    assert!(stderr(&out).contains("--yes"), "{}", describe(&out));
    let list = stdout(&sb.roster_ok(&["plugin", "list"]));
    assert!(list.contains(&plugins_sha(small)[..16]), "{list}");

    sb.roster_ok(&["plugin", "upgrade", "conn", big, "--yes"]);
    let list = stdout(&sb.roster_ok(&["plugin", "list"]));
    assert!(list.contains(&plugins_sha(big)[..16]), "{list}");
    let inspect = stdout(&sb.roster_ok(&["plugin", "inspect", "conn"]));
    assert!(inspect.contains("hostile"), "{inspect}");

    // Fewer capabilities: shown, not asked.
    let out = sb.roster_ok(&["plugin", "upgrade", "conn", small]);
    assert!(stdout(&out).contains("- files"), "{}", describe(&out));
    let list = stdout(&sb.roster_ok(&["plugin", "list"]));
    assert!(list.contains(&plugins_sha(small)[..16]), "{list}");
}

#[test]
fn undeclared_capabilities_are_denied_even_when_the_config_grants_them() {
    let sb = Sandbox::new();
    sb.write_file("data.txt", "secret payroll\n");
    let wasm = toml_str(undeclared_wasm().to_str().unwrap());
    let hostile = toml_str(hostile_wasm().to_str().unwrap());
    let source = |name: &str, plugin: &str, config: &str, extra: &str| {
        format!(
            "[sources.{name}]\nplugin = {plugin}\n{extra}[sources.{name}.config]\n{config}\n\
             [sources.{name}.map]\nnotes = \"%error%\"\nstorage = \"%content%\"\n"
        )
    };
    sb.write_config(
        &[
            source(
                "f",
                &wasm,
                "mode = \"files\"\npath = \"data.txt\"",
                "files = [\"data.txt\"]\n",
            ),
            source(
                "h",
                &wasm,
                "mode = \"http\"\napi_url = \"http://127.0.0.1:9/\"\napi_token = \"t\"",
                "",
            ),
            source(
                "l",
                &wasm,
                "mode = \"ldap\"\nurl = [\"ldap://127.0.0.1:9\"]\nbind_dn = \"cn=x\"\n\
                 password = \"p\"\nbase_dn = [\"dc=x\"]",
                "",
            ),
            // The same grant reaches a plugin that declares `files`.
            source(
                "ok",
                &hostile,
                "mode = \"read-file\"\npath = \"data.txt\"",
                "files = [\"data.txt\"]\n",
            ),
        ]
        .concat(),
    );
    sb.sync_ok(&[]);
    for (user, needle) in [
        ("denied-files", "did not declare the files capability"),
        ("denied-http", "http capability is not granted"),
        ("denied-ldap", "ldap capability is not granted"),
    ] {
        let shown = sb.json(&["users", "show", user, "--json"]);
        let notes = shown["notes"].as_str().unwrap_or_default().to_string();
        assert!(notes.contains(needle), "{user}: {shown:#}");
        assert!(!notes.contains("payroll"));
    }
    let shown = sb.json(&["users", "show", "file", "--json"]);
    assert_eq!(shown["storage"], "secret payroll");
}

#[test]
fn a_component_of_an_unknown_contract_version_is_refused_at_install_and_at_run() {
    let sb = Sandbox::new();
    // The hostile component as if built against a future contract: its connector export
    // (and the core exports behind it) renamed, same length, so it still compiles.
    let bytes = std::fs::read(hostile_wasm()).unwrap();
    let (old, new) = (
        b"roster:plugin/connector@0.1.0",
        b"roster:plugin/connector@9.9.9",
    );
    let mut patched = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(old) {
            patched.extend_from_slice(new);
            i += old.len();
        } else {
            patched.push(bytes[i]);
            i += 1;
        }
    }
    assert_ne!(patched, bytes);
    let future = sb.write_file("future.wasm", &patched);
    sb.write_config("[sources.f]\nplugin = \"future.wasm\"\n[sources.f.config]\nmode = \"ok\"\n");
    let both = |text: &str| text.contains("connector@9.9.9") && text.contains("connector@0.1.0");

    let out = sb.roster(&["plugin", "install", future.to_str().unwrap(), "--yes"]);
    assert_ne!(code(&out), 0);
    assert!(both(&stderr(&out)), "{}", describe(&out));
    assert!(!stdout(&sb.roster_ok(&["plugin", "list"])).contains("installed"));

    let s = sb.sync(&[]);
    assert_ne!(s.code(), 0);
    let message = s.only()["message"].as_str().unwrap().to_string();
    assert!(both(&message), "{message}");
    assert!(sb.users().is_empty());

    let out = sb.roster(&[
        "plugin",
        "test",
        future.to_str().unwrap(),
        "--set",
        "mode=ok",
    ]);
    assert_eq!(code(&out), 1);
    assert!(both(&stderr(&out)), "{}", describe(&out));
}

#[test]
fn the_sdk_helpers_read_granted_files_http_with_a_credential_and_paged_ldap() {
    use common::slapd::{self, Slapd};
    let server = Slapd::start(&slapd::directory_ldif());
    // An API that wants the bearer token the host holds.
    let api = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let api_url = format!("http://{}", api.server_addr().to_ip().unwrap());
    std::thread::spawn(move || {
        for req in api.incoming_requests() {
            let authorised = (req.headers().iter())
                .any(|h| h.field.equiv("Authorization") && h.value == "Bearer tok-123");
            let (status, body) = match (authorised, req.url()) {
                (true, "/people") => (
                    200,
                    r#"[{"id":"p1","name":"Pat One"},{"id":"p2","name":"Sam Two"}]"#,
                ),
                (true, _) => (404, "{}"),
                (false, _) => (401, "{}"),
            };
            req.respond(tiny_http::Response::from_string(body).with_status_code(status))
                .ok();
        }
    });
    let sb = Sandbox::new();
    // Over the host's 1 MiB read cap, so the reader takes several reads.
    let long = "x".repeat(300_000);
    let lines: Vec<String> = (0..5).map(|i| format!("line{i}:{long}")).collect();
    sb.write_file("lines.txt", lines.join("\n") + "\n");
    let wasm = toml_str(sdk_probe_wasm().to_str().unwrap());
    let source = |name: &str, config: &str| {
        format!("[sources.{name}]\nplugin = {wasm}\n[sources.{name}.config]\n{config}\n")
    };
    sb.write_config(
        &[
            source(
                "f",
                "mode = \"files\"\npath = \"lines.txt\"\n[sources.f.map]\nnotes = \"%length%\"",
            ),
            source(
                "h",
                &format!("mode = \"http\"\napi_url = \"{api_url}\"\napi_token = \"tok-123\""),
            ),
            source(
                "l",
                &format!(
                    "mode = \"ldap\"\ncount = 2\nurl = [\"{}\"]\nbind_dn = \"{}\"\npassword = \"{}\"\n\
                     base_dn = [\"{}\"]",
                    server.url,
                    slapd::ROOT_DN,
                    slapd::ROOT_PW,
                    slapd::SUFFIX
                ),
            ),
        ]
        .concat(),
    );
    let s = sb.sync_ok(&[]);
    assert_counts(s.run("f"), &[("created", 5), ("failed", 0)]);
    let users = sb.users();
    assert!(find_user(&users, "line4").is_some(), "{users:?}");
    let line4 = sb.json(&["users", "show", "line4", "--json"]);
    assert_eq!(line4["notes"], "300006");
    assert_eq!(sb.user("p1")["full_name"], "Pat One");
    assert_eq!(sb.user("p2")["full_name"], "Sam Two");
    // Every inetOrgPerson, page by page; those without a uid have no username.
    let people = slapd::people();
    let uids: Vec<&str> = people.iter().filter_map(|p| p.uid.as_deref()).collect();
    let without = (people.len() - uids.len()) as u64;
    assert_counts(
        s.run("l"),
        &[("created", uids.len() as u64), ("failed", without)],
    );
    assert_eq!(sb.user(uids[0])["source"], "l");

    // A wrong token: the API's 401 is an authentication error that fails the run.
    sb.write_config(&source(
        "h",
        &format!("mode = \"http\"\napi_url = \"{api_url}\"\napi_token = \"wrong\""),
    ));
    let s = sb.sync(&["h"]);
    let message = s.only()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("authentication failed") && message.contains("HTTP 401"),
        "{message}"
    );
    assert!(!message.contains("wrong"), "{message}");
}

#[test]
fn an_sdk_delta_run_returns_its_cursor_and_removals() {
    let sb = Sandbox::new();
    let wasm = sdk_probe_wasm();
    let (rc, report) = plugin_test(
        &sb,
        sb.root(),
        &[wasm.to_str().unwrap(), "--set", "mode=delta"],
    );
    assert_eq!(rc, 0, "{report:#}");
    let (full, delta) = (&report["runs"][0], &report["runs"][1]);
    assert_eq!(
        (full["mode"].as_str(), full["cursor"].as_str()),
        (Some("full"), Some("v1"))
    );
    assert_eq!(full["users"], 2);
    assert_eq!(
        (delta["mode"].as_str(), delta["cursor"].as_str()),
        (Some("delta"), Some("v2"))
    );
    assert_eq!(
        (delta["users"].as_u64(), delta["removed"].as_u64()),
        (Some(0), Some(1))
    );

    sb.write_config(&format!(
        "[sources.d]\nplugin = {}\n[sources.d.config]\nmode = \"delta\"\n",
        toml_str(wasm.to_str().unwrap())
    ));
    sb.sync_ok(&[]);
    assert_eq!(usernames(&sb.active_users()), ["a", "b"]);
    let s = sb.sync_ok(&[]);
    assert_eq!(s.only()["mode"], "delta");
    assert_eq!(usernames(&sb.active_users()), ["a"]);
}

/// The packed page (`next-page-packed`, one buffer per page) and the per-value lists give
/// the same entries: binary and non-UTF-8 values, an empty value, hundreds of values, and
/// pages of one and of many entries.
#[test]
fn packed_ldap_pages_read_the_same_entries_as_per_value_lists() {
    use common::slapd::{self, Slapd};
    let mut ldif = slapd::directory_ldif();
    ldif.push_str(&format!(
        "\ndn: uid=odd,{}\nobjectClass: inetOrgPerson\nuid: odd\ncn: Odd\nsn: Ödd\n\
         jpegPhoto:: /9gAgP4KDQ==\nuserPassword:\n",
        slapd::PEOPLE
    ));
    for i in 0..300 {
        ldif.push_str(&format!("description: value {i}\n"));
    }
    let server = Slapd::start(&ldif);
    let wasm = toml_str(sdk_probe_wasm().to_str().unwrap());
    // Every entry: the suffix, two OUs, the people, four groups and `odd`.
    let entries = 3 + slapd::people().len() as u64 + 4 + 1;
    for count in [1, 500] {
        let sb = Sandbox::new();
        sb.write_config(&format!(
            "[sources.l]\nplugin = {wasm}\n[sources.l.config]\nmode = \"ldap-paths\"\n\
             count = {count}\nurl = [\"{}\"]\nbind_dn = \"{}\"\npassword = \"{}\"\n\
             base_dn = [\"{}\"]\n",
            server.url,
            slapd::ROOT_DN,
            slapd::ROOT_PW,
            slapd::SUFFIX
        ));
        let s = sb.sync_ok(&[]);
        assert_counts(s.only(), &[("created", entries), ("failed", 0)]);
        // odd's values all crossed: objectClass, uid, cn, sn, jpegPhoto, the empty
        // userPassword and 300 descriptions.
        let odd = sb.json(&["users", "show", "odd", "--json"]);
        assert_eq!(odd["notes"], "306");
    }
}

/// A component that reads pages only as per-value lists, as every component built before
/// `next-page-packed` does, does not import it and keeps working: the addition is compatible.
#[test]
fn a_component_without_packed_pages_still_reads_ldap() {
    use common::slapd::{self, Slapd};
    let wasm = ldap_lists_wasm();
    let bytes = std::fs::read(&wasm).unwrap();
    let imports = |name: &[u8]| bytes.windows(name.len()).any(|w| w == name);
    assert!(imports(b"next-page") && !imports(b"next-page-packed"));

    let server = Slapd::start(&slapd::directory_ldif());
    let sb = Sandbox::new();
    sb.write_config(&format!(
        "[sources.l]\nplugin = {}\n[sources.l.config]\ncount = 7\nurl = [\"{}\"]\n\
         bind_dn = \"{}\"\npassword = \"{}\"\nbase_dn = [\"{}\"]\n",
        toml_str(wasm.to_str().unwrap()),
        server.url,
        slapd::ROOT_DN,
        slapd::ROOT_PW,
        slapd::SUFFIX
    ));
    let people = slapd::people();
    let uids: Vec<&str> = people.iter().filter_map(|p| p.uid.as_deref()).collect();
    let s = sb.sync_ok(&[]);
    assert_counts(
        s.only(),
        &[
            ("created", uids.len() as u64),
            ("failed", (people.len() - uids.len()) as u64),
        ],
    );
    let first = people.iter().find(|p| p.uid.is_some()).unwrap();
    assert_eq!(sb.user(uids[0])["full_name"], first.cn.as_str());
}
