#!/usr/bin/env bash
# Issue 15's method x scheme tables: the tiny transformer LM
# (testdata/tiny_gpt; perplexity increase over float, percent) and the
# Fashion-MNIST CNN (testdata/fmnist_cnn; top-1 agreement with float,
# percent), each of the exported model's evaluation (fake quantization,
# what ONNX Runtime runs), per weight scheme and rounding method, with the
# job's wall time. Weight-only schemes below 4 bits are asymmetric (the
# convention of GPTQ's and AutoRound's low-bit results).
#
# Rotation columns: the residual stream rotated first (transformers only),
# then round-to-nearest or GPTQ; "+heads" also rotates each attention head's
# values, "+online" the MLP down projections' inputs at run time (neither in
# the default column set: METHODS="Rotation+heads Rotation+online ...").
#
#   bench/frontier/run.sh [WORK_DIR=/tmp/quantd-frontier]
#   METHODS="RTN Rotation" bench/frontier/run.sh   # some columns only
#   MODELS=cnn bench/frontier/run.sh                # one table (lm, cnn)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/tmp/quantd-frontier}
quantd=build/server/quantd
[[ -x "$quantd" ]] || { echo "build quantd first (tools/build.sh)" >&2; exit 1; }
mkdir -p "$work"
echo "quantd $(git rev-parse --short HEAD), $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC')"

wo='"mode": "QUANT_MODE_WEIGHT_ONLY"'
declare -A scheme_json=(
  [W4-pc]="$wo"', "weights": {"type": "QUANT_DATA_TYPE_INT4"}'
  [W4-g32]="$wo"', "weights": {"type": "QUANT_DATA_TYPE_INT4", "granularity": "GRANULARITY_PER_GROUP", "groupSize": 32}'
  [W3-pc]="$wo"', "weights": {"type": "QUANT_DATA_TYPE_INT4", "bits": 3, "asymmetric": true}'
  [W3-g32]="$wo"', "weights": {"type": "QUANT_DATA_TYPE_INT4", "bits": 3, "asymmetric": true, "granularity": "GRANULARITY_PER_GROUP", "groupSize": 32}'
  [W2-g32]="$wo"', "weights": {"type": "QUANT_DATA_TYPE_INT4", "bits": 2, "asymmetric": true, "granularity": "GRANULARITY_PER_GROUP", "groupSize": 32}'
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
  [Rotation]='{"rotation": {"enabled": true}}'
  [Rotation+GPTQ]='{"rotation": {"enabled": true}, "gptq": {"enabled": true}}'
  [Rotation+heads]='{"rotation": {"enabled": true, "valueOutputHeads": true}}'
  [Rotation+heads+GPTQ]='{"rotation": {"enabled": true, "valueOutputHeads": true}, "gptq": {"enabled": true}}'
  [Rotation+online]='{"rotation": {"enabled": true, "onlineDownProjections": true}}'
  [Rotation+online+GPTQ]='{"rotation": {"enabled": true, "onlineDownProjections": true}, "gptq": {"enabled": true}}'
)
read -r -a methods <<<"${METHODS:-RTN GPTQ AWQ SmoothQuant Learned GPTQ+Learned Rotation Rotation+GPTQ}"

# table MODEL_DIR DATA_DIR METRIC SCHEMES...
table() {
  local model=$1 data=$2 metric=$3; shift 3
  echo
  echo "$model ($metric)"
  echo "| scheme | $(printf '%s | ' "${methods[@]}")"
  echo "|---|$(printf -- '---|%.0s' "${methods[@]}")"
  for scheme in "$@"; do
    local row="| $scheme |"
    for method in "${methods[@]}"; do
      # AWQ is weight-only; SmoothQuant needs quantized activations;
      # rotation needs a LayerNorm residual stream.
      if [[ $method == AWQ && $scheme == *A8 ]] ||
         [[ $method == SmoothQuant && $scheme != *A8 ]] ||
         [[ $method == Rotation* && $model == *cnn ]]; then
        row+=" - |"; continue
      fi
      local name
      name=$(basename "$model")-$scheme-$method
      cat >"$work/$name.json" <<JSON
{"model": {"path": "$PWD/$model/model.onnx"},
 "calibrationData": {"path": "$PWD/$data/calib.npz"},
 "evaluationData": {"path": "$PWD/$data/eval.npz"},
 ${scheme_json[$scheme]},
 "calibration": {"method": "CALIBRATION_METHOD_PERCENTILE"},
 "algorithms": ${method_json[$method]},
 "sensitivity": {"disabled": true}, "benchmark": {"disabled": true}}
JSON
      rm -rf "$work/$name"
      local start seconds
      start=$(date +%s.%N)
      if ! OMP_NUM_THREADS=2 "$quantd" run-job --quiet --spec "$work/$name.json" \
          --out "$work/$name" >"$work/$name.log" 2>&1; then
        row+=" failed |"; continue
      fi
      seconds=$(echo "$(date +%s.%N) - $start" | bc)
      row+=$(/usr/bin/python3 - "$work/$name/report.json" "$seconds" "$metric" <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))["fakeQuant"]
if sys.argv[3] == "perplexity":
    value = f"+{f.get('perplexityDeltaPercent', 0):.2f}%"
else:
    value = f"{100 * f.get('top1Agreement', 0):.1f}%"
print(f" {value} ({float(sys.argv[2]):.0f} s) |", end="")
PY
)
    done
    echo "$row"
  done
}

models=" ${MODELS:-lm cnn} "
if [[ $models == *" lm "* ]]; then
  table testdata/tiny_gpt testdata/tiny_gpt perplexity W4-pc W4-g32 W3-g32 W2-g32 W8A8 W4A8
fi
if [[ $models == *" cnn "* ]]; then
  table testdata/fmnist_cnn testdata/fmnist top-1 W4-pc W3-pc W8A8 W4A8
fi
