#!/usr/bin/env bash
# `kubectl kustomize` (offline, no cluster) renders every kustomization
# under deploy/kubernetes with the kinds each must produce, and checks what
# the manifests promise: native gRPC probes, grace period above quantd's
# --grace-seconds, non-root, the batch Job's podFailurePolicy on exit codes.
#   tests/deploy/kustomize_test.sh SOURCE_ROOT
set -euo pipefail
root=$1
kubectl=${KUBECTL:-kubectl}
command -v "$kubectl" >/dev/null || { echo "SKIP: kubectl is not installed (tools/install-deps.sh)"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$root/deploy/kubernetes"
for d in . monitoring tls batch scaled; do
  "$kubectl" kustomize "$d" >"$work/${d//\//_}.yaml" 2>"$work/err" ||
    { cat "$work/err"; echo "FAIL: kubectl kustomize deploy/kubernetes/$d"; exit 1; }
done
/usr/bin/python3 - "$work" <<'PY'
import sys, yaml
work = sys.argv[1]
def load(name):
    return [d for d in yaml.safe_load_all(open(f"{work}/{name}.yaml")) if d]
def kinds(docs):
    return sorted(d["kind"] for d in docs)
def check(cond, msg):
    if not cond:
        print("FAIL:", msg); sys.exit(1)
want = ["Deployment", "Namespace", "PersistentVolumeClaim", "Service"]
svc = load("."); check(kinds(svc) == want, f"deploy/kubernetes kinds {kinds(svc)}")
mon = load("monitoring")
check(kinds(mon) == sorted(want + ["ServiceMonitor"]), f"monitoring kinds {kinds(mon)}")
tls = load("tls"); check(kinds(tls) == want, f"tls kinds {kinds(tls)}")
batch = load("batch")
check(kinds(batch) == ["ConfigMap", "Job", "PersistentVolumeClaim"], f"batch kinds {kinds(batch)}")
for docs in (svc, mon, tls, batch):
    for d in docs:
        if d["kind"] != "Namespace":
            check(d["metadata"].get("namespace") == "quantd", f"{d['kind']} not in namespace quantd")

def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind][0]
dep = by_kind(svc, "Deployment")
pod = dep["spec"]["template"]["spec"]
c = pod["containers"][0]
for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
    check(c[probe].get("grpc", {}).get("port") == 50051, f"{probe} is not a gRPC probe on 50051")
args = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in c["args"] if "=" in a}
grace = int(args["--grace-seconds"])
check(pod["terminationGracePeriodSeconds"] > grace,
      f"terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} <= --grace-seconds {grace}")
check(args["--data-dir"] == "/var/lib/quantd", "data dir")
mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
vols = {v["name"]: v for v in pod["volumes"]}
check(vols[mounts["/var/lib/quantd"]]["persistentVolumeClaim"]["claimName"] == by_kind(svc, "PersistentVolumeClaim")["metadata"]["name"], "data PVC")
check(args["--tokens-file"].startswith("/etc/quantd/tokens/") and vols[mounts["/etc/quantd/tokens"]]["secret"]["secretName"] == "quantd-tokens", "tokens Secret")
check(vols[mounts["/etc/quantd/tls"]]["secret"]["secretName"] == "quantd-tls", "TLS Secret")
check(pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] != 0, "non-root")
check("limits" in c["resources"] and "requests" in c["resources"], "resources")
ports = {p["name"]: p["port"] for p in by_kind(svc, "Service")["spec"]["ports"]}
check(ports == {"grpc": 50051, "metrics": 9464}, f"service ports {ports}")
check(by_kind(mon, "ServiceMonitor")["spec"]["endpoints"][0]["port"] == "metrics", "ServiceMonitor port")
tc = by_kind(tls, "Deployment")["spec"]["template"]["spec"]["containers"][0]
check(any(a.startswith("--tls-cert=") for a in tc["args"]) and "tcpSocket" in tc["readinessProbe"], "tls overlay")

