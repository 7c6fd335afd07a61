"""Time series of collector samples and events: in memory for the web UI and the gate, flushed
to `series.jsonl` / `events.jsonl` in the run's artifacts folder.

Pure module apart from the file appends in `flush()`: no Locust, no gevent. Thread-safe, because
collectors may sample from OS threads so that a stalled gevent hub cannot slow the clock.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERIES_FILE = "series.jsonl"
EVENTS_FILE = "events.jsonl"


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # unix seconds
    signal: str
    value: float | None  # None marks a gap; labels["why"] says why
    instance: str | None = None
    labels: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"t": self.t, "signal": self.signal, "instance": self.instance,
                "value": self.value, "labels": self.labels}


@dataclass(slots=True)
class Event:
    """Something with a start and (usually) an end: a stall, a fault, a phase, a collector gap."""

    t: float
    kind: str  # stall | heartbeat_gap | fault | phase | collector_gap
    end: float | None = None
    instance: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        return None if self.end is None else self.end - self.t

    def to_json(self) -> dict[str, Any]:
        return {"t": self.t, "end": self.end, "kind": self.kind, "instance": self.instance,
                "detail": self.detail}


class SeriesStore:
    """All samples and events of one run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._samples: list[Sample] = []
        self._events: list[Event] = []
        self._flushed_samples = 0
        self._flushed_events: set[int] = set()  # ids of closed events already written

    # -- writing ---------------------------------------------------------------------------
    def add(self, signal: str, value: float | None, *, t: float | None = None,
            instance: str | None = None, **labels: Any) -> Sample:
        sample = Sample(time.time() if t is None else t, signal,
                        None if value is None else float(value), instance, labels)
        with self._lock:
            self._samples.append(sample)
        return sample

    def event(self, kind: str, *, t: float | None = None, end: float | None = None,
              instance: str | None = None, **detail: Any) -> Event:
        ev = Event(time.time() if t is None else t, kind, end, instance, detail)
        with self._lock:
            self._events.append(ev)
        return ev

    def close_event(self, ev: Event, end: float | None = None, **detail: Any) -> None:
        with self._lock:
            ev.end = time.time() if end is None else end
            ev.detail.update(detail)

    # -- reading ---------------------------------------------------------------------------
    def samples(self, signal: str | None = None, instance: str | None = None,
                since: float = 0.0) -> list[Sample]:
        with self._lock:
            snapshot = list(self._samples)
        return [s for s in snapshot
                if (signal is None or s.signal == signal)
                and (instance is None or s.instance == instance)
                and s.t >= since]

    def tail(self, cursor: int) -> tuple[list[Sample], int]:
        """Samples appended since the first ``cursor`` ones, and how many there are now. A cursor
        past the end (or negative: not from this store) starts again from 0. Copies only the
        new samples, so a poller following the store pays for what is new, not for the run."""
        with self._lock:
            total = len(self._samples)
            if cursor < 0 or cursor > total:
                cursor = 0
            return self._samples[cursor:], total

    def events(self, kind: str | None = None) -> list[Event]:
        with self._lock:
            return [e for e in self._events if kind is None or e.kind == kind]

    def signals(self) -> list[tuple[str, str | None]]:
        with self._lock:
            return sorted({(s.signal, s.instance) for s in self._samples},
                          key=lambda k: (k[0], k[1] or ""))

    # -- files -----------------------------------------------------------------------------
    def flush(self, folder: str | Path) -> None:
        """Append what is new since the last flush. Open events are written once they close
        (at the end of a run, `close_open_events` closes those still open, before the last
        flush)."""
        folder = Path(folder)
        with self._lock:
            new_samples = self._samples[self._flushed_samples:]
            self._flushed_samples = len(self._samples)
            closed = [e for e in self._events
                      if e.end is not None and id(e) not in self._flushed_events]
            self._flushed_events.update(id(e) for e in closed)
        _append_jsonl(folder / SERIES_FILE, (s.to_json() for s in new_samples))
        _append_jsonl(folder / EVENTS_FILE, (e.to_json() for e in closed))

    def discard_event(self, ev: Event) -> None:
        """Drop an event that is still open (so never written): a detector's false start."""
        with self._lock:
            if ev.end is None:
                self._events = [e for e in self._events if e is not ev]

    def close_open_events(self, end: float | None = None,
                          kinds: Iterable[str] | None = None) -> None:
        """At the end of a run: an event still open (a stall that never recovered) ends now,
        marked ``open_at_end``. ``kinds``: only events of these kinds (default: every kind)."""
        end = time.time() if end is None else end
        wanted = None if kinds is None else frozenset(kinds)
        with self._lock:
            for ev in self._events:
                if ev.end is None and (wanted is None or ev.kind in wanted):
                    ev.end = end
                    ev.detail.setdefault("open_at_end", True)

    @classmethod
    def load(cls, folder: str | Path) -> SeriesStore:
        """Read a run's series back (the offline gate and the report use this)."""
        folder = Path(folder)
        store = cls()
        for rec in _read_jsonl(folder / SERIES_FILE):
            store._samples.append(Sample(rec["t"], rec["signal"], rec["value"],
                                         rec.get("instance"), rec.get("labels") or {}))
        for rec in _read_jsonl(folder / EVENTS_FILE):
            store._events.append(Event(rec["t"], rec["kind"], rec.get("end"),
                                       rec.get("instance"), rec.get("detail") or {}))
        store._flushed_samples = len(store._samples)
        store._flushed_events = {id(e) for e in store._events}
        return store


def _append_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    lines = [json.dumps(r, separators=(",", ":")) for r in records]
    if not lines:
        path.touch(exist_ok=True)
        return
    with path.open("a") as fh:
        fh.write("\n".join(lines) + "\n")


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with path.open() as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except ValueError:
                # A run killed mid-write leaves at most one torn last line: skip it, keep the rest.
                if fh.readline():
                    raise ValueError(f"{path}:{lineno}: not a JSON line") from None
