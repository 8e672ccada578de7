#!/usr/bin/env bash
# Builds every AFL++ target (cargo-afl, stable toolchain) and fuzzes each for SECONDS (default
# 60) at the lowest CPU priority, then prints executions, exec/s, edges and crashes per target.
# Usage: fuzz/run.sh [SECONDS] [TARGET...]
#   JOBS=N fuzz/run.sh ...   runs N targets at a time (default 1).
# Needs once: cargo install cargo-afl && cargo afl config --build
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(submit json_event statement checkpoint read_token raft_append_entries raft_vote
             raft_install_snapshot raft_replies raft_entry snapshot)
fi
jobs=${JOBS:-1}

# No CPU frequency control and no crash handler to configure in a container; the machine's cores
# are shared, so AFL must not pin itself to one.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1 AFL_NO_UI=1

nice -n 19 cargo afl build --release --quiet
# Seeds are regenerated from the current encodings, then every corpus file (kept crash inputs
# included) must satisfy its target's contract before any fuzzing.
nice -n 19 ./target/release/seeds corpus
nice -n 19 ./target/release/replay corpus

# Per-run timeout of 5 s: at nice 19 on a loaded machine a slow run is starvation, not a hang.
fuzz_one() {
    local t=$1 stats="out/$1/default/fuzzer_stats"
    rm -rf "out/$t"
    if ! nice -n 19 cargo afl fuzz -V "$secs" -t 5000 -i "corpus/$t" -o "out/$t" \
        -- "./target/release/$t" >"out/$t.log" 2>&1; then
        echo "$t: afl-fuzz failed, see fuzz/out/$t.log" >"out/$t.row"
        return
    fi
    get() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
    printf '%-22s %12s %8s %14s %8s\n' "$t" "$(get execs_done)" "$(get execs_per_sec)" \
        "$(get edges_found)/$(get total_edges)" "$(get saved_crashes)" >"out/$t.row"
    # Crash inputs are kept for the fix and its regression test (then moved into corpus/).
    if compgen -G "out/$t/default/crashes/id*" >/dev/null; then
        mkdir -p "crashes/$t"
        for f in "out/$t/default/crashes/"id*; do
            cp "$f" "crashes/$t/$(basename "$f" | tr ':,' '__')"
        done
    fi
}

mkdir -p out
for t in "${targets[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    fuzz_one "$t" &
done
wait
printf '%-22s %12s %8s %14s %8s\n' target execs exec/s edges crashes
for t in "${targets[@]}"; do cat "out/$t.row"; done
