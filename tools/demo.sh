#!/usr/bin/env bash
# The main job: build quantd, then quantize the bundled Fashion-MNIST CNN
# (static W8A8 PTQ, percentile calibration) with `quantd run-job`, which
# prints progress, the accuracy delta against the float model, size and
# latency, and writes the quantized model and its report to out/fmnist_cnn/.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/build.sh
./build/server/quantd run-job --spec examples/fmnist_cnn_ptq.json \
  --out out/fmnist_cnn
