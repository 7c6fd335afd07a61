"""Distributed runs against a real Cyrus: `--processes 2`, and a master with two worker processes
on loopback. What the master reports (Locust's stats, steps.json) must equal the sum of what each
worker did, collectors must run once (on the master), and no two workers may log in as the same
mailbox.

Each worker learns what it did from its own request events and batches of successes
(loadtest.batch): the test locustfile below counts them per step in every worker process and writes the counts, with the user names its users took, to a
file of its own when the worker quits.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadtest.deploy.deployment import Deployment
from loadtest.deploy.instance import free_port

pytestmark = [pytest.mark.cyrus, pytest.mark.slow]

LOCUST = str(Path(sys.executable).with_name("locust"))

LOCUSTFILE = '''
import collections, json, os
from locust import events
from locust.runners import WorkerRunner
from loadtest import users  # not `import ChurnUser`: Locust would run that class too
from loadtest.batch import batch_event

OUT = os.environ["DISTRIBUTED_TEST_OUT"]
_done = collections.Counter()
_names = set()


class CountingChurnUser(users.ChurnUser):
    def on_start(self):
        _names.add(self.credential.username)
        super().on_start()


@events.request.add_listener
def _count(request_type, name, exception=None, **_kw):
    _done[f"{request_type} {name} {'failed' if exception else 'ok'}"] += 1


def _count_batch(request_type, name, response_times, **_kw):
    # Successes arrive in batches (loadtest.batch); failures one request event each.
    _done[f"{request_type} {name} ok"] += len(response_times)


@events.init.add_listener
def _listen_to_batches(environment, **_kw):
    batch_event(environment).add_listener(_count_batch)


@events.quitting.add_listener
def _write(environment, **_kw):
    if isinstance(environment.runner, WorkerRunner):
        path = os.path.join(OUT, f"worker-{os.getpid()}.json")
        with open(path, "w") as fh:
            json.dump({"counts": dict(_done), "users": sorted(_names)}, fh)
'''


def _env(out: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADTEST_", "LOCUST_"))}
    env["DISTRIBUTED_TEST_OUT"] = str(out)
    return env


def _stop(procs: list[subprocess.Popen]) -> None:
    """Every process we started (each in a session of its own), by its process group id."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


def _common(deployment: Deployment, tmp_path: Path) -> list[str]:
    (tmp_path / "locustfile.py").write_text(LOCUSTFILE)
    return ["-f", str(tmp_path / "locustfile.py"), "--deployment", deployment.root]


def _master_args(tmp_path: Path, users: int, seconds: int) -> list[str]:
    return ["--headless", "-u", str(users), "-r", str(users), "-t", f"{seconds}s",
            "--stop-timeout", "2", "--json-file", str(tmp_path / "stats"), "--only-summary",
            "--artifacts", str(tmp_path / "artifacts"), "--run-name", "run", "--imap-lean"]


def _check_merged(tmp_path: Path, out: Path, workers: int, users: int) -> None:
    files = sorted(out.glob("worker-*.json"))
    assert len(files) == workers, [f.name for f in files]
    reports = [json.loads(f.read_text()) for f in files]
    summed: collections.Counter[str] = collections.Counter()
    for report in reports:
        summed.update(report["counts"])
        assert sum(v for k, v in report["counts"].items() if k.startswith("IMAP LOGOUT")) > 0, \
            "every worker ran sessions"

    # Locust's merged statistics on the master = the sum of the workers' own events.
    stats = json.loads((tmp_path / "stats.json").read_text())
    merged = collections.Counter()
    for row in stats:
        merged[f"{row['method']} {row['name']} ok"] += row["num_requests"] - row["num_failures"]
        merged[f"{row['method']} {row['name']} failed"] += row["num_failures"]
    assert +merged == +summed

    # steps.json (the gate's statistics, merged from the workers' reports): the IMAP steps.
    folders = [p for p in (tmp_path / "artifacts").iterdir() if p.is_dir()]
    assert [p.name for p in folders] == ["run"], "one run folder: the master's"
    steps = json.loads((folders[0] / "steps.json").read_text())
    gate_counts = collections.Counter()
    for entry in steps["entries"]:
        gate_counts[f"{entry['request_type']} {entry['step']} ok"] += entry["count"] - entry["failures"]
        gate_counts[f"{entry['request_type']} {entry['step']} failed"] += entry["failures"]
    assert +gate_counts == +collections.Counter(
        {k: v for k, v in summed.items() if k.startswith("IMAP ")})

    # Users files split: no mailbox taken by two workers, every user its own mailbox.
    names = [name for report in reports for name in report["users"]]
    assert len(names) == users and len(set(names)) == users, [r["users"] for r in reports]

    # One set of collector series, written by the master only: no sample twice.
    series = folders[0] / "series.jsonl"
    rows = [json.loads(line) for line in series.read_text().splitlines() if line.strip()]
    assert any(r["signal"] == "greeting_latency_ms" for r in rows), "collectors ran"
    keys = [(r["t"], r["signal"], r.get("instance"), json.dumps(r.get("labels"), sort_keys=True))
            for r in rows]
    dupes = [k for k, n in collections.Counter(keys).items() if n > 1]
    assert not dupes, dupes[:5]


def test_processes_2_merge_what_each_worker_did(cyrus_deployment: Deployment, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    users = 4
    cmd = [LOCUST, *_common(cyrus_deployment, tmp_path), *_master_args(tmp_path, users, 4),
           "--processes", "2"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(out), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=40)
    finally:
        _stop([proc])
    assert proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    _check_merged(tmp_path, out, workers=2, users=users)


def test_master_and_two_workers_merge_what_each_worker_did(cyrus_deployment: Deployment,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    users = 6
    port = free_port()
    common = _common(cyrus_deployment, tmp_path)
    procs: list[subprocess.Popen] = []
    try:
        master = subprocess.Popen(
            [LOCUST, *common, *_master_args(tmp_path, users, 4), "--master",
             "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
             "--expect-workers", "2", "--expect-workers-max-wait", "20"],
            cwd=tmp_path, env=_env(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True)
        procs.append(master)
        time.sleep(0.5)
        for _ in range(2):
            # Remote-style workers: only the locustfile, the deployment and the master's address;
            # the options (--imap-lean ...) come from the master.
            procs.append(subprocess.Popen(
                [LOCUST, *common, "--worker", "--master-host", "127.0.0.1",
                 "--master-port", str(port)],
                cwd=tmp_path, env=_env(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, start_new_session=True))
        _, stderr = master.communicate(timeout=45)
        worker_errors = []
        for worker in procs[1:]:
            _, err = worker.communicate(timeout=15)
            worker_errors.append(err)
    finally:
        _stop(procs)
    assert master.returncode == 0, stderr[-3000:]
    assert all("Traceback" not in err for err in [stderr, *worker_errors]), worker_errors
    _check_merged(tmp_path, out, workers=2, users=users)
    # The lean path came from the master's options: the step names alone would not tell (the
    # imapclient path has the same ones), but only the lean path reports the bytes it read
    # (imapclient's steps report 0), so every step that succeeded has a content length.
    stats = json.loads((tmp_path / "stats.json").read_text())
    imap_rows = {r["name"]: r for r in stats if r["method"] == "IMAP"}
    assert set(imap_rows) == {"CONNECT", "LOGIN", "LIST", "LOGOUT"}
    read = {name: r["total_content_length"] for name, r in imap_rows.items()
            if r["num_requests"] > r["num_failures"]}
    assert read and all(length > 0 for length in read.values()), read
