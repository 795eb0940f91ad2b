#!/usr/bin/env bash
# A real `quantd serve` keeping its jobs in a real PostgreSQL (started here
# with initdb/pg_ctl in a temporary folder): a PTQ job through quantctl runs
# to SUCCEEDED with its job row and events in PostgreSQL (no jobs.db in the
# data folder); after kill -9 of quantd and a restart, the job, its events
# and its artifact are still there; after PostgreSQL itself is killed and
# restarted under a running quantd, the next job still runs (quantd
# reconnects); while PostgreSQL is down, readiness (the service's gRPC
# health) is NOT_SERVING and liveness (the server's) SERVING.
#
#   tests/service/postgres_store_test.sh QUANTD_BIN QUANTCTL_BIN SOURCE_ROOT
set -euo pipefail
source "$(dirname "$0")/serve_lib.sh"
quantd=$1 quantctl=$2 root=$3
work=$(mktemp -d)
server=""
source "$(dirname "$0")/pg_lib.sh"
cleanup() {
  [[ -n "$server" ]] && kill -9 "$server" 2>/dev/null
  pg_stop
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -5 "$work/serve.err" 2>/dev/null; tail -5 "$work/pg.log"; exit 1; }
export OMP_NUM_THREADS=1

pg_start "$work" || fail "PostgreSQL did not start"
url=$pg_url
mkdir -p "$work/data"

start() {
  quantd_start "$quantd" "$work" --data-dir "$work/data" --threads-per-job 1 \
    --job-store "$url" || fail "quantd did not start"
}
state_of() {
  "$quantctl" --server "$address" --json jobs get "$1" |
    /usr/bin/python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["state"], j.get("attempts", 0))'
}
run_job() {  # prints the job id once SUCCEEDED
  local job
  job=$("$quantctl" --server "$address" quantize testdata/fmnist_mlp/model.onnx \
    --eval testdata/fmnist/eval.npz --mode dynamic --detach) || fail "quantize failed"
  "$quantctl" --server "$address" jobs watch "$job" >/dev/null || fail "job $job did not succeed"
  echo "$job"
}

cd "$root"
start
job=$(run_job)
[[ ! -e "$work/data/jobs.db" ]] || fail "quantd wrote jobs.db despite --job-store"
[[ "$(pg_sql "SELECT count(*) FROM jobs WHERE id = convert_to('${job#jobs/}', 'UTF8')")" == 1 ]] ||
  fail "job $job is not in PostgreSQL"
events=$(pg_sql "SELECT count(*) FROM events WHERE job_id = convert_to('${job#jobs/}', 'UTF8')")
[[ "$events" -ge 3 ]] || fail "job $job has $events events in PostgreSQL"

kill -9 "$server"; wait "$server" 2>/dev/null || true; server=""
start
read -r state attempts <<<"$(state_of "$job")"
[[ "$state" == "JOB_STATE_SUCCEEDED" && "$attempts" == "1" ]] ||
  fail "after kill -9 and restart: $state, attempts $attempts"
"$quantctl" --server "$address" jobs watch "$job" >/dev/null || fail "replaying $job's events failed"
"$quantctl" --server "$address" download "$job" --kind model --out "$work/model.onnx" >/dev/null ||
  fail "downloading $job's model failed"
[[ -s "$work/model.onnx" ]] || fail "the downloaded model is empty"

# PostgreSQL down: the service's health (what readiness asks) goes
# NOT_SERVING, the server's own (liveness) stays SERVING; back when it is.
wait_health() {  # SERVICE WANT
  for _ in $(seq 100); do
    [[ "$(grpc_health "$address" "$1")" == "$2" ]] && return 0; sleep 0.1
  done
  return 1
}
pg_stop
wait_health quantd.v1.QuantizationService NOT_SERVING ||
  fail "readiness stayed SERVING with PostgreSQL down"
live=$(grpc_health "$address"); [[ "$live" == "SERVING" ]] || fail "liveness is $live with PostgreSQL down"
pg_ctl_start || fail "PostgreSQL did not start again"
wait_health quantd.v1.QuantizationService SERVING ||
  fail "readiness did not come back with PostgreSQL"

# PostgreSQL crashes and comes back under a running quantd.
pg_restart || fail "PostgreSQL did not restart"
second=$(run_job)
[[ "$(pg_sql "SELECT count(*) FROM jobs")" == 2 ]] || fail "the second job is not in PostgreSQL"
echo "PASS: jobs in PostgreSQL ($job, $second), kept across kill -9 of quantd and a PostgreSQL restart"
