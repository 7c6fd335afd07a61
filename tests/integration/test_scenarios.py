"""Every incident scenario, in a short version, against real Cyrus through `cyrus-loadtest
scenario NAME`: each passes its gate on a healthy deployment; with a master stall or a master
kill injected it fails, and the verdict names the failing rule and the fault (which is also in
events.jsonl). Several runs share a deployment; the kill runs last on its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest.core.runfolder import RunArtifacts, load_run
from loadtest.core.series import Event
from loadtest.deploy.deployment import Deployment
from loadtest.deploy.instance import instance_pids
from loadtest.deploy.manager import deploy_down, deploy_up
from loadtest.deploy.procs import pids_mentioning
from loadtest.deploy.topology import load_topology
from loadtest.paths import PROJECT_ROOT, fixtures_dir, on_tmpfs

pytestmark = [pytest.mark.cyrus, pytest.mark.slow]
CLI = [sys.executable, "-m", "loadtest.cli", "scenario"]
# Short versions: ~20 s of load each, few users (2 shared cores).
SHORT = ["--duration", "20", "--users", "4", "--held", "3"]
FAST_HELD = ["--", "--imap-held-interval", "1"]  # NOOPs often enough to judge held sessions


class Result:
    def __init__(self, proc: subprocess.CompletedProcess[str], folder: Path | None) -> None:
        self.code = proc.returncode
        self.output = proc.stdout[-4000:] + proc.stderr[-4000:]
        self.folder = folder

    def verdict(self) -> dict:
        assert self.folder is not None, self.output
        return json.loads((self.folder / "verdict.json").read_text())

    def results(self) -> list[dict]:
        return self.verdict()["results"]

    def failing(self) -> list[dict]:
        return [r for r in self.results() if r["status"] == "fail"]

    def artifacts(self) -> RunArtifacts:
        assert self.folder is not None, self.output
        return load_run(self.folder)

    def events(self, kind: str) -> list[Event]:
        return self.artifacts().store.events(kind)

    def phases(self) -> list[str]:
        return [e.detail["name"] for e in sorted(self.events("phase"), key=lambda e: e.t)]


def scenario(name: str, artifacts: Path, *args: str, timeout: float = 150) -> Result:
    """Run `cyrus-loadtest scenario [ARGS] NAME [LOCUST_ARGS]`; locust's after "--" in ARGS."""
    cut = args.index("--") if "--" in args else len(args)
    ours, theirs = list(args[:cut]), list(args[cut + 1:])
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADTEST_")}
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.run([*CLI, "--artifacts", str(artifacts), *ours, name, *theirs],
                          capture_output=True, text=True, timeout=timeout, cwd=PROJECT_ROOT, env=env)
    folders = sorted(artifacts.glob(f"{name}-*"))
    return Result(proc, folders[-1] if folders else None)


def assert_passed(result: Result, phases: list[str]) -> None:
    assert result.code == 0, result.output
    verdict = result.verdict()
    assert verdict["status"] == "pass" and verdict["counts"]["fail"] == 0, result.failing()
    assert result.phases() == phases
    assert (result.folder / "report.html").is_file()


def assert_failed_by_fault(result: Result, rule_metric: str, fault: str,
                           instance: str | None = None) -> dict:
    """Exit 1; the rule failed and names the fault, which events.jsonl holds as applied."""
    assert result.code == 1, result.output
    failing = {(r["metric"], r.get("instance")): r for r in result.failing()}
    assert (rule_metric, instance) in failing, sorted(failing)
    rule = failing[(rule_metric, instance)]
    assert any(f.startswith(fault) for f in rule["faults"]), rule
    assert f"during injected fault {fault}" in rule["reason"]
    applied = [e for e in result.events("fault") if e.detail["fault"] == fault.split("@")[0]]
    assert applied and "error" not in applied[0].detail, result.events("fault")
    return rule


