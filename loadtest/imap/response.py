"""The few data items of whole IMAP responses that the integrity user and the audit need
(APPENDUID, SELECT/STATUS counts, LIST names, FETCH UID and BODY[]). Where a response ends and
its status: :mod:`loadtest.core.imapwire`.

Pure module: bytes in, values out. Anything that does not parse raises
:class:`loadtest.imap.failures.ProtocolError`, so a session reports it as ``protocol error``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from loadtest.core.imapwire import CRLF
from loadtest.imap.failures import ProtocolError

_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]", re.IGNORECASE)
_EXISTS = re.compile(rb"^\* (\d+) EXISTS\r?$", re.IGNORECASE | re.MULTILINE)
_CODE_NUMBER = {name: re.compile(rb"\[" + name + rb" (\d+)\]", re.IGNORECASE)
                for name in (b"UIDVALIDITY", b"UIDNEXT")}
_MAILBOXID = re.compile(rb"MAILBOXID \(([^)\s]+)\)", re.IGNORECASE)
_STATUS_ITEM = re.compile(rb"(MESSAGES|UIDNEXT|UIDVALIDITY|UNSEEN|RECENT) (\d+)", re.IGNORECASE)


def appenduid(line: bytes) -> tuple[int, int]:
    """(UIDVALIDITY, UID) from a tagged ``OK [APPENDUID v u]`` (ProtocolError without it)."""
    match = _APPENDUID.search(line)
    if match is None:
        raise ProtocolError("APPEND without APPENDUID")
    return int(match.group(1)), int(match.group(2))


@dataclass(frozen=True)
class MailboxState:
    """What SELECT/EXAMINE or STATUS said about a mailbox."""

    exists: int
    uidvalidity: int
    uidnext: int | None = None
    mailboxid: str | None = None


def select_state(data: bytes) -> MailboxState:
    """EXISTS, UIDVALIDITY, UIDNEXT and MAILBOXID from a SELECT/EXAMINE response."""
    exists = _EXISTS.findall(data)
    validity = _CODE_NUMBER[b"UIDVALIDITY"].search(data)
    if not exists or validity is None:
        raise ProtocolError("SELECT without EXISTS or UIDVALIDITY")
    uidnext = _CODE_NUMBER[b"UIDNEXT"].search(data)
    mailboxid = _MAILBOXID.search(data)
    return MailboxState(int(exists[-1]), int(validity.group(1)),
                        int(uidnext.group(1)) if uidnext else None,
                        mailboxid.group(1).decode("ascii") if mailboxid else None)


def status_state(data: bytes) -> MailboxState:
    """MESSAGES, UIDVALIDITY, UIDNEXT (and MAILBOXID) from an untagged ``* STATUS`` line."""
    start = data.find(b"* STATUS ")
    if start < 0:
        raise ProtocolError("STATUS without its untagged response")
    line = data[start : data.find(CRLF, start)]
    items = {k.upper(): int(v) for k, v in _STATUS_ITEM.findall(line)}
    if b"MESSAGES" not in items or b"UIDVALIDITY" not in items:
        raise ProtocolError("STATUS without MESSAGES or UIDVALIDITY")
    mailboxid = _MAILBOXID.search(line)
    return MailboxState(items[b"MESSAGES"], items[b"UIDVALIDITY"], items.get(b"UIDNEXT"),
                        mailboxid.group(1).decode("ascii") if mailboxid else None)


def list_names(data: bytes) -> list[str]:
    """Mailbox names of the ``* LIST`` lines (quoted or atoms; literals are not expected)."""
    names = []
    for line in data.split(CRLF):
        if not line.startswith(b"* LIST "):
            continue
        close = line.find(b")")
        rest = line[close + 1 :].strip() if close > 0 else b""
        # rest: DELIMITER NAME, the delimiter quoted or NIL
        if rest.startswith(b'"'):
            rest = rest[rest.index(b'"', 1) + 1 :].strip() if rest.count(b'"') >= 2 else b""
        elif rest.upper().startswith(b"NIL"):
            rest = rest[3:].strip()
        else:
            raise ProtocolError("malformed LIST line")
        if rest.startswith(b'"') and rest.endswith(b'"') and len(rest) >= 2:
            name = rest[1:-1].replace(b'\\"', b'"').replace(b"\\\\", b"\\")
        elif rest and b" " not in rest:
            name = rest
        else:
            raise ProtocolError("malformed LIST line")
        names.append(name.decode("utf-8", "replace"))
    return names


@dataclass(frozen=True)
class FetchedMessage:
    uid: int
    body: bytes | None  # BODY[] when fetched


def fetch_messages(data: bytes) -> list[FetchedMessage]:
    """UID and BODY[] of each ``* n FETCH (...)`` in a complete response. Other items (FLAGS,
    RFC822.SIZE) are skipped; other untagged lines (``* OK Message 1 no longer exists``)
    ignored."""
    out: list[FetchedMessage] = []
    pos = 0
    while True:
        start = data.find(b" FETCH (", pos)
        if start < 0:
            return out
        line_start = data.rfind(b"\n", 0, start) + 1
        if not data.startswith(b"* ", line_start):
            pos = start + 8
            continue
        uid, body, pos = _fetch_items(data, start + 8)
        if uid is None:
            raise ProtocolError("FETCH response without UID")
        out.append(FetchedMessage(uid, body))


_ITEM = re.compile(rb"\s*([A-Z0-9.]+(?:\[[^\]]*\](?:<\d+>)?)?)\s*", re.IGNORECASE)
_ATOM = re.compile(rb"[^\s()]+")


def _fetch_items(data: bytes, pos: int) -> tuple[int | None, bytes | None, int]:
    uid = body = None
    while True:
        if pos >= len(data):
            raise ProtocolError("truncated FETCH response")
        if data[pos : pos + 1] == b")":
            return uid, body, pos + 1
        match = _ITEM.match(data, pos)
        if match is None or not match.group(1):
            raise ProtocolError("malformed FETCH item")
        name = match.group(1).upper()
        pos = match.end()
        value, pos = _value(data, pos)
        if name == b"UID":
            if not isinstance(value, bytes) or not value.isdigit():
                raise ProtocolError("malformed FETCH UID")
            uid = int(value)
        elif name.startswith(b"BODY[]") or name == b"RFC822":
            body = value if isinstance(value, bytes) else None
        if data[pos : pos + 1] == b" ":
            pos += 1


def _value(data: bytes, pos: int) -> tuple[bytes | None, int]:
    """One value: a literal, a quoted string, NIL, a number/atom or a parenthesised list."""
    c = data[pos : pos + 1]
    if c == b"{":
        close = data.find(b"}", pos)
        if close < 0 or data[close + 1 : close + 3] != CRLF:
            raise ProtocolError("malformed literal")
        size = int(data[pos + 1 : close].rstrip(b"+"))
        start = close + 3
        if start + size > len(data):
            raise ProtocolError("truncated literal")
        return data[start : start + size], start + size
    if c == b'"':
        end = pos + 1
        while True:
            end = data.find(b'"', end)
            if end < 0:
                raise ProtocolError("unterminated string")
            if data[end - 1 : end] != b"\\":
                break
            end += 1
        return data[pos + 1 : end], end + 1
    if c == b"(":
        depth, end = 0, pos
        while end < len(data):
            ch = data[end : end + 1]
            if ch == b"(":
                depth += 1
            elif ch == b")":
                depth -= 1
                if depth == 0:
                    return None, end + 1
            end += 1
        raise ProtocolError("unbalanced parentheses")
    match = _ATOM.match(data, pos)
    if match is None:
        raise ProtocolError("malformed FETCH value")
    value = match.group(0)
    return (None if value.upper() == b"NIL" else value), match.end()
