"""Scenario plans, each scenario's declaration (the CLI and the shape read the same one; plain
data, no Locust), the soak's process budget, the scenario gate files, and the gate naming the
injected fault a failure coincides with: all on literal data."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest import scenarios
from loadtest.core.series import SeriesStore
from loadtest.core.steps import StepRecorder
from loadtest.deploy.deployment import Deployment, InstanceInfo
from loadtest.faults.spec import parse_faults
from loadtest.gate.evaluate import FAIL, PASS, evaluate
from loadtest.gate.rules import load_rules, parse_rules
from loadtest.report.synthetic import T0
from loadtest.scenario_catalogue import SCENARIOS, SOAK_HARD_CAP, Scenario
from loadtest.scenarios import (
    BulkWaveUser,
    LockFileSessionUser,
    ProcessChurnShape,
    RushLoginUser,
    Sizes,
    StormUser,
    measured_imapd_bytes,
    plan_binary_rotation,
    plan_churn_after_warm_up,
    plan_konstanz_2016,
    plan_lockfile_churn,
    plan_morning_rush,
    plan_process_churn,
    plan_reconnect_storm,
    process_budget,
    wave_period,
)
from loadtest.users import ChurnUser, HeldSessionUser

REPO = Path(__file__).resolve().parents[2]
GATES = REPO / "fixtures" / "gates"


# name: (duration, users, held, provision users, service options): each scenario's defaults.
DEFAULTS = {
    "morning-rush": (180, 20, 20, 100, {}),
    "reconnect-storm": (150, 8, 10, 100, {}),
    "konstanz-2016": (120, 8, 1000, 1000, {"imapd_reuse": 1, "maxchild": 2000}),
    "process-churn": (600, 8, 12_000, 200, {"imapd_reuse": 1, "maxchild": 12_100}),
    "binary-rotation": (120, 6, 40, 100, {"imapd_binary": "symlink", "imapd_reuse": 5}),
    "lockfile-churn": (120, 10, 4, 100, {}),
    "stores-and-slots": (120, 8, 8, 100, {}),
}


def shape_of(scenario: Scenario) -> type[scenarios.ScenarioShape]:
    shapes = [cls for cls in vars(scenarios).values()
              if isinstance(cls, type) and issubclass(cls, scenarios.ScenarioShape)
              and cls.__dict__.get("scenario") is scenario]
    assert len(shapes) == 1, (scenario.name, shapes)
    return shapes[0]


def test_the_scenarios_and_their_defaults() -> None:
    assert {name: (s.duration, s.users, s.held, s.provision_users, s.options)
            for name, s in SCENARIOS.items()} == DEFAULTS
    assert all(name == s.name for name, s in SCENARIOS.items())
    assert SCENARIOS["process-churn"].held == SOAK_HARD_CAP == scenarios.SOAK_HARD_CAP


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_shape_without_options_plans_with_the_declared_defaults(name: str) -> None:
    scenario = SCENARIOS[name]
    shape = shape_of(scenario)()  # no runner: no options, the defaults
    assert shape.sizes() == scenarios.Sizes(scenario.duration, scenario.users, scenario.held)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_locustfile_runs_the_scenarios_shape_and_its_gate_exists(name: str) -> None:
    scenario = SCENARIOS[name]
    locustfile = REPO / "locustfiles" / scenario.locustfile
    imported = {alias.name for node in ast.walk(ast.parse(locustfile.read_text()))
                if isinstance(node, ast.ImportFrom) and node.module == "loadtest.scenarios"
                for alias in node.names}
    shapes = {n for n in imported if issubclass(getattr(scenarios, n), scenarios.ScenarioShape)}
    assert shapes == {shape_of(scenario).__name__}
    assert (GATES / scenario.gate_file).is_file()
    if scenario.compare_gate:
        assert (GATES / scenario.compare_gate).is_file()
    if scenario.topology:
        assert (REPO / "fixtures" / "topologies" / scenario.topology).is_file()


@pytest.mark.parametrize("name", [n for n, s in SCENARIOS.items() if s.faults])
def test_a_scenarios_own_faults_parse(name: str) -> None:
    assert parse_faults(list(SCENARIOS[name].faults), f"scenario {name}")


def test_the_catalogue_and_the_scenario_command_import_no_locust() -> None:
    code = ("import sys, loadtest.scenario_catalogue, loadtest.scenario_cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO)
    assert out.stdout.strip() == "[]"


def contiguous(phases) -> bool:
    return all(a.end == b.start for a, b in zip(phases, phases[1:], strict=False))


def test_morning_rush_ramps_rush_users_on_top_of_held_sessions() -> None:
    phases = plan_morning_rush(Sizes(100, 20, 10))
    assert [p.name for p in phases] == ["at-work", "rush-ramp", "peak"]
    assert contiguous(phases) and phases[0].start == 0 and phases[-1].end == 100
    at_work, ramp, peak = phases
    assert at_work.user_classes == (HeldSessionUser,) and at_work.users == 10
    assert ramp.user_classes == (RushLoginUser,)
    assert ramp.users_at(ramp.start) == 10 and ramp.users_at((ramp.start + ramp.end) / 2) == 20
    assert ramp.users_at(ramp.end) == 30 and peak.users == 30


def test_reconnect_storm_adds_then_removes_storm_users() -> None:
    settle, steady, storm, after = plan_reconnect_storm(Sizes(100, 4, 6))
    assert (settle.users, steady.users, storm.users, after.users) == (6, 10, 14, 10)
    assert steady.user_classes == (ChurnUser,) and storm.user_classes == (StormUser,)
    assert storm.end - storm.start == pytest.approx(45)


def test_konstanz_2016_arrives_fast_storms_is_interrupted_recovers_and_leaves() -> None:
    from loadtest.scenario_catalogue import KONSTANZ_WINDOW_S

    phases = plan_konstanz_2016(Sizes(120, 8, 1000))
    assert [p.name for p in phases] == ["arrive", "steady", "storm", "interrupted", "recovery",
                                        "leave"]
    assert contiguous(phases) and phases[0].start == 0 and phases[-1].end == pytest.approx(120)
    arrive, steady, storm, interrupted, recovery, leave = phases
    assert arrive.users == 1000 and arrive.spawn_rate >= 100  # the rush: >= 100 new sessions/s
    assert arrive.user_classes == (HeldSessionUser,) and steady.user_classes == (ChurnUser,)
    assert (storm.users, interrupted.users, recovery.users, leave.users) == (1016, 1016, 1008, 0)
    assert storm.user_classes == interrupted.user_classes == (StormUser,)
    assert interrupted.end - interrupted.start == KONSTANZ_WINDOW_S  # the fault's window
    assert leave.spawn_rate >= 1016  # every session ends at once
    short = plan_konstanz_2016(Sizes(20, 4, 100))  # too short: the phases keep their minimum
    assert short[-1].end - short[-1].start >= scenarios.LEAVE_MIN_S
    assert short[0].spawn_rate >= 100


def test_process_churn_fills_churns_then_waves() -> None:
    fill, soak, bulk, end = plan_process_churn(Sizes(60, 4, 400))
    assert (fill.users, soak.users, bulk.users, end.users) == (300, 304, 404, 0)  # 1/4 in waves
    assert fill.spawn_rate <= 50 and bulk.spawn_rate <= 50  # one fork per connection
    assert end.spawn_rate >= 404  # every session ends at once: all imapds exit together
    assert (soak.user_classes, bulk.user_classes) == ((ChurnUser,), (BulkWaveUser,))
    assert (fill.end, soak.end, bulk.end, end.end) == (15, 30, 54, 60)
    assert plan_process_churn(Sizes(600, 4, 400))[-1].start == 585  # 15 s to watch the exits
    assert wave_period(600) == 30 and wave_period(20) == 5 and wave_period(80) == 10
    warm, churn = plan_churn_after_warm_up(Sizes(50, 3, 2), "all-slots", "held")
    assert (warm.name, warm.end, churn.name, churn.users) == ("held", 10, "all-slots", 5)


def test_scenario_users_run_only_their_own_task() -> None:
    # Locust would add the base class's task (plain churn, plain hold) beside theirs.
    assert LockFileSessionUser.tasks == [LockFileSessionUser.churn]
    assert BulkWaveUser.tasks == [BulkWaveUser.hold]


def test_lockfile_churn_has_a_quiet_baseline_then_lock_file_sessions() -> None:
    baseline, churn = plan_lockfile_churn(Sizes(50, 3, 2))
    assert (baseline.name, baseline.end, baseline.users) == ("baseline", 15, 2)
    assert (churn.name, churn.users, churn.user_classes) == ("churn", 5, (LockFileSessionUser,))


class FakeSettings(dict):
    def source(self, name: str) -> str:
        return f"test {name}"


def deployment_with_maxchild(root: Path, *maxchild: int | None) -> Deployment:
    instances = []
    for n, value in enumerate(maxchild, 1):
        paths = {k: str(root / f"s{n}" / k) for k in (
            "root", "imapd_conf", "cyrus_conf", "config_dir", "data_dir", "proc_dir", "lock_dir",
            "stats_file", "pid_file", "log_file", "master_log", "users_file")}
        options = {} if value is None else {"maxchild": value}
        instances.append(InstanceInfo(name=f"s{n}", host="127.0.0.1", port=1430 + n,
                                      options=options, **paths))
    deployment = Deployment(str(root), instances, str(root / "users.csv"), "admin",
                            str(root / "admin.pw"))
    deployment.save()
    return deployment


@pytest.mark.parametrize("maxchild, expected_held", [
    ((700,), 700 - 8 - 10),  # the deployment's maxchild, less churn users and slack
    ((3000, 450), 450 - 8 - 10),  # the smallest instance's
    ((None,), 400 - 8 - 10),  # what deploy up renders when the option is absent
])
def test_process_churn_plan_is_bounded_by_the_deployments_maxchild(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, maxchild: tuple[int | None, ...],
        expected_held: int) -> None:
    deployment = deployment_with_maxchild(tmp_path, *maxchild)
    settings = FakeSettings(deployment=str(deployment.path), scenario_users=8,
                            scenario_duration=100.0, scenario_held=None)
    monkeypatch.setattr(ProcessChurnShape, "settings", lambda self: settings)
    monkeypatch.setattr(scenarios, "machine_limits", lambda: (1 << 40, 1 << 20))
    _fill, _soak, bulk, _exit = ProcessChurnShape().plan()
    assert bulk.users - 8 == expected_held  # every held and wave session a live imapd
    settings["imap_host"] = "mail.example.org"  # remote: only the machine bounds it
    assert ProcessChurnShape().plan()[2].users - 8 == scenarios.SOAK_HARD_CAP - 8 - 10


def test_measured_imapd_bytes_is_none_without_imapds() -> None:
    assert measured_imapd_bytes([]) is None
    assert measured_imapd_bytes([os.getpid()]) is None  # pytest has no imapd children


def test_binary_rotation_starts_with_churn_then_held_sessions_join_during_rotation() -> None:
    churn, rotation = plan_binary_rotation(Sizes(100, 6, 40))
    assert (churn.name, churn.user_classes, churn.users, churn.end) == ("churn", (ChurnUser,), 6, 15)
    assert rotation.name == "rotation" and rotation.user_classes == (HeldSessionUser,)
    # One by one over the phase, so their imapds are spawned at different link targets.
    assert rotation.users_at(rotation.start) == 6 and rotation.users_at(rotation.end) == 46
    assert 20 <= rotation.users_at((rotation.start + rotation.end) / 2) <= 32


@pytest.mark.parametrize("maxchild, mem, nofile, cap, expected", [
    (400, 24 << 30, 1 << 20, 500, 390),   # master's maxchild less what churn needs
    (10_000, 24 << 30, 1 << 20, 500, 500),  # the hard cap
    (10_000, 400 << 20, 1 << 20, 500, 50),  # half of 400 MiB at 4 MiB per imapd
    (10_000, 24 << 30, 1024, 1000, 824),  # the generator's sockets (cap raised above them)
    (5, None, None, 500, 1),  # never below one
])
def test_process_budget(maxchild: int, mem: int | None, nofile: int | None, cap: int,
                        expected: int) -> None:
    assert process_budget(maxchild, 10, mem, nofile, cap=cap) == expected


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_gate_files_load(name: str) -> None:
    rules = load_rules(GATES / SCENARIOS[name].gate_file)
    assert rules.rules and rules.name == name


def test_stores_and_slots_gate_judges_every_slot() -> None:
    rules = load_rules(GATES / "stores_and_slots.toml")
    per_instance = {r.instance for r in rules.rules if r.instance}
    assert per_instance == {"slot608", "slot308", "slot908", "slot503"}
    lag = {r.instance for r in rules.rules if r.metric.name == "replication_lag_s.max"}
    assert lag == {"slot608", "slot908"}  # one per store, on its master


def stalled_run(instance: str) -> tuple[StepRecorder, SeriesStore]:
    steps = StepRecorder()
    steps.start, steps.end = T0, T0 + 30
    store = SeriesStore()
    store.event("phase", t=T0 + 10, end=T0 + 30, name="storm")
    for i in range(30):
        for inst in ("s1", "s2"):
            store.add("heartbeat_age_s", 0.5, t=T0 + i, instance=inst)
    store.event("fault", t=T0 + 12, end=T0 + 16, instance=instance, fault="stall-master",
                spec="stall-master:at=12,duration=4")
    store.event("heartbeat_gap", t=T0 + 12.2, end=T0 + 16.1, instance=instance)
    return steps, store


def test_failing_rule_names_the_fault_that_overlaps_it() -> None:
    steps, store = stalled_run("s2")
    text = "\n".join([
        '[[rule]]\nmetric = "heartbeat_gap.longest_s"\nmax = 2.5\ninstance = "s1"',
        '[[rule]]\nmetric = "heartbeat_gap.longest_s"\nmax = 2.5\ninstance = "s2"',
        '[[rule]]\nmetric = "heartbeat_gap.longest_s"\nmax = 2.5\nphase = "storm"',
    ])
    s1, s2, storm = evaluate(parse_rules(text, "t.toml"), steps, store).results
    assert s1.status == PASS and s1.faults == ()
    assert s2.status == FAIL and s2.faults == ("stall-master@s2:at=12,duration=4 (at 12.0 s for 4.0 s)",)
    assert "during injected fault stall-master@s2" in s2.reason
    assert storm.status == FAIL and storm.to_dict()["faults"] == list(s2.faults)


def test_a_fault_outside_the_failing_interval_is_not_named() -> None:
    steps, store = stalled_run("s1")
    for i in range(20):  # failed logins only in the first 5 s, before the fault
        steps.on_request("IMAP", "LOGIN", 5.0, i < 3, "early", None, t=T0 + i * 0.25)
    store.event("phase", t=T0, end=T0 + 5, name="early")
    result = evaluate(parse_rules('[[rule]]\nmetric = "LOGIN.failures"\nmax = 0\n'
                                  'phase = "early"', "t.toml"), steps, store).results[0]
    assert result.status == FAIL and result.faults == () and "injected" not in result.reason


def test_acceptance_shape_plans_again_with_the_options_of_each_start() -> None:
    """The web UI form may change --acceptance-duration between two runs of one Locust."""
    import argparse

    from loadtest.shapes import AcceptanceShape

    class Environment:
        parsed_options = argparse.Namespace(acceptance_duration="90", acceptance_users="10",
                                            acceptance_held="4")

    class Runner:
        environment = Environment()

    shape = AcceptanceShape()
    shape.runner = Runner()
    assert shape.tick() is not None and shape._phases[-1].end == 90
    Environment.parsed_options.acceptance_duration = "20"
    shape.tick()
    assert shape._phases[-1].end == 90  # a run keeps its plan
    shape.reset_time()  # Locust's next start
    shape.tick()
    assert shape._phases[-1].end == 20


def test_a_given_deployment_is_checked_against_the_scenarios_declaration(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from loadtest.errors import UsageError
    from loadtest.scenario_cli import _check_fit

    deployment = deployment_with_maxchild(tmp_path, 700)
    _check_fit("process-churn", SCENARIOS["process-churn"], deployment)
    assert ("instance s1 runs maxchild=700, the scenario expects 12100"
            in capsys.readouterr().out)
    with pytest.raises(UsageError, match="instance s1 does not run imapd through a symlink"):
        _check_fit("binary-rotation", SCENARIOS["binary-rotation"], deployment)
