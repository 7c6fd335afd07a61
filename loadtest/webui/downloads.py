"""The run's files for Locust's Download Data tab, built on request from the live run: the
collectors' series and events as CSV, the gate's verdict (JSON and JUnit XML) as it stands, and
the report (HTML and PNGs in a zip). No Locust import here (see loadtest.webui.server).

The report is drawn on request (matplotlib, a few seconds, on Locust's hub): fine for a click,
not for polling.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from loadtest.core.series import SeriesStore

FILES = {"series.csv": "the Cyrus series (CSV)", "events.csv": "stalls, gaps, faults, phases (CSV)",
         "verdict.json": "the gate verdict (JSON)", "junit.xml": "the gate verdict (JUnit XML)",
         "report.zip": "the report (HTML + PNGs, zip)"}


def file_name(name: str, tab: Any) -> str:
    folder = getattr(tab.get_run(), "folder", None)
    return f"{Path(folder).name}-{name}" if folder else name


def series_csv(store: SeriesStore) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["t", "signal", "instance", "value", "labels"])
    for s in store.samples():
        writer.writerow([f"{s.t:.3f}", s.signal, s.instance or "",
                         "" if s.value is None else s.value,
                         json.dumps(s.labels, sort_keys=True) if s.labels else ""])
    return out.getvalue().encode()


def events_csv(store: SeriesStore) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["t", "end", "length_s", "kind", "instance", "detail"])
    for e in sorted(store.events(), key=lambda e: e.t):
        writer.writerow([f"{e.t:.3f}", "" if e.end is None else f"{e.end:.3f}",
                         "" if e.end is None else f"{e.end - e.t:.3f}", e.kind, e.instance or "",
                         json.dumps(e.detail, sort_keys=True, default=str)])
    return out.getvalue().encode()


def _verdict(tab: Any) -> Any:
    from loadtest.core.steps import StepRecorder
    from loadtest.gate.evaluate import evaluate

    rules = tab._rules()
    if rules is None:
        return None
    steps = tab.get_steps() or StepRecorder(per_second=False)
    return evaluate(rules, steps, tab.get_store() or SeriesStore())


def build(name: str, tab: Any) -> tuple[bytes, str]:
    """(body, mimetype) of one of FILES, from the tab's current store, steps, rules and run."""
    store = tab.get_store() or SeriesStore()
    if name == "series.csv":
        return series_csv(store), "text/csv"
    if name == "events.csv":
        return events_csv(store), "text/csv"
    verdict = _verdict(tab)
    if name in ("verdict.json", "junit.xml"):
        if verdict is None:
            return json.dumps({"error": "no gate rules (--gate) in this run"}).encode(), \
                "application/json"
        if name == "verdict.json":
            return json.dumps(verdict.to_dict(), indent=1).encode(), "application/json"
        from loadtest.gate.output import write_junit

        with tempfile.TemporaryDirectory() as tmp:
            return write_junit(verdict, Path(tmp) / "junit.xml").read_bytes(), "application/xml"
    return report_zip(tab, store, verdict), "application/zip"


def report_zip(tab: Any, store: SeriesStore, verdict: Any) -> bytes:
    from loadtest.core.runfolder import RunArtifacts
    from loadtest.core.steps import StepRecorder
    from loadtest.report.html import render

    run = tab.get_run()
    info = dict(getattr(run, "info", None) or {})
    steps = tab.get_steps()
    if not isinstance(steps, StepRecorder):
        steps = StepRecorder.from_dict(steps) if steps else StepRecorder(per_second=False)
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(getattr(run, "folder", None) or tmp)
        artifacts = RunArtifacts(folder, info, steps, store, None)
        page = render(artifacts, Path(tmp) / "report.html",
                      verdict.to_dict() if verdict is not None else None)
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(page.parent.iterdir()):
                archive.write(path, path.name)
    return buffer.getvalue()
