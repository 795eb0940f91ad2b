# Shared by the integration scripts (source it; bash): start a real
# `quantd serve` on a free loopback port and wait until it is ready.
#
#   source tests/service/serve_lib.sh
#   quantd_start "$quantd" "$work" --data-dir "$work/data" || fail "..."
#   # sets $server (pid) and $address (HOST:PORT); log in $work/serve.err
#   port=$(free_port)
#
# Flags after the work folder follow the defaults (--port 0, no /metrics)
# and override them.
quantd_start() {
  local bin=$1 dir=$2
  shift 2
  rm -f "$dir/serve.out"
  "$bin" serve --port 0 --metrics-address "" "$@" \
    >"$dir/serve.out" 2>"$dir/serve.err" &
  server=$!
  for _ in $(seq 100); do
    grep -q "serving on" "$dir/serve.out" 2>/dev/null && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
  done
  address=$(sed -n 's/^quantd serving on \([^ ]*\).*/\1/p' "$dir/serve.out")
  [[ -n "$address" ]]
}

# A TCP port nothing listens on now.
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# gRPC health (grpc.health.v1.Health/Check) at ADDRESS ($1) of service $2
# (default "", the whole server): SERVING is field 1 = 1, NOT_SERVING = 2; raw bytes, so no
# health module is needed. The request is field 1 (service name) as bytes.
grpc_health() {
  /usr/bin/python3 - "$1" "${2:-}" <<'PY'
import sys, grpc
ch = grpc.insecure_channel(sys.argv[1])
name = sys.argv[2].encode()
request = b"\x0a" + bytes([len(name)]) + name if name else b""
check = ch.unary_unary("/grpc.health.v1.Health/Check",
                       request_serializer=lambda b: b,
                       response_deserializer=lambda b: b)
try:
    r = check(request, timeout=5)
    print({b"\x08\x01": "SERVING", b"\x08\x02": "NOT_SERVING"}.get(r, r.hex()))
except grpc.RpcError as e:
    print(e.code().name)
PY
}
