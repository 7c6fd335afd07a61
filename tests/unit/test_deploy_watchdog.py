"""The deployment watchdog: once its owner has exited, a deployment still there is stopped (its
processes by pid, its directory removed); one stopped by its owner is left alone. Without
Cyrus: the "deployment" is a marked directory and a process whose command line names it, the
way deploy_down finds a half-started deployment's processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from loadtest.deploy.manager import MARKER
from loadtest.deploy.procs import pid_alive
from loadtest.deploy.watchdog import start_watchdog, stop_watchdog


def process_in(root: Path) -> subprocess.Popen[bytes]:
    """A stand-in for an instance's process: its command line names a file in ``root``."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                             f"{root}/imapd.conf"])


def test_the_deployment_of_a_killed_owner_is_stopped(tmp_path: Path) -> None:
    root = tmp_path / "deployment"
    root.mkdir()
    (root / MARKER).write_text("")
    owner = subprocess.Popen(["sleep", "60"])
    server = process_in(root)
    dog = start_watchdog(root, owner=owner.pid)
    try:
        assert dog.poll() is None  # waits while the owner lives
        owner.kill()
        owner.wait(5)
        assert dog.wait(20) == 0
        assert server.wait(5) is not None
        assert not root.exists()
    finally:
        for proc in (owner, server, dog):
            proc.kill()
            proc.wait(5)


def test_a_deployment_its_owner_stopped_is_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "deployment"  # never made, or already removed by its owner
    owner = subprocess.Popen(["sleep", "60"])
    bystander = process_in(root)  # names the path, but nothing there is a deployment
    dog = start_watchdog(root, owner=owner.pid)
    try:
        owner.kill()
        owner.wait(5)
        assert dog.wait(20) == 0
        assert bystander.poll() is None and pid_alive(bystander.pid)
    finally:
        for proc in (owner, bystander, dog):
            proc.kill()
            proc.wait(5)


def test_the_owner_stops_its_watchdog(tmp_path: Path) -> None:
    dog = start_watchdog(tmp_path / "deployment")
    assert dog.poll() is None
    stop_watchdog(dog)
    assert dog.returncode is not None
    stop_watchdog(dog)  # twice is harmless
