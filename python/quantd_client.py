"""A small Python client for quantd's gRPC API (quantd.v1.QuantizationService).

It needs the modules generated at build time (``ninja -C build quantd_python``
writes them to ``build/python``) on ``sys.path``, plus Debian's
python3-grpcio and python3-protobuf::

    PYTHONPATH=build/python:python /usr/bin/python3 my_script.py

Typical use::

    from quantd_client import QuantdClient

    with QuantdClient("127.0.0.1:50051") as c:
        model = c.upload("model.onnx", "model")
        calib = c.upload("calib.npz", "dataset")
        job = c.create_job({"model": {"blobSha256": model.sha256},
                            "calibrationData": {"blobSha256": calib.sha256}},
                           request_id="my-run-1")
        for event in c.watch(job.name):
            print(event.sequence, event.state)
        job = c.get_job(job.name)
        c.download(job.name, "model", "model.int8.onnx")

Every failed call raises :class:`QuantdError`, carrying the gRPC status code's
name (``"NOT_FOUND"``, ``"INVALID_ARGUMENT"``, ...) and the server's message,
which says what to fix.
"""

import dataclasses
import hashlib
import os
import tempfile
import time
from typing import Iterator, Optional, Union

import grpc
from google.protobuf import json_format

from quantd.v1 import job_spec_pb2  # noqa: F401  (re-exported for callers)
from quantd.v1 import report_pb2  # noqa: F401
from quantd.v1 import service_pb2
from quantd.v1 import service_pb2_grpc

CHUNK_BYTES = 1 << 20  # upload chunk size, as the API suggests

TERMINAL_STATES = frozenset({
    service_pb2.JOB_STATE_SUCCEEDED,
    service_pb2.JOB_STATE_FAILED,
    service_pb2.JOB_STATE_CANCELLED,
})

_BLOB_KINDS = {
    "model": service_pb2.BLOB_KIND_MODEL,
    "dataset": service_pb2.BLOB_KIND_DATASET,
}
_ARTIFACT_KINDS = {
    "model": service_pb2.ARTIFACT_KIND_MODEL,
    "report": service_pb2.ARTIFACT_KIND_REPORT,
}


class QuantdError(Exception):
    """A call to quantd failed.

    Attributes:
      code: the gRPC status code's name, e.g. "NOT_FOUND".
      message: the server's message (what to fix), or the client's own.
    """

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @classmethod
    def from_rpc(cls, e: grpc.RpcError) -> "QuantdError":
        code = e.code() if hasattr(e, "code") else None
        details = e.details() if hasattr(e, "details") else str(e)
        return cls(code.name if code is not None else "UNKNOWN", details or "")


@dataclasses.dataclass
class UploadResult:
    """What upload() did.

    sha256 and size name the blob (a spec refers to it by sha256);
    bytes_sent is how many bytes this call streamed: 0 when the server
    already had the blob (skipped) or an interrupted upload was complete.
    """

    sha256: str
    size: int
    bytes_sent: int
    skipped: bool
    blob: service_pb2.Blob


@dataclasses.dataclass
class DownloadResult:
    path: str
    sha256: str
    size: int


def _kind(value, table, enum_name):
    if isinstance(value, str):
        try:
            return table[value.lower()]
        except KeyError:
            raise ValueError(
                f"{enum_name}: one of {sorted(table)}, got {value!r}") from None
    return int(value)


def _job_name(name: str) -> str:
    """Accepts "jobs/job-..." or the bare id "job-..."."""
    return name if name.startswith("jobs/") else "jobs/" + name


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            h.update(block)
    return h.hexdigest()


