#!/usr/bin/env bash
# Installs the ONNX Runtime harness's one npm package (onnxruntime-node, whose
# Linux x64 native library ships inside the package, so install scripts are
# not needed). Idempotent: does nothing when node_modules is already there.
#   tests/ort/install.sh
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v npm >/dev/null 2>&1; then
  echo "tests/ort/install.sh: npm not found; install nodejs and npm" \
       "(tools/install-deps.sh) to enable the ONNX Runtime checks" >&2
  exit 1
fi
if [ -d node_modules/onnxruntime-node ]; then
  echo "tests/ort/install.sh: onnxruntime-node already installed"
  exit 0
fi
npm install --ignore-scripts --no-audit --no-fund
