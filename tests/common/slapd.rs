//! A throwaway OpenLDAP server (Debian's `slapd`) for the LDAP tests: a slapd.conf in a temp
//! dir (back_mdb, core/cosine/inetorgperson/nis schemas), data loaded offline with
//! `slapadd -q`, then `slapd -h ldap://127.0.0.1:PORT/` in the foreground, killed on drop.
//! A server that cannot start fails the test; it never skips.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SUFFIX: &str = "dc=example,dc=test";
pub const ROOT_DN: &str = "cn=admin,dc=example,dc=test";
pub const ROOT_PW: &str = "s3cret-Root";
pub const PEOPLE: &str = "ou=people,dc=example,dc=test";
pub const GROUPS: &str = "ou=groups,dc=example,dc=test";

pub struct Slapd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
    pub url: String,
}

impl Slapd {
    /// Loads `ldif` into a new database and starts slapd on a free port.
    pub fn start(ldif: &str) -> Slapd {
        Slapd::start_with(ldif, "", "")
    }

    /// RFC 4533 content synchronization: the syncprov overlay, with a session log (deletions
    /// are sent as entryUUIDs) or without (the server lists the entries still present).
    pub fn start_syncprov(ldif: &str, session_log: bool) -> Slapd {
        let log = if session_log {
            "syncprov-sessionlog 1000\n"
        } else {
            ""
        };
        Slapd::start_with(
            ldif,
            "moduleload syncprov\n",
            &format!("index entryUUID,entryCSN eq\noverlay syncprov\n{log}"),
        )
    }

    /// `modules` go after the mdb module, `database` at the end of the database section.
    fn start_with(ldif: &str, modules: &str, database: &str) -> Slapd {
        let dir = tempfile::Builder::new()
            .prefix("roster-slapd-")
            .tempdir()
            .expect("temp dir");
        let db = dir.path().join("db");
        std::fs::create_dir(&db).unwrap();
        let conf = dir.path().join("slapd.conf");
        let schema = |s: &str| format!("include /etc/ldap/schema/{s}.schema\n");
        let text = format!(
            "{}{}{}{}modulepath /usr/lib/ldap\nmoduleload back_mdb\n{modules}\
             pidfile {pid}\nargsfile {args}\n\
             database mdb\nmaxsize 1073741824\nsuffix \"{SUFFIX}\"\nrootdn \"{ROOT_DN}\"\n\
             rootpw {ROOT_PW}\ndirectory {db}\nindex objectClass eq\n{database}",
            schema("core"),
            schema("cosine"),
            schema("inetorgperson"),
            schema("nis"),
            pid = dir.path().join("slapd.pid").display(),
            args = dir.path().join("slapd.args").display(),
            db = db.display(),
        );
        std::fs::write(&conf, text).unwrap();
        let data = dir.path().join("data.ldif");
        std::fs::write(&data, ldif).unwrap();
        let out = Command::new(tool("slapadd"))
            .arg("-q")
            .arg("-f")
            .arg(&conf)
            .arg("-l")
            .arg(&data)
            .output()
            .unwrap_or_else(|e| panic!("cannot run slapadd: {e} (run `make setup`)"));
        assert!(
            out.status.success(),
            "slapadd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut s = Slapd {
            child: None,
            dir,
            port: 0,
            url: String::new(),
        };
        s.launch();
        s
    }

    /// Starts slapd on a free port and waits until it accepts connections.
    fn launch(&mut self) {
        let port = free_port();
        let url = format!("ldap://127.0.0.1:{port}/");
        let log = std::fs::File::create(self.dir.path().join("slapd.log")).unwrap();
        let mut child = Command::new(tool("slapd"))
            .arg("-f")
            .arg(self.conf())
            .arg("-h")
            .arg(&url)
            // Foreground, no debug output.
            .args(["-d", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start slapd: {e} (run `make setup`)"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "slapd exited at start ({status}): {}",
                    std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "slapd did not answer on port {port} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
        self.port = port;
        self.url = url;
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("slapd.conf")
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Applies an LDIF change set with `ldapmodify` as the root DN.
    pub fn modify(&self, ldif: &str) {
        let mut child = Command::new(tool("ldapmodify"))
            .args(["-x", "-H", &self.url, "-D", ROOT_DN, "-w", ROOT_PW])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run ldapmodify: {e} (run `make setup`)"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ldif.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "ldapmodify failed: {}\n{ldif}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The `[sources.NAME]` block of an OpenLDAP source on this server.
    pub fn source(&self, name: &str, options: &str, config: &str) -> String {
        format!(
            "[sources.{name}]\nplugin = \"ldap\"\nmax_deletions = \"100%\"\n{options}\n\
             [sources.{name}.config]\nurl = \"{url}\"\nbind_dn = \"{ROOT_DN}\"\n\
             password = \"{ROOT_PW}\"\nbase_dn = \"{SUFFIX}\"\nprofile = \"openldap\"\n{config}\n",
            url = self.url
        )
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A server tool by full path: on PATH, else in the sbin directories a non-root PATH lacks.
/// Missing is a failure that says how to install it.
pub fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is not installed: run `make setup` (Debian packages slapd, ldap-utils)")
        })
}

/// A free loopback port (the other throwaway servers use it too).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `attr: value`, or `attr:: base64` when the value is not plain ASCII (as LDIF needs).
pub fn ldif_line(out: &mut String, attr: &str, value: &str) {
    let safe =
        value.bytes().all(|b| (0x20..0x7f).contains(&b)) && !value.starts_with([' ', '<', ':']);
    if safe {
        let _ = writeln!(out, "{attr}: {value}");
    } else {
        let _ = writeln!(out, "{attr}:: {}", base64(value.as_bytes()));
    }
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                A[(n >> (18 - 6 * i)) as usize & 63] as char
            } else {
                '='
            });
        }
    }
    out
}

