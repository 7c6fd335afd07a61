"""Cyrus's error lines (IOERROR, DBERROR, fatal) counted from a syslog file the agent is told
about. `count_cyrus_error_lines` is the pure part (tested on literal lines); `LogErrorSampler`
follows the file on the collectors' clock (from its end at start, across rotation).

Written for the agent before a shared syslog-error parser existed; the lead may merge it with
the `cyrus_errors` collector's parser.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from loadtest.collectors.samplers import Context, Fault, Sampler

ERROR_KINDS = ("IOERROR", "DBERROR", "fatal")
READ_LIMIT = 4 * 1024 * 1024  # bytes per sample: a flood of lines is counted over a few ticks


def count_cyrus_error_lines(lines: list[str], prefix: str | None) -> Counter[str]:
    """IOERROR / DBERROR / fatal lines among ``lines``; with ``prefix`` (syslog_prefix, or
    Debian's "cyrus/") only lines that carry it, so a shared host log counts only Cyrus."""
    counts: Counter[str] = Counter()
    for line in lines:
        if prefix and prefix not in line:
            continue
        if "IOERROR" in line:
            counts["IOERROR"] += 1
        elif "DBERROR" in line:
            counts["DBERROR"] += 1
        elif "fatal error" in line.lower():  # Cyrus's fatal(): "Fatal error: ..."
            counts["fatal"] += 1
    return counts


class LogErrorSampler(Sampler):
    """``log_errors_total`` (labels ``kind``) since the agent started: a counter per kind."""

    name = "log_errors"
    signals = ("log_errors_total",)

    def __init__(self, ctx: Context, instance: str, path: str, prefix: str | None) -> None:
        super().__init__(ctx, instance)
        self.path = path
        self.prefix = prefix
        self._position: tuple[int, int] | None = None  # (inode, offset)
        self._partial = b""
        self.totals: Counter[str] = Counter({kind: 0 for kind in ERROR_KINDS})

    def read(self) -> list[str]:
        try:
            with open(self.path, "rb") as fh:
                st = os.fstat(fh.fileno())
                if self._position is None:  # count from now on, not the file's history
                    self._position = (st.st_ino, st.st_size)
                    return []
                inode, offset = self._position
                if inode != st.st_ino or st.st_size < offset:  # rotated or truncated
                    offset, self._partial = 0, b""
                fh.seek(offset)
                data = fh.read(READ_LIMIT)
                self._position = (st.st_ino, offset + len(data))
        except OSError as exc:
            raise Fault(f"cannot read log file {self.path}: {exc.strerror}") from None
        data = self._partial + data
        complete, _, self._partial = data.rpartition(b"\n")
        return complete.decode("utf-8", "replace").splitlines() if complete else []

    def process(self, t: float, data: Any) -> None:
        self.totals.update(count_cyrus_error_lines(data, self.prefix))
        for kind in ERROR_KINDS:
            self.add("log_errors_total", self.totals[kind], t, kind=kind)
