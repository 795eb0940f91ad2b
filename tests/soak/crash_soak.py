#!/usr/bin/env python3
"""Crash soak: kill -9 a real `quantd serve` at random moments and check
that nothing is lost, duplicated, corrupt or left behind.

Starts `quantd serve` on loopback with a temporary data folder, submits
jobs (PTQ and QAT on the small fixtures, a few seconds each) with
`quantctl quantize --detach --request-id`, and SIGKILLs the server K times
at random moments (seeded; the seed is printed), restarting it each time
with the default --max-attempts. Some jobs are made to exceed it: a long
job at the top priority, submitted so that the next kills hit it while it
runs. Submissions (a third of them with a new upload: the evaluation set
re-zipped), retries after an unreachable server and cancels run while the
kills happen; each kill is followed by `PRAGMA integrity_check` on a copy
of the SQLite files. When every job has ended it checks:

  states      every job SUCCEEDED or FAILED (CANCELLED only if cancelled)
  reasons     every FAILED job has its error, a message event with the
              reason and a FAILED state-change event (`jobs get`, `jobs
              watch`); every job's last event is its terminal state, the
              events are numbered without gaps, and each re-run after a
              crash follows a QUEUED event
  lost        every submitted job exists (API and job store)
  duplicated  no two jobs for one request_id; a retried request_id
              returns the same job
  corrupt     every artifact downloaded (model, report) has the sha256
              the job records; every blob file hashes to its name;
              `PRAGMA integrity_check` is ok on every SQLite file of the
              data folder, after each kill (on a copy) and at the end
  orphans     no uploads/*.part|*.meta once uploads finished, no *.tmp
              files, no checkpoints of ended jobs, no blob that no job and
              no upload refers to (after a janitor pass, when `quantd
              serve` has a retention flag)
  metrics     quantd_jobs_finished_total{outcome="failed"} counts the
              jobs that the start-up recovery failed

and prints `jobs N, kills K, succeeded S, failed F, ..., lost 0,
duplicated 0, corrupt 0, orphans 0`, each failure with its job or file,
and exits 1 if any check failed (2: the soak could not run).

  tests/soak/crash_soak.py --quantd build/server/quantd \\
      --quantctl build/client/quantctl --testdata testdata \\
      [--jobs 24] [--kills 20] [--seed S] [--workers 2] [--keep]

Python 3 standard library only. The job store is read (sqlite3, read
only) once the server has stopped.
"""

import argparse
import datetime
import hashlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile

TERMINAL = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED")
SQLITE_MAGIC = b"SQLite format 3\x00"
HEX64 = re.compile(rb"[0-9a-f]{64}")
# Exit codes of quantctl worth retrying: server unreachable (3), other (5,
# e.g. a stream cut by the kill).
RETRY_CODES = (3, 5)

START = time.monotonic()


def log(msg):
    print(f"soak [{time.monotonic() - START:7.1f}s] {msg}", flush=True)


def parse_time(s):
    """RFC 3339 UTC timestamp as protobuf JSON writes it -> epoch seconds."""
    if not s:
        return None
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$", s)
    if not m:
        return None
    base = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    frac = float("0." + m.group(2)) if m.group(2) else 0.0
    return base.replace(tzinfo=datetime.timezone.utc).timestamp() + frac


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Failures:
    """Every failed check: (category, subject, detail)."""

    def __init__(self):
        self.items = []
        self.lock = threading.Lock()

    def add(self, category, subject, detail):
        with self.lock:
            self.items.append((category, subject, detail))
        log(f"FAIL {category}: {subject}: {detail}")

    def count(self, *categories):
        return sum(1 for c, _, _ in self.items if c in categories)


# ---------------------------------------------------------------- server


