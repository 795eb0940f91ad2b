#!/usr/bin/env bash
# Installs the object-storage tests' npm package (s3rver, a real S3-protocol
# server on a folder; pure JavaScript) at the version package-lock.json
# pins. Idempotent: does nothing when node_modules is already there.
#   tests/s3/install.sh
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v npm >/dev/null 2>&1; then
  echo "tests/s3/install.sh: npm not found; install nodejs and npm" \
       "(tools/install-deps.sh) to enable the object-storage tests" >&2
  exit 1
fi
if [ -d node_modules/s3rver ]; then
  echo "tests/s3/install.sh: s3rver already installed"
  exit 0
fi
npm ci --ignore-scripts --no-audit --no-fund
