"""Both session paths (imapclient and lean) against the fake server: steps, failure classes,
disconnect modes as the server sees them, TLS. Client-side behaviour only; Cyrus is tested in
tests/integration."""

from __future__ import annotations

import hashlib
import imaplib
import inspect
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest.core.credentials import Credential
from loadtest.deploy.instance import free_port
from loadtest.imap import failures as f
from loadtest.imap.lean import LeanSession
from loadtest.imap.response import fetch_messages
from loadtest.imap.session import IMAPLIB_CONNECT_SHA256
from loadtest.imap.testing import (
    BAD,
    BYE,
    DROP,
    GARBAGE,
    NO,
    SESSION_PATHS,
    STALL,
    FakeImapServer,
    logged_in_session,
    login,
    new_session,
)
from loadtest.imap.transport import TLS_IMPLICIT, TLS_STARTTLS, Target, make_ssl_context

CRED = Credential("user1", 'pa"ss\\word')
KINDS = list(SESSION_PATHS)


class Recorder:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, int, str | None]] = []

    def __call__(self, step, ms, length, failure) -> None:
        self.rows.append((step, ms, length, failure.failure_class if failure else None))

    @property
    def steps(self) -> list[tuple[str, str | None]]:
        return [(step, cls) for step, _, _, cls in self.rows]


@pytest.mark.parametrize("kind", KINDS)
def test_churn_session_reports_each_step_once(kind: str) -> None:
    rec = Recorder()
    with FakeImapServer() as server:
        session = logged_in_session(kind, Target("127.0.0.1", server.port), rec, CRED)
        session.list()
        session.logout()
        (conn,) = server.wait_connections(1)
    assert rec.steps == [("CONNECT", None), ("LOGIN", None), ("LIST", None), ("LOGOUT", None)]
    assert all(ms > 0 for _, ms, _, _ in rec.rows)
    assert conn.commands[-3:] == ["LOGIN", "LIST", "LOGOUT"]
    assert conn.end == "logout"
    assert not session.connected


def test_imapclient_session_other_steps() -> None:
    rec = Recorder()
    with FakeImapServer() as server:
        session = new_session("imapclient", Target("127.0.0.1", server.port), rec)
        session.connect()
        session.login(CRED)
        session.select()
        session.status()
        assert set(session.fetch(count=5)) == {1, 2}
        session.noop()
        session.idle(0.2)
        session.disconnect("logout")
        (conn,) = server.wait_connections(1)
    assert [s for s, _ in rec.steps] == [
        "CONNECT", "LOGIN", "SELECT", "STATUS", "FETCH", "NOOP", "IDLE", "LOGOUT"
    ]
    idle_ms = rec.rows[6][1]
    assert idle_ms < 200  # the deliberate 0.2 s wait is not part of the IDLE time
    assert "IDLE" in conn.commands and conn.end == "logout"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode, server_sees", [("logout", "logout"), ("close", "fin"), ("reset", "rst")])
def test_disconnect_modes_as_seen_by_the_server(kind: str, mode: str, server_sees: str) -> None:
    rec = Recorder()
    with FakeImapServer() as server:
        session = logged_in_session(kind, Target("127.0.0.1", server.port), rec, CRED)
        session.disconnect(mode)
        (conn,) = server.wait_connections(1)
    assert conn.end == server_sees
    assert ("LOGOUT", None) in rec.steps if mode == "logout" else "LOGOUT" not in [s for s, _ in rec.steps]


@pytest.mark.parametrize("literal_plus", [False, True])
def test_lean_append_sends_its_literal_as_the_greeting_allows(literal_plus: bool) -> None:
    # {n} waits for the server's "+" (the fake sends none for {n+}: a wrong guess would hang)
    rec = Recorder()
    message = b"Subject: t\r\n\r\na OK looks tagged\r\n"
    with FakeImapServer(literal_plus=literal_plus) as server:
        session = logged_in_session("lean", Target("127.0.0.1", server.port), rec, CRED, timeout=1)
        assert isinstance(session, LeanSession) and session.literal_plus is literal_plus
        assert session.append(b'"INBOX"', message) == (1, 1)
        assert session.append(b'"INBOX"', b"") == (1, 2)
        session.logout()
        (conn,) = server.wait_connections(1)
    assert conn.literals == [message, b""]
    assert conn.commands[-3:] == ["APPEND", "APPEND", "LOGOUT"]
    assert rec.steps[-3:] == [("APPEND", None), ("APPEND", None), ("LOGOUT", None)]


def test_lean_exchange_reads_a_response_with_a_literal() -> None:
    rec = Recorder()
    body = b"Subject: t\r\n\r\nx OK looks tagged\r\n"
    fetch = b"* 1 FETCH (UID 7 BODY[] {%d}\r\n" % len(body) + body + b")\r\n"
    with FakeImapServer(untagged={"FETCH": fetch}) as server:
        session = logged_in_session("lean", Target("127.0.0.1", server.port), rec, CRED)
        assert isinstance(session, LeanSession)
        data = session.exchange(f.FETCH, b"x UID FETCH 7 (BODY.PEEK[])\r\n", b"x ")
        session.logout()
    assert data == fetch + b"x OK Completed\r\n"
    assert [(m.uid, m.body) for m in fetch_messages(data)] == [(7, body)]
    assert rec.rows[2][0] == f.FETCH and rec.rows[2][2] == len(data)


