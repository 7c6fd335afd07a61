"""The per-environment controller and the pieces of a run under Locust that need no Locust run:
state on the environment, worker steps to the master, the collectors' configuration."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from locust.env import Environment
from locust.event import Events

from loadtest import run as run_options
from loadtest.deploy.deployment import Deployment
from loadtest.errors import UsageError
from loadtest.imap.config import build_config
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


def _finished_run(tmp_path: Path, rules_text: str) -> tuple[run_options.Run, Environment]:
    from loadtest.gate.rules import parse_rules
    from loadtest.locustrun import lifecycle

    environment = Environment(events=Events())
    environment.create_local_runner()
    folder = tmp_path / "run"
    folder.mkdir()
    run = run_options.Run(folder)
    run.rules = parse_rules(rules_text)
    for ms in (5.0, 7.0, 400.0):
        run.recorder.on_request("IMAP", "LOGIN", ms, False)
    audited: list[str] = []
    run.before_gate.append(lambda: audited.append("before the gate"))
    lifecycle.finish(run, environment)
    assert audited == ["before the gate"]
    return run, environment


def test_the_end_of_a_run_judges_the_gate_and_writes_every_artifact(tmp_path: Path) -> None:
    run, environment = _finished_run(tmp_path, '[[rule]]\nmetric = "LOGIN.max_ms"\nmax = 100\n')
    assert environment.process_exit_code == 1
    info = json.loads((run.folder / "run.json").read_text())
    assert info["status"] == "gate fail" and info["end"] == run.recorder.end
    verdict = json.loads((run.folder / "verdict.json").read_text())
    assert verdict["status"] == "fail"
    names = {p.name for p in run.folder.iterdir()}
    assert {"junit.xml", "steps.json", "locust_stats.json", "locust_stats.csv",
            "locust_failures.csv", "locust_exceptions.csv"} <= names
    assert "locust_report.html" not in names  # only when the run folder holds Locust's report


def test_a_passing_gate_exits_zero(tmp_path: Path) -> None:
    run, environment = _finished_run(tmp_path, '[[rule]]\nmetric = "LOGIN.max_ms"\nmax = 1000\n')
    assert environment.process_exit_code == 0
    assert json.loads((run.folder / "run.json").read_text())["status"] == "gate pass"


def _deployment(tmp_path: Path) -> Deployment:
    from loadtest.deploy.deployment import FORMAT_VERSION, InstanceInfo

    d = str(tmp_path / "slot1")
    users = tmp_path / "users.csv"
    users.write_text("username,password\nu1,pw1\n")
    instance = InstanceInfo(name="slot1", host="127.0.0.1", port=1143, root=d, imapd_conf=d,
                            cyrus_conf=d, config_dir=d, data_dir=d, proc_dir=d, lock_dir=d,
                            stats_file=d, pid_file=d, log_file=d, master_log=d,
                            users_file=str(users))
    deployment = Deployment(root=str(tmp_path), instances=[instance], users_file=str(users),
                            admin_user="admin", admin_password_file=str(tmp_path / "admin"),
                            version=FORMAT_VERSION)
    deployment.save()
    return deployment


def test_the_run_keeps_the_deployment_it_loads(tmp_path: Path) -> None:
    """Locustfiles read it (lock-file churn warns when an instance lives on tmpfs)."""
    _deployment(tmp_path)
    settings = resolve({"deployment": str(tmp_path), "collectors": "none",
                        "artifacts": str(tmp_path / "artifacts"), "run_name": "r1"})
    run = assembly.build_run(settings, build_config(settings))
    assert run.folder == tmp_path / "artifacts" / "r1" and run.folder.is_dir()
    assert run.deployment is not None and run.deployment.root == str(tmp_path)
    assert [i.name for i in run.deployment.instances] == ["slot1"]
    assert run.collectors is None and run.faults is None and run.rules is None


def test_faults_against_a_remote_target_are_refused_before_the_run_folder(tmp_path: Path) -> None:
    settings = resolve({"imap_host": "127.0.0.1", "imap_user_pattern": "u{n}",
                        "imap_password": "pw", "faults": "stall-master:at=1,duration=1",
                        "artifacts": str(tmp_path / "artifacts")})
    with pytest.raises(UsageError, match="--faults needs a local test deployment"):
        assembly.build_run(settings, build_config(settings))
    assert not (tmp_path / "artifacts").exists()
