"""`cyrus-loadtest watch`: the collectors' live series in the terminal, like `top` for master.

Runs the collectors (probes included: 4 light connections a second by default) against a
deployment for a bounded time (--duration, default 10 minutes) or until Ctrl-C. On a terminal:
a screen with a header (deployment, clock, time watched), one row per signal and instance with
its unit, threshold and a coloured state, and the events as they happen. ``--plain`` (and any
output that is not a terminal): a block of the same rows every ``--every`` seconds, events as
lines the second they open or end.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any

from loadtest.collectors.collectorset import CollectorSet
from loadtest.collectors.config import ALL_COLLECTORS, CollectorConfig
from loadtest.core.eventlog import EventLog
from loadtest.core.series import Event, Sample, SeriesStore
from loadtest.core.signals import SIGNALS
from loadtest.deploy.deployment import load_deployment
from loadtest.errors import UsageError
from loadtest.safety import check_target

DEFAULT_DURATION_S = 600.0
# Flags that set the CollectorConfig field of the same name.
SETTING_FLAGS = ("interval", "probe_rate", "probe_timeout", "greeting_threshold",
                 "heartbeat_threshold", "metrics_url", "collectors")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--deployment", help="deployment.json or its directory "
                        "(default: env LOADTEST_DEPLOYMENT, then the default deployment)")
    parser.add_argument("--instance", action="append",
                        help="watch only this instance (repeatable; default: all)")
    parser.add_argument("--collectors", help=f"comma-separated subset of {','.join(ALL_COLLECTORS)}")
    parser.add_argument("--interval", help="seconds between server-side samples (default 1)")
    parser.add_argument("--probe-rate", dest="probe_rate", help="probes per second (default 4)")
    parser.add_argument("--probe-timeout", dest="probe_timeout", help="seconds (default 5)")
    parser.add_argument("--greeting-threshold", dest="greeting_threshold",
                        help="greeting later than this (s) is a stall (default 1)")
    parser.add_argument("--heartbeat-threshold", dest="heartbeat_threshold",
                        help="stats file unchanged this long (s) is a heartbeat gap (default 2.5)")
    parser.add_argument("--metrics-url", dest="metrics_url",
                        help="read master's figures from this /metrics URL instead of the file")
    parser.add_argument("--duration", default=str(DEFAULT_DURATION_S),
                        help=f"stop after this many seconds (default {DEFAULT_DURATION_S:g})")
    parser.add_argument("--artifacts", help="also write series.jsonl/events.jsonl here, every second")
    parser.add_argument("--plain", action="store_true",
                        help="print the rows as text every --every seconds instead of a live "
                             "screen (events as they happen)")
    parser.add_argument("--every", default="5",
                        help="seconds between blocks of rows with --plain (default 5)")
    parser.add_argument("--allow-remote-target", action="store_true",
                        help="allow a non-loopback instance (the probes are load)")


def config_from_args(args: argparse.Namespace) -> CollectorConfig:
    config = CollectorConfig()
    for flag in SETTING_FLAGS:
        value = getattr(args, flag, None)
        if value is not None:
            config = config.updated({flag: value}, f"flag --{flag.replace('_', '-')}")
    return config


def parse_duration(raw: str, flag: str = "--duration") -> float:
    try:
        duration = float(raw)
    except ValueError:
        raise UsageError(f"{flag} {raw!r} (from flag {flag}): not a number") from None
    if not 0 < duration < float("inf"):
        raise UsageError(f"{flag} {raw!r} (from flag {flag}): must be > 0")
    return duration


class Newest:
    """The newest sample per series, following a store: each ``update`` reads only the samples
    added since the previous one."""

    def __init__(self, store: SeriesStore) -> None:
        self.store = store
        self._cursor = 0
        self._newest: dict[tuple[str, str, str], Sample] = {}

    def update(self) -> None:
        added, self._cursor = self.store.tail(self._cursor)
        for sample in added:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            key = (sample.instance or "host", sample.signal, labels)
            if key not in self._newest or sample.t >= self._newest[key].t:
                self._newest[key] = sample

    def rows(self, since: float) -> list[tuple[str, str, str, str]]:
        """(instance, signal, labels, value) of the series whose newest sample is at or after
        ``since``."""
        rows = []
        for (instance, signal, labels), sample in sorted(self._newest.items()):
            if sample.t >= since:
                value = "gap" if sample.value is None else f"{sample.value:.6g}"
                rows.append((instance, signal, labels, value))
        return rows


def latest(store: SeriesStore, since: float) -> list[tuple[str, str, str, str]]:
    """(instance, signal, labels, value) of the newest sample per series since ``since``."""
    newest = Newest(store)
    newest.update()
    return newest.rows(since)


def describe_event(event: Event) -> str:
    length = "ongoing" if event.end is None else f"{event.duration:.2f} s"
    what = event.detail.get("why") or ", ".join(
        f"{k}={v}" for k, v in event.detail.items() if k in ("probes", "held_session", "stall_s"))
    return f"{time.strftime('%H:%M:%S', time.localtime(event.t))} {event.kind:<14} " \
           f"[{event.instance or 'host'}] {length} {what}"


# -- the screen: one row per signal and instance -------------------------------------------------

OK, WARN, BAD, GAP, NO_DATA = "ok", "high", "BAD", "gap", "no data"
STATE_STYLES = {OK: "green", WARN: "yellow", BAD: "bold red", GAP: "bold magenta", NO_DATA: "dim"}


@dataclass(frozen=True)
class Watched:
    signal: str
    label: str  # a row of its own: more words than a legend under a chart title
    combine: str = "sum"  # samples of one instance at one time (services, families): sum or max
    bad_above: str | float | None = None  # a CollectorConfig field (seconds) or a number
    scale: float = 1.0  # the threshold field's unit -> the signal's (s -> ms: 1000)
    bad_at_zero: bool = False
    decimals: int = 1

    @property
    def unit(self) -> str:
        return SIGNALS[self.signal].unit  # declared in loadtest.core.signals


WATCHED: tuple[Watched, ...] = (
    Watched("greeting_latency_ms", "greeting (new connection)", "max", "greeting_threshold",
            1000.0),
    Watched("held_noop_latency_ms", "held-session NOOP", "max", "held_threshold", 1000.0),
    Watched("heartbeat_age_s", "master heartbeat age", "max", "heartbeat_threshold"),
    Watched("spawns_per_s", "spawns (master)"),
    Watched("ready_workers", "ready workers", bad_at_zero=True, decimals=0),
    Watched("active_children", "active children", decimals=0),
    Watched("imapd_processes", "imapd processes", decimals=0),
    Watched("listen_queue", "accept queue (Recv-Q)", "max", decimals=0),
    Watched("listen_overflows", "listen overflows (host)", "max", decimals=0),
    Watched("canary_data_ms", "fs canary, data partition", "max", 50.0),
    Watched("load1", "load average", "max", decimals=2),
    Watched("procs_running", "processes running", "max", decimals=0),
)


@dataclass(frozen=True)
class Row:
    label: str
    instance: str
    value: str  # with its unit
    threshold: str
    state: str


def board_rows(store: SeriesStore, config: CollectorConfig, since: float,
               watched: tuple[Watched, ...] = WATCHED) -> list[Row]:
    """The screen's rows from the newest time of each signal and instance at or after ``since``
    (older: "no data"); a signal never seen is left out."""
    rows = []
    for w in watched:
        by_instance: dict[str, list[Sample]] = {}
        for sample in store.samples(w.signal):
            by_instance.setdefault(sample.instance or "host", []).append(sample)
        for instance, samples in sorted(by_instance.items()):
            newest = max(s.t for s in samples)
            at_newest = [s.value for s in samples if s.t == newest]
            limit = w.bad_above if not isinstance(w.bad_above, str) else \
                getattr(config, w.bad_above) * w.scale
            threshold = (f"> {limit:g} {w.unit}".rstrip() if limit is not None
                         else "= 0" if w.bad_at_zero else "")
            known = [v for v in at_newest if v is not None]
            if newest < since:
                rows.append(Row(w.label, instance, "-", threshold, NO_DATA))
                continue
            if not known:
                rows.append(Row(w.label, instance, "gap", threshold, GAP))
                continue
            value = sum(known) if w.combine == "sum" else max(known)
            state = OK
            if (limit is not None and value > limit) or (w.bad_at_zero and value == 0):
                state = BAD
            elif limit is not None and value > 0.5 * limit:
                state = WARN
            rows.append(Row(w.label, instance, f"{value:.{w.decimals}f} {w.unit}".rstrip(),
                            threshold, state))
    return rows


def header(deployment_path: str, started: float, now: float, instances: list[str]) -> str:
    return (f"cyrus-loadtest watch · {deployment_path} · {', '.join(instances)} · "
            f"{time.strftime('%H:%M:%S', time.localtime(now))} · watching {now - started:.0f} s")


def plain_block(rows: list[Row], title: str) -> str:
    width = max((len(r.label) + len(r.instance) + 3 for r in rows), default=20)
    lines = [f"--- {title}"]
    for r in rows:
        name = f"{r.label} [{r.instance}]"
        limit = f"(bad {r.threshold})" if r.threshold else ""
        lines.append(f"  {name:<{width}} {r.value:>12}  {r.state:<7} {limit}".rstrip())
    return "\n".join(lines)


def _render(store: SeriesStore, config: CollectorConfig, title: str, since: float,
            events: list[str]) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", expand=False)
    for column, justify in (("signal", "left"), ("instance", "left"), ("now", "right"),
                            ("bad when", "left"), ("state", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in board_rows(store, config, since):
        style = STATE_STYLES[r.state]
        table.add_row(r.label, r.instance, Text(r.value, style=style), r.threshold,
                      Text(r.state, style=style))
    log = Table(title="events (newest last)", title_justify="left", expand=False)
    log.add_column("event")
    for line in events[-10:] or ["no stalls, heartbeat gaps, faults or collector gaps so far"]:
        log.add_row(line)
    return Group(table, log)


def run(args: argparse.Namespace) -> int:
    duration = parse_duration(args.duration)
    every = parse_duration(args.every, "--every")
    config = config_from_args(args)
    deployment = load_deployment(args.deployment)
    instances = [i for i in deployment.instances if not args.instance or i.name in args.instance]
    if not instances:
        deployment.instance(args.instance[0])  # raises UsageError naming the instances it has
    for info in instances:
        check_target(info.host, args.allow_remote_target, f"instance {info.name} in "
                     f"{deployment.origin}")
    store = SeriesStore()
    collectors = CollectorSet.from_deployment(deployment, store, config,
                                              instances=[i.name for i in instances],
                                              artifacts=args.artifacts)
    names = [i.name for i in instances]
    started = time.time()
    end = time.monotonic() + duration
    events: list[str] = []
    event_log = EventLog(logger=None)  # lines for the screen, not for a logger
    collectors.start()
    try:
        if args.plain or not sys.stdout.isatty():
            next_block = time.monotonic() + min(every, 2.0)  # the first rows soon
            while time.monotonic() < end:
                time.sleep(min(1.0, max(0.0, end - time.monotonic())))
                for line in event_log.check(store.events(), started):
                    print(f"! {time.strftime('%H:%M:%S')} {line}", flush=True)
                if time.monotonic() >= next_block:
                    next_block += every
                    print(plain_block(board_rows(store, config, time.time() - 3 * config.interval),
                                      header(str(deployment.path), started, time.time(), names)),
                          flush=True)
        else:
            from rich.live import Live

            def screen() -> Any:
                events.extend(event_log.check(store.events(), started))
                return _render(store, config, header(str(deployment.path), started, time.time(),
                                                     names),
                               time.time() - 3 * config.interval, events)

            with Live(screen(), refresh_per_second=2, screen=True) as live:
                while time.monotonic() < end:
                    time.sleep(min(1.0, max(0.0, end - time.monotonic())))
                    live.update(screen())
    except KeyboardInterrupt:
        pass
    finally:
        collectors.stop()
    for event in store.events():
        print(describe_event(event))
    return 0
