#!/usr/bin/env bash
# Installs dependencies (Debian 12, as root), configures build/ with Ninja and
# ccache, and builds everything. Idempotent; a second run only rebuilds what
# changed. Extra arguments go to cmake's configure step, e.g.
#   tools/build.sh -DQUANTD_WERROR=ON
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
exec 9>/tmp/quantd-build.lock
flock 9
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build build
