#!/usr/bin/env python3
"""SCIM queries at the SQL level on a 1,000,000-user database, until `roster serve` mounts
/scim/v2 and an HTTP benchmark replaces this. Builds target/bench/scim.db with roster's own
migrations (read from host/src/store/mod.rs) and times, one client, the statements
host/src/store/scim.rs makes for each filter (count(*) plus the page), with their plans.

    python3 bench/scim_sql.py            # USERS=200000 for a smaller database
"""
import os, random, re, sqlite3, time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = int(os.environ.get("USERS", "1000000"))
db = os.path.join(root, "target/bench/scim.db")
os.makedirs(os.path.dirname(db), exist_ok=True)
src = open(os.path.join(root, "host/src/store/mod.rs")).read()
block = src[src.index("const MIGRATIONS"):src.index("pub(crate) const NOW")]
if os.path.exists(db):
    os.remove(db)
c = sqlite3.connect(db)
c.execute("PRAGMA journal_mode=WAL")
for m in re.findall(r'r#"(.*?)"#', block, re.S):
    c.executescript(m)
t = time.time()
c.executescript(f"""
BEGIN;
INSERT INTO sources(id, name) VALUES (1, 'hr');
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < {N})
INSERT INTO users(id, username, full_name, email, personal_number, active, source_id, record, hash, created_at, updated_at)
SELECT i, 'user' || i, 'Given' || i || ' Family', 'user' || i || '@example.com', 'P' || i, 1, 1, '{{}}', i,
       '2026-01-01T00:00:00Z', strftime('%Y-%m-%dT%H:%M:%SZ', '2026-01-01', '+' || (i % 100000) || ' seconds') FROM n;
INSERT INTO names(name, user_id, alias) SELECT username, id, 0 FROM users;
INSERT INTO cards(card, user_id) SELECT printf('%08X', id), id FROM users;
INSERT INTO links(source_id, anchor, user_id) SELECT 1, 'a' || id, id FROM users;
INSERT INTO groups(id, path, name, source_id) VALUES (1, 'Staff', 'Staff', 1);
INSERT INTO memberships(group_id, user_id, source_id) SELECT 1, id, 1 FROM users WHERE id % 10 = 0;
COMMIT;
""")
print(f"built {N} users in {time.time() - t:.1f} s (sqlite {sqlite3.sqlite_version})")
c.close()

cols = re.search(r'const USER_COLUMNS: &str = "(.*?)";',
                 open(os.path.join(root, "host/src/store/scim.rs")).read(), re.S).group(1)
c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
c.execute("PRAGMA cache_size=-32000")


def bench(name, where, params, n, limit=1, offset=0):
    lat = []
    for _ in range(n):
        p = params()
        t = time.perf_counter()
        c.execute(f"SELECT count(*) FROM users u WHERE {where}", p).fetchone()
        c.execute(f"SELECT {cols} FROM users u WHERE {where} ORDER BY u.id LIMIT ? OFFSET ?",
                  p + [limit, offset]).fetchall()
        lat.append(time.perf_counter() - t)
    lat.sort()
    plan = [r[3] for r in c.execute(f"EXPLAIN QUERY PLAN SELECT u.id FROM users u WHERE {where}", p)]
    print(f"{name}: {n} requests, p50 {lat[n // 2] * 1000:.2f} ms, p99 {lat[max(0, int(n * 0.99) - 1)] * 1000:.2f} ms; {plan}")


pick = lambda: random.randint(1, N)
bench('userName eq "USERn"', "(u.username = ? COLLATE NOCASE)", lambda: [f"USER{pick()}"], 2000)
bench('externalId eq "an"', "u.id IN (SELECT fl.user_id FROM sources fls CROSS JOIN links fl "
      "ON fl.source_id = fls.id WHERE ((fl.anchor = ?)))", lambda: [f"a{pick()}"], 2000)
bench('emails.value eq', "(u.email IS NOT NULL AND (u.email IS NOT NULL AND (u.email = ? COLLATE NOCASE)))",
      lambda: [f"user{pick()}@example.com"], 2000)
bench("1,000-user page, startIndex 1", "1", lambda: [], 20, 1000, 0)
bench(f"1,000-user page, startIndex {N // 2 + 1}", "1", lambda: [], 10, 1000, N // 2)
