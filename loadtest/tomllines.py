"""Line numbers in a TOML file, for error messages: tomllib gives positions for syntax errors
only, so a file's table headers and keys are found by scanning its text. Good enough for files
written one key per line under `[table]` and `[[array]]` headers, as this project's docs
prescribe (gate rules, topologies).

Pure module: no Locust, no gevent.
"""

from __future__ import annotations

import bisect
import re

_HEADER = re.compile(r"^\s*\[(\[?)\s*([A-Za-z0-9_.\"-]+)\s*\]\]?\s*(#.*)?$")


class TomlLines:
    """Where table headers and keys are in one TOML text (1-based line numbers)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        # (line number, name, is_array) of every table header, in file order: found once.
        self.headers: list[tuple[int, str, bool]] = []
        for number, line in enumerate(self.lines, 1):
            match = _HEADER.match(line)
            if match:
                self.headers.append((number, match.group(2).strip('"'), bool(match.group(1))))
        self._header_lines = [number for number, _, _ in self.headers]
        self._arrays: dict[str, list[int]] = {}
        for number, name, is_array in self.headers:
            if is_array:
                self._arrays.setdefault(name, []).append(number)

    def _section_end(self, start: int) -> int:
        """Last line of the section that starts at line ``start`` (before the next header)."""
        later = bisect.bisect_right(self._header_lines, start)
        return self._header_lines[later] - 1 if later < len(self._header_lines) else len(self.lines)

    def _key_between(self, first: int, last: int, key: str) -> int | None:
        pattern = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
        for number in range(first, min(last, len(self.lines)) + 1):
            if pattern.match(self.lines[number - 1]):
                return number
        return None

    def key_in_section(self, start: int, key: str) -> int | None:
        """Line of ``key = ...`` in the section that starts at line ``start`` (a header, or
        the first line of an inline value), up to the next header."""
        return self._key_between(start, self._section_end(start), key)

    def top_level(self, key: str) -> int | None:
        """A table header named ``key`` or a key before the first header."""
        for number, name, _ in self.headers:
            if name == key:
                return number
        first = self.headers[0][0] - 1 if self.headers else len(self.lines)
        return self._key_between(1, first, key)

    def table(self, name: str) -> int | None:
        """The header line of ``[name]``."""
        for number, header, is_array in self.headers:
            if header == name and not is_array:
                return number
        return None

    def in_table(self, table: str, key: str) -> int | None:
        """``key`` inside ``[table]``, else the table's header; None without such a table."""
        start = self.table(table)
        if start is None:
            return None
        return self.key_in_section(start, key) or start

    def array_table(self, name: str, index: int) -> int | None:
        """The header line of the ``index``-th (0-based) ``[[name]]``."""
        found = self._arrays.get(name, [])
        return found[index] if index < len(found) else None

    def array_key(self, name: str, index: int, key: str) -> int | None:
        """``key`` inside the ``index``-th ``[[name]]``, else its header line."""
        start = self.array_table(name, index)
        if start is None:
            return None
        return self.key_in_section(start, key) or start
