"""`cyrus-loadtest cyrus build --variant NAME`: a Cyrus master built from Debian's source of the
installed cyrus-imapd version, with a variant's patch (fixtures/cyrus/patches/NAME.patch; `stock`
has none and is the control), cached outside the repository keyed by source version and patch.
The last line printed is the directory to pass as `--cyrus-bin-dir`.

How (facts in DESIGN.md, measured on Cyrus 3.6.1): the source comes from `apt-get source` with a
private apt state (deb-src lines made from the system's own deb lines; the host's apt config is
not touched); a security update's orig tarball lives in the main archive, so another version of
the same upstream release may supply it (checked against the installed version's checksums).
Debian's patches are applied, then a minimal ./configure once per source version, then
`make master/master` per variant. master is linked with an rpath to the libcyrus_min of the same
build (copied beside it): with Debian's library it aborts at start ("assertion failed:
lib/libconfig.c: 124"); and no LD_LIBRARY_PATH is ever set, or the Debian programs master execs
die with status 127. Build dependencies: a minimal explicit list installed with apt-get (build-dep
would install 104 packages on a Debian 12 machine that already runs Cyrus).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loadtest.deploy.binaries import BUILD_INFO, master_version
from loadtest.errors import UsageError
from loadtest.paths import fixtures_dir

PACKAGE = "cyrus-imapd"
STOCK = "stock"
ENV_CACHE = "LOADTEST_CYRUS_BUILD_CACHE"
# What a minimal ./configure and `make master/master` need (a fresh Debian 12 with Cyrus).
BUILD_PACKAGES = ("gcc", "make", "patch", "pkg-config", "xz-utils", "libsasl2-dev",
                  "libjansson-dev", "libicu-dev", "uuid-dev", "libssl-dev", "zlib1g-dev")
CONFIGURE_FLAGS = ("--disable-sieve", "--disable-squat", "--disable-pcre", "--without-ldap",
                   "--without-zeroskip", "--without-chardet", "--without-cld2",
                   "--without-nghttp2", "--without-wslay", "--without-brotli", "--without-zstd",
                   "--without-clamav", "--without-mysql", "--without-pgsql", "--without-sqlite")
CONFIGURED = ".cyrus-loadtest-configured"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = sub.add_parser("build", help="build master from the installed version's source with "
                           "a variant's patch; prints the directory for --cyrus-bin-dir last")
    build.add_argument("--variant", required=True, metavar="NAME",
                       help=f"{STOCK} (no patch, the control) or a patch in "
                       f"fixtures/cyrus/patches/ ({', '.join(variants())})")
    build.add_argument("--cache-dir", metavar="DIR",
                       help=f"where sources and builds are kept (env {ENV_CACHE}; default "
                       "/var/cache/cyrus-loadtest as root, else $XDG_CACHE_HOME/cyrus-loadtest)")
    build.add_argument("--no-install", action="store_true",
                       help="do not apt-get install missing build dependencies; fail instead")


def variants() -> list[str]:
    return [STOCK, *sorted(p.stem for p in (fixtures_dir() / "cyrus" / "patches").glob("*.patch"))]


def variant_patch(name: str) -> Path | None:
    """The variant's patch file (None for stock); UsageError for an unknown name."""
    if name == STOCK:
        return None
    patch = fixtures_dir() / "cyrus" / "patches" / f"{name}.patch"
    if not patch.is_file():
        raise UsageError(f"unknown --variant {name!r} (known: {', '.join(variants())})")
    return patch


def patch_key(patch: Path | None) -> str:
    return hashlib.sha256(patch.read_bytes()).hexdigest()[:12] if patch else "nopatch"


def cache_root(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit).absolute()
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).absolute()
    if os.getuid() == 0:
        return Path("/var/cache/cyrus-loadtest")
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "cyrus-loadtest"


