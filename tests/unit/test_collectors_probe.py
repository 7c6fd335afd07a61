"""The probe's client side against scripted one-connection servers (not Cyrus): each way a
probe can end names its step and failure class; the held session tells a refused LOGIN from a
connection it could not make."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from loadtest.collectors.probe import HeldSession, probe_once
from loadtest.core.credentials import Credential

CREDS = Credential("user1", 'pa"ss\\word')


@contextmanager
def server(greeting: bytes | None,
           login_reply: bytes = b"p1 OK done\r\n") -> Iterator[tuple[int, list[bytes]]]:
    """Accepts one connection, sends ``greeting`` (None: nothing, a hung server), answers the
    LOGIN with ``login_reply`` and LOGOUT with OK. Records the LOGIN line it got."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(5)
            if greeting is None:
                conn.recv(1)  # until the client gives up
                return
            conn.sendall(greeting)
            buf = b""
            try:
                while b"LOGOUT" not in buf:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    buf += chunk
                    if b"LOGIN" in buf and not got:
                        got.append(buf.split(b"\r\n")[0])
                        conn.sendall(login_reply)
                conn.sendall(b"p2 OK bye\r\n")
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], got
    finally:
        listener.close()
        thread.join(6)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_whole_probe_measures_each_step_and_quotes_the_login() -> None:
    with server(b"* OK ready\r\n") as (port, got):
        out = probe_once("127.0.0.1", port, CREDS, 5.0)
    assert out.failure is None and out.failed_step is None and not out.timed_out
    assert out.connect is not None and out.greeting is not None and out.login is not None
    assert got == [b'p1 LOGIN "user1" "pa\\"ss\\\\word"']


@pytest.mark.parametrize(("greeting", "login_reply", "step", "failure"), [
    (b"* BYE too many\r\n", b"", "greeting", "BYE greeting"),
    (b"hello\r\n", b"", "greeting", "protocol error"),
    (b"* OK ready\r\n", b"p1 NO wrong\r\n", "login", "auth rejected"),
    (b"* OK ready\r\n", b"", "login", "response timeout"),
])
def test_failures_name_their_step_and_class(greeting: bytes, login_reply: bytes, step: str,
                                            failure: str) -> None:
    with server(greeting, login_reply) as (port, _got):
        out = probe_once("127.0.0.1", port, CREDS, 0.5)
    assert (out.failed_step, out.failure) == (step, failure)
    assert out.timed_out == failure.endswith("timeout")
    assert out.greeting is None if step == "greeting" else out.greeting is not None
    assert out.login is None


def test_refused_and_silent_servers() -> None:
    out = probe_once("127.0.0.1", closed_port(), CREDS, 1.0)
    assert (out.failed_step, out.failure, out.timed_out) == ("connect", "refused", False)
    with server(None) as (port, _got):
        out = probe_once("127.0.0.1", port, CREDS, 0.3)
    assert (out.failed_step, out.failure, out.timed_out) == ("greeting", "greeting timeout", True)
    assert out.connect is not None


def held_error(port: int) -> str | None:
    """What a held session that cannot log in says (its login, run here, not in the background)."""
    session = HeldSession("127.0.0.1", port, CREDS, 0.5, lambda *_a: None, lambda *_a: None)
    session._connect()
    return session.last_error


def test_held_session_tells_a_refused_login_from_no_connection() -> None:
    with server(b"* OK ready\r\n", b"l1 NO wrong\r\n") as (port, _got):
        assert held_error(port) == "held session: auth rejected"
    assert held_error(closed_port()) == "held session: cannot connect (ConnectionRefusedError)"
    with server(b"* BYE busy\r\n") as (port, _got):
        assert held_error(port) == "held session: cannot connect (ConnectionError)"
