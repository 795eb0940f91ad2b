#!/usr/bin/python3
"""Quantizes the bundled Fashion-MNIST CNN on a quantd server, from Python.

Uploads the model and its calibration and evaluation sets (skipping what the
server already has), runs a static W8A8 job with percentile calibration,
prints its progress, the accuracy delta from the report, and downloads the
quantized model.

    quantd serve --data-dir /tmp/quantd-data &
    PYTHONPATH=build/python:python /usr/bin/python3 \
        python/examples/quantize_fmnist.py --server 127.0.0.1:50051 \
        --out /tmp/fmnist_cnn.int8.onnx
"""

import argparse
import os
import sys

from quantd_client import QuantdClient, QuantdError
from quantd.v1 import service_pb2

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TESTDATA = os.environ.get("QUANTD_TESTDATA", os.path.join(ROOT, "testdata"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default="127.0.0.1:50051")
    p.add_argument("--token", default=os.environ.get("QUANTD_TOKEN"))
    p.add_argument("--out", default="fmnist_cnn.int8.onnx")
    args = p.parse_args()

    with QuantdClient(args.server, token=args.token) as client:
        blobs = {}
        for key, path, kind in [
                ("model", "fmnist_cnn/model.onnx", "model"),
                ("calib", "fmnist/calib.npz", "dataset"),
                ("eval", "fmnist/eval.npz", "dataset")]:
            r = client.upload(os.path.join(TESTDATA, path), kind)
            print(f"{path}: {'already there' if r.skipped else 'uploaded'} "
                  f"({r.size} bytes, sha256 {r.sha256[:12]})")
            blobs[key] = r.sha256

        job = client.create_job({
            "displayName": "Fashion-MNIST CNN, W8A8 static PTQ (Python)",
            "model": {"blobSha256": blobs["model"]},
            "calibrationData": {"blobSha256": blobs["calib"]},
            "evaluationData": {"blobSha256": blobs["eval"]},
            "method": "METHOD_PTQ",
            "mode": "QUANT_MODE_STATIC",
            "weights": {"type": "QUANT_DATA_TYPE_INT8",
                        "granularity": "GRANULARITY_PER_CHANNEL"},
            "activations": {"type": "QUANT_DATA_TYPE_UINT8"},
            "calibration": {"method": "CALIBRATION_METHOD_PERCENTILE",
                            "percentile": 99.99},
            "labels": {"model": "fmnist-cnn"},
        })
        print(f"{job.name}: {service_pb2.JobState.Name(job.state)}")

        for e in client.watch(job.name):
            kind = e.WhichOneof("kind")
            if kind == "state_change":
                print(f"  [{e.sequence}] {service_pb2.JobState.Name(e.state_change)}")
            elif kind == "progress":
                layer = f" {e.progress.current_layer}" if e.progress.current_layer else ""
                print(f"  [{e.sequence}] {e.progress.stage:<22} "
                      f"{100 * e.progress.fraction:5.1f}%{layer}")
            else:
                print(f"  [{e.sequence}] {e.message}")

        job = client.get_job(job.name)
        if job.state != service_pb2.JOB_STATE_SUCCEEDED:
            print(f"{job.name} {service_pb2.JobState.Name(job.state)}: "
                  f"{job.error}", file=sys.stderr)
            return 1
        for label, m in [("fake-quant", job.report.fake_quant),
                         ("int8", job.report.int8)]:
            print(f"{label:>10}: accuracy {100 * m.float_accuracy:.2f}% -> "
                  f"{100 * m.quantized_accuracy:.2f}% "
                  f"({m.accuracy_delta_points:+.2f} points)")
        d = client.download(job.name, "model", args.out)
        print(f"quantized model: {d.path} ({d.size} bytes, "
              f"sha256 {d.sha256[:12]}, "
              f"{job.report.size.compression_ratio:.2f}x smaller)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except QuantdError as e:
        print(f"quantize_fmnist: {e}", file=sys.stderr)
        sys.exit(2)
