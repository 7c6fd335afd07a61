"""Whole IMAP responses on literal bytes: the data items the integrity user and the audit read
(loadtest.imap.response). Where a response ends: test_core_imapwire.py."""

from __future__ import annotations

import pytest

from loadtest.imap.failures import ProtocolError
from loadtest.imap.response import (
    appenduid,
    fetch_messages,
    list_names,
    select_state,
    status_state,
)

# Cyrus 3.6's answers, as captured from a test deployment.
SELECT = (b"* 2 EXISTS\r\n* 0 RECENT\r\n* FLAGS (\\Answered \\Seen)\r\n"
          b"* OK [UIDVALIDITY 1796111952] Ok\r\n* OK [UIDNEXT 3] Ok\r\n"
          b"* OK [MAILBOXID (f6ah796yam4dhp8jcie0pbpp)] Ok\r\ne OK [READ-WRITE] Completed\r\n")
FETCH = (b"* OK Message 1 no longer exists\r\n"
         b"* 2 FETCH (UID 2 RFC822.SIZE 41 BODY[] {41}\r\nSubject: t\r\nX-Loadtest-Id: abc\r\n\r\n"
         b"hello\r\n)\r\n* 3 FETCH (FLAGS (\\Seen) UID 3 BODY[] {5}\r\nf OK )\r\n"
         b"f OK Completed (0.000 sec)\r\n")


def test_appenduid() -> None:
    assert appenduid(b"a OK [APPENDUID 1796111952 17] Completed") == (1796111952, 17)
    with pytest.raises(ProtocolError, match="APPENDUID"):
        appenduid(b"a OK Completed")


def test_select_state() -> None:
    state = select_state(SELECT)
    assert (state.exists, state.uidvalidity, state.uidnext, state.mailboxid) == (
        2, 1796111952, 3, "f6ah796yam4dhp8jcie0pbpp")
    with pytest.raises(ProtocolError):
        select_state(b"* 2 EXISTS\r\ne OK Completed\r\n")


def test_status_state() -> None:
    data = b"* STATUS lt-x (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 1796111952)\r\nh OK Completed\r\n"
    state = status_state(data)
    assert (state.exists, state.uidnext, state.uidvalidity) == (2, 3, 1796111952)
    with pytest.raises(ProtocolError):
        status_state(b"h OK Completed\r\n")


def test_list_names() -> None:
    data = (b'* LIST (\\HasNoChildren) "/" INBOX\r\n* LIST (\\HasNoChildren) "/" "Sent Items"\r\n'
            b'* LIST (\\Noselect) NIL lt-x\r\nc OK Completed\r\n')
    assert list_names(data) == ["INBOX", "Sent Items", "lt-x"]
    with pytest.raises(ProtocolError):
        list_names(b"* LIST garbage\r\n")


def test_fetch_messages() -> None:
    messages = fetch_messages(FETCH)
    assert [(m.uid, m.body) for m in messages] == [
        (2, b"Subject: t\r\nX-Loadtest-Id: abc\r\n\r\nhello\r\n"), (3, b"f OK ")]
    only_uids = fetch_messages(b"* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 7)\r\nr OK Completed\r\n")
    assert [(m.uid, m.body) for m in only_uids] == [(1, None), (7, None)]


@pytest.mark.parametrize("data", [
    b"* 1 FETCH (BODY[] {3}\r\nabc)\r\n",  # no UID
    b"* 1 FETCH (UID x)\r\n",
    b"* 1 FETCH (UID 1 BODY[] {30}\r\nabc)\r\n",  # literal longer than the data
    b"* 1 FETCH (UID 1",
])
def test_fetch_messages_refuses_malformed_responses(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        fetch_messages(data)
