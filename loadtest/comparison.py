"""Two runs side by side (stores-and-slots: the same users and load on the slots, then on one
big instance): per step p50, p99 and rate in one phase, and the probe's greeting p95, measured
by the gate's own metrics so both columns mean what a rule would mean.

Pure module: no Locust, no gevent. Writes comparison.json and comparison.html into the first
run's folder (the report's folder) and returns the table as text for the terminal.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

from loadtest.core.runfolder import RunArtifacts
from loadtest.core.steps import json_number
from loadtest.gate.evaluate import evaluate
from loadtest.gate.rules import parse_rules
from loadtest.imap.steptable import CONNECT, LIST, LOGIN, LOGOUT, NOOP

# The steps of a default churn session and a held one (stores-and-slots runs both).
STEPS = (CONNECT, LOGIN, LIST, LOGOUT, NOOP)
STATS = ("p50_ms", "p99_ms", "rate_per_s")


def measure(run: RunArtifacts, phase: str) -> dict[str, float | None]:
    """Metric name -> value over every instance of the run, in ``phase``."""
    metrics = [f"{step}.{stat}" for step in STEPS for stat in STATS]
    metrics.append("greeting_latency_ms.p95")
    text = "".join(f'[[rule]]\nmetric = "{m}"\nmax = 1e12\nphase = "{phase}"\nmin_samples = 0\n'
                   for m in metrics)
    verdict = evaluate(parse_rules(text, "comparison"), run.steps, run.store)
    return {r.rule.metric.name: r.measured for r in verdict.results}


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return "inf" if math.isinf(value) else f"{value:.4g}"


def compare(runs: dict[str, RunArtifacts], phase: str, out: Path) -> str:
    """Write comparison.json/.html into ``out``; the table as text."""
    columns = {label: measure(run, phase) for label, run in runs.items()}
    names = list(next(iter(columns.values())))
    data = {"phase": phase, "runs": {label: str(run.folder) for label, run in runs.items()},
            "metrics": {name: {label: json_number(col[name]) for label, col in columns.items()}
                        for name in names}}
    (out / "comparison.json").write_text(json.dumps(data, indent=2) + "\n")
    head = "".join(f"<th>{html.escape(label)}</th>" for label in columns)
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td>"
        + "".join(f"<td>{_fmt(col[name])}</td>" for col in columns.values()) + "</tr>"
        for name in names)
    links = "".join(f'<li>{html.escape(label)}: <a href="{html.escape(str(run.folder))}/report.html">'
                    f"{html.escape(str(run.folder))}</a></li>" for label, run in runs.items())
    (out / "comparison.html").write_text(
        f"<!doctype html><meta charset=utf-8><title>comparison</title><h1>Side by side, phase "
        f"{html.escape(phase)}</h1><ul>{links}</ul><table border=1 cellpadding=4>"
        f"<tr><th>metric</th>{head}</tr>{rows}</table>\n")
    width = max(len(n) for n in names)
    lines = [f"{'metric':<{width}}  " + "  ".join(f"{label:>14}" for label in columns)]
    lines += [f"{name:<{width}}  " + "  ".join(f"{_fmt(col[name]):>14}"
                                               for col in columns.values()) for name in names]
    return "\n".join(lines)