def _fail(kind: str, rec: Recorder, target: Target, steps: str, timeout: float = 2.0) -> str:
    session = new_session(kind, target, rec, timeout, timeout)
    with pytest.raises(f.StepFailure) as info:
        for step in steps.split():
            if step == "LOGIN":
                login(session, CRED)
            else:
                getattr(session, step.lower())()
    assert not session.connected  # torn down after the failure
    failed = [row for row in rec.rows if row[3] is not None]
    assert len(failed) == 1, rec.rows  # the failure counts once
    assert failed[0][0] == info.value.step == steps.split()[-1]
    assert str(info.value) == failed[0][3]
    return failed[0][3]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "behaviour, steps, expected",
    [
        ({"greeting": BYE}, "CONNECT", f.BYE_GREETING),
        ({"greeting": GARBAGE}, "CONNECT", f.PROTOCOL_ERROR),
        ({"greeting": STALL}, "CONNECT", f.GREETING_TIMEOUT),
        ({"login": NO}, "CONNECT LOGIN", f.AUTH_REJECTED),
        ({"login": BAD}, "CONNECT LOGIN", f.AUTH_REJECTED),
        ({"login": DROP}, "CONNECT LOGIN", f.CONNECTION_LOST),
        ({"login": STALL}, "CONNECT LOGIN", f.RESPONSE_TIMEOUT),
        ({"list": BAD}, "CONNECT LOGIN LIST", f.PROTOCOL_ERROR),
        ({"list": NO}, "CONNECT LOGIN LIST", f.PROTOCOL_ERROR),
        ({"list": DROP}, "CONNECT LOGIN LIST", f.CONNECTION_LOST),
        ({"list": STALL}, "CONNECT LOGIN LIST", f.RESPONSE_TIMEOUT),
        ({"logout": DROP}, "CONNECT LOGIN LOGOUT", f.CONNECTION_LOST),
    ],
)
def test_failure_classes(kind: str, behaviour: dict, steps: str, expected: str) -> None:
    rec = Recorder()
    with FakeImapServer(stall_seconds=2, **behaviour) as server:
        got = _fail(kind, rec, Target("127.0.0.1", server.port), steps, timeout=0.3)
    assert got == expected


@pytest.mark.parametrize("kind", KINDS)
def test_refused(kind: str) -> None:
    got = _fail(kind, Recorder(), Target("127.0.0.1", free_port()), "CONNECT")
    assert got == f.REFUSED


@pytest.mark.parametrize("kind", KINDS)
def test_connect_timeout_when_the_accept_queue_is_full(kind: str) -> None:
    with FakeImapServer(accept=False) as server:
        server.fill_backlog(4)
        got = _fail(kind, Recorder(), Target("127.0.0.1", server.port), "CONNECT", timeout=0.3)
    assert got == f.CONNECT_TIMEOUT


@pytest.mark.parametrize("kind", KINDS)
def test_tls_to_a_plain_server_is_a_tls_failure(kind: str) -> None:
    target = Target("127.0.0.1", 1, tls=TLS_IMPLICIT, ssl_context=make_ssl_context(None))
    with FakeImapServer() as server:
        target = Target("127.0.0.1", server.port, tls=TLS_IMPLICIT, ssl_context=target.ssl_context)
        assert _fail(kind, Recorder(), target, "CONNECT") == f.TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    yield cert, key


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", [TLS_IMPLICIT, TLS_STARTTLS])
def test_tls_with_ca_file(kind: str, mode: str, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    rec = Recorder()
    with FakeImapServer(tls=mode, certfile=str(cert), keyfile=str(key)) as server:
        target = Target("127.0.0.1", server.port, tls=mode, ssl_context=make_ssl_context(str(cert)))
        session = logged_in_session(kind, target, rec, CRED)
        session.list()
        session.disconnect("logout")
        (conn,) = server.wait_connections(1)
    assert rec.steps == [("CONNECT", None), ("LOGIN", None), ("LIST", None), ("LOGOUT", None)]
    assert conn.end == "logout"
    if mode == TLS_STARTTLS:
        assert conn.commands.index("STARTTLS") < conn.commands.index("LOGIN")


@pytest.mark.parametrize("kind", KINDS)
def test_tls_unknown_ca_is_a_tls_failure(kind: str, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    with FakeImapServer(tls=TLS_IMPLICIT, certfile=str(cert), keyfile=str(key)) as server:
        # System CAs only: the self-signed certificate does not verify.
        target = Target("127.0.0.1", server.port, tls=TLS_IMPLICIT, ssl_context=make_ssl_context(None))
        assert _fail(kind, Recorder(), target, "CONNECT") == f.TLS


def test_the_imapclient_path_mirrors_this_pythons_imaplib_connect() -> None:
    # _PhasedIMAP4._connect is imaplib's _connect with a fixed tag prefix and the greeting's
    # capabilities: when imaplib's changes (a newer Python), the mirror must be checked again.
    source = inspect.getsource(imaplib.IMAP4._connect)
    assert hashlib.sha256(source.encode()).hexdigest() == IMAPLIB_CONNECT_SHA256, (
        f"imaplib's IMAP4._connect differs in Python {sys.version.split()[0]}: compare it with "
        f"_PhasedIMAP4._connect in loadtest/imap/session.py, then update IMAPLIB_CONNECT_SHA256")
