"""Stalls, gaps and faults as log lines (Locust's Logs tab shows them)."""

from __future__ import annotations

import logging

import pytest

from loadtest.core.eventlog import EventLog
from loadtest.core.series import SeriesStore


def test_each_event_is_logged_when_it_opens_and_when_it_ends(
        caplog: pytest.LogCaptureFixture) -> None:
    store = SeriesStore()
    log = EventLog()
    gap = store.event("heartbeat_gap", t=108.0, instance="slot1")
    store.event("phase", t=100.0, name="warm-up")
    with caplog.at_level(logging.INFO, logger="cyrus-loadtest.events"):
        assert log.check(store.events(), 100.0) == ["master heartbeat gap on slot1 since +8.0 s, still going"]
        assert log.check(store.events(), 100.0) == []
        store.close_event(gap, end=111.2)
        store.event("fault", t=107.9, end=111.0, instance="slot1", name="stop_master")
        assert log.check(store.events(), 100.0) == [
            "fault stop_master on slot1 at +7.9 s: 3.1 s",
            "master heartbeat gap on slot1 at +8.0 s: 3.2 s"]
        assert log.check(store.events(), 100.0) == []
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO", "WARNING"]
