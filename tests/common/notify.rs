//! Real parts for tests/notify.rs: an SMTP server (Python aiosmtpd: STARTTLS and AUTH
//! required) that records what it receives, and a webhook receiver that checks Standard
//! Webhooks signatures with Python's own hmac. Both run from the venv `make setup` fills.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SMTP_USER: &str = "roster";
pub const SMTP_PASSWORD: &str = "smtp-pw-5c1e";

/// The venv's Python; a missing one (or a missing aiosmtpd) fails the test.
pub fn python() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::repo_root().join("target"));
    let py = target.join("sdk-tools/venv/bin/python");
    assert!(
        py.exists(),
        "{} is missing: run `make setup` (it installs aiosmtpd there)",
        py.display()
    );
    py
}

fn script(name: &str) -> PathBuf {
    super::repo_root().join("tests/common").join(name)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Lines of a JSON-lines file written by one of the servers.
fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Polls `f` until it returns Some, failing after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The SMTP server on a loopback port; killed when dropped.
pub struct Smtp {
    child: Child,
    pub port: u16,
    out: PathBuf,
}

/// A CA and a server certificate for 127.0.0.1 in `dir` (ca.pem, cert.pem, key.pem).
pub fn make_certs(dir: &Path) {
    super::samba::make_certs(dir);
}

impl Smtp {
    /// Starts the server on `port` with the certificates in `dir` (see [`make_certs`]).
    pub fn start(dir: &Path, port: u16) -> Smtp {
        let out = dir.join(format!("smtp-{port}.jsonl"));
        let mut child = Command::new(python())
            .arg(script("smtp_server.py"))
            .arg(port.to_string())
            .arg(dir.join("cert.pem"))
            .arg(dir.join("key.pem"))
            .arg(&out)
            .args([SMTP_USER, SMTP_PASSWORD])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the SMTP server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "READY", "the SMTP server did not start");
        wait_for("the SMTP port", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Smtp { child, port, out }
    }

    /// The messages received so far.
    pub fn messages(&self) -> Vec<Value> {
        lines(&self.out)
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The webhook receiver; killed when dropped.
pub struct Hooks {
    child: Child,
    pub port: u16,
    out: PathBuf,
    dir: PathBuf,
}

impl Hooks {
    /// Starts the receiver, verifying with `secrets` (whsec_...).
    pub fn start(dir: &Path, secrets: &[&str]) -> Hooks {
        let out = dir.join("hooks.jsonl");
        let mut child = Command::new(python())
            .arg(script("webhook_receiver.py"))
            .arg(&out)
            .arg(dir)
            .args(secrets)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the webhook receiver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("the webhook receiver did not start: {line:?}"))
            .parse()
            .unwrap();
        Hooks {
            child,
            port,
            out,
            dir: dir.to_path_buf(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request answered so far (and "held" marks).
    pub fn requests(&self) -> Vec<Value> {
        lines(&self.out)
    }

    /// Requests answered 200 with a valid signature.
    pub fn delivered(&self) -> Vec<Value> {
        (self.requests().into_iter())
            .filter(|r| r["status"] == 200 && r["verified"] == true)
            .collect()
    }

    /// Lets /hold answer.
    pub fn release(&self) {
        std::fs::write(self.dir.join("release"), "").unwrap();
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
