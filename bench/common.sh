# Shared by the benchmark scripts (sourced). They set `out`, the directory for outputs.

# run_timed NAME CMD...: runs CMD under /usr/bin/time, output in $out/NAME.{out,err};
# sets SECS (wall seconds), RSS_KB (peak resident set) and CPU_SECS (user + system CPU
# seconds, less sensitive than wall time to other load on the machine).
run_timed() {
    local name=$1; shift
    local tf=$out/time-$name.txt
    if ! /usr/bin/time -f "%e %M %U %S" -o "$tf" "$@" > "$out/$name.out" 2> "$out/$name.err"; then
        echo "!! $name failed; see $out/$name.out and $out/$name.err" >&2
        tail -n 20 "$out/$name.err" >&2
        exit 1
    fi
    local user sys
    read -r SECS RSS_KB user sys < <(tail -n 1 "$tf")
    CPU_SECS=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
}

# ratio X Y: X / Y with two decimals.
ratio() { awk -v x="$1" -v y="$2" 'BEGIN { if (y <= 0) y = 0.01; printf "%.2f", x / y }'; }

# check LABEL VALUE TARGET UNIT: one result line against its target; a miss sets missed=1.
# CHECK_WIDTH is the label column's width.
check() {
    local verdict
    verdict=$(awk -v v="$2" -v t="$3" 'BEGIN { print (v <= t) ? "ok" : "MISSED" }')
    [ "$verdict" = ok ] || missed=1
    printf "  %-${CHECK_WIDTH:-34}s %10s %-3s (target <= %s%s) %s\n" "$1" "$2" "$4" "$3" "$4" "$verdict"
}

# synced COUNT NAME: a count ("created", "unchanged", ...) from run NAME's `sync --json`.
synced() { grep -o "\"$1\": *[0-9]*" "$out/$2.out" | grep -o '[0-9]*$' || echo "?"; }

# initial_and_resync ROSTER CONFIG: (b) roster's initial sync and (c) its no-change resync,
# each timed; sets b_secs, b_rss, c_secs, c_rss and created (the users (b) created).
initial_and_resync() {
    echo "== (b) roster initial sync"
    run_timed initial "$1" --config "$2" sync --json
    b_secs=$SECS b_rss=$RSS_KB created=$(synced created initial)
    echo "   ${b_secs}s, created $created, peak RSS $((b_rss / 1024)) MB"
    echo "== (c) roster no-change resync"
    run_timed resync "$1" --config "$2" sync --json
    c_secs=$SECS c_rss=$RSS_KB
    echo "   ${c_secs}s, unchanged $(synced unchanged resync), peak RSS $((c_rss / 1024)) MB"
}

# storage_floor SCHEMA_DB < SQL: (a2) SQLite alone running SQL (from stdin) on an empty
# database with SCHEMA_DB's schema, in WAL mode as roster runs it; sets a2_secs.
storage_floor() {
    echo "== (a2) sqlite3 set-wise insert into roster's schema (the storage floor)"
    rm -f "$out/floor.db" "$out/floor.db-wal" "$out/floor.db-shm"
    {
        echo "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
        sqlite3 "$1" .schema | grep -v '^CREATE TABLE sqlite_'
        cat
    } > "$out/floor.sql"
    run_timed floor sqlite3 "$out/floor.db" ".read $out/floor.sql"
    a2_secs=$SECS
    echo "   ${a2_secs}s, $(sqlite3 "$out/floor.db" "select count(*) from users") users"
}

# pg_start DIR: a throwaway PostgreSQL server (Debian's package) in DIR, listening on a unix
# socket there only, with the server's default durability; sets PG_URL (database "bench")
# and PSQL (psql on that database). As root, the server runs as the `postgres` account.
pg_start() {
    local dir=$1 bin
    bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)")
    [ -x "$bin/initdb" ] || { echo "no PostgreSQL: run 'make setup'" >&2; exit 2; }
    local as=()
    [ "$(id -u)" = 0 ] && as=(runuser -u postgres --)
    pg_stop "$dir"
    rm -rf "$dir"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    "${as[@]}" "$bin/initdb" -D "$dir/data" -U roster -A trust > "$dir/initdb.log"
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w \
        -o "-k $dir -c listen_addresses=''" start > /dev/null
    PG_DIR=$dir
    PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -U roster)
    "${PSQL[@]}" -d postgres -c "CREATE DATABASE bench" > /dev/null
    PG_URL="postgres://roster@$(printf %s "$dir" | sed 's|/|%2F|g')/bench"
    PSQL+=(-d bench)
}