def build_dir_name(version: str, variant: str, patch: Path | None) -> str:
    """<source version>-<variant>-<patch hash>: a changed patch or a new Debian version gets a
    new directory, so a cached build is never stale."""
    return f"{version}-{variant}-{patch_key(patch)}"


def installed_version() -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", PACKAGE], capture_output=True,
                         text=True)
    if out.returncode != 0 or not out.stdout.strip():
        raise UsageError(f"{PACKAGE} is not installed: a build uses the source of the installed "
                         f"version (apt-get install {PACKAGE})")
    return out.stdout.strip()


def say(text: str) -> None:
    print(f"cyrus build: {text}", file=sys.stderr, flush=True)


def _run(argv: list[str], cwd: Path, log: Path, what: str) -> None:
    """Run a build step, its output in ``log``; a failure names the step and the log."""
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        code = subprocess.run(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, env=_build_env()).returncode
    if code != 0:
        raise RuntimeError(f"cyrus build: {what} failed (exit {code}); see {log}")


def _build_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    env.update(LC_ALL="C", DEBIAN_FRONTEND="noninteractive")
    return env


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One build at a time per cache (two CI jobs or engineers on one machine)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def ensure_build_packages(allow_install: bool) -> list[str]:
    """apt-get install the missing build dependencies; returns what was installed."""
    missing = [p for p in BUILD_PACKAGES if subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True
    ).stdout.strip() != "install ok installed"]
    if not missing:
        return []
    if not allow_install or os.getuid() != 0:
        raise UsageError(f"build dependencies missing: {' '.join(missing)} (apt-get install "
                         f"{' '.join(missing)}{'' if os.getuid() == 0 else ' as root'})")
    say(f"installing build dependencies: {' '.join(missing)}")
    argv = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    if subprocess.run(argv, capture_output=True, env=_build_env()).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=_build_env())
        result = subprocess.run(argv, capture_output=True, text=True, env=_build_env())
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["?"])[-1]
            raise RuntimeError(f"cyrus build: apt-get install {' '.join(missing)} failed: {last}")
    return missing


def source_lines(texts: dict[str, str]) -> dict[str, str]:
    """deb-src versions of the system's apt sources (file name -> text), deb822 and one-line
    formats; pure, so tested on literal files."""
    out: dict[str, str] = {}
    for name, text in texts.items():
        if name.endswith(".sources"):
            converted = re.sub(r"(?m)^Types:\s*(.*)$",
                               lambda m: "Types: deb-src" if "deb" in m.group(1).split() else m.group(0),
                               text)
            if "Types: deb-src" in converted:
                out[name] = converted
        elif name.endswith(".list"):
            lines = [re.sub(r"^deb(\s)", r"deb-src\1", line) for line in text.splitlines()
                     if re.match(r"^deb\s", line.strip())]
            if lines:
                out[name] = "\n".join(lines) + "\n"
    return out


