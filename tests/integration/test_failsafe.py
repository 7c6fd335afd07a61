"""Faults and broken artifacts end cleanly: a killed generator leaves no stopped master and its
run still has a verdict; a run folder that turns read-only mid-run still gives the verdict."""

from __future__ import annotations

import csv
import glob
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadtest.deploy.deployment import Deployment

pytestmark = [pytest.mark.cyrus, pytest.mark.usefixtures("no_fault_left")]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEFAULT_GATE = str(REPO / "fixtures" / "gates" / "default.toml")


def proc_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def start_locust(deployment: Deployment, tmp_path: Path, run_name: str, seconds: int,
                 *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADTEST_")}
    cmd = [str(BIN / "locust"), "-f", str(REPO / "locustfiles" / "churn.py"), "--headless",
           "-u", "3", "-r", "3", "-t", f"{seconds}s", "--stop-timeout", "2", "--only-summary",
           "--deployment", deployment.root, "--artifacts", str(tmp_path / "artifacts"),
           "--run-name", run_name, "--imap-wait", "0.05", *args]
    # Own session: the test ends the whole group by its id if anything goes wrong.
    return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(predicate, timeout: float, step: float = 0.02) -> float:
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, "condition not reached in time"
        time.sleep(step)
    return time.monotonic() - start


def test_killed_generator_during_a_stall_resumes_master_and_the_run_has_a_verdict(
        cyrus_deployment: Deployment, tmp_path: Path) -> None:
    master = cyrus_deployment.instances[0].master_pid
    locust = start_locust(cyrus_deployment, tmp_path, "killed", 25,
                          "--faults", "stall-master:at=3,duration=30")
    try:
        wait_for(lambda: proc_state(master) == "T", timeout=15)
        time.sleep(2)  # a few flushes while stalled
        os.kill(locust.pid, signal.SIGKILL)
        locust.wait(10)
        resumed_after = wait_for(lambda: proc_state(master) != "T", timeout=5)
    finally:
        if locust.poll() is None:
            os.killpg(locust.pid, signal.SIGKILL)
            locust.wait()
        os.kill(master, signal.SIGCONT)  # never leave the shared master stopped
        locust.communicate()
    assert resumed_after < 2.0
    folder = tmp_path / "artifacts" / "killed"
    assert (folder / "steps.json").is_file()  # flushed every second, not only at quit
    gate = subprocess.run([str(BIN / "cyrus-loadtest"), "gate", str(folder), "--rules",
                           DEFAULT_GATE], capture_output=True, text=True, timeout=60)
    assert gate.returncode in (0, 1, 3), gate.stderr
    assert "Traceback" not in gate.stderr


def test_run_folder_read_only_mid_run_still_gives_the_verdict(cyrus_deployment: Deployment,
                                                              tmp_path: Path) -> None:
    folder = tmp_path / "artifacts" / "frozen"
    locust = start_locust(cyrus_deployment, tmp_path, "frozen", 4, "--gate", DEFAULT_GATE)
    try:
        wait_for(lambda: (folder / "series.jsonl").exists(), timeout=15)
        subprocess.run(["chattr", "+i", str(folder)], check=True)
        stdout, stderr = locust.communicate(timeout=60)
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=False)
        if locust.poll() is None:
            os.killpg(locust.pid, signal.SIGKILL)
            locust.communicate()
    assert locust.returncode in (0, 1, 3), stderr[-2000:]
    assert "Traceback" not in stderr
    assert f"(exit {locust.returncode}, rules from {DEFAULT_GATE})" in stdout  # verdict table
    unwritten = [line for line in stderr.splitlines() if "could not write to" in line]
    assert len(unwritten) == 1 and "verdict.json" in unwritten[0] and "steps.json" in unwritten[0]
    assert not (folder / "verdict.json").exists()


def test_acceptance_interrupted_with_sigint_still_writes_the_report(tmp_path: Path) -> None:
    from loadtest.deploy.procs import pids_mentioning

    artifacts = tmp_path / "artifacts"
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadtest.cli", "acceptance", "--artifacts", str(artifacts),
         "--duration", "60", "--users", "2", "--held", "1", "--provision-users", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        start_new_session=True)
    try:
        wait_for(lambda: any(artifacts.glob("acceptance-*/series.jsonl")), timeout=90, step=0.2)
        time.sleep(3)  # some load measured
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    (folder,) = artifacts.glob("acceptance-*")
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    assert (folder / "report.html").is_file() and (folder / "verdict.json").is_file()
    assert pids_mentioning("/acceptance-") == []  # deployment stopped


def test_ctrl_c_during_deploy_up_leaves_no_folder_and_no_process(test_root: Path) -> None:
    from loadtest.deploy.procs import pids_mentioning

    root = test_root / "interrupted"
    proc = subprocess.Popen([str(BIN / "cyrus-loadtest"), "deploy", "up", "--dir", str(root),
                             "--users", "400"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        # Interrupt once the instance runs (its users file is written before master starts).
        wait_for(lambda: bool(pids_mentioning(str(root) + "/")), timeout=60, step=0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr
    assert not root.exists()
    assert pids_mentioning(str(root) + "/") == []


def test_cyrus_ioerror_is_counted_and_reported_by_deploy_down(make_deployment) -> None:
    from loadtest.collectors import CollectorConfig, CollectorSet
    from loadtest.core.series import SeriesStore
    from loadtest.deploy.manager import deploy_down

    deployment = make_deployment(users=2)
    info = deployment.instances[0]
    store = SeriesStore()
    collectors = CollectorSet.from_deployment(deployment, store,
                                              CollectorConfig(collectors=("errors",)))
    collectors.start()
    try:
        time.sleep(1.5)  # a first sample: errors logged before this are not the run's
        # An index imapd (the cyrus user) cannot open: SELECT answers NO, Cyrus logs IOERROR.
        for index in glob.glob(f"{info.data_dir}/**/cyrus.index", recursive=True):
            os.chmod(index, 0)
        with open(info.users_file, newline="") as fh:
            user, password = list(csv.reader(fh))[1]
        with socket.create_connection((info.host, info.port), timeout=5) as sock:
            reader = sock.makefile("rb")
            reader.readline()
            sock.sendall(f"a LOGIN {user} {password}\r\nb SELECT INBOX\r\n".encode())
            answers = [reader.readline() for _ in range(2)]
            while not answers[-1].startswith(b"b "):
                answers.append(reader.readline())
        assert answers[-1].startswith(b"b NO")
        wait_for(lambda: any(s.value for s in store.samples("cyrus_errors")), timeout=10, step=0.2)
    finally:
        collectors.stop()
    assert max(s.value for s in store.samples("cyrus_errors")) == 1
    stopped = deploy_down(deployment.root)
    assert "Cyrus errors in its log: 1 IOERROR; first: " in stopped[0]
