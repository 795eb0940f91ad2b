#!/usr/bin/env bash
# Every PromQL expression of the Grafana dashboard and of the alert rules
# parses and returns data on a real Prometheus that scraped a real quantd
# which ran jobs: fmnist CNN static W8A8 (model=fmnist-cnn), MLP dynamic
# (model=fmnist-mlp), tiny GPT SmoothQuant (model=tiny-gpt, for perplexity),
# one cancelled job and a NOT_FOUND call (non-OK gRPC codes).
#
# Dashboard expressions: $__rate_interval, $__interval -> 1m, $__range -> 5m,
# $model/$method/$stage -> .* (the "All" value); each must return >= 1
# series. Variable queries label_values(METRIC, LABEL): METRIC must have a
# series with LABEL. Alert expressions are only non-empty while firing, so
# the test evaluates each one as written (it must parse) and then with its
# comparisons with a constant removed ("> 0.2", "== 0", "< -1", ">= 3"),
# which leaves the series the alert watches: those must be non-empty.
#   tests/deploy/promql_test.sh SOURCE_ROOT QUANTD_BIN QUANTCTL_BIN
set -euo pipefail
root=$1 quantd=$2 quantctl=$3
command -v prometheus >/dev/null || { echo "SKIP: prometheus is not installed (tools/install-deps.sh)"; exit 77; }
/usr/bin/python3 -c 'import yaml' 2>/dev/null || { echo "SKIP: python3-yaml is not installed"; exit 77; }
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -5 "$work/serve.err" 2>/dev/null; exit 1; }
export OMP_NUM_THREADS=1
source "$(dirname "$0")/../service/serve_lib.sh"
start=$(date +%s)

metrics_port=$(free_port)
quantd_start "$quantd" "$work" --data-dir "$work/data" \
  --metrics-address "127.0.0.1:$metrics_port" --workers 2 --threads-per-job 1 ||
  fail "quantd did not start"
pids+=("$server")

prom_port=$(free_port)
cat >"$work/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: quantd
    static_configs:
      - targets: ["127.0.0.1:$metrics_port"]
YML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prom.log" 2>&1 &
pids+=($!)

cd "$root"
q() { "$quantctl" --server "$address" "$@"; }
q quantize testdata/tiny_gpt/model.onnx --calib testdata/tiny_gpt/calib.npz \
  --eval testdata/tiny_gpt/eval.npz --smoothquant 0.5 --label model=tiny-gpt --detach >"$work/gpt.job" 2>/dev/null
q quantize testdata/fmnist_cnn/model.onnx --calib testdata/fmnist/calib.npz \
  --eval testdata/fmnist/eval.npz --label model=fmnist-cnn --out "$work/cnn.onnx" >/dev/null 2>&1 ||
  fail "fmnist-cnn job"
q quantize testdata/fmnist_mlp/model.onnx --eval testdata/fmnist/eval.npz --mode dynamic \
  --label model=fmnist-mlp --out "$work/mlp.onnx" >/dev/null 2>&1 || fail "fmnist-mlp job"
q quantize testdata/fmnist_mlp/model.onnx --eval testdata/fmnist/eval.npz --mode dynamic \
  --label model=cancelled --priority -10 --detach >"$work/cancel.job" 2>/dev/null
q jobs cancel "$(cat "$work/cancel.job")" >/dev/null 2>&1 || true
rc=0; q jobs get jobs/does-not-exist >/dev/null 2>&1 || rc=$?
[[ $rc -eq 2 ]] || fail "jobs get of a missing job: exit $rc, expected 2"
q jobs watch "$(cat "$work/gpt.job")" >/dev/null 2>&1 || fail "tiny-gpt job"
echo "jobs done after $(($(date +%s) - start)) s"

# Wait until Prometheus has the finished jobs and the quality gauges, and
# enough samples for rate() over 1m windows.
api="http://127.0.0.1:$prom_port/api/v1"
for i in $(seq 60); do
  n=$(curl -fsS "$api/query" --data-urlencode 'query=sum(quantd_jobs_finished_total) + count(quantd_job_perplexity_delta_ratio)' 2>/dev/null |
      /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(int(float(r[0]["value"][1])) if r else 0)' 2>/dev/null || echo 0)
  [[ $n -ge 5 ]] && break
  sleep 1
done
[[ $n -ge 5 ]] || fail "Prometheus did not see the finished jobs"
sleep 3

/usr/bin/python3 - "$api" "$root" <<'PY'
import json, re, sys, urllib.parse, urllib.request
import yaml
api, root = sys.argv[1], sys.argv[2]

def query(expr):
    url = f"{api}/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)

def substitute(expr):
    for var, value in [("$__rate_interval", "1m"), ("$__interval", "1m"),
                       ("$__range", "5m"), ("${datasource}", "")]:
        expr = expr.replace(var, value)
    return re.sub(r"\$\{?(model|method|stage)\}?", ".*", expr)

failures, checked = [], 0
def check(where, expr, need_series=True):
    global checked
    checked += 1
    r = query(expr)
    if r.get("status") != "success":
        failures.append(f"{where}: does not parse: {r.get('error')}\n    {expr}")
        return
    n = len(r["data"]["result"])
    if need_series and n == 0:
        failures.append(f"{where}: no series\n    {expr}")
    else:
        print(f"ok {n:3d} series  {where}")

dash = json.load(open(f"{root}/deploy/grafana/dashboards/quantd-overview.json"))
assert dash["uid"] == "quantd-overview"
variables = {v["name"]: v for v in dash["templating"]["list"]}
assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
for v in dash["templating"]["list"]:
    if v["type"] != "query":
        continue
    m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", v["query"]["query"])
    assert m, v["query"]
    check(f"variable ${v['name']}", f"count by ({m.group(2)}) ({m.group(1)})")
def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get("panels", []))
for p in panels(dash["panels"]):
    if p["type"] != "row":
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
    for t in p.get("targets", []):
        check(f"panel '{p['title']}' {t['refId']}", substitute(t["expr"]))

rules = yaml.safe_load(open(f"{root}/deploy/prometheus/rules.yml"))
comparison = re.compile(r"\s*(==|!=|>=|<=|>|<)\s*-?[0-9.]+")
for g in rules["groups"]:
    for rule in g["rules"]:
        name = rule.get("alert") or rule.get("record")
        check(f"alert {name} (as written)", rule["expr"], need_series=False)
        stripped = comparison.sub("", rule["expr"])
        assert stripped != rule["expr"], name
        check(f"alert {name} (comparisons removed)", stripped)

if failures:
    print("\n".join("FAIL: " + f for f in failures))
    sys.exit(1)
print(f"{checked} expressions parse and return data")
PY
echo "PASS: dashboard and alert PromQL on a real Prometheus after real jobs, $(($(date +%s) - start)) s"
