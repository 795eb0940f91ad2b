#!/usr/bin/env bash
# Debian's real Prometheus scrapes a real `quantd serve`: after a PTQ job
# (run through the Python client's example) the accuracy-delta gauge of the
# finished job is in Prometheus, with method and model labels, read back
# through Prometheus's HTTP API; so is the committed storage gauge.
#
#   tests/service/prometheus_scrape_test.sh QUANTD_BIN PY_OUT SOURCE_ROOT
set -euo pipefail
source "$(dirname "$0")/serve_lib.sh"
quantd=$1 py_out=$2 root=$3
command -v prometheus >/dev/null || { echo "prometheus is not installed (tools/install-deps.sh)"; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

metrics_port=$(free_port)
OMP_NUM_THREADS=1 quantd_start "$quantd" "$work" --data-dir "$work/data" \
  --metrics-address "127.0.0.1:$metrics_port" --threads-per-job 1 ||
  { cat "$work/serve.err"; echo "quantd did not start"; exit 1; }
pids+=("$server")

cd "$root"
PYTHONPATH="$py_out:$root/python" /usr/bin/python3 python/examples/quantize_fmnist.py \
  --server "$address" --out "$work/model.onnx" >"$work/example.out"

prom_port=$(free_port)
cat >"$work/prometheus.yml" <<YML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: quantd
    static_configs:
      - targets: ["127.0.0.1:$metrics_port"]
YML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" >"$work/prom.log" 2>&1 &
pids+=($!)

query='quantd_job_accuracy_delta_points'
for i in $(seq 60); do
  result=$(curl -fsS "http://127.0.0.1:$prom_port/api/v1/query?query=$query" 2>/dev/null || true)
  if /usr/bin/python3 - "$result" <<'PY'
import json, sys
try:
    data = json.loads(sys.argv[1])["data"]["result"]
except Exception:
    sys.exit(1)
for series in data:
    labels = series["metric"]
    if labels.get("method") == "ptq" and labels.get("model") == "fmnist-cnn":
        value = float(series["value"][1])
        print(f"prometheus: {labels} = {value}")
        sys.exit(0 if -100 <= value <= 100 else 2)
sys.exit(1)
PY
  then
    echo "PASS: Prometheus saw the job's accuracy delta after ${i}x0.5 s"
    grep -q "quantized model:" "$work/example.out"
    break
  fi
  if [[ $i == 60 ]]; then
    echo "FAIL: no quantd_job_accuracy_delta_points{method=ptq,model=fmnist-cnn} in Prometheus"
    tail -5 "$work/prom.log"
    exit 1
  fi
  sleep 0.5
done

# The storage gauge counts the uploads and artifacts well before the
# janitor's first interval (300 s by default) ends.
query='quantd_storage_bytes{state="committed"}'
for i in $(seq 120); do
  result=$(curl -fsS -G "http://127.0.0.1:$prom_port/api/v1/query" \
    --data-urlencode "query=$query" 2>/dev/null || true)
  if /usr/bin/python3 - "$result" <<'PY'
import json, sys
try:
    data = json.loads(sys.argv[1])["data"]["result"]
except Exception:
    sys.exit(1)
sys.exit(0 if data and float(data[0]["value"][1]) > 0 else 1)
PY
  then
    echo "PASS: Prometheus saw committed storage bytes after ${i}x0.5 s"
    exit 0
  fi
  sleep 0.5
done
echo "FAIL: quantd_storage_bytes{state=committed} stayed 0 for 60 s after uploads"
exit 1
