#!/usr/bin/env bash
# Three `quantd serve` replicas on one real PostgreSQL job store and one
# real S3-protocol object store (s3rver behind a SigV4-checking proxy), each
# replica with its own data folder as its cache: jobs submitted round-robin
# through all three (each uploads its model through the replica it talks
# to, and another replica may run it); the replica running a
# slow job is kill -9'd mid-job; watches opened on the other replicas follow
# that job to SUCCEEDED after its lease runs out and a live replica runs it
# again (attempt 2). Every job SUCCEEDED, none ran twice at once (each
# job's state changes alternate RUNNING with QUEUED/terminal), and every
# artifact downloads with its sha256 verified, from a replica that did not
# write it, and the bucket holds every upload and artifact. Leases are 10 s (renewed every
# 3.3 s), so a heartbeat delayed by a busy machine does not expire a live
# replica's lease.
#
#   tests/service/replicas_test.sh QUANTD_BIN QUANTCTL_BIN SOURCE_ROOT [FAST_JOBS=29]
set -euo pipefail
source "$(dirname "$0")/serve_lib.sh"
quantd=$1 quantctl=$2 root=$3 jobs=${4:-29}
work=$(mktemp -d)
source "$(dirname "$0")/pg_lib.sh"
source "$(dirname "$0")/s3_lib.sh"
pids=(); addresses=(); replica_ids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  pg_stop
  s3_stop
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  for i in 0 1 2; do tail -3 "$work/r$i/serve.err" 2>/dev/null; done
  exit 1
}
export OMP_NUM_THREADS=1

pg_start "$work" || fail "PostgreSQL did not start"
s3_start "$work" || fail "S3 did not start (tests/s3/install.sh; python3-botocore)"
for i in 0 1 2; do
  mkdir -p "$work/r$i"
  quantd_start "$quantd" "$work/r$i" --data-dir "$work/r$i/data" --job-store "$pg_url" \
    --blob-store s3://quantd/replicas --s3-endpoint "$s3_endpoint" \
    --threads-per-job 1 --lease-seconds 10 || fail "replica $i did not start"
  pids+=("$server"); addresses+=("$address")
  for _ in $(seq 50); do
    id=$(sed -n 's/.*replica \([^ :]*\): job store.*/\1/p' "$work/r$i/serve.err")
    [[ -n "$id" ]] && break; sleep 0.1
  done
  [[ -n "$id" ]] || fail "replica $i did not log its id"
  replica_ids+=("$id")
done
ctl() { local i=$1; shift; "$quantctl" --server "${addresses[$i]}" "$@"; }

cd "$root"
# The slow job first (QAT on the tiny GPT: many seconds at one thread),
# then the fast ones round-robin.
cat >"$work/slow.json" <<'JSON'
{"method": "METHOD_QAT", "weights": {"type": "QUANT_DATA_TYPE_INT4"},
 "sensitivity": {"disabled": true},
 "qat": {"maxSteps": 200, "batchSize": 16, "learningRate": 0.0001,
         "checkpointEverySteps": 10}}
JSON
slow=$(ctl 0 quantize testdata/tiny_gpt/model.onnx --calib testdata/tiny_gpt/calib.npz \
  --eval testdata/tiny_gpt/eval.npz --spec "$work/slow.json" --detach) || fail "slow job"
all=("$slow")
for n in $(seq "$jobs"); do
  j=$(ctl $((n % 3)) quantize testdata/fmnist_mlp/model.onnx \
    --eval testdata/fmnist/eval.npz --mode dynamic --detach) || fail "job $n"
  all+=("$j")
done

# Watch the slow job from every replica; kill the replica that runs it
# once its first checkpoint is in the bucket (the replica that takes the job
# over has its own data folder, so it can only resume from there).
watch_pids=()
for i in 0 1 2; do
  ctl $i --json jobs watch "$slow" >"$work/watch$i.jsonl" 2>"$work/watch$i.err" &
  watch_pids+=($!)
done
owner=""
for _ in $(seq 3000); do
  owner=$(pg_sql "SELECT convert_from(lease_owner, 'UTF8') FROM jobs WHERE id = convert_to('${slow#jobs/}', 'UTF8') AND state = 2")
  [[ -n "$owner" ]] && break; sleep 0.05
