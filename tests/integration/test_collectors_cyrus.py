"""Collectors against real Cyrus instances, with real faults (SIGSTOP of master, maxchild).

Load here comes from a small bounded loader (threads doing connect/LOGIN/LOGOUT to 127.0.0.1 for
a few seconds), not from the Locust users.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from loadtest.collectors import CollectorConfig, CollectorSet, SeriesStore
from loadtest.collectors.probe import probe_once, read_users
from loadtest.core.credentials import Credential
from loadtest.core.imapwire import Wire, login_line
from loadtest.deploy.deployment import Deployment

pytestmark = pytest.mark.cyrus

FREEZE_S = 3.0


@contextmanager
def churn(deployment: Deployment, clients: int, *, hold: float = 0.0,
          max_seconds: float = 15.0) -> Iterator[list[int]]:
    """``clients`` threads doing connect, LOGIN, (hold), LOGOUT until the block ends; bounded
    by ``max_seconds`` whatever happens. Yields a one-item list counting finished sessions."""
    info = deployment.instances[0]
    users = read_users(info.users_file, limit=20)[2:] or read_users(info.users_file)
    stop = threading.Event()
    done = [0]
    deadline = time.monotonic() + max_seconds

    def client(creds: Credential) -> None:
        import socket

        while not stop.is_set() and time.monotonic() < deadline:
            if hold <= 0:
                if probe_once(info.host, info.port, creds, 5.0).failure is None:
                    done[0] += 1
                continue
            with socket.create_connection((info.host, info.port), timeout=10) as sock:
                wire = Wire(sock, deadline=time.monotonic() + 10)
                wire.line()
                wire.command(login_line(b"a ", creds.username, creds.password), b"a ")
                stop.wait(hold)
                wire.send(b"b LOGOUT\r\n")
                done[0] += 1

    threads = [threading.Thread(target=client, args=(users[i % len(users)],), daemon=True)
               for i in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield done
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=12)


@contextmanager
def collecting(deployment: Deployment, **settings: object) -> Iterator[SeriesStore]:
    store = SeriesStore()
    config = CollectorConfig().updated(settings, "test")
    collectors = CollectorSet.from_deployment(deployment, store, config)
    collectors.start()
    try:
        yield store
    finally:
        collectors.stop()


def freeze_master(deployment: Deployment, seconds: float) -> tuple[float, float]:
    """SIGSTOP master for ``seconds``, always SIGCONT; returns (stopped at, continued at)."""
    pid = int(Path(deployment.instances[0].pid_file).read_text().split()[0])
    os.kill(pid, signal.SIGSTOP)
    stopped = time.time()
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)
    return stopped, time.time()


def run_freeze(deployment: Deployment) -> tuple[SeriesStore, float, float]:
    with collecting(deployment, collectors="probe,master", greeting_threshold=1.0) as store, \
            churn(deployment, clients=3):
        time.sleep(2.0)
        stopped, continued = freeze_master(deployment, FREEZE_S)
        time.sleep(3.5)
    return store, stopped, continued


def only(events: list, what: str) -> object:
    assert len(events) == 1, f"expected one {what}, got {events}"
    return events[0]


def test_sigstop_shows_as_heartbeat_gap_while_held_session_stays_fast(
        cyrus_deployment: Deployment) -> None:
    store, stopped, continued = run_freeze(cyrus_deployment)
    gap = only(store.events("heartbeat_gap"), "heartbeat gap")
    print(f"reuse on: {continued - stopped:.3f} s SIGSTOP -> heartbeat gap {gap.duration:.2f} s "
          f"(between writes {gap.detail['between_writes_s']} s), stalls {store.events('stall')}")
    # Against the stop as it was (a busy test process may sleep past FREEZE_S): the estimate
    # is within half an update interval (HeartbeatTracker), plus 0.1 s for master's loop pass.
    stop_s = continued - stopped
    assert gap.duration == pytest.approx(stop_s, abs=0.5 + 0.1), f"stop {stop_s:.3f} s"
    assert stopped - 1.5 <= gap.t <= continued
    held = [s for s in store.samples("held_noop_latency_ms") if stopped <= s.t <= continued]
    assert len(held) >= 8
    assert all(s.value is not None and s.value < 200 for s in held), held
    # spawns and ready workers were read throughout
    assert store.samples("ready_workers") and store.samples("spawns_per_s")


def test_stop_no_reuse_stall(make_deployment: Callable[..., Deployment]) -> None:
    """With imapd -U 1 every connection needs master: a freeze is a new-connection stall too.
    (Short test names: make_deployment names the directory after the test, and unix socket
    paths are limited to 108 bytes.)"""
    deployment = make_deployment(imapd_reuse=1, users=6)
    store, stopped, continued = run_freeze(deployment)
    stall = only([e for e in store.events("stall") if e.duration > 1.5], "long stall")
    stop_s = continued - stopped
    print(f"-U 1: {stop_s:.3f} s SIGSTOP -> stall {stall.duration:.2f} s, {stall.detail}")
    assert stall.duration == pytest.approx(stop_s, abs=1.0)
    assert stall.detail["held_session"] == "answering"
    assert stall.detail["held_noop_max_ms"] < 200
    assert abs(stall.t - stopped) < 1.0
    gap = only(store.events("heartbeat_gap"), "heartbeat gap")
    # Against the stop as it was (a busy test process may sleep past FREEZE_S): the estimate
    # is within half an update interval (HeartbeatTracker), plus 0.1 s for master's loop pass.
    assert gap.duration == pytest.approx(stop_s, abs=0.5 + 0.1), f"stop {stop_s:.3f} s"


def test_maxchild_queueing(make_deployment: Callable[..., Deployment]) -> None:
    """A small maxchild under more concurrent clients: greeting latency rises, ready workers
    drop to zero."""
    deployment = make_deployment(maxchild=3, prefork=1, users=12)
    with collecting(deployment, collectors="probe,master", probe_timeout=4.0) as store:
        time.sleep(1.5)
        loaded_from = time.time()
        with churn(deployment, clients=6, hold=0.8):
            time.sleep(5.0)
        time.sleep(0.5)
    before = [s.value for s in store.samples("greeting_latency_ms") if s.t < loaded_from]
    during = [s.value for s in store.samples("greeting_latency_ms") if s.t >= loaded_from + 1]
    assert before and max(before) < 200
    assert during and max(during) > 500 and max(during) > 5 * max(before)
    ready = [s.value for s in store.samples("ready_workers")
             if s.labels.get("service") == "imap" and s.t >= loaded_from]
    assert 0 in ready
    assert max(s.value for s in store.samples("max_children")
               if s.labels.get("service") == "imap") == 3


def test_spawn_count(make_deployment: Callable[..., Deployment]) -> None:
    """A known number of new connections with process reuse disabled: that many spawns."""
    deployment = make_deployment(imapd_reuse=1, users=4)
    info = deployment.instances[0]
    creds = read_users(info.users_file)[0]
    connections = 15
    with collecting(deployment, collectors="master,processes", interval=0.5) as store:
        time.sleep(1.8)
        started = time.time()
        for _ in range(connections):
            assert probe_once(info.host, info.port, creds, 5.0).failure is None
        time.sleep(2.5)
    forks = [s for s in store.samples("master_forks_total") if s.labels["service"] == "imap"]
    before = [s.value for s in forks if s.t < started]
    assert forks[-1].value - before[-1] == connections
    spawn_samples = [s for s in store.samples("spawns_per_s") if s.labels["service"] == "imap"]
    # The derived rate shows the burst. Its samples do not integrate back to the count on our
    # clock: each is forks over master's own interval between two stats updates.
    assert sum(s.value for s in spawn_samples) > 0
    # The process sampler counts spawns from master's fork counter: every short-lived child,
    # not only those alive at a 0.5 s sample; exits by conservation (all of them ended).
    spawns = [s for s in store.samples("process_spawns") if s.labels.get("service") == "imap"]
    assert {s.labels["source"] for s in spawns} == {"master"}
    assert sum(s.value for s in spawns if s.t > started) == connections
    exits = [s for s in store.samples("process_exits") if s.labels.get("service") == "imap"]
    assert sum(s.value for s in exits if s.t > started) == connections


def test_canary_backlog_and_machine_series_come_at_the_configured_rate(
        cyrus_deployment: Deployment) -> None:
    interval = 0.5
    with collecting(cyrus_deployment, collectors="canary,backlog,machine,processes",
                    interval=interval) as store:
        time.sleep(3.1)
    name = cyrus_deployment.instances[0].name
    for signal_name, instance in (("canary_data_ms", name), ("canary_proc_ms", name),
                                  ("listen_queue", name), ("load1", None),
                                  ("procs_running", None), ("host_forks_per_s", None),
                                  ("cyrus_cpu_percent", name), ("imapd_processes", name),
                                  ("zombie_children", name), ("host_processes", None),
                                  ("context_switches_per_s", None),
                                  ("host_cpu_system_percent", None)):
        samples = store.samples(signal_name, instance=instance)
        values = [s.value for s in samples]
        assert len(samples) >= 5, (signal_name, len(samples))
        assert all(v is not None for v in values), (signal_name, samples)
        steps = {round(b.t - a.t, 6) for a, b in zip(samples, samples[1:], strict=False)}
        assert steps == {interval}, (signal_name, steps)
    assert all(s.value < 1000 for s in store.samples("canary_data_ms"))


def test_watch_prints_live_series(cyrus_deployment: Deployment) -> None:
    """`cyrus-loadtest watch --plain` for two seconds: the live series of the deployment."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "loadtest.cli", "watch", "--deployment",
         cyrus_deployment.root, "--duration", "2.2", "--plain"],
        capture_output=True, text=True, timeout=30, check=True).stdout
    from loadtest.collectors.watch import WATCHED

    name = cyrus_deployment.instances[0].name
    label = {w.signal: w.label for w in WATCHED}
    lines = [line.strip() for line in out.splitlines()]
    for signal_name in ("greeting_latency_ms", "held_noop_latency_ms", "ready_workers",
                        "heartbeat_age_s", "listen_queue", "canary_data_ms"):
        assert any(line.startswith(f"{label[signal_name]} [{name}]") for line in lines), \
            (signal_name, out)
    assert any(line.startswith(f"{label['load1']} [host]") for line in lines)


