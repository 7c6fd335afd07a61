"""Timed IMAP session on imapclient: one report per step, failures classified.

No Locust here: every step goes to a ``Reporter`` callback (the Locust users adapt it to
``environment.events.request.fire``; tests and benchmarks collect it in a list). A failed step
is reported once, the connection is torn down, and :class:`StepFailure` is raised so the caller
ends its iteration.

CONNECT covers everything before the session can take LOGIN: TCP connect, the implicit-TLS
handshake, the greeting and, with STARTTLS, the STARTTLS exchange and handshake.
"""

from __future__ import annotations

import contextlib
import imaplib
import random
import re
import socket
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from imapclient import IMAPClient
from imapclient.util import to_unicode

from loadtest.core.credentials import Credential
from loadtest.imap import failures as f
from loadtest.imap.timed import TimedSession
from loadtest.imap.transport import (
    DISCONNECT_LOGOUT,
    TLS_IMPLICIT,
    TLS_NONE,
    TLS_STARTTLS,
    connect_socket,
    drop,
    set_quickack,
    wrap_tls,
)

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

# The SHA-256 of imaplib's IMAP4._connect source that _PhasedIMAP4._connect mirrors (the same
# in Python 3.11, 3.12 and 3.13): a unit test fails on a Python whose imaplib differs, so the
# mirror is reviewed rather than silently out of date. Neither imaplib nor imapclient has a
# public hook for the tag prefix or for taking the capabilities from the greeting.
IMAPLIB_CONNECT_SHA256 = "c24d1f628874edb4c68e58068e32073c296dee564d0c5f56d79e03ae1f55ee95"
_TAG_PREFIX = imaplib.Int2AP(random.randint(4096, 65535))
_TAG_RE = re.compile(rb"(?P<tag>" + _TAG_PREFIX + rb"\d+) (?P<type>[A-Z]+) (?P<data>.*)", re.ASCII)


