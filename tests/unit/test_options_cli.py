"""`cyrus-loadtest options` lists every option declared anywhere in the package."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import loadtest

PACKAGE = Path(loadtest.__file__).parent


def declared_in_source() -> set[str]:
    """Names of every ``Option("name", ...)`` in the package's source, found without importing
    it (a module that declares options but is missing from the command's list shows here)."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Option"
                    and node.args and isinstance(node.args[0], ast.Constant)):
                names.add(node.args[0].value)
    return names


def run_options(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "loadtest.cli", "options", *args],
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def test_every_declared_option_is_listed_with_flag_env_and_config_key() -> None:
    rows = {row["flag"]: row for row in json.loads(run_options("--json"))}
    names = declared_in_source()
    assert len(names) > 30
    for name in names:
        flag = "--" + name.replace("_", "-")
        assert flag in rows, flag
        assert rows[flag]["env"] == "LOADTEST_" + name.upper()
        assert rows[flag]["config_key"] == name.replace("_", "-")
        assert rows[flag]["help"]
    assert rows["--imap-disconnect"]["default"] == "per-class"
    assert rows["--imap-disconnect"]["choices"] == ["per-class", "logout", "close", "reset"]
    assert rows["--imap-timeout"]["default"] == "10"


def test_text_listing_names_each_env_variable() -> None:
    text = run_options()
    for name in declared_in_source():
        assert f"env LOADTEST_{name.upper()} " in text, name
