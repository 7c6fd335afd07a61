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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadtest.core.runfolder import RUN_FILE, run_header
from loadtest.core.series import Event, SeriesStore
from loadtest.core.signals import collectors_help
from loadtest.core.steps import StepRecorder
from loadtest.paths import atomic_write
from loadtest.settings import Option, Settings, declare, positive_float

if TYPE_CHECKING:
    from gevent import Greenlet

    from loadtest.collectors import CollectorSet
    from loadtest.deploy.deployment import Deployment
    from loadtest.faults import FaultRunner
    from loadtest.gate.evaluate import Baseline
    from loadtest.gate.rules import RuleSet

declare(
    Option("artifacts", "folder under which each run writes its own folder of artifacts",
           default="artifacts", group="cyrus-loadtest run"),
    Option("run_name", "name of this run's folder (default: run-DATE-TIME)", group="cyrus-loadtest run"),
    Option("gate", "gate rules (TOML) to evaluate when the run ends; sets the exit code",
           group="cyrus-loadtest run"),
    Option("collectors", collectors_help(), group="cyrus-loadtest run"),
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
    Option("agent_url", "URL of a `cyrus-loadtest agent` on the Cyrus host (a deployment on "
           "another host): its server-side collectors join this run's series",
           group="cyrus-loadtest run"),
    Option("agent_token_file", "file holding the agent's bearer token (--agent-url)",
           group="cyrus-loadtest run"),
    Option("baseline", "a finished run's artifacts folder: the gate's max_ratio/min_ratio "
           "rules compare with it", group="cyrus-loadtest run"),
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
    deployment: Deployment | None = None  # the local deployment under load (None: --imap-host)
    recorder: StepRecorder = field(default_factory=StepRecorder)
    info: dict[str, Any] = field(default_factory=dict)
    phase: str | None = None
    rules: RuleSet | None = None  # when a gate is configured
    collectors: CollectorSet | None = None
    faults: FaultRunner | None = None
    flusher: Greenlet | None = None  # writes the measurements every second while the load runs
    ledger_flusher: Greenlet | None = None  # the integrity users' ledger, likewise
    locust_html: Path | None = None  # Locust's HTML report, when the run folder holds it
    baseline: Baseline | None = None  # --baseline RUN
    on_phase: Callable[[str | None], None] | None = None  # the plugin tells workers the phase
    # artifact -> why it could not be written (first error): a full or read-only folder is a
    # result told in one line at the end, never a crash of the run
    unwritten: dict[str, str] = field(default_factory=dict)
    # called when the run ends, before the gate (the integrity audit adds its samples here)
    before_gate: list[Callable[[], None]] = field(default_factory=list)
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

    def write_info(self, **updates: Any) -> bool:
        """run.json: format version, times, locustfile, options with sources (redacted)."""
        self.info.update(updates)
        text = json.dumps({**run_header(), **self.info}, indent=2, default=str) + "\n"
        return self.write_artifact(RUN_FILE, lambda: atomic_write(self.folder / RUN_FILE, text))

    def write_artifact(self, name: str, write: Callable[[], Any]) -> bool:
        """Run ``write``; an OSError (read-only folder, full disk) is kept in ``unwritten``
        under ``name`` and the run goes on. True when it was written."""
        try:
            write()
        except OSError as exc:
            self.unwritten.setdefault(name, exc.strerror or str(exc))
            return False
        self.unwritten.pop(name, None)  # written after all (space came back)
        return True

    def unwritten_line(self) -> str | None:
        """One line naming the artifacts that could not be written, or None."""
        if not self.unwritten:
            return None
        what = "; ".join(f"{name} ({why})" for name, why in self.unwritten.items())
        return f"cyrus-loadtest: could not write to {self.folder}: {what}"


def disconnect_modes(user_classes: list[type], disconnect: str | None,
                     source: str = "option") -> dict[str, dict[str, str]]:
    """How each IMAP user class ends its sessions in this run, and why, for run.json.

    An IMAP user class is one with a ``default_disconnect`` (loadtest.users.ImapUser and its
    subclasses); ``disconnect`` is --imap-disconnect when given (from ``source``)."""
    modes = {}
    for cls in user_classes:
        default = getattr(cls, "default_disconnect", None)
        if not isinstance(cls, type) or default is None:
            continue
        if disconnect:
            modes[cls.__name__] = {"disconnect": disconnect,
                                   "source": f"--imap-disconnect ({source})"}
        else:
            modes[cls.__name__] = {"disconnect": default, "source": f"{cls.__name__}'s default"}
    return modes


def describe_options(settings: Settings | None, locust_options: Any) -> dict[str, Any]:
    """The exact options of a run, with passwords removed, for run.json."""
    from loadtest.safety import redact

    ours = settings.describe() if settings is not None else {}
    theirs = {k: v for k, v in vars(locust_options).items()
              if not k.startswith("_") and isinstance(v, str | int | float | bool | type(None) | list)
              } if locust_options is not None else {}
    return {"cyrus_loadtest": ours, "locust": redact(theirs)}
