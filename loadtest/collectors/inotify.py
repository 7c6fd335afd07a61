"""Files created and removed below a directory tree, every one of them, through Linux inotify
(ctypes on libc: no extra package). A sampler polls ``Watcher.drain()`` once a second; files
that live for milliseconds (an imapd's proc file, a per-session lock file) are counted too,
which a directory scan once a second would miss.

``parse_events`` is pure (bytes in, events out) and tested on literal data.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
WATCH_MASK = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF
HEADER = struct.Struct("iIII")  # wd, mask, cookie, len (struct inotify_event)


@dataclass(frozen=True, slots=True)
class InotifyEvent:
    wd: int
    mask: int
    name: str


def parse_events(data: bytes) -> Iterator[InotifyEvent]:
    """struct inotify_event records, back to back; the name is NUL-padded to ``len`` bytes."""
    offset = 0
    while offset + HEADER.size <= len(data):
        wd, mask, _cookie, length = HEADER.unpack_from(data, offset)
        raw = data[offset + HEADER.size: offset + HEADER.size + length]
        offset += HEADER.size + length
        yield InotifyEvent(wd, mask, raw.split(b"\0", 1)[0].decode("utf-8", "replace"))


@dataclass
class Turnover:
    """Counts since the last drain, per group (a directory relative to the root, two levels)."""

    created: Counter[str]
    removed: Counter[str]
    overflowed: bool = False


class Watcher:
    """Recursive inotify watch of ``roots`` (new subdirectories are watched as they appear)."""

    def __init__(self, roots: list[Path], skip: tuple[str, ...] = ()) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.fd = fd
        self.roots = [Path(r) for r in roots]
        self.skip = skip  # top-level names not watched (log files: appended, not created)
        self._paths: dict[int, Path] = {}
        for root in self.roots:
            for directory, subdirs, _files in os.walk(root):
                subdirs[:] = [d for d in subdirs if Path(directory) != root or d not in skip]
                self._watch(Path(directory))

    def _watch(self, path: Path) -> None:
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), WATCH_MASK)
        if wd < 0:
            err = ctypes.get_errno()
            if err in (errno.ENOENT, errno.ENOTDIR):  # gone meanwhile
                return
            raise OSError(err, f"inotify_add_watch {path}: {os.strerror(err)}")
        self._paths[wd] = path

    def group(self, path: Path) -> str:
        """Where a file lives, two levels below its root: "run/proc", "conf/lock", "data/user"."""
        for root in self.roots:
            if path == root or root in path.parents:
                parts = path.relative_to(root).parts[:2]
                return "/".join(parts) if parts else "."
        return str(path)

    def drain(self) -> Turnover:
        turnover = Turnover(Counter(), Counter())
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            if not data:
                break
            for event in parse_events(data):
                if event.mask & IN_Q_OVERFLOW:
                    turnover.overflowed = True
                    continue
                if event.mask & IN_IGNORED:
                    self._paths.pop(event.wd, None)
                    continue
                directory = self._paths.get(event.wd)
                if directory is None:
                    continue
                if event.mask & IN_ISDIR:
                    if event.mask & (IN_CREATE | IN_MOVED_TO):
                        self._watch(directory / event.name)
                    continue
                if event.mask & (IN_CREATE | IN_MOVED_TO):
                    turnover.created[self.group(directory)] += 1
                elif event.mask & (IN_DELETE | IN_MOVED_FROM):
                    turnover.removed[self.group(directory)] += 1
        return turnover

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
