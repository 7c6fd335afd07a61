"""Inode turnover through inotify: the event parser on literal bytes, and the watcher on a real
directory tree (short-lived files, new subdirectories, renames, skipped folders)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from loadtest.collectors.inotify import (
    IN_CREATE,
    IN_DELETE,
    IN_ISDIR,
    Watcher,
    parse_events,
)


def record(wd: int, mask: int, name: bytes, padded: int) -> bytes:
    return struct.pack("iIII", wd, mask, 0, padded) + name.ljust(padded, b"\0")


def test_parse_events_reads_padded_names() -> None:
    data = (record(1, IN_CREATE, b"imapd.1234", 16) + record(2, IN_DELETE | IN_ISDIR, b"u", 16)
            + record(1, IN_DELETE, b"", 0))
    events = list(parse_events(data))
    assert [(e.wd, e.mask, e.name) for e in events] == [
        (1, IN_CREATE, "imapd.1234"), (2, IN_DELETE | IN_ISDIR, "u"), (1, IN_DELETE, "")]
    assert list(parse_events(data[:10])) == []  # a truncated header is not an event


def test_watcher_counts_short_lived_files_per_directory(tmp_path: Path) -> None:
    for sub in ("run/proc", "run/lock", "log"):
        (tmp_path / sub).mkdir(parents=True)
    watcher = Watcher([tmp_path], skip=("log",))
    try:
        for n in range(5):  # a proc file per session, gone before any scan could see it
            path = tmp_path / "run" / "proc" / f"imapd.{n}"
            path.write_text("x")
            path.unlink()
        (tmp_path / "run" / "lock" / "user").mkdir()  # watched from now on
        first = watcher.drain()
        (tmp_path / "run" / "lock" / "user" / "a.lock").write_text("")
        tmp = tmp_path / "run" / "lock" / "user" / "db.NEW"
        tmp.write_text("")
        os.replace(tmp, tmp_path / "run" / "lock" / "user" / "db")  # create, then rename over
        (tmp_path / "log" / "syslog.log").write_text("skipped")
        second = watcher.drain()
    finally:
        watcher.close()
    assert first.created == {"run/proc": 5} and first.removed == {"run/proc": 5}
    assert second.created == {"run/lock": 3} and second.removed == {"run/lock": 1}
    assert not first.overflowed and not second.overflowed
