#!/usr/bin/env bash
# Mapping-script benchmark: a CSV sync with and without a Rhai mapping script.
#
#   make bench                        (or: bash bench/script_bench.sh)
#   ROWS=20000 bash bench/script_bench.sh   smaller file
#   BENCH_STRICT=1 ...                exit 1 when the target is missed
#
# Measures, with /usr/bin/time (wall seconds, best of REPEAT runs):
#   (a) roster sync of ROWS CSV rows into a fresh database, no script;
#   (b) the same with `mapping = "map.rhai"` (lowercase the username, derive two aliases,
#       drop service accounts: none in this file, so both write the same number of users);
#   (c), (d) the no-change resync of each.
# The script's cost is b - a (and d - c): reported in seconds and in µs per entry. The
# script runs on a thread of its own, overlapping reading and staging, so its own busy time
# (from the debug log) is reported too: that is its CPU cost per entry.
# Target: b - a <= 1 s for 100k entries.
#
# The compiled components are cached first by a warm-up sync of a tiny file, so the runs
# measure the sync, not the one-time compilation.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=bench/common.sh
source "$root/bench/common.sh"

rows=${ROWS:-100000}
repeat=${REPEAT:-3}
target_dir=${CARGO_TARGET_DIR:-$root/target}
out=$target_dir/bench-script
roster=$target_dir/release/roster
csv=$out/users-$rows.csv

for tool in /usr/bin/time awk; do
    command -v "$tool" >/dev/null || { echo "missing $tool: run 'make setup-bench'" >&2; exit 2; }
done
mkdir -p "$out"

echo "== building roster (release)"
cargo build --release -p roster

if [ ! -s "$csv" ]; then
    echo "== generating $csv ($rows rows)"
    awk -v n="$rows" 'BEGIN {
        print "username,given,sn,email,cards,groups"
        for (i = 0; i < n; i++)
            printf "User%07d,Given%d,Surname%d,user%07d@example.com,C%07d,Dept%02d|Team%d\n",
                i, i, i, i, i, i % 100, i % 10
    }' > "$csv.tmp"
    mv "$csv.tmp" "$csv"
fi
echo "   $(wc -l < "$csv") lines, $(du -h "$csv" | cut -f1)"

cat > "$out/map.rhai" <<'RHAI'
fn map(entry) {
    if entry.username.starts_with("svc-") {
        return ();
    }
    entry.username = entry.username.to_lower();
    entry.aliases = [`${entry.given}.${entry.sn}`.to_lower(), `${entry.sn}.${entry.given}`.to_lower()];
    entry
}
RHAI

write_config() { # write_config DIR CSV MAPPING_LINE
    cat > "$1/roster.toml" <<TOML
database = "bench.db"

[sources.bench]
plugin = "csv"
max_deletions = "100%"
timeout = "600s"
$3

[sources.bench.config]
path = "$2"
TOML
}

# Warm-up: both components compiled into the shared cache.
mkdir -p "$out/warm"
printf 'username,given,sn\nwarm,W,U\n' > "$out/warm/users.csv"
write_config "$out/warm" users.csv "mapping = \"$out/map.rhai\""
rm -f "$out/warm/bench.db"
(cd "$out/warm" && "$roster" sync -q >/dev/null)

# best NAME MAPPING_LINE: best-of-$repeat initial import (SECS, CPU) and resync (RESYNC,
# RESYNC_CPU), each the run with the least wall time.
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (b == "" || a < b) ? a : b }'; }
best() {
    local name=$1 mapping=$2 dir=$out/$1 best_i="" best_r="" cpu_i="" cpu_r=""
    mkdir -p "$dir"
    ln -sfn "$out/warm/.roster-cache" "$dir/.roster-cache"
    write_config "$dir" "$csv" "$mapping"
    for _ in $(seq "$repeat"); do
        rm -f "$dir/bench.db" "$dir/bench.db-wal" "$dir/bench.db-shm"
        run_timed "$name-import" bash -c "cd '$dir' && RUST_LOG=roster=debug '$roster' sync --json"
        best_i=$(min "$SECS" "$best_i")
        cpu_i=$(min "$CPU_SECS" "$cpu_i")
        run_timed "$name-resync" bash -c "cd '$dir' && '$roster' sync --json"
        best_r=$(min "$SECS" "$best_r")
        cpu_r=$(min "$CPU_SECS" "$cpu_r")
    done
    grep -q '"created": '"$rows" "$out/$name-import.out" || {
        echo "!! $name: expected $rows users created; see $out/$name-import.out" >&2; exit 1; }
    SECS=$best_i RESYNC=$best_r CPU=$cpu_i RESYNC_CPU=$cpu_r
}

echo "== (a, c) sync without a script (best of $repeat)"
best plain ""
a=$SECS c=$RESYNC a_cpu=$CPU c_cpu=$RESYNC_CPU
echo "   import ${a}s (CPU ${a_cpu}s), resync ${c}s (CPU ${c_cpu}s)"
echo "== (b, d) sync with map.rhai (best of $repeat)"
best scripted "mapping = \"$out/map.rhai\""
b=$SECS d=$RESYNC b_cpu=$CPU d_cpu=$RESYNC_CPU
echo "   import ${b}s (CPU ${b_cpu}s), resync ${d}s (CPU ${d_cpu}s)"
# The script stage's own busy time (it runs on a thread of its own, overlapping the others).
busy=$(grep -o 'mapping script busy .*' "$out/scripted-import.err" | tail -n 1 || true)

extra=$(awk -v x="$b" -v y="$a" 'BEGIN { printf "%.2f", x - y }')
extra_r=$(awk -v x="$d" -v y="$c" 'BEGIN { printf "%.2f", x - y }')
per=$(awk -v e="$extra" -v n="$rows" 'BEGIN { printf "%.1f", e * 1e6 / n }')
per_r=$(awk -v e="$extra_r" -v n="$rows" 'BEGIN { printf "%.1f", e * 1e6 / n }')
per100k=$(awk -v e="$extra" -v n="$rows" 'BEGIN { printf "%.2f", e * 100000 / n }')
cpu_per=$(awk -v x="$b_cpu" -v y="$a_cpu" -v n="$rows" 'BEGIN { printf "%.1f", (x - y) * 1e6 / n }')
echo
echo "== results ($rows entries)"
echo "   import: ${a}s without, ${b}s with the script: +${extra}s, ${per} µs per entry"
echo "   resync: ${c}s without, ${d}s with the script: +${extra_r}s, ${per_r} µs per entry"
echo "   extra per 100k entries: ${per100k}s (target <= 1 s)"
echo "   extra CPU per entry (import): ${cpu_per} µs"
echo "   ${busy:-mapping script busy: not logged}"
if [ "${BENCH_STRICT:-0}" = 1 ] && awk -v x="$per100k" 'BEGIN { exit !(x > 1) }'; then
    echo "!! target missed" >&2
    exit 1
fi
