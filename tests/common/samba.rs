//! A throwaway Samba Active Directory domain controller for the AD end-to-end tests.
//!
//! [`SambaDc::start`] provisions a fresh domain (`EXAMPLE.TEST`, base `DC=example,DC=test`) in
//! a temporary directory with `samba-tool domain provision`, gives it a test CA and a server
//! certificate for `localhost` / `127.0.0.1` (the certificate Samba generates itself names only
//! the machine's host name, which rustls cannot match against `127.0.0.1`), and starts
//! `samba -i -M single` on it. Only the `ldap` service runs (ports 389, 636, 3268 and 3269):
//! no file server, no KDC, no DNS, so winbindd is not needed at run time and one process is
//! all there is. `ldap server require strong auth = no` allows the plain simple binds that
//! `ldapadd` and roster make on `ldap://`.
//!
//! Samba's ports are fixed, so one test binary may run one domain controller at a time: the
//! AD suite starts a single one and runs its scenarios in order (see `tests/ldap_ad.rs`).
//!
//! Clean-up: samba runs with its stdin on a pipe from the test process, and `-i` makes it
//! terminate when that pipe closes. Dropping a [`SambaDc`] closes the pipe, waits (bounded)
//! for the process to end and kills its process group if it did not; if the test process
//! itself dies, the pipe closes all the same. `--maximum-runtime` is a last resort. Nothing
//! is written outside the temporary directory.
//!
//! Any failure to provision or start panics with the reason: these tests never skip.
#![allow(dead_code)]

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const REALM: &str = "EXAMPLE.TEST";
pub const DOMAIN: &str = "EXAMPLE";
pub const BASE_DN: &str = "DC=example,DC=test";
/// The simple-bind name of the domain administrator.
pub const BIND_DN: &str = "Administrator@example.test";
pub const LDAP_URL: &str = "ldap://127.0.0.1:389";
pub const LDAPS_URL: &str = "ldaps://127.0.0.1:636";
/// Test-only administrator password (meets AD's default complexity rules).
pub const ADMIN_PASSWORD: &str = "Roster-Test-Pw1!";

/// How long provisioning and start may take on a loaded machine before the test fails.
const PROVISION_LIMIT: Duration = Duration::from_secs(300);
const START_LIMIT: Duration = Duration::from_secs(120);
/// samba ends itself after this long even if every other clean-up failed.
const MAX_RUNTIME_SECS: u64 = 3600;

/// A running Samba AD DC in a temporary directory.
pub struct SambaDc {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// samba's stdin: dropping it makes samba (`-i`) terminate.
    stdin: Option<ChildStdin>,
    /// How long `samba-tool domain provision` took.
    pub provision_time: Duration,
    /// From spawning samba to the first answered ldapsearch.
    pub start_time: Duration,
}

/// Commands the harness runs, with the Debian package that provides each.
const TOOLS: &[(&str, &str)] = &[
    ("samba-tool", "samba"),
    ("samba", "samba"),
    ("ldapadd", "ldap-utils"),
    ("ldapsearch", "ldap-utils"),
    ("ldapmodify", "ldap-utils"),
    ("ldapdelete", "ldap-utils"),
    ("openssl", "openssl"),
];

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn tool(name: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| {
        let pkg = TOOLS
            .iter()
            .find(|(t, _)| *t == name)
            .map_or("?", |(_, p)| p);
        panic!(
            "the Samba AD tests need `{name}` (Debian package {pkg}); `make setup` installs \
             samba, winbind, ldap-utils and openssl"
        )
    })
}

/// Runs a command to completion, panicking with its output unless it exits 0.
fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{what} failed ({})\n--- stdout\n{}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// The LDAP ports a Samba DC with only the `ldap` service listens on.
pub const PORTS: &[u16] = &[389, 636, 3268, 3269];

