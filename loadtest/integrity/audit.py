"""The audit: compare the ledger with what the mailboxes hold. Pure: data in, problems out.

Rules (docs/integrity.md):
- every acknowledged message is present exactly once, at its acknowledged UID, with the bytes
  that were sent; a message acknowledged twice is a duplicate;
- an unacknowledged one (cut before the reply, failed, or in flight when the run stopped) is
  present once with the bytes that were sent, or absent: never twice, never altered;
- the seed messages of the audited users are intact;
- UIDVALIDITY has not changed, acknowledged UIDs increase strictly, UIDNEXT is above them,
  STATUS MESSAGES matches the listing and the ledger;
- no message in the folder that the ledger cannot account for.

Each problem is ``lost``, ``duplicated`` or ``corrupt`` (mailbox-level inconsistencies count as
corrupt) and names the message: mailbox, id, UID.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from loadtest.integrity.ledger import MailboxKey, MailboxLedger
from loadtest.integrity.message import digest, message_id_of

LOST, DUPLICATED, CORRUPT = "lost", "duplicated", "corrupt"
PROBLEM_KINDS = (LOST, DUPLICATED, CORRUPT)
_MESSAGE_ID = re.compile(rb"^Message-ID: *(<[^>\r\n]+>)", re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True)
class Problem:
    kind: str  # lost | duplicated | corrupt
    user: str
    mailbox: str
    detail: str
    id: str | None = None  # the message's id (or a seed's Message-ID)
    uid: int | None = None
    instance: str | None = None

    def describe(self) -> str:
        where = f"{self.instance}:" if self.instance else ""
        what = f" message {self.id}" if self.id else ""
        uid = f" (UID {self.uid})" if self.uid is not None else ""
        return f"{self.kind}: {where}{self.user}/{self.mailbox}{what}{uid}: {self.detail}"


@dataclass
class MailboxView:
    """What the server shows of one mailbox at audit time."""

    uidvalidity: int | None = None
    uidnext: int | None = None
    status_messages: int | None = None  # STATUS MESSAGES
    uids: list[int] = field(default_factory=list)  # every UID the index lists
    bodies: dict[int, bytes] = field(default_factory=dict)  # UID -> BODY[] of readable ones
    missing: bool = False  # the server says the mailbox does not exist
    error: str | None = None  # could not look (connection, login): the audit is incomplete


@dataclass
class SeedView:
    instance: str | None
    user: str
    expected: list[bytes]
    bodies: list[bytes] = field(default_factory=list)  # INBOX messages
    error: str | None = None


@dataclass
class AuditResult:
    checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # what could not be read
    mailboxes: int = 0

    def count(self, kind: str) -> int:
        return sum(p.kind == kind for p in self.problems)

    @property
    def status(self) -> str:
        if self.problems:
            return "problems"
        return "incomplete" if self.incomplete else "clean"

    def counts(self) -> dict[str, int]:
        return {"checked": self.checked, **{k: self.count(k) for k in PROBLEM_KINDS}}

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, **self.counts(), "mailboxes": self.mailboxes,
                "problems": [{**asdict(p), "text": p.describe()} for p in self.problems],
                "incomplete": list(self.incomplete)}


def audit(boxes: dict[MailboxKey, MailboxLedger], views: dict[MailboxKey, MailboxView],
          seeds: Iterable[SeedView] = ()) -> AuditResult:
    result = AuditResult()
    for key, box in boxes.items():
        view = views.get(key)
        if view is None or view.error:
            result.incomplete.append(f"{box.user}/{box.mailbox}: "
                                     f"{view.error if view else 'not read'}")
            continue
        result.mailboxes += 1
        _audit_mailbox(box, view, result)
    for seed in seeds:
        _audit_seeds(seed, result)
    return result


def _audit_mailbox(box: MailboxLedger, view: MailboxView, result: AuditResult) -> None:
    def problem(kind: str, detail: str, message_id: str | None = None,
                uid: int | None = None) -> None:
        result.problems.append(Problem(kind, box.user, box.mailbox, detail, message_id, uid,
                                       box.instance))

    attempts = list(box.attempts.values())
    result.checked += len(attempts)
    if view.missing:
        for attempt in attempts:
            if attempt.acknowledged:
                problem(LOST, "the mailbox no longer exists", attempt.id, attempt.acks[-1][1])
        return
    before = len(result.problems)
    located: dict[str, list[int]] = defaultdict(list)  # id -> UIDs whose body carries it
    for uid, body in sorted(view.bodies.items()):
        message_id = message_id_of(body)
        if message_id is not None:
            located[message_id].append(uid)
    listed = set(view.uids)
    accounted: set[int] = set()

    for attempt in attempts:
        copies = located.get(attempt.id, [])
        if attempt.acknowledged:
            acked_uids = sorted({uid for _, uid in attempt.acks})
            accounted.update(acked_uids)
            if len(attempt.acks) > 1:
                problem(DUPLICATED, f"acknowledged {len(attempt.acks)} times (UIDs "
                        f"{', '.join(map(str, acked_uids))})", attempt.id, acked_uids[-1])
            elif len(copies) > 1:
                problem(DUPLICATED, f"present {len(copies)} times (UIDs "
                        f"{', '.join(map(str, copies))})", attempt.id, acked_uids[-1])
            for uid in acked_uids:
                stored = view.bodies.get(uid)
                if stored is not None:
                    if digest(stored) != attempt.sha256:
                        problem(CORRUPT, f"bytes differ from those acknowledged ({len(stored)} "
                                f"bytes, sent {attempt.size})", attempt.id, uid)
                elif uid in listed:
                    problem(LOST, "listed, but the server cannot read the message", attempt.id, uid)
                elif copies:
                    problem(CORRUPT, f"found at UID {', '.join(map(str, copies))}, not at the "
                            "acknowledged UID", attempt.id, uid)
                else:
                    problem(LOST, "no message at the acknowledged UID", attempt.id, uid)
            accounted.update(copies)
        else:
            accounted.update(copies)
            why = "cut before the reply" if attempt.cut else (attempt.failed or "no reply recorded")
            if len(copies) > 1:
                problem(DUPLICATED, f"unacknowledged ({why}) but present {len(copies)} times "
                        f"(UIDs {', '.join(map(str, copies))})", attempt.id, copies[-1])
            elif copies and digest(view.bodies[copies[0]]) != attempt.sha256:
                problem(CORRUPT, f"unacknowledged ({why}), present with other bytes than sent",
                        attempt.id, copies[0])

    for uid in sorted(listed | set(view.bodies)):
        if uid in accounted:
            continue
        stored = view.bodies.get(uid)
        if stored is None:
            problem(CORRUPT, "listed, but the server cannot read it and the ledger has no "
                    "message for it", None, uid)
        else:
            message_id = message_id_of(stored)
            problem(CORRUPT, "a message the ledger cannot account for" +
                    (f" (id {message_id})" if message_id else " (id header missing or damaged)"),
                    message_id, uid)
    for mismatch in box.mismatches:
        problem(CORRUPT, "a FETCH during the run returned other bytes than acknowledged",
                mismatch["id"], mismatch.get("uid"))

    # The mailbox as a whole.
    if box.uidvalidity is not None and view.uidvalidity != box.uidvalidity:
        problem(CORRUPT, f"UIDVALIDITY changed from {box.uidvalidity} to {view.uidvalidity}")
    for validity in sorted(set(box.ack_validities)):
        if validity != view.uidvalidity:
            problem(CORRUPT, f"messages acknowledged under UIDVALIDITY {validity}, the mailbox "
                    f"has {view.uidvalidity}")
    for earlier, later in zip(box.ack_uids, box.ack_uids[1:], strict=False):
        if later <= earlier:
            problem(CORRUPT, f"acknowledged UIDs not strictly increasing: {earlier} then {later}")
            break
    if box.ack_uids and view.uidnext is not None and view.uidnext <= max(box.ack_uids):
        problem(CORRUPT, f"UIDNEXT {view.uidnext} not above the highest acknowledged UID "
                f"{max(box.ack_uids)}")
    if view.status_messages is not None and view.status_messages != len(view.uids):
        problem(CORRUPT, f"STATUS MESSAGES {view.status_messages}, but {len(view.uids)} "
                "messages listed")
    acked = len(box.acknowledged)
    most = acked + len(box.unacknowledged)
    if len(result.problems) == before and view.status_messages is not None \
            and not acked <= view.status_messages <= most:
        problem(CORRUPT, f"STATUS MESSAGES {view.status_messages}, the ledger allows "
                f"{acked}..{most}")


def _audit_seeds(seed: SeedView, result: AuditResult) -> None:
    if seed.error:
        result.incomplete.append(f"{seed.user}/INBOX: {seed.error}")
        return
    present = Counter(digest(b) for b in seed.bodies)
    ids = Counter(_header_message_id(b) for b in seed.bodies)
    for expected in seed.expected:
        result.checked += 1
        name = _header_message_id(expected)
        copies = present.get(digest(expected), 0)
        if copies == 1:
            continue
        if copies > 1:
            kind, detail = DUPLICATED, f"seed message present {copies} times"
        elif name is not None and ids.get(name):
            kind, detail = CORRUPT, "seed message present with other bytes"
        else:
            kind, detail = LOST, "seed message missing"
        result.problems.append(Problem(kind, seed.user, "INBOX", detail, name, None, seed.instance))


def _header_message_id(data: bytes) -> str | None:
    match = _MESSAGE_ID.search(data.split(b"\r\n\r\n", 1)[0])
    return match.group(1).decode("ascii", "replace") if match else None
