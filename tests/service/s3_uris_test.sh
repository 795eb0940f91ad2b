#!/usr/bin/env bash
# Jobs that take their model and data as s3:// URIs and hand the quantized
# model to an output URI (a KServe storageUri), through quantctl and a real
# `quantd serve` with two tenants, each with its own object-storage key
# limited to its own bucket (the S3 server is s3rver behind a proxy that
# checks SigV4 signatures with botocore and each key's buckets). Tenant A's
# job reads s3://team-a/..., writes s3://team-a/serving/mlp/model.onnx, and
# ONNX Runtime runs that file straight from the bucket's folder; tenant B
# naming team-a's objects is refused, as is a tenant-B URI that tries to
# climb out of its bucket.
#
#   tests/service/s3_uris_test.sh QUANTD_BIN QUANTCTL_BIN SOURCE_ROOT
set -euo pipefail
source "$(dirname "$0")/serve_lib.sh"
quantd=$1 quantctl=$2 root=$3
work=$(mktemp -d)
source "$(dirname "$0")/s3_lib.sh"
server=""
cleanup() {
  [[ -n "$server" ]] && kill -9 "$server" 2>/dev/null
  s3_stop
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -5 "$work/serve.err" 2>/dev/null; exit 1; }
export OMP_NUM_THREADS=1

[[ -d "$root/tests/ort/node_modules/onnxruntime-node" ]] ||
  fail "ONNX Runtime is not installed: run tests/ort/install.sh"
s3_dir=$work/s3
mkdir -p "$s3_dir"
/usr/bin/python3 "$root/tests/s3/serve.py" --dir "$s3_dir/data" --port-file "$s3_dir/port" \
  --key AKA:SKA:team-a --key AKB:SKB:team-b --bucket team-a --bucket team-b \
  >"$s3_dir.log" 2>&1 &
s3_pid=$!
for _ in $(seq 600); do [[ -s "$s3_dir/port" ]] && break; sleep 0.1; done
[[ -s "$s3_dir/port" ]] || { cat "$s3_dir.log"; fail "S3 did not start (tests/s3/install.sh)"; }
endpoint="http://127.0.0.1:$(cat "$s3_dir/port")"

# The tenants' objects, put there as their own pipelines would.
put() {  # KEY SECRET BUCKET/KEY FILE
  curl -sfS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$1:$2" \
    -H "x-amz-content-sha256: $(sha256sum "$4" | cut -d' ' -f1)" \
    -T "$4" "$endpoint/$3" >/dev/null
}
put AKA SKA team-a/models/mlp.onnx "$root/testdata/fmnist_mlp/model.onnx" || fail "put model"
put AKA SKA team-a/data/eval.npz "$root/testdata/fmnist/eval.npz" || fail "put data"

printf 'team-a token-a-0123456789abcdef\nteam-b token-b-0123456789abcdef\n' >"$work/tokens"
printf '# tenant key secret\nteam-a AKA SKA\nteam-b AKB SKB\n' >"$work/s3-keys"
quantd_start "$quantd" "$work" --data-dir "$work/data" --tokens-file "$work/tokens" \
  --listen-address 127.0.0.1 --threads-per-job 1 \
  --tenant-s3-credentials "$work/s3-keys" --s3-endpoint "$endpoint" ||
  fail "quantd did not start"
ctl() { local t=$1; shift; "$quantctl" --server "$address" --token "token-$t-0123456789abcdef" "$@"; }

job=$(ctl a quantize s3://team-a/models/mlp.onnx --eval s3://team-a/data/eval.npz \
  --mode dynamic --output-uri s3://team-a/serving/mlp --detach) || fail "tenant A's job"
ctl a jobs watch "$job" >/dev/null || fail "$job did not succeed"
served="$s3_dir/data/team-a/serving/mlp/model.onnx._S3rver_object"
[[ -f "$served" ]] || fail "no model at s3://team-a/serving/mlp/model.onnx"
[[ -f "$s3_dir/data/team-a/serving/mlp/report.json._S3rver_object" ]] || fail "no report beside it"
ctl a download "$job" --kind model --out "$work/downloaded.onnx" >/dev/null || fail "download"
cmp -s "$served" "$work/downloaded.onnx" || fail "the bucket's model differs from the artifact"

# ONNX Runtime runs the file the bucket holds.
mkdir -p "$work/in" "$work/out"
/usr/bin/python3 - "$root/testdata/fmnist/eval.npz" "$work/in" <<'PY' || fail "inputs"
import sys, numpy as np
data = np.load(sys.argv[1])
for name in data.files:
    if name != "label":
        np.save(f"{sys.argv[2]}/{name}.npy", data[name][:16])
PY
cp "$served" "$work/served.onnx"
node "$root/tests/ort/run_model.js" "$work/served.onnx" "$work/in" "$work/out" ||
  fail "ONNX Runtime could not run the model from the bucket"

# Tenant B may not use team-a's objects through the server (its key is
# refused by the bucket), nor climb out of a bucket by the key.
err=$(ctl b quantize s3://team-a/models/mlp.onnx --eval s3://team-a/data/eval.npz \
  --mode dynamic --detach 2>&1) && fail "tenant B read team-a's model"
grep -q "PERMISSION_DENIED" <<<"$err" || fail "tenant B's refusal does not say why: $err"
err=$(ctl b quantize s3://team-b/../team-a/models/mlp.onnx --mode dynamic --detach 2>&1) &&
  fail "a key with .. was accepted"
grep -q "may hold only" <<<"$err" || fail "the .. key's refusal does not say why: $err"
echo "PASS: s3:// model and data in, s3:// output out, ONNX Runtime runs it from the bucket; tenant B refused"