# pg_stop DIR: stops pg_start's server, if it runs.
pg_stop() {
    local bin as=()
    bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -n 1)")
    [ "$(id -u)" = 0 ] && as=(runuser -u postgres --)
    [ -f "$1/data/postmaster.pid" ] && "${as[@]}" "$bin/pg_ctl" -D "$1/data" -m fast stop > /dev/null || true
}

# pg_side ROSTER CONFIG PLUGIN CSV COLUMNS HEADER: the same sync on PostgreSQL, beside
# SQLite's (STORES=sqlite skips it). (p) COPY of CSV (HEADER: true or false) into a table of
# COLUMNS, the first its primary key: PostgreSQL's reference, as `.import` is SQLite's;
# (pb) roster's initial sync into an empty PostgreSQL database and (pc) its no-change resync,
# with CONFIG's `database` pointed there. Sets p_secs, pb_secs, pb_rss, pc_secs, pc_rss.
pg_side() {
    [ "${STORES:-sqlite,postgres}" = sqlite ] && return 0
    local roster=$1 config=$2 plugin=$3 csv=$4 columns=$5 header=$6
    local pgconfig=${config%.toml}-pg.toml
    # (Stopped at the end; a failed run's server is stopped by the next pg_start.)
    pg_start "$out/pg"
    echo "== (p) PostgreSQL COPY"
    run_timed pgcopy "${PSQL[@]}" \
        -c "CREATE TABLE u(${columns/ TEXT,/ TEXT PRIMARY KEY,})" \
        -c "\\copy u FROM '$csv' WITH (FORMAT csv, HEADER $header)"
    p_secs=$SECS
    echo "   ${p_secs}s, $("${PSQL[@]}" -At -c "select count(*) from u") rows"
    sed "s|^database = .*|database = \"$PG_URL\"|" "$config" > "$pgconfig"
    # This host's compile cache lives beside the config there: warm it as (b)'s was.
    "$roster" --config "$pgconfig" plugin inspect "$plugin" > /dev/null
    echo "== (pb) roster initial sync into PostgreSQL"
    run_timed pg-initial "$roster" --config "$pgconfig" sync --json
    pb_secs=$SECS pb_rss=$RSS_KB
    echo "   ${pb_secs}s, created $(synced created pg-initial), peak RSS $((pb_rss / 1024)) MB"
    echo "== (pc) roster no-change resync on PostgreSQL"
    run_timed pg-resync "$roster" --config "$pgconfig" sync --json
    pc_secs=$SECS pc_rss=$RSS_KB
    echo "   ${pc_secs}s, unchanged $(synced unchanged pg-resync), peak RSS $((pc_rss / 1024)) MB"
    pg_stop "$out/pg"
}

# pg_side_stored ROSTER CONFIG PLUGIN SQLITE_DB: pg_side, with (p) the COPY of the users
# roster stored in SQLITE_DB (username, name, email, personal number).
pg_side_stored() {
    [ "${STORES:-sqlite,postgres}" = sqlite ] && return 0
    sqlite3 -csv "$4" "SELECT username, full_name, email, personal_number FROM users" > "$out/users.csv"
    pg_side "$1" "$2" "$3" "$out/users.csv" \
        "username TEXT, full_name TEXT, email TEXT, personal_number TEXT" false
}

# pg_report A_LABEL A_SECS: pg_side's results, against COPY and against the source's own
# reference (the fetch).
pg_report() {
    [ -n "${p_secs:-}" ] || return 0
    echo "  PostgreSQL (reference: COPY, as .import is SQLite's):"
    printf '  %-38s %10ss\n' "(p) PostgreSQL COPY" "$p_secs"
    printf '  %-38s %10ss  (%sx of (p), %sx of %s)\n' "(pb) roster initial sync" "$pb_secs" \
        "$(ratio "$pb_secs" "$p_secs")" "$(ratio "$pb_secs" "$2")" "$1"
    printf '  %-38s %10ss  (%sx of (p), %sx of %s)\n' "(pc) roster no-change resync" "$pc_secs" \
        "$(ratio "$pc_secs" "$p_secs")" "$(ratio "$pc_secs" "$2")" "$1"
    printf '  %-38s %10s MB\n' "roster peak RSS on PostgreSQL" "$(( (pb_rss > pc_rss ? pb_rss : pc_rss) / 1024 ))"
}
