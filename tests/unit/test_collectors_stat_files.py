"""HeldStatFiles: children's /proc/PID/stat opened once, read again with pread; a descriptor
stays bound to its process, so a reaped process is never read as another."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from loadtest.collectors.samplers import HeldStatFiles, held_stat_limit
from loadtest.core.parsers import parse_pid_stat


@contextmanager
def sleepers(count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = [subprocess.Popen(["sleep", "30"]) for _ in range(count)]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(5)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_reads_again_through_one_descriptor() -> None:
    files = HeldStatFiles(limit=10)
    with sleepers(1) as (proc,):
        first = parse_pid_stat(files.read(proc.pid))
        fds = open_fds()
        second = parse_pid_stat(files.read(proc.pid))
        assert open_fds() == fds and len(files) == 1
    assert first.pid == second.pid == proc.pid and first.comm == "sleep"
    assert first.starttime == second.starttime
    files.close()


def test_a_zombie_reads_as_z_and_a_reaped_process_is_gone() -> None:
    # The zombie's parent reaps only when told (as Cyrus master reaps only when its loop
    # comes round): a child of ours would be reaped at once by gevent's SIGCHLD watcher when
    # the suite runs patched.
    files = HeldStatFiles(limit=10)
    # The shell reaps its child only in `wait`, after a line on its stdin.
    parent = subprocess.Popen(["sh", "-c", "sleep 30 & echo $!; read line; wait"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdin is not None and parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert parse_pid_stat(files.read(pid)).state in "SR"
        os.kill(pid, 9)
        # Exited, not yet waited for: a zombie, still read through the held descriptor.
        deadline = time.monotonic() + 5.0
        while parse_pid_stat(files.read(pid)).state != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert parse_pid_stat(files.read(pid)).state == "Z"
        parent.stdin.write("reap\n")
        parent.stdin.close()
        parent.wait(5)  # its `wait` has reaped the zombie
    finally:
        parent.kill()
        parent.wait(5)
    with pytest.raises((FileNotFoundError, ProcessLookupError)):
        files.read(pid)
    assert len(files) == 0


def test_a_descriptor_bound_to_a_reaped_process_is_never_read_as_the_pid_now() -> None:
    # What pid reuse looks like to the reader: the held file's process is reaped and the pid
    # names another process. The new process is read, through a new descriptor.
    files = HeldStatFiles(limit=10)
    with sleepers(2) as (old, new):
        files.read(old.pid)
        files._fds[new.pid] = files._fds.pop(old.pid)  # old's file held under new's pid
        old.kill()
        old.wait(5)
        stat = parse_pid_stat(files.read(new.pid))
        assert stat.pid == new.pid
        assert len(files) == 1
    files.close()


def test_limit_keep_only_and_close() -> None:
    before = open_fds()
    files = HeldStatFiles(limit=2)
    with sleepers(3) as procs:
        for proc in procs:
            assert parse_pid_stat(files.read(proc.pid)).pid == proc.pid
        assert len(files) == 2  # the third is read with open, read, close
        assert parse_pid_stat(files.read(procs[2].pid)).pid == procs[2].pid
        files.keep_only({procs[1].pid})
        assert len(files) == 1
        files.close()
        assert len(files) == 0 and open_fds() == before
        assert parse_pid_stat(files.read(procs[0].pid)).pid == procs[0].pid  # still readable
        assert len(files) == 0 and open_fds() == before  # but nothing held after close


def test_limit_is_a_share_of_the_descriptor_limit() -> None:
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = held_stat_limit()
    assert 0 <= limit <= 4096
    if soft != resource.RLIM_INFINITY:
        assert limit <= soft // 4
