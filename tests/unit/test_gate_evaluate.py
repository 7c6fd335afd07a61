"""Gate evaluation on literal data, and the same verdict in-process and offline."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from loadtest.core.runfolder import load_run
from loadtest.core.series import SeriesStore
from loadtest.core.steps import StepRecorder
from loadtest.errors import EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_PASS
from loadtest.gate.cli import gate_at_quit
from loadtest.gate.evaluate import FAIL, INCONCLUSIVE, PASS, evaluate
from loadtest.gate.rules import parse_rules
from loadtest.report.synthetic import T0, synthetic_run, write_synthetic_run

GATES = Path(__file__).resolve().parents[2] / "fixtures" / "gates"


def rules(text: str):
    return parse_rules(text, "test.toml")


def rule(metric: str, bound: str = "max", value: float = 1, **extra: object) -> str:
    lines = ["[[rule]]", f'metric = "{metric}"', f"{bound} = {value}"]
    for key, value in extra.items():
        if isinstance(value, dict):  # a TOML inline table
            value = "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items()) + " }"
        else:
            value = json.dumps(value)
        lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


def one(text: str, steps: StepRecorder | None = None, store: SeriesStore | None = None):
    verdict = evaluate(rules(text), steps or StepRecorder(), store or SeriesStore())
    (result,) = verdict.results
    return result


def test_failure_ratio_and_percentile_with_failures() -> None:
    steps = StepRecorder()
    for i in range(100):
        steps.on_request("IMAP", "LOGIN", 10.0, i < 3, None, None, t=T0 + i)
    ratio = one(rule("LOGIN.failure_ratio", "max", 0.05), steps)
    assert (ratio.status, ratio.measured, ratio.samples) == (PASS, pytest.approx(0.03), 100)
    p99 = one(rule("LOGIN.p99_ms", "max", 500), steps)
    assert p99.status == FAIL and p99.measured == math.inf
    assert "3 of 100 requests failed" in p99.reason and "+inf" in p99.reason
    assert one(rule("LOGIN.p95_ms", "max", 500), steps).status == PASS
    assert one(rule("LOGIN.p95_ms", "max", 5), steps).status == FAIL


def test_rate_over_run_and_phase() -> None:
    steps = StepRecorder()
    steps.start, steps.end = T0, T0 + 100
    for i in range(200):
        steps.on_request("IMAP", "LOGIN", 1.0, False, "ramp" if i < 150 else "flood", None,
                         t=T0 + i / 4)
    store = SeriesStore()
    store.event("phase", t=T0, end=T0 + 10, name="ramp")
    store.event("phase", t=T0 + 40, end=T0 + 50, name="flood")
    assert one(rule("LOGIN.rate_per_s", "min", 1), steps, store).measured == pytest.approx(2.0)
    ramp = one(rule("LOGIN.rate_per_s", "min", 20, phase="ramp"), steps, store)
    assert ramp.measured == pytest.approx(15.0) and ramp.status == FAIL
    assert "15 < min 20" in ramp.reason


def test_phase_that_never_ran_is_inconclusive() -> None:
    result = one(rule("greeting_latency_ms.p99", phase="flood"))
    assert result.status == INCONCLUSIVE and "phase 'flood' never ran" in result.reason


def test_min_samples_gives_inconclusive() -> None:
    store = SeriesStore()
    for i in range(5):
        store.add("greeting_latency_ms", 3.0, t=T0 + i)
    result = one(rule("greeting_latency_ms.p99", "max", 10, min_samples=6), None, store)
    assert result.status == INCONCLUSIVE and result.measured == 3.0
    assert "only 5 samples" in result.reason
    assert one(rule("greeting_latency_ms.p99", "max", 10, min_samples=5), None, store).status == PASS
    empty = one(rule("LOGIN.p99_ms", "max", 10))
    assert empty.status == INCONCLUSIVE and empty.measured is None


def test_latency_series_counts_unanswered_probes_as_infinite() -> None:
    store = SeriesStore()
    for i in range(98):
        store.add("greeting_latency_ms", 2.0, t=T0 + i)
    store.add("greeting_latency_ms", None, t=T0 + 98, why="timeout")
    store.add("greeting_latency_ms", None, t=T0 + 99, why="timeout")
    assert one(rule("greeting_latency_ms.p98", "max", 10), None, store).measured == 2.0
    p99 = one(rule("greeting_latency_ms.p99", "max", 10), None, store)
    assert p99.measured == math.inf and "2 of 100 probes got no answer" in p99.reason
    assert one(rule("greeting_latency_ms.min", "max", 10), None, store).measured == 2.0


def test_gauges_instances_labels_and_phase_windows() -> None:
    store = SeriesStore()
    store.event("phase", t=T0 + 10, end=T0 + 20, name="flood")
    for i in range(30):
        store.add("ready_workers", 5 if not 10 <= i <= 20 else 1, t=T0 + i, instance="s1",
                  service="imap")
        store.add("ready_workers", 0, t=T0 + i, instance="s1", service="pop3")
        store.add("ready_workers", 9, t=T0 + i, instance="s2", service="imap")
        store.add("load1", None if i == 3 else i / 10, t=T0 + i, why="read failed")
    imap = {"labels": {"service": "imap"}}
    text = rule("ready_workers.min", "min", 1, **imap)
    assert one(text, None, store).measured == 1
    assert one(rule("ready_workers.min", "min", 2, instance="s1", phase="flood", **imap),
               None, store).status == FAIL
    assert one(rule("ready_workers.min", "min", 2, instance="s2", phase="flood", **imap),
               None, store).measured == 9
    assert one(rule("ready_workers.min", "min", 1), None, store).measured == 0  # pop3 too
    assert one(rule("ready_workers.mean", "min", 1, instance="s1", phase="flood", **imap),
               None, store).measured == 1
    load = one(rule("load1.max", "max", 8), None, store)
    assert load.measured == pytest.approx(2.9) and load.samples == 30
    assert one(rule("load1.last", "max", 8, phase="flood"), None, store).measured == \
        pytest.approx(2.0)


def test_counter_increase_uses_baseline_and_handles_reset() -> None:
    store = SeriesStore()
    store.event("phase", t=T0 + 5, end=T0 + 9, name="flood")
    values = [100, 100, 101, 101, 101, 101, 104, 110, 3, 5, 5, 5]  # reset at i=8
    for i, v in enumerate(values):
        store.add("listen_overflows", v, t=T0 + i, instance="s1")
        store.add("listen_overflows", 7, t=T0 + i, instance="s2")
    assert one(rule("listen_overflows.increase", "max", 0), None, store).measured == 1 + 3 + 6 + 3 + 2
    flood = one(rule("listen_overflows.increase", "max", 0, phase="flood", instance="s1"),
                None, store)
    assert flood.measured == 3 + 6 + 3 + 2 and flood.status == FAIL
    assert flood.samples == 5


def test_events_clipped_to_phase_and_witness_samples() -> None:
    store = SeriesStore()
    store.event("phase", t=T0 + 10, end=T0 + 20, name="flood")
    store.event("stall", t=T0 + 8, end=T0 + 12, instance="s1")
    store.event("stall", t=T0 + 15, end=T0 + 16.5, instance="s2")
    store.event("stall", t=T0 + 30, end=T0 + 33, instance="s1")
    assert one(rule("stall.longest_s", "max", 2.5), None, store).status == INCONCLUSIVE
    for i in range(40):
        store.add("greeting_latency_ms", 2.0, t=T0 + i, instance="s1")
    whole = one(rule("stall.longest_s", "max", 2.5), None, store)
    assert (whole.measured, whole.status, whole.samples) == (4.0, FAIL, 40)
    flood = one(rule("stall.longest_s", "max", 2.5, phase="flood", instance="s1"), None, store)
    assert flood.measured == pytest.approx(2.0) and flood.status == PASS
    assert one(rule("stall.total_s", "max", 100, phase="flood"), None, store).measured == \
        pytest.approx(3.5)
    assert one(rule("stall.count", "max", 0, instance="s1"), None, store).measured == 2
    heartbeat = one(rule("heartbeat_gap.longest_s", "max", 2.5), None, store)
    assert heartbeat.status == INCONCLUSIVE  # no heartbeat samples: nobody was watching
    assert one(rule("fault.count", "max", 0), None, store).measured == 0


def test_overall_status_and_exit_codes() -> None:
    steps = StepRecorder()
    steps.on_request("IMAP", "LOGIN", 5.0, False, None, None, t=T0)
    ok, bad, unsure = (rule("LOGIN.p50_ms", "max", 10), rule("LOGIN.p50_ms", "max", 1),
                       rule("LIST.p50_ms", "max", 10))
    assert evaluate(rules(ok), steps, SeriesStore()).exit_code == EXIT_PASS
    assert evaluate(rules(ok + unsure), steps, SeriesStore()).exit_code == EXIT_INCONCLUSIVE
    verdict = evaluate(rules(ok + unsure + bad), steps, SeriesStore())
    assert (verdict.status, verdict.exit_code) == (FAIL, EXIT_FAIL)
    assert verdict.to_dict()["counts"] == {"pass": 1, "fail": 1, "inconclusive": 1}


def test_in_process_and_offline_give_the_same_verdict(tmp_path: Path) -> None:
    from loadtest.gate.rules import load_rules

    run = synthetic_run(instances=("slot1", "slot2"))
    gate = load_rules(GATES / "example-all.toml")
    in_process = gate_at_quit(gate, run.recorder, run.store, tmp_path)
    write_synthetic_run(tmp_path, run)
    artifacts = load_run(tmp_path)
    offline = evaluate(gate, artifacts.steps, artifacts.store)
    assert offline.to_dict() == in_process.to_dict()
    assert json.loads((tmp_path / "verdict.json").read_text()) == json.loads(
        json.dumps(offline.to_dict()))
    statuses = {r.status for r in offline.results}
    assert statuses == {PASS, FAIL, INCONCLUSIVE}  # the comparison covers all three


def test_default_gate_passes_a_healthy_run_and_fails_a_stalled_one() -> None:
    from loadtest.gate.rules import load_rules

    gate = load_rules(GATES / "default.toml")
    healthy = synthetic_run(stall=False)
    assert evaluate(gate, healthy.recorder, healthy.store).status == PASS
    stalled = synthetic_run(stall=True)
    verdict = evaluate(gate, stalled.recorder, stalled.store)
    failed = {r.rule.metric.name for r in verdict.results if r.status == FAIL}
    assert {"heartbeat_gap.longest_s", "listen_overflows.increase"} <= failed


def test_fault_metrics_count_applied_faults_only() -> None:
    """The runner also writes an event for its clean-up after the run ("undo kill-master") and
    for a fault that could not be applied ("error"): neither is a fault that happened."""
    store = SeriesStore()
    store.event("fault", t=T0 + 10, end=T0 + 13, instance="s1", fault="stall-master",
                spec="stall-master:at=10,duration=3")
    store.event("fault", t=T0 + 20, end=T0 + 20, instance="s1", fault="kill-master",
                spec="kill-master:at=20", error="no such process")
    store.event("fault", t=T0 + 30, end=T0 + 38, instance="s1", fault="undo kill-master",
                restarted=True)
    assert one(rule("fault.count", "max", 0), None, store).measured == 1
    assert one(rule("fault.total_s", "max", 0), None, store).measured == pytest.approx(3.0)
    assert one(rule("fault.longest_s", "max", 0), None, store).measured == pytest.approx(3.0)
    steps = StepRecorder()
    steps.start = T0
    for i in range(40):  # failed logins throughout: every fault event overlaps them
        steps.on_request("IMAP", "LOGIN", 5.0, True, None, "s1", t=T0 + i)
    failed = one(rule("LOGIN.failures", "max", 0), steps, store)
    assert failed.faults == ("stall-master@s1:at=10,duration=3 (at 10.0 s for 3.0 s)",)


def test_stall_outside_fault_windows_measures_recovery() -> None:
    """A master that recovers when the injected fault ends has (almost) nothing outside the
    fault's window; one that stays stuck has the rest of its stall (Konstanz 2016)."""
    store = SeriesStore()
    for i in range(80):
        store.add("greeting_latency_ms", 2.0, t=T0 + i, instance="s1")
    store.event("fault", t=T0 + 30, end=T0 + 40, instance="s1", fault="eintr-inject",
                spec="eintr-inject:phase=interrupted,duration=10")
    store.event("fault", t=T0 + 60, end=T0 + 60, instance="s1", fault="eintr-inject",
                spec="eintr-inject:at=60,duration=1", error="strace did not attach")
    stuck = one(rule("stall.longest_outside_faults_s", "max", 3), None, _with_stall(store, 31, 66))
    assert stuck.status == FAIL and stuck.measured == pytest.approx(26.0)  # 40..66 (the
    # failed fault at 60 is no window)
    assert "1 fault windows excluded" in stuck.reason
    recovered = one(rule("stall.longest_outside_faults_s", "max", 3), None,
                    _with_stall(store, 29.5, 40.4))
    assert recovered.status == PASS and recovered.measured == pytest.approx(0.5)  # 29.5..30
    assert one(rule("stall.longest_s", "max", 3), None,
               _with_stall(store, 29.5, 40.4)).measured == pytest.approx(10.9)
    store.event("phase", t=T0 + 50, end=T0 + 80, name="recovery")
    clipped = one(rule("stall.longest_outside_faults_s", "max", 3, phase="recovery"), None,
                  _with_stall(store, 31, 66))
    assert clipped.measured == pytest.approx(16.0)  # 50..66


def _with_stall(store: SeriesStore, start: float, end: float) -> SeriesStore:
    copy = SeriesStore()
    for sample in store.samples("greeting_latency_ms"):
        copy.add("greeting_latency_ms", sample.value, t=sample.t, instance=sample.instance)
    for event in store.events():
        copy.event(event.kind, t=event.t, end=event.end, instance=event.instance, **event.detail)
    copy.event("stall", t=T0 + start, end=T0 + end, instance="s1")
    return copy


@pytest.mark.parametrize(("interval", "holes", "pieces"), [
    ((0.0, 10.0), [], [(0.0, 10.0)]),
    ((0.0, 10.0), [(2.0, 4.0)], [(0.0, 2.0), (4.0, 10.0)]),
    ((0.0, 10.0), [(-1.0, 11.0)], []),
    ((0.0, 10.0), [(8.0, 12.0), (-5.0, 1.0)], [(1.0, 8.0)]),
    ((0.0, 10.0), [(10.0, 12.0)], [(0.0, 10.0)]),
])
def test_outside_subtracts_windows(interval, holes, pieces) -> None:
    from loadtest.gate.evaluate import outside

    assert outside(interval, holes) == pieces