# Three readers in tight loops, in OS threads of their own process: under gevent's monkey
# patching (Locust, imported by other tests) threads here would be greenlets that never yield.
TIGHT_READERS = """
import json, sys, threading, time
from loadtest.collectors.samplers import read_master_report
stats_file, seconds = sys.argv[1], float(sys.argv[2])
reports, torn, stop = [], [0], threading.Event()
def reader(record):
    while not stop.is_set():
        stats = read_master_report(stats_file, attempts=1)
        if stats is None:
            torn[0] += 1
        elif record and stats.updated is not None and (not reports or stats.updated > reports[-1]):
            reports.append(stats.updated)
threads = [threading.Thread(target=reader, args=(i == 0,), daemon=True) for i in range(3)]
for thread in threads:
    thread.start()
time.sleep(seconds)
stop.set()
for thread in threads:
    thread.join(5)
print(json.dumps({"reports": reports, "torn": torn[0]}))
"""


def test_reading_the_stats_file_never_holds_off_masters_report(
        cyrus_deployment: Deployment) -> None:
    """Master skips its 1 s report while anyone holds a lock on the file. Three readers in
    tight loops (far busier than the collectors) must not make it skip: every report still
    comes about a second after the one before."""
    import json
    import subprocess
    import sys

    stats_file = cyrus_deployment.instances[0].stats_file
    done = subprocess.run([sys.executable, "-c", TIGHT_READERS, stats_file, "6"],
                          capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.splitlines()[-1])
    reports = result["reports"]
    between = [b - a for a, b in zip(reports, reports[1:], strict=False)]
    print(f"\n{len(reports)} reports in 6 s, longest between two {max(between, default=0):.3f} s, "
          f"torn reads {result['torn']}")
    assert len(reports) >= 5, reports
    assert max(between) < 1.6, between
