"""A target that is not a local test deployment (--imap-host): the collectors that work over the
network still run (the probe, master's figures from a Prometheus page, the generator's machine),
the ones that need the server's files and /proc do not."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import threading
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from loadtest.deploy.deployment import Deployment
from loadtest.paths import PROJECT_ROOT

pytestmark = pytest.mark.cyrus


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def run_remote(deployment: Deployment, artifacts: Path, *extra: str) -> dict[str, Counter]:
    info = deployment.instances[0]
    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(PROJECT_ROOT / "locustfiles" / "churn.py"),
         "--headless", "-u", "2", "-r", "2", "-t", "4s", "--only-summary",
         "--imap-host", info.host, "--imap-port", str(info.port),
         "--imap-users-file", info.users_file, "--artifacts", str(artifacts), *extra],
        capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    (folder,) = artifacts.iterdir()
    samples = [json.loads(line) for line in (folder / "series.jsonl").read_text().splitlines()]
    by_signal: dict[str, Counter] = {}
    for s in samples:
        if s["value"] is not None:
            by_signal.setdefault(s["signal"], Counter())[s["labels"].get("source", "")] += 1
    return by_signal


def test_probe_and_machine_without_a_deployment(cyrus_deployment: Deployment, tmp_path: Path) -> None:
    signals = run_remote(cyrus_deployment, tmp_path)
    assert signals.get("greeting_latency_ms") and signals.get("held_noop_latency_ms")
    assert signals.get("load1")
    for local_only in ("ready_workers", "canary_data_ms", "listen_queue", "imapd_processes"):
        assert local_only not in signals


def test_master_figures_from_a_metrics_page(cyrus_deployment: Deployment, tmp_path: Path) -> None:
    stats_dir = Path(cyrus_deployment.instances[0].stats_file).parent
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(QuietHandler, directory=str(stats_dir)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/master.txt"
        signals = run_remote(cyrus_deployment, tmp_path, "--metrics-url", url)
    finally:
        server.shutdown()
        server.server_close()
    assert signals.get("ready_workers") and signals.get("master_forks_total")
    assert signals["heartbeat_age_s"]["http"] >= 2  # read over HTTP, not from the file
    assert "canary_data_ms" not in signals
