"""`cyrus-loadtest options`: every option of the Locust side (the locustfiles' options), with
its flag, env name, config-file key, default and help.

`locust --help` cannot list them: Locust prints its help before it imports a locustfile, and
the options are declared by the modules a locustfile imports. This command imports every module
that declares options (which imports Locust) and prints the registry of ``loadtest.settings``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import textwrap
from typing import Any

from loadtest import settings

# Every module with a ``declare(...)`` of options (the plugin registers them with Locust).
DECLARING_MODULES = ("loadtest.imap.config", "loadtest.run", "loadtest.shapes",
                     "loadtest.scenarios", "loadtest.integrity_user")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON list instead of text")


def all_options() -> list[settings.Option]:
    import importlib

    for module in DECLARING_MODULES:
        importlib.import_module(module)
    return settings.declared()


def describe(option: settings.Option) -> dict[str, Any]:
    """What the listing says about one option."""
    if option.flag_only:
        default = "false (a switch: --flag, or true/false in env and config)"
    elif option.unset_choice is not None:
        default = option.unset_choice
    else:
        default = option.default
    return {"flag": option.flag, "env": option.env, "config_key": option.config_key,
            "default": default, "choices": list(option.all_choices or ()) or None,
            "help": option.help, "group": option.group, "secret": option.secret,
            "in_web_form": option.web_ui}


def render_text(rows: list[dict[str, Any]], width: int = 100) -> str:
    lines = ["Options of locust -f locustfiles/... (flag > env > config file > default; a "
             "config-file key goes in locust.conf or [tool.locust] of pyproject.toml).", ""]
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    wrap = textwrap.TextWrapper(width=max(40, width), initial_indent="    ",
                                subsequent_indent="    ")
    for group, members in groups.items():
        lines.append(f"{group}:")
        for row in members:
            lines.append(f"  {row['flag']}   env {row['env']}   config {row['config_key']}")
            facts = []
            if row["default"] is not None:
                facts.append(f"default: {row['default']}")
            if row["choices"]:
                facts.append(f"choices: {', '.join(row['choices'])}")
            if not row["in_web_form"]:
                facts.append("not in the web form")
            lines.extend(wrap.wrap(row["help"] + (f" [{'; '.join(facts)}]" if facts else "")))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def run(args: argparse.Namespace) -> int:
    rows = [describe(o) for o in all_options()]
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(render_text(rows, shutil.get_terminal_size((100, 20)).columns), end="")
    return 0
