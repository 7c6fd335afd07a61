"""Relative gate rules (max_ratio / min_ratio against a baseline run) on literal data, and
`cyrus-loadtest compare BASE NEW` over synthetic artifacts folders."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from loadtest.cli import main
from loadtest.core.series import SeriesStore
from loadtest.core.steps import StepRecorder
from loadtest.errors import UsageError
from loadtest.gate.evaluate import FAIL, INCONCLUSIVE, PASS, Baseline, evaluate, ratio
from loadtest.gate.rules import parse_rules
from loadtest.report.synthetic import T0, synthetic_run, write_synthetic_run

RATIO_RULE = """
[[rule]]
metric = "LOGIN.p95_ms"
max_ratio = 1.2
phase = "churn"
"""


def login_run(latency_ms: float, phase: str = "churn") -> tuple[StepRecorder, SeriesStore]:
    steps, store = StepRecorder(), SeriesStore()
    for i in range(50):
        steps.on_request("IMAP", "LOGIN", latency_ms, False, phase, None, t=T0 + i)
    store.event("phase", t=T0, end=T0 + 50, name=phase)
    return steps, store


def judge(new_ms: float, base_ms: float | None, text: str = RATIO_RULE):
    steps, store = login_run(new_ms)
    baseline = None
    if base_ms is not None:
        base_steps, base_store = login_run(base_ms)
        baseline = Baseline("base-run", base_steps, base_store)
    verdict = evaluate(parse_rules(text, "t.toml"), steps, store, baseline, run="new-run")
    (result,) = verdict.results
    return verdict, result


def test_worse_than_ratio_fails_and_names_both_runs() -> None:
    verdict, result = judge(30.0, 20.0)
    assert result.status == FAIL
    assert (result.measured, result.baseline) == (pytest.approx(30, rel=0.01),
                                                  pytest.approx(20, rel=0.01))
    assert "= 1.5 x baseline 20" in result.reason
    assert "(run base-run) > max_ratio 1.2" in result.reason
    data = verdict.to_dict()
    assert (data["run"], data["baseline_run"]) == ("new-run", "base-run")
    assert data["results"][0]["baseline"] == pytest.approx(20, rel=0.01)


def test_within_ratio_passes() -> None:
    _verdict, result = judge(22.0, 20.0)
    assert result.status == PASS and "= 1.1 x baseline 20" in result.reason
    assert "(run base-run) within <= 1.2 x baseline" in result.reason


def test_no_baseline_or_baseline_without_data_is_inconclusive() -> None:
    assert judge(22.0, None)[1].status == INCONCLUSIVE
    steps, store = login_run(20.0)
    empty = Baseline("empty", StepRecorder(), SeriesStore())
    (result,) = evaluate(parse_rules(RATIO_RULE, "t.toml"), steps, store, empty).results
    assert result.status == INCONCLUSIVE and result.reason.startswith("baseline run empty:")


def test_ratio_of_zero_baseline() -> None:
    assert ratio(0.0, 0.0) == 1.0 and ratio(1.0, 0.0) == math.inf and ratio(3.0, 2.0) == 1.5


@pytest.mark.parametrize("body, message", [
    ('metric = "LOGIN.p95_ms"\nmax_ratio = 0', "max_ratio = 0 is not a positive number"),
    ('metric = "LOGIN.p95_ms"\nmax_ratio = "x"', "max_ratio = 'x' is not a positive number"),
    ('metric = "LOGIN.p95_ms"\nmin_ratio = 2\nmax_ratio = 1', "min_ratio 2 > max_ratio 1"),
])
def test_bad_ratio_rules(body: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_rules("[[rule]]\n" + body + "\n", "t.toml")


def test_compare_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    healthy = write_synthetic_run(tmp_path / "healthy", synthetic_run(stall=False))
    stalled = write_synthetic_run(tmp_path / "stalled", synthetic_run(stall=True))
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nmetric = "greeting_latency_ms.p99"\nmax_ratio = 1.2\n')
    assert main(["compare", str(healthy), str(healthy), "--rules", str(rules)]) == 0
    assert (healthy / "compare-overlay.png").stat().st_size > 10_000
    assert main(["compare", str(healthy), str(stalled), "--rules", str(rules)]) == 1
    verdict = json.loads((stalled / "compare-verdict.json").read_text())
    assert verdict["baseline_run"] == "healthy" and verdict["run"] == "stalled"
    assert "max_ratio 1.2" in verdict["results"][0]["reason"]
    assert main(["compare", str(tmp_path / "nope"), str(stalled), "--rules", str(rules)]) == 2
    assert "nope" in capsys.readouterr().err


def test_ratio_floor_treats_small_values_as_noise() -> None:
    floored = RATIO_RULE + "ratio_floor = 50\n"
    assert judge(30.0, 10.0, floored)[1].status == PASS  # both below 50 ms: no difference
    _verdict, result = judge(300.0, 10.0, floored)
    assert result.status == FAIL and "= 6 x baseline" in result.reason  # 300 / max(10, 50)
    with pytest.raises(UsageError, match="ratio_floor without max_ratio"):
        parse_rules('[[rule]]\nmetric = "LOGIN.p95_ms"\nmax = 5\nratio_floor = 50\n', "t.toml")
