"""Each scenario declared once (loadtest.scenario_catalogue): the CLI and the shape read the same
declaration, and the catalogue is plain data that needs no Locust."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest import scenarios
from loadtest.faults.spec import parse_faults
from loadtest.scenario_catalogue import SCENARIOS, SOAK_HARD_CAP, Scenario

REPO = Path(__file__).resolve().parents[2]

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
    shapes = [cls for cls in vars(scenarios).values() if isinstance(cls, type)
              and issubclass(cls, scenarios.ScenarioShape) and cls.__dict__.get("scenario") is scenario]
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
    assert (REPO / "fixtures" / "gates" / scenario.gate_file).is_file()
    if scenario.compare_gate:
        assert (REPO / "fixtures" / "gates" / scenario.compare_gate).is_file()
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
