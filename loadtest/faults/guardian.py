"""The fault guardian: a small process outside the load generator that undoes faults.

A fault that freezes or floods a server (a SIGSTOPped master, a signal storm, a rotated binary)
must end even when the generator dies (SIGKILL, OOM, a hung hub). The generator starts one
guardian per fault schedule (`Guardian.start()`), and before it applies a lasting fault it
*arms* the guardian with the fault's undo actions and a deadline. The guardian runs those
actions when the deadline passes, when the generator disappears (its pipe closes or its pid is
gone), or when it is itself terminated; the generator *disarms* it once it undid the fault
itself. Undo actions are idempotent, so running one twice is harmless.

Undo actions (plain JSON, so other injectors can use them):

- ``{"do": "signal", "pid": N, "start_time": T, "signal": "CONT"}``: send a signal, but only to
  that very process: its /proc start time must still be T (a recycled pid is left alone).
- ``{"do": "symlink", "link": PATH, "target": PATH, "remove": [PATH, ...]}``: point a symlink
  back at its target (atomically) and delete files (rotated copies).

Protocol on the guardian's stdin, one JSON object per line: ``{"arm": KEY, "actions": [...],
"in_s": SECONDS or null}``, ``{"disarm": KEY}`` and ``{"close": true}`` (undo what is armed, exit).
EOF means the generator is gone: whatever is still armed is undone at once. The guardian prints ``ready`` when it listens.

Run as a script (``python guardian.py PARENT_PID PARENT_START_TIME``), not as ``-m``: it
imports the standard library only, so it starts fast and does not load gevent or Locust.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

GRACE_S = 1.0  # the guardian's deadline trails the generator's own undo by this much
PARENT_POLL_S = 0.1  # how often the parent's pid is checked (a forked child may hold the pipe)


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (/proc/PID/stat field 22), None when it
    is gone or a zombie: with the pid it names one process, never a later one with that pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def signal_action(pid: int, signal_name: str) -> dict[str, Any]:
    """Undo action: send SIG``signal_name`` to ``pid`` if it is still the process running now."""
    start = process_start_time(pid)
    if start is None:
        raise ProcessLookupError(f"pid {pid} is not running")
    return {"do": "signal", "pid": pid, "start_time": start, "signal": signal_name}


def symlink_action(link: Path, target: Path, remove: list[Path]) -> dict[str, Any]:
    """Undo action: point ``link`` back at ``target`` and delete ``remove``."""
    return {"do": "symlink", "link": str(link), "target": str(target),
            "remove": [str(p) for p in remove]}


def run_action(action: dict[str, Any]) -> str:
    """Run one undo action; return one line saying what was done (never raises)."""
    try:
        if action["do"] == "signal":
            pid = int(action["pid"])
            if process_start_time(pid) != action["start_time"]:
                return f"pid {pid} is gone (or another process now): no SIG{action['signal']}"
            os.kill(pid, int(getattr(signal, f"SIG{action['signal']}")))
            return f"sent SIG{action['signal']} to pid {pid}"
        if action["do"] == "symlink":
            link = Path(action["link"])
            tmp = link.with_name(f".{link.name}.guardian")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(action["target"])
            os.replace(tmp, link)
            for path in action["remove"]:
                Path(path).unlink(missing_ok=True)
            return f"pointed {link} back at {action['target']}"
        return f"unknown undo action {action['do']!r}"
    except (OSError, KeyError, ValueError, TypeError) as exc:
        return f"undo {action.get('do')!r} failed: {exc}"


class Guardian:
    """The generator's handle on its guardian process."""

    def __init__(self, proc: subprocess.Popen[bytes], write_fd: int) -> None:
        self.proc = proc
        self._fd = write_fd
        self._keys = 0

    @classmethod
    def start(cls) -> Guardian:
        """Start the guardian and wait until it listens (it imports the standard library only)."""
        me = os.getpid()
        read_fd, write_fd = os.pipe()
        try:
            # Own session: a Ctrl-C to the terminal's process group must not kill the guardian
            # before the generator's fault is undone.
            proc = subprocess.Popen(
                [sys.executable, "-I", __file__, str(me), str(process_start_time(me))],
                stdin=read_fd, stdout=subprocess.PIPE, close_fds=True, start_new_session=True)
        except BaseException:
            os.close(write_fd)
            raise
        finally:
            os.close(read_fd)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        proc.stdout.close()
        if line.strip() != b"ready":
            os.close(write_fd)
            proc.wait(5)
            raise OSError(f"the fault guardian did not start (exit {proc.returncode})")
        return cls(proc, write_fd)

    def new_key(self) -> str:
        self._keys += 1
        return str(self._keys)

    def arm(self, key: str, actions: list[dict[str, Any]], in_s: float | None) -> None:
        """Undo ``actions`` in ``in_s`` seconds (never, when None) or when the generator dies."""
        self._send({"arm": key, "actions": actions, "in_s": in_s})

    def disarm(self, key: str) -> None:
        self._send({"disarm": key})

    def _send(self, message: dict[str, Any]) -> None:
        # One short write to a pipe is atomic and does not block (far below the pipe's size).
        os.write(self._fd, json.dumps(message).encode() + b"\n")

    def close(self, timeout: float = 5.0) -> None:
        """End the guardian: whatever is still armed is undone now (idempotent). Said in a
        message, not only by closing the pipe: a process forked meanwhile may hold its end."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                self._send({"close": True})
            os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# -- the guardian process -------------------------------------------------------------------------


def _log(message: str) -> None:
    with contextlib.suppress(OSError):
        sys.stderr.write(f"cyrus-loadtest guardian: {message}\n")
        sys.stderr.flush()


def _undo(armed: dict[str, tuple[list[dict[str, Any]], float | None]], keys: list[str],
          why: str) -> None:
    for key in keys:
        actions, _ = armed.pop(key)
        for action in actions:
            _log(f"{why}: {run_action(action)}")


def serve(parent_pid: int, parent_start: int | None) -> None:
    armed: dict[str, tuple[list[dict[str, Any]], float | None]] = {}
    terminated: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: terminated.append(signum))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    os.set_blocking(0, False)
    print("ready", flush=True)
    buffer = b""
    while True:
        if terminated:
            _undo(armed, list(armed), "terminated")
            return
        now = time.monotonic()
        due = [k for k, (_, deadline) in armed.items() if deadline is not None and now >= deadline]
        _undo(armed, due, "deadline passed")
        if process_start_time(parent_pid) != parent_start:
            _undo(armed, list(armed), "generator gone")
            return
        deadlines = [d for _, d in armed.values() if d is not None]
        wait = min([PARENT_POLL_S, *(max(0.0, d - now) for d in deadlines)])
        with contextlib.suppress(InterruptedError):
            ready, _, _ = select.select([0], [], [], wait)
            if not ready:
                continue
        try:
            chunk = os.read(0, 65536)
        except BlockingIOError:
            continue
        except InterruptedError:
            continue
        if not chunk:
            _undo(armed, list(armed), "generator gone")
            return
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            message = json.loads(line)
            if "arm" in message:
                in_s = message["in_s"]
                armed[message["arm"]] = (message["actions"],
                                         None if in_s is None else time.monotonic() + in_s)
            elif "disarm" in message:
                armed.pop(message["disarm"], None)
            elif "close" in message:
                _undo(armed, list(armed), "closed")
                return


if __name__ == "__main__":
    serve(int(sys.argv[1]), None if sys.argv[2] == "None" else int(sys.argv[2]))
