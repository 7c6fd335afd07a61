"""The probe sampler's stall events, fed literal probe results (no network)."""

from __future__ import annotations

from loadtest.collectors.config import CollectorConfig
from loadtest.collectors.runtime import Clock, Runtime
from loadtest.collectors.samplers import Context, Gaps, ProbeSampler, Target
from loadtest.collectors.stall import ProbeResult
from loadtest.core.series import SeriesStore

T0 = 1_000.0


def sampler() -> tuple[ProbeSampler, SeriesStore]:
    store = SeriesStore()
    ctx = Context(store, Runtime(), Clock(), CollectorConfig(), Gaps(store))
    target = Target(name="slot1", host="127.0.0.1", port=1, pid_file="", master_pid=None,
                    stats_file="", data_dir="", proc_dir="", listen_backlog=None)
    return ProbeSampler(ctx, target), store


def feed(probe: ProbeSampler, done: list[tuple[float, float]], pending: list[float]) -> None:
    probe._probes.clear()
    probe._probes.extend(ProbeResult(T0 + start, elapsed, True) for start, elapsed in done)
    probe._pending = {T0 + start for start in pending}


def test_a_stall_opened_by_a_probe_that_was_on_time_after_all_moves_to_its_next_late_probe() -> None:
    probe, store = sampler()
    threshold = probe.ctx.config.greeting_threshold
    late = threshold * 3
    # At +2 thresholds the probe of +0 is still waiting (its LOGIN, say): late for now.
    feed(probe, [(0.25, late)], pending=[0.0])
    probe.analyse(T0 + 2 * threshold + 0.1)
    (opened,) = store.events("stall")
    assert opened.t == T0 and opened.end is None
    # It finishes: its greeting had come in time. The stall starts at +0.25, one event.
    feed(probe, [(0.0, threshold / 4), (0.25, late)], pending=[])
    probe.analyse(T0 + 2 * threshold + 0.2)
    (moved,) = store.events("stall")
    assert moved is opened and moved.t == T0 + 0.25 and moved.end is None
    # A probe on time after it closes the stall, where its last late probe was answered.
    feed(probe, [(0.0, threshold / 4), (0.25, late), (late + 1, 0.01)], pending=[])
    probe.analyse(T0 + late + 2)
    (closed,) = store.events("stall")
    assert closed.t == T0 + 0.25 and closed.end == T0 + 0.25 + late
    store.close_open_events(T0 + 100)
    assert "open_at_end" not in closed.detail


def test_a_stall_whose_only_late_probe_was_on_time_after_all_was_no_stall() -> None:
    probe, store = sampler()
    threshold = probe.ctx.config.greeting_threshold
    feed(probe, [], pending=[0.0])
    probe.analyse(T0 + 2 * threshold)
    assert len(store.events("stall")) == 1
    feed(probe, [(0.0, threshold / 4), (1.0, 0.01)], pending=[])
    probe.analyse(T0 + 2 * threshold + 1)
    assert store.events("stall") == []


def test_a_closed_stall_stays_one_event_when_the_window_drops_its_first_probes() -> None:
    """Two minutes later the window has dropped the stall's first late probes: what is left of
    it must not read as new stalls, one per second (measured: 40 extra events in one run)."""
    from loadtest.collectors.samplers import PROBE_WINDOW_S

    probe, store = sampler()
    late = probe.ctx.config.greeting_threshold * 3
    starts = [i * 0.25 for i in range(40)]  # 10 s of late probes, then one on time
    done = [(start, late) for start in starts] + [(10.0 + late, 0.01)]
    feed(probe, done, pending=[])
    probe.analyse(T0 + 10.0 + late + 1)
    (closed,) = store.events("stall")
    assert closed.end == T0 + starts[-1] + late
    for second in range(1, 8):  # the window moves past the stall's start, a second at a time
        probe.analyse(T0 + PROBE_WINDOW_S + second)
    assert store.events("stall") == [closed]
