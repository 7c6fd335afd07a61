"""One load run's state and artifacts folder, independent of Locust.

The plugin builds a `Run` at init on the master or local runner: the folder, the SeriesStore,
the step recorder, the gate rules, the collectors and the fault schedule. Shapes mark phases
through `Run.set_phase`. Everything here is plain Python, so it is tested without Locust.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtest.collectors.series import Event, SeriesStore
from loadtest.gate.steps import StepRecorder
from loadtest.paths import atomic_write
from loadtest.report.artifacts import run_header
from loadtest.settings import Option, Settings, declare, positive_float

RUN_FILE = "run.json"

declare(
    Option("artifacts", "folder under which each run writes its own folder of artifacts",
           default="artifacts", group="cyrus-loadtest run"),
    Option("run_name", "name of this run's folder (default: run-DATE-TIME)", group="cyrus-loadtest run"),
    Option("gate", "gate rules (TOML) to evaluate when the run ends; sets the exit code",
           group="cyrus-loadtest run"),
    Option("collectors", "server-side collectors to run: probe,master,processes,backlog,machine,"
           "canary,inodes,replication, or none (default: all but inodes)", group="cyrus-loadtest run"),
    Option("probe_rate", "new-connection probes and held-session NOOPs per second (default 4)",
           parse=positive_float, group="cyrus-loadtest run"),
    Option("collector_interval", "seconds between server-side samples (default 1)",
           parse=positive_float, group="cyrus-loadtest run"),
    Option("stall_threshold", "seconds without a greeting (while the held session answers) "
           "that make a master stall (default 1)", parse=positive_float,
           group="cyrus-loadtest run"),
    Option("heartbeat_threshold", "seconds master's stats file may stay unchanged before it "
           "counts as a heartbeat gap (default 2.5)", parse=positive_float,
           group="cyrus-loadtest run"),
    Option("metrics_url", "read master's figures from this Prometheus /metrics page (a "
           "deployment on another host) instead of the local stats file",
           group="cyrus-loadtest run"),
    Option("faults", "faults to inject, separated by ';', e.g. stall-master:at=10,duration=3 "
           "(see docs/scenarios.md)", group="cyrus-loadtest run"),
)


def new_folder(parent: str | os.PathLike[str], name: str | None = None) -> Path:
    """A fresh run folder under ``parent``; never reuses one (a second run in the same second
    gets a suffix), so no run overwrites another's artifacts."""
    parent = Path(parent)
    base = name or time.strftime("run-%Y%m%d-%H%M%S")
    for n in range(1000):
        folder = parent / (base if n == 0 else f"{base}-{n}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise FileExistsError(f"no free run folder name under {parent}")


@dataclass
class Run:
    folder: Path
    store: SeriesStore = field(default_factory=SeriesStore)
    recorder: StepRecorder = field(default_factory=StepRecorder)
    info: dict[str, Any] = field(default_factory=dict)
    phase: str | None = None
    rules: Any = None  # loadtest.gate.rules.RuleSet, when a gate is configured
    collectors: Any = None
    faults: Any = None
    flusher: Any = None
    on_phase: Any = None  # called with the new phase name (the plugin tells workers)
    _phase_event: Event | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set_phase(self, name: str | None, t: float | None = None) -> None:
        """Close the current phase (an event of kind "phase") and open ``name``."""
        now = time.time() if t is None else t
        with self._lock:
            if name == self.phase:
                return
            if self._phase_event is not None:
                self.store.close_event(self._phase_event, end=now)
            self.phase = name
            self._phase_event = (self.store.event("phase", t=now, name=name)
                                 if name is not None else None)
        if self.on_phase is not None:
            self.on_phase(name)

    def current_phase(self) -> str | None:
        return self.phase

    def write_info(self, **updates: Any) -> Path:
        """run.json: format version, times, locustfile, options with sources (redacted)."""
        self.info.update(updates)
        return atomic_write(self.folder / RUN_FILE,
                            json.dumps({**run_header(), **self.info}, indent=2, default=str) + "\n")


def describe_options(settings: Settings | None, locust_options: Any) -> dict[str, Any]:
    """The exact options of a run, with passwords removed, for run.json."""
    from loadtest.safety import redact

    ours = settings.describe() if settings is not None else {}
    theirs = {k: v for k, v in vars(locust_options).items()
              if not k.startswith("_") and isinstance(v, str | int | float | bool | type(None) | list)
              } if locust_options is not None else {}
    return {"cyrus_loadtest": ours, "locust": redact(theirs)}
