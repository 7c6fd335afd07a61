"""`deploy up` progress: done/total, one line per finished phase, the same with a terminal."""

from __future__ import annotations

import re
import sys

import pytest

from loadtest.cli import _progress

UPDATES = [("passwords", 25, 60), ("passwords", 50, 60), ("passwords", 60, 60),
           ("mailboxes", 25, 60), ("mailboxes", 60, 60), ("mailboxes", 60, 60)]


def finished_lines(text: str) -> list[str]:
    """The finished-phase lines, without the terminal's control sequences."""
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "\n")
    return [line.split(" done in ")[0].strip() for line in plain.splitlines() if " done in " in line]


@pytest.mark.parametrize("terminal", [False, True])
def test_one_line_per_finished_phase_with_and_without_a_terminal(
        terminal: bool, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    with _progress() as update:
        for phase, done, total in UPDATES:
            update(phase, done, total)
    assert finished_lines(capsys.readouterr().err) == [
        "provisioning: passwords 60/60", "provisioning: mailboxes 60/60"]
