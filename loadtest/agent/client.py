"""The load side of the agent (`--agent-url`, `--agent-token-file`): a sampler on the collectors'
clock that fetches the agent's new samples and events, corrects their timestamps by the measured
clock offset between the two hosts and adds them to the run's SeriesStore under the target's
instance name. An agent that stops answering is a collector gap, never a crash.

Clock offset: each poll is one request round trip; the agent's ``now`` was read somewhere
inside it, so ``offset = now - (sent + received) / 2`` with an error of at most half the round
trip. The estimate from the shortest round trip of the last polls is used (as NTP does).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import deque
from typing import Any

from loadtest.collectors.samplers import Context, Fault, Sampler
from loadtest.core.series import Event
from loadtest.errors import UsageError

OFFSET_WINDOW = 30  # polls the offset estimate looks back over
REQUEST_TIMEOUT_S = 3.0


def best_offset(polls: list[tuple[float, float, float]]) -> tuple[float, float]:
    """(offset, round trip) from (sent, received, agent_now) polls: the one with the shortest
    round trip, whose midpoint brackets the agent's clock most tightly."""
    sent, received, agent_now = min(polls, key=lambda p: p[1] - p[0])
    return agent_now - (sent + received) / 2.0, received - sent


def read_token_file(path: str, source: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            token = fh.read().strip()
    except OSError as exc:
        raise UsageError(f"cannot read agent token file {path!r} ({source}): "
                         f"{exc.strerror}") from None
    if not token:
        raise UsageError(f"agent token file {path!r} ({source}) is empty")
    return token


def check_agent_url(url: str, source: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"bad value {url!r} for --agent-url ({source}): not an http(s) URL")
    return url.rstrip("/")


class AgentSampler(Sampler):
    """Follows one agent's /series stream into the store, as ``instance``."""

    name = "agent"
    signals = ("heartbeat_age_s",)

    def __init__(self, ctx: Context, instance: str, url: str, token: str | None) -> None:
        super().__init__(ctx, instance)
        self.url = url
        self.token = token
        self.io_timeout = REQUEST_TIMEOUT_S + 1.0
        self._cursor: int | None = None
        self._events_since: float | None = None
        self._polls: deque[tuple[float, float, float]] = deque(maxlen=OFFSET_WINDOW)
        self._events: dict[int, Event] = {}  # agent event id -> our copy, while open
        self._done: set[int] = set()  # agent event ids already merged closed
        self.offset: float | None = None

    def read(self) -> tuple[float, float, dict[str, Any]]:
        query = "" if self._cursor is None else f"since={self._cursor}"
        if self._events_since is not None:
            query += f"&events_since={self._events_since}"
        request = urllib.request.Request(f"{self.url}/series?{query.lstrip('&')}")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        clock = self.ctx.clock
        sent = clock.now()
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            why = "token refused" if exc.code == 401 else f"HTTP {exc.code}"
            raise Fault(f"agent {self.url}: {why}") from None
        except (OSError, urllib.error.URLError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise Fault(f"agent {self.url} unreachable: {reason}") from None
        received = clock.now()
        try:
            return sent, received, json.loads(body)
        except ValueError:
            raise Fault(f"agent {self.url}: answer is not JSON") from None

    def process(self, t: float, data: tuple[float, float, dict[str, Any]]) -> None:
        sent, received, payload = data
        agent_now = float(payload["now"])
        self._polls.append((sent, received, agent_now))
        offset, round_trip = best_offset(list(self._polls))
        self.offset = offset
        self.add("agent_clock_offset_s", offset, t, round_trip_ms=round(round_trip * 1000, 3))
        store = self.ctx.store
        for rec in payload.get("samples", []):
            store.add(rec["signal"], rec["value"], t=rec["t"] - offset, instance=self.instance,
                      **(rec.get("labels") or {}))
        for rec in payload.get("events", []):
            self._merge_event(rec, offset)
        self._cursor = int(payload["cursor"])
        # Events touched since a little before this answer (the agent's clock).
        self._events_since = agent_now - 5.0

    def _merge_event(self, rec: dict[str, Any], offset: float) -> None:
        key = rec.get("id")
        if key is not None and key in self._done:
            return
        end = None if rec.get("end") is None else rec["end"] - offset
        detail = {**(rec.get("detail") or {}), "source": "agent"}
        known = self._events.get(key) if key is not None else None
        if known is None:
            ev = self.ctx.store.event(rec["kind"], t=rec["t"] - offset, end=end,
                                      instance=self.instance, **detail)
            if key is not None:
                if end is None:
                    self._events[key] = ev
                else:
                    self._done.add(key)
        elif end is not None and key is not None:  # known implies a key
            self.ctx.store.close_event(known, end=end, **detail)
            self._events.pop(key, None)
            self._done.add(key)

    def finish(self, t: float) -> None:
        """Events the agent still had open end where the run ends (closed by the set)."""
        self._events.clear()