def stats_by_name(result: Result) -> dict[tuple[str, str], dict]:
    rows = json.loads((result.folder / "locust_stats.json").read_text())
    return {(r["method"], r["name"]): r for r in rows}


def teardown(deployment: Deployment) -> None:
    deploy_down(deployment.root)
    left = [pid for info in deployment.instances for pid in instance_pids(info)]
    assert not left, f"processes of {deployment.root} left after deploy down: {left}"


@pytest.fixture(scope="module")
def one_process_per_connection(test_root: Path) -> Iterator[Deployment]:
    deployment = deploy_up(test_root / "sc-soak", users=20, options={"imapd_reuse": 1})
    try:
        yield deployment
    finally:
        teardown(deployment)


@pytest.fixture(scope="module")
def two_stores(test_root: Path) -> Iterator[Deployment]:
    slots = load_topology(fixtures_dir() / "topologies" / "two-stores.toml")
    deployment = deploy_up(test_root / "sc-stores", slots=slots)
    try:
        yield deployment
    finally:
        teardown(deployment)


# -- Konstanz 2016: morning login rush, reconnect storm ------------------------------------------


def test_morning_rush_passes_with_open_loop_logins(cyrus_deployment: Deployment, tmp_path: Path) -> None:
    result = scenario("morning-rush", tmp_path, *SHORT, "--deployment", cyrus_deployment.root,
                      *FAST_HELD, "--imap-rate", "2")
    assert_passed(result, ["at-work", "rush-ramp", "peak"])
    stats = stats_by_name(result)
    assert stats[("PACING", "SCHEDULE_LAG")]["num_requests"] > 0  # paced open loop
    peak_rate = next(r for r in result.results()
                     if r["metric"] == "LOGIN.rate_per_s" and r["phase"] == "peak")["measured"]
    assert 4 <= peak_rate <= 8.5  # 4 users x 2 sessions/s offered, not more


def test_reconnect_storm_passes(cyrus_deployment: Deployment, tmp_path: Path) -> None:
    result = scenario("reconnect-storm", tmp_path, *SHORT, "--users", "2",
                      "--deployment", cyrus_deployment.root, *FAST_HELD)
    assert_passed(result, ["settle", "steady", "storm", "after-storm"])
    stats = stats_by_name(result)
    # Storm users log in and drop: more connections than logouts.
    assert stats[("IMAP", "CONNECT")]["num_requests"] > stats[("IMAP", "LOGOUT")]["num_requests"]


def test_reconnect_storm_fails_on_a_master_stall(cyrus_deployment: Deployment, tmp_path: Path) -> None:
    # Storm phase 7..16 s of 20; master stopped 4 s in the middle of it.
    result = scenario("reconnect-storm", tmp_path, *SHORT, "--users", "2",
                      "--deployment", cyrus_deployment.root,
                      "--fault", "stall-master:at=8,duration=4", *FAST_HELD)
    rule = assert_failed_by_fault(result, "heartbeat_gap.longest_s", "stall-master@slot1")
    assert 3.0 < rule["measured"] < 6.0
    (stall,) = result.events("fault")
    assert stall.end is not None and 3.5 < stall.end - stall.t < 5.0


# Konstanz 2016, the mechanism: the master loop that restarts on EINTR (the reverted build)
# against Cyrus 3.6's retry (the stock build), both built from the installed version's source.
KONSTANZ_SHORT = ["--duration", "50", "--users", "4", "--held", "200", "--provision-users", "200"]
KONSTANZ_PHASES = ["arrive", "steady", "storm", "interrupted", "recovery", "leave"]


@pytest.fixture(scope="module")
def cyrus_builds() -> dict[str, str]:
    """`cyrus-loadtest cyrus build --variant V` for both variants (cached after the first)."""
    builds = {}
    for variant in ("stock", "konstanz-2016"):
        proc = subprocess.run([sys.executable, "-m", "loadtest.cli", "cyrus", "build",
                               "--variant", variant], capture_output=True, text=True,
                              timeout=900, cwd=PROJECT_ROOT)
        assert proc.returncode == 0, proc.stderr[-3000:]
        builds[variant] = proc.stdout.strip().splitlines()[-1]
    return builds


