#!/usr/bin/python3
"""Integration test of the Python client against a real `quantd serve`.

Starts the server on loopback (port 0, a temporary data folder, no metrics
endpoint), runs a whole static W8A8 job on the Fashion-MNIST CNN from Python
and checks the client's error mapping. ctest runs it with:

  QUANTD_BIN     the quantd binary (or pass it as the first argument)
  QUANTD_PY_OUT  the folder with the generated quantd.v1 modules
                 (build/python)
  QUANTD_TESTDATA  the testdata folder (default: ../testdata)
"""

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))

if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
    os.environ["QUANTD_BIN"] = sys.argv.pop(1)
QUANTD_BIN = os.environ.get("QUANTD_BIN", "")
PY_OUT = os.environ.get("QUANTD_PY_OUT",
                        os.path.join(HERE, "..", "build", "python"))
TESTDATA = os.environ.get("QUANTD_TESTDATA",
                          os.path.join(HERE, "..", "testdata"))
sys.path[:0] = [PY_OUT, HERE]

from quantd_client import QuantdClient, QuantdError  # noqa: E402
from quantd.v1 import service_pb2  # noqa: E402

STARTUP_SECONDS = 20
JOB_SECONDS = 90


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Server:
    """A `quantd serve` child process on 127.0.0.1 with its own data dir."""

    def __init__(self, data_dir):
        self.log_path = os.path.join(data_dir, "server.log")
        self._log = open(self.log_path, "wb")
        env = dict(os.environ, OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [QUANTD_BIN, "serve", "--port", "0",
             "--data-dir", os.path.join(data_dir, "data"),
             "--metrics-address", "", "--workers", "1",
             "--threads-per-job", "1", "--grace-seconds", "2"],
            stdout=subprocess.PIPE, stderr=self._log, env=env)
        self.address = self._wait_ready()

    def _wait_ready(self):
        found = {}

        def read():
            line = self.proc.stdout.readline().decode(errors="replace")
            m = re.search(r"quantd serving on (\S+):(\d+)", line)
            if m:
                found["address"] = f"127.0.0.1:{m.group(2)}"

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(STARTUP_SECONDS)
        if "address" not in found:
            self.stop()
            raise RuntimeError(
                f"quantd serve did not print 'quantd serving on' within "
                f"{STARTUP_SECONDS} s; its log:\n{self.log()}")
        return found["address"]

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        """SIGTERM, then SIGKILL if it has not exited after 10 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self._log.close()


class QuantdClientTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        # Never a silent skip: without the server there is nothing to test.
        if not QUANTD_BIN or not os.access(QUANTD_BIN, os.X_OK):
            raise RuntimeError(
                f"QUANTD_BIN={QUANTD_BIN!r} is not an executable; set it "
                f"(or pass the quantd binary as first argument)")
        cls.tmp = tempfile.mkdtemp(prefix="quantd-py-test-")
        try:
            cls.server = Server(cls.tmp)
        except BaseException:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise
        cls.client = QuantdClient(cls.server.address)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run(self, result=None):
        # On failure, the server's log says why.
        result = super().run(result)
        if result is not None and not result.wasSuccessful() and \
                not getattr(QuantdClientTest, "_log_shown", False):
            QuantdClientTest._log_shown = True
            sys.stderr.write("--- quantd serve log ---\n" +
                             self.server.log() + "--- end ---\n")
        return result

    def _upload_fixture(self):
        model = self.client.upload(
            os.path.join(TESTDATA, "fmnist_cnn", "model.onnx"), "model")
        calib = self.client.upload(
            os.path.join(TESTDATA, "fmnist", "calib.npz"), "dataset")
        evals = self.client.upload(
            os.path.join(TESTDATA, "fmnist", "eval.npz"), "dataset")
        return model, calib, evals

    def test_whole_job(self):
        start = time.monotonic()
        model_path = os.path.join(TESTDATA, "fmnist_cnn", "model.onnx")
        model, calib, evals = self._upload_fixture()
        self.assertEqual(model.sha256, sha256_of(model_path))
        self.assertEqual(model.size, os.path.getsize(model_path))
        # The server has them now: a second upload streams nothing.
        again = self.client.upload(model_path, "model")
        self.assertTrue(again.skipped)
        self.assertEqual(again.bytes_sent, 0)
        self.assertEqual(again.sha256, model.sha256)

        spec = {
            "displayName": "python client test",
            "model": {"blobSha256": model.sha256},
            "calibrationData": {"blobSha256": calib.sha256},
            "evaluationData": {"blobSha256": evals.sha256},
            "method": "METHOD_PTQ",
            "mode": "QUANT_MODE_STATIC",
            "weights": {"type": "QUANT_DATA_TYPE_INT8",
                        "granularity": "GRANULARITY_PER_CHANNEL"},
            "activations": {"type": "QUANT_DATA_TYPE_UINT8"},
            "calibration": {"method": "CALIBRATION_METHOD_PERCENTILE",
                            "percentile": 99.99},
            "labels": {"model": "fmnist-cnn"},
        }
        job = self.client.create_job(spec, request_id="py-test-1")
        self.assertRegex(job.name, r"^jobs/job-")
        self.assertIn(job.state, (service_pb2.JOB_STATE_QUEUED,
                                  service_pb2.JOB_STATE_RUNNING))
        same = self.client.create_job(spec, request_id="py-test-1")
        self.assertEqual(same.name, job.name)
        self.assertIn(job.name, [j.name for j in self.client.list_jobs()])

        sequences, states = [], []
        deadline = time.monotonic() + JOB_SECONDS
        for event in self.client.watch(job.name):
            self.assertEqual(event.job, job.name)
            sequences.append(event.sequence)
            if event.WhichOneof("kind") == "state_change":
                states.append(event.state_change)
            self.assertLess(time.monotonic(), deadline, "the job took too long")
        self.assertTrue(sequences, "no events")
        self.assertEqual(sequences[0], 1)
        self.assertTrue(all(a < b for a, b in zip(sequences, sequences[1:])),
                        f"sequences not strictly increasing: {sequences}")
        self.assertEqual(states[-1], service_pb2.JOB_STATE_SUCCEEDED)

        done = self.client.wait(job.name)  # already terminal: returns at once
        self.assertEqual(done.state, service_pb2.JOB_STATE_SUCCEEDED,
                         done.error)
        for metrics in (done.report.fake_quant, done.report.int8):
            self.assertTrue(metrics.has_labels)
            self.assertGreaterEqual(metrics.accuracy_delta_points, -0.5)

        # Replay after a sequence: exactly the later events.
        tail = [e.sequence for e in
                self.client.watch(job.name, after_sequence=sequences[-3])]
        self.assertEqual(tail, sequences[-2:])

        artifact = {a.kind: a for a in done.artifacts}
        self.assertIn(service_pb2.ARTIFACT_KIND_MODEL, artifact)
        out = os.path.join(self.tmp, "model.int8.onnx")
        d = self.client.download(job.name, "model", out)
        want = artifact[service_pb2.ARTIFACT_KIND_MODEL]
        self.assertEqual(d.sha256, want.sha256)
        self.assertEqual(sha256_of(out), want.sha256)
        self.assertEqual(os.path.getsize(out), want.size)
        self.assertEqual([f for f in os.listdir(self.tmp) if f.endswith(".part")],
                         [], "temporary download file left behind")

        self.client.delete_job(job.name)
        with self.assertRaises(QuantdError) as cm:
            self.client.get_job(job.name)
        self.assertEqual(cm.exception.code, "NOT_FOUND")
        sys.stderr.write(f"\nwhole job from Python: "
                         f"{time.monotonic() - start:.1f} s\n")

    def test_local_path_in_spec_is_invalid_argument(self):
        with self.assertRaises(QuantdError) as cm:
            self.client.create_job({
                "model": {"path": os.path.join(TESTDATA, "fmnist_cnn",
                                               "model.onnx")},
                "calibrationData": {"path": os.path.join(
                    TESTDATA, "fmnist", "calib.npz")},
            })
        self.assertEqual(cm.exception.code, "INVALID_ARGUMENT")
        self.assertTrue(cm.exception.message)

    def test_unknown_job_is_not_found(self):
        with self.assertRaises(QuantdError) as cm:
            self.client.get_job("jobs/job-doesnotexist")
        self.assertEqual(cm.exception.code, "NOT_FOUND")
        self.assertTrue(cm.exception.message)

    def test_interrupted_upload_resumes(self):
        import numpy as np
        from quantd_client import file_sha256
        path = os.path.join(self.tmp, "resume.npz")
        np.savez(path, x=np.random.default_rng(7).random(
            (3, 1 << 17), dtype=np.float32))
        size, sha = os.path.getsize(path), file_sha256(path)
        self.assertGreater(size, 1 << 20)
        upload_id = "sha256-" + sha[:57]  # as QuantdClient.upload derives it

        def first_chunk_then_break():
            yield service_pb2.UploadBlobRequest(header=service_pb2.UploadHeader(
                kind=service_pb2.BLOB_KIND_DATASET, size=size, sha256=sha,
                upload_id=upload_id))
            with open(path, "rb") as f:
                yield service_pb2.UploadBlobRequest(chunk=f.read(1 << 20))
            time.sleep(0.3)  # let the server append the chunk
            raise RuntimeError("connection lost")

        with self.assertRaises(Exception):
            self.client._stub.UploadBlob(first_chunk_then_break())
        r = self.client.upload(path, "dataset")
        self.assertFalse(r.skipped)
        self.assertEqual(r.bytes_sent, size - (1 << 20))
        self.assertEqual(r.sha256, sha)
        self.assertIsNotNone(self.client.get_blob(sha))

    def test_unknown_blob(self):
        self.assertIsNone(self.client.get_blob("0" * 64))


if __name__ == "__main__":
    unittest.main()
