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
from loadtest.collectors.series import Event, Sample, SeriesStore
from loadtest.deploy.deployment import load_deployment
from loadtest.errors import UsageError
from loadtest.safety import check_target

DEFAULT_DURATION_S = 600.0
# Flag -> CollectorConfig field.
SETTING_FLAGS = {"interval": "interval", "probe_rate": "probe_rate",
                 "probe_timeout": "probe_timeout", "greeting_threshold": "greeting_threshold",
                 "heartbeat_threshold": "heartbeat_threshold", "metrics_url": "metrics_url",
                 "collectors": "collectors"}


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
    for flag, field_name in SETTING_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            config = config.updated({field_name: value}, f"flag --{flag.replace('_', '-')}")
    return config


def parse_duration(raw: str) -> float:
    try:
        duration = float(raw)
    except ValueError:
        raise UsageError(f"--duration {raw!r} (from flag --duration): not a number") from None
    if not duration > 0:
        raise UsageError(f"--duration {raw!r} (from flag --duration): must be > 0")
    return duration


def latest(store: SeriesStore, since: float) -> list[tuple[str, str, str, str]]:
    """(instance, signal, labels, value) of the newest sample per series since ``since``."""
    newest: dict[tuple[str, str, str], Sample] = {}
    for sample in store.samples(since=since):
        labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
        key = (sample.instance or "host", sample.signal, labels)
        if key not in newest or sample.t >= newest[key].t:
            newest[key] = sample
    rows = []
    for (instance, signal, labels), sample in sorted(newest.items()):
        value = "gap" if sample.value is None else f"{sample.value:.6g}"
        rows.append((instance, signal, labels, value))
    return rows


def describe_event(event: Event) -> str:
    length = "ongoing" if event.end is None else f"{event.duration:.2f} s"
    what = event.detail.get("why") or ", ".join(
        f"{k}={v}" for k, v in event.detail.items() if k in ("probes", "held_session", "gap_s"))
    return f"{time.strftime('%H:%M:%S', time.localtime(event.t))} {event.kind:<14} " \
           f"[{event.instance or 'host'}] {length} {what}"


def _render(store: SeriesStore, since: float) -> Any:
    from rich.console import Group
    from rich.table import Table

    table = Table(title="cyrus-loadtest watch", expand=False)
    for column in ("instance", "signal", "labels", "value"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for row in latest(store, since):
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
                     f"{deployment.path}")
    store = SeriesStore()
    collectors = CollectorSet.from_deployment(deployment, store, config,
                                              instances=[i.name for i in instances],
                                              artifacts=args.artifacts)
    end = time.monotonic() + duration
    collectors.start()
    try:
        if args.plain or not sys.stdout.isatty():
            while time.monotonic() < end:
                time.sleep(min(1.0, max(0.0, end - time.monotonic())))
                since = time.time() - 2 * config.interval
                print(f"--- {time.strftime('%H:%M:%S')}")
                for row in latest(store, since):
                    print("  ".join(part for part in row if part))
                sys.stdout.flush()
        else:
            from rich.live import Live

            with Live(_render(store, 0), refresh_per_second=2, screen=False) as live:
                while time.monotonic() < end:
                    time.sleep(min(1.0, max(0.0, end - time.monotonic())))
                    live.update(_render(store, time.time() - 2 * config.interval))
    except KeyboardInterrupt:
        pass
    finally:
        collectors.stop()
    for event in store.events():
        print(describe_event(event))
    return 0

