#!/usr/bin/env bash
# SCIM pull benchmark: a site roster syncing users from a central roster's `roster serve`
# (/scim/v2) on loopback with the scim connector, against a plain client fetching the same pages.
#
#   bash bench/scim_bench.sh                   100,000 users
#   USERS=20000 bash bench/scim_bench.sh
#   BENCH_STRICT=1 ...                         exit 1 when a target is missed
#
# The central roster imports the users from CSV (each with an alias, a card and one of four
# groups) and serves them with a `read` token. Measures, with /usr/bin/time:
#   (a) curl: every page of /Users and /Groups (count=1000, startIndex) with the token;
#   (b) the site's roster sync into a fresh database (every run full: full_sync_every = "0");
#   (c) the site's roster sync again, nothing changed (a full run, not a lastModified delta).
# Targets, as for Entra: c <= 1.3 x a, the site roster's peak RSS <= 200 MB; b / a is shown.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=bench/common.sh
source "$root/bench/common.sh"

users=${USERS:-100000}
target_dir=${CARGO_TARGET_DIR:-$root/target}
out=$target_dir/bench-scim
roster=$target_dir/release/roster

for tool in sqlite3 /usr/bin/time awk curl; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 2; }
done
mkdir -p "$out"

echo "== building roster (release)"
cargo build --release -p roster

central=$out/central
site=$out/site
rm -rf "$central" "$site"
mkdir -p "$central" "$site"
echo "== central: $users users from CSV"
awk -v n="$users" 'BEGIN {
    print "username,full_name,email,personal_number,aliases,cards,groups"
    for (i = 0; i < n; i++)
        printf "user%06d,User %d,user%06d@example.com,P%06d,alias%06d,C%06d,Staff|Team%d\n", i, i, i, i, i, i, i % 4
}' > "$central/people.csv"
cat > "$central/roster.toml" <<TOML
database = "central.db"

[sources.people]
plugin = "csv"
max_deletions = "100%"

[sources.people.config]
path = "people.csv"

[serve]
listen = "127.0.0.1:0"
TOML
"$roster" --config "$central/roster.toml" sync > /dev/null
token=$("$roster" --config "$central/roster.toml" tokens create site --role read | tail -n 1)
"$roster" --config "$central/roster.toml" serve > /dev/null 2> "$out/serve.err" &
serve_pid=$!
trap 'kill "$serve_pid" 2>/dev/null; wait "$serve_pid" 2>/dev/null || true' EXIT
base=
for _ in $(seq 600); do
    base=$(grep -o 'listening on [^ ]*' "$out/serve.err" | head -n 1 | cut -d' ' -f3 || true)
    [ -n "$base" ] && break
    kill -0 "$serve_pid" 2>/dev/null || break
    sleep 0.1
done
[ -n "$base" ] || { echo "roster serve did not start; see $out/serve.err" >&2; exit 1; }
scim=$base/scim/v2
echo "   roster serve at $scim"

cat > "$out/fetch.sh" <<SH
set -eu
pages=0
for kind in Users Groups; do
    start=1
    while :; do
        curl -sf -H "Authorization: Bearer $token" "$scim/\$kind?startIndex=\$start&count=1000" > "$out/page.json"
        pages=\$((pages + 1))
        n=\$(grep -o '"itemsPerPage":[0-9]*' "$out/page.json" | cut -d: -f2)
        [ "\$n" -ge 1000 ] || break
        start=\$((start + n))
    done
done
echo "\$pages pages"
SH
echo "== (a) curl fetching the pages"
run_timed fetch bash "$out/fetch.sh"
a_secs=$SECS
echo "   ${a_secs}s, $(cat "$out/fetch.out")"

cat > "$site/roster.toml" <<TOML
database = "site.db"

[sources.central]
plugin = "scim"
max_deletions = "100%"
timeout = "600s"

[sources.central.config]
url = "$scim"
token = { env = "CENTRAL_TOKEN" }
page_size = 1000
full_sync_every = "0"
TOML
export CENTRAL_TOKEN=$token
# Compile the component into the cache first, so (b) measures the sync.
"$roster" --config "$site/roster.toml" sources test central > /dev/null

initial_and_resync "$roster" "$site/roster.toml"

missed=0
CHECK_WIDTH=38
peak_mb=$(( (b_rss > c_rss ? b_rss : c_rss) / 1024 ))

echo
echo "== results ($users users)"
printf '  %-38s %10ss\n' "(a) curl fetching the pages" "$a_secs"
printf '  %-38s %10ss  (%sx of (a))\n' "(b) roster initial sync" "$b_secs" "$(ratio "$b_secs" "$a_secs")"
printf '  %-38s %10ss\n' "(c) roster no-change resync" "$c_secs"
check "no-change resync c / a" "$(ratio "$c_secs" "$a_secs")" 1.3 "x"
check "roster peak RSS" "$peak_mb" 200 " MB"

if [ "${BENCH_STRICT:-0}" = 1 ] && [ "$missed" = 1 ]; then
    exit 1
fi
