"""`cyrus-loadtest report ARTIFACTS`: report.html with PNG plots from a run's artifacts folder.

Raises loadtest.errors.UsageError for bad input (the main entry point prints it, exit 2).
"""

from __future__ import annotations

import argparse

from loadtest.core.runfolder import load_run
from loadtest.report.html import render


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifacts", metavar="ARTIFACTS", help="a run's artifacts folder")
    parser.add_argument("--output", metavar="PATH",
                        help="write the report here; the PNGs go beside it "
                             "(default: ARTIFACTS/report.html)")
    parser.add_argument("--rules", metavar="FILE",
                        help="show the verdict of these gate rules instead of verdict.json "
                             "(nothing else is written)")


def run(args: argparse.Namespace) -> int:
    verdict = None
    if args.rules:
        from loadtest.gate.evaluate import evaluate
        from loadtest.gate.rules import load_rules

        rules = load_rules(args.rules)  # bad rules fail before anything is read or drawn
        artifacts = load_run(args.artifacts)
        verdict = evaluate(rules, artifacts.steps, artifacts.store).to_dict()
    else:
        artifacts = load_run(args.artifacts)
    path = render(artifacts, args.output, verdict)
    print(f"report: {path}")
    return 0
