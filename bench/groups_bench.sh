#!/usr/bin/env bash
# Group benchmark: 100,000 groups and 1,000,000 memberships, against sqlite3's .import of the
# same memberships.
#
#   bash bench/groups_bench.sh                     (make bench runs it after the CSV benchmark)
#   USERS=20000 NGROUPS=20000 bash bench/groups_bench.sh  smaller ($GROUPS is bash's own)
#   ROSTER=path/to/roster bash bench/groups_bench.sh      that binary, no build
#
# The CSV: USERS users, each in PER_USER of NGROUPS groups (`groups` column). Groups are leaves
# `DeptNNN|GroupNNNNNN` under DEPTS departments; users come in blocks of PER_USER, and a block
# shares its PER_USER groups, so every group has PER_USER members.
# Measures, with /usr/bin/time (wall seconds and peak RSS):
#   (a) sqlite3: `.import` of the memberships (username, group) into a table with a primary key;
#   (b) roster sync into a fresh database (initial import: users, groups, memberships);
#   (c) roster resync with the first half of the users gone: they are deactivated and the
#       groups only they were in (half the groups, half the departments) are pruned.
# (c) also reports the pruning statement alone (roster's debug log).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=bench/common.sh
source "$root/bench/common.sh"

users=${USERS:-100000}
groups=${NGROUPS:-100000}
per=${PER_USER:-10}
depts=${DEPTS:-100}
target_dir=${CARGO_TARGET_DIR:-$root/target}
out=$target_dir/bench/groups
roster=${ROSTER:-$target_dir/release/roster}
tag=$users-$groups-$per
full=$out/users-$tag.csv
half=$out/half-$tag.csv
members=$out/memberships-$tag.csv

for tool in sqlite3 /usr/bin/time awk; do
    command -v "$tool" >/dev/null || { echo "missing $tool: run 'make setup-bench'" >&2; exit 2; }
done
mkdir -p "$out"

if [ -z "${ROSTER:-}" ]; then
    echo "== building roster (release)"
    cargo build --release -p roster
fi

if [ ! -s "$full" ]; then
    echo "== generating $full"
    awk -v n="$users" -v g="$groups" -v per="$per" -v d="$depts" -v full="$full.tmp" \
        -v half="$half.tmp" -v members="$members.tmp" 'BEGIN {
        print "username,groups" > full
        print "username,groups" > half
        print "username,grp" > members
        span = int((g + d - 1) / d)
        for (i = 0; i < n; i++) {
            base = int(i / per) * per
            cell = ""
            for (k = 0; k < per; k++) {
                x = (base + k) % g
                path = sprintf("Dept%03d|Group%06d", int(x / span), x)
                cell = cell (k ? "," : "") path
                printf "user%07d,%s\n", i, path > members
            }
            line = sprintf("user%07d,\"%s\"", i, cell)
            print line > full
            if (i >= n / 2) print line > half
        }
    }'
    mv "$members.tmp" "$members"
    mv "$half.tmp" "$half"
    mv "$full.tmp" "$full"
fi
echo "   $(($(wc -l < "$full") - 1)) users, $(($(wc -l < "$members") - 1)) memberships, $(du -h "$full" | cut -f1)"

count() { grep -o "\"$1\": *[0-9]*" "$2" | grep -o '[0-9]*$' || echo "?"; }

echo "== (a) sqlite3 .import of the memberships"
rm -f "$out/ref.db"
cat > "$out/ref.sql" <<SQL
CREATE TABLE m(username TEXT NOT NULL, grp TEXT NOT NULL, PRIMARY KEY(grp, username)) WITHOUT ROWID;
.mode csv
.import --skip 1 $members m
SQL
run_timed sqlite sqlite3 "$out/ref.db" ".read $out/ref.sql"
a_secs=$SECS
echo "   ${a_secs}s, $(sqlite3 "$out/ref.db" "select count(*) from m") rows"

work=$out/roster
rm -rf "$work"
mkdir -p "$work"
write_config() { # write_config FILE DATABASE CSV
    cat > "$1" <<TOML
database = "$2"

[sources.bench]
plugin = "csv"
max_deletions = "100%"
timeout = "3600s"

[sources.bench.config]
path = "$3"
TOML
}
write_config "$work/roster.toml" bench.db "$full"
write_config "$work/half.toml" bench.db "$half"
# Warm the compile cache with a tiny file (same database directory, another database).
printf 'username\nwarmup\n' > "$work/warmup.csv"
write_config "$work/warmup.toml" warmup.db warmup.csv
"$roster" --config "$work/warmup.toml" sync > /dev/null

echo "== (b) roster initial sync"
run_timed initial "$roster" --config "$work/roster.toml" sync --json
b_secs=$SECS b_rss=$RSS_KB
b_groups=$(sqlite3 "$work/bench.db" "select count(*) from groups")
b_members=$(sqlite3 "$work/bench.db" "select count(*) from memberships")
echo "   ${b_secs}s, created $(count created "$out/initial.out"), $b_groups groups, $b_members memberships, peak RSS $((b_rss / 1024)) MB"

echo "== (c) roster resync, half the users gone (their groups pruned)"
run_timed resync env RUST_LOG=roster=debug "$roster" --config "$work/half.toml" sync --json
c_secs=$SECS c_rss=$RSS_KB
c_groups=$(sqlite3 "$work/bench.db" "select count(*) from groups")
# The debug line gives a Rust duration (`2.1s`, `850.3ms`, `95µs`): in seconds.
prune=$({ grep -o 'groups pruned in .*' "$out/resync.err" || true; } | tail -n 1 | awk '{
    d = $4; u = 1
    if (d ~ /ms$/) u = 1e-3; else if (d ~ /µs$/) u = 1e-6; else if (d ~ /ns$/) u = 1e-9
    gsub(/[^0-9.]/, "", d); printf "%.2f", d * u }')
prune=${prune:-?}
echo "   ${c_secs}s, deactivated $(count deactivated "$out/resync.out"), $c_groups groups left (pruning ${prune}s), peak RSS $((c_rss / 1024)) MB"

echo
echo "== results ($users users, $b_groups groups, $b_members memberships)"
printf '  %-44s %8ss\n' "(a) sqlite3 .import of the memberships" "$a_secs"
printf '  %-44s %8ss  %sx (a)\n' "(b) roster initial sync" "$b_secs" "$(ratio "$b_secs" "$a_secs")"
printf '  %-44s %8ss  %sx (a)\n' "(c) roster resync, $((b_groups - c_groups)) groups pruned" "$c_secs" "$(ratio "$c_secs" "$a_secs")"
printf '  %-44s %8ss  %sx (a)\n' "    of which the pruning" "$prune" "$(ratio "$prune" "$a_secs")"
printf '  %-44s %8s MB\n' "roster peak RSS" "$(( (b_rss > c_rss ? b_rss : c_rss) / 1024 ))"
