"""Bad --agent-url, --agent-token-file or --baseline: one line naming the value and its source,
exit 2, no run folder (checked before anything starts; no Cyrus needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.paths import PROJECT_ROOT, fixtures_dir


@pytest.mark.parametrize("extra, message", [
    (["--agent-url", "ftp://x"],
     "bad value 'ftp://x' for --agent-url (flag --agent-url): not an http(s) URL"),
    (["--agent-url", "http://127.0.0.1:1", "--agent-token-file", "/nonexistent/token"],
     "cannot read agent token file '/nonexistent/token' (flag --agent-token-file)"),
    (["--baseline", "/nonexistent/run", "--gate", str(fixtures_dir() / "gates" / "baseline.toml")],
     "artifacts folder /nonexistent/run does not exist or is not a folder (--baseline, flag "
     "--baseline)"),
])
def test_bad_agent_and_baseline_options(extra: list[str], message: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(PROJECT_ROOT / "locustfiles" / "churn.py"),
         "--headless", "-u", "1", "-t", "2s", "--imap-host", "127.0.0.1", "--imap-port", "1",
         "--imap-user-pattern", "u{n}", "--imap-user-count", "1", "--imap-password", "x",
         "--artifacts", str(tmp_path / "art"), *extra],
        capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0]
    assert not (tmp_path / "art").exists()
