"""The plain script roster's LDAP benchmark compares against: what an admin might write.

Pages through `ldapsearch` output (LDIF) for the users and the groups, and upserts users,
groups and memberships into SQLite in one transaction.

    python3 bench/ldap_plain.py DB URL BIND_DN PASSWORD BASE
"""

import base64
import sqlite3
import subprocess
import sys

USERS = "(|(objectClass=inetOrgPerson)(objectClass=posixAccount))"
GROUPS = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))"


def entries(url, dn, pw, base, flt, attrs):
    """Yields each entry of a paged ldapsearch as {attribute: [values]} with 'dn'."""
    cmd = ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", url, "-D", dn, "-w", pw,
           "-b", base, "-E", "pr=1000/noprompt", flt] + attrs
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    entry = {}
    for line in proc.stdout:
        line = line.rstrip("\n")
        if not line:
            if entry:
                yield entry
            entry = {}
            continue
        if line.startswith("#") or ":" not in line:
            continue
        name, _, value = line.partition(":")
        if value.startswith(":"):
            value = base64.b64decode(value[1:].strip()).decode("utf-8", "replace")
        else:
            value = value.strip()
        entry.setdefault(name.lower(), []).append(value)
    if entry:
        yield entry
    if proc.wait() != 0:
        sys.exit(f"ldapsearch failed with {proc.returncode}")


def main():
    db, url, dn, pw, base = sys.argv[1:6]
    con = sqlite3.connect(db)
    con.executescript("""
        PRAGMA journal_mode=WAL;
        CREATE TABLE IF NOT EXISTS users(anchor TEXT PRIMARY KEY, username TEXT UNIQUE,
            full_name TEXT, email TEXT, personal_number TEXT, dn TEXT);
        CREATE TABLE IF NOT EXISTS groups(dn TEXT PRIMARY KEY, name TEXT);
        CREATE TABLE IF NOT EXISTS memberships(group_dn TEXT, user_anchor TEXT,
            PRIMARY KEY(group_dn, user_anchor));
    """)
    first = lambda e, a: (e.get(a) or [None])[0]
    with con:
        by_dn = {}
        for e in entries(url, dn, pw, base, USERS,
                         ["entryUUID", "uid", "cn", "mail", "employeeNumber"]):
            anchor = first(e, "entryuuid")
            by_dn[first(e, "dn").lower()] = anchor
            con.execute(
                "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(anchor) DO UPDATE SET "
                "username = excluded.username, full_name = excluded.full_name, "
                "email = excluded.email, personal_number = excluded.personal_number, "
                "dn = excluded.dn",
                (anchor, first(e, "uid"), first(e, "cn"), first(e, "mail"),
                 first(e, "employeenumber"), first(e, "dn")))
        con.execute("DELETE FROM memberships")
        for e in entries(url, dn, pw, base, GROUPS, ["cn", "member"]):
            gdn = first(e, "dn")
            con.execute("INSERT INTO groups VALUES (?, ?) ON CONFLICT(dn) DO UPDATE SET "
                        "name = excluded.name", (gdn, first(e, "cn")))
            con.executemany(
                "INSERT OR IGNORE INTO memberships VALUES (?, ?)",
                ((gdn, by_dn[m.lower()]) for m in e.get("member", []) if m.lower() in by_dn))
    users, = con.execute("SELECT count(*) FROM users").fetchone()
    members, = con.execute("SELECT count(*) FROM memberships").fetchone()
    print(f"{users} users, {members} memberships")


main()
