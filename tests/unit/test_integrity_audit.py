"""The integrity audit on literal data: ledger entries and mailbox views in, named problems out
(loadtest.integrity.message, .ledger, .audit)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from loadtest.integrity.audit import CORRUPT, DUPLICATED, LOST, MailboxView, SeedView, audit
from loadtest.integrity.ledger import Ledger, fold, read_ledger
from loadtest.integrity.message import body_intact, digest, make_message, message_id_of

WHERE = {"instance": "slot1", "host": "127.0.0.1", "port": 143, "user": "user0001",
         "mailbox": "lt-integrity-abc-0"}
KEY = ("slot1", "user0001", "lt-integrity-abc-0")
VALIDITY = 1796111952


def message(n: int) -> bytes:
    return make_message(f"abc-0-{n}", "user0001", random.Random(n))


def entries(*steps: tuple) -> list[dict]:
    """("ack", n, uid) / ("cut", n) / ("failed", n) / ("pending", n): one APPEND each."""
    out = [{"t": 0.0, "kind": "mailbox", **WHERE, "uidvalidity": VALIDITY, "mailboxid": "m1"}]
    for i, step in enumerate(steps, start=1):
        kind, n = step[0], step[1]
        data = message(n)
        out.append({"t": float(i), "kind": "append", **WHERE, "id": f"abc-0-{n}",
                    "sha256": digest(data), "size": len(data)})
        if kind == "ack":
            out.append({"t": i + 0.5, "kind": "ack", **WHERE, "id": f"abc-0-{n}",
                        "uidvalidity": step[3] if len(step) > 3 else VALIDITY, "uid": step[2]})
        elif kind in ("cut", "failed"):
            out.append({"t": i + 0.5, "kind": kind, **WHERE, "id": f"abc-0-{n}", "why": "x"})
    return out


def view(bodies: dict[int, bytes], *, listed: list[int] | None = None, uidnext: int | None = None,
         status: int | None = None, validity: int = VALIDITY) -> MailboxView:
    uids = sorted(listed if listed is not None else bodies)
    return MailboxView(uidvalidity=validity, uidnext=uidnext or max(uids or [0]) + 1,
                       status_messages=len(uids) if status is None else status,
                       uids=uids, bodies=bodies)


def problems(ledger: list[dict], mailbox: MailboxView) -> list[tuple[str, str | None, int | None]]:
    result = audit(fold(ledger), {KEY: mailbox})
    return [(p.kind, p.id, p.uid) for p in result.problems]


def test_messages_carry_their_id_and_body_checksum() -> None:
    data = message(7)
    assert message_id_of(data) == "abc-0-7"
    assert body_intact(data)
    assert not body_intact(data.replace(b"\r\n\r\n", b"\r\n\r\nX", 1))
    assert message_id_of(b"Subject: x\r\n\r\nX-Loadtest-Id: abc\r\n") is None  # header only


def test_a_clean_mailbox_with_cut_and_failed_appends() -> None:
    ledger = entries(("ack", 1, 1), ("cut", 2), ("ack", 3, 3), ("failed", 4), ("pending", 5))
    # the cut one arrived (UID 2), the failed and the pending ones did not
    result = audit(fold(ledger), {KEY: view({1: message(1), 2: message(2), 3: message(3)})})
    assert result.problems == [] and result.status == "clean"
    assert result.counts() == {"checked": 5, "lost": 0, "duplicated": 0, "corrupt": 0}


def test_lost_when_the_acknowledged_uid_is_gone_or_unreadable() -> None:
    ledger = entries(("ack", 1, 1), ("ack", 2, 2))
    assert problems(ledger, view({1: message(1)}, uidnext=3)) == [(LOST, "abc-0-2", 2)]
    # still in the index, but its file is gone: Cyrus leaves it out of FETCH BODY[]
    unreadable = view({1: message(1)}, listed=[1, 2])
    assert problems(ledger, unreadable) == [(LOST, "abc-0-2", 2)]
    result = audit(fold(ledger), {KEY: unreadable})
    assert "abc-0-2" in result.problems[0].describe()
    assert "user0001/lt-integrity-abc-0" in result.problems[0].describe()


def test_corrupt_when_the_bytes_differ() -> None:
    ledger = entries(("ack", 1, 1))
    altered = message(1).replace(b"stress", b"strezz").replace(b"mail", b"mall")
    assert problems(ledger, view({1: altered})) == [(CORRUPT, "abc-0-1", 1)]
    # the id header itself damaged: still judged at its acknowledged UID
    no_id = message(1).replace(b"X-Loadtest-Id", b"X-Loadtest-Ix")
    assert problems(ledger, view({1: no_id})) == [(CORRUPT, "abc-0-1", 1)]


def test_duplicated_when_acknowledged_twice_or_present_twice() -> None:
    twice = entries(("ack", 1, 1))
    twice.append({"t": 9.0, "kind": "ack", **WHERE, "id": "abc-0-1", "uidvalidity": VALIDITY,
                  "uid": 2})
    assert problems(twice, view({1: message(1), 2: message(1)})) == [(DUPLICATED, "abc-0-1", 2)]
    once = entries(("ack", 1, 1))
    assert (DUPLICATED, "abc-0-1", 1) in problems(once, view({1: message(1), 2: message(1)}))


def test_an_unacknowledged_message_may_be_absent_or_once_never_twice_or_altered() -> None:
    ledger = entries(("cut", 1))
    assert problems(ledger, view({})) == []
    assert problems(ledger, view({4: message(1)})) == []
    assert problems(ledger, view({4: message(1), 5: message(1)})) == [(DUPLICATED, "abc-0-1", 5)]
    altered = message(1).replace(b"\r\n\r\n", b"\r\n\r\nX", 1)
    assert problems(ledger, view({4: altered})) == [(CORRUPT, "abc-0-1", 4)]


def test_messages_the_ledger_cannot_account_for_are_corrupt() -> None:
    ledger = entries(("ack", 1, 1))
    stranger = b"Subject: who\r\n\r\nnot ours\r\n"
    assert problems(ledger, view({1: message(1), 2: stranger})) == [(CORRUPT, None, 2)]


def test_mailbox_state_uidvalidity_uid_order_uidnext_status() -> None:
    ledger = entries(("ack", 1, 1), ("ack", 2, 2))
    assert problems(ledger, view({1: message(1), 2: message(2)}, validity=5)) == [
        (CORRUPT, None, None), (CORRUPT, None, None)]  # changed, and acks under the old one
    backwards = entries(("ack", 1, 2), ("ack", 2, 1))
    found = audit(fold(backwards), {KEY: view({1: message(2), 2: message(1)})}).problems
    assert [p.detail for p in found] == ["acknowledged UIDs not strictly increasing: 2 then 1"]
    low_next = view({1: message(1), 2: message(2)}, uidnext=2)
    assert [p.detail for p in audit(fold(ledger), {KEY: low_next}).problems] == [
        "UIDNEXT 2 not above the highest acknowledged UID 2"]
    wrong_status = view({1: message(1), 2: message(2)}, status=3)
    assert [p.detail for p in audit(fold(ledger), {KEY: wrong_status}).problems] == [
        "STATUS MESSAGES 3, but 2 messages listed"]


def test_a_mailbox_that_is_gone_loses_every_acknowledged_message() -> None:
    ledger = entries(("ack", 1, 1), ("cut", 2))
    assert problems(ledger, MailboxView(missing=True)) == [(LOST, "abc-0-1", 1)]


def test_an_unreadable_mailbox_makes_the_audit_incomplete_not_clean() -> None:
    result = audit(fold(entries(("ack", 1, 1))), {KEY: MailboxView(error="LOGIN: auth rejected")})
    assert result.status == "incomplete" and result.problems == []
    assert result.incomplete == ["user0001/lt-integrity-abc-0: LOGIN: auth rejected"]


def test_seed_messages() -> None:
    seed = b"Message-ID: <welcome-user0001@loadtest.invalid>\r\nSubject: hi\r\n\r\nbody\r\n"
    other = b"Message-ID: <report@loadtest.invalid>\r\n\r\nreport\r\n"

    def seed_problems(bodies: list[bytes]) -> list[tuple[str, str | None]]:
        result = audit({}, {}, [SeedView("slot1", "user0001", [seed, other], bodies)])
        return [(p.kind, p.id) for p in result.problems]

    assert seed_problems([seed, other]) == []
    assert seed_problems([other]) == [(LOST, "<welcome-user0001@loadtest.invalid>")]
    assert seed_problems([seed.replace(b"body", b"bodx"), other]) == [
        (CORRUPT, "<welcome-user0001@loadtest.invalid>")]
    assert seed_problems([seed, seed, other]) == [(DUPLICATED, "<welcome-user0001@loadtest.invalid>")]


def test_ledger_flushes_new_entries_and_drains_for_workers(tmp_path: Path) -> None:
    ledger = Ledger()
    ledger.record("append", WHERE, id="abc-0-1", sha256="0" * 64, size=10)
    ledger.flush(tmp_path)
    ledger.record("ack", WHERE, id="abc-0-1", uidvalidity=VALIDITY, uid=1)
    ledger.flush(tmp_path)
    ledger.flush(tmp_path)
    lines = (tmp_path / "ledger.jsonl").read_text().splitlines()
    assert [json.loads(line)["kind"] for line in lines] == ["append", "ack"]
    # a worker's ledger: each report carries what is new since the last one
    worker = Ledger()
    worker.record("append", WHERE, id="abc-0-2", sha256="0" * 64, size=10)
    assert [e["id"] for e in worker.drain()] == ["abc-0-2"]
    assert worker.drain() == []
    assert (ledger.count, worker.count) == (2, 1)


def test_read_ledger_merges_files_and_skips_a_torn_line(tmp_path: Path) -> None:
    first, second = entries(("ack", 1, 1)), entries(("ack", 2, 2))
    (tmp_path / "ledger.jsonl").write_text("".join(json.dumps(e) + "\n" for e in first) + '{"t": 9')
    (tmp_path / "ledger-worker1.jsonl").write_text("".join(json.dumps(e) + "\n" for e in second[1:]))
    read = read_ledger(tmp_path)
    assert len(read) == len(first) + len(second) - 1
    assert [e["t"] for e in read] == sorted(e["t"] for e in read)
    with pytest.raises(FileNotFoundError):
        read_ledger(tmp_path / "nothing")