/// GeneralizedTime `minutes` after 2020-01-01 00:00 UTC (within January 2020), so loaded
/// entries have distinct, old change times and a delta reads only what a test changes.
pub fn old_time(minutes: u64) -> String {
    assert!(minutes < 31 * 1440, "stays within January");
    format!(
        "202001{:02}{:02}{:02}00Z",
        1 + minutes / 1440,
        minutes % 1440 / 60,
        minutes % 60
    )
}

/// A user of the standard directory.
pub struct Person {
    pub uid: Option<String>,
    pub cn: String,
    pub given: String,
    pub sn: String,
    pub mail: Option<String>,
    pub number: Option<String>,
}

impl Person {
    pub fn rdn(&self) -> String {
        match &self.uid {
            Some(u) => format!("uid={u}"),
            None => format!("cn={}", self.cn),
        }
    }

    pub fn dn(&self) -> String {
        format!("{},{PEOPLE}", self.rdn())
    }
}

/// The people of the standard directory: `user00001` … `user09997` plus three with
/// non-ASCII names (`zofie`, `jose`, `yamada`): 10,000 with a uid; and one entry without a
/// uid (`cn=No Uid`), which is a failed entry.
pub fn people() -> Vec<Person> {
    let mut v: Vec<Person> = (1..=9997)
        .map(|i| Person {
            uid: Some(format!("user{i:05}")),
            cn: format!("User {i:05}"),
            given: "User".into(),
            sn: format!("{i:05}"),
            mail: Some(format!("user{i:05}@example.test")),
            number: Some(format!("{}", 100000 + i)),
        })
        .collect();
    for (uid, given, sn) in [
        ("zofie", "Žofie", "Nováková"),
        ("jose", "José", "Ñúñez"),
        ("yamada", "太郎", "山田"),
    ] {
        v.push(Person {
            uid: Some(uid.into()),
            cn: format!("{given} {sn}"),
            given: given.into(),
            sn: sn.into(),
            mail: Some(format!("{uid}@example.test")),
            number: None,
        });
    }
    v.push(Person {
        uid: None,
        cn: "No Uid".into(),
        given: "No".into(),
        sn: "Uid".into(),
        mail: None,
        number: None,
    });
    v
}

/// The standard directory: [`people`], and groups:
/// - `cn=staff` (groupOfNames): user00001–user00010 and the group `cn=it`;
/// - `cn=it` (groupOfNames): user00011–user00020 and zofie;
/// - `cn=sales` (groupOfNames): user00021–user00030;
/// - `cn=ops` (posixGroup): memberUid user00031–user00035.
pub fn directory_ldif() -> String {
    let mut s = String::with_capacity(4 << 20);
    let mut minute = 0;
    let mut stamp = |s: &mut String| {
        minute += 1;
        ldif_line(s, "modifyTimestamp", &old_time(minute));
    };
    s.push_str(&format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n"
    ));
    stamp(&mut s);
    for ou in ["people", "groups"] {
        s.push_str(&format!(
            "\ndn: ou={ou},{SUFFIX}\nobjectClass: organizationalUnit\nou: {ou}\n"
        ));
        stamp(&mut s);
    }
    for p in people() {
        s.push('\n');
        ldif_line(&mut s, "dn", &p.dn());
        s.push_str("objectClass: inetOrgPerson\n");
        if let Some(u) = &p.uid {
            ldif_line(&mut s, "uid", u);
        }
        ldif_line(&mut s, "cn", &p.cn);
        ldif_line(&mut s, "givenName", &p.given);
        ldif_line(&mut s, "sn", &p.sn);
        if let Some(m) = &p.mail {
            ldif_line(&mut s, "mail", m);
        }
        if let Some(n) = &p.number {
            ldif_line(&mut s, "employeeNumber", n);
        }
        stamp(&mut s);
    }
    let users = |r: std::ops::RangeInclusive<u32>| -> Vec<String> {
        r.map(|i| format!("uid=user{i:05},{PEOPLE}")).collect()
    };
    let mut staff = users(1..=10);
    staff.push(format!("cn=it,{GROUPS}"));
    let mut it = users(11..=20);
    it.push(format!("uid=zofie,{PEOPLE}"));
    for (cn, members) in [("staff", staff), ("it", it), ("sales", users(21..=30))] {
        s.push_str(&format!(
            "\ndn: cn={cn},{GROUPS}\nobjectClass: groupOfNames\ncn: {cn}\n"
        ));
        for m in members {
            s.push_str(&format!("member: {m}\n"));
        }
        stamp(&mut s);
    }
    s.push_str(&format!(
        "\ndn: cn=ops,{GROUPS}\nobjectClass: posixGroup\ncn: ops\ngidNumber: 5000\n"
    ));
    for i in 31..=35 {
        s.push_str(&format!("memberUid: user{i:05}\n"));
    }
    stamp(&mut s);
    s
}
