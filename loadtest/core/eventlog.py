"""Stalls, heartbeat gaps, faults and collector gaps as log lines: Locust's Logs tab shows what
its loggers record, so an operator reading the logs sees them beside Locust's own lines (and a
headless run's console gets them too). Pure apart from ``logging``: no Locust, no gevent.
"""

from __future__ import annotations

import logging
from typing import Any

from loadtest.core.series import Event

LOGGED_KINDS = ("stall", "heartbeat_gap", "fault", "collector_gap")
NAMES = {"stall": "master stall (new connections)", "heartbeat_gap": "master heartbeat gap",
         "fault": "fault", "collector_gap": "collector gap"}
log = logging.getLogger("cyrus-loadtest.events")


def describe(event: Event, start: float | None) -> str:
    """One line: what, where, when (run-relative), how long or that it is still going."""
    what = NAMES.get(event.kind, event.kind)
    detail = event.detail
    if event.kind == "fault":
        what += f" {detail.get('name') or detail.get('fault') or ''}".rstrip()
    elif event.kind == "collector_gap":
        what += f" ({detail.get('collector', '?')}: {detail.get('why', '?')})"
    where = f" on {event.instance}" if event.instance else ""
    at = f"+{event.t - start:.1f} s" if start else f"{event.t:.1f}"
    if event.end is None:
        return f"{what}{where} since {at}, still going"
    return f"{what}{where} at {at}: {event.end - event.t:.1f} s"


class EventLog:
    """Logs each event once when it opens and once when it ends; call :meth:`check` often
    (the plugin does, every second)."""

    def __init__(self, logger: logging.Logger | None = log) -> None:
        """``logger`` None: only return the lines (``watch`` prints them itself)."""
        self.logger = logger
        self._opened: set[int] = set()
        self._closed: set[int] = set()

    def check(self, events: list[Event], start: float | None) -> list[str]:
        lines = []
        for event in sorted(events, key=lambda e: e.t):
            if event.kind not in LOGGED_KINDS or id(event) in self._closed:
                continue
            if event.end is None and id(event) in self._opened:
                continue
            line = describe(event, start)
            if self.logger is not None:
                level = logging.INFO if event.kind == "fault" else logging.WARNING
                self.logger.log(level, "cyrus-loadtest: %s", line)
            lines.append(line)
            (self._opened if event.end is None else self._closed).add(id(event))
        return lines


def check_run(event_log: EventLog, run: Any) -> None:
    """The plugin's hook: log new and ended events of a ``loadtest.run.Run``."""
    event_log.check(run.store.events(), run.info.get("start"))
