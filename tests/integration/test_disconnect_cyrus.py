"""Disconnect modes as the real Cyrus sees them: imapd logs "Connection reset by peer" for an RST,
nothing of the kind for a FIN, and a LOGOUT for a graceful end. Checked in the instance's own
captured syslog, for both session paths (imapclient and lean)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from loadtest.core.credentials import read_users_file
from loadtest.deploy.deployment import Deployment
from loadtest.imap.testing import SESSION_PATHS, logged_in_session
from loadtest.imap.transport import DISCONNECT_CLOSE, DISCONNECT_LOGOUT, DISCONNECT_RESET, Target

pytestmark = pytest.mark.cyrus
RESET_LINE = "Connection reset by peer"
LOGIN_LINE = "User logged in"
NO_RESET_GRACE = 0.3
CYCLES = 5


def new_log_lines(path: str, offset: int, expect_resets: bool) -> str:
    """What imapd logged since ``offset``, once it has logged every login (and every reset when
    expected). Without resets expected, a short grace after the logins lets a wrong reset line
    show up (imapd logs within milliseconds); at most 3 s in all."""
    deadline = time.monotonic() + 3.0
    grace_end: float | None = None
    while True:
        text = Path(path).read_text(errors="replace")[offset:]
        now = time.monotonic()
        if now >= deadline:
            return text
        if text.count(LOGIN_LINE) >= CYCLES:
            if expect_resets:
                if text.count(RESET_LINE) >= CYCLES:
                    return text
            elif grace_end is None:
                grace_end = now + NO_RESET_GRACE
            elif now >= grace_end:
                return text
        time.sleep(0.05)


@pytest.mark.parametrize("path", SESSION_PATHS)
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
        session = logged_in_session(path, target, report, credential, 5.0, 10.0)
        session.disconnect(mode)
    assert all(failure is None for _, failure in steps), steps
    log = new_log_lines(info.log_file, offset, expect_resets=mode == DISCONNECT_RESET)
    logins = log.count(LOGIN_LINE)
    assert logins == CYCLES, log[-2000:]
    if mode == DISCONNECT_RESET:
        assert log.count(RESET_LINE) == CYCLES, log[-2000:]
    else:
        assert RESET_LINE not in log, log[-2000:]
    if mode == DISCONNECT_LOGOUT:
        assert [s for s, _ in steps].count("LOGOUT") == CYCLES
