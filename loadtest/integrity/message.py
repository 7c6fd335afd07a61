"""The integrity user's messages: a unique id and a checksum of the body in the headers.

Pure module. The ledger keeps the SHA-256 of the whole message as sent; the body checksum in
the header lets a message be judged on its own (an audit without its ledger line still knows a
damaged body).
"""

from __future__ import annotations

import hashlib
import random
import re

ID_HEADER = b"X-Loadtest-Id"
CHECKSUM_HEADER = b"X-Loadtest-Body-SHA256"
_ID = re.compile(rb"^X-Loadtest-Id: ([A-Za-z0-9._-]+)\r?$", re.MULTILINE | re.IGNORECASE)
_CHECKSUM = re.compile(rb"^X-Loadtest-Body-SHA256: ([0-9a-f]{64})\r?$", re.MULTILINE | re.IGNORECASE)
_WORDS = ("mail", "server", "load", "stress", "flood", "churn", "master", "imapd", "queue",
          "literal", "append", "ledger", "audit", "byte", "spool", "index")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_message(message_id: str, user: str, rng: random.Random, lines: int = 12) -> bytes:
    """A small RFC 5322 message (CRLF line ends) carrying ``message_id`` and its body checksum."""
    body = b"".join(b" ".join(rng.choice(_WORDS).encode() for _ in range(10)) + b"\r\n"
                    for _ in range(lines))
    body += b"id " + message_id.encode() + b"\r\n"
    headers = (b"From: integrity@loadtest.invalid\r\n"
               b"To: " + user.encode() + b"@loadtest.invalid\r\n"
               b"Subject: integrity " + message_id.encode() + b"\r\n"
               b"Message-ID: <" + message_id.encode() + b"@loadtest.invalid>\r\n"
               + ID_HEADER + b": " + message_id.encode() + b"\r\n"
               + CHECKSUM_HEADER + b": " + digest(body).encode() + b"\r\n"
               b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n")
    return headers + b"\r\n" + body


def message_id_of(data: bytes) -> str | None:
    """The id in the headers, or None (not one of ours, or the header is damaged)."""
    head = data.split(b"\r\n\r\n", 1)[0]
    match = _ID.search(head)
    return match.group(1).decode("ascii") if match else None


def body_intact(data: bytes) -> bool:
    """Whether the body still matches the checksum in the headers."""
    head, sep, body = data.partition(b"\r\n\r\n")
    match = _CHECKSUM.search(head)
    return bool(sep) and match is not None and digest(body) == match.group(1).decode("ascii")
