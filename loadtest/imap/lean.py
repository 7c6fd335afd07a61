"""The lean path: a raw socket session for floods and cheap churn, without imapclient.

Same steps, step names, failure classes and ``Reporter`` as :mod:`loadtest.imap.session`, with as
little Python and as few system calls per step as we can: one ``send`` per command, one
``recv`` per response in the common case (on gevent, after waiting for readability rather than
after a failed recv), commands pre-encoded once per user, and the tagged
status found by looking only at the last line of what arrived. The bytes go through
:class:`loadtest.core.imapwire.Wire`, as the probe's and provisioning's do.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from time import perf_counter
from typing import Any

from loadtest.core.credentials import Credential
from loadtest.core.imapwire import Wire, login_line, tagged_line, tagged_status
from loadtest.imap import failures as f
from loadtest.imap.response import appenduid
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
    return login_line(_LOGIN_TAG, credential.username, credential.password)


def refusal(tag: bytes, status: bytes) -> Exception:
    """What a tagged status other than OK (the three bytes after ``tag``) means: a refused
    LOGIN, or a protocol error."""
    if tag == _LOGIN_TAG and status in (b"NO ", b"BAD"):
        return f.AuthRejected()
    return f.ProtocolError("tagged " + status.decode("ascii", "replace"))


class _GeventWire(Wire):
    """On a plain gevent socket: wait until it is readable before the first recv of a read.
    The reply is almost never there yet, and gevent's recv would first fail with EAGAIN (a
    system call and a Python exception) before waiting. Not with TLS: decrypted bytes can sit
    in the SSL object while the socket has nothing more to read."""

    __slots__ = ()

    def recv_first(self) -> bytes:
        sock = self.sock
        sock._wait(sock._read_event)
        return self.recv()


class LeanSession(TimedSession):
    """Connect, greet, LOGIN, LIST, LOGOUT or drop, on a plain (gevent) socket."""

    __slots__ = ("wire", "_wire_class", "literal_plus", "_quickack")

    def __init__(self, target: Target, *args: Any, **kwargs: Any) -> None:
        super().__init__(target, *args, **kwargs)
        self.wire: Wire | None = None
        self._wire_class = (_GeventWire if target.tls == TLS_NONE and hasattr(socket.socket, "_wait")
                            else Wire)
        self.literal_plus = False  # the greeting announced LITERAL+ (non-synchronizing literals)
        # Cyrus does not set TCP_NODELAY with TLS, and Linux leaves quick-ACK mode after a few
        # segments: re-arm it before each response, or a reply written in two pieces waits
        # ~40 ms for our delayed ACK (measured: LOGIN after STARTTLS, median 42 ms -> 1 ms).
        self._quickack = target.tls != TLS_NONE

    @property
    def connected(self) -> bool:
        return self.wire is not None

    def connect(self) -> int:
        """CONNECT: TCP connect (+ TLS) until the greeting (+ STARTTLS). Returns bytes read."""
        if self.wire is not None:
            self.abort()
        t0 = perf_counter()
        self.phase = f.PHASE_CONNECT
        target = self.target
        try:
            sock = connect_socket(target, self.connect_timeout)
            wire = self.wire = self._wire_class(sock)
            sock.settimeout(self.timeout)
            if target.tls == TLS_IMPLICIT:
                self.phase = f.PHASE_TLS
                wire.sock = wrap_tls(sock, target, self.tls_session)
            self.phase = f.PHASE_GREETING
            greeting = wire.line()
            if not greeting.startswith((b"* OK", b"* PREAUTH")):
                if greeting.startswith(b"* BYE"):
                    raise f.ByeGreeting()
                raise f.ProtocolError("unexpected greeting")
            length = len(greeting) + 2
            self.literal_plus = b"LITERAL+" in greeting
            if target.tls == TLS_STARTTLS:
                self.phase = f.PHASE_COMMAND
                length += self._command(STARTTLS_COMMAND, _STARTTLS_TAG)
                self.phase = f.PHASE_TLS
                wire.sock = wrap_tls(sock, target, self.tls_session)
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
            wire: Any = self.wire  # connected here (else a bug in a user: AttributeError)
            wire.send(command)
            data = self._response(wire, tag)
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
        try:
            wire: Any = self.wire  # connected here (else a bug in a user: AttributeError)
            if not wire.send_literal(_APPEND_TAG + b"APPEND " + mailbox + b" ", message,
                                     self.literal_plus):
                raise f.ProtocolError("no continuation for the literal")
            if cut:
                self.wire = None
                drop(wire.sock, "reset")
                return None
            data = self._response(wire, _APPEND_TAG)
            uids = appenduid(tagged_line(data, len(data)))
        except Exception as exc:
            self._fail(f.APPEND, t0, exc)
        self.report(f.APPEND, (perf_counter() - t0) * 1000.0, len(data), None)
        return uids

    def disconnect(self, mode: str) -> None:
        if self.wire is None:
            return
        if mode == DISCONNECT_LOGOUT:
            self.logout()
        else:
            wire, self.wire = self.wire, None
            self.keep_tls_session(wire.sock)
            drop(wire.sock, mode)

    def abort(self) -> None:
        wire, self.wire = self.wire, None
        if wire is not None:
            self.keep_tls_session(wire.sock)
            drop(wire.sock, "close")

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

    @staticmethod
    def _response(wire: Wire, tag: bytes) -> bytes:
        """Read up to the tagged line of ``tag``, literals included; OK or ProtocolError."""
        data = wire.response(tag)
        status = tagged_status(tagged_line(data, len(data)), tag)
        if status != b"OK":
            raise f.ProtocolError("tagged " + status.decode("ascii") if status
                                  else "malformed tagged response")
        return data

    def _command(self, command: bytes, tag: bytes) -> int:
        """Send one command and read up to its tagged response; returns bytes read."""
        wire: Any = self.wire  # connected here (else a bug in a user: AttributeError)
        wire.send(command)
        if self._quickack:
            set_quickack(wire.sock)
        status, length = wire.completion(tag)
        if status != b"OK ":
            raise refusal(tag, status)
        return length
