"""Stop a deployment when the process that owns it dies without stopping it.

``cyrus-loadtest acceptance``, ``scenario`` and ``bench`` start a deployment of their own and
stop it on every way out they see: a normal end, Ctrl-C, SIGTERM. A SIGKILL (a CI runner's
timeout, the OOM killer) gives them no way out, and Cyrus master runs in a session of its own,
so a kill of the owner's process group does not reach it either: the deployment would run on.
The owner therefore starts this watchdog first, in a session of its own; it waits for the
owner's exit (a pidfd: no pid-reuse race) and then, if the deployment is still there, stops it
with ``deploy_down`` (only the processes of that directory, by pid). The owner stops the
watchdog itself once it has stopped the deployment.

    python -m loadtest.deploy.watchdog --owner PID --root DIR
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from loadtest.deploy.procs import pid_alive, terminate


def start_watchdog(root: str | Path, owner: int | None = None) -> subprocess.Popen[bytes]:
    """A watchdog over ``root`` for ``owner`` (default: this process). It answers "ready" once
    it watches, so that a kill right after this call cannot slip past it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadtest.deploy.watchdog",
         "--owner", str(os.getpid() if owner is None else owner),
         "--root", str(Path(root).absolute())],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True)
    assert proc.stdout is not None  # stdout=PIPE
    line = proc.stdout.readline()
    proc.stdout.close()
    if line.strip() != b"ready":
        stop_watchdog(proc)
        raise RuntimeError(f"the deployment watchdog for {root} did not start")
    return proc


def stop_watchdog(proc: subprocess.Popen[bytes] | None) -> None:
    """The owner has stopped its deployment itself: the watchdog has nothing left to do."""
    if proc is None or proc.poll() is not None:
        return
    terminate([proc.pid], 5.0)
    proc.wait(timeout=5)


@contextlib.contextmanager
def watching(root: str | Path) -> Iterator[None]:
    """A watchdog over ``root`` for the block: start the deployment and stop it inside."""
    proc = start_watchdog(root)
    try:
        yield
    finally:
        stop_watchdog(proc)


def wait_for_exit(pid: int) -> None:
    """Until ``pid`` has exited (returns at once if it already has)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except OSError:  # no pidfd (kernel before 5.3): look twice a second
        while pid_alive(pid):
            time.sleep(0.5)
        return
    try:
        select.select([fd], [], [], None)  # readable once the process has exited
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--owner", type=int, required=True)
    parser.add_argument("--root", required=True)
    args = parser.parse_args(argv)
    print("ready", flush=True)
    with contextlib.suppress(OSError):
        sys.stdout.close()  # the owner reads one line; nothing of ours holds its pipe after
    wait_for_exit(args.owner)
    root = Path(args.root)
    from loadtest.deploy.manager import DEPLOYMENT_FILE, MARKER, deploy_down

    if not (root / DEPLOYMENT_FILE).exists() and not (root / MARKER).exists():
        return 0  # stopped by its owner, or never started
    deploy_down(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
