#!/usr/bin/env bash
# bench/compare.sh [ANCHORS_DIR] — the ledger's throughput beside the anchor systems, in one run.
#
# Builds the release binaries, then for a 3-node `ledger-node dev` cluster and for a single node
# (fresh data directories each time) runs `ledger-client bench` RUNS times and keeps each run's
# JSON. Given ANCHORS_DIR (a folder with run-etcd.sh and run-postgres.sh, which print one JSON line
# per run into $JSONL), it runs those too, right after, so that every figure comes from the same
# sitting on the same machine. Prints the raw JSON lines, then a table with the ratios
# (ledger 3-node ÷ etcd's best txn figure, ledger single node ÷ PostgreSQL's best multi-row
# INSERT figure). BENCHMARKS.md records each run's table with the commit.
#
# Knobs (env): RUNS=3 EMPLOYERS=20 LINES=500 DECLARATIONS=400 CONCURRENCY=8 BATCH=4
#   BASE_PORT=7600 WORK=<temp dir> ANCHOR_ENV (extra env for the anchors, e.g. "MODES=txn")
# Needs: a Rust toolchain, jq; for the anchors whatever their scripts name (etcd, PostgreSQL).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ANCHORS=${1:-}
RUNS=${RUNS:-3}
EMPLOYERS=${EMPLOYERS:-20}
LINES=${LINES:-500}
DECLARATIONS=${DECLARATIONS:-400}
CONCURRENCY=${CONCURRENCY:-8}
BATCH=${BATCH:-4}
BASE_PORT=${BASE_PORT:-7600}
WORK=${WORK:-$(mktemp -d /tmp/pcl-compare.XXXXXX)}
RESULTS="$WORK/results.jsonl"
command -v jq >/dev/null || { echo "compare: jq not found (apt-get install jq)" >&2; exit 1; }

echo "== build (release)" >&2
(cd "$ROOT" && cargo build --release --locked -q -p ledger-node -p ledger-client)
NODE="$ROOT/target/release/ledger-node"
CLIENT="$ROOT/target/release/ledger-client"
: >"$RESULTS"

DEV_PID=
stop_dev() {
  if [[ -n $DEV_PID ]]; then
    kill -TERM "$DEV_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$DEV_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$DEV_PID" 2>/dev/null || true
    DEV_PID=
  fi
}
trap stop_dev EXIT INT TERM

# One ledger configuration: NODES nodes, RUNS bench runs against a fresh store.
ledger_runs() {
  local nodes=$1 label=$2 dir="$WORK/$2"
  rm -rf "$dir"
  "$NODE" dev --data-dir "$dir" --nodes "$nodes" --base-port "$BASE_PORT" >"$WORK/$label.log" 2>&1 &
  DEV_PID=$!
  local url="https://127.0.0.1:$BASE_PORT" ready=
  for _ in $(seq 1 300); do
    if [[ -f $dir/client.toml ]] && LEDGER_CLIENT_CONFIG="$dir/client.toml" "$CLIENT" --node "$url" --retry-for 0 --json status 2>/dev/null \
      | jq -e '.leader | test("none") | not' >/dev/null 2>&1; then ready=1; break; fi
    sleep 0.2
  done
  [[ -n $ready ]] || { echo "compare: the $label ledger did not serve; see $WORK/$label.log" >&2; exit 1; }
  for run in $(seq 1 "$RUNS"); do
    LEDGER_CLIENT_CONFIG="$dir/client.toml" "$CLIENT" --node "$url" --json bench \
      --key "$dir/keys/CN-44.key" --employers "$EMPLOYERS" --lines "$LINES" \
      --declarations "$DECLARATIONS" --concurrency "$CONCURRENCY" --batch "$BATCH" \
      | jq -c --arg system "$label" --argjson run "$run" --arg size "$(du -sb "$dir" | cut -f1)" \
          '{tool: "ledger", system: $system, run: $run} + . + {data_bytes_before_run: ($size | tonumber)}' \
      | tee -a "$RESULTS"
  done
  echo "{\"tool\":\"ledger-disk\",\"system\":\"$label\",\"data_bytes\":$(du -sb "$dir" | cut -f1),\"lines\":$((RUNS * DECLARATIONS * LINES))}" | tee -a "$RESULTS"
  stop_dev
}

echo "== raw (one JSON line per run)"
ledger_runs 3 ledger-3-node
ledger_runs 1 ledger-1-node
if [[ -n $ANCHORS ]]; then
  env ${ANCHOR_ENV:-} JSONL="$RESULTS" bash "$ANCHORS/run-etcd.sh" >"$WORK/etcd.txt" 2>&1 \
    || echo "compare: run-etcd.sh failed; see $WORK/etcd.txt" >&2
  env ${ANCHOR_ENV:-} JSONL="$RESULTS" bash "$ANCHORS/run-postgres.sh" >"$WORK/postgres.txt" 2>&1 \
    || echo "compare: run-postgres.sh failed; see $WORK/postgres.txt" >&2
  grep -h '"tool":"etcd-bench"\|"tool":"pgbench"' "$RESULTS" || true
fi

echo
echo "== table (commit $(git -C "$ROOT" rev-parse --short HEAD), $(date -u +%Y-%m-%dT%H:%MZ))"
jq -r -s '
  def median: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
  def ledger($s): [.[] | select(.tool == "ledger" and .system == $s)];
  def best($tool; $mode): [.[] | select(.tool == $tool and (.failed | not) and ((.mode // .script) == $mode))]
    | max_by(.records_per_s // .rows_per_s);
  def disk($s): (.[] | select(.tool == "ledger-disk" and .system == $s)) | (.data_bytes / .lines / (if $s == "ledger-3-node" then 3 else 1 end) | floor);
  . as $all
  | (ledger("ledger-3-node") | map(.lines_per_second) | median) as $l3
  | (ledger("ledger-1-node") | map(.lines_per_second) | median) as $l1
  | ($all | best("etcd-bench"; "txn")) as $etcd
  | ($all | best("pgbench"; "batch") // ($all | [.[] | select(.tool == "pgbench")] | max_by(.rows_per_s))) as $pg
  | "| system | records/s | p99 ms | ratio |",
    "| --- | ---: | ---: | ---: |",
    (if $etcd then "| etcd 3 members, \($etcd.ops_per_req)-key txn (best) | \($etcd.records_per_s) | \($etcd.lat_p99_ms) | |" else empty end),
    (if $pg then "| PostgreSQL 1 node, \($pg.rows_per_txn)-row INSERT (best) | \($pg.rows_per_s) | \($pg.lat_p99_ms) | |" else empty end),
    "| ledger 3-node dev (median of \(ledger("ledger-3-node") | length); runs \(ledger("ledger-3-node") | map(.lines_per_second | floor) | join(" / "))) | \($l3 | floor) | \(ledger("ledger-3-node") | map(.latency_ms_p99) | median | floor) | \(if $etcd then "\(($l3 / $etcd.records_per_s * 100 | floor) / 100)× etcd" else "" end) |",
    "| ledger single node (median of \(ledger("ledger-1-node") | length)) | \($l1 | floor) | \(ledger("ledger-1-node") | map(.latency_ms_p99) | median | floor) | \(if $pg then "\(($l1 / $pg.rows_per_s * 100 | floor) / 100)× PostgreSQL" else "" end) |",
    "",
    "disk per line per node: 3-node \(disk("ledger-3-node")) B, single node \(disk("ledger-1-node")) B (whole data directory, after the runs)"
' "$RESULTS"
echo
echo "raw results: $RESULTS"
