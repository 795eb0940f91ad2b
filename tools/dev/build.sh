#!/usr/bin/env bash
# Developer build: configures build/ once (Ninja, ccache) and builds the given
# targets. A lock serializes builds, because this is a 2-core machine shared by
# several developers and two concurrent builds only thrash.
#   tools/dev/build.sh                 # everything
#   tools/dev/build.sh kernels_conv_test
set -euo pipefail
cd "$(dirname "$0")/../.."
exec 9>/tmp/quantd-build.lock
flock 9
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
if [ $# -gt 0 ]; then
  cmake --build build --target "$@"
else
  cmake --build build
fi
