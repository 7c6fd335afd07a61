"""Every fault injector applied to a real Cyrus and undone: no stopped master, no leftover
symlink or copies, no orphan process, also when the run is interrupted with SIGINT."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from loadtest.core.series import SeriesStore
from loadtest.deploy import instance as inst
from loadtest.deploy.deployment import Deployment, InstanceInfo
from loadtest.deploy.procs import pid_alive
from loadtest.deploy.render import InstancePaths
from loadtest.errors import UsageError
from loadtest.faults import FaultRunner, parse_faults
from loadtest.faults.eintr import tracer_of

pytestmark = [pytest.mark.cyrus, pytest.mark.usefixtures("no_fault_left")]


def proc_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def run_faults(deployment: Deployment, specs: str, seconds: float) -> SeriesStore:
    store = SeriesStore()
    runner = FaultRunner(parse_faults(specs, "test"), deployment, store, run_time=seconds)
    runner.start()
    try:
        time.sleep(seconds)
    finally:
        runner.stop()
    return store


def greeting(info: InstanceInfo, timeout: float = 5.0) -> bytes:
    with socket.create_connection((info.host, info.port), timeout=timeout) as sock:
        return sock.recv(200)


class LoginLoop:
    """Bounded background churn: connect, LOGIN, LOGOUT as one user, counting failures."""

    def __init__(self, info: InstanceInfo) -> None:
        with open(info.users_file, newline="") as fh:
            self.user, self.password = list(csv.reader(fh))[1]
        self.info = info
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with socket.create_connection((self.info.host, self.info.port), timeout=5) as s:
                    f = s.makefile("rb")
                    assert f.readline().startswith(b"* OK"), "greeting"
                    s.sendall(f"a LOGIN {self.user} {self.password}\r\nb LOGOUT\r\n".encode())
                    line = f.readline()
                    while line.startswith(b"*"):
                        line = f.readline()
                    assert line.startswith(b"a OK"), line[:60]
                self.ok += 1
            except (OSError, AssertionError) as exc:
                self.failures.append(str(exc)[:80])

    def __enter__(self) -> LoginLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def test_stall_master_is_applied_and_undone(cyrus_deployment: Deployment) -> None:
    info = cyrus_deployment.instances[0]
    store = SeriesStore()
    runner = FaultRunner(parse_faults("stall-master:at=0.2,duration=1.5", "test"),
                         cyrus_deployment, store)
    runner.start()
    try:
        time.sleep(0.8)
        assert proc_state(info.master_pid) == "T"
        time.sleep(1.5)
        assert proc_state(info.master_pid) != "T"
    finally:
        runner.stop()
    (event,) = store.events("fault")
    assert event.detail["fault"] == "stall-master" and event.instance == info.name
    assert 1.3 < event.duration < 2.0
    assert greeting(info).startswith(b"* OK")


def test_stop_undoes_a_stall_still_in_progress(cyrus_deployment: Deployment) -> None:
    info = cyrus_deployment.instances[0]
    store = run_faults(cyrus_deployment, "stall-master:duration=60", 0.5)
    assert proc_state(info.master_pid) != "T"
    (event,) = store.events("fault")
    assert event.end is not None and event.duration < 5


def test_signal_storm_and_reload_leave_master_serving(cyrus_deployment: Deployment) -> None:
    info = cyrus_deployment.instances[0]
    with LoginLoop(info) as churn:
        store = run_faults(cyrus_deployment,
                           "signal-storm:duration=1.5,rate=2000;reload-master:at=1.8", 2.5)
    storm, reload = sorted(store.events("fault"), key=lambda e: e.t)
    assert storm.detail["fault"] == "signal-storm"
    # Evenly paced from its own process: 1.5 s at 2,000/s, counted by the storm itself. Sent
    # and missed together never exceed one per period of its run. How many it misses depends on
    # how busy the two cores are (322 of 3,000 in one clean-clone run; the bound was 300).
    detail = storm.detail
    assert 2500 <= detail["signals_delivered"] <= 3100, detail
    assert detail["signals_delivered"] + detail["signals_missed"] <= 2000 * detail["seconds"] + 1
    assert 1.4 < detail["seconds"] < 2.6
    assert not pid_alive(storm.detail["storm_pid"])
    assert reload.detail["fault"] == "reload-master"
    assert pid_alive(info.master_pid) and greeting(info).startswith(b"* OK")
    assert churn.ok > 0 and churn.failures == []


@pytest.mark.skipif(os.getuid() != 0, reason="strace attaches to master, which runs as cyrus")
def test_eintr_inject_window_counts_and_detaches(make_deployment) -> None:
    # Its own deployment: master is stopped for a moment while strace detaches.
    deployment = make_deployment(users=1)
    info = deployment.instances[0]
    store = run_faults(deployment, "eintr-inject:at=0.2,duration=1.5", 2.0)
    (event,) = store.events("fault")
    assert event.detail["fault"] == "eintr-inject" and 1.4 < event.duration < 2.5
    # Every wait of master failed with EINTR while strace was attached (Cyrus 3.6 retries).
    assert event.detail["injected_eintr"] > 100, event.detail
    assert event.detail["injected_eintr"] == event.detail["pselect6_calls"]
    assert event.detail["detached"] is True and tracer_of(info.master_pid) == 0
    # Detached from a parked master (SIGSTOP, detach, SIGCONT): master survives and serves.
    assert event.detail["detach"] == "stopped, detached, continued", event.detail
    assert event.detail["master_alive_after"] is True and pid_alive(info.master_pid)
    assert greeting(info).startswith(b"* OK")


def test_storm_and_strace_end_by_themselves_when_the_generator_is_killed(
        make_deployment, tmp_path: Path) -> None:
    """SIGKILL leaves no undo: the storm notices its parent is gone, strace's timeout expires."""
    cyrus_deployment = make_deployment(users=1)
    info = cyrus_deployment.instances[0]
    faults = "signal-storm:duration=60,rate=500" + (
        ";eintr-inject:duration=1" if os.getuid() == 0 else "")
    script = tmp_path / "storm.py"
    script.write_text(textwrap.dedent(f"""
        import json, time
        from loadtest.core.series import SeriesStore
        from loadtest.deploy.deployment import Deployment
        from loadtest.faults import FaultRunner, parse_faults
        store = SeriesStore()
        runner = FaultRunner(parse_faults({faults!r}, "test"),
                             Deployment.load({str(cyrus_deployment.path)!r}), store)
        runner.start()
        deadline = time.monotonic() + 10
        while len(store.events("fault")) < {faults.count(";") + 1} and time.monotonic() < deadline:
            time.sleep(0.05)
        print(json.dumps([e.detail for e in store.events("fault")]), flush=True)
        time.sleep(60)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        details = {d["fault"]: d for d in json.loads(proc.stdout.readline())}
    finally:
        proc.kill()
        proc.wait()
    assert all("error" not in d for d in details.values()), details
    storm_pid = details["signal-storm"]["storm_pid"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (pid_alive(storm_pid) or tracer_of(info.master_pid)):
        time.sleep(0.05)
    assert not pid_alive(storm_pid), "the storm outlived its generator"
    assert tracer_of(info.master_pid) == 0, "strace stayed attached after its generator died"
    if os.getuid() == 0:  # the eintr process detached safely on its parent's death
        assert pid_alive(info.master_pid) and greeting(info).startswith(b"* OK")


def test_binary_rotation_under_churn_loses_no_connection(make_deployment) -> None:
    deployment = make_deployment(users=2, imapd_binary="symlink", imapd_reuse=1, prefork=1)
    info = deployment.instances[0]
    link = InstancePaths.of(info).imapd_link
    with LoginLoop(info) as churn:
        store = run_faults(deployment, "rotate-binary:every=0.2,copies=4", 3.0)
    (event,) = store.events("fault")
    assert event.detail["rotations"] >= 10
    assert churn.ok >= 20 and churn.failures == []
    assert os.readlink(link) == str(inst.programs_of(info).path("imapd"))
    assert sorted(p.name for p in link.parent.iterdir()) == ["imapd"]


def test_rotation_refused_without_symlink(cyrus_deployment: Deployment) -> None:
    with pytest.raises(UsageError, match="does not run imapd through a symlink"):
        FaultRunner(parse_faults("rotate-binary:every=1", "flag --fault"), cyrus_deployment,
                    SeriesStore())


def test_sigint_during_a_stall_still_resumes_master(cyrus_deployment: Deployment,
                                                    tmp_path: Path) -> None:
    info = cyrus_deployment.instances[0]
    script = tmp_path / "stall.py"
    script.write_text(textwrap.dedent(f"""
        import time
        from loadtest.core.series import SeriesStore
        from loadtest.deploy.deployment import Deployment
        from loadtest.faults import FaultRunner, parse_faults
        runner = FaultRunner(parse_faults("stall-master:duration=60", "test"),
                             Deployment.load({str(cyrus_deployment.path)!r}), SeriesStore())
        runner.start()
        print("stalled", flush=True)
        time.sleep(60)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "stalled"
        time.sleep(0.3)
        assert proc_state(info.master_pid) == "T"
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            os.kill(info.master_pid, signal.SIGCONT)
    assert proc_state(info.master_pid) != "T"
    assert inst.wait_for_greeting(info, timeout=5).startswith("* OK")
