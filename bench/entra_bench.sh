#!/usr/bin/env bash
# Entra ID benchmark: roster syncing users from the Graph emulator (tests/common/graph.rs)
# on loopback, against a plain client fetching the same pages.
#
#   bash bench/entra_bench.sh                  100,000 users
#   USERS=20000 bash bench/entra_bench.sh
#   BENCH_STRICT=1 ...                         exit 1 when a target is missed
#
# Measures, with /usr/bin/time (wall seconds and peak RSS):
#   (a)  curl: a token, then every page of /v1.0/users with roster's $select and $top=999,
#        following @odata.nextLink (fetching only);
#   (a2) sqlite3 storing the same users set-wise in roster's own schema (the storage floor);
#   (b)  roster sync into a fresh database (initial sync);
#   (c)  roster sync again, nothing changed, as a full run (use_delta = false).
# Targets: b <= 1.3 x max(a, a2), c <= 1.3 x a, roster peak RSS <= 200 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=bench/common.sh
source "$root/bench/common.sh"

users=${USERS:-100000}
target_dir=${CARGO_TARGET_DIR:-$root/target}
out=$target_dir/bench-entra
roster=$target_dir/release/roster
secret=bench-secret-$$

for tool in sqlite3 /usr/bin/time awk curl; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 2; }
done
mkdir -p "$out"

echo "== building roster and the Graph emulator (release)"
cargo build --release -p roster
emulator=$(cargo test --release --test graph_emulator --no-run 2>&1 \
    | sed -n 's/.*Executable .*(\(.*graph_emulator-[0-9a-f]*\)).*/\1/p' | tail -n 1)
[ -x "$emulator" ] || { echo "no emulator binary" >&2; exit 1; }
case $emulator in /*) ;; *) emulator=$root/$emulator ;; esac

# The emulator serves until its standard input closes: a fifo held open by this script.
rm -f "$out/emu.in"
mkfifo "$out/emu.in"
"$emulator" --serve "$users" "$secret" < "$out/emu.in" > "$out/emu.url" 2> "$out/emu.err" &
emu_pid=$!
exec 3> "$out/emu.in"
trap 'exec 3>&-; wait "$emu_pid" 2>/dev/null || true' EXIT
for _ in $(seq 600); do [ -s "$out/emu.url" ] && break; kill -0 "$emu_pid" 2>/dev/null || break; sleep 0.1; done
[ -s "$out/emu.url" ] || { echo "the emulator did not start; see $out/emu.err" >&2; exit 1; }
base=$(head -n 1 "$out/emu.url")
echo "   emulator at $base with $users users"


fields=id,userPrincipalName,mail,displayName,givenName,surname,accountEnabled,employeeId,mobilePhone,preferredLanguage,onPremisesSamAccountName,department,jobTitle,officeLocation
cat > "$out/fetch.sh" <<SH
set -eu
token=\$(curl -sf -d "grant_type=client_credentials&client_id=app-1234&client_secret=$secret&scope=$base/.default" \
    "$base/contoso-tenant/oauth2/v2.0/token" | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
url='$base/v1.0/users?\$select=$fields&\$top=999'
pages=0
while [ -n "\$url" ]; do
    curl -sf -H "Authorization: Bearer \$token" "\$url" > "$out/page.json"
    pages=\$((pages + 1))
    url=\$(grep -o '"@odata.nextLink":"[^"]*"' "$out/page.json" | cut -d'"' -f4 || true)
done
echo "\$pages pages"
SH
echo "== (a) curl fetching the pages"
run_timed fetch bash "$out/fetch.sh"
a_secs=$SECS
echo "   ${a_secs}s, $(cat "$out/fetch.out")"

work=$out/roster
rm -rf "$work"
mkdir -p "$work"
cat > "$work/roster.toml" <<TOML
database = "bench.db"

[sources.entra]
plugin = "entra"
max_deletions = "100%"
timeout = "600s"

[sources.entra.config]
tenant_id = "contoso-tenant"
client_id = "app-1234"
client_secret = { env = "BENCH_SECRET" }
authority_url = "$base"
graph_url = "$base"
use_delta = false
TOML
export BENCH_SECRET=$secret
# Compile the component into the cache first (same directory), so (b) measures the sync.
"$roster" --config "$work/roster.toml" sources test entra > /dev/null

initial_and_resync "$roster" "$work/roster.toml"
pg_side_stored "$roster" "$work/roster.toml" entra "$work/bench.db"

# (a2) as in the CSV benchmark: SQLite alone storing the users roster created, in roster's
# schema, set-wise in one transaction (users with their record, username and one alias,
# links, a run event each).
storage_floor "$work/bench.db" <<SQL
BEGIN;
CREATE TEMP TABLE u AS WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $created)
  SELECT i + 1 AS id, 'user' || i || '@contoso.test' AS upn, 'Given' || i || ' Sur' || i AS full_name,
         'E' || printf('%06d', i) AS pn, 'user' || i AS sam FROM n;
INSERT INTO sources(id, name) VALUES (1, 'entra');
INSERT INTO runs(id, source, status, started) VALUES (1, 'entra', 'ok', 'now');
INSERT INTO users(id, username, full_name, email, personal_number, active, source_id, record, hash, created_at, updated_at)
  SELECT id, upn, full_name, upn, pn, 1, 1,
         json_object('username', upn, 'full_name', full_name, 'email', upn, 'personal_number', pn,
                     'aliases', json_array(sam), 'cards', json_array(), 'pins', json_array(), 'groups', json_array(),
                     'language', 'en-US', 'phone', '+420 600 ' || pn, 'notes', NULL, 'storage', NULL, 'active', json('true')),
         random(), strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
  FROM temp.u;
INSERT INTO names(name, user_id, alias) SELECT upn, id, 0 FROM temp.u UNION ALL SELECT sam, id, 1 FROM temp.u ORDER BY 1;
INSERT INTO links(source_id, anchor, user_id, raw_hash) SELECT 1, printf('%08x-0000-4000-8000-%012x', id - 1, id - 1), id, random() FROM temp.u ORDER BY 2;
INSERT INTO run_events(run_id, seq, entry, action) SELECT 1, id, upn, 'created' FROM temp.u;
COMMIT;
SQL

missed=0
CHECK_WIDTH=38
max_a=$(awk -v x="$a_secs" -v y="$a2_secs" 'BEGIN { print (x > y) ? x : y }')
peak_mb=$(( (b_rss > c_rss ? b_rss : c_rss) / 1024 ))

echo
echo "== results ($users users, $created enabled)"
printf '  %-38s %10ss\n' "(a) curl fetching the pages" "$a_secs"
printf '  %-38s %10ss\n' "(a2) sqlite3 into roster's schema" "$a2_secs"
printf '  %-38s %10ss\n' "(b) roster initial sync" "$b_secs"
printf '  %-38s %10ss\n' "(c) roster no-change full resync" "$c_secs"
check "initial sync b / max(a, a2)" "$(ratio "$b_secs" "$max_a")" 1.3 "x"
check "no-change resync c / a" "$(ratio "$c_secs" "$a_secs")" 1.3 "x"
check "roster peak RSS" "$peak_mb" 200 " MB"
pg_report "(a)" "$a_secs"

if [ "${BENCH_STRICT:-0}" = 1 ] && [ "$missed" = 1 ]; then
    exit 1
fi
