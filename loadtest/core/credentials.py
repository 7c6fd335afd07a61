"""Credentials for simulated users: the deployment's users file or a name pattern.

Pure module (reads files only). A password never appears in an error message or a repr.
"""

from __future__ import annotations

import csv
import string
from dataclasses import dataclass, field
from pathlib import Path

from loadtest.errors import UsageError


@dataclass(frozen=True)
class Credential:
    username: str
    password: str = field(repr=False)
    instance: str | None = None  # the instance the mailbox lives on, when the file says


def read_users_file(path: str | Path, source: str) -> list[Credential]:
    """Read CSV ``username,password[,instance]``; one line error on anything else.

    ``source`` says where the path came from (``flag --imap-users-file``, ``deployment.json``).
    A header line ``username,password...`` is allowed. Blank lines and ``#`` comments are skipped.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"users file {path} (from {source}) does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read users file {path} (from {source}): {exc.__class__.__name__}") from None
    credentials: list[Credential] = []
    for lineno, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if lineno == 1 and row[0].strip().lower() == "username":
            continue
        if len(row) not in (2, 3):
            # Never echo the row: it holds a password.
            raise UsageError(
                f"users file {path} line {lineno} (from {source}): expected "
                f"username,password[,instance], got {len(row)} fields"
            )
        username, password = row[0].strip(), row[1]
        instance = row[2].strip() if len(row) == 3 and row[2].strip() else None
        problem = _check_atom(username, "username") or _check_atom(password, "password")
        if problem:
            raise UsageError(f"users file {path} line {lineno} (from {source}): {problem}")
        credentials.append(Credential(username, password, instance))
    if not credentials:
        raise UsageError(f"users file {path} (from {source}) has no users")
    return credentials


def pattern_credentials(pattern: str, password: str, count: int, source: str) -> list[Credential]:
    """``count`` users named by ``pattern`` (``{n}`` is 1..count, e.g. ``user{n}``), one password."""
    fields = {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}
    if fields != {"n"}:
        raise UsageError(
            f"user pattern {pattern!r} (from {source}) must contain {{n}} and no other field"
        )
    if count < 1:
        raise UsageError(f"user count {count} (from {source}) must be at least 1")
    problem = _check_atom(password, "password")
    if problem:
        raise UsageError(f"password (from {source}): {problem}")
    users = []
    for n in range(1, count + 1):
        username = pattern.format(n=n)
        problem = _check_atom(username, "username")
        if problem:
            raise UsageError(f"user pattern {pattern!r} (from {source}): {problem}")
        users.append(Credential(username, password))
    return users


def _check_atom(value: str, what: str) -> str | None:
    """Why ``value`` cannot be sent as an IMAP quoted string, or None.

    Quoted strings cover everything but CR, LF, NUL and non-ASCII (those need literals, which
    test deployments never use).
    """
    if not value:
        return f"empty {what}"
    if any(c in value for c in "\r\n\0") or not value.isascii():
        return f"{what} has characters an IMAP quoted string cannot carry"
    return None


def quote(value: str) -> bytes:
    """``value`` as an IMAP quoted string (checked by ``_check_atom`` at load time)."""
    return b'"' + value.replace("\\", "\\\\").replace('"', '\\"').encode("ascii") + b'"'
