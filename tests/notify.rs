//! Notifications end to end, with real parts: a local SMTP server (STARTTLS and AUTH
//! required) and a webhook receiver that checks signatures with an independent
//! implementation (tests/common/{smtp_server,webhook_receiver}.py).

mod common;

use common::notify::*;
use common::*;
use serde_json::Value;
use std::time::Duration;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_SECRET: &str = "whsec_c2VjcmV0LWJlZm9yZS10aGUtcm90YXRpb24h";
const CSV: &str =
    "username,full_name,email\nann,Ann A,ann@example.com\nbob,Bob B,bob@example.com\n";

/// A sandbox with certificates, the SMTP password and the webhook secrets in files.
fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    make_certs(sb.root());
    sb.write_file("smtp.pw", SMTP_PASSWORD);
    sb.write_file("webhook.secret", SECRET);
    sb.write_file("old.secret", OLD_SECRET);
    sb.write_csv("users.csv", CSV);
    sb
}

/// A config with source `hr` (`source` adds keys to it), the email channel when `smtp` is
/// given, and a webhook when `hook` is given; `notify` adds keys to `[notify]`.
fn config(sb: &Sandbox, smtp: Option<u16>, hook: Option<&str>, source: &str, notify: &str) {
    let timeout = if notify.contains("timeout") {
        ""
    } else {
        "timeout = \"2s\"\n"
    };
    let mut t = format!(
        "[sources.hr]\nplugin = \"csv\"\n{source}\n[sources.hr.config]\npath = \"users.csv\"\n\n\
         [notify]\nretry_after = \"1s\"\n{timeout}{notify}\n"
    );
    if let Some(port) = smtp {
        t += &format!(
            "[notify.email]\nsmtp = \"smtp://127.0.0.1:{port}\"\nusername = \"{SMTP_USER}\"\n\
             password = {{ file = \"smtp.pw\" }}\nfrom = \"roster <roster@example.com>\"\n\
             to = [\"it-admins@example.com\"]\nca_file = \"ca.pem\"\n"
        );
    }
    if let Some(url) = hook {
        t += &format!(
            "[[notify.webhook]]\nname = \"hooks\"\nurl = \"{url}\"\n\
             secret = [{{ file = \"webhook.secret\" }}, {{ file = \"old.secret\" }}]\n"
        );
    }
    sb.write_config(&t);
}

fn sync_ok(sb: &Sandbox) -> Value {
    let s = sb.sync(&[]);
    assert_eq!(code(&s.out), 0, "{}", describe(&s.out));
    s.runs[0].clone()
}

fn header<'a>(mail: &'a Value, name: &str) -> &'a str {
    let data = mail["data"].as_str().unwrap();
    data.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} header in\n{data}"))
}

fn outbox(sb: &Sandbox) -> Value {
    sb.json(&["notify", "status", "--json", "--limit", "100"])
}

/// Runs `roster notify send` until `done` holds (retries wait out their backoff).
fn send_until(sb: &Sandbox, what: &str, done: impl Fn() -> bool) {
    wait_for(what, Duration::from_secs(40), || {
        sb.roster(&["notify", "send"]);
        done().then_some(())
    });
}

