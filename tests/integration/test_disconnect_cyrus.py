"""Disconnect modes as the real Cyrus sees them: imapd logs "Connection reset by peer" for an RST,
nothing of the kind for a FIN, and a LOGOUT for a graceful end. Checked in the instance's own
captured syslog, for both session paths (imapclient and lean)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from loadtest.deploy.deployment import Deployment
from loadtest.imap.credentials import read_users_file
from loadtest.imap.lean import LeanSession, login_command
from loadtest.imap.session import ImapSession
from loadtest.imap.transport import DISCONNECT_CLOSE, DISCONNECT_LOGOUT, DISCONNECT_RESET, Target

pytestmark = pytest.mark.cyrus
RESET_LINE = "Connection reset by peer"
CYCLES = 5


def new_log_lines(path: str, offset: int, expect_more: bool) -> str:
    """What imapd logged since ``offset``; waits a moment for the receiver to write it."""
    deadline = time.monotonic() + 3.0
    text = ""
    while time.monotonic() < deadline:
        text = Path(path).read_text(errors="replace")[offset:]
        if expect_more and text.count(RESET_LINE) >= CYCLES:
            break
        time.sleep(0.1)
    return text


@pytest.mark.parametrize("path", ["imapclient", "lean"])
@pytest.mark.parametrize("mode", [DISCONNECT_RESET, DISCONNECT_CLOSE, DISCONNECT_LOGOUT])
def test_cyrus_sees_the_disconnect_mode(make_deployment, path: str, mode: str) -> None:
    deployment: Deployment = make_deployment(users=2, prefork=1)
    info = deployment.instances[0]
    credential = read_users_file(info.users_file, "test")[0]
    target = Target(info.host, info.port, info.name)
    steps: list[tuple[str, object]] = []

    def report(step: str, ms: float, length: int, failure: object) -> None:
        steps.append((step, failure))

    offset = len(Path(info.log_file).read_text(errors="replace"))
    for _ in range(CYCLES):
        if path == "lean":
            session = LeanSession(target, report, 5.0, 10.0)
            session.connect()
            session.login(login_command(credential))
        else:
            session = ImapSession(target, report, 5.0, 10.0)
            session.connect()
            session.login(credential)
        session.disconnect(mode)
    assert all(failure is None for _, failure in steps), steps
    log = new_log_lines(info.log_file, offset, expect_more=mode == DISCONNECT_RESET)
    logins = log.count("User logged in")
    assert logins == CYCLES, log[-2000:]
    if mode == DISCONNECT_RESET:
        assert log.count(RESET_LINE) == CYCLES, log[-2000:]
    else:
        assert RESET_LINE not in log, log[-2000:]
    if mode == DISCONNECT_LOGOUT:
        assert [s for s, _ in steps].count("LOGOUT") == CYCLES