@pytest.mark.skipif(os.getuid() != 0, reason="eintr-inject attaches strace to master (as cyrus)")
def test_konstanz_2016_fails_the_reverted_loop_for_its_reason(cyrus_builds: dict[str, str],
                                                               tmp_path: Path) -> None:
    result = scenario("konstanz-2016", tmp_path, *KONSTANZ_SHORT,
                      "--cyrus-bin-dir", cyrus_builds["konstanz-2016"], timeout=240)
    # The loop never completed while every wait failed with EINTR: no heartbeat for the window.
    rule = assert_failed_by_fault(result, "heartbeat_gap.longest_s", "eintr-inject@slot1")
    assert rule["measured"] > 5.0
    assert result.phases() == KONSTANZ_PHASES
    (fault,) = result.events("fault")
    assert fault.detail["injected_eintr"] > 1000 and fault.detail["master_alive_after"] is True
    assert fault.detail["detach"] == "stopped, detached, continued"
    interrupted = next(e for e in result.events("phase") if e.detail["name"] == "interrupted")
    gap = max(result.events("heartbeat_gap"), key=lambda e: e.end - e.t)
    assert interrupted.t - 1 < gap.t < gap.end < interrupted.end + 3  # the gap is the window


@pytest.mark.skipif(os.getuid() != 0, reason="eintr-inject attaches strace to master (as cyrus)")
def test_konstanz_2016_passes_the_stock_loop(cyrus_builds: dict[str, str], tmp_path: Path) -> None:
    result = scenario("konstanz-2016", tmp_path, *KONSTANZ_SHORT,
                      "--cyrus-bin-dir", cyrus_builds["stock"], timeout=240)
    assert_passed(result, KONSTANZ_PHASES)
    (fault,) = result.events("fault")
    assert fault.detail["injected_eintr"] > 1000 and fault.detail["master_alive_after"] is True
    assert result.events("heartbeat_gap") == []
    # New connections stalled inside the window (nothing can be accepted while every select
    # fails) and were served again within the gate's bound once it ended.
    assert any(e.t < fault.end and e.end > fault.t for e in result.events("stall"))


# -- UC Davis 2007: process churn soak, binary rotation -------------------------------------


def test_process_churn_soak_passes_then_fails_when_master_is_killed(
        one_process_per_connection: Deployment, tmp_path: Path) -> None:
    root = one_process_per_connection.root
    healthy = scenario("process-churn", tmp_path / "healthy", *SHORT, "--held", "12",
                       "--deployment", root, "--", "--imap-held-interval", "2")
    assert_passed(healthy, ["fill", "soak", "bulk", "exit"])
    by_metric = {(r["metric"], r["phase"]): r for r in healthy.results()}
    # Each held and wave session is an imapd (9 held + 3 in the waves).
    assert by_metric[("imapd_processes.max", None)]["measured"] >= 12
    assert by_metric[("spawns_per_s.p50", "soak")]["measured"] >= 1
    assert by_metric[("LIST_vs_LOGIN.p99_ratio", "bulk")]["samples"] >= 3
    # The kill goes last: the fault restarts master when the run ends, with a new pid.
    killed = scenario("process-churn", tmp_path / "killed", *SHORT, "--held", "12",
                      "--deployment", root, "--fault", "kill-master:at=9",
                      "--", "--imap-held-interval", "2")
    assert_failed_by_fault(killed, "ALL.failures", "kill-master@slot1")
    assert_failed_by_fault(killed, "collector_gap.longest_s", "kill-master@slot1")


