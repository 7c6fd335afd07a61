"""The benchmark's IMAP responder (its own process) with both session paths, and one short
generator measurement through Locust against it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from loadtest.bench import responder
from loadtest.bench.cli import stop_process
from loadtest.core.credentials import Credential
from loadtest.imap.session import ImapSession
from loadtest.imap.testing import SESSION_PATHS, FakeImapServer, logged_in_session
from loadtest.imap.transport import Target


def test_answers() -> None:
    assert responder.answer(b"a1 LOGIN u p") == (b"a1 OK Completed\r\n", False)
    assert responder.answer(b's LIST "" "*"')[0].startswith(b"* LIST ")
    assert responder.answer(b"o LOGOUT") == (b"* BYE bye\r\no OK Completed\r\n", True)
    assert responder.answer(b"x UID FETCH 1 (FLAGS)") == (b"x OK Completed\r\n", False)
    assert responder.answer(b"i IDLE") == (b"+ idling\r\n", False)


@pytest.fixture
def responder_port() -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-m", "loadtest.bench.responder", "--max-seconds", "60"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        yield int(proc.stdout.readline())
    finally:
        stop_process(proc)
    assert proc.returncode == 0


@pytest.mark.parametrize("kind", SESSION_PATHS)
def test_sessions_against_the_responder(responder_port: int, kind: str) -> None:
    rows = []
    target = Target("127.0.0.1", responder_port)
    report = lambda step, ms, length, failure: rows.append((step, failure))  # noqa: E731
    cred = Credential("user1", "x")
    for _ in range(3):
        session = logged_in_session(kind, target, report, cred)
        session.list()
        session.logout()
    assert rows == [(s, None) for s in ("CONNECT", "LOGIN", "LIST", "LOGOUT")] * 3


def test_imapclient_takes_capabilities_from_the_greeting() -> None:
    """No CAPABILITY round trip when the greeting lists them (one command less per session)."""
    with FakeImapServer() as server:
        session = ImapSession(Target("127.0.0.1", server.port), lambda *a: None, 2, 2)
        session.connect()
        assert b"IDLE" in session.client.capabilities()
        session.login(Credential("user1", "x"))
        session.list()
        session.logout()
        (conn,) = server.wait_connections(1)
    assert conn.commands == ["LOGIN", "LIST", "LOGOUT"]


def test_generator_measures_through_locust(responder_port: int) -> None:
    """A one-second window of lean churn under Locust (gevent): sessions counted by Locust's
    stats, CPU from getrusage; the gevent code path of the lean session runs here."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADTEST_")}
    env.update(LOADTEST_IMAP_HOST="127.0.0.1", LOADTEST_IMAP_PORT=str(responder_port),
               LOADTEST_IMAP_USER_PATTERN="user{n}", LOADTEST_IMAP_PASSWORD="bench",
               LOADTEST_IMAP_LEAN="1")
    spec = {"kind": "churn", "users": 2, "seconds": 1.0, "warmup": 0.3, "lean": True}
    out = subprocess.run([sys.executable, "-m", "loadtest.bench.generator", json.dumps(spec)],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    raw = json.loads(out.stdout.splitlines()[-1])
    assert raw["total_failures"] == 0
    assert raw["steps"]["LOGOUT"]["requests"] > 50
    assert abs(raw["steps"]["CONNECT"]["requests"] - raw["steps"]["LOGOUT"]["requests"]) <= 2
    assert 0 < raw["user_cpu_seconds"] + raw["system_cpu_seconds"] < 5
    assert 0.9 < raw["wall_seconds"] < 3
