"""The verdict's three outputs: a table on the terminal (rich), verdict.json and junit.xml (one
test case per rule, for CI systems).

File and terminal I/O only: no Locust, no gevent.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from junitparser import Error, Failure, JUnitXml, Properties, Property, TestCase, TestSuite
from rich.console import Console
from rich.table import Table

from loadtest.core.runfolder import JUNIT_FILE, VERDICT_FILE
from loadtest.gate.evaluate import FAIL, INCONCLUSIVE, PASS, Verdict, format_value
from loadtest.paths import atomic_write

STYLE = {PASS: "green", FAIL: "bold red", INCONCLUSIVE: "yellow"}


def verdict_table(verdict: Verdict) -> Table:
    runs = (f", measured: run {verdict.run}, baseline: run {verdict.baseline_run}"
            if verdict.baseline_run else "")
    table = Table(title=f"{verdict.suite}: {verdict.status.upper()} "
                        f"(exit {verdict.exit_code}, rules from {verdict.rules_path}{runs})",
                  title_justify="left")
    columns = ["rule", "scope", "measured", "threshold", "samples", "result", "reason"]
    if verdict.baseline_run:
        columns.insert(3, "baseline")
    for column in columns:
        table.add_column(column, overflow="fold")
    for r in verdict.results:
        row = [r.rule.metric.name, r.rule.scope_text or "run", r.measured_text,
               r.rule.threshold_text, "-" if r.samples is None else str(r.samples),
               f"[{STYLE[r.status]}]{r.status}[/]", "" if r.status == PASS else r.reason]
        if verdict.baseline_run:
            row.insert(3, "-" if r.baseline is None else format_value(r.baseline, r.rule.metric))
        table.add_row(*row)
    return table


def print_verdict(verdict: Verdict, console: Console | None = None) -> None:
    # In CI logs (no terminal) rich would wrap at 80 columns and split every cell.
    (console or Console(width=None if sys.stdout.isatty() else 140)).print(verdict_table(verdict))


def write_verdict_json(verdict: Verdict, path: str | Path) -> Path:
    return atomic_write(path, json.dumps(verdict.to_dict(), indent=2) + "\n")


def junit_xml(verdict: Verdict) -> JUnitXml:
    suite = TestSuite(verdict.suite)
    properties = Properties()
    properties.add_property(Property("rules_file", verdict.rules_path))
    properties.add_property(Property("verdict", verdict.status))
    suite.append(properties)
    for r in verdict.results:
        case = TestCase(r.rule.name, classname=f"gate.{r.rule.phase or 'run'}", time=0.0)
        message = (f"{r.rule.metric.name}: measured {r.measured_text}, threshold "
                   f"{r.rule.threshold_text}: {r.reason}")
        if r.status == FAIL:
            failure = Failure(message, "threshold")
            failure.text = message
            case.result = [failure]
        elif r.status == INCONCLUSIVE:
            # An error, not a skip: CI systems often show skipped tests as green.
            error = Error(message, "inconclusive")
            error.text = message
            case.result = [error]
        suite.add_testcase(case)
    suite.update_statistics()
    xml = JUnitXml()
    xml.add_testsuite(suite)
    return xml


def write_junit(verdict: Verdict, path: str | Path) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")  # junitparser writes the file itself
    junit_xml(verdict).write(str(tmp), pretty=True)
    os.replace(tmp, path)
    return path


def write_outputs(verdict: Verdict, folder: str | Path) -> tuple[Path, Path]:
    """verdict.json and junit.xml into a run's artifacts folder."""
    folder = Path(folder)
    return (write_verdict_json(verdict, folder / VERDICT_FILE),
            write_junit(verdict, folder / JUNIT_FILE))
