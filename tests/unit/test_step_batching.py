"""Successes handed over in batches (loadtest.batch) leave Locust's stats and the gate's step
recorder as one request event per step would: the same counts, failures per class, response-time
buckets, minimum, maximum, content length, and every latency in the HDR histograms."""

from __future__ import annotations

import random

import pytest
from locust.env import Environment
from locust.event import Events

from loadtest.batch import StepBatcher, attach_recorder, batch_event
from loadtest.core.steps import REQUEST_TYPE, StepRecorder
from loadtest.imap import failures as f
from loadtest.imap.failures import StepFailure


def _environment() -> tuple[Environment, StepRecorder]:
    environment = Environment(events=Events())
    environment.create_local_runner()
    recorder = StepRecorder()
    attach_recorder(environment, recorder)
    return environment, recorder


def _steps(seed: int) -> list[tuple[str, float, int, str | None, str | None]]:
    """(step, ms, length, failure class or None, instance): a churn-like mix with failures."""
    rng = random.Random(seed)
    out = []
    for _ in range(3000):
        step = rng.choice((f.CONNECT, f.LOGIN, f.LIST, f.LOGOUT))
        failure = rng.choice((None,) * 20 + (f.FAILURE_CLASSES[0], f.FAILURE_CLASSES[1]))
        ms = rng.choice((rng.uniform(0.05, 3.0), rng.uniform(3, 400), rng.uniform(400, 20000)))
        out.append((step, ms, rng.randint(10, 900), failure, rng.choice(("slot1", "slot2", None))))
    return out


def _fire(environment: Environment, step: str, ms: float, length: int, failure: str | None,
          instance: str | None) -> None:
    context = {"instance": instance}
    if failure is not None:
        context["failure_class"] = failure
    environment.events.request.fire(
        request_type=REQUEST_TYPE, name=step, response_time=ms,
        response_length=0 if failure else length,
        exception=StepFailure(failure, step) if failure else None, context=context)


@pytest.mark.parametrize("interval", [0.0, 0.25, 1000.0])
def test_batched_and_per_step_reporting_agree(interval: float) -> None:
    per_step, per_step_recorder = _environment()
    batched, batched_recorder = _environment()
    batcher = StepBatcher(batched, interval=interval)
    for step, ms, length, failure, instance in _steps(7):
        _fire(per_step, step, ms, length, failure, instance)
        if failure is None:
            batcher.success(REQUEST_TYPE, step, ms, length, instance)
        else:
            _fire(batched, step, ms, length, failure, instance)
    batcher.flush()

    for expected, got in ((per_step.stats.entries[k], batched.stats.entries[k])
                          for k in per_step.stats.entries):
        assert (got.num_requests, got.num_failures) == (expected.num_requests, expected.num_failures)
        assert got.total_response_time == pytest.approx(expected.total_response_time)
        assert (got.min_response_time, got.max_response_time) == (
            expected.min_response_time, expected.max_response_time)
        assert dict(got.response_times) == dict(expected.response_times)
        assert got.total_content_length == expected.total_content_length
        assert sum(got.num_reqs_per_sec.values()) == sum(expected.num_reqs_per_sec.values())
    assert set(batched.stats.entries) == set(per_step.stats.entries)
    assert batched.stats.total.num_requests == per_step.stats.total.num_requests
    assert batched.stats.total.num_failures == per_step.stats.total.num_failures
    assert dict(batched.stats.total.response_times) == dict(per_step.stats.total.response_times)
    # Failure rows: one per (step, class), with the same occurrences.
    assert {k: e.occurrences for k, e in batched.stats.errors.items()} == {
        k: e.occurrences for k, e in per_step.stats.errors.items()}
    assert len(batched.stats.errors) >= 8

    # steps.json: counts, failures and the HDR histograms per (step, phase, instance) agree.
    def entries(recorder: StepRecorder) -> dict:
        return {(e["step"], e["instance"]): (e["count"], e["failures"], e["summary"])
                for e in recorder.to_dict(include_pending_seconds=False)["entries"]}

    assert entries(batched_recorder) == entries(per_step_recorder)
    assert sum(s.count for s in batched_recorder.stats.values()) == 3000


def test_pacing_lag_is_batched_but_not_recorded_as_a_step() -> None:
    environment, recorder = _environment()
    batcher = StepBatcher(environment)
    batcher.success("PACING", "SCHEDULE_LAG", 12.0, 0, None)
    batcher.flush()
    assert environment.stats.entries[("SCHEDULE_LAG", "PACING")].num_requests == 1
    assert recorder.stats == {}


def test_batch_listeners_get_every_latency_and_an_empty_flush_fires_nothing() -> None:
    environment = Environment(events=Events())
    environment.create_local_runner()
    got = []
    batch_event(environment).add_listener(lambda **kw: got.append(kw))
    batcher = StepBatcher(environment, interval=1000.0)
    batcher.flush()
    assert got == []
    for ms in (1.0, 2.0, 3.0):
        batcher.success(REQUEST_TYPE, f.LOGIN, ms, 5, "slot1")
    batcher.flush()
    assert len(got) == 1 and got[0]["response_times"] == [1.0, 2.0, 3.0]
    assert got[0]["response_length"] == 15 and got[0]["instance"] == "slot1"
