#!/usr/bin/env bash
# Installs dependencies (Debian 12, as root), configures build/ with Ninja and
# ccache, and builds. Idempotent; a second run only rebuilds what changed.
#   tools/build.sh                               # everything, tests included
#   tools/build.sh --target quantd quantctl      # just these targets
#   tools/build.sh -DQUANTD_WERROR=ON            # extra cmake configure args
set -euo pipefail
cd "$(dirname "$0")/.."
configure_args=()
targets=()
while (($#)); do
  case "$1" in
    --target)
      shift
      while (($#)) && [[ "$1" != -* ]]; do targets+=("$1"); shift; done
      ;;
    *) configure_args+=("$1"); shift ;;
  esac
done
tools/install-deps.sh
exec 9>/tmp/quantd-build.lock
flock 9
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "${configure_args[@]}" >/dev/null
if ((${#targets[@]})); then
  cmake --build build --target "${targets[@]}"
else
  cmake --build build
fi
