"""Stall detection and heartbeat gaps on synthetic series."""

from __future__ import annotations

import pytest

from loadtest.collectors.stall import (
    HeartbeatTracker,
    HeldResult,
    ProbeResult,
    find_stalls,
)

RATE = 0.25  # 4 probes per second


def probes_with_freeze(freeze_start: float, freeze_end: float, until: float,
                       fast: float = 0.01) -> list[ProbeResult]:
    """Every probe started during the freeze is greeted only when it ends (as with -U 1)."""
    out = []
    t = 0.0
    while t < until:
        if freeze_start <= t < freeze_end:
            out.append(ProbeResult(t, freeze_end - t + fast, True))
        else:
            out.append(ProbeResult(t, fast, True))
        t += RATE
    return out


def held_noops(until: float, latency: float | None = 0.002) -> list[HeldResult]:
    return [HeldResult(i * RATE, latency) for i in range(int(until / RATE))]


def test_freeze_measures_its_own_length_not_minus_the_threshold() -> None:
    probes = probes_with_freeze(10.0, 13.0, until=20.0)
    stalls = find_stalls(probes, held_noops(20.0), now=20.0, greeting_threshold=1.0,
                         held_threshold=1.0)
    assert len(stalls) == 1
    stall = stalls[0]
    assert stall.start == pytest.approx(10.0)
    assert stall.end == pytest.approx(13.01)
    assert stall.duration == pytest.approx(3.01)
    assert stall.held_session == "answering"
    assert stall.held_noop_max_ms == pytest.approx(2.0)
    assert stall.probes == 9  # started at 10.0 ... 12.0: later ones were greeted within 1 s
    assert stall.timeouts == 0


def test_no_stall_when_every_greeting_is_fast() -> None:
    probes = probes_with_freeze(0, 0, until=10.0)
    assert find_stalls(probes, held_noops(10.0), now=10.0, greeting_threshold=1.0,
                       held_threshold=1.0) == []


def test_ongoing_stall_has_no_end_and_counts_waiting_probes() -> None:
    # Probes since t=5 still waiting at now=8: the stall is open.
    probes = [ProbeResult(i * RATE, 0.01, True) for i in range(20)]
    probes += [ProbeResult(5.0 + i * RATE, None, False) for i in range(12)]
    stalls = find_stalls(probes, held_noops(8.0), now=8.0, greeting_threshold=1.0,
                         held_threshold=1.0)
    assert len(stalls) == 1
    assert stalls[0].start == 5.0
    assert stalls[0].end is None
    assert stalls[0].probes == 8  # waiting longer than 1 s: started 5.0 .. 6.75


def test_young_waiting_probe_is_undecided() -> None:
    probes = [ProbeResult(0.0, 0.01, True), ProbeResult(0.25, None, False)]
    assert find_stalls(probes, [], now=0.5, greeting_threshold=1.0, held_threshold=1.0) == []


def test_timeouts_and_refusals_are_late_and_a_gap_between_splits_stalls() -> None:
    probes = [ProbeResult(0.0, 0.01, True),
              ProbeResult(1.0, 5.0, False),  # greeting timeout (5 s budget)
              ProbeResult(1.25, 0.001, False),  # refused at once
              ProbeResult(6.5, 0.01, True),
              ProbeResult(7.0, 2.0, True),  # slow greeting
              ProbeResult(9.5, 0.01, True)]
    stalls = find_stalls(probes, held_noops(10.0), now=10.0, greeting_threshold=1.0,
                         held_threshold=1.0)
    assert [(s.start, s.end, s.probes, s.timeouts) for s in stalls] == [
        (1.0, 6.0, 2, 2), (7.0, 9.0, 1, 0)]


def test_held_session_failing_too_is_marked() -> None:
    probes = probes_with_freeze(2.0, 4.0, until=6.0)
    stalls = find_stalls(probes, held_noops(6.0, latency=None), now=6.0,
                         greeting_threshold=1.0, held_threshold=1.0)
    assert stalls[0].held_session == "failing"
    stalls = find_stalls(probes, [], now=6.0, greeting_threshold=1.0, held_threshold=1.0)
    assert stalls[0].held_session == "none"


def test_probes_out_of_order_give_the_same_answer() -> None:
    probes = probes_with_freeze(10.0, 13.0, until=20.0)
    a = find_stalls(probes, [], now=20.0, greeting_threshold=1.0, held_threshold=1.0)
    b = find_stalls(list(reversed(probes)), [], now=20.0, greeting_threshold=1.0,
                    held_threshold=1.0)
    assert [(s.start, s.end) for s in a] == [(s.start, s.end) for s in b]


def feed_heartbeat(writes: list[float], samples: list[float]) -> list[tuple[float, float | None]]:
    """Observe at each sample time the newest write at or before it; return transitions."""
    tracker = HeartbeatTracker(update_interval=1.0, threshold=2.5)
    out = []
    for now in samples:
        seen = [w for w in writes if w <= now]
        gap = tracker.observe(now, max(seen) if seen else None)
        if gap is not None:
            out.append((gap.start, gap.end))
    return out


@pytest.mark.parametrize("woken", [True, False])
@pytest.mark.parametrize("phase", [0.0, 0.3, 0.6, 0.95])
def test_heartbeat_gap_estimates_a_3s_freeze_within_half_a_second(phase: float, woken: bool) -> None:
    # Writes each second; a 3 s SIGSTOP starting ``phase`` s after a write. Master writes on
    # its first loop pass after resuming: at once when a child's message or a connection wakes
    # it (the gap between writes is 3 + phase), else when the pselect timeout it had left at
    # the stop runs out (the kernel restarts the call with the time remaining: the gap is
    # 3 + 1, measured on an idle Cyrus 3.6 master at six phases).
    stop = 3.1 + phase
    resumed_write = stop + 3.0 if woken else 3.1 + 1.0 + 3.0
    writes = [0.1, 1.1, 2.1, 3.1, resumed_write, resumed_write + 1.0, resumed_write + 2.0]
    samples = [i * 0.5 + 0.25 for i in range(20)]
    transitions = feed_heartbeat(writes, samples)
    assert transitions[0] == (pytest.approx(3.6), None)  # opened when the age passed 2.5 s
    start, end = transitions[1]
    assert (start, end) == (pytest.approx(3.6), pytest.approx(resumed_write))
    assert end - start == pytest.approx(2.5 + phase if woken else 3.5)
    assert abs((end - start) - 3.0) <= 0.5 + 1e-9


def test_heartbeat_normal_jitter_is_no_gap() -> None:
    writes = [0.0, 1.2, 2.1, 3.4, 4.3, 5.5, 6.2]
    assert feed_heartbeat(writes, [i * 0.5 for i in range(14)]) == []


def test_heartbeat_gap_between_two_samples_is_reported_closed() -> None:
    tracker = HeartbeatTracker(update_interval=1.0, threshold=2.5)
    assert tracker.observe(10.0, 9.9) is None
    gap = tracker.observe(20.0, 19.9)  # sampling itself paused; the file shows a 10 s gap
    assert gap is not None and gap.end == 19.9 and gap.gap == pytest.approx(10.0)
    assert gap.start == pytest.approx(10.4) and gap.stall_s == pytest.approx(9.5)
    assert tracker.age(20.5) == pytest.approx(0.6)


def test_heartbeat_threshold_must_exceed_interval() -> None:
    with pytest.raises(ValueError):
        HeartbeatTracker(update_interval=1.0, threshold=1.0)
