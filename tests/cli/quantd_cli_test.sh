#!/usr/bin/env bash
# End-to-end checks of the quantd binary: a real run on a fixture, and the
# exit codes and messages for bad input.
#   quantd_cli_test.sh QUANTD_BINARY TESTDATA_DIR
set -u
quantd=$1
data=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

# expect NAME WANT_EXIT WANT_OUTPUT_REGEX -- COMMAND...
expect() {
  local name=$1 want_exit=$2 want_re=$3
  shift 4
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [[ $rc -eq $want_exit ]] && grep -Eq -- "$want_re" <<<"$out"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL $name: exit $rc (want $want_exit), output:"
    sed 's/^/    /' <<<"$out" | head -20
  fi
}

expect "runs the MLP fixture" 0 "fp32 vs reference: max \|diff\| [0-9.e-]+, top-1 agreement 100.00%" -- \
  "$quantd" run-model --model "$data/fmnist_mlp/model.onnx" --data "$data/fmnist_mlp/io.npz" --repeats 1
expect "runs the CNN fixture and folds BatchNorm" 0 "4 BatchNorms into Conv" -- \
  "$quantd" run-model --model "$data/fmnist_cnn/model.onnx" --data "$data/fmnist_cnn/io.npz" --repeats 1
expect "runs a decoder on the weight-only kernel" 0 "13 Gemm/MatMul on the weight-only kernel" -- \
  "$quantd" run-model --model "$data/tiny_gpt/model.onnx" --data "$data/tiny_gpt/io.npz" --weight-only 4 --group-size 32 --repeats 1
expect "bad --weight-only" 2 "--weight-only takes 4 or 8" -- \
  "$quantd" run-model --model x --data y --weight-only 3
expect "help" 0 "run-model" -- "$quantd" --help
expect "run-model help" 0 "--samples N" -- "$quantd" run-model --help
expect "unknown command" 2 "unknown command 'frobnicate'" -- "$quantd" frobnicate
expect "missing --data" 2 "--model and --data are required" -- \
  "$quantd" run-model --model "$data/fmnist_mlp/model.onnx"
expect "bad --samples" 2 "--samples takes a number" -- \
  "$quantd" run-model --model x --data y --samples -3
head -c 4096 /dev/urandom >"$tmp/garbage.onnx"
expect "garbage model" 2 "not a valid ONNX model" -- \
  "$quantd" run-model --model "$tmp/garbage.onnx" --data "$data/fmnist_mlp/io.npz"
expect "missing model" 2 "cannot open" -- \
  "$quantd" run-model --model "$tmp/none.onnx" --data "$data/fmnist_mlp/io.npz"
expect "data without the model's input" 2 "no array for model input 'input_ids'" -- \
  "$quantd" run-model --model "$data/tiny_gpt/model.onnx" --data "$data/fmnist_mlp/io.npz"
echo "not a zip" >"$tmp/bad.npz"
expect "garbage data" 2 "neither a .npy array nor a readable .npz" -- \
  "$quantd" run-model --model "$data/fmnist_mlp/model.onnx" --data "$tmp/bad.npz"

# run-job: a real PTQ job, then bad specs. Paths in specs are relative to
# the current directory, so run from the repository root.
root=$(cd "$data/.." && pwd)
cat >"$tmp/job.json" <<JSON
{"model": {"path": "$root/testdata/fmnist_mlp/model.onnx"},
 "calibrationData": {"path": "$root/testdata/fmnist/calib.npz"},
 "labels": {"model": "fmnist-mlp"}}
JSON
expect "run-job quantizes the MLP" 0 "accuracy [0-9.]+% -> [0-9.]+% \(delta [-+][0-9.]+ points\)" -- \
  "$quantd" run-job --spec "$tmp/job.json" --out "$tmp/nested/out" --quiet
expect "run-job wrote both artifacts" 0 "model.quant.onnx" -- ls "$tmp/nested/out/model.quant.onnx" "$tmp/nested/out/report.json"
expect "run-job checks --out before running" 2 "cannot create output folder" -- \
  "$quantd" run-job --spec "$tmp/job.json" --out /proc/quantd/out
echo '{"modle": {}}' >"$tmp/typo.json"
expect "run-job unknown field" 2 "modle" -- "$quantd" run-job --spec "$tmp/typo.json" --out "$tmp/bad"
cat >"$tmp/pct.json" <<JSON
{"model": {"path": "$root/testdata/fmnist_mlp/model.onnx"},
 "calibrationData": {"path": "$root/testdata/fmnist/calib.npz"},
 "calibration": {"method": "CALIBRATION_METHOD_PERCENTILE", "percentile": 120}}
JSON
expect "run-job bad percentile" 2 "percentile must be in \(0, 100\], got 120" -- \
  "$quantd" run-job --spec "$tmp/pct.json" --out "$tmp/bad"
expect "run-job left nothing behind" 0 "^$" -- bash -c "ls -A '$tmp/bad' 2>/dev/null; true"
expect "run-job needs --out" 2 "--spec and --out are required" -- "$quantd" run-job --spec "$tmp/job.json"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
