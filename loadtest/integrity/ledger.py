"""The ledger: every APPEND the integrity users tried and what the server answered.

Pure module apart from the file appends in :meth:`Ledger.flush`. One JSON object per line in
``ledger.jsonl`` in the run folder, flushed every second like ``series.jsonl``. Each entry has
``t``, ``kind`` and the mailbox it is about (``instance``, ``host``, ``port``, ``user``,
``mailbox``):

| kind | written | extra fields |
|---|---|---|
| ``mailbox`` | after the user's first SELECT of its folder | ``uidvalidity``, ``mailboxid`` |
| ``append`` | before the APPEND is sent | ``id``, ``sha256``, ``size`` |
| ``ack`` | on the tagged OK | ``id``, ``uidvalidity``, ``uid`` |
| ``cut`` | the connection was reset after the literal, before the reply | ``id`` |
| ``failed`` | the APPEND failed (NO, lost, timeout): outcome unknown | ``id``, ``why`` |
| ``mismatch`` | a FETCH during the run returned other bytes than acknowledged | ``id``, ``uid``, ``sha256`` |

An ``append`` without any later line (the run stopped the user mid-command) counts like a cut.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LEDGER_FILE = "ledger.jsonl"
MAILBOX, APPEND, ACK, CUT, FAILED, MISMATCH = "mailbox", "append", "ack", "cut", "failed", "mismatch"
KINDS = (MAILBOX, APPEND, ACK, CUT, FAILED, MISMATCH)
WHERE = ("instance", "host", "port", "user", "mailbox")

MailboxKey = tuple[str | None, str, str]  # (instance, user, mailbox)


class Ledger:
    """New entries in memory (thread-safe) until they leave: on the master or local runner
    :meth:`flush` appends them to the run folder's ``ledger.jsonl``; on a Locust worker
    :meth:`drain` hands them to its next report to the master. Nothing is kept after that, so a
    long run does not grow in memory; the audit reads the file."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []
        self.count = 0  # entries ever recorded or merged

    def record(self, kind: str, where: dict[str, Any], **fields: Any) -> None:
        entry = {"t": time.time(), "kind": kind, **where, **fields}
        with self._lock:
            self._pending.append(entry)
            self.count += 1

    def extend(self, entries: Iterable[dict[str, Any]]) -> None:
        entries = list(entries)
        with self._lock:
            self._pending.extend(entries)
            self.count += len(entries)

    def drain(self) -> list[dict[str, Any]]:
        """The entries recorded since the last drain (a worker's share for its next report)."""
        with self._lock:
            new, self._pending = self._pending, []
        return new

    def flush(self, folder: str | Path) -> None:
        new = self.drain()
        if new:
            with open(Path(folder) / LEDGER_FILE, "a", encoding="utf-8") as fh:
                fh.write("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in new))


def read_ledger(folder: str | Path) -> list[dict[str, Any]]:
    """The entries of ``folder/ledger.jsonl`` (and ``ledger-*.jsonl``, one per worker when
    workers wrote their own), in time order. A torn last line (a killed run) is skipped;
    FileNotFoundError when there is no ledger at all."""
    files = sorted(Path(folder).glob("ledger*.jsonl"))
    if not files:
        raise FileNotFoundError(str(Path(folder) / LEDGER_FILE))
    entries = []
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("kind") in KINDS:
                entries.append(entry)
    entries.sort(key=lambda e: e.get("t", 0.0))
    return entries


@dataclass
class Attempt:
    """One message id in one mailbox: what was sent and every answer about it."""

    id: str
    sha256: str
    size: int
    acks: list[tuple[int, int]] = field(default_factory=list)  # (uidvalidity, uid)
    cut: bool = False
    failed: str | None = None

    @property
    def acknowledged(self) -> bool:
        return bool(self.acks)


@dataclass
class MailboxLedger:
    instance: str | None
    host: str
    port: int
    user: str
    mailbox: str
    uidvalidity: int | None = None  # from the first SELECT
    mailboxid: str | None = None
    attempts: dict[str, Attempt] = field(default_factory=dict)
    ack_uids: list[int] = field(default_factory=list)  # in the order the server acknowledged
    ack_validities: list[int] = field(default_factory=list)
    mismatches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> MailboxKey:
        return (self.instance, self.user, self.mailbox)

    @property
    def acknowledged(self) -> list[Attempt]:
        return [a for a in self.attempts.values() if a.acknowledged]

    @property
    def unacknowledged(self) -> list[Attempt]:
        return [a for a in self.attempts.values() if not a.acknowledged]


def fold(entries: Iterable[dict[str, Any]]) -> dict[MailboxKey, MailboxLedger]:
    """The ledger per mailbox, from entries in time order."""
    boxes: dict[MailboxKey, MailboxLedger] = {}
    for e in entries:
        key = (e.get("instance"), str(e["user"]), str(e["mailbox"]))
        box = boxes.get(key)
        if box is None:
            box = boxes[key] = MailboxLedger(e.get("instance"), str(e.get("host", "")),
                                             int(e.get("port", 0)), key[1], key[2])
        kind = e["kind"]
        if kind == MAILBOX:
            if box.uidvalidity is None:
                box.uidvalidity = int(e["uidvalidity"])
                box.mailboxid = e.get("mailboxid")
            continue
        message_id = str(e["id"])
        attempt = box.attempts.get(message_id)
        if kind == APPEND:
            if attempt is None:
                box.attempts[message_id] = Attempt(message_id, str(e["sha256"]), int(e["size"]))
            continue
        if attempt is None:
            continue  # an answer without its append line (a torn ledger): nothing to compare
        if kind == ACK:
            validity, uid = int(e["uidvalidity"]), int(e["uid"])
            attempt.acks.append((validity, uid))
            box.ack_uids.append(uid)
            box.ack_validities.append(validity)
        elif kind == CUT:
            attempt.cut = True
        elif kind == FAILED:
            attempt.failed = str(e.get("why", "failed"))
        elif kind == MISMATCH:
            box.mismatches.append({"id": message_id, "uid": e.get("uid"), "sha256": e.get("sha256")})
    return boxes
