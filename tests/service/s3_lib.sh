# Shared by the integration scripts (source it after serve_lib.sh; bash):
# a real S3-protocol server for one test (tests/s3/serve.py: s3rver on a
# temporary folder behind a proxy that checks SigV4 signatures with
# botocore), on a free loopback port, with one key pair and bucket "quantd".
#
#   s3_start "$work" || fail "S3 did not start"   # sets $s3_endpoint and
#                                                  # exports AWS_* for quantd
#   s3_objects quantd/replicas/blobs              # objects under a key prefix
#   s3_stop                                       # in the cleanup
s3_start() {
  s3_dir=$1/s3
  mkdir -p "$s3_dir"
  /usr/bin/python3 "$root/tests/s3/serve.py" --dir "$s3_dir/data" --port-file "$s3_dir/port" \
    --key QUANTDKEY:QUANTDSECRET --bucket quantd >"$s3_dir.log" 2>&1 &
  s3_pid=$!
  for _ in $(seq 600); do
    [[ -s "$s3_dir/port" ]] && break
    kill -0 "$s3_pid" 2>/dev/null || { cat "$s3_dir.log"; return 1; }
    sleep 0.1
  done
  [[ -s "$s3_dir/port" ]] || { cat "$s3_dir.log"; return 1; }
  s3_endpoint="http://127.0.0.1:$(cat "$s3_dir/port")"
  export AWS_ACCESS_KEY_ID=QUANTDKEY AWS_SECRET_ACCESS_KEY=QUANTDSECRET AWS_REGION=us-east-1
}
# s3rver keeps each object as a folder named KEY._S3rver_object (its bytes
# in it); counts those under BUCKET/PREFIX.
s3_objects() {
  find "$s3_dir/data/$1" -name '*._S3rver_object' 2>/dev/null | wc -l
}
s3_stop() {
  [[ -n "${s3_pid:-}" ]] && kill "$s3_pid" 2>/dev/null
  wait "$s3_pid" 2>/dev/null || true
}
