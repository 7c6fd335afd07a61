"""Responsiveness probes on plain sockets: a fresh connection per tick (connect, greeting, LOGIN)
and one held, logged-in session answering NOOP on the same schedule.

Works with gevent-patched sockets (greenlets) and with plain threads alike: every blocking step
has a socket timeout equal to what is left of the probe's deadline, so a hung server produces a
timeout at the deadline, never a late clock.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loadtest.core.credentials import Credential, read_users_file
from loadtest.core.imapwire import Wire, login_line, open_socket
from loadtest.imap.failures import (
    AUTH_REJECTED,
    CONNECTION_LOST,
    PHASE_CONNECT,
    PHASE_GREETING,
    PHASE_LOGIN,
    PROTOCOL_ERROR,
    RESPONSE_TIMEOUT,
    AuthRejected,
    ByeGreeting,
    ProtocolError,
    classify,
)

# The probe's steps and the phase each one is classified in (failures.classify).
PHASES = {"connect": PHASE_CONNECT, "greeting": PHASE_GREETING, "login": PHASE_LOGIN}


def read_users(path: str | Path, limit: int = 2) -> list[Credential]:
    """The first ``limit`` users of a deployment users file."""
    return read_users_file(path, "the deployment's users file")[:limit]


@dataclass(slots=True)
class ProbeOutcome:
    """Seconds for each step that finished; ``failure`` names the step's failure class."""

    connect: float | None = None
    greeting: float | None = None  # from the start of connect until the greeting arrived
    login: float | None = None
    failure: str | None = None
    failed_step: str | None = None
    timed_out: bool = False


def probe_once(host: str, port: int, creds: Credential | None, timeout: float) -> ProbeOutcome:
    """One fresh connection: connect, greeting, LOGIN (when there are credentials), LOGOUT."""
    out = ProbeOutcome()
    start = time.monotonic()
    deadline = start + timeout
    step = "connect"
    sock: socket.socket | None = None
    try:
        sock = open_socket(host, port, timeout, nodelay=True)
        out.connect = time.monotonic() - start
        step = "greeting"
        wire = Wire(sock, deadline)
        greeting = wire.line()
        if greeting.startswith(b"* BYE"):
            raise ByeGreeting
        if not greeting.startswith(b"* OK"):
            raise ProtocolError
        out.greeting = time.monotonic() - start
        if creds is None:
            return out
        step = "login"
        sent = time.monotonic()
        answer = wire.command(login_line(b"p1 ", creds.username, creds.password), b"p1 ")
        if not answer.startswith(b"p1 OK"):
            raise AuthRejected
        out.login = time.monotonic() - sent
        # LOGOUT politely but untimed, within what is left of the deadline.
        step = "logout"
        wire.deadline = min(deadline, time.monotonic() + 1.0)
        wire.command(b"p2 LOGOUT\r\n", b"p2 ")
    except Exception as exc:
        if step != "logout":  # measured already: how the goodbye went does not matter
            failure = classify(exc, PHASES[step])
            if failure is None:
                raise  # not an I/O failure: a bug here
            out.failure, out.failed_step = failure, step
            out.timed_out = isinstance(exc, TimeoutError)
    finally:
        if sock is not None:
            sock.close()
    return out


NoopCallback = Callable[[float, float | None, str | None], None]  # (scheduled t, seconds, why)


class HeldSession:
    """One logged-in session; ``noop(t)`` sends a NOOP now (pipelined if earlier ones are still
    out: open loop), the reader reports each answer's latency through ``on_result``.

    A NOOP unanswered after ``timeout`` is reported as a timeout and the session is dropped and
    re-established on a later tick (in the background, so the clock does not wait for it).
    """

    def __init__(self, host: str, port: int, creds: Credential, timeout: float,
                 spawn: Callable[..., None], on_result: NoopCallback) -> None:
        self.host, self.port, self.creds, self.timeout = host, port, creds, timeout
        self.spawn = spawn
        self.on_result = on_result
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._connecting = False
        self._closed = False
        self._tags = itertools.count(1)
        self._outstanding: dict[str, tuple[float, float]] = {}  # tag -> (scheduled t, sent mono)
        self.last_error: str | None = None

    def noop(self, t: float) -> None:
        self._expire()
        with self._lock:
            sock = self._sock
            if sock is None:
                if not self._connecting and not self._closed:
                    self._connecting = True
                    self.spawn(self._connect)
                if self.last_error is None:
                    return  # the first login is still under way: nothing measured, no failure
                why = self.last_error
            else:
                tag = f"h{next(self._tags)}"
                self._outstanding[tag] = (t, time.monotonic())
                why = None
        if why is not None or sock is None:
            self.on_result(t, None, why)
            return
        try:
            sock.sendall(f"{tag} NOOP\r\n".encode())
        except OSError:
            self._drop(CONNECTION_LOST)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._drop(None)

    def _expire(self) -> None:
        now = time.monotonic()
        with self._lock:
            late = [tag for tag, (_t, sent) in self._outstanding.items()
                    if now - sent > self.timeout]
        if late:
            self._drop(RESPONSE_TIMEOUT)

    def _drop(self, why: str | None) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
            outstanding, self._outstanding = self._outstanding, {}
            if why:
                self.last_error = f"held session: {why}"
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the reader blocked in recv; close does not
            with contextlib.suppress(OSError):
                sock.close()
        if why:
            for t, sent in outstanding.values():
                elapsed = time.monotonic() - sent
                self.on_result(t, elapsed if why == RESPONSE_TIMEOUT else None, why)

    def _connect(self) -> None:
        sock: socket.socket | None = None
        try:
            sock = open_socket(self.host, self.port, self.timeout, nodelay=True)
            wire = Wire(sock, time.monotonic() + self.timeout)
            if not wire.line().startswith(b"* OK"):
                raise ConnectionError("no OK greeting")
            login = login_line(b"l1 ", self.creds.username, self.creds.password)
            if not wire.command(login, b"l1 ").startswith(b"l1 OK"):
                raise AuthRejected
        except (AuthRejected, OSError) as exc:  # TimeoutError and ConnectionError are OSErrors
            if sock is not None:
                sock.close()
            why = AUTH_REJECTED if isinstance(exc, AuthRejected) else \
                f"cannot connect ({exc.__class__.__name__})"
            with self._lock:
                self._connecting = False
                self.last_error = f"held session: {why}"
            return
        sock.settimeout(None)
        wire.deadline = None
        with self._lock:
            self._connecting = False
            if self._closed:
                sock.close()
                return
            self._sock = sock
            self.last_error = None
        self._read_loop(wire)

    def _read_loop(self, wire: Wire) -> None:
        """The answers to the pipelined NOOPs, until the connection ends."""
        while True:
            try:
                line = wire.line()
            except OSError:  # closed by the server, or by _drop's shutdown()
                with self._lock:
                    mine = self._sock is wire.sock
                if mine:
                    self._drop(CONNECTION_LOST)
                return
            tag = line.split(b" ", 1)[0].decode(errors="replace")
            with self._lock:
                entry = self._outstanding.pop(tag, None)
            if entry is not None:
                t, sent = entry
                if line.split(b" ", 2)[1:2] == [b"OK"]:
                    self.on_result(t, time.monotonic() - sent, None)
                else:
                    self.on_result(t, None, PROTOCOL_ERROR)