class _PhasedIMAP4(imaplib.IMAP4):
    """imaplib with our own socket set-up, so the session knows which phase an error hit."""

    def __init__(self, session: ImapSession) -> None:
        self._session = session
        target = session.target
        super().__init__(target.host, target.port, timeout=session.connect_timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        session = self._session
        target = session.target
        session.phase = f.PHASE_CONNECT
        sock = connect_socket(target, session.connect_timeout)
        sock.settimeout(session.timeout)
        if target.tls == TLS_IMPLICIT:
            session.phase = f.PHASE_TLS
            sock = wrap_tls(sock, target, session.tls_session)
        session.phase = f.PHASE_GREETING
        return sock

    def send(self, data: ReadableBuffer) -> None:
        self.sock.sendall(data)
        if self._session.target.tls != TLS_NONE:
            # Cyrus does not set TCP_NODELAY with TLS and Linux leaves quick-ACK mode after a
            # few segments: re-arm it before each response, or a reply written in two pieces
            # waits ~40 ms for our delayed ACK (the CAPABILITY after STARTTLS did).
            set_quickack(self.sock)

    def _connect(self) -> None:
        # imaplib's own _connect picks a random tag prefix per connection and compiles a regex
        # for it: a cache miss of `re` nearly every session (measured: an eighth of the path's
        # CPU). Tags need only be unique within a connection: one prefix per process will do.
        # Otherwise as imaplib does it (IMAPLIB_CONNECT_SHA256): welcome, state, capabilities,
        # protocol version.
        # imaplib's private state, typed by typeshed as it does not use it (str tags): the
        # ignores below are where this class mirrors imaplib 3.11's internals.
        self.tagpre = _TAG_PREFIX  # type: ignore[assignment]
        self.tagre = _TAG_RE  # type: ignore[assignment]
        # imaplib keeps the last _cmd_log_len lines of every session for print_log(), which
        # nothing here calls: 10 lines with their times are about 1 KB of each held session.
        self._cmd_log_len = 1
        self._cmd_log_idx = 0
        self._cmd_log: dict[int, tuple[bytes, float]] = {}
        self.welcome = self._get_response()
        if "PREAUTH" in self.untagged_responses:
            self.state = "AUTH"
        elif "OK" in self.untagged_responses:
            self.state = "NONAUTH"
        else:
            raise self.error(self.welcome)
        self._get_capabilities()
        for version in imaplib.AllowedVersions:  # type: ignore[attr-defined]
            if version in self.capabilities:
                self.PROTOCOL_VERSION = version
                return
        raise self.error("server not IMAP4 compliant")

    def _get_capabilities(self) -> None:
        # Servers (Cyrus too) list their capabilities in the greeting's response code; imaplib
        # would still ask with a CAPABILITY round trip, one more command per session. Popped as
        # capability() would: after STARTTLS imaplib asks again, for the new list.
        codes = self.untagged_responses.pop("CAPABILITY", None)
        if codes and codes[-1]:
            self.capabilities = tuple(str(codes[-1], self._encoding).upper().split())  # type: ignore[arg-type]
        else:
            super()._get_capabilities()  # type: ignore[misc]


class _StartTLS:
    """What imaplib's starttls() takes as its SSL context: wraps through :func:`wrap_tls`, so
    STARTTLS gets the same session resumption and TCP_QUICKACK as implicit TLS."""

    def __init__(self, session: ImapSession) -> None:
        self._session = session

    def wrap_socket(self, sock: socket.socket, server_hostname: str) -> socket.socket:
        return wrap_tls(sock, self._session.target, self._session.tls_session)


class _PhasedIMAPClient(IMAPClient):
    def __init__(self, session: ImapSession) -> None:
        self._session = session
        super().__init__(
            session.target.host, session.target.port, ssl=False, timeout=session.timeout
        )
        # imapclient sets imaplib's debug level to 5: every line would be formatted for logging.
        self._imap.debug = 0

    def _create_IMAP4(self) -> imaplib.IMAP4:
        return _PhasedIMAP4(self._session)


class ImapSession(TimedSession):
    """One IMAP connection driven step by step. Not thread-safe; one per simulated user."""

    client: IMAPClient | None = None

    @property
    def connected(self) -> bool:
        return self.client is not None

    # -- steps -------------------------------------------------------------------------------

    def connect(self) -> None:
        self._step(f.CONNECT, f.PHASE_CONNECT, self._connect)

    def login(self, credential: Credential) -> None:
        self._step(f.LOGIN, f.PHASE_LOGIN, self._login, credential)

    def list(self, pattern: str = "*") -> list[Any]:
        return self._step(f.LIST, f.PHASE_COMMAND, self._client().list_folders, "", pattern)

    def select(self, folder: str = "INBOX") -> dict[bytes, Any]:
        return self._step(f.SELECT, f.PHASE_COMMAND, self._client().select_folder, folder, True)

    def status(self, folder: str = "INBOX") -> dict[bytes, Any]:
        return self._step(f.STATUS, f.PHASE_COMMAND, self._client().folder_status, folder)

    def fetch(self, count: int = 10, items: tuple[str, ...] = ("FLAGS", "RFC822.SIZE")) -> dict:
        """UID FETCH of UIDs 1..count (imapclient 4.1 cannot take a ``1:*`` range)."""
        uids = list(range(1, count + 1))
        return self._step(f.FETCH, f.PHASE_COMMAND, self._client().fetch, uids, list(items))

    def noop(self) -> None:
        self._step(f.NOOP, f.PHASE_COMMAND, self._client().noop)

    def idle(self, seconds: float) -> None:
        """IDLE for ``seconds``. The reported time excludes the deliberate wait: it is the time
        to the server's continuation plus the time from DONE to the tagged OK."""
        t0 = perf_counter()
        waited = 0.0
        try:
            self.phase = f.PHASE_COMMAND
            client = self._client()
            client.idle()
            w0 = perf_counter()
            client.idle_check(timeout=seconds)
            waited = perf_counter() - w0
            client.idle_done()
        except Exception as exc:
            self._fail(f.IDLE, t0 + waited, exc)
        self.report(f.IDLE, (perf_counter() - t0 - waited) * 1000.0, 0, None)

    def logout(self) -> None:
        self._step(f.LOGOUT, f.PHASE_COMMAND, self._logout)

    def disconnect(self, mode: str) -> None:
        """End the session: ``logout`` (a timed LOGOUT step), ``close`` (FIN) or ``reset`` (RST)."""
        if self.client is None:
            return
        if mode == DISCONNECT_LOGOUT:
            self.logout()
        else:
            self._drop(mode)

    def abort(self) -> None:
        """Tear the connection down without reporting anything (after a failure, at stop)."""
        self._drop("close")

    # -- internals ---------------------------------------------------------------------------

    def _client(self) -> IMAPClient:
        if self.client is None:
            raise f.StepFailure(f.CONNECTION_LOST, "")  # reached only after a bug in a user
        return self.client

    def _step(self, step: str, phase: str, fn: Callable[..., Any], *args: Any) -> Any:
        t0 = perf_counter()
        self.phase = phase
        try:
            result = fn(*args)
        except Exception as exc:
            self._fail(step, t0, exc)
        self.report(step, (perf_counter() - t0) * 1000.0, 0, None)
        return result

    def _connect(self) -> None:
        if self.client is not None:
            self.abort()
        client = _PhasedIMAPClient(self)
        self.client = client
        if self.target.tls == TLS_STARTTLS:
            self.phase = f.PHASE_TLS
            client.starttls(_StartTLS(self))

    def _login(self, credential: Credential) -> None:
        client = self._client()
        # A LoginError wrapping an abort (connection dropped) is classified from its context
        # as connection lost; only a completed NO/BAD is "auth rejected".
        client.login(credential.username, credential.password)

    def _logout(self) -> None:
        imap = self._client()._imap
        # imaplib's logout() swallows socket errors, and its LOGOUT returns at the untagged BYE,
        # leaving the tagged OK unread (closing with unread data sends RST, not FIN): read up
        # to the tagged response ourselves.
        tag = imap._command("LOGOUT")
        while imap.tagged_commands.get(tag) is None:
            imap._get_response()
        typ, _data = imap.tagged_commands.pop(tag)
        if typ != "OK":
            raise f.ProtocolError(to_unicode(typ))
        self._drop("close")

    def _drop(self, mode: str) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        imap = client._imap
        with contextlib.suppress(Exception):
            imap.file.close()  # the makefile reference would defer close() (and the FIN/RST)
        self.keep_tls_session(imap.sock)
        drop(imap.sock, mode)  # anything but "reset" closes
