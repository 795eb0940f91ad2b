#!/usr/bin/env bash
# Installs every Debian package that quantd's build, tests and benchmarks need.
# Idempotent: packages already present are left alone. Run as root on Debian 12.
#   tools/install-deps.sh            # build + test dependencies
#   tools/install-deps.sh --fixtures # also python3-torch(vision): testdata/, bench/models/
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git clang-format clang
  # libraries
  # Debian's oneDNN is built with the OpenCL GPU runtime, so its CMake config
  # requires the OpenCL headers (a Recommends, skipped without recommends).
  libabsl-dev libdnnl-dev ocl-icd-opencl-dev libonnx-dev libprotobuf-dev protobuf-compiler
  libzip-dev zipcmp zipmerge ziptool libssl-dev zlib1g-dev libsqlite3-dev
  libgoogle-glog-dev
  # GPTQ's double-precision Cholesky and GEMMs
  libopenblas-dev
  # the service: gRPC (C++ and the Python client), Prometheus client, CLI
  libgrpc++-dev protobuf-compiler-grpc prometheus-cpp-dev libcli11-dev
  # the PostgreSQL job store (libpq) and the server its tests start
  libpq-dev postgresql
  # object storage: libcurl signs S3 requests (SigV4); the tests' S3 server
  # (tests/s3, npm) checks signatures with botocore
  libcurl4-openssl-dev python3-botocore
  python3-grpcio python3-protobuf
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev libonnx-testdata
  dataset-fashion-mnist python3 python3-numpy prometheus
  # tools/sanitize.sh (clang): libFuzzer and the sanitizer runtimes (only a
  # Recommends of clang), clang's OpenMP runtime, and lld (links the ~100
  # sanitized test binaries several times faster than ld.bfd)
  libclang-rt-14-dev libomp-dev lld
  # deploy/ checks: YAML lint, promtool (in prometheus), a Pushgateway for
  # batch runs; kubectl below
  yamllint prometheus-pushgateway
)
if [[ "${1:-}" == "--fixtures" ]]; then
  packages+=(python3-torch python3-torchvision python3-onnx)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# ONNX Runtime checks of QDQ exports (tests/ort: onnxruntime-node via npm).
# Some images ship Node.js with its own npm, which Debian's npm package
# conflicts with: install Debian's only when the commands are missing.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

# kubectl for `kubectl kustomize` of deploy/kubernetes (offline). Debian's
# kubernetes-client ships /usr/bin/kubectl and would clash with a kubectl
# installed from another source: install it only when the command is missing.
if ! command -v kubectl >/dev/null 2>&1; then
  missing+=(kubernetes-client)
fi

if ((${#missing[@]} > 0)); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install-deps: all ${#packages[@]} packages present"
fi
