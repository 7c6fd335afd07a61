"""Per-step request statistics the gate can trust: counts, failures and an HDR latency histogram
per (request type, step, phase, instance), mergeable across Locust workers, saved as `steps.json`.

Pure module: no Locust, no gevent. The plugin attaches `StepRecorder.on_request` to
`environment.events.request` (see `locust_listener`).

How failed requests count in latency percentiles (docs/gate.md, "Failed requests"): the
histogram holds the response times of successful requests only, and every failed request counts
as slower than any success (+infinity). The p-th percentile is the latency within which p % of
*all* requests succeeded; when more than (100 - p) % failed it is infinite and a `max` rule on it
fails. A server that refuses instantly therefore cannot make latency look better. `max_ms` is
infinite as soon as one request failed.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from loadtest.paths import atomic_write

REQUEST_TYPE = "IMAP"  # Locust request_type of every timed IMAP step (users fire it, the recorder keeps it)

STEPS_FILE = "steps.json"
STEPS_FORMAT = 1  # bumped when the layout of steps.json changes

# Latencies are recorded in microseconds, 1 µs .. 1 hour, 3 significant figures (0.1 % error).
_LOWEST_US = 1
_HIGHEST_US = 3_600_000_000
_FIGURES = 3
# Per-second buckets only feed the report's plots: 2 figures (1 %) keep them small.
_SECOND_FIGURES = 2

# Per-second series the recorder emits into a SeriesStore (labels {"step": name}).
STEP_RATE_SIGNAL = "step_rate_per_s"  # requests that ended in that second (successes + failures)
STEP_FAILURES_SIGNAL = "step_failures_per_s"
STEP_P50_SIGNAL = "step_p50_ms"  # same failure rule as steps.json: null when p50 is +infinity
STEP_P95_SIGNAL = "step_p95_ms"


def _new_histogram(figures: int = _FIGURES) -> HdrHistogram:
    return HdrHistogram(_LOWEST_US, _HIGHEST_US, figures)


def _clamp_us(value_us: int) -> int:
    return min(_HIGHEST_US, max(_LOWEST_US, value_us))


def _to_us(response_time_ms: float) -> int:
    return _clamp_us(round(response_time_ms * 1000.0))


def counted_us(response_times_ms: list[float]) -> dict[int, int]:
    """``response_times_ms`` as ``_to_us`` records each (whole microseconds, clamped to the
    histogram's range), counted: {microseconds: how many}. A batch of a few thousand loopback
    latencies has a few hundred distinct values, and an HDR histogram update in pure Python
    costs a microsecond or two: one update per distinct value instead of one per request."""
    counts = Counter([round(value * 1000.0) for value in response_times_ms])
    if counts and (min(counts) < _LOWEST_US or max(counts) > _HIGHEST_US):
        clamped: Counter[int] = Counter()
        for value_us, count in counts.items():
            clamped[_clamp_us(value_us)] += count
        return clamped
    return counts


@dataclass
class StepStats:
    """Requests of one step (or a merge of several keys): successes in a histogram, failures
    counted apart and treated as +infinity latency."""

    count: int = 0
    failures: int = 0
    first_t: float | None = None  # end time of the first / last request, unix seconds
    last_t: float | None = None
    histogram: HdrHistogram = field(default_factory=_new_histogram)

    @property
    def successes(self) -> int:
        return self.count - self.failures

    @property
    def failure_ratio(self) -> float | None:
        return None if self.count == 0 else self.failures / self.count

    def record(self, response_time_ms: float, failed: bool, t: float) -> None:
        self.count += 1
        if failed:
            self.failures += 1
        else:
            self.histogram.record_value(_to_us(response_time_ms))
        self.first_t = t if self.first_t is None else min(self.first_t, t)
        self.last_t = t if self.last_t is None else max(self.last_t, t)

    def record_counted(self, counts_us: dict[int, int], count: int, t: float) -> None:
        """``count`` successes ending at ``t``, their latencies as :func:`counted_us` gives."""
        record = self.histogram.record_value
        for value_us, times in counts_us.items():
            record(value_us, times)
        self.count += count
        self.first_t = t if self.first_t is None else min(self.first_t, t)
        self.last_t = t if self.last_t is None else max(self.last_t, t)

    def add(self, other: StepStats) -> None:
        self.count += other.count
        self.failures += other.failures
        if other.histogram.get_total_count():
            self.histogram.add(other.histogram)
        for t in (other.first_t, other.last_t):
            if t is not None:
                self.first_t = t if self.first_t is None else min(self.first_t, t)
                self.last_t = t if self.last_t is None else max(self.last_t, t)

    def percentile_ms(self, percentile: float) -> float | None:
        """Latency within which `percentile` % of all requests succeeded; +inf when too many
        failed, None when there were no requests."""
        if self.count == 0:
            return None
        rank = max(1, math.ceil(percentile / 100.0 * self.count))
        if rank > self.successes:
            return math.inf
        # hdrh picks the value at int(p/100 * total + 0.5): aim at exactly `rank`.
        value_us = self.histogram.get_value_at_percentile(100.0 * rank / self.successes)
        return value_us / 1000.0

    def max_ms(self) -> float | None:
        if self.count == 0:
            return None
        if self.failures:
            return math.inf
        return self.histogram.get_max_value() / 1000.0

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "failures": self.failures,
                "first_t": self.first_t, "last_t": self.last_t,
                "histogram": self.histogram.encode().decode("ascii")
                if self.histogram.get_total_count() else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any], figures: int = _FIGURES) -> StepStats:
        stats = cls(int(data["count"]), int(data["failures"]), data.get("first_t"),
                    data.get("last_t"), _new_histogram(figures))
        if data.get("histogram"):
            stats.histogram.decode_and_add(data["histogram"])
        return stats

    def summary(self) -> dict[str, Any]:
        """Readable figures for humans and the report (inf written as the string "inf")."""
        return {"count": self.count, "failures": self.failures,
                "failure_ratio": self.failure_ratio,
                **{f"p{p}_ms": json_number(self.percentile_ms(p)) for p in (50, 95, 99)},
                "max_ms": json_number(self.max_ms())}


def json_number(value: float | None) -> float | str | None:
    """JSON has no infinity: write it as the string "inf"."""
    if value is not None and math.isinf(value):
        return "inf"
    return value


Key = tuple[str, str, str | None, str | None]  # request_type, step, phase, instance


class StepRecorder:
    """Collects every request of a run. Feed it with `on_request`; not thread-safe by itself
    (Locust fires request events from greenlets of one hub)."""

    def __init__(self, *, per_second: bool = True) -> None:
        self.stats: dict[Key, StepStats] = {}
        self.start: float | None = None  # the run's start and end, set by the plugin
        self.end: float | None = None
        self.per_second = per_second
        # second (int unix time) -> (request_type, step, instance) -> stats, until emitted
        self._seconds: dict[int, dict[tuple[str, str, str | None], StepStats]] = {}

    # -- recording -------------------------------------------------------------------------
    def on_request(self, request_type: str, name: str, response_time_ms: float, failed: bool,
                   phase: str | None = None, instance: str | None = None,
                   t: float | None = None) -> None:
        t = time.time() if t is None else t
        for stats in self._entries(request_type, name, phase, instance, t):
            stats.record(response_time_ms, failed, t)

    def on_batch(self, request_type: str, name: str, response_times_ms: list[float],
                 phase: str | None = None, instance: str | None = None,
                 t: float | None = None) -> None:
        """Successful requests that ended within one second (at ``t``), recorded as if each
        had come through ``on_request`` (a batch from ``loadtest.batch``)."""
        if not response_times_ms:
            return
        t = time.time() if t is None else t
        counts_us = counted_us(response_times_ms)  # once for the run's and the second's entry
        for stats in self._entries(request_type, name, phase, instance, t):
            stats.record_counted(counts_us, len(response_times_ms), t)

    def _entries(self, request_type: str, name: str, phase: str | None, instance: str | None,
                 t: float) -> list[StepStats]:
        """The run's entry for this step (and its second's entry when per_second), made on
        first use: where on_request and on_batch record."""
        key = (request_type, name, phase, instance)
        stats = self.stats.get(key)
        if stats is None:
            stats = self.stats[key] = StepStats()
        if not self.per_second:
            return [stats]
        bucket = self._seconds.setdefault(int(t), {})
        skey = (request_type, name, instance)
        second = bucket.get(skey)
        if second is None:
            second = bucket[skey] = StepStats(histogram=_new_histogram(_SECOND_FIGURES))
        return [stats, second]

    # -- reading ---------------------------------------------------------------------------
    def select(self, step: str | None = None, phase: str | None = None,
               instance: str | None = None) -> StepStats:
        """Merged statistics of the keys that match (None matches everything)."""
        merged = StepStats()
        for (_rtype, name, key_phase, key_instance), stats in self.stats.items():
            if ((step is None or name == step) and (phase is None or key_phase == phase)
                    and (instance is None or key_instance == instance)):
                merged.add(stats)
        return merged

    def steps(self) -> list[str]:
        return sorted({k[1] for k in self.stats})

    def phases(self) -> list[str]:
        return sorted({k[2] for k in self.stats if k[2] is not None})

    def duration(self) -> float | None:
        """The run's length: start..end when the plugin set them, else first..last request."""
        start, end = self.start, self.end
        if start is None or end is None:
            firsts = [s.first_t for s in self.stats.values() if s.first_t is not None]
            lasts = [s.last_t for s in self.stats.values() if s.last_t is not None]
            start = min(firsts) if start is None and firsts else start
            end = max(lasts) if end is None and lasts else end
        if start is None or end is None:
            return None
        return max(0.0, end - start)

    # -- per-second series for the report --------------------------------------------------
    def emit_per_second(self, store: Any, before: float | None = None) -> int:
        """Move finished seconds (all whole seconds before `before`, default: all) into `store`
        (a loadtest.core.series.SeriesStore) as step_rate_per_s, step_failures_per_s,
        step_p50_ms and step_p95_ms with labels {"step": name}. Returns the samples written.

        The sample time is the middle of its second. With distributed runs call it on the
        master with `before` a few seconds in the past, so that late worker reports still merge.
        """
        written = 0
        for second in sorted(self._seconds):
            if before is not None and second + 1 > before:
                break
            for (_rtype, step, instance), stats in sorted(
                    self._seconds.pop(second).items(), key=lambda kv: (kv[0][1], kv[0][2] or "")):
                t = second + 0.5
                store.add(STEP_RATE_SIGNAL, stats.count, t=t, instance=instance, step=step)
                store.add(STEP_FAILURES_SIGNAL, stats.failures, t=t, instance=instance, step=step)
                for signal, p in ((STEP_P50_SIGNAL, 50), (STEP_P95_SIGNAL, 95)):
                    value = stats.percentile_ms(p)
                    if value is None or math.isinf(value):
                        store.add(signal, None, t=t, instance=instance, step=step,
                                  why="failures")
                    else:
                        store.add(signal, value, t=t, instance=instance, step=step)
                written += 4
        return written

    # -- serialization and merging ---------------------------------------------------------
    def to_dict(self, *, include_pending_seconds: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": STEPS_FORMAT, "start": self.start, "end": self.end,
            "failed_latency": "failures count as +infinity in percentiles (docs/gate.md)",
            "entries": [
                {"request_type": rt, "step": step, "phase": phase, "instance": instance,
                 **stats.to_dict(), "summary": stats.summary()}
                for (rt, step, phase, instance), stats in sorted(self.stats.items(), key=_key_order)
            ],
        }
        if include_pending_seconds:
            data["seconds"] = [
                {"second": second, "request_type": rt, "step": step, "instance": instance,
                 **stats.to_dict()}
                for second, bucket in sorted(self._seconds.items())
                for (rt, step, instance), stats in bucket.items()
            ]
        return data

    def merge(self, data: dict[str, Any]) -> None:
        """Add another recorder's `to_dict()` (a worker's report) into this one."""
        if data.get("format") != STEPS_FORMAT:
            raise ValueError(f"step statistics format {data.get('format')!r}, "
                             f"expected {STEPS_FORMAT}")
        for entry in data.get("entries", []):
            key = (entry["request_type"], entry["step"], entry.get("phase"), entry.get("instance"))
            incoming = StepStats.from_dict(entry)
            if key in self.stats:
                self.stats[key].add(incoming)
            else:
                self.stats[key] = incoming
        for rec in data.get("seconds", []):
            bucket = self._seconds.setdefault(int(rec["second"]), {})
            skey = (rec["request_type"], rec["step"], rec.get("instance"))
            incoming = StepStats.from_dict(rec, _SECOND_FIGURES)
            if skey in bucket:
                bucket[skey].add(incoming)
            else:
                bucket[skey] = incoming
        for name, pick in (("start", min), ("end", max)):
            theirs = data.get(name)
            if theirs is not None:
                ours = getattr(self, name)
                setattr(self, name, theirs if ours is None else pick(ours, theirs))

    def drain(self) -> dict[str, Any]:
        """A worker's report: everything recorded since the last drain, then forget it."""
        data = self.to_dict()
        self.stats.clear()
        self._seconds.clear()
        return data

    def save(self, folder: str | Path) -> Path:
        """Write steps.json (atomically: a reader never sees half a file)."""
        return atomic_write(Path(folder) / STEPS_FILE, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepRecorder:
        recorder = cls(per_second=False)
        recorder.merge(data)
        return recorder


def _key_order(item: tuple[Key, StepStats]) -> tuple[str, ...]:
    rt, step, phase, instance = item[0]
    return (rt, step, phase or "", instance or "")


def locust_listener(recorder: StepRecorder, phase_of: Any = None) -> Any:
    """A function to attach to `environment.events.request`: maps Locust's keyword arguments
    onto `on_request`. Only IMAP steps count (request type "IMAP"): other rows, such as PACING
    (schedule lag), are not requests to the server. `phase_of()` returns the current phase name
    (or None); the instance comes from `context["instance"]` (docs/internals.md)."""

    def listener(request_type: str, name: str, response_time: float | None,
                 exception: BaseException | None = None, context: dict[str, Any] | None = None,
                 **_kwargs: Any) -> None:
        if request_type != REQUEST_TYPE:
            return
        instance = (context or {}).get("instance")
        recorder.on_request(request_type, name, response_time or 0.0, exception is not None,
                            phase_of() if phase_of else None, instance)

    return listener


def locust_batch_listener(recorder: StepRecorder, phase_of: Any = None) -> Any:
    """The same as `locust_listener` for batches of successful steps (the
    ``imap_request_batch`` event of ``loadtest.batch``)."""

    def listener(request_type: str, name: str, response_times: list[float],
                 instance: str | None = None, t: float | None = None, **_kwargs: Any) -> None:
        if request_type != REQUEST_TYPE:
            return
        recorder.on_batch(request_type, name, response_times, phase_of() if phase_of else None,
                          instance, t)

    return listener
