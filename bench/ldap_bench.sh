#!/usr/bin/env bash
# LDAP benchmark: roster's ldap connector against `ldapsearch` paging through the same slapd.
#
#   bash bench/ldap_bench.sh              # 100,000 users
#   USERS=20000 bash bench/ldap_bench.sh  # smaller
#
# Loads USERS inetOrgPerson entries (and 100 groupOfNames, each user in one) into a throwaway
# slapd on loopback, then measures with /usr/bin/time (wall seconds and peak RSS):
#   (a) ldapsearch -E pr=1000/noprompt dumping the same users and groups with the same
#       attributes as roster reads them: the fetch floor;
#   (b) roster's initial sync into a fresh database;
#   (c) roster's no-change resync (forced full: full_sync_every = "0s");
#   (a2) SQLite alone storing what roster stored, set-wise: the storage floor;
#   (d) a plain script (bench/ldap_plain.py) paging through ldapsearch and upserting into
#       SQLite, initial and again.
# Targets: b <= 1.3 x max(a, a2), c <= 1.2 x a, roster >= 5 x faster than (d), RSS <= 200 MB.
# With USERS=1000000 it shows that RSS stays flat (target < 300 MB).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/common.sh
source "$root/bench/common.sh"
users=${USERS:-100000}
target_dir=${CARGO_TARGET_DIR:-$root/target}
out=$target_dir/bench/ldap
roster=${ROSTER:-$target_dir/release/roster}
port=${PORT:-38389}
suffix="dc=example,dc=test"
rootdn="cn=admin,$suffix"
pw="bench-pw"
url="ldap://127.0.0.1:$port"

sbin() { command -v "$1" || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } || true; }
slapd=$(sbin slapd)
slapadd=$(sbin slapadd)
for tool in "$slapd" "$slapadd" ldapsearch /usr/bin/time awk; do
    [ -n "$tool" ] && command -v "$tool" >/dev/null || {
        echo "missing slapd, slapadd, ldapsearch or /usr/bin/time: run 'make setup-bench'" >&2
        exit 2
    }
done

if [ -z "${ROSTER:-}" ]; then
    echo "== building roster (release)"
    cargo build --release -p roster
fi

rm -rf "$out"
mkdir -p "$out/db"
cat > "$out/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $out/slapd.pid
argsfile $out/slapd.args
database mdb
maxsize 4294967296
suffix "$suffix"
rootdn "$rootdn"
rootpw $pw
directory $out/db
index objectClass eq
CONF

echo "== generating and loading $users users"
awk -v n="$users" -v s="$suffix" 'BEGIN {
    printf "dn: %s\nobjectClass: dcObject\nobjectClass: organization\no: Bench\ndc: example\n\n", s
    printf "dn: ou=people,%s\nobjectClass: organizationalUnit\nou: people\n\n", s
    printf "dn: ou=groups,%s\nobjectClass: organizationalUnit\nou: groups\n\n", s
    for (i = 0; i < n; i++)
        printf "dn: uid=user%07d,ou=people,%s\nobjectClass: inetOrgPerson\nuid: user%07d\ncn: User Number %d\ngivenName: User\nsn: Number %d\nmail: user%07d@example.com\nemployeeNumber: P%07d\n\n", i, s, i, i, i, i, i
    for (g = 0; g < 100; g++) {
        printf "dn: cn=team%02d,ou=groups,%s\nobjectClass: groupOfNames\ncn: team%02d\n", g, s, g
        for (i = g; i < n; i += 100)
            printf "member: uid=user%07d,ou=people,%s\n", i, s
        printf "\n"
    }
}' > "$out/data.ldif"
"$slapadd" -q -f "$out/slapd.conf" -l "$out/data.ldif"

"$slapd" -f "$out/slapd.conf" -h "$url/" -d 0 > "$out/slapd.log" 2>&1 &
slapd_pid=$!
trap 'kill $slapd_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    ldapsearch -x -H "$url" -b "" -s base >/dev/null 2>&1 && break
    sleep 0.1
done


# The reference reads what roster's openldap profile reads: the users with the profile's
# attributes and the groups with their members, from the whole suffix, in pages of 1000.
user_filter="(|(objectClass=inetOrgPerson)(objectClass=posixAccount))"
user_attrs="entryUUID uid cn givenName sn displayName mail employeeNumber mobile telephoneNumber preferredLanguage departmentNumber title memberOf"
group_filter="(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))"
group_attrs="cn member uniqueMember memberUid entryUUID"
cat > "$out/fetch.sh" <<SH
set -eu
ldapsearch -x -LLL -H "$url" -D "$rootdn" -w "$pw" -b "$suffix" -E pr=1000/noprompt "$group_filter" $group_attrs
ldapsearch -x -LLL -H "$url" -D "$rootdn" -w "$pw" -b "$suffix" -E pr=1000/noprompt "$user_filter" $user_attrs
SH
echo "== (a) ldapsearch, paged (1000), the same entries and attributes as roster"
run_timed ldapsearch bash "$out/fetch.sh"
a_secs=$SECS
echo "   ${a_secs}s, $(grep -c '^dn:' "$out/ldapsearch.out") entries"

