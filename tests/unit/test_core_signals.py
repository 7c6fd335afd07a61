"""The registry of sample sources and signals (loadtest.core.signals) and what derives from it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from loadtest.collectors.collectorset import FACTORIES, CollectorSet, collector
from loadtest.collectors.config import CollectorConfig
from loadtest.collectors.samplers import Target
from loadtest.core import signals as reg
from loadtest.core.parsers import MASTER_METRICS
from loadtest.core.series import SeriesStore
from loadtest.core.steps import (
    STEP_FAILURES_SIGNAL,
    STEP_P50_SIGNAL,
    STEP_P95_SIGNAL,
    STEP_RATE_SIGNAL,
)
from loadtest.report.plots import PANELS
from loadtest.webui.payload import CHARTS

PACKAGE = Path(__file__).resolve().parents[2] / "loadtest"


def test_collector_lists_derive_from_the_sources() -> None:
    assert reg.COLLECTORS == ("probe", "master", "processes", "backlog", "machine", "canary",
                              "errors", "inodes", "replication")
    assert reg.DEFAULT_COLLECTORS == ("probe", "master", "processes", "backlog", "machine",
                                      "canary", "errors", "replication")
    assert reg.AGENT_COLLECTORS == ("master", "processes", "backlog", "machine", "canary")
    assert CollectorConfig().collectors == reg.DEFAULT_COLLECTORS
    assert reg.collectors_help() == (
        "server-side collectors to run: probe,master,processes,backlog,machine,canary,errors,"
        "inodes,replication, or none (default: all but inodes)")


def test_every_signal_is_declared_once_with_a_known_kind_and_unit() -> None:
    names = [sig.name for source in reg.SOURCES for sig in source.signals]
    assert len(names) == len(set(names)) == len(reg.SIGNALS)
    for sig in reg.SIGNALS.values():
        assert sig.kind in reg.KINDS, sig
        assert sig.unit in ("ms", "s", "/s", "%", ""), sig
        assert sig.label, sig
    assert reg.GATED_SIGNALS["greeting_latency_ms"] == reg.LATENCY
    assert reg.GATED_SIGNALS["listen_overflows"] == reg.COUNTER
    assert "log_errors_total" in reg.SIGNALS and "log_errors_total" not in reg.GATED_SIGNALS
    assert reg.label("ready_workers") == "ready workers" and reg.label("undeclared") == "undeclared"


def test_panels_and_charts_are_drawn_from_the_declarations() -> None:
    assert reg.drawn_on(panel="greeting-vs-held") == (
        "greeting_latency_ms", "connect_latency_ms", "login_latency_ms", "held_noop_latency_ms")
    assert reg.drawn_on(chart="workers") == ("ready_workers", "imapd_processes")
    panels = {p.name for p in PANELS}
    charts = {c.key for c in CHARTS}
    for sig in reg.SIGNALS.values():
        assert sig.panel is None or sig.panel in panels, sig
        assert sig.chart is None or sig.chart in charts, sig
    assert all(p.signals for p in PANELS) and all(c.lines for c in CHARTS)
    spawns = next(p for p in PANELS if p.name == "spawns")
    assert spawns.signals == ("spawns_per_s", "process_spawns", "process_exits")
    assert spawns.right == ("host_forks_per_s",)
    latency = next(c for c in CHARTS if c.key == "latency").to_dict()
    assert latency["unit"] == "ms"
    assert latency["lines"] == [{"signal": "greeting_latency_ms", "label": "greeting (probe)"},
                                {"signal": "held_noop_latency_ms", "label": "held-session NOOP"}]


def _written_signal_names() -> set[str]:
    """Literal first arguments of ``X.add("name", ...)`` in the modules that record samples."""
    names = set()
    for folder in ("collectors", "agent", "faults"):
        for path in (PACKAGE / folder).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr == "add" and node.args
                        and isinstance(node.args[0], ast.Constant)
                        and isinstance(node.args[0].value, str)):
                    names.add(node.args[0].value)
    return names


def test_every_recorded_signal_is_declared() -> None:
    written = _written_signal_names()
    assert {"heartbeat_age_s", "rotation", "spawns_per_s", "log_errors_total"} <= written
    written |= set(MASTER_METRICS.values())
    written |= {STEP_RATE_SIGNAL, STEP_FAILURES_SIGNAL, STEP_P50_SIGNAL, STEP_P95_SIGNAL}
    assert sorted(written - set(reg.SIGNALS)) == []


def test_every_collector_has_its_samplers_and_nothing_else_does() -> None:
    assert set(FACTORIES) == set(reg.COLLECTORS)
    with pytest.raises(ValueError, match="collector 'nfs' is not declared"):
        collector("nfs")


def _target(name: str, tmp: Path, log_file: str = "") -> Target:
    return Target(name=name, host="127.0.0.1", port=1, pid_file="/nonexistent", master_pid=None,
                  stats_file="/nonexistent", data_dir=str(tmp), proc_dir=str(tmp),
                  listen_backlog=None, log_file=log_file)


def test_a_collector_set_makes_the_chosen_samplers_in_order(tmp_path: Path) -> None:
    a, b = _target("a", tmp_path, log_file=str(tmp_path / "log")), _target("b", tmp_path)
    every = CollectorConfig(collectors=reg.COLLECTORS)
    cs = CollectorSet([a, b], SeriesStore(), every, replicas=[(a, b, "s1")])
    assert [(s.name, getattr(s, "instance", None)) for s in cs.samplers] == [
        ("machine", None),
        ("master", "a"), ("processes", "a"), ("backlog", "a"), ("canary_data", "a"),
        ("canary_proc", "a"), ("errors", "a"), ("inodes", "a"),
        ("master", "b"), ("processes", "b"), ("backlog", "b"), ("canary_data", "b"),
        ("canary_proc", "b"), ("inodes", "b"),  # b has no log file: no error counter
        ("replication", None),
    ]
    assert [p.target.name for p in cs.probes] == ["a", "b"]
    only = CollectorSet([a], SeriesStore(), CollectorConfig(collectors=("canary",)))
    assert [s.name for s in only.samplers] == ["canary_data", "canary_proc"] and not only.probes
