"""Fault injectors against a local test deployment: each one applies a fault to one instance and
knows how to undo it, and undo is safe to call twice. Each injector declares its fault kind
(``KIND``: name, settings with defaults and bounds, checks; see ``spec.FaultKind``): the
grammar in ``spec`` and ``make_injector`` both read that one declaration.

Processes are addressed by the pids in deployment.json (master) or found below master's pid
(children): only processes of our own deployment are ever signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

from loadtest.core.parsers import parse_children, service_of
from loadtest.core.series import SeriesStore
from loadtest.deploy import instance as inst
from loadtest.deploy.deployment import InstanceInfo
from loadtest.deploy.procs import pid_alive
from loadtest.deploy.render import InstancePaths
from loadtest.errors import UsageError
from loadtest.faults.eintr import SYSCALL as EINTR_SYSCALL
from loadtest.faults.guardian import Guardian, signal_action, symlink_action
from loadtest.faults.spec import FaultKind, FaultSpec, Param
from loadtest.faults.storm import MAX_RATE as MAX_STORM_RATE

# kind name -> its declaration and its injector, in declaration order (filled as each injector
# class with a KIND of its own is defined).
KINDS: dict[str, FaultKind] = {}
INJECTORS: dict[str, type[Injector]] = {}


class Injector:
    """Base: ``apply()`` starts the fault and returns details for the event; ``undo()`` ends it.
    A subclass that is a fault kind declares it as ``KIND``."""

    KIND: ClassVar[FaultKind | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("KIND")
        if kind is None:
            return  # a base of other injectors
        if kind.name in KINDS:
            raise TypeError(f"fault kind {kind.name!r} declared twice ({cls.__name__}, "
                            f"{INJECTORS[kind.name].__name__})")
        KINDS[kind.name] = kind
        INJECTORS[kind.name] = cls

    def __init__(self, spec: FaultSpec, info: InstanceInfo) -> None:
        self.spec = spec
        self.info = info
        self.active = False
        # Set by the runner: the process that undoes this fault if the generator cannot.
        self.guardian: Guardian | None = None
        self.guard_key = ""
        self.guard_in_s: float | None = None  # the guardian's deadline, None: at the run's end
        self.store: SeriesStore | None = None  # set by the FaultRunner: series of its own

    def guard(self, actions: list[dict[str, Any]]) -> None:
        """Arm the guardian with this fault's undo ``actions``: call it before the fault is
        applied, so no moment exists in which a dead generator leaves the fault in place."""
        if self.guardian is not None:
            self.guardian.arm(self.guard_key, actions, self.guard_in_s)

    def check(self) -> None:
        """Refuse before the run starts if this fault cannot work on this instance."""

    def apply(self) -> dict[str, Any]:
        raise NotImplementedError

    def undo(self) -> dict[str, Any]:
        self.active = False
        return {}

    def tick(self, now: float) -> None:
        """Called often while active (signal storms, rotation)."""

    def _master(self) -> int:
        pid = self.info.master_pid
        if not pid_alive(pid):
            raise ProcessLookupError(f"master of {self.info.name} (pid {pid}) is not running")
        return int(pid)  # type: ignore[arg-type]


class StallMaster(Injector):
    """SIGSTOP master, SIGCONT after ``duration``: the master loop stops completing."""

    KIND = FaultKind("stall-master", lasting=True,
                     params={"duration": Param(float, 3.0, above=0.0)})

    def apply(self) -> dict[str, Any]:
        pid = self._master()
        self.guard([signal_action(pid, "CONT")])
        os.kill(pid, signal.SIGSTOP)
        self.active = True
        return {"pid": self.info.master_pid}

    def undo(self) -> dict[str, Any]:
        if self.active and self.info.master_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.info.master_pid, signal.SIGCONT)
        return super().undo()


class _BoundedProcess(Injector):
    """A fault carried out by a process of its own that ends by itself at its deadline, also
    when the load generator is SIGKILLed; ``undo()`` stops it early with SIGTERM and collects
    what it reports. A session of its own: a Ctrl-C at the terminal goes through undo."""

    SLACK_S = 1.0  # the process's own deadline is the fault's duration plus this
    _proc: subprocess.Popen[bytes] | None = None

    def _running(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError(f"{type(self).__name__}: no process started")
        return self._proc

    def _spawn(self, argv: list[str]) -> None:
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, start_new_session=True,
                                      close_fds=True)
        self.active = True

    def _start(self, argv: list[str], what: str) -> None:
        """Spawn the fault's process and wait for its first line: "ready" (the fault's window
        starts now, not at the fork) or "error WHY" (raised as WHY)."""
        self._spawn(argv)
        stdout = self._running().stdout
        line = stdout.readline().decode(errors="replace").strip() if stdout else ""
        if line != "ready":
            raise OSError(line.removeprefix("error ") if line.startswith("error ") else
                          f"the {what} process did not start: {self._finish()[-200:]!r}")

    def _report(self, missing: str, output: str) -> dict[str, Any]:
        """Stop the process and return its report, the JSON object on its last line (when there
        is none: ``missing`` None and the process's output under ``output``)."""
        out = self._finish()
        super().undo()
        try:
            return dict(json.loads(out.strip().splitlines()[-1]))
        except (ValueError, IndexError):
            return {missing: None, output: out.strip()[-200:]}

    def _finish(self) -> str:
        """Stop the process (if it still runs) and return its output."""
        proc = getattr(self, "_proc", None)
        if proc is None:
            return ""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        self._proc = None
        return (out or b"").decode(errors="replace")


HARMLESS_SIGNALS = ("CHLD", "ALRM", "URG", "WINCH")  # master ignores or handles them


def _storm_complaint(values: dict[str, Any]) -> str | None:
    """A signal storm's signal must be harmless to master (normalised to its name without SIG)
    and its rate what one process can pace."""
    name = str(values["signal"]).upper().removeprefix("SIG")
    if name not in HARMLESS_SIGNALS:
        return (f"signal {values['signal']!r} is not harmless to master; use "
                f"{', '.join(HARMLESS_SIGNALS[:-1])} or {HARMLESS_SIGNALS[-1]}")
    values["signal"] = name
    if not 0 < values["rate"] <= MAX_STORM_RATE:
        return (f"rate={values['rate']:g} must be > 0 and at most {MAX_STORM_RATE:,.0f} "
                "signals/s")
    return None


class SignalStorm(_BoundedProcess):
    """Harmless signals at master, evenly paced from a process of its own
    (loadtest.faults.storm): each one that arrives while master waits interrupts its pselect()
    (EINTR), the path on which the 2016 master skipped worker accounting. The event records how
    many kill() calls succeeded (delivered to master; standard signals coalesce while pending,
    so master handles at most that many)."""

    KIND = FaultKind("signal-storm", lasting=True,
                     params={"duration": Param(float, 5.0, above=0.0), "rate": Param(float, 1000.0),
                             "signal": Param(str, "CHLD")},
                     check=_storm_complaint)

    def apply(self) -> dict[str, Any]:
        pid = self._master()
        rate = float(self.spec.params["rate"])
        self._start([sys.executable, "-m", "loadtest.faults.storm", "--pid", str(pid),
                     "--signal", self.spec.params["signal"], "--rate", repr(rate),
                     "--duration", repr(self.spec.duration + self.SLACK_S),
                     "--parent", str(os.getpid())], "signal storm")
        return {"pid": pid, "rate": rate, "signal": self.spec.params["signal"],
                "storm_pid": self._running().pid}

    def undo(self) -> dict[str, Any]:
        return self._report("signals_delivered", "storm_output")


class EintrInject(_BoundedProcess):
    """Every wait of master fails with EINTR: Debian's strace attached to master with
    ``-e inject=pselect6:error=EINTR:when=1+`` from a process of its own
    (loadtest.faults.eintr), which also ends the injection without killing master (SIGSTOP,
    detach, SIGCONT) and reports strace's counts."""

    KIND = FaultKind("eintr-inject", lasting=True,
                     params={"duration": Param(float, 10.0, above=0.0)})

    def check(self) -> None:
        for tool, package in (("strace", "strace"), ("timeout", "coreutils")):
            if shutil.which(tool) is None:
                raise UsageError(f"fault {self.spec.text!r} needs {tool}: apt-get install {package}")
        if os.getuid() != 0:
            raise UsageError(f"fault {self.spec.text!r} attaches strace to master, which runs as "
                             "another user: run as root")

    def apply(self) -> dict[str, Any]:
        pid = self._master()
        # No guardian SIGCONT: when the generator dies, the fault's process (a session of its
        # own, told by the parent-death signal) parks master, detaches strace and continues
        # master itself; a guardian's SIGCONT in the middle of that resumed master before strace
        # had let go, and master died of the tampered syscall (seen once in ci/test).
        self._start([sys.executable, "-m", "loadtest.faults.eintr", "--pid", str(pid),
                     "--duration", repr(self.spec.duration), "--parent", str(os.getpid())],
                    "eintr-inject")
        return {"pid": pid, "syscall": EINTR_SYSCALL, "errno": "EINTR",
                "injector_pid": self._running().pid}

    def undo(self) -> dict[str, Any]:
        return self._report("injected_eintr", "injector_output") if self.active else {}


class ReloadMaster(Injector):
    """SIGHUP master once."""

    KIND = FaultKind("reload-master", lasting=False)

    def apply(self) -> dict[str, Any]:
        os.kill(self._master(), signal.SIGHUP)
        return {"pid": self.info.master_pid}


class RotateBinary(Injector):
    """K copies of imapd and a symlink re-pointed every ``every`` seconds (0: at every tick of
    the fault runner, 10 ms), as in the UC Davis workaround; the instance must run imapd through
    its symlink (deploy option imapd_binary=symlink). Re-pointing is atomic: a new link renamed
    over the old one. Records the series ``rotation`` (re-points so far, a tally) a few times a
    second, and the time one re-point took in its event. ``every`` is its own re-pointing
    period, not a schedule of occurrences; ``duration`` 0 is until the run ends."""

    KIND = FaultKind("rotate-binary", lasting=True, repeats_itself=True,
                     params={"copies": Param(int, 5, at_least=2), "duration": Param(float, 0.0)})

    RECORD_EVERY_S = 0.5

    def check(self) -> None:
        link = InstancePaths.of(self.info).imapd_link
        if not link.is_symlink() or str(link) not in Path(self.info.cyrus_conf).read_text():
            raise UsageError(f"fault {self.spec.text!r}: instance {self.info.name} does not run "
                             "imapd through a symlink; deploy it with --rotating-binary "
                             "(service option imapd_binary=symlink)")

    def apply(self) -> dict[str, Any]:
        self.check()
        paths = InstancePaths.of(self.info)
        real = inst.programs_of(self.info).path("imapd")
        self._copies = []
        for n in range(1, int(self.spec.params["copies"]) + 1):
            copy = paths.bin_dir / f"imapd_{n:03d}"
            shutil.copy2(real, copy)
            self._copies.append(copy)
        self._link = paths.imapd_link
        self._real = real
        self.guard([symlink_action(self._link, real, self._copies)])
        self._next = 0
        self._rotations = 0
        self._point_s: list[float] = []  # seconds each re-point took
        self._last = 0.0
        self._recorded = 0.0
        self.active = True
        self._started = time.monotonic()
        self._record(force=True)
        self.tick(time.monotonic())
        return {"copies": len(self._copies), "every": self.spec.every}

    def _point(self, target: Path) -> None:
        tmp = self._link.with_name(".imapd.new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        os.replace(tmp, self._link)

    def _record(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.store is not None and (force or now - self._recorded >= self.RECORD_EVERY_S):
            self.store.add("rotation", self._rotations, instance=self.info.name,
                           copies=len(self._copies))
            self._recorded = now

    def tick(self, now: float) -> None:
        duration = self.spec.duration
        if duration and time.monotonic() - self._started >= duration:
            return
        if time.monotonic() - self._last < self.spec.every:
            return
        start = time.perf_counter()
        self._point(self._copies[self._next % len(self._copies)])
        self._point_s.append(time.perf_counter() - start)
        self._next += 1
        self._rotations += 1
        self._last = time.monotonic()
        self._record()

    def undo(self) -> dict[str, Any]:
        if not self.active:
            return {}
        super().undo()
        self._point(self._real)
        self._record(force=True)
        for copy in self._copies:
            copy.unlink(missing_ok=True)
        detail: dict[str, Any] = {"rotations": self._rotations}
        if self._point_s:
            ordered = sorted(self._point_s)
            detail["repoint_us_p50"] = round(ordered[len(ordered) // 2] * 1e6, 1)
            detail["repoint_us_max"] = round(ordered[-1] * 1e6, 1)
        return detail


class KillChild(Injector):
    """SIGKILL one random child of master running the given service."""

    KIND = FaultKind("kill-child", lasting=False, params={"service": Param(str, "imap")})

    def apply(self) -> dict[str, Any]:
        master = self._master()
        children = _children_of(master, self.spec.params.get("service", "imap"))
        if not children:
            return {"killed": None, "why": "no child of that service"}
        victim = random.choice(children)
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            return {"killed": None, "why": "child exited first"}
        return {"killed": victim}


class KillMaster(Injector):
    """SIGKILL master. Undone by ending its orphans and starting the instance again, so the
    deployment is usable after the run."""

    KIND = FaultKind("kill-master", lasting=False)

    def apply(self) -> dict[str, Any]:
        pid = self._master()
        os.kill(pid, signal.SIGKILL)
        self.active = True
        return {"pid": pid}

    def undo(self) -> dict[str, Any]:
        if not self.active:
            return {}
        super().undo()
        old = self.info.master_pid
        inst.stop(self.info)
        inst.start(self.info)
        return {"restarted": True, "old_pid": old, "new_pid": self.info.master_pid}


def _children_of(pid: int, service: str) -> list[int]:
    """Children of master serving ``service`` (CYRUS_SERVICE, as the collectors group them)."""
    try:
        children = parse_children(Path(f"/proc/{pid}/task/{pid}/children").read_text())
    except OSError:
        return []
    found = []
    for child in children:
        try:
            environ = Path(f"/proc/{child}/environ").read_bytes()
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue  # exited meanwhile
        if service_of(environ, cmdline) == service:
            found.append(child)
    return found


def make_injector(spec: FaultSpec, info: InstanceInfo) -> Injector:
    return INJECTORS[spec.kind](spec, info)
