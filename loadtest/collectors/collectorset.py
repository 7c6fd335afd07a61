"""CollectorSet: every collector of a test run, started and stopped together."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.collectors.config import CollectorConfig
from loadtest.collectors.probe import read_users
from loadtest.collectors.runtime import Clock, Runtime, run_ticker
from loadtest.collectors.samplers import (
    BacklogSampler,
    CanarySampler,
    Context,
    CyrusErrorSampler,
    Gaps,
    InodeSampler,
    MachineSampler,
    MasterSampler,
    ProbeSampler,
    ProcessSampler,
    ReplicationSampler,
    Target,
    make_target,
)
from loadtest.core.series import SeriesStore
from loadtest.core.signals import COLLECTORS
from loadtest.deploy.replication import pairs as replication_pairs

log = logging.getLogger("loadtest.collectors")
FLUSH_INTERVAL_S = 1.0

# What a collector's samplers are made for: the host once, each target, each replicated pair.
HOST, TARGET, PAIR = "host", "target", "pair"


@dataclass(frozen=True)
class Factory:
    make: Callable[..., Iterable[Any]]  # (ctx) / (ctx, target) / (ctx, master, replica, store)
    per: str
    probe_clock: bool  # ticks on the probe clock (--probe-rate), not the collector interval


FACTORIES: dict[str, Factory] = {}


def collector(name: str, per: str = TARGET, *, probe_clock: bool = False
              ) -> Callable[[Callable[..., Iterable[Any]]], Callable[..., Iterable[Any]]]:
    """Register the function that makes collector ``name``'s samplers; the name, its signals and
    whether it runs by default are declared in loadtest.core.signals."""
    if name not in COLLECTORS:
        raise ValueError(f"collector {name!r} is not declared in loadtest.core.signals")

    def register(make: Callable[..., Iterable[Any]]) -> Callable[..., Iterable[Any]]:
        FACTORIES[name] = Factory(make, per, probe_clock)
        return make

    return register


@collector("probe", probe_clock=True)
def _probe(ctx: Context, target: Target) -> list[ProbeSampler]:
    return [ProbeSampler(ctx, target)]


@collector("master")
def _master(ctx: Context, target: Target) -> list[MasterSampler]:
    return [MasterSampler(ctx, target)]


@collector("processes")
def _processes(ctx: Context, target: Target) -> list[ProcessSampler]:
    return [ProcessSampler(ctx, target)]


@collector("backlog")
def _backlog(ctx: Context, target: Target) -> list[BacklogSampler]:
    return [BacklogSampler(ctx, target)]


@collector("machine", HOST)
def _machine(ctx: Context) -> list[MachineSampler]:
    return [MachineSampler(ctx)]


@collector("canary")
def _canary(ctx: Context, target: Target) -> list[CanarySampler]:
    return [CanarySampler(ctx, target, "data", target.data_dir),
            CanarySampler(ctx, target, "proc", target.proc_dir)]


@collector("errors")
def _errors(ctx: Context, target: Target) -> list[CyrusErrorSampler]:
    return [CyrusErrorSampler(ctx, target)] if target.log_file else []


@collector("inodes")
def _inodes(ctx: Context, target: Target) -> list[InodeSampler]:
    return [InodeSampler(ctx, target)]


@collector("replication", PAIR)
def _replication(ctx: Context, master: Target, replica: Target,
                 store_name: str | None) -> list[ReplicationSampler]:
    return [ReplicationSampler(ctx, master, replica, store_name)]


class CollectorSet:
    """Samplers for one or more targets on two fixed clocks (probes, everything else) and an
    optional artifacts flusher. ``start()`` returns at once; ``stop()`` ends every loop, closes
    what the collectors opened and flushes a last time."""

    def __init__(self, targets: Iterable[Target], store: SeriesStore,
                 config: CollectorConfig | None = None, *,
                 artifacts: str | Path | None = None,
                 replicas: Iterable[tuple[Target, Target, str | None]] = ()) -> None:
        self.config = config or CollectorConfig()
        self.store = store
        self.targets = list(targets)
        self.artifacts = None if artifacts is None else Path(artifacts)
        self.runtime = Runtime()
        self.clock = Clock()
        self.gaps = Gaps(store)
        self.ctx = Context(store, self.runtime, self.clock, self.config, self.gaps)
        self.samplers: list[Any] = []
        self.probes: list[ProbeSampler] = []
        enabled = set(self.config.collectors)
        chosen = [FACTORIES[name] for name in COLLECTORS if name in enabled]
        # Host-wide samplers first, then each target's, then each replicated pair's.
        for factory in chosen:
            if factory.per == HOST:
                self._add(factory, factory.make(self.ctx))
        for target in self.targets:
            for factory in chosen:
                if factory.per == TARGET:
                    self._add(factory, factory.make(self.ctx, target))
        for factory in chosen:
            if factory.per == PAIR:  # (master, replica, store) of each replicated store
                for master, replica, store_name in list(replicas):
                    self._add(factory, factory.make(self.ctx, master, replica, store_name))
        self._stop = threading.Event()
        self._started = False
        self.missed_ticks = 0

    def _add(self, factory: Factory, samplers: Iterable[Any]) -> None:
        (self.probes if factory.probe_clock else self.samplers).extend(samplers)

    @classmethod
    def from_deployment(cls, deployment: Any, store: SeriesStore,
                        config: CollectorConfig | None = None, *,
                        instances: Iterable[str] | None = None,
                        artifacts: str | Path | None = None) -> CollectorSet:
        """One set of collectors per instance of a ``loadtest.deploy.Deployment``."""
        wanted = None if instances is None else set(instances)
        targets = []
        for info in deployment.instances:
            if wanted is not None and info.name not in wanted:
                continue
            # A replica slot's users file is empty: its users live on the master. Three users:
            # the probe's, the held session's, and the replication lag probe's.
            has_users = (os.path.exists(info.users_file)  # more than the header line
                         and len(Path(info.users_file).read_text().split()) > 1)
            users = read_users(info.users_file, limit=3) if has_users else []
            targets.append(make_target(info, users))
        by_name = {t.name: t for t in targets}
        replicas = [(by_name[m.name], by_name[r.name], m.store)
                    for m, r in replication_pairs(deployment.instances)
                    if m.name in by_name and r.name in by_name]
        return cls(targets, store, config, artifacts=artifacts, replicas=replicas)

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        if self.artifacts is not None:
            self.artifacts.mkdir(parents=True, exist_ok=True)
        self.runtime.spawn(self._loop, self.config.interval, self._tick_samplers)
        if self.probes:
            self.runtime.spawn(self._loop, 1.0 / self.config.probe_rate, self._tick_probes)
        if self.artifacts is not None:
            self.runtime.spawn(self._loop, FLUSH_INTERVAL_S, self._tick_flush)

    def _loop(self, interval: float, tick: Any) -> None:
        try:
            self.missed_ticks += run_ticker(self.clock, interval, self._stop,
                                            lambda t, _mono: tick(t))
        except Exception:  # never let a collector loop die silently
            log.exception("collector loop stopped")

    def _tick_samplers(self, t: float) -> None:
        for sampler in self.samplers:
            sampler.tick(t)

    def _tick_probes(self, t: float) -> None:
        for probe in self.probes:
            probe.tick(t)

    def _tick_flush(self, _t: float) -> None:
        self.runtime.spawn(self.flush)

    def flush(self) -> None:
        if self.artifacts is None:
            return
        try:
            self.store.flush(self.artifacts)
        except OSError as exc:
            log.warning("cannot flush collector series to %s: %s", self.artifacts, exc)

    def stop(self) -> None:
        if not self._started or self._stop.is_set():
            return
        self._stop.set()
        now = self.clock.now()
        for probe in self.probes:
            probe.finish(now)
        for sampler in self.samplers:
            sampler.finish(now)
        self.gaps.close_all(now)
        # Stalls and heartbeat gaps still open end now, marked open_at_end.
        self.store.close_open_events(now, kinds=("stall", "heartbeat_gap"))
        self.flush()
        self.runtime.close()