done
[[ -n "$owner" ]] || fail "the slow job never ran"
victim=-1
for i in 0 1 2; do [[ "${replica_ids[$i]}" == "$owner" ]] && victim=$i; done
[[ $victim -ge 0 ]] || fail "no replica is $owner"
checkpoint="$s3_dir/data/quantd/replicas/checkpoints/${slow#jobs/}.npz._S3rver_object"
for _ in $(seq 1200); do [[ -e "$checkpoint" ]] && break; sleep 0.1; done
[[ -e "$checkpoint" ]] || fail "no checkpoint of $slow reached the bucket"
kill -9 "${pids[$victim]}"
kill "${watch_pids[$victim]}" 2>/dev/null || true  # its server is gone
echo "killed replica $victim ($owner) running $slow"

# The watches on the two live replicas follow the job to its end there.
for i in 0 1 2; do
  [[ $i == "$victim" ]] && continue
  wait "${watch_pids[$i]}" ||
    { cat "$work/watch$i.err"; fail "the watch on replica $i did not end in SUCCEEDED"; }
  grep -q JOB_STATE_SUCCEEDED "$work/watch$i.jsonl" || fail "the watch on replica $i did not see SUCCEEDED"
done
watcher=$(((victim + 1) % 3))

live=$(((victim + 2) % 3))
for j in "${all[@]}"; do
  ctl $live --json jobs watch "$j" >"$work/events.jsonl" || fail "$j did not succeed"
  /usr/bin/python3 - "$work/events.jsonl" "$j" <<'PY' || fail "$j ran twice at once"
import json, sys
changes = []
for line in open(sys.argv[1]):
    e = json.loads(line)
    if "stateChange" in e:
        changes.append(e["stateChange"])
running = False
for c in changes:
    if c == "JOB_STATE_RUNNING":
        if running:
            sys.exit(f"{sys.argv[2]}: RUNNING twice without QUEUED between: {changes}")
        running = True
    elif c in ("JOB_STATE_QUEUED", "JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED",
               "JOB_STATE_CANCELLED"):
        running = False
if not changes or changes[-1] != "JOB_STATE_SUCCEEDED":
    sys.exit(f"{sys.argv[2]}: ended {changes[-1:]}")
PY
  ctl $live download "$j" --kind model --out "$work/model.onnx" >/dev/null ||
    fail "downloading $j's model (sha256 verified) failed"
  rm -f "$work/model.onnx"
done
# Every job's artifacts are in the bucket, whichever replica wrote them.
missing=0
for d in $(pg_sql "SELECT convert_from(model_sha256, 'UTF8') || ' ' || convert_from(report_sha256, 'UTF8') FROM jobs"); do
  [[ -f "$s3_dir/data/quantd/replicas/blobs/sha256/${d:0:2}/$d._S3rver_object" ]] || missing=$((missing + 1))
done
[[ $missing == 0 ]] || fail "$missing artifacts are not in the bucket"
echo "bucket: $(s3_objects quantd/replicas/blobs/sha256) blobs; replica caches: $(find "$work"/r*/data/blobs/sha256 -type f | wc -l) files in all"
ctl $live --json jobs get "$slow" >"$work/slow.json"
/usr/bin/python3 - "$work/slow.json" <<'PY' || fail "$slow did not resume from the bucket's checkpoint"
import json, sys
warnings = json.load(open(sys.argv[1])).get("report", {}).get("warnings", [])
resumed = [w for w in warnings if "resumed from the checkpoint at step" in w]
print("slow job:", resumed)
sys.exit(0 if resumed else 1)
PY
[[ ! -e "$checkpoint" ]] || fail "the checkpoint outlived the job in the bucket"
attempts=$(pg_sql "SELECT attempts FROM jobs WHERE id = convert_to('${slow#jobs/}', 'UTF8')")
[[ "$attempts" == 2 ]] || fail "the killed replica's job has $attempts attempts, expected 2"
echo "PASS: $((jobs + 1)) jobs SUCCEEDED on 3 replicas, none twice at once; $slow finished after its replica was killed (attempts 2, resumed from the bucket's checkpoint), seen through replica $watcher"
