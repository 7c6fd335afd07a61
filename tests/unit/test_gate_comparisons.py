"""The gate's comparison and scenario metrics on literal data: a step's percentile over another
step's (LIST_vs_LOGIN.p99_ratio), a signal against its own baseline phase
(canary_proc_ms.p99_vs_baseline), occurrences we counted (rotation.count, rotation.rate_per_s)
and a gauge spread over label values (imapd_binaries.distinct)."""

from __future__ import annotations

import math

import pytest

from loadtest.core.series import SeriesStore
from loadtest.core.steps import StepRecorder
from loadtest.errors import UsageError
from loadtest.gate.evaluate import FAIL, INCONCLUSIVE, PASS, evaluate
from loadtest.gate.metrics import parse_metric
from loadtest.gate.rules import parse_rules
from loadtest.report.synthetic import T0


def one(text: str, steps: StepRecorder | None = None, store: SeriesStore | None = None):
    (result,) = evaluate(parse_rules(text, "test.toml"), steps or StepRecorder(),
                         store or SeriesStore()).results
    return result


def steps_with(login_ms: list[float], list_ms: list[float], phase: str = "soak",
               list_failures: int = 0) -> StepRecorder:
    steps = StepRecorder()
    for i, ms in enumerate(login_ms):
        steps.on_request("IMAP", "LOGIN", ms, False, phase, None, t=T0 + i)
    for i, ms in enumerate(list_ms):
        steps.on_request("IMAP", "LIST", ms, i < list_failures, phase, None, t=T0 + i)
    return steps


RATIO = '[[rule]]\nmetric = "LIST_vs_LOGIN.p99_ratio"\nmax = 3\nphase = "soak"\n'


def test_list_vs_login_ratio_passes_when_both_slow_down_together() -> None:
    # Load slows everything: LOGIN p99 40 ms, LIST p99 60 ms: ratio 1.5, no absolute bound hit.
    result = one(RATIO, steps_with([10.0] * 99 + [40.0], [15.0] * 99 + [60.0]))
    assert result.status == PASS and result.measured == pytest.approx(1.5, rel=0.01)
    assert result.samples == 100 and "LIST " in result.reason and "/ LOGIN " in result.reason


def test_list_vs_login_ratio_fails_the_uc_davis_signature() -> None:
    # LOGIN fine (p99 12 ms) while LIST crawls (p99 600 ms): 50x.
    result = one(RATIO, steps_with([12.0] * 100, [20.0] * 90 + [600.0] * 10))
    assert result.status == FAIL and result.measured == pytest.approx(50.0, rel=0.01)
    timed_out = one(RATIO, steps_with([12.0] * 100, [20.0] * 100, list_failures=5))
    assert timed_out.status == FAIL and timed_out.measured == math.inf


def test_list_vs_login_ratio_without_one_side_is_inconclusive() -> None:
    result = one(RATIO, steps_with([12.0] * 10, []))
    assert result.status == INCONCLUSIVE and result.samples == 0
    other_phase = one(RATIO, steps_with([12.0] * 10, [12.0] * 10, phase="fill"))
    assert other_phase.status == INCONCLUSIVE


def canary_store(baseline_ms: list[float | None], churn_ms: list[float | None]) -> SeriesStore:
    store = SeriesStore()
    store.event("phase", t=T0, end=T0 + 100, name="baseline")
    store.event("phase", t=T0 + 100, end=T0 + 300, name="churn")
    for i, ms in enumerate(baseline_ms):
        store.add("canary_proc_ms", ms, t=T0 + 1 + i)
    for i, ms in enumerate(churn_ms):
        store.add("canary_proc_ms", ms, t=T0 + 101 + i)
    return store


VS_BASELINE = ('[[rule]]\nmetric = "canary_proc_ms.p99_vs_baseline"\nmax = 5\nphase = "churn"\n'
               'baseline_phase = "baseline"\n')


