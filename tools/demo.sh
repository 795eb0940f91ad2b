#!/usr/bin/env bash
# The main job: build quantd, start the service with embedded defaults
# (SQLite job store and blobs under out/quantd-data, loopback, one tenant),
# quantize the bundled Fashion-MNIST CNN (static W8A8 PTQ, percentile
# calibration) through quantctl with its progress line, print the accuracy
# delta table, download the model, and stop the service.
set -euo pipefail
cd "$(dirname "$0")/.."
# Only what the demo runs: the tests and benchmarks are the test command's.
tools/build.sh --target quantd quantctl
mkdir -p out
log=out/quantd-serve.log
./build/server/quantd serve --port 0 --data-dir out/quantd-data \
  --metrics-address "" >out/quantd-serve.out 2>"$log" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q "serving on" out/quantd-serve.out && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
address=$(sed -n 's/^quantd serving on \([^ ]*\).*/\1/p' out/quantd-serve.out)
echo "quantd serving on $address (log: $log)"
./build/client/quantctl --server "$address" quantize \
  testdata/fmnist_cnn/model.onnx \
  --calib testdata/fmnist/calib.npz --eval testdata/fmnist/eval.npz \
  --calibration percentile --label model=fmnist-cnn \
  --out out/fmnist_cnn/model.quant.onnx
echo "quantized model: out/fmnist_cnn/model.quant.onnx" \
  "(report: out/fmnist_cnn/model.quant.onnx.report.json)"