class Apt:
    """apt-get and apt-cache with a private state under the cache: deb-src lists of its own, so
    the host's apt configuration stays as it is."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.parts = root / "sources.list.d"
        self.lists = root / "lists"

    def options(self) -> list[str]:
        return ["-o", f"Dir::Etc::SourceParts={self.parts}", "-o", "Dir::Etc::SourceList=/dev/null",
                "-o", f"Dir::State::Lists={self.lists}", "-o", "APT::Sandbox::User=root"]

    def update(self) -> None:
        texts = {}
        for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
            with contextlib.suppress(OSError):
                texts[path.name] = path.read_text()
        sources = source_lines(texts)
        if not sources:
            raise UsageError("no Debian source lines to make deb-src entries from "
                             "(/etc/apt/sources.list, /etc/apt/sources.list.d)")
        shutil.rmtree(self.parts, ignore_errors=True)
        self.parts.mkdir(parents=True)
        (self.lists / "partial").mkdir(parents=True, exist_ok=True)
        for name, text in sources.items():
            (self.parts / name).write_text(text)
        result = subprocess.run(["apt-get", "-q", *self.options(), "update"], capture_output=True,
                                text=True, env=_build_env())
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["?"])[-1]
            raise RuntimeError(f"cyrus build: apt-get update of the source lists failed: {last}")

    def showsrc(self) -> str:
        return subprocess.run(["apt-cache", *self.options(), "showsrc", PACKAGE],
                              capture_output=True, text=True, env=_build_env()).stdout

    def download(self, version: str, into: Path) -> None:
        subprocess.run(["apt-get", "-q", *self.options(), "source", "--download-only",
                        f"{PACKAGE}={version}"], cwd=into, capture_output=True, env=_build_env())


def parse_showsrc(text: str) -> dict[str, dict[str, str]]:
    """version -> {file name: sha256} from `apt-cache showsrc` (pure)."""
    result: dict[str, dict[str, str]] = {}
    for record in text.split("\n\n"):
        version = re.search(r"(?m)^Version:\s*(\S+)", record)
        sums = re.search(r"(?ms)^Checksums-Sha256:\s*\n((?:[ \t]+\S+.*\n?)+)", record)
        if not version or not sums:
            continue
        files = {}
        for line in sums.group(1).splitlines():
            parts = line.split()
            if len(parts) == 3:
                files[parts[2]] = parts[0]
        result.setdefault(version.group(1), files)
    return result


def fetch_source(apt: Apt, version: str, downloads: Path) -> tuple[Path, Path]:
    """The orig tarball and Debian tarball of ``version``, checked against its checksums."""
    downloads.mkdir(parents=True, exist_ok=True)
    apt.update()
    catalogue = parse_showsrc(apt.showsrc())
    if version not in catalogue:
        known = ", ".join(catalogue) or "none"
        raise UsageError(f"no source for {PACKAGE} {version} in the Debian archive's source "
                         f"lists (versions there: {known})")
    wanted = {n: s for n, s in catalogue[version].items() if ".tar." in n and not n.endswith(".asc")}

    def have(name: str) -> bool:
        path = downloads / name
        return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == wanted[name]

    if not all(have(n) for n in wanted):
        apt.download(version, downloads)
    for other, files in catalogue.items():  # a security update's orig tarball: main archive
        if all(have(n) for n in wanted):
            break
        if other != version and any(files.get(n) == s for n, s in wanted.items() if not have(n)):
            apt.download(other, downloads)
    missing = [n for n in wanted if not have(n)]
    if missing:
        raise UsageError(f"no source for {PACKAGE} {version}: could not download "
                         f"{', '.join(missing)} (apt-get source)")
    orig = next(downloads / n for n in wanted if ".orig.tar." in n)
    debian = next(downloads / n for n in wanted if ".debian.tar." in n)
    return orig, debian


def prepare_tree(cache: Path, version: str, log: Path) -> Path:
    """Debian's source of ``version``, patched and configured once (kept for later variants)."""
    base = cache / "src" / version
    marker = base / CONFIGURED
    if marker.is_file():
        return Path(marker.read_text().strip())
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    t0 = time.monotonic()
    say(f"fetching Debian's source of {PACKAGE} {version} ...")
    orig, debian = fetch_source(Apt(cache / "apt"), version, cache / "downloads")
    _run(["tar", "xf", str(orig)], base, log, "unpacking the orig tarball")
    trees = [p for p in base.iterdir() if p.is_dir()]
    if len(trees) != 1:
        raise RuntimeError(f"cyrus build: {orig} unpacked into {len(trees)} folders, expected one")
    tree = trees[0]
    _run(["tar", "xf", str(debian)], tree, log, "unpacking the Debian tarball")
    series = tree / "debian" / "patches" / "series"
    for line in series.read_text().splitlines() if series.is_file() else []:
        name = line.split("#", 1)[0].strip()
        if name:
            _run(["patch", "-p1", "-s", "-i", str(tree / "debian" / "patches" / name)], tree, log,
                 f"Debian patch {name}")
    say(f"source ready in {time.monotonic() - t0:.1f} s; ./configure (minimal) ...")
    t0 = time.monotonic()
    _run(["./configure", "-q", *CONFIGURE_FLAGS], tree, log, "./configure")
    say(f"configured in {time.monotonic() - t0:.1f} s")
    marker.write_text(str(tree) + "\n")
    return tree


