"""Errors the user must see as one line, and the exit codes they map to.

Pure module: no Locust, no gevent.
"""

from __future__ import annotations

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_INCONCLUSIVE = 3


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2, nothing half-done.

    The message names the bad value and where it came from (flag, env, file and line).
    """

    exit_code = EXIT_USAGE


def where(source: str, name: str) -> str:
    """Describe where a value came from, e.g. ``flag --port`` or ``env LOADTEST_PORT``."""
    return f"{source} {name}" if name else source
