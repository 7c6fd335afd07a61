"""Which Cyrus programs a deployment runs: the packaged install, or a build directory given with
``--cyrus-bin-dir DIR`` (env ``LOADTEST_CYRUS_BIN_DIR``) that may hold only some programs, say a
``master`` built by ``cyrus-loadtest cyrus build``; the others come from the packaged install.

Checked before anything starts: DIR must hold an executable ``master`` (the program a build
replaces), every program must be executable, and ``master -V`` must name a Cyrus version. The
result is recorded in deployment.json, run.json and the report.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadtest.errors import UsageError

PACKAGED_BIN_DIR = Path("/usr/lib/cyrus/bin")
ENV_CYRUS_BIN_DIR = "LOADTEST_CYRUS_BIN_DIR"
FLAG = "--cyrus-bin-dir"
PROGRAMS = ("master", "imapd", "ctl_cyrusdb", "idled")  # what cyrus.conf and deploy start
DEB_PACKAGES = "cyrus-imapd cyrus-admin cyrus-clients sasl2-bin"
BUILD_INFO = "build.json"  # written by `cyrus-loadtest cyrus build` beside its master
VERSION_RE = re.compile(r"cyrus-imapd\s+(\S+)")


@dataclass(frozen=True)
class CyrusPrograms:
    """The programs of one deployment and where that choice came from."""

    programs: dict[str, str]  # name -> absolute path
    bin_dir: str | None = None  # the chosen build directory; None: packaged install only
    source: str = "packaged install"  # flag --cyrus-bin-dir, env LOADTEST_CYRUS_BIN_DIR, ...
    version: str = ""  # as `master -V` says it
    build: dict[str, Any] = field(default_factory=dict)  # build.json of a `cyrus build` dir

    def path(self, name: str) -> Path:
        return Path(self.programs[name])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CyrusPrograms:
        return cls(**data)

    def describe(self) -> str:
        """One line for terminals and reports."""
        if self.bin_dir is None:
            return f"packaged Cyrus {self.version} ({PACKAGED_BIN_DIR})"
        own = [n for n, p in self.programs.items() if Path(p).parent == Path(self.bin_dir)]
        variant = f", variant {self.build['variant']}" if self.build.get("variant") else ""
        return (f"Cyrus {self.version} from {self.bin_dir}{variant} ({', '.join(own)}; the "
                f"rest packaged; from {self.source})")


def chosen_bin_dir(explicit: str | None = None, source: str = f"flag {FLAG}") -> tuple[str | None, str]:
    """The build directory asked for and where the choice came from: flag, env, or none."""
    if explicit:
        return explicit, source
    env = os.environ.get(ENV_CYRUS_BIN_DIR)
    if env:
        return env, f"env {ENV_CYRUS_BIN_DIR}"
    return None, "packaged install"


def master_version(master: Path, where: str) -> str:
    """`master -V`'s version; a program that does not answer like a Cyrus master is refused."""
    try:
        out = subprocess.run([str(master), "-V"], capture_output=True, text=True, timeout=10,
                             stdin=subprocess.DEVNULL, env=_clean_env())
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"{master} (from {where}) does not run: {exc}") from None
    match = VERSION_RE.search(out.stdout + out.stderr)
    if match is None:
        said = (out.stdout + out.stderr).strip().splitlines()
        raise UsageError(f"{master} (from {where}) is not a Cyrus master: `master -V` exited "
                         f"{out.returncode} saying {said[-1][:120] if said else 'nothing'!r}")
    return match.group(1)


def _clean_env() -> dict[str, str]:
    # Never LD_LIBRARY_PATH: Debian's programs a built master execs would die with status 127.
    return {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def resolve(explicit: str | None = None, source: str = f"flag {FLAG}") -> CyrusPrograms:
    """Check and return the programs to run (UsageError, one line, before anything starts)."""
    bin_dir, source = chosen_bin_dir(explicit, source)
    programs: dict[str, str] = {}
    build: dict[str, Any] = {}
    if bin_dir is not None:
        directory = Path(bin_dir).absolute()
        if not directory.is_dir():
            raise UsageError(f"{FLAG} {bin_dir} (from {source}): no such directory")
        for name in PROGRAMS:
            candidate = directory / name
            if candidate.exists() and not _executable(candidate):
                raise UsageError(f"{FLAG} {bin_dir} (from {source}): {candidate} is not an "
                                 "executable file")
            if _executable(candidate):
                programs[name] = str(candidate)
        if "master" not in programs:
            raise UsageError(f"{FLAG} {bin_dir} (from {source}): no executable master in it "
                             "(a build directory holds at least master; the other programs "
                             f"may come from {PACKAGED_BIN_DIR})")
        info_file = directory / BUILD_INFO
        if info_file.is_file():
            try:
                build = json.loads(info_file.read_text())
            except ValueError as exc:
                raise UsageError(f"{FLAG} {bin_dir} (from {source}): bad {info_file}: {exc}") from None
        bin_dir = str(directory)
    for name in PROGRAMS:
        if name not in programs:
            packaged = PACKAGED_BIN_DIR / name
            if not _executable(packaged):
                raise UsageError(f"Cyrus IMAP is not installed (missing {packaged}): apt-get "
                                 f"install {DEB_PACKAGES}")
            programs[name] = str(packaged)
    if not shutil.which("saslpasswd2"):
        raise UsageError(f"Cyrus IMAP is not installed (missing saslpasswd2): apt-get install "
                         f"{DEB_PACKAGES}")
    version = master_version(Path(programs["master"]), source)
    return CyrusPrograms(programs, bin_dir, source, version, build)


def add_cyrus_bin_dir_flag(parser: argparse.ArgumentParser) -> None:
    """--cyrus-bin-dir, shared by deploy up, acceptance, scenario and bench."""
    parser.add_argument("--cyrus-bin-dir", metavar="DIR",
                        help="run the Cyrus programs in DIR (at least master, e.g. from "
                        "`cyrus-loadtest cyrus build`); the others come from the packaged "
                        "install (env LOADTEST_CYRUS_BIN_DIR; default: packaged only)")
