#!/usr/bin/env bash
# quantctl against real `quantd serve` processes on loopback: a full PTQ job
# (and the rerun that skips its uploads), detach + watch and a watch resumed
# mid-job with --after, cancel, kill -9 of the server mid-job and restart,
# two tenants, a full queue. Needs jq.
#   quantctl_test.sh QUANTD_BINARY QUANTCTL_BINARY TESTDATA_DIR
set -u
quantd=$1
quantctl=$2
data=$3
export OMP_NUM_THREADS=1
unset QUANTD_SERVER QUANTD_TOKEN
tmp=$(mktemp -d)
server_pids=()
cleanup() {
  local p
  for p in "${server_pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
passed=0
failed=0
started=$SECONDS

ok() {
  passed=$((passed + 1))
  echo "ok   $1"
}
fail() {
  failed=$((failed + 1))
  echo "FAIL $1"
  [[ $# -gt 1 ]] && sed 's/^/    /' <<<"$2" | head -30
}
# check NAME COMMAND... : passes when the command succeeds.
check() {
  local name=$1
  shift
  if "$@"; then ok "$name"; else fail "$name"; fi
}

# start_server DIR [FLAGS...]: starts quantd serve on a free port; sets
# $port and $server_pid.
start_server() {
  local dir=$1
  shift
  mkdir -p "$dir"
  local log="$dir.log"
  "$quantd" serve --port 0 --data-dir "$dir" --metrics-address "" \
    --threads-per-job 1 "$@" >"$log.out" 2>"$log.err" &
  server_pid=$!
  server_pids+=("$server_pid")
  port=""
  for _ in $(seq 100); do
    port=$(sed -n 's/^quantd serving on .*:\([0-9]\+\) (.*/\1/p' "$log.out")
    [[ -n $port ]] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "quantd serve did not start:"
  cat "$log.err"
  exit 1
}

stop_server() {
  kill -9 "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}

# job_field SERVER NAME JQ_FILTER [quantctl flags...]
job_field() {
  local server=$1 name=$2 filter=$3
  shift 3
  "$quantctl" --server "$server" --json "$@" jobs get "$name" | jq -r "$filter"
}

# wait_state SERVER NAME STATE TIMEOUT_S [quantctl flags...]
wait_state() {
  local server=$1 name=$2 want=$3 timeout=$4
  shift 4
  local deadline=$((SECONDS + timeout)) state=""
  while ((SECONDS < deadline)); do
    state=$(job_field "$server" "$name" .state "$@" 2>/dev/null)
    [[ $state == "JOB_STATE_$want" ]] && return 0
    sleep 0.05
  done
  echo "    $name is $state, not $want after ${timeout}s"
  return 1
}

# Sequences on stdin strictly increasing by one from $1 + 1.
consecutive_from() {
  local prev=$1 s
  while read -r s; do
    [[ $s -eq $((prev + 1)) ]] || return 1
    prev=$s
  done
  return 0
}

cnn=("$data/fmnist_cnn/model.onnx" --calib "$data/fmnist/calib.npz"
  --eval "$data/fmnist/eval.npz")
gpt=("$data/tiny_gpt/model.onnx" --calib "$data/tiny_gpt/calib.npz"
  --eval "$data/tiny_gpt/eval.npz")

# --- The main server: (a) to (d) ------------------------------------------
start_server "$tmp/data"
main_pid=$server_pid
srv="127.0.0.1:$port"
q=("$quantctl" --server "$srv")

# (a) A full static W8A8 PTQ job, then the same again.
t0=$SECONDS
out=$("${q[@]}" quantize "${cnn[@]}" --out "$tmp/m.onnx" 2>&1)
rc=$?
if [[ $rc -eq 0 && -s $tmp/m.onnx && -s $tmp/m.onnx.report.json ]] &&
  grep -Eq '^fake-quant +[0-9.]+%' <<<"$out" &&
  grep -Eq '^int8 +[0-9.]+% +[0-9.]+% -> [0-9.]+% +[-+][0-9.]+ pt +[-0-9.]+ dB' <<<"$out" &&
  grep -q '^speedup' <<<"$out" && grep -q '^size' <<<"$out" &&
  [[ $(grep -c ': uploaded [0-9]* bytes' <<<"$out") -eq 3 ]] &&
  jq -e '.int8.top1Agreement > 0.9' "$tmp/m.onnx.report.json" >/dev/null; then
  ok "(a) quantize fmnist_cnn W8A8: exit 0, model, report, delta table ($((SECONDS - t0))s)"
else
  fail "(a) quantize fmnist_cnn (exit $rc)" "$out"
fi
out=$("${q[@]}" --json quantize "${cnn[@]}" --out "$tmp/m2.onnx" \
  2>"$tmp/m2.err" >"$tmp/m2.jsonl")
rc=$?
out=$(cat "$tmp/m2.err")
if [[ $rc -eq 0 && -s $tmp/m2.onnx ]] &&
  [[ $(grep -c 'already on the server, upload skipped' <<<"$out") -eq 3 ]] &&
  ! grep -q ': uploaded' <<<"$out"; then
  ok "(a) the identical rerun skips all three uploads"
else
  fail "(a) the identical rerun skips all three uploads (exit $rc)" "$out"
fi
# --json: stdout is JSON lines (every line one document): events with
# progress, then the job, SUCCEEDED.
if [[ $(wc -l <"$tmp/m2.jsonl") -ge 3 ]] &&
  jq -e -s 'length >= 3' "$tmp/m2.jsonl" >/dev/null &&
  (while read -r line; do jq -e . <<<"$line" >/dev/null || exit 1; done \
    <"$tmp/m2.jsonl") &&
  jq -e -s 'map(select(.progress)) | length > 0' "$tmp/m2.jsonl" >/dev/null &&
  [[ $(tail -1 "$tmp/m2.jsonl" | jq -r .state) == JOB_STATE_SUCCEEDED ]]; then
  ok "(a) quantize --json prints events and the job as JSON lines"
else
  fail "(a) quantize --json prints JSON lines" "$(head -c 2000 "$tmp/m2.jsonl")"
fi
check "(a) upload prints the digest" \
  test "$("${q[@]}" upload "$data/fmnist_cnn/model.onnx" --kind model 2>/dev/null)" \
  = "$(sha256sum "$data/fmnist_cnn/model.onnx" | cut -d' ' -f1)"

# (b) --detach, then a watcher that is dropped mid-job and resumed with
# --after from the last sequence it printed, against a full watch.
job=$("${q[@]}" quantize "${gpt[@]}" --detach 2>/dev/null)
if [[ $job == jobs/* ]]; then ok "(b) --detach prints the job name ($job)"; else fail "(b) --detach" "$job"; fi
"${q[@]}" --json jobs watch "$job" >"$tmp/full.jsonl" 2>"$tmp/full.err" &
full_pid=$!
"${q[@]}" --json jobs watch "$job" >"$tmp/part.jsonl" 2>/dev/null &
part_pid=$!
wait_state "$srv" "$job" RUNNING 30 >/dev/null
sleep 2
kill "$part_pid" 2>/dev/null
wait "$part_pid" 2>/dev/null
# Lines that parse (the kill may cut the last one).
while read -r line; do jq -e . <<<"$line" >/dev/null 2>&1 && echo "$line"; done \
  <"$tmp/part.jsonl" >"$tmp/part.ok.jsonl"
n=$(tail -1 "$tmp/part.ok.jsonl" | jq -r .sequence)
"${q[@]}" --json jobs watch "$job" --after "$n" >"$tmp/rest.jsonl"
rest_rc=$?
wait "$full_pid"
full_rc=$?
full_seq=$(jq -r .sequence "$tmp/full.jsonl")
last_state=$(tail -1 "$tmp/full.jsonl" | jq -r .stateChange)
if [[ $full_rc -eq 0 && $last_state == JOB_STATE_SUCCEEDED ]] &&
  consecutive_from 0 <<<"$full_seq"; then
  ok "(b) jobs watch follows to SUCCEEDED: $(wc -l <"$tmp/full.jsonl") events, sequences 1..$(tail -1 <<<"$full_seq") without gaps or duplicates"
else
  fail "(b) jobs watch follows to SUCCEEDED (exit $full_rc, last $last_state)" \
    "$(cat "$tmp/full.err"; tail -3 "$tmp/full.jsonl")"
fi
if [[ $rest_rc -eq 0 && -n $n && $n -gt 0 ]] &&
  consecutive_from "$n" < <(jq -r .sequence "$tmp/rest.jsonl") &&
  diff <(cat "$tmp/part.ok.jsonl" "$tmp/rest.jsonl" | jq -r .sequence) \
    <(echo "$full_seq") >/dev/null &&
  [[ $(jq -c 'del(.time)' "$tmp/rest.jsonl") == $(tail -n +$((n + 1)) "$tmp/full.jsonl" | jq -c 'del(.time)') ]]; then
  ok "(b) a watch dropped mid-job at sequence $n and resumed with --after $n replays exactly the $(wc -l <"$tmp/rest.jsonl") later events"
else
  fail "(b) watch --after $n (exit $rest_rc)" "$(jq -c '{sequence}' "$tmp/rest.jsonl" | head -5)"
fi

# (c) Cancel a running job; the quantize that waits on it exits 1.
"${q[@]}" quantize "${gpt[@]}" --smoothquant 0.5 --out "$tmp/c.onnx" \
  >"$tmp/c.out" 2>"$tmp/c.err" &
c_pid=$!
job=""
for _ in $(seq 300); do
  job=$(grep -o 'jobs/[A-Za-z0-9-]*: RUNNING' "$tmp/c.err" | cut -d: -f1)
  [[ -n $job ]] && break
  sleep 0.05
done
t_cancel=$(date +%s.%N)
cancel_out=$("${q[@]}" jobs cancel "$job" 2>&1)
cancel_rc=$?
wait_state "$srv" "$job" CANCELLED 10
cancelled_rc=$?
t_done=$(date +%s.%N)
wait "$c_pid"
c_rc=$?
took=$(awk -v a="$t_cancel" -v b="$t_done" 'BEGIN { printf "%.2f", b - a }')
if [[ -n $job && $cancel_rc -eq 0 && $cancelled_rc -eq 0 && $c_rc -eq 1 && ! -e $tmp/c.onnx ]] &&
  awk -v t="$took" 'BEGIN { exit !(t < 2.0) }'; then
  ok "(c) jobs cancel on a RUNNING job: CANCELLED in ${took}s, quantize exits 1"
else
  fail "(c) cancel (job '$job', cancel exit $cancel_rc, quantize exit $c_rc, ${took}s)" \
    "$cancel_out$(tail -5 "$tmp/c.err")"
fi
check "(c) cancelling a finished job is a bad request (exit 2)" \
  bash -c '"$@" >/dev/null 2>&1; [[ $? -eq 2 ]]' _ "${q[@]}" jobs cancel "$job"

# (d) kill -9 of the server mid-job, restart on the same --data-dir.
job=$("${q[@]}" quantize "${gpt[@]}" --smoothquant 0.5 --detach 2>/dev/null)
wait_state "$srv" "$job" RUNNING 30 >/dev/null
sleep 1
stop_server "$main_pid"
"${q[@]}" jobs get "$job" >/dev/null 2>&1
check "(d) with the server dead, quantctl exits 3" test $? -eq 3
start_server "$tmp/data"
srv="127.0.0.1:$port"
q=("$quantctl" --server "$srv")
watch_out=$("${q[@]}" jobs watch "$job" 2>&1)
watch_rc=$?
check "(d) after the restart, jobs watch follows the re-queued job to SUCCEEDED" \
  test "$watch_rc" -eq 0 -a "$(job_field "$srv" "$job" .state)" = JOB_STATE_SUCCEEDED
"${q[@]}" --json jobs get "$job" >"$tmp/d.json"
"${q[@]}" download "$job" --kind model --out "$tmp/d.onnx" >/dev/null
want=$(jq -r '.artifacts[] | select(.kind == "ARTIFACT_KIND_MODEL") | .sha256' "$tmp/d.json")
got=$(sha256sum "$tmp/d.onnx" | cut -d' ' -f1)
attempts=$(jq -r .attempts "$tmp/d.json")
if [[ -n $want && $want == "$got" && $attempts == 2 ]]; then
  ok "(d) the model downloaded after the restart matches the artifact digest; attempts == 2"
else
  fail "(d) artifact digest $want, downloaded $got, attempts $attempts" "$watch_out"
fi
"${q[@]}" download "$job" --kind report --out "$tmp/d.report.json" >/dev/null
report_has_smoothquant() {
  jq -e '.spec.algorithms.smoothQuant.enabled == true' "$1" >/dev/null
}
check "(d) the report is intact JSON of the job's spec" \
  report_has_smoothquant "$tmp/d.report.json"
stop_server "$server_pid"

# (e) Two tenants.
token_a=tenant-a-token-0123456789
token_b=tenant-b-token-0123456789
printf 'tenant-a %s\ntenant-b %s\n' "$token_a" "$token_b" >"$tmp/tokens"
start_server "$tmp/tenants" --tokens-file "$tmp/tokens" --listen-address 127.0.0.1
srv="127.0.0.1:$port"
job_a=$("$quantctl" --server "$srv" --token "$token_a" quantize "${cnn[@]}" --detach 2>/dev/null)
err=$(QUANTD_TOKEN=$token_b "$quantctl" --server "$srv" jobs get "$job_a" 2>&1)
rc=$?
if [[ $job_a == jobs/* && $rc -eq 2 ]] && grep -q NOT_FOUND <<<"$err"; then
  ok "(e) tenant B's jobs get of A's job: exit 2, NOT_FOUND"
else
  fail "(e) tenant B's jobs get of A's job '$job_a' (exit $rc)" "$err"
fi
list_b=$(QUANTD_TOKEN=$token_b "$quantctl" --server "$srv" --json jobs list --all)
list_a=$(QUANTD_TOKEN=$token_a "$quantctl" --server "$srv" --json jobs list --all)
if [[ $(jq '.jobs // [] | length' <<<"$list_b") -eq 0 ]] &&
  jq -e --arg j "$job_a" '[.jobs[].name] | index($j) != null' <<<"$list_a" >/dev/null; then
  ok "(e) tenant B's jobs list shows none of A's jobs (A sees its own)"
else
  fail "(e) jobs list per tenant" "B: $list_b"
fi
err=$("$quantctl" --server "$srv" jobs list 2>&1)
rc=$?
if [[ $rc -eq 2 ]] && grep -q UNAUTHENTICATED <<<"$err"; then
  ok "(e) no token: exit 2, UNAUTHENTICATED"
else
  fail "(e) no token (exit $rc)" "$err"
fi
stop_server "$server_pid"

# (f) A full queue.
start_server "$tmp/queue" --max-queued-per-tenant 1 --workers 1
srv="127.0.0.1:$port"
q=("$quantctl" --server "$srv")
long=$("${q[@]}" quantize "${gpt[@]}" --smoothquant 0.5 --detach 2>/dev/null)
wait_state "$srv" "$long" RUNNING 30 >/dev/null
"${q[@]}" quantize "${cnn[@]}" --detach >/dev/null 2>&1
rc2=$?
err=$("${q[@]}" quantize "${cnn[@]}" --detach 2>&1)
rc3=$?
if [[ $rc2 -eq 0 && $rc3 -eq 4 ]] && grep -q RESOURCE_EXHAUSTED <<<"$err"; then
  ok "(f) with one job running and one queued, the third gets exit 4 (RESOURCE_EXHAUSTED)"
else
  fail "(f) full queue (second exit $rc2, third exit $rc3)" "$err"
fi
stop_server "$server_pid"

echo "quantctl_test: $passed passed, $failed failed in $((SECONDS - started))s"
[[ $failed -eq 0 ]]
