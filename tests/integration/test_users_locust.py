"""The locustfiles run headless by the real locust CLI against a real Cyrus deployment."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from loadtest.deploy import instance as inst
from loadtest.deploy.deployment import Deployment

pytestmark = pytest.mark.cyrus

REPO = Path(__file__).resolve().parents[2]
LOCUST = str(Path(sys.executable).with_name("locust"))


def run_locust(locustfile: str, deployment: Deployment | None, tmp_path: Path, *args: str,
               users: int = 3, seconds: int = 3, env: dict | None = None,
               during=None) -> tuple[int, dict[str, dict], list[dict], str]:
    """Run locust headless (bounded), return exit code, stats by name, failure rows, stderr."""
    cmd = [LOCUST, "-f", str(REPO / "locustfiles" / locustfile), "--headless",
           "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--stop-timeout", "2",
           "--json-file", str(tmp_path / "stats"), "--csv", str(tmp_path / "run"), "--only-summary",
           "--artifacts", str(tmp_path / "artifacts")]
    if deployment is not None:
        cmd += ["--deployment", deployment.root]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LOADTEST_")}
    full_env.update(env or {})
    # Own session: on timeout the whole group (with --processes children) is ended by its id.
    proc = subprocess.Popen([*cmd, *args], cwd=tmp_path, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    timer = threading.Timer(1.5, during) if during else None
    if timer:
        timer.start()
    try:
        _, stderr = proc.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    finally:
        if timer:
            timer.join()
    stats_path = tmp_path / "stats.json"
    stats = {}
    if stats_path.exists():
        stats = {(r["method"], r["name"]): r for r in json.loads(stats_path.read_text())}
    failures_path = tmp_path / "run_failures.csv"
    failures = list(csv.DictReader(failures_path.open())) if failures_path.exists() else []
    return proc.returncode, stats, failures, stderr


def counts(stats: dict) -> dict[str, int]:
    return {name: r["num_requests"] for (method, name), r in stats.items() if method == "IMAP"}


def test_churn(cyrus_deployment: Deployment, tmp_path: Path) -> None:
    rc, stats, failures, stderr = run_locust(
        "churn.py", cyrus_deployment, tmp_path, "--imap-churn-steps", "LIST,SELECT,STATUS,FETCH")
    assert rc == 0, stderr[-2000:]
    assert set(counts(stats)) == {"CONNECT", "LOGIN", "LIST", "SELECT", "STATUS", "FETCH", "LOGOUT"}
    assert all(n > 0 for n in counts(stats).values())
    assert not failures and all(r["num_failures"] == 0 for r in stats.values())
    assert "Traceback" not in stderr


def test_held_sessions(cyrus_deployment: Deployment, tmp_path: Path) -> None:
    rc, stats, failures, stderr = run_locust(
        "held_sessions.py", cyrus_deployment, tmp_path, "--imap-held-interval", "0.5",
        "--imap-held-steps", "NOOP,STATUS,IDLE", "--imap-idle-seconds", "0.2")
    assert rc == 0, stderr[-2000:]
    c = counts(stats)
    assert c["CONNECT"] == c["LOGIN"] == 3  # logged in once, held
    assert min(c["NOOP"], c["STATUS"], c["IDLE"]) >= 3
    assert c.get("LOGOUT") == 3  # at stop
    assert not failures


def test_reconnect_flood_with_login_and_open_loop_pacing(cyrus_deployment: Deployment, tmp_path: Path) -> None:
    rc, stats, failures, stderr = run_locust(
        "reconnect_flood.py", cyrus_deployment, tmp_path, "--imap-flood-login",
        "--imap-rate", "50", env={"LOADTEST_IMAP_DISCONNECT": "close"})
    assert rc == 0, stderr[-2000:]
    c = counts(stats)
    assert set(c) == {"CONNECT", "LOGIN"} and c["CONNECT"] > 100
    lag = stats[("PACING", "SCHEDULE_LAG")]
    # One lag per session started; the stop may interrupt up to one session per user.
    assert c["CONNECT"] <= lag["num_requests"] <= c["CONNECT"] + 3 and lag["num_failures"] == 0
    # 3 users x 50/s for ~3 s: the schedule, not the server, sets the pace.
    assert c["CONNECT"] <= 3 * 50 * 4
    assert not failures


def test_processes_2_aggregate_the_same_step_names(cyrus_deployment: Deployment, tmp_path: Path) -> None:
    rc, stats, failures, stderr = run_locust(
        "churn.py", cyrus_deployment, tmp_path, "--processes", "2", "--imap-lean", users=4)
    assert rc == 0, stderr[-2000:]
    c = counts(stats)
    assert set(c) == {"CONNECT", "LOGIN", "LIST", "LOGOUT"} and min(c.values()) > 0
    assert not failures


def test_wrong_password_is_auth_rejected(cyrus_deployment: Deployment, tmp_path: Path) -> None:
    rc, stats, failures, stderr = run_locust(
        "churn.py", cyrus_deployment, tmp_path, "--imap-user-pattern", "user{n}",
        "--imap-password", "definitely-wrong", seconds=2, users=2)
    assert rc == 1  # failures make Locust exit 1; the run itself ended normally
    assert {(r["Name"], r["Error"]) for r in failures} == {("LOGIN", "auth rejected")}
    assert counts(stats).get("LIST", 0) == 0
    assert "definitely-wrong" not in stderr + (tmp_path / "run_failures.csv").read_text()
    assert "Traceback" not in stderr


def test_server_stopped_during_the_run(make_deployment, tmp_path: Path) -> None:
    deployment = make_deployment(users=4)
    rc, stats, failures, stderr = run_locust(
        "churn.py", deployment, tmp_path, seconds=6, users=2,
        # A quick stop (1 s grace, then SIGKILL): a graceful one under load can outlast the run.
        during=lambda: [inst.stop(info, grace=1.0) for info in deployment.instances])
    assert rc == 1
    assert counts(stats)["LOGOUT"] > 0  # it worked before the stop
    classes = {r["Error"] for r in failures}
    assert "refused" in classes and classes <= {"refused", "connection lost"}
    assert "Traceback" not in stderr


def test_remote_target_refused_before_any_user_starts(tmp_path: Path) -> None:
    rc, stats, failures, stderr = run_locust(
        "reconnect_flood.py", None, tmp_path, env={"LOADTEST_IMAP_HOST": "192.0.2.1"})
    assert rc == 2
    lines = [line for line in stderr.splitlines() if "cyrus-loadtest" in line]
    assert lines == ["cyrus-loadtest: error: refusing non-loopback target '192.0.2.1' (from env "
                     "LOADTEST_IMAP_HOST): this tool floods servers; pass --allow-remote-target "
                     "(env LOADTEST_ALLOW_REMOTE_TARGET=1) if you mean it"]
    assert not stats
