#!/usr/bin/env bash
# The main job: build quantd, then run the bundled Fashion-MNIST CNN in fp32
# and int8 on 64 evaluation images and print outputs, agreement and timings.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/build.sh
./build/server/quantd run-model --model testdata/fmnist_cnn/model.onnx \
  --data testdata/fmnist/eval.npz --samples 64 --repeats 20
