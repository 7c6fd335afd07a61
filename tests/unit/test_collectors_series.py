"""SeriesStore: following it with a cursor, closing what is still open at the end."""

from __future__ import annotations

from loadtest.core.series import SeriesStore


def test_tail_returns_only_what_is_new_and_restarts_past_the_end() -> None:
    store = SeriesStore()
    for t in (1.0, 2.0, 3.0):
        store.add("load1", t, t=t)
    first, cursor = store.tail(0)
    assert [s.t for s in first] == [1.0, 2.0, 3.0] and cursor == 3
    store.add("load1", 4.0, t=4.0)
    new, cursor = store.tail(cursor)
    assert [s.t for s in new] == [4.0] and cursor == 4
    assert store.tail(cursor) == ([], 4)
    # A cursor from another (older, longer) store, or a negative one: everything again.
    assert [s.t for s in store.tail(99)[0]] == [1.0, 2.0, 3.0, 4.0]
    assert store.tail(-1)[1] == 4 and len(store.tail(-1)[0]) == 4


def test_close_open_events_of_some_kinds_only() -> None:
    store = SeriesStore()
    stall = store.event("stall", t=1.0)
    gap = store.event("collector_gap", t=2.0, collector="master")
    done = store.event("heartbeat_gap", t=3.0, end=4.0)
    store.close_open_events(10.0, kinds=("stall", "heartbeat_gap"))
    assert (stall.end, stall.detail) == (10.0, {"open_at_end": True})
    assert gap.end is None
    assert done.end == 4.0 and "open_at_end" not in done.detail
    store.close_open_events(12.0)
    assert (gap.end, gap.detail["open_at_end"]) == (12.0, True) and stall.end == 10.0
