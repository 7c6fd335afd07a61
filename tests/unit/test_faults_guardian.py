"""The fault guardian undoes a fault at its deadline, when the generator dies, and never signals a
process other than the one it was given. Targets are `sleep` processes this test starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest.faults.guardian import (
    Guardian,
    process_start_time,
    run_action,
    signal_action,
    symlink_action,
)


def state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def wait_state(pid: int, wanted: set[str], timeout: float) -> float:
    """Seconds until ``pid`` is in one of ``wanted`` states; fails at ``timeout``."""
    start = time.monotonic()
    while state(pid) not in wanted:
        assert time.monotonic() - start < timeout, f"pid {pid} still in state {state(pid)}"
        time.sleep(0.02)
    return time.monotonic() - start


@pytest.fixture
def stopped() -> Iterator[int]:
    """A stopped `sleep` process, the stand-in for a SIGSTOPped master."""
    proc = subprocess.Popen(["sleep", "60"])
    os.kill(proc.pid, signal.SIGSTOP)
    wait_state(proc.pid, {"T"}, 2)
    yield proc.pid
    proc.kill()
    proc.wait()


def test_deadline_resumes_the_process(stopped: int) -> None:
    guardian = Guardian.start()
    try:
        guardian.arm("1", [signal_action(stopped, "CONT")], in_s=0.3)
        time.sleep(0.15)
        assert state(stopped) == "T"
        assert wait_state(stopped, {"S", "R"}, 3) < 2.0
    finally:
        guardian.close()


def test_disarmed_fault_is_left_alone_and_close_undoes_what_is_armed(stopped: int) -> None:
    guardian = Guardian.start()
    # A deadline far enough away that a loaded machine cannot deliver the disarm after it.
    guardian.arm("1", [signal_action(stopped, "CONT")], in_s=1.0)
    guardian.disarm("1")
    time.sleep(1.5)
    assert state(stopped) == "T"
    guardian.arm("2", [signal_action(stopped, "CONT")], in_s=None)
    guardian.close()
    assert state(stopped) in {"S", "R"}
    assert guardian.proc.returncode == 0


def test_killed_generator_resumes_the_process_within_a_second(stopped: int, tmp_path: Path) -> None:
    script = tmp_path / "generator.py"
    script.write_text(textwrap.dedent(f"""
        import time
        from loadtest.faults.guardian import Guardian, signal_action
        guardian = Guardian.start()
        guardian.arm("1", [signal_action({stopped}, "CONT")], in_s=60)
        print("armed", flush=True)
        time.sleep(60)
    """))
    generator = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert generator.stdout.readline().strip() == "armed"
        time.sleep(0.2)
        assert state(stopped) == "T"
        generator.kill()
        generator.wait()
        assert wait_state(stopped, {"S", "R"}, 3) < 2.0
    finally:
        generator.kill()
        generator.wait()


def test_signal_is_not_sent_to_a_process_that_is_no_longer_the_one_given(stopped: int) -> None:
    action = signal_action(stopped, "CONT")
    assert action["start_time"] == process_start_time(stopped)
    recycled = {**action, "start_time": action["start_time"] - 1}  # same pid, another process
    assert "is gone" in run_action(recycled)
    assert state(stopped) == "T"
    assert run_action(action) == f"sent SIGCONT to pid {stopped}"
    wait_state(stopped, {"S", "R"}, 2)


def test_signal_action_refuses_a_pid_that_is_not_running() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    with pytest.raises(ProcessLookupError):
        signal_action(proc.pid, "CONT")


def test_symlink_action_points_back_and_removes_copies(tmp_path: Path) -> None:
    real, copy = tmp_path / "imapd.real", tmp_path / "imapd_001"
    real.write_text("real")
    copy.write_text("copy")
    link = tmp_path / "imapd"
    link.symlink_to(copy)
    assert "pointed" in run_action(symlink_action(link, real, [copy]))
    assert os.readlink(link) == str(real) and not copy.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imapd", "imapd.real"]
