#!/usr/bin/env bash
# Issue 14's benchmark: jobs per minute with 1, 2 and 3 `quantd serve`
# replicas on one PostgreSQL job store and one S3-protocol object store
# (tests/s3/serve.py: s3rver behind a SigV4-checking proxy; each replica
# caches in its own data folder), and the
# latency of watch events on the replica that runs a job and on the others
# (bench/replicas/measure.py). Workers x threads: 1 replica runs 2 workers
# of 1 thread, 2 and 3 replicas 1 worker of 1 thread each (3 replicas put
# 3 threads on a 2-core machine: say so when quoting it).
#
#   bench/replicas/run.sh [JOBS=30]
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
jobs=${1:-30}
quantd=build/server/quantd
[[ -x "$quantd" ]] || { echo "build quantd first (tools/build.sh)" >&2; exit 1; }
source tests/service/serve_lib.sh
source tests/service/pg_lib.sh
source tests/service/s3_lib.sh
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  pg_stop
  s3_stop
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export OMP_NUM_THREADS=1
pg_start "$work" >/dev/null || { echo "PostgreSQL did not start" >&2; exit 1; }
s3_start "$work" || { echo "S3 did not start (tests/s3/install.sh)" >&2; exit 1; }
echo "quantd $(git rev-parse --short HEAD), $(nproc --all) cores, $(date -u '+%Y-%m-%d %H:%M UTC')"
for n in 1 2 3; do
  db="quantd_r$n"
  pg_sql "CREATE DATABASE $db" >/dev/null
  url="${pg_url%/*}/$db"
  workers=$([[ $n == 1 ]] && echo 2 || echo 1)
  addresses=()
  for i in $(seq 0 $((n - 1))); do
    mkdir -p "$work/n$n/r$i"
    quantd_start "$root/$quantd" "$work/n$n/r$i" --data-dir "$work/n$n/r$i/data" \
      --job-store "$url" --blob-store "s3://quantd/bench-r$n" --s3-endpoint "$s3_endpoint" \
      --workers "$workers" --threads-per-job 1 ||
      { cat "$work/n$n/r$i/serve.err"; exit 1; }
    pids+=("$server"); addresses+=("$address")
  done
  PYTHONPATH="$root/build/python:$root/python" /usr/bin/python3 \
    bench/replicas/measure.py "$root/testdata" "$jobs" "${addresses[@]}"
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  # Only the replicas: a bare `wait` would also wait for the S3 server.
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
done
