"""The signal storm's own process: ``python -m loadtest.faults.storm --pid P --signal CHLD
--rate R --duration D --parent PPID``.

Signals go out evenly paced, one kill() every 1/R seconds (a batch per tick would coalesce: a
standard signal already pending at master is not queued twice). A signal that falls more than one
period behind is skipped, not sent in a burst, and counted as missed. The process bounds itself:
it stops at its own deadline (D seconds), when its parent (the load generator) dies (the kernel's
parent-death signal, and a check of getppid()), on SIGTERM or SIGINT, or when the target is gone.
It prints "ready" when the first signal is due and, on exit, one JSON line: signals delivered (kill() calls that succeeded), missed, seconds.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import sys
import time

MAX_RATE = 50_000.0  # signals/s: above this the storm would take a core of the 2-core machine
PARENT_CHECK_S = 0.1
PR_SET_PDEATHSIG = 1


class Stop(Exception):
    """Raised in the fault process's loop by SIGTERM or SIGINT (see stop_on_signals)."""


def _stop(signum: int, frame: object) -> None:
    raise Stop


def stop_on_signals() -> None:
    """SIGTERM and SIGINT end the fault process's loop through Stop (its result still goes out)."""
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)


def die_with_parent() -> None:
    """SIGTERM to this process when its parent dies (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # the getppid() check in the loop still bounds us


def storm(pid: int, signum: int, rate: float, duration: float, parent: int) -> dict[str, float | str]:
    period = 1.0 / rate
    delivered = missed = 0
    why = "deadline"
    start = time.monotonic()
    deadline = start + duration
    next_at = start
    next_parent_check = start + PARENT_CHECK_S
    try:
        if os.getppid() != parent:  # it died before we could ask to be told
            raise Stop
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            if now >= next_parent_check:
                if os.getppid() != parent:
                    why = "parent gone"
                    break
                next_parent_check = now + PARENT_CHECK_S
            if now < next_at:
                wait = next_at - now
                if wait > 0.0002:  # sleep's granularity is ~60 µs: spin the last stretch
                    time.sleep(wait - 0.0001)
                continue
            behind = int((now - next_at) / period)
            if behind:
                missed += behind
                next_at += behind * period
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                why = "target gone"
                break
            delivered += 1
            next_at += period
    except Stop:
        why = "stopped"
    seconds = time.monotonic() - start
    result: dict[str, float | str] = {"signals_delivered": delivered, "signals_missed": missed, "seconds": round(seconds, 3),
            "rate_achieved": round(delivered / seconds, 1) if seconds > 0 else 0.0, "ended": why}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.faults.storm")
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--signal", required=True, help="name without SIG, e.g. CHLD")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--parent", type=int, required=True)
    args = parser.parse_args(argv)
    if not 0 < args.rate <= MAX_RATE or args.duration <= 0:
        parser.error(f"--rate must be in (0, {MAX_RATE:.0f}] and --duration > 0")
    stop_on_signals()
    die_with_parent()
    print("ready", flush=True)  # the injector's window starts now, not at our fork
    result = storm(args.pid, int(getattr(signal, f"SIG{args.signal}")), args.rate,
                   args.duration, args.parent)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the count must get out
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
