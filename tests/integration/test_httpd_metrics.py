"""Cyrus's own /metrics (`deploy up --httpd-metrics`: httpd with the prometheus module, promstatsd
collating the services' stats): --metrics-url against that real page yields master's heartbeat
and figures, not only a stats file served by a test HTTP server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from loadtest.core.parsers import parse_master_stats, parse_prometheus
from loadtest.deploy.deployment import Deployment
from loadtest.paths import PROJECT_ROOT

pytestmark = pytest.mark.cyrus


def test_metrics_url_against_cyrus_httpd(make_deployment: Callable[..., Deployment],
                                         tmp_path: Path) -> None:
    deployment = make_deployment(users=4, httpd_metrics=True)
    info = deployment.instances[0]
    assert info.metrics_url and info.metrics_url.startswith("http://127.0.0.1:")
    # promstatsd publishes imapd's figures on its own period after start: wait for them, bounded
    # (once read at once, it missed them in 1 of 4 clean-clone runs).
    deadline = time.monotonic() + 15
    while True:
        page = urllib.request.urlopen(info.metrics_url, timeout=10).read().decode()
        names = {s.name for s in parse_prometheus(page)}
        if "cyrus_imap_ready_listeners" in names or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "cyrus_imap_ready_listeners" in names  # what imapd reports, via promstatsd
    assert parse_master_stats(page).updated is not None  # master's figures, timestamped

    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(PROJECT_ROOT / "locustfiles" / "churn.py"),
         "--headless", "-u", "2", "-r", "2", "-t", "5s", "--only-summary",
         "--imap-host", info.host, "--imap-port", str(info.port),
         "--imap-users-file", info.users_file, "--metrics-url", info.metrics_url,
         "--artifacts", str(tmp_path)],
        capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    (folder,) = tmp_path.iterdir()
    by_signal: Counter[str] = Counter()
    heartbeat_sources: Counter[str] = Counter()
    for line in (folder / "series.jsonl").read_text().splitlines():
        sample = json.loads(line)
        if sample["value"] is not None:
            by_signal[sample["signal"]] += 1
            if sample["signal"] == "heartbeat_age_s":
                heartbeat_sources[sample["labels"].get("source")] += 1
    assert by_signal["ready_workers"] >= 3 and by_signal["master_forks_total"] >= 3
    assert heartbeat_sources["http"] >= 3 and set(heartbeat_sources) == {"http"}
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    # httpd's page is only as fresh as master's file: no heartbeat gap in a healthy run.
    assert not [e for e in events if e["kind"] == "heartbeat_gap"]
