"""Verdict outputs: JUnit XML with one case per rule (parsed back), verdict.json, the table."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

from junitparser import Error, Failure, JUnitXml
from rich.console import Console

from loadtest.gate.evaluate import evaluate
from loadtest.gate.output import print_verdict, write_outputs
from loadtest.gate.rules import load_rules, parse_rules
from loadtest.report.synthetic import synthetic_run

GATES = Path(__file__).resolve().parents[2] / "fixtures" / "gates"


def verdict_of(gate: str = "example-all.toml"):
    run = synthetic_run()
    return evaluate(load_rules(GATES / gate), run.recorder, run.store)


def test_junit_has_one_case_per_rule_and_parses_back(tmp_path: Path) -> None:
    verdict = verdict_of()
    _json_path, junit_path = write_outputs(verdict, tmp_path)
    # Well-formed XML with the element and attribute names CI systems read.
    root = ET.parse(junit_path).getroot()
    assert root.tag == "testsuites"
    (suite_el,) = root.findall("testsuite")
    cases = suite_el.findall("testcase")
    assert len(cases) == len(verdict.results)
    assert all(c.get("name") and c.get("classname") for c in cases)
    counts = verdict.to_dict()["counts"]
    assert int(suite_el.get("tests")) == len(verdict.results)
    assert int(suite_el.get("failures")) == counts["fail"] > 0
    assert int(suite_el.get("errors")) == counts["inconclusive"] > 0

    xml = JUnitXml.fromfile(str(junit_path))
    (suite,) = list(xml)
    parsed = list(suite)
    assert [c.name for c in parsed] == [r.rule.name for r in verdict.results]
    for case, result in zip(parsed, verdict.results, strict=True):
        outcome = case.result
        if result.status == "pass":
            assert outcome == []
        elif result.status == "fail":
            (failure,) = outcome
            assert isinstance(failure, Failure)
            assert f"measured {result.measured_text}" in failure.message
            assert f"threshold {result.rule.threshold_text}" in failure.message
        else:
            (error,) = outcome
            assert isinstance(error, Error) and error.type == "inconclusive"
    properties = {p.name: p.value for p in suite.properties()}
    assert properties == {"rules_file": str(GATES / "example-all.toml"), "verdict": "fail"}


def test_verdict_json(tmp_path: Path) -> None:
    # CONNECT.max_ms is +inf: the synthetic flood loses some connections.
    text = (GATES / "example-all.toml").read_text() + '[[rule]]\nmetric = "CONNECT.max_ms"\nmax = 5000\n'
    run = synthetic_run()
    verdict = evaluate(parse_rules(text, str(GATES / "example-all.toml")), run.recorder, run.store)
    json_path, _ = write_outputs(verdict, tmp_path)
    data = json.loads(json_path.read_text())  # strict JSON: no Infinity/NaN tokens
    assert "Infinity" not in json_path.read_text() and "NaN" not in json_path.read_text()
    assert [r["measured"] for r in data["results"] if r["metric"] == "CONNECT.max_ms"] == ["inf"]
    assert data["status"] == "fail" and data["exit_code"] == 1
    assert len(data["results"]) == len(verdict.results)
    first = data["results"][0]
    assert {"name", "metric", "measured", "measured_text", "threshold", "status", "reason",
            "samples", "line", "phase", "instance"} <= set(first)
    assert not list(tmp_path.glob("*.tmp"))


def test_table_shows_rule_measured_threshold_result() -> None:
    verdict = verdict_of("default.toml")
    buffer = io.StringIO()
    print_verdict(verdict, Console(file=buffer, width=200, color_system=None))
    text = buffer.getvalue()
    assert "acceptance: FAIL (exit 1" in text
    for column in ("rule", "measured", "threshold", "result"):
        assert column in text
    assert "heartbeat_gap.longest_s" in text and "3.5 > max 2.5" in text
