"""Collector settings: which collectors, rates, thresholds. Pure; validated with the source of
each bad value in the error (flag, env, config file)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from loadtest.core.signals import COLLECTORS, DEFAULT_COLLECTORS
from loadtest.errors import UsageError

ALL_COLLECTORS = COLLECTORS  # declared with their signals in loadtest.core.signals


@dataclass(frozen=True)
class CollectorConfig:
    collectors: tuple[str, ...] = DEFAULT_COLLECTORS
    interval: float = 1.0  # seconds between server-side samples (master, processes, ...)
    probe_rate: float = 4.0  # new-connection probes (and held-session NOOPs) per second
    probe_timeout: float = 5.0  # a probe step unanswered this long is a timeout
    greeting_threshold: float = 1.0  # a greeting later than this makes a probe late (stall)
    held_threshold: float = 1.0  # a held-session NOOP faster than this counts as answering
    heartbeat_threshold: float = 2.5  # stats file unchanged this long (s) = heartbeat gap
    stats_update_interval: float = 1.0  # master's prometheus_update_freq
    canary_timeout: float = 5.0
    metrics_url: str = ""  # read master's figures from a /metrics page instead of the file

    def validate(self, source: str) -> None:
        unknown = [c for c in self.collectors if c not in ALL_COLLECTORS]
        if unknown:
            raise UsageError(f"unknown collector {unknown[0]!r} in {source} "
                             f"(known: {', '.join(ALL_COLLECTORS)})")
        for name in ("interval", "probe_rate", "probe_timeout", "greeting_threshold",
                     "held_threshold", "heartbeat_threshold", "stats_update_interval",
                     "canary_timeout"):
            value = getattr(self, name)
            if not value > 0:
                raise UsageError(f"collector setting {name}={value!r} in {source}: must be > 0")
        if self.probe_rate > 50:
            raise UsageError(f"collector setting probe_rate={self.probe_rate!r} in {source}: "
                             "at most 50 probes/s (the probe must not become the load)")
        if self.heartbeat_threshold <= self.stats_update_interval:
            raise UsageError(f"collector setting heartbeat_threshold={self.heartbeat_threshold!r}"
                             f" in {source}: must exceed stats_update_interval "
                             f"({self.stats_update_interval!r})")
        if self.metrics_url and not self.metrics_url.startswith(("http://", "https://")):
            raise UsageError(f"collector setting metrics_url={self.metrics_url!r} in {source}: "
                             "not an http(s) URL")

    def updated(self, values: Mapping[str, Any], source: str) -> CollectorConfig:
        """A copy with ``values`` applied (strings are converted), naming ``source`` in errors."""
        known = {f.name for f in fields(self)}
        clean: dict[str, Any] = {}
        for key, raw in values.items():
            if raw is None:
                continue
            if key not in known:
                raise UsageError(f"unknown collector setting {key!r} in {source} "
                                 f"(known: {', '.join(sorted(known))})")
            if key == "collectors":
                items = raw.split(",") if isinstance(raw, str) else list(raw)
                clean[key] = tuple(i.strip() for i in items if i.strip())
            elif key == "metrics_url":
                clean[key] = str(raw)
            else:
                try:
                    clean[key] = float(raw)
                except (TypeError, ValueError):
                    raise UsageError(f"collector setting {key}={raw!r} in {source}: "
                                     "not a number") from None
        new = replace(self, **clean)
        new.validate(source)
        return new
