"""The per-environment controller and the pieces of a run under Locust that need no Locust run:
state on the environment, worker steps to the master, the collectors' configuration."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from loadtest import run as run_options
from loadtest.errors import UsageError
from loadtest.locustrun import assembly
from loadtest.locustrun.controller import controller_of, live_controllers
from loadtest.locustrun.workers import STEPS_REPORT_KEY, WorkerSteps
from loadtest.settings import resolve


def _environment(client_id: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(runner=SimpleNamespace(client_id=client_id), parsed_options=None,
                           user_classes=[])


def test_each_environment_has_its_own_controller_registered_on_it() -> None:
    first, second = _environment(), _environment()
    controller = controller_of(first)
    assert first.cyrus_loadtest is controller
    assert controller_of(first) is controller
    assert controller_of(second) is not controller
    assert controller in live_controllers()
    assert controller.run is None and controller.settings is None


def test_a_workers_steps_reach_the_masters_run_through_the_report(tmp_path: Path) -> None:
    worker_env, master_env = _environment("worker-1"), _environment()
    worker = controller_of(worker_env)
    worker.worker = WorkerSteps()
    worker.worker.recorder.on_request("IMAP", "LOGIN", 12.0, False, t=100.0)
    worker.worker.recorder.on_request("IMAP", "LOGIN", 30.0, True, t=100.5)
    master = controller_of(master_env)
    master.run = run_options.Run(tmp_path)

    other: dict[str, object] = {}
    worker.report_to_master("worker-2", other)  # another worker's report: not ours
    assert other == {}
    report: dict[str, object] = {}
    worker.report_to_master("worker-1", report)
    assert STEPS_REPORT_KEY in report
    master.merge_worker_report(report)  # type: ignore[arg-type]

    login = master.run.recorder.select("LOGIN")
    assert (login.count, login.failures) == (2, 1)
    # drained: the next report carries nothing more
    worker.report_to_master("worker-1", report)
    master.merge_worker_report(report)  # type: ignore[arg-type]
    assert master.run.recorder.select("LOGIN").count == 2


def test_collectors_none_turns_them_off() -> None:
    settings = resolve({"collectors": "none"})
    assert assembly.collector_settings(settings, remote=False) == (None, False)


def test_a_remote_target_gets_the_collectors_that_reach_it() -> None:
    config, collect = assembly.collector_settings(resolve({}), remote=True)
    assert collect and config is not None
    assert list(config.collectors) == ["probe", "machine"]  # master needs --metrics-url
    config, _ = assembly.collector_settings(
        resolve({"metrics_url": "http://127.0.0.1:9/metrics"}), remote=True)
    assert config is not None and list(config.collectors) == ["probe", "master", "machine"]


def test_a_bad_collector_value_names_its_source() -> None:
    settings = resolve({"collectors": "probe,bogus"}, {"collectors": "env LOADTEST_COLLECTORS"})
    with pytest.raises(UsageError, match="bogus.*LOADTEST_COLLECTORS|LOADTEST_COLLECTORS.*bogus"):
        assembly.collector_settings(settings, remote=False)