def test_binary_rotation_with_its_own_deployment_loses_no_connection(tmp_path: Path) -> None:
    result = scenario("binary-rotation", tmp_path, "--duration", "20", "--users", "3",
                      "--held", "16", "--provision-users", "30", *FAST_HELD)
    assert_passed(result, ["churn", "rotation"])
    (rotation,) = [e for e in result.events("fault") if e.detail["fault"] == "rotate-binary"]
    (phase,) = [e for e in result.events("phase") if e.detail["name"] == "rotation"]
    assert rotation.t >= phase.t  # the rotation starts once churn runs, with its phase
    by_metric = {r["metric"]: r for r in result.results()}
    assert by_metric["rotation.count"]["measured"] >= 40
    assert by_metric["imapd_binaries.distinct"]["measured"] >= 10
    assert rotation.detail["rotations"] >= by_metric["rotation.count"]["measured"]
    assert "test deployment stopped" in result.output
    assert pids_mentioning(f"/binary-rotation-{os.getpid()}") == []


def test_binary_rotation_refuses_a_deployment_without_symlink(cyrus_deployment: Deployment,
                                                              tmp_path: Path) -> None:
    result = scenario("binary-rotation", tmp_path, "--deployment", cyrus_deployment.root,
                      timeout=60)
    assert result.code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "--rotating-binary" in lines[0], result.output
    assert result.folder is None


# -- 2010: lock-file churn on a disk filesystem ---------------------------------------------------


def test_lockfile_churn_runs_on_disk_and_bounds_the_canary(tmp_path: Path) -> None:
    result = scenario("lockfile-churn", tmp_path, "--duration", "20", "--users", "4",
                      "--held", "2", "--provision-users", "10", *FAST_HELD)
    assert_passed(result, ["baseline", "churn"])
    run = result.artifacts().run
    root = str(Path(run["deployment"]).parent)
    assert root.startswith("/var/tmp/") and not on_tmpfs(root)
    canary = {r["metric"]: r for r in result.results() if r["metric"].startswith("canary")}
    assert canary["canary_data_ms.p99_vs_baseline"]["samples"] >= 3
    # Cyrus created a lock file for (nearly) every session: inotify saw them in run/lock.
    store = result.artifacts().store
    created = sum(s.value for s in store.samples("inode_creates_per_s")
                  if s.labels.get("dir") == "run/lock")
    logins = result.artifacts().steps.select("LOGIN", "churn").count
    assert logins and created >= logins / 2, (created, logins)


# -- FastMail 2007: stores and slots, a verdict per slot ----------------------------------------


def test_stores_and_slots_judges_each_slot_and_replicates(two_stores: Deployment,
                                                          tmp_path: Path) -> None:
    healthy = scenario("stores-and-slots", tmp_path / "healthy", "--duration", "16",
                       "--users", "4", "--held", "4", "--deployment", two_stores.root, *FAST_HELD)
    assert_passed(healthy, ["held", "all-slots"])
    artifacts = healthy.artifacts()
    assert {instance for _type, step, _phase, instance in artifacts.steps.stats
            if step == "LOGIN"} == {"slot608", "slot908"}  # the users live on the masters
    probed = {s.instance for s in artifacts.store.samples("greeting_latency_ms")}
    assert probed == {"slot608", "slot308", "slot908", "slot503"}
    lags = [s for s in artifacts.store.samples("replication_lag_s") if s.value is not None]
    assert {(s.instance, s.labels["replica"]) for s in lags} == {
        ("slot608", "slot308"), ("slot908", "slot503")}
    assert all(s.value < 10 for s in lags)

    stalled = scenario("stores-and-slots", tmp_path / "stalled", "--duration", "16",
                       "--users", "4", "--held", "4", "--deployment", two_stores.root,
                       "--fault", "stall-master@slot908:at=5,duration=4", *FAST_HELD)
    assert_failed_by_fault(stalled, "heartbeat_gap.longest_s", "stall-master@slot908", "slot908")
    # The other store stays green (its lag too); store24's own replica may see its lag rise.
    assert {r.get("instance") for r in stalled.failing()} <= {"slot908", "slot503"}
