"""The one IMAP wire layer on literal bytes (loadtest.core.imapwire): where lines and tagged
responses end with literals in them, however the reads split them; the statuses; literals in
commands; reads against a scripted socket."""

from __future__ import annotations

import pytest

from loadtest.core.imapwire import (
    Wire,
    last_line_status,
    line_end,
    literal_prefix,
    login_line,
    response_end,
    scan_response,
    tagged_line,
    tagged_status,
)

# After Cyrus 3.6's answers (the second literal reads "f OK ").
SELECT = b"* 2 EXISTS\r\n* OK [UIDNEXT 3] Ok\r\ne OK [READ-WRITE] Completed\r\n"
FETCH = (b"* 2 FETCH (UID 2 BODY[] {41}\r\nSubject: t\r\nX-Loadtest-Id: abc\r\n\r\nhello\r\n)\r\n"
         b"* 3 FETCH (UID 3 BODY[] {5}\r\nf OK )\r\nf OK Completed (0.000 sec)\r\n")
FETCH_TAGGED = b"f OK Completed (0.000 sec)"
# A mailbox name sent as a literal that holds CRLF and a tagged-looking line.
LIST = b'* LIST () "/" {13}\r\nx\r\ns OK fake\r\n\r\ns OK Completed\r\n'


class ScriptedSocket:
    """Hands out ``chunks`` one per recv (then EOF); records what is sent and each timeout."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)
        self.sent: list[bytes] = []
        self.timeouts: list[float] = []

    def recv(self, size: int) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        return len(data)

    def sendall(self, data: bytes) -> None:
        self.sent.append(data)

    def settimeout(self, seconds: float) -> None:
        self.timeouts.append(seconds)


def splits(data: bytes) -> list[tuple[bytes, ...]]:
    """``data`` cut in two at every place, and one byte per read."""
    return [(data[:cut], data[cut:]) for cut in range(1, len(data))] + [
        tuple(data[i : i + 1] for i in range(len(data)))]


# -- framing (pure) ----------------------------------------------------------------------------

def test_line_end_skips_literals() -> None:
    assert line_end(b"* OK ready\r\nnext") == 12
    assert line_end(LIST) == LIST.index(b"s OK Completed")
    assert line_end(b"a APPEND x {3+}\r\nab\r\r\nrest") == len(b"a APPEND x {3+}\r\nab\r\r\n")
    assert line_end(b"* OK a brace}\r\n") == 15  # "}" without "{n" is no literal
    assert line_end(b"* OK ready") is None
    assert line_end(b'* LIST () "/" {13}\r\nx\r\ns OK') is None  # inside the literal
    assert line_end(LIST[:-20]) is None  # after the literal, before the line's CRLF
    assert line_end(b"a\r\nb\r\n", 3) == 6


def test_response_end_skips_literals_that_look_tagged() -> None:
    assert response_end(FETCH, b"f ") == len(FETCH)
    # the second literal is "f OK " followed by ")": only the real tagged line ends it
    assert response_end(FETCH[:-10], b"f ") is None
    assert response_end(LIST, b"s ") == len(LIST)


@pytest.mark.parametrize("cut", [5, 60, 90, len(FETCH) - 1])
def test_response_end_waits_for_the_rest(cut: int) -> None:
    assert response_end(FETCH[:cut], b"f ") is None
    # resuming where the incomplete line starts finds the same end once the rest arrives
    _end, resume = scan_response(FETCH[:cut], b"f ")
    assert FETCH[:cut].rfind(b"\n", 0, resume + 1) in (resume - 1, -1)
    assert scan_response(FETCH, b"f ", resume) == (len(FETCH), len(FETCH) - len(FETCH_TAGGED) - 2)


def test_tagged_line_and_status() -> None:
    line = tagged_line(SELECT, len(SELECT))
    assert line == b"e OK [READ-WRITE] Completed"
    assert tagged_status(line, b"e ") == b"OK"
    assert tagged_status(b"e NO [TRYCREATE] Mailbox does not exist", b"e ") == b"NO"
    assert tagged_status(b"e BAD", b"e ") == b"BAD"
    assert tagged_status(b"e MAYBE", b"e ") is None
    assert tagged_status(b"f OK", b"e ") is None


def test_last_line_status_reads_only_the_last_line() -> None:
    assert last_line_status(b'* LIST () "/" INBOX\r\ns OK Completed\r\n', b"s ") == b"OK "
    assert last_line_status(b"l NO [AUTHENTICATIONFAILED] no\r\n", b"l ") == b"NO "
    assert last_line_status(b"l BAD\r\n", b"l ") == b"BAD"
    assert last_line_status(b'* LIST () "/" INBOX\r\n', b"s ") is None  # untagged so far
    assert last_line_status(b"s OK Compl", b"s ") is None  # the line is incomplete
    assert last_line_status(b"s OK Completed\r\n* BYE\r\n", b"s ") is None


def test_command_pieces() -> None:
    assert literal_prefix(41, non_synchronizing=False) == b"{41}\r\n"
    assert literal_prefix(0, non_synchronizing=True) == b"{0+}\r\n"
    assert login_line(b"l ", "user1", 'pa"ss\\word') == b'l LOGIN "user1" "pa\\"ss\\\\word"\r\n'


# -- Wire on a scripted socket ---------------------------------------------------------------

@pytest.mark.parametrize("chunks", splits(FETCH))
def test_response_is_whole_however_the_reads_split_it(chunks: tuple[bytes, ...]) -> None:
    wire = Wire(ScriptedSocket(*chunks, b"* 4 EXISTS\r\n"))
    response = wire.response(b"f ")
    assert response == FETCH
    assert tagged_line(response, len(response)) == FETCH_TAGGED
    assert wire.line() == b"* 4 EXISTS"  # what came next is read after it


@pytest.mark.parametrize("chunks", splits(LIST))
def test_lines_keep_their_literals(chunks: tuple[bytes, ...]) -> None:
    wire = Wire(ScriptedSocket(*chunks))
    assert wire.line() == b'* LIST () "/" {13}\r\nx\r\ns OK fake\r\n'
    assert wire.line() == b"s OK Completed"
    with pytest.raises(ConnectionError):
        wire.line()


def test_what_follows_in_the_same_read_stays_buffered() -> None:
    wire = Wire(ScriptedSocket(b"* OK ready\r\np1 OK done\r\np2 NO x\r\n"))
    assert wire.line() == b"* OK ready"
    assert wire.command(b"p1 NOOP\r\n", b"p1 ") == b"p1 OK done"
    assert wire.response(b"p2 ") == b"p2 NO x\r\n"
    assert wire.sock.sent == [b"p1 NOOP\r\n"]


def test_completion_is_the_last_lines_status_and_the_bytes_read() -> None:
    wire = Wire(ScriptedSocket(b'* LIST () "/" INBOX\r\ns O', b"K Completed\r\n"))
    assert wire.completion(b"s ") == (b"OK ", 37)
    wire = Wire(ScriptedSocket(b"l NO wrong\r\n"))
    assert wire.completion(b"l ") == (b"NO ", 12)


def test_eof_is_a_connection_error() -> None:
    wire = Wire(ScriptedSocket(b"* OK rea"))
    with pytest.raises(ConnectionError, match="closed"):
        wire.line()
    with pytest.raises(ConnectionError):
        Wire(ScriptedSocket(b"* 1 EXISTS\r\n")).response(b"a ")


def test_a_deadline_bounds_each_recv(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("loadtest.core.imapwire.time.monotonic", lambda: now[0])
    sock = ScriptedSocket(b"* OK", b" ready\r\n")
    wire = Wire(sock, deadline=102.5)
    assert wire.line() == b"* OK ready"
    assert sock.timeouts == [2.5, 2.5]
    now[0] = 102.5
    with pytest.raises(TimeoutError):
        wire.line()
    assert len(sock.chunks) == 0 and sock.timeouts == [2.5, 2.5]


def test_literals_in_commands() -> None:
    sock = ScriptedSocket()
    assert Wire(sock).send_literal(b"a APPEND x ", b"hi\r\n", non_synchronizing=True)
    assert sock.sent == [b"a APPEND x {4+}\r\nhi\r\n\r\n"]
    # synchronizing: the data goes only after the server's continuation
    sock = ScriptedSocket(b"+ go ahead\r\n")
    assert Wire(sock).send_literal(b"a APPEND x ", b"hi", non_synchronizing=False)
    assert sock.sent == [b"a APPEND x {2}\r\n", b"hi\r\n"]
    sock = ScriptedSocket(b"a NO [TRYCREATE] no such mailbox\r\n")
    assert not Wire(sock).send_literal(b"a APPEND x ", b"hi", non_synchronizing=False)
    assert sock.sent == [b"a APPEND x {2}\r\n"]
