#!/usr/bin/env bash
# Issue 15's method x scheme table on the tiny transformer LM
# (testdata/tiny_gpt): perplexity increase over float, in percent, of the
# exported model's evaluation (fake quantization, what ONNX Runtime runs),
# for each weight scheme and rounding method. Weight-only schemes are
# asymmetric below 4 bits (the convention of GPTQ's and AutoRound's
# low-bit results). Prints one Markdown table row per scheme.
#
#   bench/frontier/run.sh [WORK_DIR=/tmp/quantd-frontier] [MODEL_DIR=testdata/tiny_gpt]
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/tmp/quantd-frontier}
model=$(realpath "${2:-testdata/tiny_gpt}")
quantd=build/server/quantd
[[ -x "$quantd" ]] || { echo "build quantd first (tools/build.sh)" >&2; exit 1; }
mkdir -p "$work"
echo "quantd $(git rev-parse --short HEAD), $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC'), model $model"

# scheme name -> mode and weights JSON
declare -A scheme_json=(
  [W4-pc]='"mode": "QUANT_MODE_WEIGHT_ONLY", "weights": {"type": "QUANT_DATA_TYPE_INT4", "granularity": "GRANULARITY_PER_CHANNEL"}'
  [W4-g32]='"mode": "QUANT_MODE_WEIGHT_ONLY", "weights": {"type": "QUANT_DATA_TYPE_INT4", "granularity": "GRANULARITY_PER_GROUP", "groupSize": 32}'
  [W3-g32]='"mode": "QUANT_MODE_WEIGHT_ONLY", "weights": {"type": "QUANT_DATA_TYPE_INT4", "bits": 3, "asymmetric": true, "granularity": "GRANULARITY_PER_GROUP", "groupSize": 32}'
  [W2-g32]='"mode": "QUANT_MODE_WEIGHT_ONLY", "weights": {"type": "QUANT_DATA_TYPE_INT4", "bits": 2, "asymmetric": true, "granularity": "GRANULARITY_PER_GROUP", "groupSize": 32}'
  [W8A8]='"mode": "QUANT_MODE_STATIC", "weights": {"type": "QUANT_DATA_TYPE_INT8"}'
  [W4A8]='"mode": "QUANT_MODE_STATIC", "weights": {"type": "QUANT_DATA_TYPE_INT4"}'
)
declare -A method_json=(
  [RTN]='{}'
  [GPTQ]='{"gptq": {"enabled": true}}'
  [AWQ]='{"awq": {"enabled": true}}'
  [SmoothQuant]='{"smoothQuant": {"enabled": true}}'
  [Learned]='{"learnedRounding": {"enabled": true}}'
  [GPTQ+Learned]='{"gptq": {"enabled": true}, "learnedRounding": {"enabled": true}}'
)
methods=(RTN GPTQ AWQ SmoothQuant Learned GPTQ+Learned)
echo "| scheme | ${methods[*]} |" | sed 's/ /\ | /g; s/|\ |/| |/' | tr -s ' '
echo "|---|$(printf -- '---|%.0s' "${methods[@]}")"
for scheme in W4-pc W4-g32 W3-g32 W2-g32 W8A8 W4A8; do
  row="| $scheme |"
  for method in "${methods[@]}"; do
    # AWQ is weight-only; SmoothQuant needs quantized activations.
    if [[ $method == AWQ && $scheme == *A8 ]] ||
       [[ $method == SmoothQuant && $scheme != *A8 ]]; then
      row+=" - |"; continue
    fi
    spec="$work/$scheme-$method.json"
    cat >"$spec" <<JSON
{"model": {"path": "$model/model.onnx"},
 "calibrationData": {"path": "$model/calib.npz"},
 "evaluationData": {"path": "$model/eval.npz"},
 ${scheme_json[$scheme]},
 "calibration": {"method": "CALIBRATION_METHOD_PERCENTILE"},
 "algorithms": ${method_json[$method]},
 "sensitivity": {"disabled": true}, "benchmark": {"disabled": true}}
JSON
    out="$work/out-$scheme-$method"
    rm -rf "$out"
    start=$(date +%s.%N)
    if ! OMP_NUM_THREADS=2 "$quantd" run-job --quiet --spec "$spec" --out "$out" >"$out.log" 2>&1; then
      row+=" failed |"; continue
    fi
    seconds=$(echo "$(date +%s.%N) - $start" | bc)
    row+=$(/usr/bin/python3 - "$out/report.json" "$seconds" <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))["fakeQuant"]
print(f" +{f.get('perplexityDeltaPercent', 0):.2f}% ({float(sys.argv[2]):.0f} s) |", end="")
PY
)
  done
  echo "$row"
done
