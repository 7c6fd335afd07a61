"""The layers of loadtest/ (docs/architecture.md): a unit may import only from layers below it.

A unit is a package (`loadtest/gate/`) or a top-level module (`loadtest/users.py`). Every import
counts, also the lazy ones inside functions: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "loadtest"

# Bottom first. A unit may import units of strictly lower layers (and itself).
LAYERS: list[set[str]] = [
    {"__init__", "errors"},                   # version, format version, exit codes
    {"paths", "tomllines", "safety", "settings", "scenario_catalogue"},  # generic helpers with
                                              # no Cyrus knowledge; the scenarios as plain data
    {"core"},                                 # run model: series, steps, run folder, parsers, credentials,
                                              # IMAP on the wire (imapwire)
    {"deploy"},                               # disposable Cyrus deployments
    {"imap"},                                 # timed IMAP sessions
    {"collectors", "integrity"},              # signals on a fixed clock; the mail-integrity audit
    {"faults", "gate", "agent"},              # fault injectors; rules and verdicts; the agent
    {"report", "comparison"},                 # the offline report; two runs side by side
    {"webui"},                                # the Locust web UI (its downloads use the report)
    {"run"},                                  # one run's folder and options
    {"batch"},                                # step statistics to Locust and the gate in batches
    {"driver", "locustrun"},                  # the multiplexed connections' loop on the gevent hub;
                                              # a run under Locust by concern (options, assembly,
                                              # workers, lifecycle, the per-environment controller)
    {"plugin"},                               # the one module wiring Locust events
    {"users"},                                # Locust users
    {"shapes"},                               # load shapes (phases of user classes)
    {"scenarios", "bench", "acceptance", "integrity_user"},  # scenarios, orchestrations, users in phases
    {"scenario_cli", "options_cli", "compare_cli", "cyrus_build", "cli"},  # entry points
]


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_unit(package: Path, name: str) -> bool:
    return (package / f"{name}.py").exists() or (package / name / "__init__.py").exists()


def import_graph(package: Path = PACKAGE) -> dict[str, set[tuple[str, str]]]:
    """unit -> {(imported unit, 'file:line')} for every import of another loadtest unit."""
    graph: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).with_suffix("")
        source_unit = _unit(".".join(p for p in rel.parts if p != "__init__"))
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module == "loadtest":  # a submodule, or a name of loadtest/__init__.py
                    targets = [f"loadtest.{alias.name}" if _is_unit(package, alias.name)
                               else "loadtest" for alias in node.names]
                else:
                    targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                if target == "loadtest" or target.startswith("loadtest."):
                    imported = _unit(target)
                    if imported != source_unit:
                        where = f"{path.relative_to(package.parent)}:{node.lineno}"
                        graph[source_unit].add((imported, where))
    return graph


def _layer_of(unit: str) -> int:
    for index, layer in enumerate(LAYERS):
        if unit in layer:
            return index
    raise AssertionError(f"loadtest unit {unit!r} is in no layer: add it to LAYERS here and to "
                         f"docs/architecture.md")


def test_every_unit_has_a_layer() -> None:
    units = {_unit("loadtest." + p.stem) for p in PACKAGE.glob("*.py")}
    units |= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    for unit in sorted(units):
        _layer_of(unit)


def test_no_unit_imports_upward_or_sideways() -> None:
    wrong = []
    for unit, imports in import_graph().items():
        for imported, where in sorted(imports):
            if _layer_of(imported) >= _layer_of(unit):
                wrong.append(f"{where}: {unit} (layer {_layer_of(unit)}) imports {imported} "
                             f"(layer {_layer_of(imported)})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


@pytest.mark.parametrize("lower", ["core", "deploy", "imap"])
def test_lower_layers_import_neither_locust_nor_gevent(lower: str) -> None:
    # The model and the Cyrus/IMAP edges must run outside Locust (the offline gate, the CLI).
    found = []
    for path in (PACKAGE / lower).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            found += [f"{path.name}:{node.lineno} {n}" for n in names
                      if n.split(".")[0] in {"locust", "gevent"}]
    assert not found


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    # The check above must be able to fail: a core module importing the gate is reported.
    package = tmp_path / "loadtest"
    (package / "core").mkdir(parents=True)
    (package / "gate").mkdir()
    for init in (package / "__init__.py", package / "core" / "__init__.py",
                 package / "gate" / "__init__.py"):
        init.write_text("")
    (package / "core" / "model.py").write_text("def f():\n    from loadtest.gate import rules\n")
    graph = import_graph(package)
    assert graph == {"core": {("gate", "loadtest/core/model.py:2")}}
    assert _layer_of("gate") > _layer_of("core")
