"""Two runs side by side (stores-and-slots against one instance), on synthetic runs."""

from __future__ import annotations

import json
from pathlib import Path

from loadtest.comparison import compare
from loadtest.core.runfolder import load_run
from loadtest.report.synthetic import synthetic_run, write_synthetic_run


def test_two_runs_side_by_side(tmp_path: Path) -> None:
    slots = load_run(write_synthetic_run(tmp_path / "slots", synthetic_run(
        instances=("slot1", "slot2"), stall=False)))
    single = load_run(write_synthetic_run(tmp_path / "single", synthetic_run(
        scale=0.5, stall=False)))
    table = compare({"slots": slots, "one instance": single}, "churn-ramp", tmp_path)
    data = json.loads((tmp_path / "comparison.json").read_text())
    assert data["phase"] == "churn-ramp" and set(data["runs"]) == {"slots", "one instance"}
    rate = data["metrics"]["LOGIN.rate_per_s"]
    assert rate["slots"] > rate["one instance"] > 0  # two instances at full rate, one at half
    assert "LOGIN.p99_ms" in table and "one instance" in table.splitlines()[0]
    page = (tmp_path / "comparison.html").read_text()
    assert "greeting_latency_ms.p95" in page and "slots" in page
