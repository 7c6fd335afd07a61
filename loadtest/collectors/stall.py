"""Stall detection on probe results and master's heartbeat. Pure: no I/O, no clock of its own.

A master stall (the 2016 incident) is an interval in which new connections get no greeting
within a threshold, or time out, while an already logged-in session still answers. A heartbeat
gap is an interval in which master's stats file, rewritten at the end of every loop, stops
changing: the loop is not completing, whether or not clients have noticed yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One new-connection probe, as far as it has got.

    ``elapsed`` is seconds from ``start`` to the greeting, a failure or the timeout; None while
    the probe is still waiting. ``greeted`` is False for a timeout or a failure.
    """

    start: float
    elapsed: float | None
    greeted: bool


@dataclass(frozen=True, slots=True)
class HeldResult:
    """One NOOP on the held session: ``elapsed`` None when it failed or timed out."""

    start: float
    elapsed: float | None


@dataclass(slots=True)
class Stall:
    start: float
    end: float | None  # None: still going on
    probes: int  # new-connection probes that were late or failed in it
    timeouts: int
    held_noops: int = 0  # NOOPs on the held session answered within its threshold meanwhile
    held_failures: int = 0
    held_noop_max_ms: float | None = None
    details: dict[str, float] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        return None if self.end is None else self.end - self.start

    @property
    def held_session(self) -> str:
        """'answering', 'failing' (the whole server is down, not a master stall) or 'none'."""
        if self.held_noops:
            return "answering"
        return "failing" if self.held_failures else "none"


def find_stalls(probes: Sequence[ProbeResult], held: Sequence[HeldResult], *, now: float,
                greeting_threshold: float, held_threshold: float) -> list[Stall]:
    """Stalls among ``probes`` (any order), judged at time ``now``.

    A probe is late when its greeting took longer than the threshold, it failed, or it is still
    waiting past the threshold. Consecutive late probes (by start time) form one stall; it starts
    at the first late probe's start and ends when the last of them got its answer (so a 3 s
    freeze that delays every probe started in it to the same instant measures 3 s, not 3 s minus
    the threshold). A stall is over once a probe started after it was greeted in time and all its
    late probes have finished. Stalls during which the held session failed every NOOP are kept,
    with ``held_session == 'failing'``: the caller decides (that is an outage, not a master stall).
    """
    ordered = sorted(probes, key=lambda p: p.start)
    stalls: list[Stall] = []
    current: Stall | None = None
    pending = 0  # late probes of ``current`` still waiting
    last_answer = 0.0

    def close(stall: Stall, closed: bool) -> None:
        stall.end = last_answer if closed and not pending else None

    for probe in ordered:
        if probe.elapsed is None:
            if now - probe.start <= greeting_threshold:
                # Undecided: it may still be on time. Nothing after it can close a stall.
                if current is not None:
                    close(current, closed=False)
                    stalls.append(current)
                    current = None
                break
            late, done = True, False
        else:
            late, done = (not probe.greeted or probe.elapsed > greeting_threshold), True
        if late:
            if current is None:
                current = Stall(start=probe.start, end=None, probes=0, timeouts=0)
                pending, last_answer = 0, probe.start
            current.probes += 1
            if done:
                last_answer = max(last_answer, probe.start + probe.elapsed)  # type: ignore[operator]
                current.timeouts += 0 if probe.greeted else 1
            else:
                pending += 1
        elif current is not None:
            close(current, closed=True)
            stalls.append(current)
            current = None
    else:
        if current is not None:
            close(current, closed=False)
            stalls.append(current)

    for stall in stalls:
        _judge_held(stall, held, now, held_threshold)
    return stalls


def _judge_held(stall: Stall, held: Sequence[HeldResult], now: float, threshold: float) -> None:
    end = now if stall.end is None else stall.end
    worst: float | None = None
    for noop in held:
        if not stall.start <= noop.start <= end:
            continue
        if noop.elapsed is not None and noop.elapsed <= threshold:
            stall.held_noops += 1
            worst = noop.elapsed if worst is None else max(worst, noop.elapsed)
        else:
            stall.held_failures += 1
    stall.held_noop_max_ms = None if worst is None else worst * 1000.0


@dataclass(slots=True)
class HeartbeatGap:
    start: float  # the stop's estimated start: last write + half the update interval
    end: float | None  # the first write after the gap
    last_update: float
    gap: float | None = None  # between the two writes, when known

    @property
    def stall_s(self) -> float | None:
        """The estimated stop: ``end - start``, i.e. the gap between writes less half the
        interval (see :class:`HeartbeatTracker`)."""
        return None if self.end is None else self.end - self.start


class HeartbeatTracker:
    """Follows master's last-write timestamp, one observation per sample.

    ``observe`` returns the gap that has just opened or closed (or None). A gap opens when no new
    write has appeared for longer than ``threshold`` seconds; it closes at the next write. Only
    the write times count, never when we looked: master writes once per ``update_interval``, at
    the first pass of its loop after the interval. After a stop that pass comes at once when a
    child's message or a connection wakes master, else when the pselect timeout it had left at
    the stop runs out (the kernel restarts the call with the time remaining; measured on an idle
    Cyrus 3.6 master: a 3 s stop left 4.000 s between writes at six phases). Either way a stop
    of D seconds leaves a gap G between writes in [D, D + interval].
    The stop's length is estimated as G - interval / 2 (within +- interval / 2) and
    the gap starts at last write + interval / 2: a 3 s freeze that left 3.4 s between writes
    measures 2.9 s. The live band, the event, the gate and the report all use that one interval.
    """

    def __init__(self, *, update_interval: float, threshold: float) -> None:
        if threshold <= update_interval:
            raise ValueError(f"heartbeat threshold {threshold} s must exceed the update "
                             f"interval {update_interval} s")
        self.update_interval = update_interval
        self.threshold = threshold
        self.last_update: float | None = None
        self.open: HeartbeatGap | None = None

    def age(self, now: float) -> float | None:
        return None if self.last_update is None else max(0.0, now - self.last_update)

    def observe(self, now: float, last_update: float | None) -> HeartbeatGap | None:
        changed = last_update is not None and (self.last_update is None
                                               or last_update > self.last_update)
        previous = self.last_update
        if changed:
            self.last_update = last_update
        if self.open is not None and changed:
            gap = self.open
            gap.end = last_update
            gap.gap = last_update - gap.last_update  # type: ignore[operator]
            self.open = None
            return gap
        if self.open is None and not changed and previous is not None \
                and now - previous > self.threshold:
            self.open = HeartbeatGap(start=self._stop_start(previous), end=None,
                                     last_update=previous)
            return self.open
        if self.open is None and changed and previous is not None \
                and last_update - previous > self.threshold:  # type: ignore[operator]
            # The whole gap fell between two samples: report it opened and closed at once.
            return HeartbeatGap(start=self._stop_start(previous), end=last_update,
                                last_update=previous, gap=last_update - previous)  # type: ignore[operator]
        return None

    def _stop_start(self, last_write: float) -> float:
        return last_write + self.update_interval / 2.0
