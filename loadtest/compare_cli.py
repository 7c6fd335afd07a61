"""`cyrus-loadtest compare BASE NEW --rules FILE`: gate rules over the NEW run's artifacts, with
relative rules (max_ratio, min_ratio) judged against the BASE run's value of the same metric,
phase and instance. Same exit codes as `gate`: 0 pass, 1 fail, 2 bad input, 3 inconclusive.

The verdict names both runs: "measured" numbers come from NEW, "baseline" numbers from BASE.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from loadtest.core.runfolder import load_run
from loadtest.gate.cli import load_baseline
from loadtest.gate.evaluate import evaluate
from loadtest.gate.output import print_verdict, write_junit, write_verdict_json
from loadtest.gate.rules import load_rules

COMPARE_VERDICT_FILE = "compare-verdict.json"
COMPARE_JUNIT_FILE = "compare-junit.xml"
COMPARE_PLOT_FILE = "compare-overlay.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("baseline", metavar="BASE", help="the baseline run's artifacts folder")
    parser.add_argument("new", metavar="NEW", help="the run to judge (artifacts folder)")
    parser.add_argument("--rules", required=True, metavar="FILE",
                        help="gate rules (TOML, docs/gate.md); max_ratio/min_ratio rules "
                        "compare with BASE")
    parser.add_argument("--junit", metavar="PATH",
                        help=f"write the JUnit XML here (default: NEW/{COMPARE_JUNIT_FILE})")
    parser.add_argument("--json", metavar="PATH",
                        help=f"write the JSON verdict here (default: NEW/{COMPARE_VERDICT_FILE})")
    parser.add_argument("--no-plot", action="store_true",
                        help=f"do not write NEW/{COMPARE_PLOT_FILE} (both runs on one time axis)")




def run(args: argparse.Namespace) -> int:
    rules = load_rules(args.rules)
    baseline = load_baseline(args.baseline)
    new = load_run(args.new)
    verdict = evaluate(rules, new.steps, new.store, baseline, run=Path(args.new).name)
    print_verdict(verdict)
    folder = Path(args.new)
    write_verdict_json(verdict, args.json or folder / COMPARE_VERDICT_FILE)
    write_junit(verdict, args.junit or folder / COMPARE_JUNIT_FILE)
    if not args.no_plot:
        from loadtest.report.overlay import plot_overlay

        plot = plot_overlay(baseline.store, new.store, folder / COMPARE_PLOT_FILE,
                            base_name=baseline.name, new_name=folder.name,
                            base_start=baseline.start, new_start=new.steps.start)
        if plot is not None:
            print(f"both runs on one time axis: {plot}")
    return verdict.exit_code
