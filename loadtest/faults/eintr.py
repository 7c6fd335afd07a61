"""The eintr-inject fault's own process: ``python -m loadtest.faults.eintr --pid P --duration D
--parent PPID``.

It attaches Debian's strace to master so that every pselect6() fails with EINTR
(``-e inject=pselect6:error=EINTR:when=1+``): the condition of the 2016 incident, produced
deterministically. It prints "ready" once strace is attached (the fault's window starts then)
and, on exit, one JSON line with strace's counts and whether master is still traced and alive.

Ending the injection safely is why this process exists. strace detaching while master sits
between the entry and the exit of an injected call (the call already turned into syscall -1)
leaves master with ENOSYS, and Cyrus's master dies with "select failed: Function not
implemented" (measured: 1 detach in 2 to 5 killed master). So the injection ends in three
steps: SIGSTOP master (strace forwards it and master parks in a group stop, outside any
syscall), stop strace (it detaches from a stopped master), SIGCONT master (30 of 30 detaches
survived that way, against 1 of 5 failing without). The process bounds itself like the signal
storm: its own deadline, its parent's death (kernel parent-death signal and a getppid() check),
SIGTERM or SIGINT, or master gone; strace runs under coreutils ``timeout`` as a last resort
should this process be SIGKILLed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from loadtest.faults.storm import PARENT_CHECK_S, Stop, die_with_parent, stop_on_signals

SYSCALL = "pselect6"  # master's wait in Cyrus 3.x (glibc's pselect on x86-64)
ATTACH_TIMEOUT_S = 3.0
STOP_TIMEOUT_S = 2.0  # master must reach its group stop within this
LAST_RESORT_SLACK_S = 5.0  # strace's own timeout beyond the fault's duration
SIGSTOP_BIT = 1 << (signal.SIGSTOP - 1)


def proc_status(pid: int) -> dict[str, str]:
    """/proc/PID/status as a dict ({} when the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return parse_status(text)


def parse_status(text: str) -> dict[str, str]:
    """Fields of /proc/PID/status (pure)."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value.strip()
    return fields


def tracer_of(pid: int) -> int:
    """TracerPid of ``pid`` (0: not traced, or gone)."""
    try:
        return int(proc_status(pid).get("TracerPid", "0"))
    except ValueError:
        return 0


def parked(status: dict[str, str]) -> bool:
    """Master has taken its SIGSTOP: none pending any more and the task is stopped (under
    ptrace a group stop shows as 't')."""
    if not status:
        return False
    pending = int(status.get("SigPnd", "0"), 16) | int(status.get("ShdPnd", "0"), 16)
    return not pending & SIGSTOP_BIT and status.get("State", "?")[:1] in ("t", "T")


def parse_strace_summary(text: str) -> dict[str, tuple[int, int]]:
    """syscall -> (calls, errors) from `strace -c` output (pure)."""
    counts: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 6 and parts[3].isdigit() and parts[4].isdigit():
            counts[parts[5]] = (int(parts[3]), int(parts[4]))
        elif len(parts) == 5 and parts[3].isdigit() and parts[4] != "total":
            counts[parts[4]] = (int(parts[3]), 0)
    counts.pop("total", None)
    return counts


def _wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.001) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def detach_safely(pid: int, strace: subprocess.Popen[bytes]) -> str:
    """End the injection without leaving master inside a tampered syscall; returns how."""
    how = "stopped, detached, continued"
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:
        how = "master gone"
    else:
        if not _wait_until(lambda: parked(proc_status(pid)), STOP_TIMEOUT_S):
            how = "master did not park; detached anyway"
        else:
            time.sleep(0.01)  # strace's PTRACE_LISTEN after the group stop
    if strace.poll() is None:
        strace.send_signal(signal.SIGTERM)
    try:
        strace.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
        strace.kill()
        strace.wait()
    _wait_until(lambda: tracer_of(pid) == 0, 2.0)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)
    return how


def inject(pid: int, duration: float, parent: int) -> dict[str, object]:
    fd, summary_name = tempfile.mkstemp(prefix="eintr-inject-", suffix=".txt")
    os.close(fd)
    summary = Path(summary_name)
    strace = subprocess.Popen(
        ["timeout", "--kill-after=2", f"{duration + LAST_RESORT_SLACK_S:.3f}",
         "strace", "-c", "-o", summary_name, "-p", str(pid), "-e", f"trace={SYSCALL}",
         "-e", f"inject={SYSCALL}:error=EINTR:when=1+"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if not _wait_until(lambda: tracer_of(pid) != 0 or strace.poll() is not None,
                       ATTACH_TIMEOUT_S, 0.005) or tracer_of(pid) == 0:
        if strace.poll() is None:
            strace.kill()
        _out, err = strace.communicate()
        summary.unlink(missing_ok=True)
        print(f"error strace did not attach to master {pid}: "
              f"{(err or b'').decode(errors='replace').strip()[-200:]}", flush=True)
        return {"ended": "not attached"}
    result: dict[str, object] = {}
    why = "deadline"
    start = time.monotonic()
    try:
        try:
            print("ready", flush=True)  # the fault's window starts now
            deadline = time.monotonic() + duration
            if os.getppid() != parent:
                raise Stop
            while time.monotonic() < deadline:
                if os.getppid() != parent:
                    why = "parent gone"
                    break
                if not proc_status(pid):
                    why = "master gone"
                    break
                if strace.poll() is not None:
                    why = "strace ended"
                    break
                time.sleep(min(PARENT_CHECK_S, max(0.0, deadline - time.monotonic())))
        except Stop:
            why = "stopped"
        result["seconds"] = round(time.monotonic() - start, 3)
    finally:
        # Nothing may interrupt the detach: master would stay stopped or traced.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        result["detach"] = detach_safely(pid, strace)
        with contextlib.suppress(OSError):
            counts = parse_strace_summary(summary.read_text())
            calls, errors = counts.get(SYSCALL, (None, None))
            result.update({"injected_eintr": errors, f"{SYSCALL}_calls": calls})
        summary.unlink(missing_ok=True)
    result.update({"ended": why, "detached": tracer_of(pid) == 0,
                   "master_alive_after": bool(proc_status(pid))})
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.faults.eintr")
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--parent", type=int, required=True)
    args = parser.parse_args(argv)
    if args.duration <= 0:
        parser.error("--duration must be > 0")
    stop_on_signals()
    die_with_parent()
    result = inject(args.pid, args.duration, args.parent)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
