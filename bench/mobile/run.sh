#!/usr/bin/env bash
# Issue 15's mobile-CNN measurement: a mobilenet_v3_small trained briefly on
# Fashion-MNIST (bench/mobile/make_mobilenet.py, needs python3-torch and
# python3-torchvision: tools/install-deps.sh --fixtures), quantized static
# W8A8 with per-channel weights, with and without cross-layer equalization,
# min-max and percentile calibration. Prints per spec: top-1 agreement with
# float, accuracy delta, and the layers whose output SQNR is under 20 dB.
#
#   bench/mobile/run.sh [WORK_DIR=/tmp/quantd-mobile]   # fixture kept there
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/tmp/quantd-mobile}
quantd=build/server/quantd
[[ -x "$quantd" ]] || { echo "build quantd first (tools/build.sh)" >&2; exit 1; }
if [[ ! -f "$work/model.onnx" ]]; then
  /usr/bin/python3 bench/mobile/make_mobilenet.py "$work" | tee "$work.train.log"
fi
echo "quantd $(git rev-parse --short HEAD), $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC')"
for calibration in CALIBRATION_METHOD_MIN_MAX CALIBRATION_METHOD_PERCENTILE; do
  for cle in false true; do
    spec="$work/spec-$calibration-$cle.json"
    cat >"$spec" <<JSON
{"model": {"path": "$work/model.onnx"},
 "calibrationData": {"path": "$work/calib.npz"},
 "evaluationData": {"path": "$work/eval.npz"},
 "mode": "QUANT_MODE_STATIC",
 "weights": {"type": "QUANT_DATA_TYPE_INT8", "granularity": "GRANULARITY_PER_CHANNEL"},
 "calibration": {"method": "$calibration"},
 "algorithms": {"crossLayerEqualization": $cle},
 "sensitivity": {"disabled": true}, "benchmark": {"disabled": true}}
JSON
    out="$work/out-$calibration-$cle"
    rm -rf "$out"
    OMP_NUM_THREADS=2 "$quantd" run-job --quiet --spec "$spec" --out "$out" >/dev/null
    /usr/bin/python3 - "$out/report.json" "$calibration" "$cle" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
f = r["fakeQuant"]
low = sorted((l.get("outputSqnrDb", 0), l["node"], l["opType"])
             for l in r["layers"] if l.get("outputSqnrDb", 99) < 20)
cle = sum(1 for w in r.get("warnings", []) if "cross_layer_equalization" in w)
pairs = sum(1 for l in r["layers"] for a in l.get("algorithms", [])
            if a.startswith("cle: equalized")) // 2
print(f"{sys.argv[2][19:]:10s} CLE {sys.argv[3]:5s}: top-1 agreement "
      f"{f.get('top1Agreement', 0):.4f}, accuracy {f.get('accuracyDeltaPoints', 0):+.2f} "
      f"points (float {f.get('floatAccuracy', 0):.4f}); {pairs} pairs equalized, "
      f"{cle} skipped; {len(low)} layers under 20 dB"
      + (": " + ", ".join(f"{n} {s:.1f}" for s, n, _ in low[:6]) if low else ""))
PY
  done
done
