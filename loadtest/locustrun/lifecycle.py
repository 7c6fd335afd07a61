"""A run's lifecycle on the master or local runner: start (collectors, faults, the flusher),
stop (between runs of the web UI too), and the end (the gate in-process, the measurements,
Locust's own statistics as JSON, CSV and HTML in the run folder)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from locust.env import Environment

    from loadtest.run import Run

FLUSH_INTERVAL_S = 1.0


def start(run: Run, **info: Any) -> None:
    """run.json says the run is running (with ``info``: what it really uses), then collectors,
    faults and the flusher start with the load."""
    import gevent

    run.recorder.start = run.recorder.start or time.time()
    run.write_info(start=run.recorder.start, status="running", **info)
    if run.collectors is not None:
        run.collectors.start()
    if run.faults is not None:
        run.faults.start()
    run.flusher = gevent.spawn(_flush_every_second, run)


def _flush_every_second(run: Run) -> None:
    """Per-second step series and the store reach the folder every second: a killed run loses
    at most a second."""
    import gevent

    from loadtest.core.eventlog import EventLog, check_run

    event_log = EventLog()  # stalls, gaps and faults as log lines (Locust's Logs tab)
    while True:
        gevent.sleep(FLUSH_INTERVAL_S)
        run.recorder.emit_per_second(run.store, before=time.time() - 2)
        write_measurements(run)
        check_run(event_log, run)


def write_measurements(run: Run) -> None:
    """The series, events and step statistics (steps.json: so the offline gate of a killed run
    judges what was measured) into the folder."""
    from loadtest.core.series import EVENTS_FILE, SERIES_FILE
    from loadtest.core.steps import STEPS_FILE

    run.write_artifact(f"{SERIES_FILE}, {EVENTS_FILE}", lambda: run.store.flush(run.folder))
    run.write_artifact(STEPS_FILE, lambda: run.recorder.save(run.folder))


def stop(run: Run) -> None:
    """Faults undone, collectors stopped, the phase closed; between runs (the web UI's /stop)
    nothing is measured: the flusher rests until the next start, after writing what the run
    measured."""
    if run.faults is not None:
        run.faults.stop()
    if run.collectors is not None:
        run.collectors.stop()
    run.set_phase(None)
    if run.info.get("status") == "running":
        # Where the load ended (the report's time axis ends here, not when Locust quits).
        run.write_info(load_end=time.time(), status="stopped")
    if run.flusher is not None:
        run.flusher.kill(block=False)
        run.flusher = None
        write_measurements(run)


def finish(run: Run, environment: Environment) -> None:
    """Stop everything, evaluate the gate in-process, set the exit code, write the artifacts."""
    stop(run)
    run.recorder.end = time.time()
    run.recorder.emit_per_second(run.store)
    run.store.close_open_events(run.recorder.end)  # a stall that never recovered ends now
    for hook in run.before_gate:
        hook()
    status = "finished"
    if run.rules is not None:
        from loadtest.core.runfolder import JUNIT_FILE, VERDICT_FILE
        from loadtest.gate.evaluate import evaluate
        from loadtest.gate.output import print_verdict, write_outputs

        # Evaluated in memory: the verdict and exit code stand even if no file can be written.
        verdict = evaluate(run.rules, run.recorder, run.store, run.baseline,
                           run=run.folder.name if run.baseline else None)
        print_verdict(verdict)
        environment.process_exit_code = verdict.exit_code
        status = f"gate {verdict.status}"
        run.write_artifact(f"{VERDICT_FILE}, {JUNIT_FILE}",
                           lambda: write_outputs(verdict, run.folder))
    # no gate: Locust's own exit code (1 when any request failed)
    write_measurements(run)
    run.write_artifact("locust_stats.json, locust_*.csv",
                       lambda: write_locust_stats(environment, run.folder))
    html = run.locust_html
    if html is not None:
        run.write_artifact(html.name, lambda: write_locust_html(environment, html))
    run.write_info(end=run.recorder.end, status=status)
    if line := run.unwritten_line():
        print(line, file=sys.stderr, flush=True)


def write_locust_html(environment: Environment, path: Path) -> None:
    """Locust's HTML report into the run folder (written here, not by Locust, so that a folder
    that cannot take it is one line among the unwritten artifacts, not a traceback)."""
    from locust.html import get_html_report

    from loadtest.paths import atomic_write

    atomic_write(path, get_html_report(environment, show_download_link=False))


def write_locust_stats(environment: Environment, folder: Path) -> None:
    """Locust's own statistics (JSON and CSV) in the run folder."""
    import csv
    import json

    from locust import stats as locust_stats

    assert environment.runner is not None
    stats = environment.runner.stats
    # Not stats.serialize_stats(): it resets every entry (it serves worker reports).
    entries = [entry.serialize() for entry in stats.entries.values()]
    (folder / "locust_stats.json").write_text(json.dumps(entries, indent=1))
    writer = locust_stats.StatsCSV(environment, locust_stats.PERCENTILES_TO_REPORT)
    for name, write in (("locust_stats.csv", writer.requests_csv),
                        ("locust_failures.csv", writer.failures_csv),
                        ("locust_exceptions.csv", writer.exceptions_csv)):
        with open(folder / name, "w", newline="") as fh:
            write(csv.writer(fh))