class Server:
    """One data folder, many `quantd serve` processes over time."""

    def __init__(self, quantd, work, data, workers, extra_flags):
        self.quantd = quantd
        self.work = work
        self.data = data
        self.workers = workers
        self.extra_flags = extra_flags
        self.proc = None
        self.address = None
        self.metrics_port = None
        self.lock = threading.Lock()
        self.instances = []  # dicts: launch, ready, failed_metric

    def start(self, timeout):
        n = len(self.instances)
        out_path = os.path.join(self.work, "logs", f"serve.{n}.out")
        err_path = os.path.join(self.work, "logs", f"serve.{n}.err")
        cmd = [self.quantd, "serve", "--port", "0",
               "--metrics-address", "127.0.0.1:0",
               "--data-dir", self.data, "--workers", str(self.workers),
               "--threads-per-job", "1"] + self.extra_flags
        launch = time.time()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(cmd, stdout=out, stderr=err,
                                    stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        address = None
        while time.monotonic() < deadline:
            with open(out_path, errors="replace") as f:
                m = re.search(r"^quantd serving on (\S+)", f.read(), re.M)
            if m:
                address = m.group(1)
                break
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        if address is None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            with open(err_path, errors="replace") as f:
                tail = f.read()[-2000:]
            return (f"`{' '.join(cmd)}` did not print 'serving on' within "
                    f"{timeout}s (exit {proc.returncode}); {err_path}:\n{tail}")
        ready = time.time()
        metrics_port = None
        for _ in range(50):
            with open(err_path, errors="replace") as f:
                m = re.search(r"/metrics on port (\d+)", f.read())
            if m:
                metrics_port = int(m.group(1))
                break
            time.sleep(0.1)
        with self.lock:
            self.proc = proc
            self.address = address
            self.metrics_port = metrics_port
        self.instances.append({"launch": launch, "ready": ready,
                               "failed_metric": None, "pid": proc.pid})
        return None

    def current_address(self):
        with self.lock:
            return self.address

    def scrape_failed(self):
        """quantd_jobs_finished_total{outcome="failed"} summed, or None."""
        if not self.metrics_port:
            return None
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.metrics_port}/metrics",
                    timeout=30) as r:
                text = r.read().decode()
        except OSError:
            return None
        total = 0.0
        for line in text.splitlines():
            if (line.startswith("quantd_jobs_finished_total{")
                    and 'outcome="failed"' in line):
                total += float(line.rsplit(" ", 1)[1])
        self.instances[-1]["failed_metric"] = total
        return total

    def kill9(self):
        with self.lock:
            proc, self.proc, self.address = self.proc, None, None
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop(self, timeout):
        with self.lock:
            proc, self.proc, self.address = self.proc, None, None
        if proc is None:
            return None
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return f"quantd did not exit within {timeout}s of SIGTERM"
        return None if rc == 0 else f"quantd exited {rc} after SIGTERM"

    def alive(self):
        with self.lock:
            return self.proc is not None and self.proc.poll() is None


# ---------------------------------------------------------------- client


