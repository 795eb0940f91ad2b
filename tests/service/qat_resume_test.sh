#!/usr/bin/env bash
# A QAT job through a real quantd serve, killed with SIGKILL mid-training,
# resumes from its checkpoint after a restart and finishes; the report says
# from which step it resumed, and the checkpoint is gone afterwards.
#
#   tests/service/qat_resume_test.sh QUANTD_BIN QUANTCTL_BIN SOURCE_ROOT
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
  quantd_start "$quantd" "$work" --data-dir "$work/data" --threads-per-job 1 ||
    fail "quantd did not start"
}

cat >"$work/spec.json" <<'JSON'
{"method": "METHOD_QAT", "weights": {"type": "QUANT_DATA_TYPE_INT4"},
 "sensitivity": {"disabled": true},
 "qat": {"maxSteps": 120, "batchSize": 16, "learningRate": 0.0001,
         "checkpointEverySteps": 10}}
JSON
cd "$root"
start
job=$("$quantctl" --server "$address" quantize testdata/tiny_gpt/model.onnx \
  --calib testdata/tiny_gpt/calib.npz --eval testdata/tiny_gpt/eval.npz \
  --spec "$work/spec.json" --detach)
id=${job#jobs/}
for _ in $(seq 600); do [[ -e "$work/data/checkpoints/$id.npz" ]] && break; sleep 0.1; done
[[ -e "$work/data/checkpoints/$id.npz" ]] || fail "no checkpoint appeared"
sleep 1  # a few more steps past the first checkpoint
kill -9 "$server"
wait "$server" 2>/dev/null || true
server=""

start
"$quantctl" --server "$address" jobs watch "$job" >/dev/null ||
  fail "the QAT job did not succeed after the restart"
"$quantctl" --server "$address" --json jobs get "$job" >"$work/job.json"
/usr/bin/python3 - "$work/job.json" <<'PY' || fail "the report does not show a resume"
import json, sys
job = json.load(open(sys.argv[1]))
warnings = job.get("report", {}).get("warnings", [])
resumed = [w for w in warnings if "resumed from the checkpoint at step" in w]
print("report:", resumed, "attempts", job.get("attempts"))
sys.exit(0 if resumed and job.get("attempts") == 2 else 1)
PY
[[ ! -e "$work/data/checkpoints/$id.npz" ]] || fail "the checkpoint outlived the job"
echo "PASS: QAT resumed from its checkpoint after SIGKILL"
