"""A per-instance syslog receiver: Cyrus logs only through syslog(3) to /dev/log.

master runs in a private mount namespace where /dev/log is this receiver's socket (see
`instance.py`), so the host's syslog daemon, if any, is never touched. Run as
``python -m loadtest.deploy.syslogd --socket S --output F --pid-file P``; it exits by itself once
the master whose pid file it watches has gone (or never appeared), and on SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time
from pathlib import Path

PIDFILE_WAIT_S = 60.0  # master must have written its pid file by then, or there is nothing to log
POLL_S = 1.0


def _master_alive(pid_file: Path, started: float) -> bool:
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return time.monotonic() - started < PIDFILE_WAIT_S
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in (b"Z", b"X")


def serve(sock_path: Path, output: Path, pid_file: Path) -> int:
    sock_path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    os.chmod(sock_path, 0o666)  # imapd runs as the cyrus user
    sock.settimeout(POLL_S)
    stop = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    started = time.monotonic()
    with output.open("ab", buffering=0) as out:
        while not stop:
            try:
                line = sock.recv(65536)
            except TimeoutError:
                if not _master_alive(pid_file, started):
                    break
                continue
            except InterruptedError:
                continue
            out.write(line.rstrip(b"\0\n") + b"\n")
    sock.close()
    sock_path.unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--pid-file", required=True, type=Path)
    args = parser.parse_args(argv)
    return serve(args.socket, args.output, args.pid_file)


if __name__ == "__main__":
    sys.exit(main())
