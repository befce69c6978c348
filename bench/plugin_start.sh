#!/usr/bin/env bash
# Plugin start-up benchmark: how long a connector takes from its bytes to its first `info`
# call, cold (first run: compiling the component) and warm (from the compile cache), and
# how big the components are.
#
#   make bench                         (or: bash bench/plugin_start.sh)
#   BENCH_STRICT=1 ...                 exit 1 when a target is missed
#   EXTRA_COMPONENTS="a.wasm b.wasm"   measure more components (the Python and JS examples)
#
# Process wall time is measured with date +%s%N: /usr/bin/time's 10 ms steps are too coarse.
#
# Each component is measured with `roster plugin test --json` (its `startup` figures: load =
# compile or cache load, first_info = instantiate + `info`), with no config, so the run
# stops at config validation and nothing reaches a network. Cold: an empty compile cache;
# warm: the median of 5 runs from the cache. Also the wall time of a whole warm
# `roster plugin test` process. Target: warm load + first info <= 10 ms for a Rust connector.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target_dir=${CARGO_TARGET_DIR:-$root/target}
out=$target_dir/bench/plugin-start
roster=$target_dir/release/roster
mkdir -p "$out"

for tool in python3 awk; do
    command -v "$tool" >/dev/null || { echo "missing $tool: run 'make setup-bench'" >&2; exit 2; }
done

echo "== building roster (release; builds the built-in connectors)"
cargo build --release -p roster

echo "== a Rust connector from the template (roster plugin new --lang rust)"
rm -rf "$out/tpl"
"$roster" plugin new bench-tpl --lang rust --dir "$out/tpl" >/dev/null
(cd "$out/tpl" && CARGO_TARGET_DIR="$target_dir/plugin-new" \
    cargo build --offline --release --target wasm32-wasip2 -q)

wasm_dir=$root/plugins/target/wasm32-wasip2/release
components=("$out/tpl-bench_tpl.wasm")
cp "$target_dir/plugin-new/wasm32-wasip2/release/bench_tpl.wasm" "${components[0]}"
for c in csv ldap entra; do components+=("$wasm_dir/$c.wasm"); done
for c in ${EXTRA_COMPONENTS:-}; do components+=("$c"); done

# One `roster plugin test` in the sandbox $1 of component $2: prints "load_ms first_info_ms".
startup() {
    ROSTER_CONFIG="$1/roster.toml" "$roster" plugin test "$2" --json > "$out/report.json" || true
    python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["startup"]; print(s["load_ms"], s["first_info_ms"])' "$out/report.json"
}

median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

missed=0
printf '\n%-34s %10s %12s %12s %12s %14s\n' COMPONENT "SIZE KiB" "COLD ms" "WARM load" "WARM info" "WARM process ms"
for c in "${components[@]}"; do
    [ -s "$c" ] || { echo "!! $c not found" >&2; exit 1; }
    sb=$out/sandbox
    rm -rf "$sb" && mkdir -p "$sb" && : > "$sb/roster.toml"
    read -r cold_load cold_info < <(startup "$sb" "$c")
    loads=() infos=()
    for _ in 1 2 3 4 5; do
        read -r l i < <(startup "$sb" "$c")
        loads+=("$l") infos+=("$i")
    done
    warm_load=$(printf '%s\n' "${loads[@]}" | median)
    warm_info=$(printf '%s\n' "${infos[@]}" | median)
    t0=$(date +%s%N)
    ROSTER_CONFIG="$sb/roster.toml" "$roster" plugin test "$c" --json >/dev/null 2>&1 || true
    process_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    size=$(( $(stat -c %s "$c") / 1024 ))
    cold=$(awk -v a="$cold_load" -v b="$cold_info" 'BEGIN { printf "%.1f", a + b }')
    printf '%-34s %10s %12s %12.2f %12.2f %14s\n' "$(basename "$c")" "$size" "$cold" "$warm_load" "$warm_info" "$process_ms"
    warm=$(awk -v a="$warm_load" -v b="$warm_info" 'BEGIN { print a + b }')
    if awk -v w="$warm" 'BEGIN { exit !(w > 10) }'; then
        echo "   target missed: warm start $warm ms > 10 ms"
        missed=1
    fi
done
if [ "${BENCH_STRICT:-0}" = 1 ] && [ "$missed" = 1 ]; then exit 1; fi
