"""Fault injectors against a local test deployment: each one applies a fault to one instance and
knows how to undo it, and undo is safe to call twice.

Processes are addressed by the pids in deployment.json (master) or found below master's pid
(children): only processes of our own deployment are ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from loadtest.collectors.parsers import parse_children, service_of
from loadtest.deploy import instance as inst
from loadtest.deploy.deployment import InstanceInfo
from loadtest.deploy.procs import pid_alive
from loadtest.deploy.render import InstancePaths
from loadtest.errors import UsageError
from loadtest.faults.spec import FaultSpec, signal_number


class Injector:
    """Base: ``apply()`` starts the fault and returns details for the event; ``undo()`` ends it."""

    def __init__(self, spec: FaultSpec, info: InstanceInfo) -> None:
        self.spec = spec
        self.info = info
        self.active = False

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

    def apply(self) -> dict[str, Any]:
        os.kill(self._master(), signal.SIGSTOP)
        self.active = True
        return {"pid": self.info.master_pid}

    def undo(self) -> dict[str, Any]:
        if self.active and self.info.master_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.info.master_pid, signal.SIGCONT)
        return super().undo()


class SignalStorm(Injector):
    """Many harmless signals per second at master: every one interrupts its select() (EINTR),
    the path on which the 2016 master skipped worker accounting."""

    def apply(self) -> dict[str, Any]:
        self._pid = self._master()
        self._signal = signal_number(self.spec.params["signal"])
        self._rate = float(self.spec.params["rate"])
        self._sent = 0
        self._started = time.monotonic()
        self.active = True
        return {"pid": self._pid, "rate": self._rate, "signal": self.spec.params["signal"]}

    def tick(self, now: float) -> None:
        due = int((time.monotonic() - self._started) * self._rate) - self._sent
        for _ in range(max(0, due)):
            try:
                os.kill(self._pid, self._signal)
            except ProcessLookupError:
                self.active = False
                return
            self._sent += 1

    def undo(self) -> dict[str, Any]:
        sent = getattr(self, "_sent", 0)
        super().undo()
        return {"signals_sent": sent}


class ReloadMaster(Injector):
    def apply(self) -> dict[str, Any]:
        os.kill(self._master(), signal.SIGHUP)
        return {"pid": self.info.master_pid}


class KillChild(Injector):
    """SIGKILL one random child of master running the given service."""

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


class RotateBinary(Injector):
    """K copies of imapd and a symlink re-pointed every ``every`` seconds, as in the UC Davis
    workaround; the instance must run imapd through its symlink (deploy option
    imapd_binary=symlink). Re-pointing is atomic: a new link renamed over the old one."""

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
        self._next = 0
        self._rotations = 0
        self._last = 0.0
        self.active = True
        self._started = time.monotonic()
        self.tick(time.monotonic())
        return {"copies": len(self._copies), "every": self.spec.every}

    def _point(self, target: Path) -> None:
        tmp = self._link.with_name(".imapd.new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        os.replace(tmp, self._link)

    def tick(self, now: float) -> None:
        duration = self.spec.duration
        if duration and time.monotonic() - self._started >= duration:
            return
        if time.monotonic() - self._last < self.spec.every:
            return
        self._point(self._copies[self._next % len(self._copies)])
        self._next += 1
        self._rotations += 1
        self._last = time.monotonic()

    def undo(self) -> dict[str, Any]:
        if not self.active:
            return {}
        super().undo()
        self._point(self._real)
        for copy in self._copies:
            copy.unlink(missing_ok=True)
        return {"rotations": self._rotations}


INJECTORS: dict[str, type[Injector]] = {
    "stall-master": StallMaster, "signal-storm": SignalStorm, "reload-master": ReloadMaster,
    "rotate-binary": RotateBinary, "kill-child": KillChild, "kill-master": KillMaster,
}


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