class QuantdClient:
    """A connection to one quantd server.

    Args:
      address: "host:port".
      token: bearer token (the server maps it to a tenant); None for a
        single-tenant server without a tokens file.
      root_certificates: PEM bytes of the CA that signed the server's
        certificate; enables TLS. None: plaintext (loopback).
      reconnect_seconds: how long watch() and download() keep retrying
        after the server became UNAVAILABLE (e.g. while it restarts).
    """

    def __init__(self, address: str, token: Optional[str] = None,
                 root_certificates: Optional[bytes] = None,
                 reconnect_seconds: float = 60.0):
        options = [
            ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20),
        ]
        if root_certificates is not None:
            creds = grpc.ssl_channel_credentials(
                root_certificates=root_certificates)
            self._channel = grpc.secure_channel(address, creds, options)
        else:
            self._channel = grpc.insecure_channel(address, options)
        self._stub = service_pb2_grpc.QuantizationServiceStub(self._channel)
        # Sent as metadata on every call (call credentials would refuse a
        # plaintext channel, and a tokens-file server may run without TLS).
        self._metadata = (
            (("authorization", "Bearer " + token),) if token else ())
        self.reconnect_seconds = reconnect_seconds

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method, request, **kwargs):
        try:
            return method(request, metadata=self._metadata, **kwargs)
        except grpc.RpcError as e:
            raise QuantdError.from_rpc(e) from None

    # -- blobs ------------------------------------------------------------

    def get_blob(self, sha256: str) -> Optional[service_pb2.Blob]:
        """The blob with this digest if this tenant uploaded it, else None."""
        try:
            return self._call(self._stub.GetBlob,
                              service_pb2.GetBlobRequest(sha256=sha256))
        except QuantdError as e:
            if e.code == "NOT_FOUND":
                return None
            raise

    def upload(self, path: str, kind: Union[str, int],
               name: Optional[str] = None, attempts: int = 3) -> UploadResult:
        """Uploads a model ("model") or dataset ("dataset") file.

        Skips the upload when the server already has the blob (GetBlob).
        Otherwise streams 1 MiB chunks under an upload id derived from the
        digest, so an interrupted upload (from this or an earlier process)
        resumes from the server's committed size (GetUploadStatus). A stream
        that fails with UNAVAILABLE is resumed up to `attempts` times.
        """
        kind = _kind(kind, _BLOB_KINDS, "kind")
        size = os.path.getsize(path)
        sha256 = file_sha256(path)
        existing = self.get_blob(sha256)
        if existing is not None:
            return UploadResult(sha256, size, 0, True, existing)

        upload_id = "sha256-" + sha256[:57]  # [A-Za-z0-9._-], at most 64
        header = service_pb2.UploadHeader(
            kind=kind, name=(name or os.path.basename(path))[:255], size=size,
            sha256=sha256, upload_id=upload_id)
        sent = 0
        for attempt in range(attempts):
            offset = self._committed_size(upload_id, size, sha256)
            header.offset = offset
            counter = [0]

            def requests(offset=offset, counter=counter):
                yield service_pb2.UploadBlobRequest(header=header)
                with open(path, "rb") as f:
                    f.seek(offset)
                    for block in iter(lambda: f.read(CHUNK_BYTES), b""):
                        counter[0] += len(block)
                        yield service_pb2.UploadBlobRequest(chunk=block)

            try:
                blob = self._stub.UploadBlob(requests(),
                                             metadata=self._metadata)
                sent += counter[0]
                return UploadResult(sha256, size, sent, False, blob)
            except grpc.RpcError as e:
                sent += counter[0]
                err = QuantdError.from_rpc(e)
                if err.code != "UNAVAILABLE" or attempt + 1 == attempts:
                    raise err from None
                time.sleep(min(0.5 * 2 ** attempt, 5.0))
        raise AssertionError("unreachable")

    def _committed_size(self, upload_id: str, size: int, sha256: str) -> int:
        try:
            status = self._call(
                self._stub.GetUploadStatus,
                service_pb2.GetUploadStatusRequest(upload_id=upload_id))
        except QuantdError as e:
            if e.code == "NOT_FOUND":
                return 0
            raise
        if status.size != size or status.sha256 != sha256:
            raise QuantdError(
                "FAILED_PRECONDITION",
                f"upload '{upload_id}' is in progress for other content "
                f"({status.size} bytes, sha256 {status.sha256})")
        return status.committed_size

    # -- jobs -------------------------------------------------------------

    def create_job(self, spec, request_id: Optional[str] = None,
                   priority: int = 0) -> service_pb2.Job:
        """Creates a job; answers at once with the job QUEUED.

        spec: a quantd.v1.JobSpec, or a dict in its JSON form (as
        `quantd run-job` reads, e.g. {"model": {"blobSha256": ...}}).
        request_id: idempotency key; repeating it returns the same job.
        """
        if isinstance(spec, dict):
            spec = json_format.ParseDict(spec, job_spec_pb2.JobSpec())
        request = service_pb2.CreateJobRequest(
            spec=spec, request_id=request_id or "", priority=priority)
        return self._call(self._stub.CreateJob, request)

    def get_job(self, name: str) -> service_pb2.Job:
        return self._call(self._stub.GetJob,
                          service_pb2.GetJobRequest(name=_job_name(name)))

    def list_jobs(self, state: int = service_pb2.JOB_STATE_UNSPECIFIED,
                  page_size: int = 100) -> Iterator[service_pb2.Job]:
        """All of this tenant's jobs (newest first), across all pages."""
        token = ""
        while True:
            page = self._call(
                self._stub.ListJobs,
                service_pb2.ListJobsRequest(page_size=page_size,
                                            page_token=token, state=state))
            yield from page.jobs
            token = page.next_page_token
            if not token:
                return

    def cancel_job(self, name: str) -> service_pb2.Job:
        return self._call(self._stub.CancelJob,
                          service_pb2.CancelJobRequest(name=_job_name(name)))

    def delete_job(self, name: str) -> None:
        self._call(self._stub.DeleteJob,
                   service_pb2.DeleteJobRequest(name=_job_name(name)))

    def watch(self, name: str,
              after_sequence: int = 0) -> Iterator[service_pb2.JobEvent]:
        """Yields the job's events after `after_sequence` until it ends.

        When the stream breaks (UNAVAILABLE, e.g. the server restarts) or
        ends before a terminal state, reconnects from the last sequence
        seen, so no event is missed or repeated; gives up after
        `reconnect_seconds` without a connection. Dropping the generator
        never affects the job.
        """
        name = _job_name(name)
        last = after_sequence
        down_since = None
        delay = 0.1
        while True:
            stream = self._stub.WatchJob(
                service_pb2.WatchJobRequest(name=name, after_sequence=last),
                metadata=self._metadata)
            try:
                for event in stream:
                    down_since, delay = None, 0.1
                    if event.sequence <= last:
                        continue  # defensive: never yield a duplicate
                    last = event.sequence
                    yield event
                    if (event.WhichOneof("kind") == "state_change" and
                            event.state_change in TERMINAL_STATES):
                        return
            except grpc.RpcError as e:
                err = QuantdError.from_rpc(e)
                if err.code != "UNAVAILABLE":
                    raise err from None
            else:
                # The stream ended cleanly without a terminal event: the
                # job may have ended already, or the server is draining.
                try:
                    if self.get_job(name).state in TERMINAL_STATES:
                        # Drain any events we have not seen, then stop.
                        if not self._drained(name, last):
                            continue
                        return
                except QuantdError as e:
                    if e.code != "UNAVAILABLE":
                        raise
            finally:
                stream.cancel()
            now = time.monotonic()
            down_since = down_since or now
            if now - down_since > self.reconnect_seconds:
                raise QuantdError(
                    "UNAVAILABLE",
                    f"lost the event stream of {name} after sequence {last} "
                    f"and could not reconnect for {self.reconnect_seconds} s")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _drained(self, name: str, last: int) -> bool:
        """True when a terminal job has no events after `last`."""
        stream = self._stub.WatchJob(
            service_pb2.WatchJobRequest(name=name, after_sequence=last),
            metadata=self._metadata)
        try:
            for _ in stream:
                return False
            return True
        except grpc.RpcError as e:
            raise QuantdError.from_rpc(e) from None
        finally:
            stream.cancel()

    def wait(self, name: str, on_event=None) -> service_pb2.Job:
        """Watches the job to its end (calling on_event(event) for each
        event) and returns the final Job."""
        for event in self.watch(name):
            if on_event is not None:
                on_event(event)
        return self.get_job(name)

    # -- artifacts ----------------------------------------------------------

    def download(self, job_name: str, kind: Union[str, int], path: str,
                 attempts: int = 3) -> DownloadResult:
        """Downloads an artifact ("model" or "report") of a finished job.

        Writes to a temporary file next to `path`, checks the size and the
        sha256 announced in the stream's header, then renames it to `path`:
        `path` is either the complete, verified artifact or untouched. A
        stream broken by UNAVAILABLE resumes from the bytes already written.
        """
        kind = _kind(kind, _ARTIFACT_KINDS, "kind")
        job_name = _job_name(job_name)
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".",
                                   suffix=".part", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                digest = hashlib.sha256()
                written = 0
                expected = None  # (sha256, size) from the first header
                for attempt in range(attempts):
                    stream = self._stub.DownloadArtifact(
                        service_pb2.DownloadArtifactRequest(
                            job=job_name, kind=kind, offset=written),
                        metadata=self._metadata)
                    try:
                        for msg in stream:
                            if msg.WhichOneof("payload") == "header":
                                h = msg.header
                                if expected is None:
                                    expected = (h.sha256, h.size)
                                elif expected != (h.sha256, h.size):
                                    raise QuantdError(
                                        "ABORTED", "the artifact changed "
                                        "while it was being downloaded")
                                if h.offset != written:
                                    raise QuantdError(
                                        "INTERNAL", f"asked for offset "
                                        f"{written}, got {h.offset}")
                            else:
                                if expected is None:
                                    raise QuantdError(
                                        "INTERNAL",
                                        "a chunk came before the header")
                                f.write(msg.chunk)
                                digest.update(msg.chunk)
                                written += len(msg.chunk)
                        break
                    except grpc.RpcError as e:
                        err = QuantdError.from_rpc(e)
                        if err.code != "UNAVAILABLE" or attempt + 1 == attempts:
                            raise err from None
                        time.sleep(min(0.5 * 2 ** attempt, 5.0))
                    finally:
                        stream.cancel()
                if expected is None:
                    raise QuantdError("INTERNAL", "the stream had no header")
                sha256, size = expected
                if written != size or digest.hexdigest() != sha256:
                    raise QuantdError(
                        "DATA_LOSS",
                        f"downloaded {written} bytes with sha256 "
                        f"{digest.hexdigest()}; the server announced {size} "
                        f"bytes with sha256 {sha256}")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            tmp = None
            return DownloadResult(path, sha256, size)
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass


def report_from_json(text: Union[str, bytes]) -> "report_pb2.QuantizationReport":
    """Parses the REPORT artifact (protobuf JSON) into a QuantizationReport."""
    return json_format.Parse(text, report_pb2.QuantizationReport(),
                             ignore_unknown_fields=True)
