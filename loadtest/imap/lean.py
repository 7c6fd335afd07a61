"""The lean path: a raw socket session for floods and cheap churn, without imapclient.

Same steps, step names, failure classes and ``Reporter`` as :mod:`loadtest.imap.session`, with as
little Python and as few system calls per step as we can: one ``send`` per command, one
``recv`` per response in the common case (on gevent, after waiting for readability rather than
after a failed recv), commands pre-encoded once per user, and the tagged
status found by looking only at the last line of what arrived.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from time import perf_counter
from typing import Any

from loadtest.core.credentials import Credential, quote
from loadtest.imap import failures as f
from loadtest.imap.response import appenduid, scan_response, tagged_line, tagged_status
from loadtest.imap.timed import TimedSession
from loadtest.imap.transport import (
    DISCONNECT_LOGOUT,
    TLS_IMPLICIT,
    TLS_NONE,
    TLS_STARTTLS,
    Target,
    connect_socket,
    drop,
    set_quickack,
    wrap_tls,
)

_RECV = 65536
_CRLF = b"\r\n"
# One fixed tag per command: commands are never pipelined, so tags need not be unique.
_LOGIN_TAG = b"l "
_LIST_TAG = b"s "
_LOGOUT_TAG = b"o "
_STARTTLS_TAG = b"t "
_APPEND_TAG = b"a "
LIST_COMMAND = b's LIST "" "*"\r\n'
LOGOUT_COMMAND = b"o LOGOUT\r\n"
STARTTLS_COMMAND = b"t STARTTLS\r\n"


def login_command(credential: Credential) -> bytes:
    """The LOGIN line for ``credential``, encoded once per simulated user."""
    return b"l LOGIN " + quote(credential.username) + b" " + quote(credential.password) + _CRLF


class LeanSession(TimedSession):
    """Connect, greet, LOGIN, LIST, LOGOUT or drop, on a plain (gevent) socket."""

    __slots__ = ("sock", "_wait_first", "literal_plus", "_quickack")

    def __init__(self, target: Target, *args: Any, **kwargs: Any) -> None:
        super().__init__(target, *args, **kwargs)
        self.sock: socket.socket | None = None
        # On a plain gevent socket, wait until it is readable before each first recv: the reply
        # is almost never there yet, and gevent's recv would first fail with EAGAIN (a system
        # call and a Python exception) before waiting. Not with TLS: decrypted bytes can sit
        # in the SSL object while the socket has nothing more to read.
        self._wait_first = target.tls == TLS_NONE and hasattr(socket.socket, "_wait")
        self.literal_plus = False  # the greeting announced LITERAL+ (non-synchronizing literals)
        # Cyrus does not set TCP_NODELAY with TLS, and Linux leaves quick-ACK mode after a few
        # segments: re-arm it before each response, or a reply written in two pieces waits
        # ~40 ms for our delayed ACK (measured: LOGIN after STARTTLS, median 42 ms -> 1 ms).
        self._quickack = target.tls != TLS_NONE

    @property
    def connected(self) -> bool:
        return self.sock is not None

    def connect(self) -> int:
        """CONNECT: TCP connect (+ TLS) until the greeting (+ STARTTLS). Returns bytes read."""
        if self.sock is not None:
            self.abort()
        t0 = perf_counter()
        self.phase = f.PHASE_CONNECT
        target = self.target
        try:
            sock = self.sock = connect_socket(target, self.connect_timeout)
            sock.settimeout(self.timeout)
            if target.tls == TLS_IMPLICIT:
                self.phase = f.PHASE_TLS
                sock = self.sock = wrap_tls(sock, target, self.tls_session)
            self.phase = f.PHASE_GREETING
            greeting = self._read_line(sock)
            if not greeting.startswith((b"* OK", b"* PREAUTH")):
                if greeting.startswith(b"* BYE"):
                    raise f.ByeGreeting()
                raise f.ProtocolError("unexpected greeting")
            length = len(greeting)
            self.literal_plus = b"LITERAL+" in greeting
            if target.tls == TLS_STARTTLS:
                self.phase = f.PHASE_COMMAND
                length += self._command(STARTTLS_COMMAND, _STARTTLS_TAG)
                self.phase = f.PHASE_TLS
                sock = self.sock = wrap_tls(sock, target, self.tls_session)
        except Exception as exc:
            self._fail(f.CONNECT, t0, exc)
        self.report(f.CONNECT, (perf_counter() - t0) * 1000.0, length, None)
        return length

    def login(self, command: bytes) -> None:
        """LOGIN with a line from :func:`login_command`."""
        self._timed(f.LOGIN, f.PHASE_LOGIN, command, _LOGIN_TAG)

    def list(self) -> None:
        self._timed(f.LIST, f.PHASE_COMMAND, LIST_COMMAND, _LIST_TAG)

    def logout(self) -> None:
        self._timed(f.LOGOUT, f.PHASE_COMMAND, LOGOUT_COMMAND, _LOGOUT_TAG)
        self.abort()

    def exchange(self, step: str, command: bytes, tag: bytes,
                 check: Callable[[bytes], None] | None = None) -> bytes:
        """One command (``tag`` + text + CRLF) as a timed step; returns its whole response,
        literals included. A tagged NO or BAD is a ``protocol error``, and so is a response
        that ``check`` (called inside the step) refuses with ProtocolError."""
        t0 = perf_counter()
        self.phase = f.PHASE_COMMAND
        try:
            self._send(command)
            data = self._response(tag)
            if check is not None:
                check(data)
        except Exception as exc:
            self._fail(step, t0, exc)
        self.report(step, (perf_counter() - t0) * 1000.0, len(data), None)
        return data

    def append(self, mailbox: bytes, message: bytes, *, cut: bool = False) -> tuple[int, int] | None:
        """APPEND ``message`` to ``mailbox`` (already quoted) as the timed step APPEND; returns
        (UIDVALIDITY, UID) from the server's APPENDUID. With ``cut`` the connection is reset
        (RST) right after the literal, before the tagged reply: nothing is reported, None is
        returned and the outcome is unknown. A literal goes non-synchronizing (LITERAL+) when
        the greeting announced it."""
        t0 = perf_counter()
        self.phase = f.PHASE_COMMAND
        head = _APPEND_TAG + b"APPEND " + mailbox + b" {%d" % len(message)
        try:
            if self.literal_plus:
                self._send(head + b"+}\r\n" + message + _CRLF)
            else:
                self._send(head + b"}\r\n")
                if not self._read_line(self.sock).startswith(b"+"):
                    raise f.ProtocolError("no continuation for the literal")
                self._send(message + _CRLF)
            if cut:
                sock, self.sock = self.sock, None
                drop(sock, "reset")
                return None
            data = self._response(_APPEND_TAG)
            uids = appenduid(tagged_line(data, len(data)))
        except Exception as exc:
            self._fail(f.APPEND, t0, exc)
        self.report(f.APPEND, (perf_counter() - t0) * 1000.0, len(data), None)
        return uids

    def disconnect(self, mode: str) -> None:
        if self.sock is None:
            return
        if mode == DISCONNECT_LOGOUT:
            self.logout()
        else:
            sock, self.sock = self.sock, None
            self.keep_tls_session(sock)
            drop(sock, mode)

    def abort(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            self.keep_tls_session(sock)
            drop(sock, "close")

    # -- internals ---------------------------------------------------------------------------

    def _timed(self, step: str, phase: str, command: bytes, tag: bytes) -> None:
        """One command as a timed step."""
        t0 = perf_counter()
        self.phase = phase
        try:
            length = self._command(command, tag)
        except Exception as exc:
            self._fail(step, t0, exc)
        self.report(step, (perf_counter() - t0) * 1000.0, length, None)

    def _send(self, data: bytes) -> None:
        sock: Any = self.sock  # connected here; gevent's socket (_wait, _read_event) under Locust
        sent = sock.send(data)
        if sent < len(data):
            sock.sendall(data[sent:])

    def _response(self, tag: bytes) -> bytes:
        """Read up to the tagged line of ``tag``, literals included; OK or ProtocolError."""
        sock: Any = self.sock  # connected here; gevent's socket (_wait, _read_event) under Locust
        if self._wait_first:
            sock._wait(sock._read_event)
        data = sock.recv(_RECV)
        resume = 0
        while True:
            if not data:
                raise EOFError
            end, resume = scan_response(data, tag, resume)
            if end is not None:
                break
            more = sock.recv(_RECV)
            if not more:
                raise EOFError
            data += more
        status = tagged_status(tagged_line(data, end), tag)
        if status != b"OK":
            raise f.ProtocolError("tagged " + status.decode("ascii"))
        return data[:end]

    def _read_line(self, sock: Any) -> bytes:
        if self._wait_first:
            sock._wait(sock._read_event)
        data = sock.recv(_RECV)
        while not data.endswith(_CRLF):
            more = sock.recv(_RECV)
            if not more:
                raise EOFError
            data += more
        return data

    def _command(self, command: bytes, tag: bytes) -> int:
        """Send one command and read up to its tagged response; returns bytes read."""
        sock: Any = self.sock  # connected here; gevent's socket (_wait, _read_event) under Locust
        # A command is far smaller than the socket buffer: one send() nearly always takes all
        # of it, without sendall()'s Python loop (and its timeout) around it.
        sent = sock.send(command)
        if sent < len(command):
            sock.sendall(command[sent:])
        if self._quickack:
            set_quickack(sock)
        if self._wait_first:
            sock._wait(sock._read_event)
        data = sock.recv(_RECV)
        while True:
            if not data:
                raise EOFError
            if data.endswith(_CRLF):
                # The tagged line is the last line of a complete response.
                start = data.rfind(b"\n", 0, len(data) - 1) + 1
                if data.startswith(tag, start):
                    status = data[start + len(tag) : start + len(tag) + 3]
                    if status == b"OK ":
                        return len(data)
                    if tag == _LOGIN_TAG and status in (b"NO ", b"BAD"):
                        raise f.AuthRejected()
                    raise f.ProtocolError("tagged " + status.decode("ascii", "replace"))
            more = sock.recv(_RECV)
            if not more:
                raise EOFError
            data += more