def test_canary_against_its_own_baseline() -> None:
    calm = one(VS_BASELINE, store=canary_store([2.0] * 50, [2.0] * 95 + [6.0] * 5))
    assert calm.status == PASS and calm.measured == pytest.approx(3.0)
    assert "6 against 2 in baseline" in calm.reason and calm.samples == 50
    collapse = one(VS_BASELINE, store=canary_store([2.0] * 50, [2.0] * 90 + [40.0] * 10))
    assert collapse.status == FAIL and collapse.measured == pytest.approx(20.0)
    hung = one(VS_BASELINE, store=canary_store([2.0] * 50, [2.0] * 90 + [None] * 10))
    assert hung.status == FAIL and hung.measured == math.inf


def test_canary_baseline_missing_is_inconclusive() -> None:
    no_baseline = one(VS_BASELINE, store=canary_store([], [2.0] * 10))
    assert no_baseline.status == INCONCLUSIVE
    store = SeriesStore()
    store.event("phase", t=T0, end=T0 + 10, name="churn")
    store.add("canary_proc_ms", 1.0, t=T0 + 1)
    never = one(VS_BASELINE, store=store)
    assert never.status == INCONCLUSIVE and never.samples == 0


@pytest.mark.parametrize("text, error", [
    ('metric = "canary_proc_ms.p99_vs_baseline"\nmax = 5', "needs baseline"),
    ('metric = "canary_proc_ms.p99"\nmax = 5\nbaseline_phase = "b"', "baseline_phase only applies"),
    ('metric = "LIST_vs_LOGIN.p99_ms"\nmax = 5', "pNN_ratio"),
    ('metric = "rotation.p99"\nmax = 5', "tally signal"),
    ('metric = "imapd_binaries.p50"\nmin = 5', "spread signal"),
])
def test_comparison_rules_refuse_bad_input(text: str, error: str) -> None:
    with pytest.raises(UsageError, match=error):
        parse_rules("[[rule]]\n" + text + "\n", "test.toml")


def test_metric_names_parse() -> None:
    ratio = parse_metric("LIST_vs_LOGIN.p99_ratio")
    assert (ratio.family, ratio.subject, ratio.versus, ratio.percentile) == (
        "step_ratio", "LIST", "LOGIN", 99.0)
    assert parse_metric("canary_proc_ms.p99_vs_baseline").baseline


def test_rotation_count_and_rate_in_a_phase() -> None:
    store = SeriesStore()
    store.event("phase", t=T0 + 10, end=T0 + 30, name="rotation")
    # The injector records its cumulative re-point count; nothing before the phase.
    for i, count in enumerate([0, 12, 40, 64, 90, 110]):
        store.add("rotation", count, t=T0 + 10 + 4 * i, instance="slot1")
    count = one('[[rule]]\nmetric = "rotation.count"\nmin = 40\nphase = "rotation"\n',
                store=store)
    assert count.status == PASS and count.measured == 110
    rate = one('[[rule]]\nmetric = "rotation.rate_per_s"\nmin = 1\nphase = "rotation"\n',
               store=store)
    assert rate.measured == pytest.approx(110 / 20)
    too_few = one('[[rule]]\nmetric = "rotation.count"\nmin = 200\n', store=store)
    assert too_few.status == FAIL


def test_imapd_binaries_distinct_counts_copies_alive_at_one_time() -> None:
    store = SeriesStore()
    # t0: 3 copies with live imapds; t1: 5 copies (one with 0 left); 7 copies over both.
    for path, n in (("/b/imapd_001", 4), ("/b/imapd_002", 1), ("/b/imapd_003", 2)):
        store.add("imapd_binaries", n, t=T0, instance="slot1", binary=path)
    for path, n in (("/b/imapd_004", 1), ("/b/imapd_005", 3), ("/b/imapd_006", 1),
                    ("/b/imapd_007", 1), ("/b/imapd_001", 1), ("/b/imapd_002", 0)):
        store.add("imapd_binaries", n, t=T0 + 1, instance="slot1", binary=path)
    distinct = one('[[rule]]\nmetric = "imapd_binaries.distinct"\nmin = 6\n', store=store)
    assert distinct.status == FAIL and distinct.measured == 5 and distinct.samples == 2
    assert distinct.measured_text == "5"
    most = one('[[rule]]\nmetric = "imapd_binaries.max"\nmax = 200\n', store=store)
    assert most.status == PASS and most.measured == 4
