#!/usr/bin/env bash
# `roster serve` under load: 32 concurrent clients (wrk) against a database of 1,000,000
# users, while a sync of another source runs.
#
#   bash bench/serve_bench.sh            (after `make setup-bench`)
#   ROWS=200000 bash bench/serve_bench.sh   a smaller database
#   BENCH_STRICT=1 ...                   exit 1 when a goal is missed
#
# Measures:
#   (r) the reference: `roster users show NAME` from the CLI (a process per lookup), mean;
#   (u) GET /api/v1/users/{name}, random names: requests per second and p99 latency;
#   (p) GET /api/v1/users?limit=1000&after=NAME, random pages: the same;
#   (s) SCIM GET /scim/v2/Users?filter=userName eq "U0000042" (case-insensitive), and
#   (sp) SCIM 1,000-user pages (startIndex, count): the same;
#   (sc) SCIM 1,000-user pages by cursor (RFC 9865) at random depths: the same;
#   serve's peak RSS (VmHWM) over the whole benchmark, and its CPU use while idle.
# Goals: p99 of (u) <= 5 ms and of (s) <= 10 ms under that load; peak RSS <= 250 MB; no CPU while idle.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rows=${ROWS:-1000000}
duration=${DURATION:-20s}
target_dir=${CARGO_TARGET_DIR:-$root/target}
out=$target_dir/bench/serve
roster=$target_dir/release/roster

for tool in wrk curl awk; do
    command -v "$tool" >/dev/null || { echo "missing $tool: run 'make setup-bench'" >&2; exit 2; }
done
mkdir -p "$out"

echo "== building roster (release)"
cargo build --release -p roster

csv=$out/users-$rows.csv
if [ ! -s "$csv" ]; then
    echo "== generating $csv ($rows rows)"
    awk -v n="$rows" 'BEGIN {
        print "username,full_name,email,personal_number,cards,groups"
        for (i = 0; i < n; i++)
            printf "u%07d,User %d,u%07d@example.com,P%07d,C%07d,Dept%d|Team%d\n", i, i, i, i, i, i % 50, i % 7
    }' > "$csv"
fi
# The other source, synced during the load: 200,000 users in their own namespace.
other=$out/other.csv
awk 'BEGIN { print "username,full_name"; for (i = 0; i < 200000; i++) printf "o%07d,Other %d\n", i, i }' > "$other"

cat > "$out/roster.toml" <<TOML
database = "serve-bench.db"

[sources.big]
plugin = "csv"
max_deletions = "100%"
[sources.big.config]
path = "$csv"

[sources.other]
plugin = "csv"
max_deletions = "100%"
[sources.other.config]
path = "$other"

[serve]
listen = "127.0.0.1:0"
TOML
cfg=$out/roster.toml
if [ ! -s "$out/serve-bench.db" ]; then
    echo "== initial sync of $rows users"
    "$roster" --config "$cfg" sync big > /dev/null
fi
"$roster" --config "$cfg" tokens revoke bench >/dev/null 2>&1 || true
token=$("$roster" --config "$cfg" tokens create bench --role sync 2>/dev/null)

echo "== (r) reference: roster users show (CLI), 50 lookups"
t0=$(date +%s.%N)
for i in $(seq 1 50); do
    "$roster" --config "$cfg" users show "$(printf 'u%07d' $((RANDOM * 30 % rows)))" > /dev/null
done
t1=$(date +%s.%N)
cli_ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 / 50 }')
echo "   ${cli_ms} ms per lookup"

"$roster" --config "$cfg" serve 2> "$out/serve.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
    base=$(grep -o 'listening on http://[0-9.:]*' "$out/serve.log" | sed 's/listening on //' || true)
    [ -n "$base" ] && curl -fs "$base/healthz" > /dev/null && break
    sleep 0.1
done
[ -n "$base" ] || { echo "serve did not start; see $out/serve.log" >&2; exit 1; }

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
echo "== idle CPU over 5 s"
c0=$(cpu_ticks); sleep 5; c1=$(cpu_ticks)
idle_ticks=$((c1 - c0))
echo "   $idle_ticks clock ticks"

cat > "$out/user.lua" <<LUA
math.randomseed(os.time())
request = function()
  local path = string.format("/api/v1/users/u%07d", math.random(0, $rows - 1))
  return wrk.format("GET", path, { ["Authorization"] = "Bearer $token" })
end
LUA
cat > "$out/page.lua" <<LUA
math.randomseed(os.time() + 1)
request = function()
  local path = string.format("/api/v1/users?limit=1000&after=u%07d", math.random(0, $rows - 1001))
  return wrk.format("GET", path, { ["Authorization"] = "Bearer $token" })
end
LUA

# wrk's --latency table: the 99% line, in ms.
p99() { awk '$1 == "99%" { v = $2; u = v; sub(/[a-z]+$/, "", v); sub(/^[0-9.]+/, "", u);
    if (u == "us") v /= 1000; else if (u == "s") v *= 1000; printf "%.2f", v }' "$1"; }
rps() { awk '/^Requests\/sec/ { print $2 }' "$1"; }

