//! A throwaway PostgreSQL server (Debian's `postgresql`) shared by one test binary: `initdb`
//! in a temp dir, then `postgres` listening only on a unix socket in that dir, each test in
//! a database of its own. As root (CI) the server runs as the package's `postgres` account,
//! since PostgreSQL refuses root. It stops when the test binary exits: a shell holds it and
//! stops it when its standard input, a pipe from this process, closes. A server that cannot
//! start fails the test; it never skips.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub struct Postgres {
    dir: PathBuf,
    /// The loopback port of a TLS server ([`Postgres::start_tls`]).
    pub port: Option<u16>,
    // Held open for the life of the process; its end stops the server.
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

/// The suite's server, started on first use.
pub fn server() -> &'static Postgres {
    static PG: OnceLock<Postgres> = OnceLock::new();
    PG.get_or_init(Postgres::start)
}

impl Postgres {
    fn start() -> Postgres {
        Postgres::launch(false)
    }

    /// A server of its own that also listens on a loopback port, where it accepts only TLS
    /// (`hostssl` in pg_hba.conf), with a certificate for `localhost` from a CA made here;
    /// the CA's PEM is [`Postgres::ca_file`]. Stopped when the value drops, or with the
    /// test binary.
    pub fn start_tls() -> Postgres {
        Postgres::launch(true)
    }

    /// The CA of a TLS server.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The URL of database `db` over TCP on a TLS server's port, with `params` (such as
    /// `sslmode=verify-full`).
    pub fn tcp_url(&self, db: &str, params: &str) -> String {
        let port = self.port.expect("a TLS server");
        format!("postgres://roster@localhost:{port}/{db}?{params}")
    }

    fn launch(tls: bool) -> Postgres {
        let bin = bin_dir();
        // Under /tmp, whatever TMPDIR says: the postgres account must reach it, and the
        // socket's path must stay under the 107 bytes a unix socket name allows.
        let dir = tempfile::Builder::new()
            .prefix("roster-pg-")
            .tempdir_in("/tmp")
            .expect("temp dir")
            .keep();
        let data = dir.join("data");
        let root = is_root();
        if root {
            chown_postgres(&dir);
        }
        let as_owner = |program: PathBuf| {
            if root {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(program);
                c
            } else {
                Command::new(program)
            }
        };
        let out = as_owner(bin.join("initdb"))
            .args([
                "-U",
                "roster",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .env("LC_ALL", "C.UTF-8")
            .output()
            .unwrap_or_else(|e| panic!("cannot run initdb: {e} (run `make setup`)"));
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut listen = String::from("-c listen_addresses=");
        let mut port = None;
        if tls {
            let p = super::slapd::free_port();
            // ca.pem, cert.pem and key.pem (owner-only, as PostgreSQL demands) in `dir`.
            super::samba::make_certs(&dir);
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
            )
            .unwrap();
            if root {
                chown_postgres(&dir);
            }
            listen = format!(
                "-c listen_addresses=localhost -p {p} -c ssl=on \
                 -c ssl_cert_file={d}/cert.pem -c ssl_key_file={d}/key.pem",
                d = dir.display()
            );
            port = Some(p);
        }
        let log = dir.join("postgres.log");
        let script = format!(
            "{postgres} -D {data} -k {dir} {listen} -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off > {log} 2>&1 & \
             pid=$!; cat > /dev/null; kill -INT $pid; wait $pid; rm -rf {dir}",
            postgres = bin.join("postgres").display(),
            data = data.display(),
            dir = dir.display(),
            log = log.display(),
        );
        let mut child = as_owner(PathBuf::from("/bin/sh"))
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start postgres: {e}"));
        let stdin = child.stdin.take().unwrap();
        let pg = Postgres {
            dir,
            port,
            _stdin: Mutex::new(stdin),
            _child: Mutex::new(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let err = match postgres::Client::connect(&pg.url("postgres"), postgres::NoTls) {
                Ok(_) => break,
                Err(e) => e,
            };
            if let Ok(Some(status)) = pg._child.lock().unwrap().try_wait() {
                panic!("postgres exited at start ({status}): {}", pg.log());
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not accept connections within 30 s ({err:?}): {}",
                pg.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        pg
    }

    fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join("postgres.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// The socket directory.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The URL of database `db` as the superuser `roster`, on the unix socket.
    pub fn url(&self, db: &str) -> String {
        let host = self.dir.display().to_string().replace('/', "%2F");
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        format!("postgres://roster@{host}{port}/{db}")
    }

    /// A new, empty database; its URL.
    pub fn new_database(&self) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        self.client("postgres")
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        self.url(&name)
    }

    /// A client of database `db` (by URL, as `new_database` gives).
    pub fn client(&self, db: &str) -> postgres::Client {
        let url = if db.starts_with("postgres://") {
            db.to_string()
        } else {
            self.url(db)
        };
        postgres::Client::connect(&url, postgres::NoTls).expect("connect to the test server")
    }
}

/// The server programs: on PATH, else Debian's newest /usr/lib/postgresql/N/bin.
fn bin_dir() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(d) = std::env::split_paths(&path).find(|d| d.join("initdb").is_file()) {
        // /usr/local/bin may hold only symlinks: the real directory has `postgres` too.
        if d.join("postgres").is_file() {
            return d;
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b).unwrap_or_else(|| {
        panic!("PostgreSQL is not installed: run `make setup` (Debian package postgresql)")
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn chown_postgres(dir: &Path) {
    let ok = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "cannot hand {} to the postgres account (run `make setup`: Debian package postgresql)",
        dir.display()
    );
}
