"""The collector agent beside a Cyrus started the Debian way (tests/integration/external_cyrus.py,
not `deploy up`), and a load run pointed at that Cyrus as an external target with --agent-url:
/metrics parses with prometheus_client, the token is enforced, and the default gate judges every
rule (none inconclusive for lack of data)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from external_cyrus import ExternalCyrus, start_external_cyrus
from prometheus_client.parser import text_string_to_metric_families

from loadtest.paths import PROJECT_ROOT, fixtures_dir

pytestmark = pytest.mark.cyrus
ROOT = Path(f"/dev/shm/lt-agent-test-{os.getpid()}")


@pytest.fixture(scope="module")
def external() -> Iterator[ExternalCyrus]:
    cyrus = start_external_cyrus(ROOT / "cyrus", users=8)
    try:
        yield cyrus
    finally:
        cyrus.stop()
        shutil.rmtree(ROOT, ignore_errors=True)


def start_agent(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "loadtest.cli", "agent", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=PROJECT_ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("cyrus-loadtest agent: serving "):
        proc.kill()
        raise AssertionError(f"agent did not start: {line}{proc.stdout.read()}")
    return proc, line.split()[3].rsplit("/", 1)[0]


def stop_agent(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    assert proc.wait(10) == 0


def get(url: str, token: str | None = None) -> bytes:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=5) as resp:
        return resp.read()


def test_agent_metrics_parse_and_token_is_enforced(external: ExternalCyrus) -> None:
    token_file = ROOT / "token"
    token = secrets.token_urlsafe(24)
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    proc, url = start_agent("--master-pid", str(external.master_pid),
                            "--token-file", str(token_file))
    try:
        time.sleep(3.5)
        with pytest.raises(urllib.error.HTTPError) as refused:
            get(f"{url}/metrics", "not-the-token")
        assert refused.value.code == 401
        text = get(f"{url}/metrics", token).decode()
        series = json.loads(get(f"{url}/series?since=0", token))
    finally:
        stop_agent(proc)
    names = {sample.name for family in text_string_to_metric_families(text)
             for sample in family.samples}
    for signal in ("ready_workers", "heartbeat_age_s", "listen_queue", "canary_data_ms",
                   "canary_proc_ms", "load1", "imapd_processes", "agent_cpu_percent"):
        assert f"cyrus_agent_{signal}" in names, signal
    assert series["cursor"] == len(series["samples"]) > 0
    backlog = {s["labels"].get("backlog") for s in series["samples"] if s["signal"] == "listen_queue"}
    assert backlog == {1024}  # master -l, read from master's command line (netlink gives it too)


def test_agent_refuses_a_public_bind_without_token(external: ExternalCyrus) -> None:
    result = subprocess.run([sys.executable, "-m", "loadtest.cli", "agent", "--bind", "0.0.0.0",
                             "--master-pid", str(external.master_pid)],
                            capture_output=True, text=True, timeout=30, cwd=PROJECT_ROOT)
    assert result.returncode == 2
    assert "--bind 0.0.0.0 is not loopback: give --token-file" in result.stderr


def acceptance_run(cyrus: ExternalCyrus, artifacts: Path, agent_url: str, name: str,
                   gate: str = "default.toml", *extra: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    users_file = cyrus.write_users_file()
    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(PROJECT_ROOT / "locustfiles" / "acceptance.py"),
         "--headless", "--only-summary", "--imap-host", "127.0.0.1",
         "--imap-port", str(cyrus.port), "--imap-users-file", str(users_file),
         "--agent-url", agent_url, "--acceptance-duration", "30", "--acceptance-users", "4",
         "--acceptance-held", "2", "--gate", str(fixtures_dir() / "gates" / gate),
         "--artifacts", str(artifacts), "--run-name", name, *extra],
        capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    return result, artifacts / name


def run_with_agent(cyrus: ExternalCyrus, artifacts: Path, name: str, gate: str = "default.toml",
                   *extra: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    # The log Cyrus writes here is master's own output (no syslog daemon on a test machine):
    # the agent counts error lines in it, so the default gate's cyrus_errors rule is judged.
    proc, url = start_agent("--master-pid", str(cyrus.master_pid),
                            "--log-file", str(cyrus.root / "master.log"))
    try:
        return acceptance_run(cyrus, artifacts, url, name, gate, *extra)
    finally:
        stop_agent(proc)


@pytest.mark.slow
def test_external_target_with_agent_and_baseline_comparison(external: ExternalCyrus,
                                                            tmp_path: Path) -> None:
    # 1. The default gate against an external target plus the agent: nothing lacks data.
    result, base = run_with_agent(external, tmp_path, "base")
    verdict = json.loads((base / "verdict.json").read_text())
    inconclusive = [(r["metric"], r["reason"]) for r in verdict["results"]
                    if r["status"] == "inconclusive"]
    assert inconclusive == [], result.stderr[-2000:]
    measured = {r["metric"]: r["samples"] for r in verdict["results"]}
    for metric in ("ready_workers.p50", "heartbeat_age_s.max", "canary_data_ms.p99",
                   "load1.max", "heartbeat_gap.longest_s"):
        assert measured[metric] >= 10, metric
    samples = [json.loads(line) for line in (base / "series.jsonl").read_text().splitlines()]
    offsets = [s["value"] for s in samples if s["signal"] == "agent_clock_offset_s"]
    assert offsets and all(abs(o) < 0.5 for o in offsets)  # same host: no real offset
    listen = {s["instance"] for s in samples if s["signal"] == "listen_queue"}
    assert listen == {f"127.0.0.1:{external.port}"}  # merged under the target's name

    # 2. The same configuration again, judged in-process against the first (--baseline): pass.
    result, same = run_with_agent(external, tmp_path, "same", "baseline.toml",
                                  "--baseline", str(base))
    same_verdict = json.loads((same / "verdict.json").read_text())
    assert result.returncode == 0, [r["reason"] for r in same_verdict["results"]]
    assert same_verdict["baseline_run"] == "base"

    # 3. A worse configuration: a fork per connection (imapd -U 1, the 2007 process churn) and
    # few imapds (maxchild): compare fails on throughput or new-connection latency, naming both
    # runs. (maxchild alone barely shows with reuse: 6 gave the same figures as 100 here.)
    worse_cyrus = start_external_cyrus(ROOT / "worse", users=8, maxchild=6, reuse=1)
    try:
        run_with_agent(worse_cyrus, tmp_path, "worse", "baseline.toml")
    finally:
        worse_cyrus.stop()
    rules = str(fixtures_dir() / "gates" / "baseline.toml")
    compare = subprocess.run([sys.executable, "-m", "loadtest.cli", "compare", str(base),
                              str(tmp_path / "worse"), "--rules", rules],
                             capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert compare.returncode == 1, compare.stdout[-3000:]
    result_of = {r["metric"]: r for r in
                 json.loads((tmp_path / "worse" / "compare-verdict.json").read_text())["results"]}
    failed = {m for m, r in result_of.items() if r["status"] == "fail"}
    slower = {"LOGIN.rate_per_s", "greeting_latency_ms.p95", "CONNECT.p99_ms"}
    assert failed and failed <= slower, compare.stdout[-3000:]
    assert all("(run base)" in result_of[m]["reason"] for m in failed)
    again = subprocess.run([sys.executable, "-m", "loadtest.cli", "compare", str(base),
                            str(same), "--rules", rules],
                           capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert again.returncode == 0, again.stdout[-3000:]
