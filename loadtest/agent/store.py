"""The agent's series: a SeriesStore that keeps only the last few minutes (the agent runs for
days), with cursors that stay valid across trimming, plus the two views it serves: Prometheus
text (latest value of every series) and the JSON series stream for the load side.

No Locust, no gevent, no sockets: tested on literal samples.
"""

from __future__ import annotations

import math
import time
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from loadtest.core.series import Event, Sample, SeriesStore

KEEP_S = 600.0  # history a load side may still fetch after a pause
MAX_BATCH = 20000  # samples per /series answer; the client asks again for the rest
METRIC_PREFIX = "cyrus_agent_"
# Labels that describe one sample, not the series (they would split it into many).
SAMPLE_ONLY_LABELS = ("why", "outcome", "source", "dir")


class RingStore(SeriesStore):
    """A SeriesStore trimmed to the last ``keep_s`` seconds. ``cursor`` values count every
    sample ever added, so a client's cursor survives trimming (a cursor older than what is
    kept resumes at the oldest sample kept)."""

    def __init__(self, instance: str, keep_s: float = KEEP_S) -> None:
        super().__init__()
        self.instance = instance
        self.keep_s = keep_s
        self.dropped = 0
        self._event_ids: dict[int, int] = {}
        self._next_event_id = 0
        self._adds = 0

    def add(self, signal: str, value: float | None, *, t: float | None = None,
            instance: str | None = None, **labels: Any) -> Sample:
        # The agent watches one Cyrus host: host-wide figures belong to its instance, and the
        # machine collector's "generator" is the agent itself.
        if signal == "generator_cpu_percent":
            signal = "agent_cpu_percent"
        sample = super().add(signal, value, t=t, instance=instance or self.instance, **labels)
        self._adds += 1
        if self._adds % 1000 == 0:
            self.trim(time.time() - self.keep_s)
        return sample

    def event(self, kind: str, *, t: float | None = None, end: float | None = None,
              instance: str | None = None, **detail: Any) -> Event:
        ev = super().event(kind, t=t, end=end, instance=instance or self.instance, **detail)
        with self._lock:
            self._event_ids[id(ev)] = self._next_event_id
            self._next_event_id += 1
        return ev

    def trim(self, before: float) -> None:
        """Forget samples older than ``before`` and events that ended before it."""
        with self._lock:
            keep_from = 0
            while keep_from < len(self._samples) and self._samples[keep_from].t < before:
                keep_from += 1
            self.dropped += keep_from
            del self._samples[:keep_from]
            kept = [e for e in self._events if e.end is None or e.end >= before]
            for ev in self._events:
                if ev.end is not None and ev.end < before:
                    self._event_ids.pop(id(ev), None)
            self._events = kept
            self._flushed_samples = len(self._samples)

    def since(self, cursor: int | None, limit: int = MAX_BATCH) -> tuple[list[Sample], int]:
        """Samples from absolute ``cursor`` on (None: none, just the current cursor), at most
        ``limit``, and the cursor to ask with next."""
        with self._lock:
            end = self.dropped + len(self._samples)
            if cursor is None:
                return [], end
            start = min(max(cursor, self.dropped), end)
            batch = self._samples[start - self.dropped:start - self.dropped + limit]
            return batch, start + len(batch)

    def events_since(self, t: float) -> list[dict[str, Any]]:
        """Events open, or started or ended at/after ``t``, each with a stable ``id``."""
        with self._lock:
            return [{"id": self._event_ids.get(id(e)), **e.to_json()} for e in self._events
                    if e.end is None or e.end >= t or e.t >= t]

    def open_gaps(self) -> list[Event]:
        with self._lock:
            return [e for e in self._events if e.kind == "collector_gap" and e.end is None]


def latest_values(samples: list[Sample]) -> dict[tuple[str, str | None, tuple[tuple[str, str], ...]],
                                                 float | None]:
    """The newest value of every series (signal, instance, labels without per-sample ones)."""
    latest: dict[tuple[str, str | None, tuple[tuple[str, str], ...]], float | None] = {}
    for s in samples:  # in time order
        labels = tuple(sorted((k, str(v)) for k, v in s.labels.items()
                              if k not in SAMPLE_ONLY_LABELS))
        latest[(s.signal, s.instance, labels)] = s.value
    return latest


def prometheus_text(store: RingStore, window_s: float, now: float | None = None) -> bytes:
    """Prometheus text exposition of every series sampled in the last ``window_s`` seconds
    (a gap, value null, is left out), plus ``cyrus_agent_collector_gap`` for open gaps."""
    now = time.time() if now is None else now
    latest = latest_values(store.samples(since=now - window_s))
    gaps = store.open_gaps()

    class _View:
        def collect(self) -> Any:
            families: dict[str, GaugeMetricFamily] = {}
            label_names: dict[str, list[str]] = {}
            rows: dict[str, list[tuple[dict[str, str], float]]] = {}
            for (signal, instance, labels), value in sorted(
                    latest.items(), key=lambda kv: (kv[0][0], kv[0][1] or "", kv[0][2])):
                if value is None or math.isnan(value):
                    continue
                row = {"instance": instance or "", **dict(labels)}
                rows.setdefault(signal, []).append((row, value))
            for signal, entries in rows.items():
                names = sorted({k for row, _ in entries for k in row})
                label_names[signal] = names
                family = GaugeMetricFamily(METRIC_PREFIX + signal,
                                           f"cyrus-loadtest collector signal {signal}",
                                           labels=names)
                for row, value in entries:
                    family.add_metric([row.get(n, "") for n in names], value)
                families[signal] = family
            yield from families.values()
            gap = GaugeMetricFamily(METRIC_PREFIX + "collector_gap",
                                    "1 while a collector cannot read its source",
                                    labels=["instance", "collector", "why"])
            for ev in gaps:
                gap.add_metric([ev.instance or "", str(ev.detail.get("collector", "")),
                                str(ev.detail.get("why", ""))], 1.0)
            yield gap
            yield GaugeMetricFamily(METRIC_PREFIX + "up", "the agent answers", value=1.0)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_View())
    return generate_latest(registry)


def series_payload(store: RingStore, cursor: int | None, events_since: float | None,
                   instance: str, now: float | None = None) -> dict[str, Any]:
    """The /series answer: agent time, samples after ``cursor`` and recent events."""
    samples, next_cursor = store.since(cursor)
    now = time.time() if now is None else now
    return {"now": now, "instance": instance, "cursor": next_cursor,
            "samples": [s.to_json() for s in samples],
            "events": store.events_since(now - 60.0 if events_since is None else events_since)}
