"""The collectors read master's stats file without a lock (samplers.read_master_report)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from loadtest.collectors.samplers import read_master_report
from loadtest.core.parsers import parse_master_stats
from tests.unit.test_collectors_parsers import MASTER_TXT


def test_read_while_another_process_holds_the_lock(tmp_path: Path) -> None:
    """Master takes its lock without waiting and skips the report when it cannot: a reader
    that locks makes master skip. Ours reads a whole report while another process holds an
    exclusive lock, as master does while it writes."""
    stats = tmp_path / "master.txt"
    stats.write_text(MASTER_TXT)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time\n"
         f"fh = open({str(stats)!r}, 'r+'); fcntl.lockf(fh, fcntl.LOCK_EX)\n"
         "print('locked', flush=True); time.sleep(20)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert read_master_report(str(stats), attempts=1) == parse_master_stats(MASTER_TXT)
    finally:
        holder.kill()
        holder.wait(5)


def test_torn_reads_are_retried_then_given_up(tmp_path: Path) -> None:
    stats = tmp_path / "master.txt"
    stats.write_text(MASTER_TXT[:-30])  # cut inside its last line: never whole
    assert read_master_report(str(stats), attempts=3) is None
    stats.write_text(MASTER_TXT)
    assert read_master_report(str(stats), attempts=3) == parse_master_stats(MASTER_TXT)