impl SambaDc {
    /// Provisions and starts a domain controller; panics with the reason if it cannot.
    pub fn start() -> SambaDc {
        for (t, _) in TOOLS {
            tool(t);
        }
        if let Some(p) = PORTS.iter().find(|p| port_open(**p)) {
            panic!(
                "port {p} on 127.0.0.1 is already in use (a Samba or LDAP server left running?); \
                 the Samba AD DC needs ports {PORTS:?}"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("roster-samba-")
            .tempdir()
            .expect("create temp dir for Samba");
        let root = dir.path().to_path_buf();
        let tls = root.join("tls");
        std::fs::create_dir_all(&tls).unwrap();
        make_certs(&tls);

        // Options go through provision, which writes them into DIR/etc/smb.conf [global]
        // (all but `ldap server require strong auth`, added below). `ldb:nosync` skips fsync in Samba's databases (as Samba's own selftest
        // does): it makes provisioning ~3 times and loading 1,600 users ~10 times faster.
        let p = |rel: &str| root.join(rel).display().to_string();
        let options = [
            "server services = ldap".to_string(),
            "ldb:nosync = true".to_string(),
            "tls enabled = yes".to_string(),
            format!("tls keyfile = {}", p("tls/key.pem")),
            format!("tls certfile = {}", p("tls/cert.pem")),
            format!("tls cafile = {}", p("tls/ca.pem")),
            format!("pid directory = {}", p("run")),
            format!("log file = {}", p("log.%m")),
            format!("ncalrpc dir = {}", p("ncalrpc")),
            format!("winbindd socket directory = {}", p("winbindd")),
            "interfaces = lo".to_string(),
            "bind interfaces only = yes".to_string(),
        ];
        let mut provision = Command::new(tool("samba-tool"));
        provision
            .args(["domain", "provision"])
            .arg(format!("--realm={REALM}"))
            .arg(format!("--domain={DOMAIN}"))
            .args(["--server-role=dc", "--dns-backend=NONE"])
            .arg(format!("--adminpass={ADMIN_PASSWORD}"))
            .arg(format!("--targetdir={}", root.display()));
        for o in &options {
            provision.arg(format!("--option={o}"));
        }
        let t0 = Instant::now();
        run_limited(&mut provision, PROVISION_LIMIT, &root.join("provision.log"));
        let provision_time = t0.elapsed();
        let conf = root.join("etc/smb.conf");
        let text = std::fs::read_to_string(&conf)
            .unwrap_or_else(|e| panic!("provisioning wrote no {}: {e}", conf.display()));
        assert!(
            text.contains("server services = ldap"),
            "{} lacks the options given to provision:\n{text}",
            conf.display()
        );
        // samba-tool 4.17 leaves this option out of the file it writes; plain simple binds
        // on ldap:// need it.
        let text = text.replacen(
            "[global]\n",
            "[global]\n\tldap server require strong auth = no\n",
            1,
        );
        assert!(
            text.contains("require strong auth = no"),
            "no [global] in:\n{text}"
        );
        std::fs::write(&conf, text).unwrap();
        std::fs::create_dir_all(root.join("run")).unwrap();

        let log = std::fs::File::create(root.join("samba.out")).unwrap();
        let t1 = Instant::now();
        let mut child = Command::new(tool("samba"))
            .arg("-s")
            .arg(&conf)
            .args(["-i", "-M", "single"])
            .arg(format!("--maximum-runtime={MAX_RUNTIME_SECS}"))
            .stdin(Stdio::piped())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start samba: {e}"));
        let stdin = child.stdin.take();
        let mut dc = SambaDc {
            dir,
            child: Some(child),
            stdin,
            provision_time,
            start_time: Duration::ZERO,
        };
        dc.wait_ready(t1);
        dc
    }

    /// Polls with an ldapsearch of the base entry until samba answers, it exits, or
    /// [`START_LIMIT`] passes.
    fn wait_ready(&mut self, t1: Instant) {
        let deadline = t1 + START_LIMIT;
        let mut delay = Duration::from_millis(50);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "samba exited at start ({status})\n--- samba output\n{}",
                    self.samba_output()
                );
            }
            let out = self
                .ldap_cmd("ldapsearch")
                .args(["-b", BASE_DN, "-s", "base", "(objectClass=*)", "dn"])
                .output()
                .expect("run ldapsearch");
            if out.status.success() {
                self.start_time = t1.elapsed();
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "samba did not answer on {LDAP_URL} within {START_LIMIT:?}; last ldapsearch: \
                     {}\n--- samba output\n{}",
                    String::from_utf8_lossy(&out.stderr),
                    self.samba_output()
                );
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate that signed the server's certificate (for `ca_file`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir().join("tls/ca.pem")
    }