cat > "$out/roster.toml" <<TOML
database = "bench.db"
[sources.dir]
plugin = "ldap"
timeout = "300s"
max_deletions = "100%"
[sources.dir.config]
profile = "openldap"
url = "$url"
bind_dn = "$rootdn"
password = { env = "BENCH_LDAP_PW" }
base_dn = "$suffix"
full_sync_every = "0s"
TOML
export BENCH_LDAP_PW=$pw
# Warm the compile cache: the first run of a component compiles it.
"$roster" --config "$out/roster.toml" plugin inspect ldap > /dev/null

initial_and_resync "$roster" "$out/roster.toml"
pg_side_stored "$roster" "$out/roster.toml" ldap "$out/bench.db"

# (a2) as in the CSV benchmark: SQLite alone storing what roster stored, in roster's schema,
# set-wise in one transaction: users with their record, username and personal number,
# links, a run event each, the 100 groups and one membership per user.
storage_floor "$out/bench.db" <<SQL
BEGIN;
CREATE TEMP TABLE u AS WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $users)
  SELECT i + 1 AS id, printf('user%07d', i) AS uid, 'User Number ' || i AS cn,
         printf('user%07d@example.com', i) AS mail, printf('P%07d', i) AS pn, printf('team%02d', i % 100) AS team FROM n;
INSERT INTO sources(id, name) VALUES (1, 'dir');
INSERT INTO runs(id, source, status, started) VALUES (1, 'dir', 'ok', 'now');
INSERT INTO users(id, username, full_name, email, personal_number, active, source_id, record, hash, created_at, updated_at)
  SELECT id, uid, cn, mail, pn, 1, 1,
         json_object('username', uid, 'full_name', cn, 'email', mail, 'personal_number', pn,
                     'aliases', json_array(), 'cards', json_array(), 'pins', json_array(), 'groups', json_array(team),
                     'language', NULL, 'phone', NULL, 'notes', NULL, 'storage', NULL, 'active', json('true')),
         random(), strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
  FROM temp.u;
INSERT INTO names(name, user_id, alias) SELECT uid, id, 0 FROM temp.u ORDER BY 1;
INSERT INTO groups(path, name, source_id) SELECT DISTINCT team, team, 1 FROM temp.u ORDER BY 1;
INSERT INTO memberships(group_id, user_id, source_id)
  SELECT g.id, u.id, 1 FROM temp.u u JOIN groups g ON g.path = u.team ORDER BY g.id, u.id;
INSERT INTO links(source_id, anchor, user_id, raw_hash) SELECT 1, printf('%08x-0000-4000-8000-%012x', id - 1, id - 1), id, random() FROM temp.u ORDER BY 2;
INSERT INTO run_events(run_id, seq, entry, action) SELECT 1, id, 'uid=' || uid || ',ou=people,$suffix', 'created' FROM temp.u;
COMMIT;
SQL

# (d) The plain script an admin might write instead: page through ldapsearch's LDIF and
# upsert users, groups and memberships into SQLite in one transaction (bench/ldap_plain.py),
# run twice like roster: into an empty database, then again with nothing changed.
echo "== (d) a plain script: ldapsearch | python3 upserting into SQLite"
rm -f "$out/plain.db"
run_timed plain python3 "$root/bench/ldap_plain.py" "$out/plain.db" "$url" "$rootdn" "$pw" "$suffix"
d_secs=$SECS
run_timed plain2 python3 "$root/bench/ldap_plain.py" "$out/plain.db" "$url" "$rootdn" "$pw" "$suffix"
d2_secs=$SECS
echo "   ${d_secs}s initial, ${d2_secs}s again: $(cat "$out/plain.out")"

rss=$(( (b_rss > c_rss ? b_rss : c_rss) / 1024 ))
echo "== results ($users users)"
printf '  %-36s %8ss\n' "(a) ldapsearch, paged" "$a_secs"
printf '  %-36s %8ss\n' "(a2) sqlite3 into roster's schema" "$a2_secs"
max_a=$(awk -v x="$a_secs" -v y="$a2_secs" 'BEGIN { print (x > y) ? x : y }')
printf '  %-36s %8ss  %s x max(a, a2)   (target <= 1.3)\n' "(b) roster initial sync" "$b_secs" "$(ratio "$b_secs" "$max_a")"
printf '  %-36s %8ss  %s x (a)   (target <= 1.2)\n' "(c) roster no-change resync" "$c_secs" "$(ratio "$c_secs" "$a_secs")"
printf '  %-36s %8ss  roster %s x faster initially, %s x on the resync   (target >= 5)\n' "(d) plain script, initial / again" "$d_secs / $d2_secs" "$(ratio "$d_secs" "$b_secs")" "$(ratio "$d2_secs" "$c_secs")"
printf '  %-36s %8s MB (target <= 200 MB)\n' "roster peak RSS" "$rss"
pg_report "(a)" "$a_secs"
