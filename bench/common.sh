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