    /// What samba printed so far (its log goes to stdout with `-i`).
    pub fn samba_output(&self) -> String {
        let text = std::fs::read_to_string(self.dir().join("samba.out")).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(60).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// An ldap-utils command bound as the administrator over plain LDAP.
    pub fn ldap_cmd(&self, name: &str) -> Command {
        let mut c = Command::new(tool(name));
        c.args(["-x", "-H", LDAP_URL, "-D", BIND_DN, "-w", ADMIN_PASSWORD])
            .env("LDAPTLS_REQCERT", "never")
            .env_remove("LDAPCONF")
            .env_remove("LDAPRC")
            .stdin(Stdio::null());
        c
    }

    /// Checks that `url` (ldaps:// or ldap:// with `starttls`) answers a search with a
    /// certificate that verifies against [`Self::ca_file`] for 127.0.0.1; panics otherwise.
    pub fn check_tls(&self, url: &str, starttls: bool) {
        let mut c = Command::new(tool("ldapsearch"));
        c.args(["-x", "-H", url, "-D", BIND_DN, "-w", ADMIN_PASSWORD])
            .args(["-b", BASE_DN, "-s", "base", "(objectClass=*)", "dn"])
            .env("LDAPTLS_CACERT", self.ca_file())
            .env("LDAPTLS_REQCERT", "demand")
            .stdin(Stdio::null());
        if starttls {
            c.arg("-ZZ");
        }
        run(&mut c, &format!("ldapsearch over TLS to {url}"));
    }

    fn ldif_file(&self, ldif: &str) -> PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self.dir().join(format!("change-{n}.ldif"));
        std::fs::write(&path, ldif).unwrap();
        path
    }

    /// `ldapadd` of an LDIF text; panics with ldapadd's message on any error.
    pub fn add(&self, ldif: &str) {
        let f = self.ldif_file(ldif);
        run(
            self.ldap_cmd("ldapadd").arg("-f").arg(&f),
            &format!("ldapadd {}", f.display()),
        );
    }

    /// `ldapmodify` of an LDIF text with `changetype` records.
    pub fn modify(&self, ldif: &str) {
        let f = self.ldif_file(ldif);
        run(
            self.ldap_cmd("ldapmodify").arg("-f").arg(&f),
            &format!("ldapmodify {}", f.display()),
        );
    }

    /// `ldapdelete` of entries by DN.
    pub fn delete(&self, dns: &[&str]) {
        run(self.ldap_cmd("ldapdelete").args(dns), "ldapdelete");
    }

