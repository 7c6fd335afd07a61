"""`cyrus-loadtest gate ARTIFACTS --rules FILE`: the offline gate over a finished run's folder,
and `gate_at_quit`, the same evaluation in-process when Locust quits. `cyrus-loadtest gate
--list-metrics` prints every metric name a rule may use.

Raises loadtest.errors.UsageError for bad input (the main entry point prints it, exit 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from loadtest.core.runfolder import JUNIT_FILE, VERDICT_FILE, load_run
from loadtest.core.series import SeriesStore
from loadtest.core.steps import StepRecorder
from loadtest.gate.evaluate import Baseline, Verdict, evaluate
from loadtest.gate.metrics import describe_all
from loadtest.gate.output import print_verdict, write_junit, write_outputs, write_verdict_json
from loadtest.gate.rules import RuleSet, load_rules


class _ListMetrics(argparse.Action):
    """Like --help: print the metric registry and exit 0, whatever else is (not) given."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        rows = describe_all()
        width = max(len(pattern) for pattern, _ in rows)
        print("\n".join(f"{pattern:<{width}}  {meaning}" for pattern, meaning in rows))
        parser.exit(0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--list-metrics", action=_ListMetrics,
                        help="print every metric a gate rule may use, and exit")
    parser.add_argument("artifacts", metavar="ARTIFACTS", help="a run's artifacts folder")
    parser.add_argument("--rules", required=True, metavar="FILE",
                        help="gate rules (TOML, see docs/gate.md), e.g. fixtures/gates/default.toml")
    parser.add_argument("--junit", metavar="PATH",
                        help="write the JUnit XML here (default: ARTIFACTS/junit.xml)")
    parser.add_argument("--json", metavar="PATH",
                        help="write the JSON verdict here (default: ARTIFACTS/verdict.json)")


def run(args: argparse.Namespace) -> int:
    """Exit code: 0 pass, 1 fail, 3 inconclusive (UsageError, exit 2, for bad input)."""
    rules = load_rules(args.rules)  # a bad rules file is reported before the folder is read
    artifacts = load_run(args.artifacts)
    verdict = evaluate(rules, artifacts.steps, artifacts.store)
    print_verdict(verdict)
    folder = Path(args.artifacts)
    write_verdict_json(verdict, args.json or folder / VERDICT_FILE)
    write_junit(verdict, args.junit or folder / JUNIT_FILE)
    return verdict.exit_code


def load_baseline(folder: str | Path) -> Baseline:
    """A finished run's artifacts as a baseline (UsageError naming the folder if incomplete)."""
    artifacts = load_run(folder)
    return Baseline(Path(folder).name, artifacts.steps, artifacts.store, artifacts.steps.start)


def gate_at_quit(rules: RuleSet, recorder: StepRecorder, store: SeriesStore,
                 folder: str | Path, console: Console | None = None,
                 baseline: Baseline | None = None) -> Verdict:
    """In-process gate for the plugin's quitting handler: evaluate, print the table and write
    verdict.json and junit.xml. The caller closes events still open first
    (`store.close_open_events(recorder.end)`: offline, only closed events exist), sets
    `environment.process_exit_code = verdict.exit_code` and writes steps.json and the series
    (flush) so that the offline gate reads the same data."""
    verdict = evaluate(rules, recorder, store, baseline,
                       run=Path(folder).name if baseline else None)
    print_verdict(verdict, console)
    write_outputs(verdict, folder)
    return verdict