def build_variant(tree: Path, variant: str, patch: Path | None, out: Path, log: Path) -> float:
    """`make master/master` with the variant's patch applied, into ``out``; the tree is left as
    Debian's source (the patch reversed) for the next variant."""
    pristine = tree / "master" / "master.c.debian"
    source = tree / "master" / "master.c"
    if not pristine.exists():
        shutil.copy2(source, pristine)
    shutil.copy2(pristine, source)
    t0 = time.monotonic()
    try:
        if patch is not None:
            _run(["patch", "-p1", "-s", "-i", str(patch)], tree, log, f"the {variant} patch")
        for stale in (tree / "master" / "master.o", tree / "master" / "master",
                      tree / "master" / ".libs" / "master"):
            stale.unlink(missing_ok=True)
        jobs = str(max(1, min(2, os.cpu_count() or 1)))
        _run(["make", "-j", jobs, "master/master", f"LDFLAGS=-Wl,-rpath,{out / 'lib'}"], tree, log,
             "make master/master")
    finally:
        shutil.copy2(pristine, source)
    staging = out.with_name(out.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "lib").mkdir(parents=True)
    shutil.copy2(tree / "master" / ".libs" / "master", staging / "master")
    for lib in (tree / "lib" / ".libs").glob("libcyrus_min.so*"):
        if lib.is_symlink():
            (staging / "lib" / lib.name).symlink_to(os.readlink(lib))
        else:
            shutil.copy2(lib, staging / "lib" / lib.name)
    return time.monotonic() - t0


def build(variant: str, cache: Path, allow_install: bool = True) -> Path:
    patch = variant_patch(variant)
    version = installed_version()
    out = cache / "builds" / build_dir_name(version, variant, patch)
    if (out / BUILD_INFO).is_file() and os.access(out / "master", os.X_OK):
        say(f"cached: {variant} build of {PACKAGE} {version}")
        return out
    with _locked(cache):
        if (out / BUILD_INFO).is_file():  # built by another process while we waited
            return out
        started = time.monotonic()
        installed = ensure_build_packages(allow_install)
        log = cache / "build.log"
        tree = prepare_tree(cache, version, log)
        say(f"make master/master ({variant}) ...")
        seconds = build_variant(tree, variant, patch, out, log)
        staging = out.with_name(out.name + ".tmp")
        shutil.rmtree(out, ignore_errors=True)
        os.replace(staging, out)
        try:
            ident = master_version(out / "master", f"the {variant} build")
        except UsageError as exc:
            shutil.rmtree(out, ignore_errors=True)
            raise RuntimeError(f"cyrus build: the built master does not run: {exc}") from None
        info: dict[str, Any] = {
            "variant": variant, "package": PACKAGE, "source_version": version,
            "master_version": ident, "patch": str(patch.relative_to(fixtures_dir())) if patch else None,
            "patch_sha256": hashlib.sha256(patch.read_bytes()).hexdigest() if patch else None,
            "configure_flags": list(CONFIGURE_FLAGS), "make_seconds": round(seconds, 1),
            "total_seconds": round(time.monotonic() - started, 1), "installed_packages": installed,
            "built": time.time(),
        }
        (out / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n")
        say(f"built {variant} in {info['total_seconds']:.1f} s (make {seconds:.1f} s)")
        return out


def run(args: argparse.Namespace) -> int:
    cache = cache_root(args.cache_dir)
    out = build(args.variant, cache, allow_install=not args.no_install)
    print(out)
    return 0
