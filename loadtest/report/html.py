"""report.html: one self-contained page (inline CSS, PNGs beside it, nothing fetched from the
network) with the verdict on top, then step statistics, events and the plots on one time axis.

File I/O only: no Locust, no gevent.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from html import escape
from pathlib import Path
from typing import Any

from loadtest.paths import atomic_write
from loadtest.report.artifacts import REPORT_FILE, RunArtifacts
from loadtest.report.plots import plot_all, time_range

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5em 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f5f5f5; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #1a7f37; font-weight: bold; } .fail { color: #cf222e; font-weight: bold; }
.inconclusive { color: #9a6700; font-weight: bold; }
.banner { padding: .6em 1em; border-radius: 4px; font-size: 1.1em; margin: .5em 0; }
.banner.pass { background: #dafbe1; } .banner.fail { background: #ffebe9; }
.banner.inconclusive, .banner.none { background: #fff8c5; color: #6b5900; }
figure { margin: 1em 0; } figcaption { font-size: 12px; color: #555; }
img { max-width: 100%; } pre { background: #f6f8fa; padding: .6em; overflow-x: auto; }
"""


def _when(t: float | None) -> str:
    if t is None:
        return "?"
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if value == "inf" or (isinstance(value, float) and math.isinf(value)):
        return "inf"
    if isinstance(value, float):
        return f"{value:.4g}"
    return escape(str(value))


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
                         for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def verdict_section(verdict: dict[str, Any] | None) -> str:
    if verdict is None:
        return ('<div class="banner none">No verdict: the gate has not run on these artifacts '
                "(<code>cyrus-loadtest gate ARTIFACTS --rules FILE</code>).</div>")
    status = str(verdict.get("status", "?"))
    counts = verdict.get("counts", {})
    banner = (f'<div class="banner {escape(status)}">Verdict: <b>{escape(status.upper())}</b> '
              f"(exit {escape(str(verdict.get('exit_code')))}; {counts.get('pass', 0)} pass, "
              f"{counts.get('fail', 0)} fail, {counts.get('inconclusive', 0)} inconclusive; "
              f"rules from <code>{escape(str(verdict.get('rules_file')))}</code>)</div>")
    rows = [[escape(r["metric"]), escape(r.get("scope") or "run"),
             escape(r.get("measured_text", _num(r.get("measured")))), escape(r["threshold"]),
             _num(r.get("samples")), f'<span class="{escape(r["status"])}">'
             f'{escape(r["status"])}</span>', escape(r.get("reason", ""))]
            for r in verdict.get("results", [])]
    return banner + _table(["rule", "scope", "measured", "threshold", "samples", "result",
                            "reason"], rows, {4})


def steps_section(artifacts: RunArtifacts) -> str:
    recorder = artifacts.steps
    steps = recorder.steps()
    if not steps:
        return "<p>no data: no requests were recorded.</p>"
    duration = recorder.duration()
    rows = []
    for scope, phase in [("run", None)] + [(f"phase {p}", p) for p in recorder.phases()]:
        for step in steps:
            stats = recorder.select(step, phase)
            if not stats.count:
                continue
            summary = stats.summary()
            rate = (stats.successes / duration) if duration and phase is None else None
            rows.append([escape(scope), escape(step), str(stats.count), str(stats.failures),
                         _num(stats.failure_ratio), _num(summary["p50_ms"]),
                         _num(summary["p95_ms"]), _num(summary["p99_ms"]),
                         _num(summary["max_ms"]), _num(rate)])
    note = ("<p>Failed requests count as slower than any success (+inf): a percentile is "
            "<i>inf</i> when more requests failed than it leaves out (docs/gate.md).</p>")
    return note + _table(["scope", "step", "requests", "failures", "failure ratio", "p50 ms",
                          "p95 ms", "p99 ms", "max ms", "successes/s"], rows,
                         {2, 3, 4, 5, 6, 7, 8, 9})


def events_section(artifacts: RunArtifacts, t0: float) -> str:
    events = sorted(artifacts.store.events(), key=lambda e: e.t)
    if not events:
        return "<p>no data: no phases, faults, stalls or gaps were recorded.</p>"
    rows = [[escape(e.kind), f"{e.t - t0:.1f}", "open" if e.end is None else f"{e.end - t0:.1f}",
             "-" if e.duration is None else f"{e.duration:.2f}", escape(e.instance or "-"),
             escape(json.dumps(e.detail, sort_keys=True))] for e in events]
    return _table(["kind", "start s", "end s", "duration s", "instance", "detail"], rows,
                  {1, 2, 3})


def _cyrus_line(cyrus: dict[str, Any] | None) -> str:
    """Which Cyrus programs ran (run.json's `cyrus`, recorded from deployment.json)."""
    if not cyrus:
        return "not recorded (a remote target, or an older deployment)"
    from loadtest.deploy.binaries import CyrusPrograms

    return CyrusPrograms.from_dict(cyrus).describe()


def render(artifacts: RunArtifacts, output: str | Path | None = None,
           verdict: dict[str, Any] | None = None) -> Path:
    """Write the PNGs and report.html into the artifacts folder (or beside `output`)."""
    out = Path(output) if output else artifacts.folder / REPORT_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    run = artifacts.run
    verdict = verdict if verdict is not None else artifacts.verdict
    t0, t1 = time_range(artifacts.store, run.get("start"), run.get("end"))
    plots = plot_all(artifacts.store, out.parent, t0, t1)
    figures = "".join(
        f'<figure><img src="{escape(name)}" alt="{escape(panel.title)}">'
        f"<figcaption>{escape(panel.title)}{'' if has_data else ' (no data)'}</figcaption>"
        f"</figure>" for panel, name, has_data in plots)
    options = json.dumps(run.get("options", {}), indent=2, sort_keys=True, default=str)
    summary = _table(["", ""], [
        ["folder", escape(str(artifacts.folder))],
        ["locustfile", escape(str(run.get("locustfile", "?")))],
        ["start", _when(t0)], ["end", _when(t1)], ["duration", f"{t1 - t0:.1f} s"],
        ["cyrus-loadtest", escape(str(run.get("tool_version", "?")))],
        ["cyrus", escape(_cyrus_line(run.get("cyrus")))],
    ])
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>cyrus-loadtest report: {escape(artifacts.folder.name)}</title>
<style>{CSS}</style></head>
<body>
<h1>cyrus-loadtest report</h1>
<h2>Verdict</h2>
{verdict_section(verdict)}
<h2>Run</h2>
{summary}
<h2>Step statistics</h2>
{steps_section(artifacts)}
<h2>Timeline</h2>
<p>All plots share one time axis (seconds since {escape(_when(t0))}). Grey/blue bands: phases;
red shading: master stalls; orange: heartbeat gaps; grey: collector gaps; purple dashed lines:
faults.</p>
{figures}
<h2>Events</h2>
{events_section(artifacts, t0)}
<h2>Options (passwords removed)</h2>
<pre>{escape(options)}</pre>
</body></html>
"""
    return atomic_write(out, page)
