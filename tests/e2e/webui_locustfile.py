"""Locustfile for the web UI browser test: churn and held-session users, collectors and the
server tab, wired here until loadtest/plugin.py wires collectors and the gate itself.

    locust -f tests/e2e/webui_locustfile.py --deployment DIR

Env WEBUI_TEST_GATE: gate rules file (default fixtures/gates/default.toml); env
WEBUI_TEST_ARTIFACTS: where collectors flush series.jsonl / events.jsonl (default: nowhere).
"""

from __future__ import annotations

import os
from typing import Any

from locust import events
from locust.runners import WorkerRunner

from loadtest import plugin
from loadtest.collectors import CollectorConfig, CollectorSet, SeriesStore
from loadtest.deploy.deployment import load_deployment
from loadtest.gate.steps import StepRecorder, locust_listener
from loadtest.paths import fixtures_dir
from loadtest.users import ChurnUser, HeldSessionUser  # noqa: F401 - the users Locust runs
from loadtest.webui import install

GATE = os.environ.get("WEBUI_TEST_GATE") or str(fixtures_dir() / "gates" / "default.toml")


@events.init.add_listener
def wire_server_tab(environment: Any, **_kwargs: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return  # collectors and the tab live on the master (or the local runner)
    plugin_run = plugin.run_of(environment) if hasattr(plugin, "run_of") else None
    if plugin_run is not None:
        # The plugin already runs collectors and records steps: show its store and recorder.
        install(environment, store=lambda: plugin_run.store,
                rules=lambda: plugin_run.rules or GATE, steps=lambda: plugin_run.recorder)
        return
    run: dict[str, Any] = {"store": None, "steps": None, "collectors": None}
    install(environment, store=lambda: run["store"], rules=GATE, steps=lambda: run["steps"])

    def on_request(**kwargs: Any) -> None:
        if run["steps"] is not None:
            locust_listener(run["steps"])(**kwargs)

    def on_test_start(**_kw: Any) -> None:
        settings = plugin.settings_of(environment)
        deployment = load_deployment(settings["deployment"], settings.source("deployment"))
        run["store"] = SeriesStore()
        run["steps"] = StepRecorder(per_second=False)
        run["steps"].start = None
        config = CollectorConfig().updated({"probe_rate": 2}, source="tests/e2e/webui_locustfile.py")
        run["collectors"] = CollectorSet.from_deployment(
            deployment, run["store"], config, artifacts=os.environ.get("WEBUI_TEST_ARTIFACTS"))
        run["collectors"].start()

    def on_test_stop(**_kw: Any) -> None:
        if run["collectors"] is not None:
            run["collectors"].stop()

    environment.events.request.add_listener(on_request)
    environment.events.test_start.add_listener(on_test_start)
    environment.events.test_stop.add_listener(on_test_stop)
