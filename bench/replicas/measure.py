#!/usr/bin/python3
"""Throughput of N quantd replicas and the latency of their watch events.

Submits JOBS copies of one small PTQ job (static W8A8 of the Fashion-MNIST
CNN, percentile calibration, sensitivity and benchmark off) round-robin through the replicas at ADDRESSES, and
watches every job from every replica at once. Prints one JSON line:

  jobs_per_minute   jobs / (last SUCCEEDED - first CreateJob), in minutes
  watch_ms          per event, receipt time on a replica minus the event's
                    own time: "owner" is the fastest of the replicas (the
                    one that ran the job publishes to its watchers at once),
                    "other" the rest (they re-read the shared store every
                    500 ms); median and p95 of each, and of other - owner.

  measure.py TESTDATA JOBS HOST:PORT [HOST:PORT ...]

Needs PYTHONPATH with quantd_client and the generated quantd/v1 modules.
"""
import json
import sys
import threading
import time

from quantd_client import QuantdClient


def percentile(values, p):
    values = sorted(values)
    if not values:
        return None
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return round(values[k], 1)


def main():
    testdata, jobs, addresses = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    clients = [QuantdClient(a) for a in addresses]
    model = clients[0].upload(f"{testdata}/fmnist_cnn/model.onnx", "model")
    calib = clients[0].upload(f"{testdata}/fmnist/calib.npz", "dataset")
    data = clients[0].upload(f"{testdata}/fmnist/eval.npz", "dataset")
    spec = {
        "model": {"blobSha256": model.sha256},
        "calibrationData": {"blobSha256": calib.sha256},
        "evaluationData": {"blobSha256": data.sha256},
        "mode": "QUANT_MODE_STATIC",
        "calibration": {"method": "CALIBRATION_METHOD_PERCENTILE",
                        "percentile": 99.99},
        "sensitivity": {"disabled": True},
        "benchmark": {"disabled": True},
    }
    # received[(job, sequence)][replica] = ms after the event's own time
    received = {}
    lock = threading.Lock()
    done_at = []

    def follow(replica, name):
        client = QuantdClient(addresses[replica])
        for event in client.watch(name):
            now = time.time()
            sent = event.time.seconds + event.time.nanos / 1e9
            with lock:
                received.setdefault((name, event.sequence), {})[replica] = (
                    (now - sent) * 1000)
        with lock:
            done_at.append(time.time())
        client.close()

    start = time.time()
    threads = []
    for i in range(jobs):
        job = clients[i % len(clients)].create_job(spec)
        for replica in range(len(clients)):
            t = threading.Thread(target=follow, args=(replica, job.name))
            t.start()
            threads.append(t)
    for t in threads:
        t.join()
    elapsed = max(done_at) - start
    owner, other, extra = [], [], []
    for (name, sequence), per_replica in received.items():
        # The creation and RUNNING events may precede a watcher's
        # subscription (then it replays them); later ones arrive live.
        if sequence <= 2 or len(per_replica) < len(clients):
            continue
        fastest = min(per_replica.values())
        owner.append(fastest)
        for ms in per_replica.values():
            if ms != fastest:
                other.append(ms)
                extra.append(ms - fastest)
    print(json.dumps({
        "replicas": len(clients),
        "jobs": jobs,
        "seconds": round(elapsed, 1),
        "jobs_per_minute": round(jobs / elapsed * 60, 1),
        "watch_ms": {
            "events": len(owner),
            "owner_median": percentile(owner, 50),
            "owner_p95": percentile(owner, 95),
            "other_median": percentile(other, 50) if other else None,
            "other_p95": percentile(other, 95) if other else None,
            "extra_median": percentile(extra, 50) if extra else None,
            "extra_p95": percentile(extra, 95) if extra else None,
        },
    }))


if __name__ == "__main__":
    main()
