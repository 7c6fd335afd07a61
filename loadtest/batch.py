"""Step statistics handed to Locust and the gate in batches instead of one request event per step.

A Locust request event per IMAP step costs a Python call chain per listener (Locust's stats, the
gate's step recorder) for every reply. The :class:`StepBatcher` of an environment (one per
process, shared by every user) collects successful steps where they are produced and hands them
over at least every :data:`FLUSH_INTERVAL` seconds, and at every change of second (so that a
batch belongs to one second of Locust's per-second rates and the recorder's series):

- to Locust as one :class:`locust.stats.StatsEntry` delta per (request type, step), merged with
  ``StatsEntry.extend`` into the step's entry and the total (what the master does with workers'
  reports): the same counts, rates, response-time buckets, minimum, maximum and content length
  as one ``log_request`` per step;
- to listeners of :data:`BATCH_EVENT` (``environment.events.imap_request_batch``), such as the
  gate's step recorder (``loadtest.core.steps.locust_batch_listener``): every latency, for the
  HDR histograms.

Failures are not batched: each still fires ``environment.events.request`` at once, with its
failure class in the context, so Locust's failure rows, the gate's failure counts and anything
else listening see every one as before. Code that listens to IMAP successes on
``events.request`` must also listen to :data:`BATCH_EVENT`.
"""

from __future__ import annotations

import time
from typing import Any

from locust.event import EventHook
from locust.stats import StatsEntry, bucket_response_time

BATCH_EVENT = "imap_request_batch"
FLUSH_INTERVAL = 0.25  # seconds: Locust's stats and the web UI stay current to a quarter second


def batch_event(environment: Any) -> EventHook:
    """The environment's batch event, made on first use: listeners get keyword arguments
    ``request_type, name, instance, response_times`` (list of ms), ``response_length`` (sum),
    ``t`` (unix time of the batch's last request)."""
    hook = getattr(environment.events, BATCH_EVENT, None)
    if hook is None:
        hook = EventHook()
        setattr(environment.events, BATCH_EVENT, hook)
    return hook


class _Pending:
    __slots__ = ("times", "length")

    def __init__(self) -> None:
        self.times: list[float] = []
        self.length = 0


class StepBatcher:
    """Successful steps of one process, by (request type, step, instance), until flushed."""

    def __init__(self, environment: Any, interval: float = FLUSH_INTERVAL) -> None:
        self.environment = environment
        self.interval = interval
        self._pending: dict[tuple[str, str, str | None], _Pending] = {}
        self._second = 0  # int(unix time) of the pending batch
        self._due = 0.0  # monotonic time by which the pending batch is handed over
        self._first = 0.0  # unix time of the pending batch's first request
        self._last = 0.0

    def success(self, request_type: str, name: str, response_time_ms: float, length: int,
                instance: str | None) -> None:
        now = time.time()
        if int(now) != self._second or now >= self._due:
            self.flush()
            self._second = int(now)
            self._due = now + self.interval
            self._first = now
        self._last = now
        key = (request_type, name, instance)
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = _Pending()
        pending.times.append(response_time_ms)
        pending.length += length

    def flush(self) -> None:
        """Hand everything pending to Locust's stats and the batch event's listeners."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        stats = self.environment.stats
        hook = batch_event(self.environment)
        first, last = self._first, self._last
        merged: dict[tuple[str, str], tuple[list[float], int]] = {}
        for (request_type, name, instance), batch in pending.items():
            hook.fire(request_type=request_type, name=name, instance=instance,
                      response_times=batch.times, response_length=batch.length, t=last)
            times, length = merged.get((request_type, name), ([], 0))
            merged[(request_type, name)] = (times + batch.times, length + batch.length)
        for (request_type, name), (times, length) in merged.items():
            delta = stats_delta(stats, request_type, name, times, length, first, last)
            stats.get(name, request_type).extend(delta)
            stats.total.extend(delta)


def stats_delta(stats: Any, request_type: str, name: str, times: list[float], length: int,
                first: float, last: float) -> StatsEntry:
    """A Locust StatsEntry holding ``times`` as if each had been ``log()``-ed between unix times
    ``first`` and ``last`` of one second."""
    delta = StatsEntry(stats, name, request_type, use_response_times_cache=False)
    count = len(times)
    delta.num_requests = count
    delta.start_time = first
    delta.last_request_timestamp = last
    delta.num_reqs_per_sec = {int(last): count}
    # Locust's annotations say int; it keeps float milliseconds there itself (StatsEntry.log).
    delta.total_response_time = sum(times)  # type: ignore[assignment,arg-type]
    delta.min_response_time = min(times)  # type: ignore[assignment]
    delta.max_response_time = max(times)  # type: ignore[assignment]
    delta.total_content_length = length
    buckets: dict[int, int] = {}
    for value in times:
        key = bucket_response_time(value)
        buckets[key] = buckets.get(key, 0) + 1
    delta.response_times = buckets
    return delta


def batcher_of(environment: Any) -> StepBatcher:
    """The environment's batcher, made (with its flusher greenlet and stop hooks) on first use."""
    batcher = getattr(environment, "_cyrus_loadtest_batcher", None)
    if batcher is None:
        import gevent

        batcher = StepBatcher(environment)
        environment._cyrus_loadtest_batcher = batcher

        def flush_now(**_kwargs: Any) -> None:
            batcher.flush()

        def flush_periodically() -> None:
            while True:
                gevent.sleep(batcher.interval)
                batcher.flush()

        # Idle users leave nothing pending for long; the end of a test flushes before Locust's
        # final stats (test_stop fires once every user has stopped).
        flusher = gevent.spawn(flush_periodically)

        def stop(**_kwargs: Any) -> None:
            flusher.kill(block=False)
            batcher.flush()

        environment.events.test_stop.add_listener(flush_now)
        environment.events.quitting.add_listener(stop)
    return batcher


def attach_recorder(environment: Any, recorder: Any, phase_of: Any = None) -> None:
    """Feed a ``loadtest.core.steps.StepRecorder`` from both events: every request (failures,
    and successes not batched) and every batch of successes."""
    from loadtest.core.steps import locust_batch_listener, locust_listener

    environment.events.request.add_listener(locust_listener(recorder, phase_of))
    batch_event(environment).add_listener(locust_batch_listener(recorder, phase_of))