# A run of the other source, again and again, during the load.
sync_other() {
    while kill -0 "$pid" 2>/dev/null && [ ! -e "$out/stop" ]; do
        curl -fs -X POST -H "Authorization: Bearer $token" "$base/api/v1/sources/other/sync?force=true" > /dev/null || true
        for _ in $(seq 1 600); do
            curl -fs -H "Authorization: Bearer $token" "$base/api/v1/sources" | grep -q '"running":true' || break
            sleep 0.2
        done
    done
}
rm -f "$out/stop"
sync_other &
syncer=$!

echo "== (u) GET /api/v1/users/{name}, 32 clients, $duration, while 'other' syncs"
wrk -t2 -c32 -d"$duration" --latency -s "$out/user.lua" "$base" > "$out/user.txt"
echo "   $(rps "$out/user.txt") requests/s, p99 $(p99 "$out/user.txt") ms"
echo "== (p) GET /api/v1/users?limit=1000, 32 clients, $duration, while 'other' syncs"
wrk -t2 -c32 -d"$duration" --latency --timeout 10s -s "$out/page.lua" "$base" > "$out/page.txt"
echo "   $(rps "$out/page.txt") requests/s, p99 $(p99 "$out/page.txt") ms"
cat > "$out/scim_user.lua" <<LUA
math.randomseed(os.time() + 2)
request = function()
  local path = string.format("/scim/v2/Users?filter=userName%%20eq%%20%%22U%07d%%22", math.random(0, $rows - 1))
  return wrk.format("GET", path, { ["Authorization"] = "Bearer $token" })
end
LUA
cat > "$out/scim_page.lua" <<LUA
math.randomseed(os.time() + 3)
request = function()
  local path = string.format("/scim/v2/Users?startIndex=%d&count=1000", math.random(1, $rows - 1000))
  return wrk.format("GET", path, { ["Authorization"] = "Bearer $token" })
end
LUA
# Cursors (RFC 9865) are opaque to clients; the bench makes ones at random depths as the
# server does, to read pages as deep as (sp) does.
cursors=$(for i in $(seq 1 200); do
    printf 'after:%d' $(( (RANDOM * 32768 + RANDOM) % (rows - 1000) )) | base64 | tr '+/' '-_' | tr -d '=\n'
    printf ' '
done)
{
    echo 'math.randomseed(os.time() + 4)'
    printf 'local cursors = {'
    for c in $cursors; do printf '"%s",' "$c"; done
    echo '}'
    echo 'request = function()'
    echo '  local path = "/scim/v2/Users?count=1000&cursor=" .. cursors[math.random(1, #cursors)]'
    echo "  return wrk.format(\"GET\", path, { [\"Authorization\"] = \"Bearer $token\" })"
    echo 'end'
} > "$out/scim_cursor.lua"
echo "== (s) SCIM GET /Users?filter=userName eq (other case), 32 clients, $duration, while 'other' syncs"
wrk -t2 -c32 -d"$duration" --latency -s "$out/scim_user.lua" "$base" > "$out/scim_user.txt"
echo "   $(rps "$out/scim_user.txt") requests/s, p99 $(p99 "$out/scim_user.txt") ms"
echo "== (sp) SCIM GET /Users?startIndex=N&count=1000, 32 clients, $duration, while 'other' syncs"
wrk -t2 -c32 -d"$duration" --latency --timeout 10s -s "$out/scim_page.lua" "$base" > "$out/scim_page.txt"
echo "   $(rps "$out/scim_page.txt") requests/s, p99 $(p99 "$out/scim_page.txt") ms"
echo "== (sc) SCIM GET /Users?count=1000&cursor=C (RFC 9865), 32 clients, $duration, while 'other' syncs"
wrk -t2 -c32 -d"$duration" --latency --timeout 10s -s "$out/scim_cursor.lua" "$base" > "$out/scim_cursor.txt"
echo "   $(rps "$out/scim_cursor.txt") requests/s, p99 $(p99 "$out/scim_cursor.txt") ms"
touch "$out/stop"
wait "$syncer" || true
runs=$(curl -fs -H "Authorization: Bearer $token" "$base/api/v1/runs?source=other&limit=1000" | grep -o '"status":"ok"' | wc -l)
rss_kb=$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status")
echo "== serve: peak RSS $((rss_kb / 1024)) MB; 'other' synced $runs times during the load"
kill "$pid"; wait "$pid" || true
trap - EXIT

missed=0
awk -v p="$(p99 "$out/user.txt")" 'BEGIN { exit !(p <= 5) }' || { echo "!! p99 of a lookup over 5 ms"; missed=1; }
awk -v p="$(p99 "$out/scim_user.txt")" 'BEGIN { exit !(p <= 10) }' || { echo "!! p99 of a SCIM userName lookup over 10 ms"; missed=1; }
[ "$rss_kb" -le $((250 * 1024)) ] || { echo "!! peak RSS over 250 MB"; missed=1; }
[ "$idle_ticks" -le 1 ] || { echo "!! CPU used while idle"; missed=1; }
if [ "$missed" = 1 ] && [ "${BENCH_STRICT:-0}" = 1 ]; then exit 1; fi
