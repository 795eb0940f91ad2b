#!/usr/bin/env bash
# SIGTERM on a real quantd serve with a job running: readiness (gRPC health)
# goes NOT_SERVING, new jobs get UNAVAILABLE (quantctl exit 3), the running
# job is re-queued after the grace period, the process exits 0; a restart on
# the same data folder runs the job to SUCCEEDED (attempts 2).
#
#   tests/service/sigterm_test.sh QUANTD_BIN QUANTCTL_BIN SOURCE_ROOT
set -euo pipefail
source "$(dirname "$0")/serve_lib.sh"
quantd=$1 quantctl=$2 root=$3
work=$(mktemp -d)
server=""
cleanup() {
  [[ -n "$server" ]] && kill -9 "$server" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -5 "$work/serve.err" 2>/dev/null; exit 1; }
export OMP_NUM_THREADS=1

start() {
  quantd_start "$quantd" "$work" --data-dir "$work/data" --threads-per-job 1 --grace-seconds 2 ||
    fail "quantd did not start"
}
health() { grpc_health "$address" "${1:-}"; }
state_of() {
  "$quantctl" --server "$address" --json jobs get "$1" |
    /usr/bin/python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["state"], j.get("attempts", 0))'
}

cd "$root"
start
[[ "$(health)" == "SERVING" ]] || fail "health is not SERVING after start"
# Kubernetes probes often name the service.
[[ "$(health quantd.v1.QuantizationService)" == "SERVING" ]] ||
  fail "health of quantd.v1.QuantizationService is not SERVING after start"
# A job that outlasts the 2 s grace by far whatever the machine's speed:
# a PTQ job on the tiny GPT once did, until the engine got faster and it
# finished inside the grace period (attempts 1). 120 QAT steps at one thread
# take several times the grace period, and resume from a checkpoint.
cat >"$work/spec.json" <<'JSON'
{"method": "METHOD_QAT", "weights": {"type": "QUANT_DATA_TYPE_INT4"},
 "sensitivity": {"disabled": true},
 "qat": {"maxSteps": 120, "batchSize": 16, "learningRate": 0.0001,
         "checkpointEverySteps": 10}}
JSON
job=$("$quantctl" --server "$address" quantize testdata/tiny_gpt/model.onnx \
  --calib testdata/tiny_gpt/calib.npz --eval testdata/tiny_gpt/eval.npz \
  --spec "$work/spec.json" --detach)
for _ in $(seq 200); do
  [[ "$(state_of "$job")" == JOB_STATE_RUNNING* ]] && break; sleep 0.05
done
[[ "$(state_of "$job")" == JOB_STATE_RUNNING* ]] || fail "the job did not start"

kill -TERM "$server"
sleep 0.5
[[ "$(health)" == "NOT_SERVING" ]] || fail "health is not NOT_SERVING while draining"
[[ "$(health quantd.v1.QuantizationService)" == "NOT_SERVING" ]] ||
  fail "health of quantd.v1.QuantizationService is not NOT_SERVING while draining"
rc=0
"$quantctl" --server "$address" quantize testdata/fmnist_mlp/model.onnx \
  --eval testdata/fmnist/eval.npz --mode dynamic --detach >/dev/null 2>&1 || rc=$?
[[ $rc -eq 3 ]] || fail "a job created while draining got exit $rc, expected 3 (UNAVAILABLE)"
rc=0; wait "$server" || rc=$?
server=""
[[ $rc -eq 0 ]] || fail "quantd exited $rc after SIGTERM"
grep -q "draining" "$work/serve.err" || fail "no drain in the log"

start
"$quantctl" --server "$address" jobs watch "$job" >/dev/null ||
  fail "the re-queued job did not succeed after the restart"
read -r state attempts <<<"$(state_of "$job")"
[[ "$state" == "JOB_STATE_SUCCEEDED" && "$attempts" == "2" ]] ||
  fail "after the restart: $state, attempts $attempts (expected SUCCEEDED, 2)"
echo "PASS: SIGTERM drained (NOT_SERVING, UNAVAILABLE), re-queued, finished after restart"
