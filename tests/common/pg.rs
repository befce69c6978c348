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
        let log = dir.join("postgres.log");
        let script = format!(
            "{postgres} -D {data} -k {dir} -c listen_addresses= -c fsync=off \
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
            _stdin: Mutex::new(stdin),
            _child: Mutex::new(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if postgres::Client::connect(&pg.url("postgres"), postgres::NoTls).is_ok() {
                break;
            }
            if let Ok(Some(status)) = pg._child.lock().unwrap().try_wait() {
                panic!("postgres exited at start ({status}): {}", pg.log());
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not accept connections within 30 s: {}",
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

    /// The URL of database `db` as the superuser `roster`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://roster@localhost/{db}?host={}",
            self.dir.display()
        )
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
        .arg("postgres:postgres")
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
