"""`cyrus-loadtest watch`: the collectors' live series in the terminal, like `top` for master.

Runs the collectors (probes included: 4 light connections a second by default) against a
deployment for a bounded time (--duration, default 10 minutes) or until Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from loadtest.collectors.collectorset import CollectorSet
from loadtest.collectors.config import ALL_COLLECTORS, CollectorConfig
from loadtest.core.series import Event, Sample, SeriesStore
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
                        help="print a block of lines per second instead of a live table")
    parser.add_argument("--allow-remote-target", action="store_true",
                        help="allow a non-loopback instance (the probes are load)")


def config_from_args(args: argparse.Namespace) -> CollectorConfig:
    config = CollectorConfig()
    for flag in SETTING_FLAGS:
        value = getattr(args, flag, None)
        if value is not None:
            config = config.updated({flag: value}, f"flag --{flag.replace('_', '-')}")
    return config


def parse_duration(raw: str) -> float:
    try:
        duration = float(raw)
    except ValueError:
        raise UsageError(f"--duration {raw!r} (from flag --duration): not a number") from None
    if not duration > 0:
        raise UsageError(f"--duration {raw!r} (from flag --duration): must be > 0")
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


def _render(store: SeriesStore, newest: Newest, since: float) -> Any:
    from rich.console import Group
    from rich.table import Table

    table = Table(title="cyrus-loadtest watch", expand=False)
    for column in ("instance", "signal", "labels", "value"):
        table.add_column(column, justify="right" if column == "value" else "left")
    newest.update()
    for row in newest.rows(since):
        table.add_row(*row)
    events = Table(title="events (stalls, heartbeat gaps, collector gaps)")
    events.add_column("event")
    for event in store.events()[-8:]:
        events.add_row(describe_event(event))
    return Group(table, events)


def run(args: argparse.Namespace) -> int:
    duration = parse_duration(args.duration)
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
    newest = Newest(store)
    end = time.monotonic() + duration
    collectors.start()
    try:
        if args.plain or not sys.stdout.isatty():
            while time.monotonic() < end:
                time.sleep(min(1.0, max(0.0, end - time.monotonic())))
                since = time.time() - 2 * config.interval
                print(f"--- {time.strftime('%H:%M:%S')}")
                newest.update()
                for row in newest.rows(since):
                    print("  ".join(part for part in row if part))
                sys.stdout.flush()
        else:
            from rich.live import Live

            with Live(_render(store, newest, 0), refresh_per_second=2, screen=False) as live:
                while time.monotonic() < end:
                    time.sleep(min(1.0, max(0.0, end - time.monotonic())))
                    live.update(_render(store, newest, time.time() - 2 * config.interval))
    except KeyboardInterrupt:
        pass
    finally:
        collectors.stop()
    for event in store.events():
        print(describe_event(event))
    return 0