job = by_kind(batch, "Job"); js = job["spec"]
for k in ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"):
    check(k in js, f"Job without {k}")
rules = js["podFailurePolicy"]["rules"]
check(rules[0]["action"] == "FailJob" and rules[0]["onExitCodes"]["operator"] == "In" and rules[0]["onExitCodes"]["values"] == [2],
      "first podFailurePolicy rule is not FailJob on exit code 2")
check(any(r["action"] == "Count" and r.get("onExitCodes", {}).get("operator") == "NotIn" for r in rules), "no Count rule")
jpod = js["template"]["spec"]
check(jpod["restartPolicy"] == "Never", "restartPolicy")
jc = jpod["containers"][0]
check(jc["name"] == rules[0]["onExitCodes"]["containerName"], "containerName of the rule")
check(jc["command"] + jc["args"] == ["quantd", "run-job", "--spec=/etc/quantd/spec/job.json", "--out=/out"], f"run-job command {jc['command'] + jc['args']}")
cm = by_kind(batch, "ConfigMap")
spec_vol = [v for v in jpod["volumes"] if "configMap" in v][0]
check(spec_vol["configMap"]["name"] == cm["metadata"]["name"], "the Job does not mount the generated ConfigMap")
import json
spec = json.loads(cm["data"]["job.json"])
check(spec["model"]["path"].startswith("/data/") and spec["labels"]["model"], "job.json")
check(job["metadata"]["labels"].get("kueue.x-k8s.io/queue-name") == "quantd-batch", "the batch Job has no Kueue queue label")

scaled = load("scaled")
check(kinds(scaled) == ["Deployment", "Namespace", "PodDisruptionBudget", "Service"],
      f"scaled kinds {kinds(scaled)}")
sdep = by_kind(scaled, "Deployment"); spod = sdep["spec"]["template"]["spec"]; sc = spod["containers"][0]
check(sdep["spec"]["replicas"] >= 2 and sdep["spec"]["strategy"]["type"] == "RollingUpdate", "scaled replicas/strategy")
env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in sc["env"]}
check(env["QUANTD_JOB_STORE"]["name"] == "quantd-postgres" and env["PGPASSWORD"]["name"] == "quantd-postgres",
      "the job store URL and password come from the quantd-postgres Secret")
check(all(env[k]["name"] == "quantd-s3" for k in
          ("QUANTD_BLOB_STORE", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")),
      "the blob store and its S3 endpoint and keys come from the quantd-s3 Secret")
check(not any(a.startswith(("--blob-store", "--s3")) for a in sc["args"]), "no S3 settings in the arguments")
check(not any(a.startswith("--job-store") for a in sc["args"]), "no job store URL in the arguments")
check(sc["readinessProbe"]["grpc"].get("service") == "quantd.v1.QuantizationService", "readiness on the service's health")
check("service" not in sc["livenessProbe"]["grpc"], "liveness on the server's health")
svols = {v["name"]: v for v in spod["volumes"]}
smounts = {m["mountPath"]: m["name"] for m in sc["volumeMounts"]}
check("emptyDir" in svols[smounts["/var/lib/quantd"]], "each pod caches blobs on an emptyDir")
check(any(a.startswith("--blob-cache-bytes=") for a in sc["args"]), "the cache is bounded")
pdb = by_kind(scaled, "PodDisruptionBudget")
check(pdb["spec"]["selector"]["matchLabels"].items() <= sdep["spec"]["template"]["metadata"]["labels"].items(), "PDB selects the pods")
check(by_kind(scaled, "Service")["spec"] == by_kind(svc, "Service")["spec"], "the Service is unchanged for clients")
print("kinds:", kinds(svc), "| monitoring + ServiceMonitor | tls | batch", kinds(batch))
PY
echo "PASS: kubectl kustomize ($("$kubectl" version --client 2>/dev/null | head -1)) for deploy/kubernetes, monitoring, tls, batch, scaled"
