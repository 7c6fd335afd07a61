"""Process helpers for the deployment: liveness that treats zombies as dead, finding an
instance's processes, and stopping them by pid."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable


def pid_alive(pid: int | None) -> bool:
    """True when ``pid`` runs; a zombie (dead, not yet reaped) counts as gone."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def pids_mentioning(marker: str) -> list[int]:
    """Live pids whose command line contains ``marker`` (an instance's unique directory).

    Every process of an instance carries its imapd.conf path (master does not pass -C on, so the
    rendered cyrus.conf gives it to each cmd), which makes this exact, not a guess by name.
    """
    needle = marker.encode()
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except OSError:
            continue
        if needle in cmdline and pid_alive(int(entry)):
            found.append(int(entry))
    return sorted(found)


def signal_pids(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until none of ``pids`` is alive; return those still alive at the deadline."""
    pending = [p for p in pids if p]
    deadline = time.monotonic() + timeout
    while pending:
        _reap(pending)
        pending = [p for p in pending if pid_alive(p)]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return pending


def _reap(pids: Iterable[int]) -> None:
    """Reap those of ``pids`` that are our own exited children (a master started in this
    process); only these pids, so no other subprocess loses its exit status."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def terminate(pids: Iterable[int], grace: float) -> list[int]:
    """SIGTERM, wait ``grace`` seconds, SIGKILL what is left; return pids that survived both."""
    pids = [p for p in pids if pid_alive(p)]
    signal_pids(pids, signal.SIGTERM)
    left = wait_gone(pids, grace)
    if left:
        signal_pids(left, signal.SIGKILL)
        left = wait_gone(left, 5.0)
    return left