    /// Subtree search; returns the LDIF (unwrapped lines, no comments).
    pub fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> String {
        let out = run(
            self.ldap_cmd("ldapsearch")
                .args(["-LLL", "-o", "ldif-wrap=no", "-E", "pr=1000/noprompt"])
                .args(["-b", base, filter])
                .args(attrs),
            &format!("ldapsearch -b {base} {filter}"),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// How many entries below `base` match `filter`.
    pub fn count(&self, base: &str, filter: &str) -> usize {
        self.search(base, filter, &["1.1"])
            .lines()
            .filter(|l| l.starts_with("dn: ") || l.starts_with("dn:: "))
            .count()
    }

    /// How many entries below `base` match `filter` with AD's Show Deleted control
    /// (1.2.840.113556.1.4.417), which makes deleted objects (tombstones) visible.
    pub fn count_with_deleted(&self, base: &str, filter: &str) -> usize {
        let out = run(
            self.ldap_cmd("ldapsearch")
                .args([
                    "-LLL",
                    "-o",
                    "ldif-wrap=no",
                    "-E",
                    "!1.2.840.113556.1.4.417",
                ])
                .args(["-b", base, filter, "1.1"]),
            &format!("ldapsearch (show deleted) -b {base} {filter}"),
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("dn: ") || l.starts_with("dn:: "))
            .count()
    }

    /// The values of `attr` (plain text values only) of the entry at `dn`.
    pub fn values(&self, dn: &str, attr: &str) -> Vec<String> {
        let out = run(
            self.ldap_cmd("ldapsearch")
                .args(["-LLL", "-o", "ldif-wrap=no", "-s", "base", "-b", dn])
                .args(["(objectClass=*)", attr]),
            &format!("ldapsearch -b {dn} {attr}"),
        );
        let prefix = format!("{}: ", attr.to_lowercase());
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.to_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].to_string())
            .collect()
    }

    /// Stops samba: closes its stdin (samba `-i` then terminates), waits up to 30 s, kills
    /// its process group if it is still running, and waits until no port of [`PORTS`]
    /// answers.
    /// Returns an error text instead of panicking (it also runs from `drop`).
    pub fn stop(&mut self) -> Result<(), String> {
        drop(self.stdin.take());
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut problems = Vec::new();
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Ok(None) | Err(_) => {
                    problems.push("samba did not end within 30 s of stdin closing; killed".into());
                    kill_group(child.id());
                    let _ = child.wait();
                    break;
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(p) = PORTS.iter().find(|p| port_open(**p)) {
            if Instant::now() >= deadline {
                problems.push(format!("port {p} still answers after samba ended"));
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

impl Drop for SambaDc {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("samba clean-up: {e}");
        }
    }
}

/// SIGKILL to the process group `pgid` (samba was spawned as a group leader); errors ignored
/// (the group is usually gone already).
fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Runs `cmd` with output to `log`, killing it after `limit`; panics with the log's tail
/// when it fails or overruns.
fn run_limited(cmd: &mut Command, limit: Duration, log: &Path) {
    let f = std::fs::File::create(log).unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() >= deadline {
            kill_group(child.id());
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if status.is_some_and(|s| s.success()) {
        return;
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(40).collect();
    panic!(
        "{cmd:?} {}\n--- last output\n{}",
        match status {
            Some(s) => format!("failed ({s})"),
            None => format!("did not finish within {limit:?}"),
        },
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}

/// A test CA and a server certificate for `localhost` and `127.0.0.1` signed by it, in `dir`
/// (`ca.pem`, `cert.pem`, `key.pem`).
pub fn make_certs(dir: &Path) {
    let openssl = tool("openssl");
    let ossl = |args: &[&str], what: &str| {
        run(Command::new(&openssl).current_dir(dir).args(args), what);
    };
    ossl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=roster test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        "openssl: test CA",
    );
    ossl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
        "openssl: server key",
    );
    let mut ext = std::fs::File::create(dir.join("server.ext")).unwrap();
    ext.write_all(
        b"basicConstraints=critical,CA:FALSE\n\
          keyUsage=critical,digitalSignature,keyEncipherment\n\
          extendedKeyUsage=serverAuth\n\
          subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    drop(ext);
    ossl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "cert.pem",
            "-extfile",
            "server.ext",
        ],
        "openssl: server certificate",
    );
    // Samba refuses a key file that others can read.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("key.pem"), std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Escapes a value for a DN component (RFC 4514) — enough for the test data's names.
pub fn dn_escape(v: &str) -> String {
    let mut out = String::new();
    for (i, c) in v.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(c)
            }
            '#' | ' ' if i == 0 => {
                out.push('\\');
                out.push(c)
            }
            c => out.push(c),
        }
    }
    out
}
