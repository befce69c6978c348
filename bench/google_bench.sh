#!/usr/bin/env bash
# Google Workspace benchmark: roster syncing users from the Directory API emulator
# (tests/common/google.rs) on loopback, against a plain client fetching the same pages.
#
#   bash bench/google_bench.sh                 100,000 users
#   USERS=20000 bash bench/google_bench.sh
#   BENCH_STRICT=1 ...                         exit 1 when a target is missed
#
# Measures, with /usr/bin/time (wall seconds and peak RSS):
#   (a) curl: every page of users.list (projection=full, maxResults=500) following
#       nextPageToken, with a token the emulator minted (fetching only, no signing);
#   (b) roster sync into a fresh database (initial sync: a signed assertion, the OUs, the
#       groups and every page of users);
#   (c) roster sync again, nothing changed.
# Targets, as for Entra: c <= 1.3 x a, roster peak RSS <= 200 MB; b / a is shown.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=bench/common.sh
source "$root/bench/common.sh"

users=${USERS:-100000}
target_dir=${CARGO_TARGET_DIR:-$root/target}
out=$target_dir/bench-google
roster=$target_dir/release/roster

for tool in sqlite3 /usr/bin/time awk curl openssl; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 2; }
done
mkdir -p "$out"

echo "== building roster and the Google emulator (release)"
cargo build --release -p roster
emulator=$(cargo test --release --test google_emulator --no-run 2>&1 \
    | sed -n 's/.*Executable .*(\(.*google_emulator-[0-9a-f]*\)).*/\1/p' | tail -n 1)
[ -x "$emulator" ] || { echo "no emulator binary" >&2; exit 1; }
case $emulator in /*) ;; *) emulator=$root/$emulator ;; esac

work=$out/roster
rm -rf "$work"
mkdir -p "$work"
# The emulator serves until its standard input closes: a fifo held open by this script.
rm -f "$out/emu.in"
mkfifo "$out/emu.in"
"$emulator" --serve "$users" "$work/sa.json" < "$out/emu.in" > "$out/emu.url" 2> "$out/emu.err" &
emu_pid=$!
exec 3> "$out/emu.in"
trap 'exec 3>&-; wait "$emu_pid" 2>/dev/null || true' EXIT
for _ in $(seq 600); do [ "$(wc -l < "$out/emu.url")" -ge 2 ] && break; kill -0 "$emu_pid" 2>/dev/null || break; sleep 0.1; done
[ "$(wc -l < "$out/emu.url")" -ge 2 ] || { echo "the emulator did not start; see $out/emu.err" >&2; exit 1; }
base=$(sed -n 1p "$out/emu.url")
token=$(sed -n 2p "$out/emu.url")
echo "   emulator at $base with $users users"

cat > "$out/fetch.sh" <<SH
set -eu
url='$base/admin/directory/v1/users?customer=my_customer&projection=full&maxResults=500'
next=
pages=0
while :; do
    curl -sf -H "Authorization: Bearer $token" "\$url\${next:+&pageToken=\$next}" > "$out/page.json"
    pages=\$((pages + 1))
    next=\$(grep -o '"nextPageToken":"[^"]*"' "$out/page.json" | cut -d'"' -f4 || true)
    [ -n "\$next" ] || break
done
echo "\$pages pages"
SH
echo "== (a) curl fetching the pages"
run_timed fetch bash "$out/fetch.sh"
a_secs=$SECS
echo "   ${a_secs}s, $(cat "$out/fetch.out")"

cat > "$work/roster.toml" <<TOML
database = "bench.db"

[sources.google]
plugin = "google"
max_deletions = "100%"
timeout = "600s"

[sources.google.config]
key_file = "sa.json"
subject = "admin@example.test"
api_url = "$base"
TOML
# Compile the component into the cache first (same directory), so (b) measures the sync.
"$roster" --config "$work/roster.toml" sources test google > /dev/null

initial_and_resync "$roster" "$work/roster.toml"

missed=0
CHECK_WIDTH=38
peak_mb=$(( (b_rss > c_rss ? b_rss : c_rss) / 1024 ))

echo
echo "== results ($users users, $created active)"
printf '  %-38s %10ss\n' "(a) curl fetching the pages" "$a_secs"
printf '  %-38s %10ss  (%sx of (a))\n' "(b) roster initial sync" "$b_secs" "$(ratio "$b_secs" "$a_secs")"
printf '  %-38s %10ss\n' "(c) roster no-change resync" "$c_secs"
check "no-change resync c / a" "$(ratio "$c_secs" "$a_secs")" 1.3 "x"
check "roster peak RSS" "$peak_mb" 200 " MB"

if [ "${BENCH_STRICT:-0}" = 1 ] && [ "$missed" = 1 ]; then
    exit 1
fi
