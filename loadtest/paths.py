"""Where things live: the project's fixtures, which filesystem holds a path, and writing a file
so that no reader ever sees half of it."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

ENV_FIXTURES = "LOADTEST_FIXTURES"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def fixtures_dir() -> Path:
    """The fixtures folder: env LOADTEST_FIXTURES, else the checkout this package runs from."""
    override = os.environ.get(ENV_FIXTURES)
    return Path(override) if override else PROJECT_ROOT / "fixtures"


def atomic_write(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename: a reader (the web UI,
    the offline gate, a killed run's post-mortem) sees the old file or the new one, never half."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # no NAME.tmp left behind by a full folder
            tmp.unlink(missing_ok=True)
        raise
    return path


def filesystem_type_in(path: str | os.PathLike[str], mounts: str) -> str:
    """The type of the filesystem holding ``path``, from the text of /proc/mounts: the longest
    mount point that contains it, the later entry winning when a point is mounted twice (the
    later mount hides the earlier one)."""
    target = str(path)
    best, fstype = "", "unknown"
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = parts[1].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, fstype = mount, parts[2]
    return fstype


def filesystem_type(path: str | os.PathLike[str]) -> str:
    """The type of the filesystem holding ``path`` ("tmpfs", "ext4", ...; "unknown")."""
    try:
        mounts = Path("/proc/mounts").read_text()
    except OSError:
        return "unknown"
    return filesystem_type_in(Path(path).resolve(), mounts)


def on_tmpfs(path: str | os.PathLike[str]) -> bool:
    return filesystem_type(path) in {"tmpfs", "ramfs"}
