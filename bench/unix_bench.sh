#!/usr/bin/env bash
# Unix connector benchmark: a 1,000,000-line passwd file (and a group file giving every
# account a primary and a supplementary group), against the CSV benchmark's reference.
#
#   bash bench/unix_bench.sh
#   ROWS=200000 bash bench/unix_bench.sh   smaller files
#   BENCH_STRICT=1 ...                     exit 1 when a target is missed
#
# Measures, with /usr/bin/time (wall seconds and peak RSS):
#   (a) sqlite3: CREATE TABLE with a PRIMARY KEY, then `.import` of the passwd file
#       (`:`-separated) - the CSV benchmark's reference on these accounts;
#   (b) roster sync into a fresh database (initial import);
#   (c) roster sync again with the files unchanged (no-change resync).
# Targets, the CSV benchmark's: b/a <= 1.5, c/a <= 1.0, roster peak RSS <= 200 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=bench/common.sh
source "$root/bench/common.sh"

rows=${ROWS:-1000000}
target_dir=${CARGO_TARGET_DIR:-$root/target}
out=$target_dir/bench-unix
roster=$target_dir/release/roster
passwd=$out/passwd-$rows
group=$out/group-$rows

for tool in sqlite3 /usr/bin/time awk; do
    command -v "$tool" >/dev/null || { echo "missing $tool: run 'make setup-bench'" >&2; exit 2; }
done
mkdir -p "$out"

echo "== building roster (release)"
cargo build --release -p roster

if [ ! -s "$passwd" ] || [ ! -s "$group" ]; then
    echo "== generating $passwd and $group ($rows accounts)"
    awk -v n="$rows" 'BEGIN {
        for (i = 0; i < n; i++)
            printf "user%07d:x:%d:%d:User Number %d,Room %d,+1 555 %07d,,:/home/user%07d:%s\n",
                i, 10000 + i, 5000 + i % 100, i, i % 500, i, i, (i % 50 == 0) ? "/usr/sbin/nologin" : "/bin/bash"
    }' > "$passwd.tmp"
    # 100 department groups (primary, by gid) and 5 site groups listing their members.
    awk -v n="$rows" 'BEGIN {
        for (d = 0; d < 100; d++) printf "dept%02d:x:%d:\n", d, 5000 + d
        for (s = 0; s < 5; s++) {
            printf "site%d:x:%d:", s, 6000 + s
            sep = ""
            for (i = s; i < n; i += 5) { printf "%suser%07d", sep, i; sep = "," }
            printf "\n"
        }
    }' > "$group.tmp"
    mv "$passwd.tmp" "$passwd"
    mv "$group.tmp" "$group"
fi
echo "   $(wc -l < "$passwd") passwd lines ($(du -h "$passwd" | cut -f1)), $(wc -l < "$group") groups ($(du -h "$group" | cut -f1))"

echo "== (a) sqlite3 .import"
rm -f "$out/ref.db"
cat > "$out/ref.sql" <<SQL
CREATE TABLE u(username TEXT PRIMARY KEY, password TEXT, uid INTEGER, gid INTEGER, gecos TEXT, home TEXT, shell TEXT);
.separator ":"
.import $passwd u
SQL
run_timed sqlite sqlite3 "$out/ref.db" ".read $out/ref.sql"
a_secs=$SECS
echo "   ${a_secs}s, $(sqlite3 "$out/ref.db" "select count(*) from u") rows"

work=$out/roster
rm -rf "$work"
mkdir -p "$work"
write_config() { # write_config FILE DATABASE PASSWD GROUP
    cat > "$1" <<TOML
database = "$2"

[sources.bench]
plugin = "unix"
max_deletions = "100%"
timeout = "600s"

[sources.bench.config]
passwd = "$3"
group = "$4"
TOML
}
write_config "$work/roster.toml" bench.db "$passwd" "$group"
# Warm the compile cache with tiny files (same database directory, another database).
printf 'warmup:x:1000:1000::/h:/bin/sh\n' > "$work/warmup.passwd"
printf 'warmup:x:1000:\n' > "$work/warmup.group"
write_config "$work/warmup.toml" warmup.db warmup.passwd warmup.group
"$roster" --config "$work/warmup.toml" sync > /dev/null

initial_and_resync "$roster" "$work/roster.toml"

missed=0
peak_mb=$(( (b_rss > c_rss ? b_rss : c_rss) / 1024 ))

echo
echo "== results ($rows accounts)"
printf '  %-34s %10ss\n' "(a) sqlite3 .import" "$a_secs"
printf '  %-34s %10ss\n' "(b) roster initial sync" "$b_secs"
printf '  %-34s %10ss\n' "(c) roster no-change resync" "$c_secs"
check "initial import ratio b/a" "$(ratio "$b_secs" "$a_secs")" 1.5 "x"
check "no-change resync ratio c/a" "$(ratio "$c_secs" "$a_secs")" 1.0 "x"
check "roster peak RSS" "$peak_mb" 200 " MB"

if [ "${BENCH_STRICT:-0}" = 1 ] && [ "$missed" = 1 ]; then
    exit 1
fi
