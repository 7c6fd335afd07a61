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

from loadtest.collectors.samplers import CYRUS_ERRORS_SIGNAL, Context, Fault, Sampler
from loadtest.core.parsers import count_cyrus_errors

ERROR_KINDS = ("IOERROR", "DBERROR", "fatal")
READ_LIMIT = 4 * 1024 * 1024  # bytes per sample: a flood of lines is counted over a few ticks


def count_cyrus_error_lines(lines: list[str], prefix: str | None) -> Counter[str]:
    """IOERROR / DBERROR / fatal lines among ``lines`` (the same matching as the deployment's
    own `cyrus_errors`); with ``prefix`` (syslog_prefix, or Debian's "cyrus/") only lines that
    carry it, so a shared host log counts only Cyrus."""
    kept = [line for line in lines if not prefix or prefix in line]
    return count_cyrus_errors("\n".join(kept).encode(errors="replace"))


class LogErrorSampler(Sampler):
    """``log_errors_total`` (labels ``kind``) since the agent started: a counter per kind; and
    their sum as ``cyrus_errors``, the signal the default gate judges for a deployment of ours."""

    name = "log_errors"
    signals = ("log_errors_total", CYRUS_ERRORS_SIGNAL)

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
        self.add(CYRUS_ERRORS_SIGNAL, sum(self.totals[kind] for kind in ERROR_KINDS), t)
