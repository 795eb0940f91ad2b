#!/usr/bin/env bash
# The peer benchmark (issue 12): quantd fp32, quantd int8, ONNX Runtime fp32
# and ONNX Runtime on quantd's own QDQ artifact, on the same files, batch and
# thread count, interleaved round by round so that a noisy neighbour hits
# all four alike. Prints one table row per model; figures go to
# bench/README.md by hand, with the command.
#
#   bench/peer/run.sh [--batch N] [--threads N] [--rounds N] [WORK_DIR]
#
# Models (generated into WORK_DIR by bench/models/*.py, random weights,
# reused when present): static W8A8 at --batch on the fixture CNN
# (testdata/fmnist_cnn), torchvision's ResNet-50 (102 MB) and a
# BERT-base-shaped encoder (sequence 128, 438 MB); weight-only int4 group
# 128 on a GPT-2-small-shaped decoder step with a 128-token KV cache (653
# MB) at batch 1 and 8 whatever --batch is (rows gpt2_b1, gpt2_b8: there the
# "int8" columns are quantd's int4 weight-only kernel and ONNX Runtime on
# quantd's blocked-DequantizeLinear artifact). Needs a built quantd
# (build/server/quantd), Debian's python3-torch/torchvision/numpy for the
# fixtures, and tests/ort/install.sh's onnxruntime-node.
set -euo pipefail
cd "$(dirname "$0")/../.."

batch=16
threads=2
rounds=3
work=/tmp/quantd-peer
while [[ $# -gt 0 ]]; do
  case "$1" in
    --batch) batch=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    -h|--help) sed -n 2,20p "$0"; exit 0 ;;
    *) work=$1; shift ;;
  esac
done
quantd=build/server/quantd
py=/usr/bin/python3
mkdir -p "$work"

# Writes <name>.npy for every array of an .npz (its first $batch samples,
# repeated if it has fewer) and the same as batch.npz, into $2.
take_batch() {
  "$py" - "$1" "$2" "$batch" <<'PY'
import sys, numpy as np
src, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
arrays = {}
for name, x in np.load(src).items():
    reps = -(-n // x.shape[0])
    arrays[name] = np.concatenate([x] * reps)[:n]
    np.save(f"{out}/{name}.npy", arrays[name])
np.savez(f"{out}/batch.npz", **arrays)
PY
}

static_w8a8='"mode": "QUANT_MODE_STATIC",
 "weights": {"type": "QUANT_DATA_TYPE_INT8", "granularity": "GRANULARITY_PER_CHANNEL"},
 "activations": {"type": "QUANT_DATA_TYPE_UINT8"}'
weight_only_w4='"mode": "QUANT_MODE_WEIGHT_ONLY",
 "weights": {"type": "QUANT_DATA_TYPE_INT4", "granularity": "GRANULARITY_PER_GROUP", "groupSize": 128}'

# Model dir with model.onnx, calib.npz, eval.npz -> out/model.quant.onnx,
# with the scheme in $2 (default static W8A8).
quantize() {
  local dir=$1 scheme=${2:-$static_w8a8}
  cat > "$dir/spec.json" <<JSON
{"model": {"path": "$dir/model.onnx"},
 "calibrationData": {"path": "$dir/calib.npz"},
 "evaluationData": {"path": "$dir/eval.npz"},
 "method": "METHOD_PTQ", $scheme,
 "sensitivity": {"disabled": true}}
JSON
  OMP_NUM_THREADS=$threads "$quantd" run-job --spec "$dir/spec.json" \
      --out "$dir/out" > "$dir/job.log" 2>&1 ||
    { echo "quantize $dir failed:"; tail -5 "$dir/job.log"; exit 1; }
}

r50=$work/resnet50
if [[ ! -f $r50/model.onnx ]]; then
  "$py" bench/models/make_resnet50.py "$r50" --batch "$batch"
fi
cnn=$work/fmnist_cnn
mkdir -p "$cnn"
cp testdata/fmnist_cnn/model.onnx "$cnn/model.onnx"
cp testdata/fmnist/calib.npz "$cnn/calib.npz"
cp testdata/fmnist/eval.npz "$cnn/eval.npz"

echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs);" \
     "vnni: $(grep -q avx512_vnni /proc/cpuinfo && echo yes || echo no);" \
     "threads $threads, batch $batch, $rounds rounds"
printf '%-12s %12s %12s %12s %12s %10s %10s %10s\n' model quantd_fp32 \
    ort_fp32 quantd_int8 ort_qdq "ort/q fp32" "ort/q int8" "q int8/fp32"
# One table row: $1 name, $2 model dir, $3 data .npz, $4 ORT input dir, $5
# quantized model for ORT, then extra run-model flags.
row() {
  local name=$1 dir=$2 npz=$3 inputs=$4 qmodel=$5
  shift 5
  local qf=() qi=() of=() oq=() line
  for ((r = 0; r < rounds; ++r)); do
    line=$(OMP_NUM_THREADS=$threads "$quantd" run-model --model \
        "$dir/model.onnx" --data "$npz" --repeats 5 "$@" | grep '^latency')
    qf+=("$(sed -E 's/.*fp32 ([0-9.]+) ms, .*/\1/' <<<"$line")")
    qi+=("$(sed -E 's/.*, [a-z0-9]+ ([0-9.]+) ms \(medians.*/\1/' <<<"$line")")
    of+=("$(node bench/peer/ort_time.js "$dir/model.onnx" "$inputs" \
        --threads="$threads" --repeats=5 | sed -E 's/.*"median_ms":([0-9.]+).*/\1/')")
    oq+=("$(node bench/peer/ort_time.js "$qmodel" "$inputs" \
        --threads="$threads" --repeats=5 | sed -E 's/.*"median_ms":([0-9.]+).*/\1/')")
  done
  "$py" - "$name" "${qf[*]}" "${of[*]}" "${qi[*]}" "${oq[*]}" <<'PY'
import statistics, sys
name = sys.argv[1]
qf, of, qi, oq = ([float(v) for v in a.split()] for a in sys.argv[2:6])
m = [statistics.median(v) for v in (qf, of, qi, oq)]
cell = lambda v: f"{statistics.median(v):.2f} ({min(v):.1f}-{max(v):.1f})"
print(f"{name:<12} {cell(qf):>12} {cell(of):>12} {cell(qi):>12} {cell(oq):>12}"
      f" {m[1] / m[0]:>9.2f}x {m[3] / m[2]:>9.2f}x {m[0] / m[2]:>9.2f}x")
PY
}

bert=$work/bert
[[ -f $bert/model.onnx ]] || "$py" bench/models/make_bert.py "$bert"
for dir in "$cnn" "$r50" "$bert"; do
  take_batch "$dir/eval.npz" "$dir"
  [[ -f $dir/out/model.quant.onnx ]] || quantize "$dir"
  row "$(basename "$dir")" "$dir" "$dir/batch.npz" "$dir" \
      "$dir/out/model.quant.onnx"
done
gpt2=$work/gpt2
[[ -f $gpt2/model.onnx ]] || "$py" bench/models/make_gpt2.py "$gpt2"
[[ -f $gpt2/out/model.quant.onnx ]] || quantize "$gpt2" "$weight_only_w4"
for b in 1 8; do
  row "gpt2_b$b" "$gpt2" "$gpt2/step_b$b.npz" "$gpt2/step_b$b" \
      "$gpt2/out/model.quant.onnx" --weight-only 4 --group-size 128
done
echo "ms are medians over rounds (range in brackets); ort/q < 1 means ORT is faster"
