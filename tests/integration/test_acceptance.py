"""The one-command acceptance run against real Cyrus: a healthy run passes the default gate; a run
with an injected master stall fails on the stall rules and the offline gate over its artifacts
gives the same verdict; the artifacts, JUnit file and report are complete; bad input exits 2
with one line and starts nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from loadtest.deploy.procs import pids_mentioning
from loadtest.gate.rules import load_rules
from loadtest.paths import PROJECT_ROOT, fixtures_dir

pytestmark = [pytest.mark.cyrus, pytest.mark.slow]
CLI = [sys.executable, "-m", "loadtest.cli"]
DEFAULT_GATE = fixtures_dir() / "gates" / "default.toml"
ARTIFACT_FILES = ("run.json", "series.jsonl", "events.jsonl", "steps.json", "verdict.json",
                  "junit.xml", "locust_stats.json", "locust_stats.csv", "locust_report.html",
                  "report.html")


def acceptance(artifacts: Path, *args: str, timeout: float = 180) -> tuple[subprocess.CompletedProcess[str], Path | None]:
    result = subprocess.run([*CLI, "acceptance", "--artifacts", str(artifacts), *args],
                            capture_output=True, text=True, timeout=timeout, cwd=PROJECT_ROOT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    folders = sorted(artifacts.glob("acceptance-*"))
    return result, (folders[-1] if folders else None)


def results_by_rule(verdict: dict) -> dict[tuple[str, str | None], str]:
    return {(r["metric"], r.get("phase")): r["status"] for r in verdict["results"]}


def no_deployment_left() -> None:
    assert pids_mentioning("/acceptance-") == []


def test_healthy_run_passes_the_default_gate(tmp_path: Path) -> None:
    result, folder = acceptance(tmp_path, "--duration", "30", "--users", "4", "--held", "2",
                                "--provision-users", "20")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert folder is not None
    for name in ARTIFACT_FILES:
        assert (folder / name).is_file(), name
    verdict = json.loads((folder / "verdict.json").read_text())
    assert verdict["status"] == "pass" and verdict["counts"]["fail"] == 0
    phases = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert {e["detail"]["name"] for e in phases if e["kind"] == "phase"} == {
        "warm-up", "churn-ramp", "reconnect-flood"}
    run = json.loads((folder / "run.json").read_text())
    assert run["status"] == "gate pass" and run["end"] > run["start"]
    # JUnit: valid XML, one test case per rule
    rules = load_rules(DEFAULT_GATE)
    cases = ET.parse(folder / "junit.xml").getroot().findall(".//testcase")
    assert len(cases) == len(rules.rules) == len(verdict["results"])
    # The report shows every plot it references, and they exist
    html = (folder / "report.html").read_text()
    images = re.findall(r'<img[^>]+src="([^"]+)"', html)
    assert images and all((folder / src).is_file() for src in images)
    assert "report" in result.stdout and str(folder) in result.stdout
    # Each phase adds one class: exactly --held held sessions, --users churn and flood users.
    spawned = re.findall(r"All users spawned: (\{[^}]*\})", result.stderr)
    assert spawned and json.loads(spawned[-1]) == {
        "HeldSessionUser": 2, "ChurnUser": 4, "ReconnectFloodUser": 4}
    no_deployment_left()


def test_password_never_reaches_artifacts_or_output(tmp_path: Path, cyrus_deployment) -> None:
    secret = "Zq7-not-a-real-password-41"
    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(PROJECT_ROOT / "locustfiles" / "churn.py"),
         "--headless", "-u", "2", "-r", "2", "-t", "3s", "--artifacts", str(tmp_path),
         "--deployment", str(cyrus_deployment.path), "--imap-user-pattern", "user{n}",
         "--imap-user-count", "5", "--imap-password", secret],
        capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert "auth rejected" in result.stdout + result.stderr  # the run happened, logins failed
    assert secret not in result.stdout + result.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "run.json" for p in files)
    for path in files:
        assert secret not in path.read_text(errors="replace"), path


def test_injected_stall_fails_and_offline_gate_agrees(tmp_path: Path) -> None:
    result, folder = acceptance(tmp_path, "--duration", "30", "--users", "4", "--held", "2",
                                "--provision-users", "20",
                                "--fault", "stall-master:at=12,duration=4")
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    verdict = json.loads((folder / "verdict.json").read_text())
    statuses = results_by_rule(verdict)
    assert statuses[("heartbeat_gap.longest_s", None)] == "fail"
    faults = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()
              if json.loads(line)["kind"] == "fault"]
    assert [f["detail"]["fault"] for f in faults] == ["stall-master"]
    assert 3.5 < faults[0]["end"] - faults[0]["t"] < 5.5
    offline = subprocess.run([*CLI, "gate", str(folder), "--rules", str(DEFAULT_GATE),
                              "--json", str(tmp_path / "offline.json"),
                              "--junit", str(tmp_path / "offline.xml")],
                             capture_output=True, text=True, timeout=60)
    assert offline.returncode == 1, offline.stdout + offline.stderr
    again = json.loads((tmp_path / "offline.json").read_text())
    assert results_by_rule(again) == statuses
    assert [r["measured"] for r in again["results"]] == [r["measured"] for r in verdict["results"]]
    no_deployment_left()


@pytest.mark.parametrize("args, fragment", [
    (["--gate", "/nonexistent/rules.toml"], "/nonexistent/rules.toml"),
    (["--duration", "soon"], "bad value 'soon' for --duration"),
    (["--users", "0"], "bad value '0' for --users"),
    (["--fault", "stall-master:duration=zero"], "duration='zero' is not a float"),
])
def test_bad_input_exits_2_before_anything_starts(tmp_path: Path, args: list[str], fragment: str) -> None:
    result, folder = acceptance(tmp_path, *args, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert folder is None
    no_deployment_left()


def test_malformed_rules_name_file_and_line(tmp_path: Path) -> None:
    rules = tmp_path / "gate.toml"
    rules.write_text('[[rule]]\nmetric = "LOGIN.p99_ms"\nmax = 100\n\n[[rule]]\nmetric = "LOGIN.p101_ms"\nmax = 1\n')
    result, folder = acceptance(tmp_path, "--gate", str(rules), timeout=60)
    assert result.returncode == 2
    assert f"{rules}:5" in result.stderr or f"{rules}:6" in result.stderr, result.stderr
    assert folder is None


def test_offline_gate_on_incomplete_artifacts(tmp_path: Path) -> None:
    folder = tmp_path / "run-x"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"format_version": 1}))
    result = subprocess.run([*CLI, "gate", str(folder), "--rules", str(DEFAULT_GATE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert str(folder) in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_killed_acceptance_run_leaves_no_deployment(tmp_path: Path) -> None:
    """SIGKILL gives the run no way out (a CI runner's timeout, the OOM killer), and master
    runs in a session of its own: the watchdog the run started first stops the deployment."""
    proc = subprocess.Popen([*CLI, "acceptance", "--artifacts", str(tmp_path), "--duration", "30",
                             "--users", "2", "--held", "1", "--provision-users", "10"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=PROJECT_ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            start_new_session=True)
    root = None
    locust: list[int] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # bounded: the run ends by itself within about a minute
            found = re.search(r"starting a test deployment in (\S+) \.\.\.", line)
            if found:
                root = Path(found.group(1))
            if root is not None and (root / "deployment.json").exists():
                # Master, its syslog receiver and the watchdog are children of the run too.
                children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
                locust = [int(pid) for pid in children
                          if b"\0-m\0locust\0" in Path(f"/proc/{pid}/cmdline").read_bytes()]
                if locust:
                    break
        assert root is not None and locust, "the run never got as far as starting Locust"
        masters = pids_mentioning(f"{root}/")
        assert masters, "no Cyrus processes while the run was under way"
        os.kill(proc.pid, 9)
        proc.wait(10)
        for pid in locust:  # the run's Locust, ours too: ended by pid
            os.kill(pid, 9)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (pids_mentioning(f"{root}/") or root.exists()):
            time.sleep(0.2)
        assert pids_mentioning(f"{root}/") == [], "Cyrus processes outlived the killed run"
        assert not root.exists()
        assert pids_mentioning(f"--root\0{root}") == []  # the watchdog is gone too
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if root is not None and root.exists():  # only if the watchdog failed: clean up anyway
            from loadtest.deploy.manager import deploy_down

            deploy_down(root)
