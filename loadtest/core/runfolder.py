"""A run's artifacts folder: names of its files and a checked loader for the offline gate and
the report. A folder that is incomplete or from another format version is a UsageError naming
the folder and the file.

File I/O only: no Locust, no gevent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest import FORMAT_VERSION, __version__
from loadtest.core.series import EVENTS_FILE, SERIES_FILE, SeriesStore
from loadtest.core.steps import STEPS_FILE, StepRecorder
from loadtest.errors import UsageError

RUN_FILE = "run.json"
VERDICT_FILE = "verdict.json"
JUNIT_FILE = "junit.xml"
REPORT_FILE = "report.html"
FORMAT_KEY = "format_version"  # run.json carries {"format_version": loadtest.FORMAT_VERSION}
REQUIRED_FILES = (RUN_FILE, STEPS_FILE, SERIES_FILE, EVENTS_FILE)


def run_header() -> dict[str, Any]:
    """The first keys of run.json (the plugin adds start, end, options, deployment...)."""
    return {FORMAT_KEY: FORMAT_VERSION, "tool_version": __version__}


@dataclass
class RunArtifacts:
    folder: Path
    run: dict[str, Any]
    steps: StepRecorder
    store: SeriesStore
    verdict: dict[str, Any] | None  # verdict.json when the gate has run


def _read_json(folder: Path, name: str) -> Any:
    path = folder / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"artifacts folder {folder}: cannot read {name}: {exc}") from None


def _checked_run(folder: Path) -> dict[str, Any]:
    """run.json of a complete folder of this format version, parsed."""
    if not folder.is_dir():
        raise UsageError(f"artifacts folder {folder} does not exist or is not a folder")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise UsageError(f"artifacts folder {folder} is incomplete: missing {', '.join(missing)}")
    run = _read_json(folder, RUN_FILE)
    version = run.get(FORMAT_KEY) if isinstance(run, dict) else None
    if version != FORMAT_VERSION:
        raise UsageError(f"artifacts folder {folder}: {RUN_FILE} has format version {version!r}, "
                         f"this cyrus-loadtest reads version {FORMAT_VERSION}")
    return run


def load_run(folder: str | Path) -> RunArtifacts:
    """Check and read a run's artifacts (the offline gate and the report use this)."""
    folder = Path(folder)
    run = _checked_run(folder)
    try:
        steps = StepRecorder.from_dict(_read_json(folder, STEPS_FILE))
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"artifacts folder {folder}: bad {STEPS_FILE}: {exc}") from None
    try:
        store = SeriesStore.load(folder)
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"artifacts folder {folder}: bad series or events: {exc}") from None
    verdict = _read_json(folder, VERDICT_FILE) if (folder / VERDICT_FILE).is_file() else None
    if verdict is not None:
        check_verdict(verdict, f"artifacts folder {folder}: {VERDICT_FILE}")
    return RunArtifacts(folder, run, steps, store, verdict)


def check_verdict(verdict: Any, where: str) -> None:
    """A verdict (verdict.json, `Verdict.to_dict()`) has the shape the report reads; checked
    before anything is drawn, so a bad file leaves no half-written report behind."""
    if not isinstance(verdict, dict):
        raise UsageError(f"{where}: not a verdict (a JSON {type(verdict).__name__}, not an "
                         "object); run `cyrus-loadtest gate` again")
    results = verdict.get("results", [])
    if not isinstance(results, list) or not all(
            isinstance(r, dict) and {"metric", "threshold", "status"} <= r.keys()
            for r in results):
        raise UsageError(f"{where}: \"results\" is not a list of rule results; run "
                         "`cyrus-loadtest gate` again")
    if not isinstance(verdict.get("counts", {}), dict):
        raise UsageError(f"{where}: \"counts\" is not an object; run `cyrus-loadtest gate` again")