class Client:
    def __init__(self, quantctl, server):
        self.quantctl = quantctl
        self.server = server

    def run(self, args, timeout=300, address=None):
        address = address or self.server.current_address()
        if address is None:
            return 3, "", "server down"
        try:
            p = subprocess.run([self.quantctl, "--server", address] + args,
                               capture_output=True, text=True,
                               timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return 3, "", f"quantctl {' '.join(args)}: no answer in {timeout}s"
        return p.returncode, p.stdout, p.stderr

    def retrying(self, args, deadline, timeout=300):
        """Runs until an exit code other than 3/5, for at most 5 minutes
        (a restart takes seconds) or until the deadline."""
        deadline = min(deadline, time.monotonic() + 300)
        while True:
            rc, out, err = self.run(args, timeout)
            if rc not in RETRY_CODES or time.monotonic() > deadline:
                return rc, out, err
            time.sleep(0.5)

    def json(self, args, deadline):
        rc, out, err = self.retrying(["--json"] + args, deadline)
        if rc != 0:
            return rc, None, err
        try:
            return rc, json.loads(out), err
        except ValueError as e:
            return rc, None, f"unparsable JSON ({e}): {out[:200]}"


# ---------------------------------------------------------------- the jobs


def job_kinds(testdata, specs):
    """name -> quantctl quantize arguments. Each takes seconds."""
    cnn = [f"{testdata}/fmnist_cnn/model.onnx",
           "--calib", f"{testdata}/fmnist/calib.npz",
           "--eval", f"{testdata}/fmnist/eval.npz"]
    mlp = [f"{testdata}/fmnist_mlp/model.onnx",
           "--eval", f"{testdata}/fmnist/eval.npz"]
    gpt = [f"{testdata}/tiny_gpt/model.onnx",
           "--calib", f"{testdata}/tiny_gpt/calib.npz",
           "--eval", f"{testdata}/tiny_gpt/eval.npz"]
    return {
        "ptq_cnn_minmax": cnn + ["--calibration", "minmax"],
        "ptq_cnn_percentile": cnn + ["--calibration", "percentile"],
        "ptq_cnn_int4_bias": cnn + ["--weights", "int4",
                                    "--bias-correction"],
        "ptq_mlp_dynamic": mlp + ["--mode", "dynamic"],
        "ptq_gpt_smoothquant": gpt + ["--smoothquant", "0.5",
                                      "--spec", specs["no_sensitivity"]],
        "qat_cnn": cnn + ["--spec", specs["qat_cnn"]],
        "qat_gpt_int4": gpt + ["--spec", specs["qat_gpt"]],
    }


# The long job that the kills are aimed at: PTQ (no checkpoint to resume
# from), sensitivity on, several seconds even on an idle machine.
def doomed_args(testdata):
    return [f"{testdata}/tiny_gpt/model.onnx",
            "--calib", f"{testdata}/tiny_gpt/calib.npz",
            "--eval", f"{testdata}/tiny_gpt/eval.npz",
            "--smoothquant", "0.5", "--gptq"]


def write_specs(work):
    specs = {
        "no_sensitivity": {"sensitivity": {"disabled": True}},
        # Checkpoints every 10 steps, so kills land between checkpoints
        # and mid-write, and re-runs resume.
        "qat_cnn": {"method": "METHOD_QAT",
                    "sensitivity": {"disabled": True},
                    "qat": {"maxSteps": 60, "batchSize": 32,
                            "checkpointEverySteps": 10}},
        "qat_gpt": {"method": "METHOD_QAT",
                    "weights": {"type": "QUANT_DATA_TYPE_INT4"},
                    "sensitivity": {"disabled": True},
                    "qat": {"maxSteps": 40, "batchSize": 16,
                            "learningRate": 0.0001,
                            "checkpointEverySteps": 10}},
    }
    paths = {}
    for name, spec in specs.items():
        paths[name] = os.path.join(work, f"{name}.json")
        with open(paths[name], "w") as f:
            json.dump(spec, f)
    return paths


def fresh_copy(src, dst, n):
    """The same arrays as `src` (an .npz) with other zip timestamps: other
    bytes, so another digest and a new upload during the kills."""
    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(dst, "w") as zo:
        for info in zi.infolist():
            copy = zipfile.ZipInfo(info.filename, date_time=(
                1981 + n // 336, 1 + n % 12, 1 + n // 12 % 28, 0, 0, 0))
            copy.compress_type = info.compress_type
            copy.external_attr = info.external_attr
            zo.writestr(copy, zi.read(info))


class Job:
    def __init__(self, request_id, kind, args, priority, doomed=False):
        self.request_id = request_id
        self.kind = kind
        self.args = args
        self.priority = priority
        self.doomed = doomed
        self.name = None          # jobs/ID once created
        self.cancel_at = None     # monotonic time of a planned cancel
        self.cancel_tried = False
        self.cancelled_ok = False

    @property
    def id(self):
        return self.name.split("/", 1)[1] if self.name else None

    def quantize_args(self):
        return (["quantize"] + self.args +
                ["--detach", "--request-id", self.request_id,
                 "--priority", str(self.priority)])


class Soak:
    def __init__(self, opts):
        self.o = opts
        self.rng = random.Random(opts.seed)
        self.client_rng = random.Random(opts.seed + 1)
        self.f = Failures()
        self.jobs = []            # every Job, in submission order
        self.jobs_lock = threading.Lock()
        self.client_done = threading.Event()
        self.kills = 0
        self.snapshot_checks = 0
        self.exceeded = 0
        self.server = None
        self.downloaded = 0
        self.final = {}

    # ---- submissions and cancels, on their own thread -------------------

    def submit(self, job, deadline):
        rc, out, err = self.client.retrying(job.quantize_args(), deadline)
        name = out.strip().splitlines()[-1] if out.strip() else ""
        if rc != 0 or not name.startswith("jobs/"):
            self.f.add("submit", job.request_id,
                       f"quantctl quantize exit {rc}: {err.strip()[-300:]}")
            return
        with self.jobs_lock:
            job.name = name
        log(f"submitted {job.request_id} ({job.kind}) -> {name}")

    def cancel(self, job, deadline):
        job.cancel_tried = True
        rc, _, err = self.client.retrying(["jobs", "cancel", job.name],
                                          deadline)
        # 2: the job had ended already (FAILED_PRECONDITION).
        job.cancelled_ok = rc == 0
        log(f"cancel {job.name}: exit {rc}")
        if rc not in (0, 2):
            self.f.add("cancel", job.name, f"exit {rc}: {err.strip()[-300:]}")

    def client_loop(self, plan, deadline):
        """plan: (offset seconds, Job), sorted; cancels as they fall due."""
        try:
            t0 = time.monotonic()
            pending = list(plan)
            while pending or any(j.cancel_at and not j.cancel_tried
                                 for j in self.jobs):
                now = time.monotonic()
                if pending and now - t0 >= pending[0][0]:
                    _, job = pending.pop(0)
                    with self.jobs_lock:
                        self.jobs.append(job)
                    self.submit(job, deadline)
                    if job.name and self.client_rng.random() < self.o.cancel_fraction:
                        job.cancel_at = time.monotonic() + \
                            self.client_rng.uniform(0, 8)
                    continue
                due = [j for j in self.jobs if j.name and j.cancel_at
                       and not j.cancel_tried and j.cancel_at <= now]
                if due:
                    self.cancel(due[0], deadline)
                    continue
                if now > deadline:
                    break
                time.sleep(0.1)
        finally:
            self.client_done.set()

    # ---- helpers ---------------------------------------------------------

    def job_states(self, deadline):
        rc, listing, err = self.client.json(["jobs", "list", "--all"],
                                            deadline)
        if listing is None:
            return None
        return {j["name"]: j for j in listing.get("jobs", [])}

    def wait_running(self, job, limit):
        end = time.monotonic() + limit
        while time.monotonic() < end:
            rc, out, _ = self.client.run(["--json", "jobs", "get", job.name],
                                         timeout=60)
            if rc == 0:
                state = json.loads(out).get("state")
                if state == "JOB_STATE_RUNNING":
                    return True
                if state in TERMINAL:
                    return False
            time.sleep(0.2)
        return False

    def sqlite_files(self, root):
        found = []
        for dirpath, _, files in os.walk(root):
            for name in files:
                path = os.path.join(dirpath, name)
                try:
                    with open(path, "rb") as fh:
                        if fh.read(16) == SQLITE_MAGIC:
                            found.append(path)
                except OSError:
                    pass
        return sorted(found)

    def integrity(self, path, label):
        try:
            con = sqlite3.connect(path)
            try:
                rows = con.execute("PRAGMA integrity_check").fetchall()
            finally:
                con.close()
        except sqlite3.Error as e:
            rows = [(f"error: {e}",)]
        if rows != [("ok",)]:
            self.f.add("corrupt", label,
                       f"PRAGMA integrity_check: {rows[:5]}")
            return False
        return True

    def snapshot_integrity(self, k):
        """The SQLite files as the restart will find them, checked on a
        copy (the database and its WAL) so the real files stay untouched."""
        snap = os.path.join(self.work, f"snapshot.{k}")
        os.makedirs(snap)
        for path in self.sqlite_files(self.data):
            rel = os.path.relpath(path, self.data).replace(os.sep, "_")
            shutil.copy2(path, os.path.join(snap, rel))
            if os.path.exists(path + "-wal"):
                shutil.copy2(path + "-wal", os.path.join(snap, rel + "-wal"))
            self.integrity(os.path.join(snap, rel),
                           f"{os.path.relpath(path, self.data)} after kill {k}")
            self.snapshot_checks += 1
        shutil.rmtree(snap)

    # ---- the run ---------------------------------------------------------

    def plan_jobs(self):
        kinds = job_kinds(self.o.testdata, self.specs)
        names = sorted(kinds)
        # Doomed jobs: one per 7 kills (each takes 3 kills), at least one.
        n_doomed = max(1, self.o.kills // 7) if self.o.kills >= 3 else 0
        n_doomed = min(n_doomed, max(0, self.o.jobs - 1))
        regular = self.o.jobs - n_doomed
        # QAT and PTQ both present: the first two are one of each.
        picks = ["qat_cnn", "ptq_cnn_minmax"] + [
            self.rng.choice(names) for _ in range(max(0, regular - 2))]
        picks = picks[:regular]
        self.rng.shuffle(picks)
        # A third up front, the rest over the kill phase.
        span = self.o.kills * (self.o.max_delay + self.o.min_delay) / 2
        n0 = max(1, regular // 3)
        offsets = [0.0] * n0 + sorted(
            self.rng.uniform(0, span) for _ in range(regular - n0))
        plan = []
        for i, (kind, offset) in enumerate(zip(picks, offsets)):
            args = list(kinds[kind])
            if self.rng.random() < self.o.fresh_data_fraction:
                at = args.index("--eval") + 1
                copy = os.path.join(self.work, "uploads", f"eval.{i}.npz")
                fresh_copy(args[at], copy, i)
                args[at] = copy
                kind += "+fresh_eval"
            plan.append((offset, Job(f"soak-{self.o.seed}-{i:03d}", kind,
                                     args, self.rng.randint(-10, 10))))
        doomed_kills = [7 * d for d in range(n_doomed)]
        doomed = [Job(f"soak-{self.o.seed}-doomed-{d}", "doomed_gpt_gptq",
                      doomed_args(self.o.testdata), 100, doomed=True)
                  for d in range(n_doomed)]
        return plan, dict(zip(doomed_kills, doomed))

    def run(self):
        o = self.o
        self.work = o.work
        self.data = os.path.join(self.work, "data")
        os.makedirs(os.path.join(self.work, "logs"))
        os.makedirs(os.path.join(self.work, "uploads"))
        self.specs = write_specs(self.work)
        extra, janitor = janitor_flags(o.quantd, o.retention_seconds)
        if o.serve_flag:
            extra = [f for flag in o.serve_flag for f in flag.split()]
            janitor = " ".join(extra)
        self.janitor = janitor
        log(f"seed {o.seed}; work folder {self.work}; "
            f"janitor: {janitor or 'none (no retention flag in serve --help)'}")
        self.server = Server(o.quantd, self.work, self.data, o.workers, extra)
        self.client = Client(o.quantctl, self.server)
        err = self.server.start(o.start_timeout)
        if err:
            self.f.add("restart", "first start", err)
            return
        plan, doomed_at = self.plan_jobs()
        deadline = time.monotonic() + o.timeout
        client = threading.Thread(target=self.client_loop,
                                  args=(plan, deadline), daemon=True)
        client.start()

        for k in range(o.kills):
            job = doomed_at.get(k)
            if job is not None:
                with self.jobs_lock:
                    self.jobs.append(job)
                self.submit(job, deadline)
            # Aim at a doomed job still alive: kill while it runs.
            target = next((j for j in self.jobs if j.doomed and j.name
                           and not j.cancel_tried
                           and self.doomed_alive(j)), None)
            if target is not None and self.wait_running(target, 300):
                delay = self.rng.uniform(o.min_delay, min(3.0, o.max_delay))
            else:
                delay = self.rng.uniform(o.min_delay, o.max_delay)
            time.sleep(delay)
            failed_metric = self.server.scrape_failed()
            pid = self.server.instances[-1]["pid"]
            self.server.kill9()
            self.kills += 1
            log(f"kill {k + 1}/{o.kills}: SIGKILL pid {pid} {delay:.2f}s after "
                f"{'its doomed job ran' if target else 'the start'}"
                f" (failed counter was {failed_metric})")
            self.snapshot_integrity(k + 1)
            time.sleep(self.rng.uniform(0, 1.5))  # clients meet a dead server
            err = self.server.start(o.start_timeout)
            if err:
                self.f.add("restart", f"restart after kill {k + 1}", err)
                self.client_done.wait(5)
                return

        log("kills done; waiting for the submissions and every job to end")
        client.join(max(0, deadline - time.monotonic()))
        states = None
        names = []
        while time.monotonic() < deadline:
            states = self.job_states(deadline)
            with self.jobs_lock:
                names = [j.name for j in self.jobs if j.name]
            if states is not None and all(
                    n in states and states[n]["state"] in TERMINAL
                    for n in names):
                break
            time.sleep(2)
        else:
            for n in names:
                s = states.get(n, {}).get("state") if states else None
                if s not in TERMINAL:
                    self.f.add("stuck", n, f"still {s} after --timeout")
        self.server.scrape_failed()
        self.check_retries(deadline)
        self.check_jobs(states or {}, deadline)
        self.check_metrics()
        if self.janitor:
            self.wait_janitor(states or {}, deadline)
        err = self.server.stop(o.grace_seconds + 120)
        if err:
            self.f.add("stop", "the last server", err)
        self.check_store()

    def doomed_alive(self, job):
        rc, out, _ = self.client.run(["--json", "jobs", "get", job.name],
                                     timeout=60)
        return rc == 0 and json.loads(out).get("state") not in TERMINAL

    # ---- checks through the API -----------------------------------------

    def check_retries(self, deadline):
        """Every request_id again: the same job, never a second one."""
        for job in self.jobs:
            if not job.name:
                continue
            rc, out, err = self.client.retrying(job.quantize_args(), deadline)
            again = out.strip().splitlines()[-1] if out.strip() else ""
            if rc != 0:
                self.f.add("retry", job.request_id,
                           f"sending it again: exit {rc}: "
                           f"{err.strip()[-200:]}")
            elif again != job.name:
                self.f.add("duplicated", job.request_id,
                           f"sent again it returned {again}, first "
                           f"{job.name}")

    def check_jobs(self, states, deadline):
        dl = os.path.join(self.work, "downloads")
        os.makedirs(dl, exist_ok=True)
        self.final = {}
        for job in self.jobs:
            if not job.name:
                continue
            rc, j, err = self.client.json(["jobs", "get", job.name], deadline)
            if j is None:
                self.f.add("lost", job.name,
                           f"jobs get exit {rc}: {err.strip()[-200:]}")
                continue
            self.final[job.name] = j
            state = j.get("state")
            if state not in TERMINAL:
                continue  # reported as stuck
            if state == "JOB_STATE_CANCELLED" and not job.cancel_tried:
                self.f.add("states", job.name, "CANCELLED, never cancelled")
            error = j.get("error", "")
            if state == "JOB_STATE_FAILED":
                if "server stopped" in error:
                    self.exceeded += 1
                elif not error:
                    pass  # reported below
                else:
                    self.f.add("unexpected-failure", job.name,
                               f"({job.kind}) {error}")
            self.check_events(job, j)
            if state == "JOB_STATE_SUCCEEDED":
                self.check_artifacts(job, j, dl, deadline)
        names = {j.name for j in self.jobs if j.name}
        listed = set(states)
        for extra in sorted(listed - names):
            self.f.add("duplicated", extra, "a job nobody submitted")

    def check_events(self, job, j):
        state = j["state"]
        rc, out, err = self.client.run(["--json", "jobs", "watch", job.name],
                                       timeout=300)
        events = []
        for line in out.splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
        expect_rc = 0 if state == "JOB_STATE_SUCCEEDED" else 1
        if rc != expect_rc or not events:
            self.f.add("events", job.name,
                       f"jobs watch exit {rc} (want {expect_rc}), "
                       f"{len(events)} events: {err.strip()[-200:]}")
            return
        seqs = [int(e.get("sequence", 0)) for e in events]
        if seqs != list(range(1, len(seqs) + 1)):
            self.f.add("events", job.name, f"sequences not 1..n: {seqs[:40]}")
        changes = [e.get("stateChange") for e in events if "stateChange" in e]
        messages = [e["message"] for e in events if e.get("message")]
        last = events[-1].get("stateChange")
        short = state.replace("JOB_STATE_", "")
        if state == "JOB_STATE_FAILED":
            problems = []
            if not j.get("error"):
                problems.append("no error in jobs get")
            if not messages:
                problems.append("no message event with the reason")
            if "JOB_STATE_FAILED" not in changes:
                problems.append("no FAILED event")
            if problems:
                self.f.add("reasons", job.name,
                           f"FAILED (attempts {j.get('attempts')}, error "
                           f"'{j.get('error', '')}'): {'; '.join(problems)}; "
                           f"last event: {json.dumps(events[-1])}")
        elif last != state:
            self.f.add("events", job.name,
                       f"{short}, but the last event is "
                       f"{json.dumps(events[-1])}")
        # Each run after the first follows a QUEUED event (the re-queue).
        runs = 0
        queued_since_run = True
        missing = 0
        for c in changes:
            if c == "JOB_STATE_QUEUED":
                queued_since_run = True
            elif c == "JOB_STATE_RUNNING":
                runs += 1
                if not queued_since_run:
                    missing += 1
                queued_since_run = False
        attempts = int(j.get("attempts", 0))
        if missing or runs != attempts:
            self.f.add("requeue-events", job.name,
                       f"attempts {attempts}, RUNNING events {runs}, "
                       f"re-runs without a QUEUED event before them "
                       f"{missing}; state changes "
                       f"{[c.replace('JOB_STATE_', '') for c in changes]}")

    def check_artifacts(self, job, j, dl, deadline):
        arts = {a.get("kind"): a for a in j.get("artifacts", [])}
        for kind in ("model", "report"):
            art = arts.get(f"ARTIFACT_KIND_{kind.upper()}")
            if art is None:
                self.f.add("corrupt", job.name, f"SUCCEEDED without a {kind}")
                continue
            path = os.path.join(dl, f"{job.id}.{kind}")
            rc, _, err = self.client.retrying(
                ["download", job.name, "--kind", kind, "--out", path],
                deadline)
            if rc != 0:
                self.f.add("corrupt", job.name,
                           f"download {kind}: exit {rc}: {err.strip()[-200:]}")
                continue
            got = sha256_file(path)
            size = os.path.getsize(path)
            if got != art.get("sha256") or size != int(art.get("size", -1)):
                self.f.add("corrupt", job.name,
                           f"{kind}: downloaded sha256 {got} ({size} bytes), "
                           f"recorded {art.get('sha256')} "
                           f"({art.get('size')} bytes)")
            self.downloaded += 1

    def check_metrics(self):
        """Each server counts, in quantd_jobs_finished_total{outcome=
        "failed"}, at least the jobs its start-up recovery failed (those
        that ended between its launch and its 'serving on')."""
        for n, inst in enumerate(self.server.instances):
            recovered = sorted(
                name for name, j in self.final.items()
                if j.get("state") == "JOB_STATE_FAILED"
                and inst["launch"] <= (parse_time(j.get("endTime")) or 0)
                <= inst["ready"])
            metric = inst["failed_metric"]
            if recovered and metric is not None and metric < len(recovered):
                self.f.add("metrics", f"server {n} (pid {inst['pid']})",
                           f"failed {len(recovered)} jobs at start-up "
                           f"({', '.join(recovered)}), but its "
                           f"quantd_jobs_finished_total{{outcome=\"failed\"}}"
                           f" was {metric:g} at its last scrape")

    # ---- files --------------------------------------------------------------

    def orphans(self, ended_ids, referenced, check_blob_contents):
        """(file, why) for every file of the data folder that should not
        be there; `referenced`: digests that a job or an upload uses."""
        found = []
        for dirpath, _, files in os.walk(self.data):
            for name in files:
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, self.data)
                parts = rel.split(os.sep)
                if ".tmp" in name or name.startswith((".quantd-tmp-", "put-")):
                    found.append((rel, "temporary file"))
                elif parts[0] == "uploads":
                    found.append((rel, "upload file after every upload "
                                  "finished"))
                elif parts[0] == "checkpoints":
                    jid = name.split(".")[0]
                    if jid in ended_ids or jid not in self.known_ids():
                        found.append((rel, "checkpoint of an ended job"))
                elif parts[0] == "blobs":
                    if name not in referenced:
                        found.append((rel, "blob that no job and no upload "
                                      "refers to"))
                    if check_blob_contents and sha256_file(path) != name:
                        self.f.add("corrupt", rel,
                                   "blob contents do not hash to its name")
        return found

    def known_ids(self):
        return {j.id for j in self.jobs if j.name}

    def api_references(self):
        refs = set(self.fixture_digests())
        for j in self.final.values():
            refs.update(re.findall(r"[0-9a-f]{64}", json.dumps(j.get("spec"))))
            for a in j.get("artifacts", []):
                refs.add(a.get("sha256"))
        return refs

    def fixture_digests(self):
        if not hasattr(self, "_fixtures"):
            files = set()
            for args in [j.args for j in self.jobs]:
                files.update(a for a in args
                             if a.endswith((".onnx", ".npz")))
            self._fixtures = {sha256_file(p) for p in files}
        return self._fixtures

    def wait_janitor(self, states, deadline):
        ended = {n.split("/", 1)[1] for n, j in self.final.items()
                 if j.get("state") in TERMINAL}
        limit = time.monotonic() + self.o.janitor_wait
        refs = self.api_references()
        while time.monotonic() < min(limit, deadline):
            left = self.orphans(ended, refs, False)
            if not left:
                log("janitor: no orphan files left")
                return
            time.sleep(2)
        log(f"janitor: {len(left)} orphan files after {self.o.janitor_wait}s")

    # ---- the job store, with the server stopped --------------------------

    def check_store(self):
        for path in self.sqlite_files(self.data):
            self.integrity(path, os.path.relpath(path, self.data))
        jobs_db = os.path.join(self.data, "jobs.db")
        blobs_db = os.path.join(self.data, "blobs.db")
        rows = []
        uploads = set()
        try:
            con = sqlite3.connect(f"file:{jobs_db}?mode=ro", uri=True)
            rows = con.execute(
                "SELECT id, tenant, request_id, state, spec, model_sha256, "
                "report_sha256 FROM jobs").fetchall()
            dups = con.execute(
                "SELECT tenant, request_id, COUNT(*) FROM jobs WHERE "
                "request_id != '' GROUP BY tenant, request_id "
                "HAVING COUNT(*) > 1").fetchall()
            con.close()
            con = sqlite3.connect(f"file:{blobs_db}?mode=ro", uri=True)
            uploads = {r[0] for r in con.execute("SELECT sha256 FROM blobs")}
            con.close()
        except sqlite3.Error as e:
            self.f.add("corrupt", "jobs.db/blobs.db", f"cannot read: {e}")
            return
        for tenant, rid, n in dups:
            self.f.add("duplicated", rid, f"{n} jobs of tenant {tenant}")
        by_id = {r[0]: r for r in rows}
        for job in self.jobs:
            if job.name and job.id not in by_id:
                self.f.add("lost", job.name, "not in the job store")
        refs = set(uploads)
        for jid, _, _, _, spec, model, report in rows:
            refs.update(d.decode() for d in HEX64.findall(spec))
            refs.update(d for d in (model, report) if d)
            for d in (model, report):
                if d and not os.path.exists(self.blob_path(d)):
                    self.f.add("corrupt", f"jobs/{jid}",
                               f"artifact blob {d} is missing")
        ended = {n.split("/", 1)[1] for n, j in self.final.items()
                 if j.get("state") in TERMINAL}
        for rel, why in self.orphans(ended, refs, True):
            self.f.add("orphans", rel, why)

    def blob_path(self, digest):
        return os.path.join(self.data, "blobs", "sha256", digest[:2], digest)

    # ---- the summary -----------------------------------------------------

    def summary(self):
        states = [j.get("state") for j in getattr(self, "final", {}).values()]
        f = self.f
        line = (f"jobs {len(self.jobs)}, "
                f"kills {self.kills}, "
                f"succeeded {states.count('JOB_STATE_SUCCEEDED')}, "
                f"failed {states.count('JOB_STATE_FAILED')}, "
                f"cancelled {states.count('JOB_STATE_CANCELLED')}, "
                f"lost {f.count('lost')}, "
                f"duplicated {f.count('duplicated')}, "
                f"corrupt {f.count('corrupt')}, "
                f"orphans {f.count('orphans')}")
        other = {}
        for c, _, _ in f.items:
            if c not in ("lost", "duplicated", "corrupt", "orphans"):
                other[c] = other.get(c, 0) + 1
        return line, other


def janitor_flags(quantd, retention_seconds):
    """Serve flags for a short janitor retention, if `serve --help` has a
    retention flag; ([], None) otherwise."""
    try:
        text = subprocess.run([quantd, "serve", "--help"],
                              capture_output=True, text=True,
                              timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return [], None
    flags = []
    described = None
    for m in re.finditer(r"^\s*(--[a-z0-9-]*retention[a-z0-9-]*)[ =]?(\S*)",
                         text, re.M):
        flag, default = m.group(1), m.group(2)
        # A duration ("24h", "1d") or a number of seconds.
        if re.search(r"[a-z]$", default) or "DURATION" in default.upper():
            value = f"{retention_seconds}s"
        else:
            value = str(retention_seconds)
        flags += [flag, value]
        described = " ".join(flags)
    for m in re.finditer(r"^\s*(--janitor[a-z0-9-]*(?:interval|period)"
                         r"[a-z0-9-]*)[ =]?(\S*)", text, re.M):
        flag, default = m.group(1), m.group(2)
        value = f"{retention_seconds}s" if re.search(r"[a-z]$", default) \
            else str(retention_seconds)
        flags += [flag, value]
        described = " ".join(flags)
    return flags, described


def main():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quantd", required=True)
    p.add_argument("--quantctl", required=True)
    p.add_argument("--testdata", required=True,
                   help="the fixtures folder (testdata/ of the source tree)")
    p.add_argument("--jobs", type=int, default=24)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--seed", type=int, default=None,
                   help="default: a random one (printed)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--min-delay", type=float, default=0.5,
                   help="seconds from a start to its kill, at least")
    p.add_argument("--max-delay", type=float, default=8.0)
    p.add_argument("--cancel-fraction", type=float, default=0.125)
    p.add_argument("--fresh-data-fraction", type=float, default=0.33,
                   help="jobs whose evaluation set is a new upload")
    p.add_argument("--retention-seconds", type=int, default=2,
                   help="janitor retention, when quantd serve has one")
    p.add_argument("--serve-flag", action="append", default=[],
                   help="flags for quantd serve instead of the retention "
                   "flags found in its --help (repeatable), e.g. "
                   "'--upload-retention 2s'")
    p.add_argument("--janitor-wait", type=float, default=120,
                   help="seconds to wait for the janitor to collect")
    p.add_argument("--grace-seconds", type=int, default=30)
    p.add_argument("--start-timeout", type=float, default=120,
                   help="seconds a start may take to print 'serving on'")
    p.add_argument("--timeout", type=float, default=1800,
                   help="seconds for the whole soak before it gives up")
    p.add_argument("--work-dir", help="default: a new temporary folder")
    p.add_argument("--keep", action="store_true",
                   help="keep the work folder (kept anyway on failure)")
    o = p.parse_args()
    if o.seed is None:
        o.seed = random.SystemRandom().randrange(1, 1 << 31)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    for var in ("QUANTD_SERVER", "QUANTD_TOKEN"):
        os.environ.pop(var, None)
    for path in (o.quantd, o.quantctl):
        if not os.access(path, os.X_OK):
            print(f"soak: {path} is not an executable", file=sys.stderr)
            return 2
    if not os.path.isfile(os.path.join(o.testdata, "tiny_gpt", "model.onnx")):
        print(f"soak: no fixtures in {o.testdata}", file=sys.stderr)
        return 2
    o.testdata = os.path.abspath(o.testdata)
    o.work = o.work_dir or tempfile.mkdtemp(prefix="quantd-soak-")
    os.makedirs(o.work, exist_ok=True)
    # Private copies of the binaries: a rebuild during the soak must not
    # change the server between restarts.
    bins = tempfile.mkdtemp(prefix="quantd-soak-bin-")
    started = time.monotonic()
    soak = None
    try:
        for attr in ("quantd", "quantctl"):
            dst = os.path.join(bins, os.path.basename(getattr(o, attr)))
            shutil.copy2(getattr(o, attr), dst)
            setattr(o, attr, dst)
        print(f"crash soak: seed {o.seed}, jobs {o.jobs}, kills {o.kills}, "
              f"workers {o.workers}", flush=True)
        soak = Soak(o)
        try:
            soak.run()
        finally:
            if soak.server is not None and soak.server.alive():
                soak.server.kill9()
    finally:
        shutil.rmtree(bins, ignore_errors=True)
    line, other = soak.summary()
    wall = time.monotonic() - started
    print(f"\nseed {o.seed}; {soak.downloaded} artifacts downloaded and "
          f"hashed; {soak.snapshot_checks} integrity checks after kills; "
          f"{soak.exceeded} jobs exceeded --max-attempts; "
          f"wall {wall:.0f}s")
    if soak.f.items:
        print("failures:")
        for c, s, d in soak.f.items:
            print(f"  {c}: {s}: {d}")
        print(f"work folder kept: {o.work}")
        print(f"reproduce: {' '.join(sys.argv)} --seed {o.seed}"
              if "--seed" not in sys.argv else
              f"reproduce: {' '.join(sys.argv)}")
    elif not o.keep:
        shutil.rmtree(o.work, ignore_errors=True)
    extra = "".join(f", {k} {v}" for k, v in sorted(other.items()))
    print(line + extra)
    return 1 if soak.f.items else 0


if __name__ == "__main__":
    sys.exit(main())
