#!/usr/bin/env bash
# Issue 13's real-size jobs end to end: makes the fixtures that are missing
# (random weights, seeded; never committed), runs each job with
# `quantd run-job` under /usr/bin/time, and prints wall time, peak RSS and
# run-job's per-stage time and peak memory.
#
#   bench/models/run_jobs.sh DIR                # ResNet-50, BERT, GPT-2
#   bench/models/run_jobs.sh DIR --with-llama   # + the 1.1B decoder (~15 min,
#                                               #   13 GB RAM, 9 GB of disk)
#
# Jobs: ResNet-50 W8A8 static (64 calibration, 32 evaluation images),
# BERT-base-shaped encoder W8A8 static with a 2-class head, GPT-2-small W4
# g128 GPTQ weight-only, and TinyLlama-shaped 1.1B W4 g128 GPTQ. Needs the
# build (build/server/quantd) and Debian's /usr/bin/python3 with
# python3-torch. Threads: OMP_NUM_THREADS (default 2).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { sed -n 2,15p "$0"; exit 2; }
dir=$(realpath -m "$1")
with_llama=${2:-}
quantd=build/server/quantd
[ -x "$quantd" ] || { echo "build quantd first (tools/build.sh)" >&2; exit 1; }
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p "$dir"

static_job() {  # name: a W8A8 static per-channel job over DIR/name
  cat > "$dir/$1/job.json" <<JSON
{"displayName": "$1, W8A8 static per-channel",
 "model": {"path": "$dir/$1/model.onnx"},
 "calibrationData": {"path": "$dir/$1/calib.npz"},
 "evaluationData": {"path": "$dir/$1/eval.npz"},
 "mode": "QUANT_MODE_STATIC",
 "weights": {"type": "QUANT_DATA_TYPE_INT8",
             "granularity": "GRANULARITY_PER_CHANNEL"},
 "activations": {"type": "QUANT_DATA_TYPE_UINT8"}}
JSON
}

make_fixture() {  # name script: runs the script unless the model exists
  [ -f "$dir/$1/model.onnx" ] && return 0
  echo "making $1 ($2)" >&2
  /usr/bin/python3 "bench/models/$2" "$dir/$1" >&2
}

jobs=(resnet50 bert gpt2lm)
make_fixture resnet50 make_resnet50.py && static_job resnet50
make_fixture bert make_bert.py && static_job bert
make_fixture gpt2lm make_gpt2_lm.py
if [ "$with_llama" = "--with-llama" ]; then
  make_fixture llama make_llama.py
  jobs+=(llama)
fi

summary=""
for name in "${jobs[@]}"; do
  echo "running $name" >&2
  log="$dir/$name/run.log"
  rm -rf "$dir/$name/out"
  /usr/bin/time -v "$quantd" run-job --quiet --spec "$dir/$name/job.json" \
      --out "$dir/$name/out" > "$log" 2>&1 || { cat "$log" >&2; exit 1; }
  wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$log")
  rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log")
  # The model on disk: the .onnx file and its external data files.
  model_bytes=$(find "$dir/$name" -maxdepth 1 -type f ! -name '*.npz' \
      ! -name '*.json' ! -name '*.log' -print0 | du -sbc --files0-from=- \
      | tail -1 | cut -f1)
  summary+=$(printf '%-9s wall %8s  peak RSS %6.2f GB  (model %.0f MB, RSS %.1fx)\n  %s\n  %s' \
      "$name" "$wall" "$(awk "BEGIN {print $rss_kb * 1024 / 1e9}")" \
      "$(awk "BEGIN {print $model_bytes / 1e6}")" \
      "$(awk "BEGIN {print $rss_kb * 1024 / $model_bytes}")" \
      "$(grep '^stages' "$log")" "$(grep -E '^(fake-quant|weight-only|int8) ' "$log" | head -1)")
  summary+=$'\n'
done
echo
echo "quantd $(git rev-parse --short HEAD), $(nproc) cores, OMP_NUM_THREADS=$OMP_NUM_THREADS, $(date -u '+%Y-%m-%d %H:%M UTC')"
printf '%s' "$summary"
