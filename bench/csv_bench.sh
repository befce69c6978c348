#!/usr/bin/env bash
# CSV import benchmark: roster against sqlite3's .import of the same file.
#
#   make bench                      (or: bash bench/csv_bench.sh)
#   ROWS=200000 bash bench/csv_bench.sh   smaller file
#   BENCH_STRICT=1 ...              exit 1 when a target is missed
#
# Measures, with /usr/bin/time (wall seconds and peak RSS):
#   (a) sqlite3: CREATE TABLE with a PRIMARY KEY, then `.import --skip 1` of the CSV;
#   (b) roster sync into a fresh database (initial import);
#   (c) roster sync again with the file unchanged (no-change resync).
# Targets: b/a <= 1.5, c/a <= 1.0, roster peak RSS <= 200 MB.
#
# The compiled CSV component is cached before (b) by a warm-up sync of a tiny file, so (b)
# measures the import, not the one-time compilation.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=bench/common.sh
source "$root/bench/common.sh"

rows=${ROWS:-1000000}
target_dir=${CARGO_TARGET_DIR:-$root/target}
out=$target_dir/bench
roster=$target_dir/release/roster
csv=$out/users-$rows.csv

for tool in sqlite3 /usr/bin/time awk; do
    command -v "$tool" >/dev/null || { echo "missing $tool: run 'make setup-bench'" >&2; exit 2; }
done
mkdir -p "$out"

echo "== building roster (release)"
cargo build --release -p roster

if [ ! -s "$csv" ]; then
    echo "== generating $csv ($rows rows)"
    awk -v n="$rows" 'BEGIN {
        print "username,full_name,email,personal_number,cards,groups"
        for (i = 0; i < n; i++)
            printf "user%07d,User Number %d,user%07d@example.com,P%07d,C%07d;D%07d,\"Dept%02d|Team%d,Site%d\"\n",
                i, i, i, i, i, i, i % 100, i % 10, i % 5
    }' > "$csv.tmp"
    mv "$csv.tmp" "$csv"
fi
echo "   $(wc -l < "$csv") lines, $(du -h "$csv" | cut -f1)"


# (a) the reference: sqlite3 .import into a table with a primary key.
echo "== (a) sqlite3 .import"
rm -f "$out/ref.db"
cat > "$out/ref.sql" <<SQL
CREATE TABLE u(username TEXT PRIMARY KEY, full_name TEXT, email TEXT, personal_number TEXT, cards TEXT, groups TEXT);
.mode csv
.import --skip 1 $csv u
SQL
run_timed sqlite sqlite3 "$out/ref.db" ".read $out/ref.sql"
a_secs=$SECS
ref_rows=$(sqlite3 "$out/ref.db" "select count(*) from u")
echo "   ${a_secs}s, $ref_rows rows"

# roster's config: one CSV source; every row is new, nothing is deleted.
work=$out/roster
rm -rf "$work"
mkdir -p "$work"
write_config() { # write_config FILE DATABASE CSV
    cat > "$1" <<TOML
database = "$2"

[sources.bench]
plugin = "csv"
max_deletions = "100%"
timeout = "600s"

[sources.bench.config]
path = "$3"
TOML
}
write_config "$work/roster.toml" bench.db "$csv"
# Warm the compile cache with a tiny file (same database directory, another database).
printf 'username\nwarmup\n' > "$work/warmup.csv"
write_config "$work/warmup.toml" warmup.db warmup.csv
"$roster" --config "$work/warmup.toml" sync > /dev/null

# (a2) For scale, not a target: what SQLite alone takes to store these users in roster's own
# schema, set-wise from (a)'s table in one transaction, as roster stores them (users with
# their record, usernames, 2 cards, 2 group memberships, links and a run event each).
storage_floor "$work/warmup.db" <<SQL
ATTACH '$out/ref.db' AS r;
BEGIN;
INSERT INTO sources(id, name) VALUES (1, 'bench');
INSERT INTO runs(id, source, status, started) VALUES (1, 'bench', 'ok', 'now');
INSERT INTO users(id, username, full_name, email, personal_number, active, source_id, record, hash, created_at, updated_at)
  SELECT rowid, username, full_name, email, personal_number, 1, 1,
         json_object('username', username, 'full_name', full_name, 'email', email,
                     'personal_number', personal_number, 'aliases', json_array(),
                     'cards', json_array(substr(cards, 1, instr(cards, ';') - 1), substr(cards, instr(cards, ';') + 1)),
                     'pins', json_array(), 'groups', json_array(substr(groups, 1, instr(groups, ',') - 1), substr(groups, instr(groups, ',') + 1)),
                     'language', NULL, 'phone', NULL, 'notes', NULL, 'storage', NULL, 'active', json('true')),
         random(), strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
  FROM r.u;
INSERT INTO names(name, user_id, alias) SELECT username, rowid, 0 FROM r.u ORDER BY username;
INSERT INTO cards(card, user_id)
  SELECT c, id FROM (SELECT substr(cards, 1, instr(cards, ';') - 1) AS c, rowid AS id FROM r.u
                     UNION ALL SELECT substr(cards, instr(cards, ';') + 1), rowid FROM r.u) ORDER BY c;
CREATE TEMP TABLE m AS
  SELECT substr(groups, 1, instr(groups, ',') - 1) AS path, rowid AS id FROM r.u
  UNION ALL SELECT substr(groups, instr(groups, ',') + 1), rowid FROM r.u;
INSERT INTO groups(path, name, source_id) SELECT DISTINCT path, path, 1 FROM temp.m ORDER BY path;
INSERT INTO memberships(group_id, user_id, source_id)
  SELECT g.id, m.id, 1 FROM temp.m m JOIN groups g ON g.path = m.path ORDER BY g.id, m.id;
INSERT INTO links(source_id, anchor, user_id, raw_hash) SELECT 1, username, rowid, random() FROM r.u ORDER BY username;
INSERT INTO run_events(run_id, seq, entry, action) SELECT 1, rowid, 'line ' || (rowid + 1), 'created' FROM r.u;
COMMIT;
SQL

initial_and_resync "$roster" "$work/roster.toml"

# PostgreSQL, side by side: (p) COPY of the CSV itself, as (a) is .import of it.
pg_side "$roster" "$work/roster.toml" csv "$csv" \
    "username TEXT, full_name TEXT, email TEXT, personal_number TEXT, cards TEXT, groups TEXT" true

# Report.
missed=0
peak_mb=$(( (b_rss > c_rss ? b_rss : c_rss) / 1024 ))

echo
echo "== results ($rows rows)"
printf '  %-34s %10ss\n' "(a) sqlite3 .import" "$a_secs"
printf '  %-34s %10ss  (%sx of (a); roster'"'"'s storage alone, for scale)\n' "(a2) sqlite3 into roster's schema" "$a2_secs" "$(ratio "$a2_secs" "$a_secs")"
printf '  %-34s %10ss\n' "(b) roster initial sync" "$b_secs"
printf '  %-34s %10ss\n' "(c) roster no-change resync" "$c_secs"
check "initial import ratio b/a" "$(ratio "$b_secs" "$a_secs")" 1.5 "x"
check "no-change resync ratio c/a" "$(ratio "$c_secs" "$a_secs")" 1.0 "x"
check "roster peak RSS" "$peak_mb" 200 " MB"
pg_report "(a)" "$a_secs"

if [ "${BENCH_STRICT:-0}" = 1 ] && [ "$missed" = 1 ]; then
    exit 1
fi
