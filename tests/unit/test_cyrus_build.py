"""`cyrus-loadtest cyrus build`: the pure parts on literal data (apt source lines, showsrc
records, cache keys, variants) and the one-line errors. The build itself runs in
tests/integration/test_konstanz_2016.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest import cyrus_build as cb
from loadtest.errors import UsageError

DEB822 = """Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
"""

SHOWSRC = """Package: cyrus-imapd
Version: 3.6.1-4+deb12u4
Checksums-Sha256:
 f0d9 5315 cyrus-imapd_3.6.1-4+deb12u4.dsc
 32d6 13724573 cyrus-imapd_3.6.1.orig.tar.gz
 3a40 488 cyrus-imapd_3.6.1.orig.tar.gz.asc
 d7c2 111360 cyrus-imapd_3.6.1-4+deb12u4.debian.tar.xz
Directory: pool/main/c/cyrus-imapd

Package: cyrus-imapd
Version: 3.6.1-4+deb12u5
Checksums-Sha256:
 976a 5489 cyrus-imapd_3.6.1-4+deb12u5.dsc
 32d6 13724573 cyrus-imapd_3.6.1.orig.tar.gz
 38c4 115168 cyrus-imapd_3.6.1-4+deb12u5.debian.tar.xz
Directory: pool/updates/main/c/cyrus-imapd
"""


def test_deb_src_lines_from_both_apt_formats() -> None:
    out = cb.source_lines({
        "debian.sources": DEB822,
        "sources.list": "# comment\ndeb http://deb.debian.org/debian bookworm main\n"
                        "deb-src http://x/ y main\n",
        "other.list.disabled": "deb http://nope/ x main\n",
    })
    assert sorted(out) == ["debian.sources", "sources.list"]
    assert out["debian.sources"].count("Types: deb-src") == 2
    assert "Types: deb\n" not in out["debian.sources"]
    assert out["sources.list"] == "deb-src http://deb.debian.org/debian bookworm main\n"


def test_showsrc_gives_each_versions_checksums() -> None:
    catalogue = cb.parse_showsrc(SHOWSRC)
    assert sorted(catalogue) == ["3.6.1-4+deb12u4", "3.6.1-4+deb12u5"]
    assert catalogue["3.6.1-4+deb12u5"]["cyrus-imapd_3.6.1.orig.tar.gz"] == "32d6"
    assert "cyrus-imapd_3.6.1-4+deb12u4.debian.tar.xz" not in catalogue["3.6.1-4+deb12u5"]


class FakeApt:
    def __init__(self, showsrc: str) -> None:
        self.text = showsrc
        self.downloads: list[str] = []

    def update(self) -> None:
        pass

    def showsrc(self) -> str:
        return self.text

    def download(self, version: str, into: Path) -> None:
        self.downloads.append(version)


def test_missing_source_is_one_line_naming_the_version(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        cb.fetch_source(FakeApt(SHOWSRC), "3.6.1-4+deb12u9", tmp_path)  # type: ignore[arg-type]
    assert "no source for cyrus-imapd 3.6.1-4+deb12u9" in str(info.value)
    assert "3.6.1-4+deb12u5" in str(info.value) and "\n" not in str(info.value)


def test_files_that_cannot_be_downloaded_are_named(tmp_path: Path) -> None:
    apt = FakeApt(SHOWSRC)
    with pytest.raises(UsageError, match="could not download cyrus-imapd_3.6.1.orig.tar.gz"):
        cb.fetch_source(apt, "3.6.1-4+deb12u5", tmp_path)  # type: ignore[arg-type]
    # The installed version first, then the one sharing its orig tarball (the main archive).
    assert apt.downloads == ["3.6.1-4+deb12u5", "3.6.1-4+deb12u4"]


def test_variants_and_cache_keys() -> None:
    assert cb.variants()[:1] == ["stock"] and "konstanz-2016" in cb.variants()
    assert cb.variant_patch("stock") is None
    patch = cb.variant_patch("konstanz-2016")
    assert patch is not None and "master/master.c" in patch.read_text()
    name = cb.build_dir_name("3.6.1-4+deb12u5", "konstanz-2016", patch)
    assert name.startswith("3.6.1-4+deb12u5-konstanz-2016-") and len(name.rsplit("-", 1)[1]) == 12
    assert cb.build_dir_name("3.6.1-4+deb12u5", "stock", None) == "3.6.1-4+deb12u5-stock-nopatch"
    with pytest.raises(UsageError, match="unknown --variant 'nope' .*known: stock, konstanz-2016"):
        cb.variant_patch("nope")


def test_cache_root_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert cb.cache_root(str(tmp_path / "x")) == tmp_path / "x"
    monkeypatch.setenv(cb.ENV_CACHE, str(tmp_path / "env"))
    assert cb.cache_root(None) == tmp_path / "env"