#[test]
fn a_change_sends_one_email_and_one_webhook_and_no_change_sends_nothing() {
    let sb = sandbox();
    let smtp = Smtp::start(sb.root(), free_port());
    // The receiver knows only the new secret: the rotation's second signature is extra.
    let hooks = Hooks::start(sb.root(), &[SECRET]);
    config(&sb, Some(smtp.port), Some(&hooks.url("/ok")), "", "");
    let out = sb.roster(&["-vv", "sync", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let m = &mails[0];
    assert!(m["tls"] == true && m["authenticated"] == true, "{m}");
    assert_eq!(m["rcpt_tos"], serde_json::json!(["it-admins@example.com"]));
    assert_eq!(header(m, "Subject"), "[roster] hr: 2 created");
    let hooks_got = hooks.delivered();
    assert_eq!(hooks_got.len(), 1, "{:?}", hooks.requests());
    let body = &hooks_got[0]["body"];
    assert_eq!(body["type"], "run.changed");
    assert_eq!(body["data"]["counts"]["created"], 2);
    assert_eq!(body["data"]["source"], "hr");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    // The message id is the webhook's id and in the email's Message-ID.
    let ids: Vec<String> = (outbox(&sb)["messages"].as_array().unwrap().iter())
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.contains(&hooks_got[0]["id"].as_str().unwrap().to_string()));
    assert!(ids
        .iter()
        .any(|id| header(m, "Message-ID").contains(id.as_str())));
    // Secrets appear in no log line.
    let stderr = String::from_utf8_lossy(&out.stderr);
    for secret in [SMTP_PASSWORD, &SECRET[6..], &OLD_SECRET[6..]] {
        assert!(!stderr.contains(secret), "a secret in the log:\n{stderr}");
    }

    // Nothing changed: no message.
    sync_ok(&sb);
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(hooks.requests().len(), 1);
    assert_eq!(outbox(&sb)["counts"], serde_json::json!({"delivered": 2}));
}

#[test]
fn failed_held_and_recovered_runs() {
    let sb = sandbox();
    let hooks = Hooks::start(sb.root(), &[SECRET]);
    config(&sb, None, Some(&hooks.url("/ok")), "", "");
    sync_ok(&sb);
    // The file is gone: the run fails.
    std::fs::remove_file(sb.path("users.csv")).unwrap();
    let s = sb.sync(&[]);
    assert_eq!(code(&s.out), 1);
    let types = |h: &Hooks| -> Vec<String> {
        (h.delivered().iter())
            .map(|r| r["body"]["type"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(types(&hooks), ["run.changed", "run.failed"]);
    let failed = &hooks.delivered()[1]["body"]["data"];
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["message"].as_str().unwrap().contains("users.csv"),
        "{failed}"
    );

    // Back, with one more user: changed, and recovered.
    sb.write_csv("users.csv", &format!("{CSV}cy,Cy C,cy@example.com\n"));
    sync_ok(&sb);
    assert_eq!(
        types(&hooks),
        ["run.changed", "run.failed", "run.changed", "run.recovered"]
    );
    // Only the first ok run after failures is a recovery.
    sb.write_csv("users.csv", &format!("{CSV}cy,Cy C2,cy@example.com\n"));
    sync_ok(&sb);
    assert_eq!(types(&hooks).len(), 5);
    assert_eq!(types(&hooks)[4], "run.changed");

    // Two of three users gone: the deletion guard holds the run.
    sb.write_csv(
        "users.csv",
        "username,full_name,email\nann,Ann A,ann@example.com\n",
    );
    let s = sb.sync(&[]);
    assert_eq!(code(&s.out), 1, "{}", describe(&s.out));
    assert_eq!(types(&hooks)[5], "run.held");
    let held = &hooks.delivered()[5]["body"]["data"];
    assert!(held["message"].as_str().unwrap().contains("2"), "{held}");
    assert!(
        held["approve"]
            .as_str()
            .unwrap()
            .contains("roster sync hr --force"),
        "{held}"
    );
    assert_eq!(hooks.requests().len(), 6);
}

#[test]
fn a_source_narrows_the_events_and_a_webhook_filters_them() {
    let sb = sandbox();
    let hooks = Hooks::start(sb.root(), &[SECRET]);
    // This source reports failures only.
    config(
        &sb,
        None,
        Some(&hooks.url("/ok")),
        "notify = [\"run.failed\"]",
        "",
    );
    sync_ok(&sb);
    assert_eq!(hooks.requests().len(), 0);
    std::fs::remove_file(sb.path("users.csv")).unwrap();
    sb.sync(&[]);
    assert_eq!(hooks.delivered().len(), 1);
    assert_eq!(hooks.delivered()[0]["body"]["type"], "run.failed");
}

#[test]
fn secret_expiry_warns_from_7_days_before_once_a_day_and_on_the_day() {
    let sb = sandbox();
    let hooks = Hooks::start(sb.root(), &[SECRET]);
    let today = chrono::Local::now().date_naive();
    let expiring = |days: i64| {
        let date = today + chrono::Duration::days(days);
        config(
            &sb,
            None,
            Some(&hooks.url("/ok")),
            &format!("secret_expires = {{ api_token = \"{date}\" }}"),
            "",
        );
    };
    expiring(30);
    sync_ok(&sb);
    expiring(8);
    sync_ok(&sb);
    assert_eq!(hooks.requests().len(), 1, "only the first run's change");
    expiring(7);
    sync_ok(&sb);
    sync_ok(&sb);
    let expiry: Vec<Value> = (hooks.delivered().into_iter())
        .filter(|r| r["body"]["type"] == "secret.expiring")
        .collect();
    assert_eq!(expiry.len(), 1, "one a day: {expiry:?}");
    let d = &expiry[0]["body"]["data"];
    assert_eq!(
        (d["secret"].as_str(), d["days_left"].as_i64()),
        (Some("api_token"), Some(7))
    );
    expiring(0);
    sync_ok(&sb);
    sync_ok(&sb);
    let expiry: Vec<Value> = (hooks.delivered().into_iter())
        .filter(|r| r["body"]["type"] == "secret.expiring")
        .collect();
    assert_eq!(expiry.len(), 2, "once more on the day: {expiry:?}");
    assert_eq!(expiry[1]["body"]["data"]["days_left"], 0);
}

#[test]
fn welcome_emails_carry_a_generated_pin_that_is_nowhere_else() {
    let sb = sandbox();
    let smtp = Smtp::start(sb.root(), free_port());
    sb.write_file(
        "welcome.txt",
        "Subject: Welcome, {full_name}\n\nYour username is {username}.\nYour PIN: {pin}\n",
    );
    sb.write_csv(
        "users.csv",
        "username,full_name,email,pin\nann,Ann A,ann@example.com,\nbob,Bob B,bob@example.com,4711\nnoemail,No Mail,,\n",
    );
    config(
        &sb,
        Some(smtp.port),
        None,
        "welcome_email = true\nwelcome_template = \"welcome.txt\"\ngenerate_pin = true\npin_length = 8",
        "events = []",
    );
    let out = sb.roster(&["-vv", "sync", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let run: Value = serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()[0].clone();
    assert!(
        (run["notices"].as_array().unwrap().iter())
            .any(|n| n.as_str().unwrap().contains("noemail")),
        "{run}"
    );
    let mails = smtp.messages();
    assert_eq!(mails.len(), 2, "ann and bob: {mails:?}");
    let to = |who: &str| {
        (mails.iter())
            .find(|m| m["rcpt_tos"][0] == who)
            .unwrap_or_else(|| panic!("no mail to {who}"))
    };
    let ann = to("ann@example.com");
    assert_eq!(header(ann, "Subject"), "Welcome, Ann A");
    let pin = ann["data"]
        .as_str()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Your PIN: "))
        .expect("a PIN line")
        .trim()
        .to_string();
    assert_eq!(pin.len(), 8);
    assert!(pin.bytes().all(|b| b.is_ascii_digit()), "{pin}");
    // bob brought a PIN of his own: his email has none.
    let bob = to("bob@example.com")["data"].as_str().unwrap();
    assert!(bob.lines().any(|l| l.trim_end() == "Your PIN:"), "{bob}");

    // The PIN verifies against ann's stored argon2 hash.
    let hash = sb.db_strings(
        "SELECT p.hash FROM pins p JOIN names n ON n.user_id = p.user_id WHERE n.name = 'ann'",
    );
    let hash = &hash[0];
    use argon2::PasswordVerifier;
    let parsed = argon2::PasswordHash::new(hash).unwrap();
    assert!(argon2::Argon2::default()
        .verify_password(pin.as_bytes(), &parsed)
        .is_ok());

    // And it is nowhere else: not in the output or the log, not in --json listings, the
    // run's events or the database files.
    let mut seen = String::new();
    seen += &String::from_utf8_lossy(&out.stdout);
    seen += &String::from_utf8_lossy(&out.stderr);
    for args in [
        &["users", "show", "ann", "--json"][..],
        &["runs", "show", "1", "--json"],
        &["notify", "status", "--json"],
    ] {
        let o = sb.roster_ok(args);
        seen += &String::from_utf8_lossy(&o.stdout);
    }
    assert!(!seen.contains(&pin), "the PIN leaked:\n{seen}");
    for f in std::fs::read_dir(sb.root()).unwrap() {
        let p = f.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("roster.db") {
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                !bytes.windows(pin.len()).any(|w| w == pin.as_bytes()),
                "the PIN is in {name}"
            );
        }
    }
    assert_eq!(outbox(&sb)["counts"], serde_json::json!({"delivered": 2}));
}

#[test]
fn smtp_down_during_the_run_the_mail_goes_out_once_it_is_back() {
    let sb = sandbox();
    let port = free_port();
    config(&sb, Some(port), None, "", "");
    // Nothing listens: the run commits all the same.
    let run = sync_ok(&sb);
    assert_eq!(
        (run["status"].as_str(), run["created"].as_u64()),
        (Some("ok"), Some(2))
    );
    let o = outbox(&sb);
    assert_eq!(o["counts"], serde_json::json!({"pending": 1}));
    assert!(
        o["messages"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("SMTP"),
        "{o}"
    );
    let smtp = Smtp::start(sb.root(), port);
    send_until(&sb, "the mail", || smtp.messages().len() == 1);
    sb.roster_ok(&["notify", "send"]);
    sync_ok(&sb);
    assert_eq!(smtp.messages().len(), 1, "exactly once");
    assert_eq!(outbox(&sb)["counts"], serde_json::json!({"delivered": 1}));
}

#[test]
fn kill_9_between_commit_and_delivery_delivers_after_restart_once() {
    let sb = sandbox();
    let hooks = Hooks::start(sb.root(), &[SECRET]);
    // Long enough an attempt that the kill comes while it waits.
    config(&sb, None, Some(&hooks.url("/hold")), "", "timeout = \"3s\"");
    let mut child = sb
        .command()
        .args(["sync"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The run has committed and the delivery is under way: kill it there.
    wait_for("the held delivery", Duration::from_secs(30), || {
        hooks
            .requests()
            .iter()
            .any(|r| r.get("held").is_some())
            .then_some(())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    hooks.release();
    let runs = sb.json(&["runs", "list", "--json"]);
    assert_eq!(runs[0]["status"], "ok", "{runs}");
    send_until(&sb, "the delivery after the restart", || {
        hooks.delivered().len() == 1
    });
    sb.roster_ok(&["notify", "send"]);
    let got = hooks.delivered();
    assert_eq!(got.len(), 1, "{:?}", hooks.requests());
    // Every attempt carried the same id: a receiver drops repeats.
    let ids: std::collections::BTreeSet<_> = (hooks.requests().iter())
        .filter_map(|r| r["id"].as_str().map(String::from))
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(outbox(&sb)["counts"], serde_json::json!({"delivered": 1}));
}

#[test]
fn a_receiver_that_answers_500_then_200_gets_the_message_once() {
    let sb = sandbox();
    let hooks = Hooks::start(sb.root(), &[SECRET]);
    config(&sb, None, Some(&hooks.url("/fail-first")), "", "");
    sync_ok(&sb);
    let r = hooks.requests();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["status"], 500);
    let o = outbox(&sb);
    assert!(
        o["messages"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{o}"
    );
    send_until(&sb, "the retry", || hooks.delivered().len() == 1);
    let r = hooks.requests();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0]["id"], r[1]["id"]);
    let o = outbox(&sb);
    assert_eq!(o["messages"][0]["state"], "delivered");
    assert_eq!(o["messages"][0]["attempts"], 2);
}

#[test]
fn a_slow_receiver_never_delays_a_run() {
    let sb = sandbox();
    let hooks = Hooks::start(sb.root(), &[SECRET]);
    // The receiver takes 20 s; a delivery attempt gives up after 2 s.
    config(&sb, None, Some(&hooks.url("/slow")), "", "");
    let run = sync_ok(&sb);
    assert_eq!(run["created"], 2);
    // roster is done while the receiver still works on its answer.
    assert_eq!(hooks.requests().len(), 0);
    let o = outbox(&sb);
    assert_eq!(o["counts"], serde_json::json!({"pending": 1}));
    assert!(
        o["messages"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{o}"
    );
}

#[test]
fn notify_test_reports_each_channel() {
    let sb = sandbox();
    let smtp = Smtp::start(sb.root(), free_port());
    let hooks = Hooks::start(sb.root(), &[SECRET]);
    config(&sb, Some(smtp.port), Some(&hooks.url("/ok")), "", "");
    let out = sb.roster(&["notify", "test"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("email: ok") && text.contains("webhook:hooks: ok"),
        "{text}"
    );
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(hooks.delivered()[0]["body"]["type"], "test");
    // A channel that is down is named with its error.
    config(&sb, Some(free_port()), Some(&hooks.url("/ok")), "", "");
    let out = sb.roster(&["notify", "test", "--json"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r[0]["channel"], "email");
    assert_eq!(r[0]["ok"], false);
    assert_eq!(r[1]["ok"], true);
}

#[test]
fn a_plain_http_webhook_elsewhere_than_loopback_is_refused() {
    let sb = sandbox();
    config(&sb, None, Some("http://hooks.example.com/x"), "", "");
    let out = sb.roster(&["sync"]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("notify.webhook[0].url") && err.contains("allow_http"),
        "{err}"
    );
}

#[test]
fn a_service_sender_retries_on_its_own_until_delivered() {
    let sb = sandbox();
    let hooks = Hooks::start(sb.root(), &[SECRET]);
    config(&sb, None, Some(&hooks.url("/fail-first")), "", "");
    sync_ok(&sb);
    assert_eq!(hooks.requests().len(), 1);
    // What `roster serve` runs: a sender on its own thread, no CLI call in between.
    let cfg = roster::config::Config::load(&sb.config_path()).unwrap();
    let sender = roster::notify::Sender::spawn(std::sync::Arc::new(cfg)).unwrap();
    wait_for("the retry", Duration::from_secs(30), || {
        (hooks.delivered().len() == 1).then_some(())
    });
    sender.wake();
    sender.stop();
    assert_eq!(hooks.delivered().len(), 1);
    assert_eq!(outbox(&sb)["counts"], serde_json::json!({"delivered": 1}));
}

#[test]
fn roster_serve_delivers_a_scheduled_runs_notification_with_a_link() {
    let sb = sandbox();
    let hooks = Hooks::start(sb.root(), &[SECRET]);
    config(&sb, None, Some(&hooks.url("/ok")), "schedule = \"2s\"", "");
    let toml = std::fs::read_to_string(sb.config_path()).unwrap();
    sb.write_config(&format!(
        "{toml}\n[serve]\nlisten = \"127.0.0.1:0\"\npublic_url = \"https://roster.example.com/\"\n"
    ));
    let mut child = sb
        .command()
        .arg("serve")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start roster serve");
    // No CLI in between: the service's run and its sender deliver.
    let got = wait_for(
        "the scheduled run's webhook",
        Duration::from_secs(60),
        || hooks.delivered().into_iter().next(),
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let data = &got["body"]["data"];
    assert_eq!(got["body"]["type"], "run.changed", "{got}");
    let run = data["run_id"].as_i64().unwrap();
    assert_eq!(
        data["link"],
        format!("https://roster.example.com/console/runs/{run}")
    );
}
