#!/usr/bin/env bash
# Builds the libFuzzer targets in build-asan (clang, ASan+UBSan, see
# fuzz/README.md) and runs each on its generated seed corpus, one at a time.
# Exits non-zero on the first crash, leak, sanitizer report or timeout; the
# reproducer is left in build-asan/fuzz/artifacts/.
#   tools/fuzz.sh --runs 1000000              # every target, 1M executions
#   tools/fuzz.sh --seconds 45                # every target, 45 s each (CI)
#   tools/fuzz.sh --runs 100000 fuzz_npz      # one target
set -euo pipefail
cd "$(dirname "$0")/.."
limit=(-max_total_time=45)
targets=()
while (($#)); do
  case "$1" in
    --runs) limit=("-runs=$2"); shift 2 ;;
    --seconds) limit=("-max_total_time=$2"); shift 2 ;;
    fuzz_*) targets+=("$1"); shift ;;
    *) echo "usage: tools/fuzz.sh [--runs N | --seconds S] [fuzz_target...]" >&2
       exit 2 ;;
  esac
done
if ((${#targets[@]} == 0)); then
  targets=(fuzz_model_loader fuzz_npz fuzz_job_spec fuzz_upload)
fi

tools/sanitize.sh --configure-only
# One build at a time on the shared machine (tools/dev/build.sh takes the
# same lock).
flock /tmp/quantd-build.lock nice -n 10 \
  cmake --build build-asan --target "${targets[@]}" fuzz_seeds

out=build-asan/fuzz
mkdir -p "$out/artifacts"
# Leaks count (LSan is on by default under ASan); UB aborts (the build uses
# -fno-sanitize-recover=undefined).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export OMP_NUM_THREADS=1
for t in "${targets[@]}"; do
  mkdir -p "$out/corpus/$t"
  echo "fuzz.sh: $t ${limit[*]}"
  start=$(date +%s)
  # corpus/<t> collects new inputs (kept across runs); seeds/<t> is read
  # only. -timeout: one input taking 30 s is a hang worth a report.
  if ! "$out/$t" "${limit[@]}" -timeout=30 -rss_limit_mb=3072 \
      -print_final_stats=1 -artifact_prefix="$out/artifacts/$t-" \
      "$out/corpus/$t" "$out/seeds/$t" 2>"$out/$t.log"; then
    tail -n 60 "$out/$t.log" >&2
    echo "fuzz.sh: $t FAILED after $(($(date +%s) - start)) s; reproducer" \
         "in $out/artifacts/ (run: $out/$t <file>), log $out/$t.log" >&2
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/$t.log" |
         grep -o '[0-9]*$' || true)
  echo "fuzz.sh: $t ok: ${runs:-?} executions, 0 crashes," \
       "$(($(date +%s) - start)) s"
done
