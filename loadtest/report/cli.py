"""`cyrus-loadtest report ARTIFACTS`: report.html with PNG plots from a run's artifacts folder.

Raises loadtest.errors.UsageError for bad input (the main entry point prints it, exit 2).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from loadtest.core.runfolder import load_run
from loadtest.errors import UsageError
from loadtest.report.html import render


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifacts", metavar="ARTIFACTS", help="a run's artifacts folder")
    parser.add_argument("--output", metavar="PATH",
                        help="write the report here; the PNGs go beside it "
                             "(default: ARTIFACTS/report.html)")
    parser.add_argument("--rules", metavar="FILE",
                        help="show the verdict of these gate rules instead of verdict.json "
                             "(nothing else is written)")


def check_output(output: str) -> None:
    """--output names a file in a folder we can write (checked before anything is drawn)."""
    path = Path(output)
    if not output.strip() or path.is_dir():
        raise UsageError(f"--output {output!r} (from flag --output) is a folder or empty: name "
                         "the report's file, e.g. report.html")
    parent = path.absolute().parent
    while not parent.exists():  # render creates missing folders: check the first that exists
        parent = parent.parent
    probe = parent / f".{path.name}.probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"--output {output} (from flag --output): cannot write in {parent}: "
                         f"{exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    verdict = None
    if args.output is not None:
        check_output(args.output)
    if args.rules:
        from loadtest.gate.evaluate import evaluate
        from loadtest.gate.rules import load_rules

        rules = load_rules(args.rules)  # bad rules fail before anything is read or drawn
        artifacts = load_run(args.artifacts)
        verdict = evaluate(rules, artifacts.steps, artifacts.store).to_dict()
    else:
        artifacts = load_run(args.artifacts)
    try:
        path = render(artifacts, args.output, verdict)
    except OSError as exc:  # a disk that fills up while drawing
        raise UsageError(f"cannot write the report for {args.artifacts}: "
                         f"{exc.strerror or exc} ({exc.filename or ''})") from None
    print(f"report: {path}")
    return 0
