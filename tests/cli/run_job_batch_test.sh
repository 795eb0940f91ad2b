#!/usr/bin/env bash
# quantd run-job as the batch path (Kubernetes Jobs): exit codes for bad
# input (2) and for an interrupted run (3, nothing written), and the job's
# metrics pushed to a real Prometheus Pushgateway.
#
#   tests/cli/run_job_batch_test.sh QUANTD_BIN SOURCE_ROOT
set -euo pipefail
quantd=$1 root=$2
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
export OMP_NUM_THREADS=1
cd "$root"

# Bad input: exit 2.
echo '{"model": {"path": "no/such/model.onnx"}, "mode": "QUANT_MODE_DYNAMIC", "evaluationData": {"path": "testdata/fmnist/eval.npz"}}' >"$work/bad.json"
rc=0; "$quantd" run-job --spec "$work/bad.json" --out "$work/bad" --quiet 2>/dev/null || rc=$?
[[ $rc -eq 2 ]] || fail "a spec naming a missing model exited $rc, expected 2"

# SIGTERM mid-job: exit 3, nothing written.
"$quantd" run-job --spec examples/tiny_gpt_w8a8_smoothquant.json \
  --out "$work/interrupted" 2>"$work/interrupted.err" &
job=$!
for _ in $(seq 200); do grep -q "calibrate" "$work/interrupted.err" && break; sleep 0.05; done
kill -TERM "$job"
rc=0; wait "$job" || rc=$?
[[ $rc -eq 3 ]] || fail "run-job interrupted by SIGTERM exited $rc, expected 3"
[[ ! -e "$work/interrupted/model.quant.onnx" && ! -e "$work/interrupted/report.json" ]] ||
  fail "an interrupted run-job left artifacts behind"

# Metrics to a real Pushgateway.
if ! command -v prometheus-pushgateway >/dev/null; then
  echo "SKIP pushgateway part: prometheus-pushgateway is not installed (tools/install-deps.sh)"
  exit 0
fi
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
prometheus-pushgateway --web.listen-address="127.0.0.1:$port" >"$work/pgw.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/metrics" >/dev/null && break; sleep 0.1; done
"$quantd" run-job --spec examples/fmnist_mlp_dynamic.json --out "$work/ok" \
  --quiet --push-gateway "127.0.0.1:$port" >/dev/null ||
  fail "run-job with --push-gateway failed"
[[ -s "$work/ok/model.quant.onnx" && -s "$work/ok/report.json" ]] ||
  fail "run-job did not write its model and report"
metrics=$(curl -fs "http://127.0.0.1:$port/metrics")
grep -E '^quantd_job_accuracy_delta_points\{.*job="quantd-batch".*model="fmnist-mlp".*\} ' <<<"$metrics" ||
  fail "the Pushgateway has no accuracy delta for the batch job"
grep -qE '^quantd_jobs_finished_total\{.*method="ptq".*outcome="succeeded"\} 1' <<<"$metrics" ||
  fail "the Pushgateway has no finished-job count"
echo "PASS: exit codes 2 and 3, metrics pushed"
