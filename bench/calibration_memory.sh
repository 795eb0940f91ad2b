#!/usr/bin/env bash
# Peak RSS of calibrating the fixture CNN on 512 and on 5120 samples, each in
# a fresh process. Streaming datasets and fixed-size histograms should keep
# the two within a few percent.
#   bench/calibration_memory.sh [build/bench/calibration_bench]
set -euo pipefail
bench=${1:-build/bench/calibration_bench}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for n in 512 5120; do
  "$bench" --make-data=$n "$tmp/calib_$n.npz"
done
small=$("$bench" --rss "$tmp/calib_512.npz" | awk '{print $4}')
large=$("$bench" --rss "$tmp/calib_5120.npz" | awk '{print $4}')
echo "peak RSS: 512 samples ${small} KiB, 5120 samples ${large} KiB," \
  "ratio $(awk -v a="$large" -v b="$small" 'BEGIN {printf "%.3f", a / b}')"
