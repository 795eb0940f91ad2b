#!/usr/bin/env bash
# TLS for a real quantd serve: a server certificate (quantctl verifies it
# with --tls-ca; plaintext clients are refused), then client certificates
# required with --tls-client-ca (a client without one is refused, one with a
# certificate from that CA gets through). Certificates are made here with
# openssl; nothing is committed.
#
#   tests/service/tls_test.sh QUANTD_BIN QUANTCTL_BIN PY_OUT
set -euo pipefail
source "$(dirname "$0")/serve_lib.sh"
quantd=$1 quantctl=$2 py_out=$3
work=$(mktemp -d)
server=""
cleanup() {
  [[ -n "$server" ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
fail() { echo "FAIL: $*"; cat serve.err 2>/dev/null | tail -5; exit 1; }

# A CA, a server certificate for 127.0.0.1, a client certificate.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=quantd test CA" \
  -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
  -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -days 1 -extfile san.ext -out server.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=client" \
  -keyout client.key -out client.csr 2>/dev/null
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -days 1 -out client.pem 2>/dev/null

start() {  # extra serve flags...
  quantd_start "$quantd" "$work" --data-dir "$work/data" \
    --tls-cert server.pem --tls-key server.key "$@" ||
    fail "quantd did not start"
}
stop() { kill "$server"; wait "$server" 2>/dev/null || true; server=""; }

# 1. Server TLS: verified with the CA; plaintext refused (unreachable: 3).
start
"$quantctl" --server "$address" --tls-ca ca.pem jobs list >/dev/null ||
  fail "quantctl with --tls-ca could not list jobs"
rc=0; "$quantctl" --server "$address" jobs list >/dev/null 2>&1 || rc=$?
[[ $rc -eq 3 ]] || fail "a plaintext client got exit $rc, expected 3"
stop

# 2. Client certificates required.
start --tls-client-ca ca.pem
client() {  # with_cert(0/1) -> prints the gRPC outcome
  PYTHONPATH="$py_out" /usr/bin/python3 - "$address" "$1" <<'PY'
import sys, grpc
from quantd.v1 import service_pb2, service_pb2_grpc
address, with_cert = sys.argv[1], sys.argv[2] == "1"
kw = {"root_certificates": open("ca.pem", "rb").read()}
if with_cert:
    kw["private_key"] = open("client.key", "rb").read()
    kw["certificate_chain"] = open("client.pem", "rb").read()
channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(**kw))
try:
    service_pb2_grpc.QuantizationServiceStub(channel).ListJobs(
        service_pb2.ListJobsRequest(), timeout=10)
    print("OK")
except grpc.RpcError as e:
    print(e.code().name)
PY
}
[[ "$(client 1)" == "OK" ]] || fail "a client with a CA-signed certificate was refused"
outcome=$(client 0)
[[ "$outcome" == "UNAVAILABLE" ]] || fail "a client without a certificate got $outcome"
stop
echo "PASS: server TLS verified, plaintext refused, client certificates enforced"
