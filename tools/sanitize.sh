#!/usr/bin/env bash
# The sanitizer CI step: configures build-asan (clang, ASan+UBSan with UB
# fatal, libFuzzer targets on), builds the unit tests and the fuzzers (no
# benchmarks), runs the unit tests, then each fuzz target for a bounded time
# on its seed corpus. Fails on any test failure, sanitizer report or crash.
#   tools/sanitize.sh                    # CI (tools/test.sh calls it)
#   FUZZ_SECONDS=10 tools/sanitize.sh    # shorter fuzzing
#   SANITIZE_ALL=1 tools/sanitize.sh     # also the slow whole-pipeline tests
#   tools/sanitize.sh --configure-only   # just configure build-asan
#   tools/sanitize.sh --tsan             # build-tsan: server/scheduler/job
#                                        # store tests under ThreadSanitizer
# fuzz/README.md explains the options and what the reports mean.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=asan
case "${1:-}" in
  --configure-only) mode=configure ;;
  --tsan) mode=tsan ;;
  "") ;;
  *) echo "usage: tools/sanitize.sh [--configure-only | --tsan]" >&2; exit 2 ;;
esac

# -O1, line tables only and lld: sanitizer builds compile and link faster, and
# reports still name file and line. No -Werror: clang warns about things g++
# does not, and the g++ build in build/ is the warnings gate.
configure() {  # configure <folder> <sanitizers> [cmake args...]
  local dir=$1 sanitizers=$2
  shift 2
  if [[ -f "$dir/build.ninja" ]]; then return; fi
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only -DNDEBUG" \
    "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only -DNDEBUG" \
    -DCMAKE_EXE_LINKER_FLAGS=-fuse-ld=lld \
    -DQUANTD_SANITIZE="$sanitizers" -DQUANTD_BUILD_BENCHMARKS=OFF \
    "$@" >/dev/null
}

# Builds the test binaries matching ctest's selection, a few per lock hold
# so that other developers' builds get the machine in between.
build_tests() {  # build_tests <folder> <ctest selection args...>
  local dir=$1
  shift
  mapfile -t tests < <(cd "$dir" && ctest -N "$@" |
                       sed -n 's/^ *Test *#[0-9]*: \([A-Za-z0-9_]*\)$/\1/p' |
                       grep -v '^layering_test$')
  local chunk=8
  for ((i = 0; i < ${#tests[@]}; i += chunk)); do
    flock /tmp/quantd-build.lock nice -n 10 \
      cmake --build "$dir" --target "${tests[@]:i:chunk}"
  done
}

run_tests() {  # run_tests <folder> <ctest selection args...>
  local dir=$1
  shift
  # One OpenMP thread per test process, as tools/test.sh does; sanitized
  # tests are 2-5x slower, hence the wider timeout.
  (cd "$dir" && OMP_NUM_THREADS=1 ctest --output-on-failure --timeout 900 \
                  -j2 "$@")
}

case "$mode" in
  configure)
    configure build-asan address,undefined -DQUANTD_FUZZ=ON
    ;;
  asan)
    configure build-asan address,undefined -DQUANTD_FUZZ=ON
    # Data the QAT tests read (made at build time).
    flock /tmp/quantd-build.lock nice -n 10 \
      cmake --build build-asan --target quantd_generated_testdata
    # The whole-pipeline tests (every PTQ algorithm, QAT, ONNX Runtime
    # checks on full models, the outlier model's 24 jobs) take 10-14 minutes
    # each under ASan, most of the step's test time, and run code the other
    # pipeline, stage and unit tests already cover. SANITIZE_ALL=1 runs them.
    selection=(-L unit)
    if [[ -z "${SANITIZE_ALL:-}" ]]; then
      selection+=(-E '^engine_pipeline_(ptq_algorithms|pipeline_ort|qat_pipeline|outlier_model)_test$')
    fi
    build_tests build-asan "${selection[@]}"
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
    run_tests build-asan "${selection[@]}"
    tools/fuzz.sh --seconds "${FUZZ_SECONDS:-45}"
    ;;
  tsan)
    configure build-tsan thread
    # The threaded server parts. Not grpc_service_test: gRPC's own
    # synchronization is uninstrumented (Debian's build) and TSan would
    # report its internals. Abseil's is annotated for TSan by
    # cmake/tsan/absl_sync_annotations.cc.
    selection=(-R '^server_(scheduler|job_store|job_runner|event_hub|service_core|upload_session|blob_store|blob_index)_test$')
    build_tests build-tsan "${selection[@]}"
    export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"
    run_tests build-tsan "${selection[@]}"
    ;;
esac
