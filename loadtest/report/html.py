"""report.html: one self-contained page (inline CSS, PNGs beside it, nothing fetched from the
network) with the verdict on top (and each stall's time and length beside it), then step
statistics, the plots on one time axis and the events. Built from the Jinja2 template
``templates/report.html.j2`` (Jinja2 comes with Locust's web UI); this module only prepares
plain values for it.

File I/O only: no Locust, no gevent.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import jinja2

from loadtest.core.runfolder import REPORT_FILE, RunArtifacts
from loadtest.core.series import Event
from loadtest.paths import atomic_write
from loadtest.report.plots import plot_all, time_range

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATUS_ORDER = {"fail": 0, "inconclusive": 1, "pass": 2}
EVENT_NAMES = {"stall": "master stall (new connections)", "heartbeat_gap": "master heartbeat gap",
               "collector_gap": "collector gap", "fault": "fault", "phase": "phase"}
# Detail keys the events table leaves out: internal bookkeeping, shown elsewhere.
HIDDEN_DETAIL = {"last_update", "master_stall"}


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True)


def when(t: float | None) -> str:
    """A wall-clock time for the page; '-' when unknown (never the epoch)."""
    if not t:
        return "-"
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def number(value: Any) -> str:
    if value is None:
        return "-"
    if value == "inf" or (isinstance(value, float) and math.isinf(value)):
        return "inf"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def rule_rows(verdict: dict[str, Any]) -> list[dict[str, str]]:
    """The verdict's rules, failing ones first."""
    rows = [{"status": str(r.get("status", "")), "metric": str(r.get("metric")),
             "scope": str(r.get("scope") or "run"),
             "measured": str(r.get("measured_text", number(r.get("measured")))),
             "threshold": str(r.get("threshold", "")), "samples": number(r.get("samples")),
             "reason": str(r.get("reason", ""))} for r in verdict.get("results", [])]
    return sorted(rows, key=lambda r: STATUS_ORDER.get(r["status"], 3))


def seconds(value: float) -> str:
    return f"{value:.1f} s"


def stall_lines(events: list[Event], t0: float) -> list[dict[str, str]]:
    """Master stalls and heartbeat gaps for the verdict: when, how long (the event's own
    length, which is also what the gate measured) and where."""
    out = []
    for ev in sorted(events, key=lambda e: e.t):
        if ev.kind not in ("stall", "heartbeat_gap"):
            continue
        length = "still going at the end" if ev.end is None else seconds(ev.end - ev.t)
        note = ""
        if ev.kind == "heartbeat_gap" and "between_writes_s" in ev.detail:
            note = (f"master's stats file unchanged {ev.detail['between_writes_s']:.2f} s; "
                    "the stop is that less half its 1 s interval (+-0.5 s)")
        elif ev.kind == "stall" and ev.detail.get("held_session"):
            note = f"held session {ev.detail['held_session']}"
        out.append({"what": EVENT_NAMES[ev.kind], "at": f"{ev.t - t0:.1f}", "length": length,
                    "instance": ev.instance or "", "note": note})
    return out


def _detail_text(event: Event) -> str:
    parts = []
    for key, value in sorted(event.detail.items()):
        if key in HIDDEN_DETAIL or (event.kind == "phase" and key == "name"):
            continue
        shown = f"{value:.3g}" if isinstance(value, float) else str(value)
        parts.append(f"{key.replace('_', ' ')}: {shown}")
    return "; ".join(parts)


def event_rows(events: list[Event], t0: float) -> list[dict[str, str]]:
    rows = []
    for ev in sorted(events, key=lambda e: e.t):
        what = EVENT_NAMES.get(ev.kind, ev.kind)
        if ev.kind == "phase":
            what = f"phase {ev.detail.get('name', '?')}"
        rows.append({"at": f"{ev.t - t0:.1f}",
                     "length": "open" if ev.end is None else f"{ev.end - ev.t:.2f}",
                     "what": what, "instance": ev.instance or "", "detail": _detail_text(ev)})
    return rows


def step_rows(artifacts: RunArtifacts) -> list[list[str]]:
    recorder = artifacts.steps
    duration = recorder.duration()
    rows = []
    for scope, phase in [("run", None)] + [(f"phase {p}", p) for p in recorder.phases()]:
        for step in recorder.steps():
            stats = recorder.select(step, phase)
            if not stats.count:
                continue
            summary = stats.summary()
            rate = (stats.successes / duration) if duration and phase is None else None
            rows.append([scope, step, str(stats.count), str(stats.failures),
                         number(stats.failure_ratio), number(summary["p50_ms"]),
                         number(summary["p95_ms"]), number(summary["p99_ms"]),
                         number(summary["max_ms"]), number(rate)])
    return rows


def load_window(artifacts: RunArtifacts) -> tuple[float, float]:
    """Where the load started and ended: run.json's start and load_end (written when Locust
    stopped the users), else the end of the last phase, else run.json's end (when Locust quit)."""
    run = artifacts.run
    end = run.get("load_end")
    if end is None:
        phase_ends = [e.end for e in artifacts.store.events("phase") if e.end is not None]
        end = max(phase_ends) if phase_ends else run.get("end")
    return time_range(artifacts.store, run.get("start"), end)


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
    ran = bool(run.get("start")) or bool(artifacts.steps.steps())
    t0, t1 = load_window(artifacts)
    plots = plot_all(artifacts.store, out.parent, t0, t1)
    events = artifacts.store.events()
    summary = [("folder", str(artifacts.folder)), ("locustfile", str(run.get("locustfile", "-"))),
               ("load started", when(run.get("start"))),
               ("load ended", when(run.get("load_end")) if run.get("load_end") else
                (f"{t1 - t0:.1f} s after the start" if ran else "-")),
               ("Locust quit", when(run.get("end"))), ("status", str(run.get("status", "-"))),
               ("cyrus-loadtest", str(run.get("tool_version", "-"))),
               ("cyrus", _cyrus_line(run.get("cyrus")))]
    page = _environment().get_template("report.html.j2").render(
        folder_name=artifacts.folder.name, locustfile=run.get("locustfile"),
        started=when(run.get("start")) if run.get("start") else None, load_s=t1 - t0, ran=ran,
        verdict=verdict, rules=rule_rows(verdict) if verdict else [],
        stalls=stall_lines(events, t0), summary=summary,
        user_classes=sorted((run.get("user_classes") or {}).items()),
        step_rows=step_rows(artifacts),
        figures=[{"file": name, "title": panel.title, "has_data": has_data}
                 for panel, name, has_data in plots],
        events=event_rows(events, t0),
        options=json.dumps(run.get("options", {}), indent=2, sort_keys=True, default=str))
    return atomic_write(out, page)
