"""Step recorder: trustworthy percentiles (failures never make latency look better), merging
worker reports, steps.json round trip, the per-second series for the report."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from loadtest.core.series import SeriesStore
from loadtest.core.steps import StepRecorder, StepStats, _to_us, counted_us, locust_listener
from loadtest.gate.evaluate import nearest_rank

T = 1_700_000_000.0


def test_percentiles_match_exact_nearest_rank_within_hdr_precision() -> None:
    rng = random.Random(1)
    values = [rng.lognormvariate(math.log(5), 1.0) for _ in range(20_000)]
    stats = StepStats()
    for v in values:
        stats.record(v, False, T)
    for p in (50, 95, 99, 99.9):
        exact = nearest_rank(values, p)
        assert stats.percentile_ms(p) == pytest.approx(exact, rel=2e-3, abs=2e-3), p
    assert stats.max_ms() == pytest.approx(max(values), rel=2e-3)


def test_instant_failures_cannot_improve_latency() -> None:
    slow = StepStats()
    for _ in range(98):
        slow.record(200.0, False, T)
    before = slow.percentile_ms(99)
    # A server that starts refusing instantly: fast failures must push percentiles up.
    for _ in range(2):
        slow.record(0.1, True, T)
    assert before == pytest.approx(200.0, rel=1e-3)
    assert slow.percentile_ms(50) == pytest.approx(200.0, rel=1e-3)
    assert slow.percentile_ms(98) == pytest.approx(200.0, rel=1e-3)
    assert slow.percentile_ms(99) == math.inf  # 2 % failed > 1 % allowed
    assert slow.max_ms() == math.inf
    assert slow.failure_ratio == pytest.approx(0.02)


def test_all_failed_and_empty() -> None:
    stats = StepStats()
    assert stats.percentile_ms(50) is None and stats.max_ms() is None
    assert stats.failure_ratio is None
    stats.record(0.0, True, T)
    assert stats.percentile_ms(1) == math.inf


def feed(recorder: StepRecorder, seed: int, n: int) -> None:
    rng = random.Random(seed)
    for i in range(n):
        recorder.on_request("IMAP", rng.choice(["CONNECT", "LOGIN", "LIST"]),
                            rng.expovariate(1 / 4), rng.random() < 0.01,
                            rng.choice(["ramp", "flood", None]), rng.choice(["s1", "s2"]),
                            t=T + i / 100)


def test_merged_worker_reports_equal_one_recorder() -> None:
    single = StepRecorder()
    feed(single, 3, 3000)
    feed(single, 4, 3000)
    worker_a, worker_b = StepRecorder(), StepRecorder()
    feed(worker_a, 3, 3000)
    feed(worker_b, 4, 3000)
    master = StepRecorder()
    # Reports travel as JSON between Locust processes.
    master.merge(json.loads(json.dumps(worker_a.drain())))
    master.merge(json.loads(json.dumps(worker_b.drain())))
    assert worker_a.stats == {}
    assert master.to_dict() == single.to_dict()
    for step in ("CONNECT", "LIST", None):
        for phase in ("ramp", None):
            a, b = master.select(step, phase, "s2"), single.select(step, phase, "s2")
            assert (a.count, a.failures, a.percentile_ms(95)) == (
                b.count, b.failures, b.percentile_ms(95))


def test_select_filters_step_phase_instance() -> None:
    rec = StepRecorder()
    rec.on_request("IMAP", "LOGIN", 5.0, False, "ramp", "s1", t=T)
    rec.on_request("IMAP", "LOGIN", 7.0, True, "flood", "s1", t=T + 1)
    rec.on_request("IMAP", "LIST", 9.0, False, "flood", "s2", t=T + 2)
    assert rec.select("LOGIN").count == 2
    assert rec.select("LOGIN", "flood").failures == 1
    assert rec.select(None, "flood").count == 2
    assert rec.select(None, None, "s2").count == 1
    assert rec.phases() == ["flood", "ramp"] and rec.steps() == ["LIST", "LOGIN"]
    assert rec.duration() == pytest.approx(2.0)
    rec.start, rec.end = T - 1, T + 9
    assert rec.duration() == pytest.approx(10.0)


def test_steps_json_round_trip(tmp_path: Path) -> None:
    rec = StepRecorder()
    feed(rec, 5, 2000)
    rec.start, rec.end = T, T + 20
    path = rec.save(tmp_path)
    data = json.loads(path.read_text())
    entry = data["entries"][0]
    assert {"request_type", "step", "phase", "instance", "count", "failures", "histogram",
            "summary"} <= set(entry)
    back = StepRecorder.from_dict(data)
    assert (back.start, back.end) == (T, T + 20)
    assert back.to_dict()["entries"] == rec.to_dict()["entries"]
    with pytest.raises(ValueError, match="format"):
        StepRecorder().merge({"format": 99})


def test_counted_us_rounds_and_clamps_as_one_by_one() -> None:
    values = [0.0, 0.0004, 0.2, 0.2004, 0.1996, 1.5, 1e12, 0.2]
    expected: dict[int, int] = {}
    for v in values:
        expected[_to_us(v)] = expected.get(_to_us(v), 0) + 1
    assert dict(counted_us(values)) == expected == {1: 2, 200: 4, 1500: 1, 3_600_000_000: 1}
    assert dict(counted_us([])) == {}


def test_a_batch_records_the_same_histograms_as_one_request_at_a_time() -> None:
    rng = random.Random(3)
    values = [rng.lognormvariate(math.log(0.3), 0.6) for _ in range(3000)] + [0.0, 5e9]
    one_by_one, batched = StepRecorder(), StepRecorder()
    for v in values:
        one_by_one.on_request("IMAP", "LOGIN", v, False, None, "s1", t=T + 0.5)
    batched.on_batch("IMAP", "LOGIN", values, None, "s1", t=T + 0.5)
    assert batched.to_dict(include_pending_seconds=True) == one_by_one.to_dict(
        include_pending_seconds=True)
    stats = batched.stats[("IMAP", "LOGIN", None, "s1")]
    assert stats.count == len(values) and stats.histogram.get_min_value() == 1


def test_per_second_series() -> None:
    rec = StepRecorder()
    for i in range(10):
        rec.on_request("IMAP", "LOGIN", 10.0 + i, False, None, "s1", t=T + 0.05 * i)
    rec.on_request("IMAP", "LOGIN", 1.0, True, None, "s1", t=T + 1.2)
    rec.on_request("IMAP", "LOGIN", 3.0, False, None, "s1", t=T + 2.5)
    store = SeriesStore()
    # Only seconds that are over are emitted: T+2 is still open before T+2.9.
    assert rec.emit_per_second(store, before=T + 2.9) == 8
    rate = store.samples("step_rate_per_s")
    assert [(s.t, s.value, s.labels, s.instance) for s in rate] == [
        (T + 0.5, 10.0, {"step": "LOGIN"}, "s1"), (T + 1.5, 1.0, {"step": "LOGIN"}, "s1")]
    assert [s.value for s in store.samples("step_failures_per_s")] == [0.0, 1.0]
    p95 = store.samples("step_p95_ms")
    assert p95[0].value == pytest.approx(19.0, rel=1e-2)
    assert p95[1].value is None and p95[1].labels["why"] == "failures"
    assert rec.emit_per_second(store) == 4  # the rest at the end of the run


def test_locust_listener_maps_keyword_arguments() -> None:
    rec = StepRecorder()
    listener = locust_listener(rec, phase_of=lambda: "flood")
    listener(request_type="IMAP", name="CONNECT", response_time=12.5, response_length=0,
             exception=None, context={"instance": "slot2"}, start_time=T, url=None)
    listener(request_type="IMAP", name="CONNECT", response_time=None, response_length=0,
             exception=ConnectionError("refused"), context={})
    assert rec.select("CONNECT", "flood", "slot2").count == 1
    failed = rec.select("CONNECT", "flood", None)
    assert (failed.count, failed.failures) == (2, 1)


def test_locust_listener_keeps_imap_requests_only() -> None:
    rec = StepRecorder()
    listener = locust_listener(rec)
    listener(request_type="PACING", name="SCHEDULE_LAG", response_time=250.0, exception=None,
             context={})
    listener(request_type="IMAP", name="NOOP", response_time=1.0, exception=None, context={})
    assert rec.steps() == ["NOOP"] and rec.select().count == 1
