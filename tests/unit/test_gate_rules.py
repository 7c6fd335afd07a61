"""Gate rule grammar: good files parse, every bad one is refused with file, line and reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loadtest.errors import UsageError
from loadtest.gate.metrics import (
    EVENT_STATS,
    EVENTS,
    INTEGRITY_STATS,
    SIGNALS,
    STEP_STATS,
    STEPS,
    parse_metric,
)
from loadtest.gate.rules import load_rules, parse_rules

GATES = Path(__file__).resolve().parents[2] / "fixtures" / "gates"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return path


def test_minimal_rule() -> None:
    rules = parse_rules('[[rule]]\nmetric = "LOGIN.p99_ms"\nmax = 500\n', "r.toml")
    (rule,) = rules.rules
    assert rule.metric.family == "step" and rule.metric.subject == "LOGIN"
    assert rule.metric.percentile == 99.0
    assert rule.max == 500.0 and rule.min is None
    assert rule.line == 1 and rule.min_samples == 1
    assert rule.name == "LOGIN.p99_ms <= 500"


def test_scope_defaults_and_names() -> None:
    text = """
[gate]
min_samples = 7

[[rule]]
metric = "greeting_latency_ms.p95"
max = 300
phase = "reconnect-flood"
instance = "slot2"

[[rule]]
name = "workers ready"
metric = "ready_workers.min"
min = 1
labels = { service = "imap" }
min_samples = 3
"""
    first, second = parse_rules(text, "r.toml").rules
    assert (first.phase, first.instance, first.min_samples, first.line) == (
        "reconnect-flood", "slot2", 7, 5)
    assert first.name == "greeting_latency_ms.p95 <= 300 [phase=reconnect-flood instance=slot2]"
    assert (second.name, second.labels, second.min_samples, second.line) == (
        "workers ready", {"service": "imap"}, 3, 11)


@pytest.mark.parametrize(("text", "line", "reason"), [
    ('[[rule]]\nmetric = "LOGIN.p99_ms"\nmax = 5\n\n[[rule]]\nmetric = "LOGON.p99_ms"\nmax = 1\n',
     6, "unknown step 'LOGON'"),
    ('[[rule]]\nmetric = "LOGIN.p99_ms"\n\nmax = "fast"\n', 4, "is not a finite number"),
    ('[[rule]]\nmetric = "LOGIN.p99_ms"\nmax = true\n', 3, "is not a finite number"),
    ('[[rule]]\nmetric = "LOGIN.p99_ms"\nmax = nan\n', 3, "is not a finite number"),
    ('[[rule]]\nmetric = "LOGIN.p99_ms"\nmax = -1\n', 3, "is negative"),
    ('[[rule]]\nmetric = "LOGIN.p99_ms"\nmin = 10\nmax = 5\n', 3, "min 10 > max 5"),
    ('[[rule]]\nmetric = "LOGIN.failure_ratio"\nmax = 5\n', 3, "not a ratio between 0 and 1"),
    ('[[rule]]\nmetric = "LOGIN.p99_ms"\n', 1, "neither min nor max"),
    ('[[rule]]\nmax = 3\n', 1, "without metric"),
    ('[[rule]]\nmetric = "LOGIN.p99_ms"\nmax = 3\nmaximum = 4\n', 4, "unknown key 'maximum'"),
    ('[[rule]]\nmetric = "LOGIN.p100_ms"\nmax = 3\n', 2, "not between 0 and 100"),
    ('[[rule]]\nmetric = "LOGIN.mean_ms"\nmax = 3\n', 2, "unknown step statistic 'mean_ms'"),
    ('[[rule]]\nmetric = "greeting_ms.p99"\nmax = 3\n', 2, "unknown signal or event 'greeting_ms'"),
    ('[[rule]]\nmetric = "listen_overflows.p99"\nmax = 3\n', 2, "is a counter signal"),
    ('[[rule]]\nmetric = "stall.longest"\nmax = 3\n', 2, "unknown event statistic"),
    ('[[rule]]\nmetric = "p99"\nmax = 3\n', 2, "is not SUBJECT.STAT"),
    ('[[rule]]\nmetric = "LOGIN.p99_ms"\nmax = 3\nphase = ""\n', 4, "phase must be a non-empty"),
    ('[[rule]]\nmetric = "LOGIN.p99_ms"\nmax = 3\nlabels = { a = "b" }\n', 4,
     "labels only apply to series"),
    ('[[rule]]\nmetric = "LOGIN.p99_ms"\nmax = 3\nmin_samples = -2\n', 4, "min_samples = -2"),
    ('[gate]\nmin_samples = 1.5\n[[rule]]\nmetric = "LOGIN.p99_ms"\nmax = 3\n', 2,
     "min_samples = 1.5"),
    ('[gate]\nminsamples = 1\n[[rule]]\nmetric = "LOGIN.p99_ms"\nmax = 3\n', 2,
     "unknown key 'minsamples' in [gate]"),
    ('[rules]\nmetric = "LOGIN.p99_ms"\n', 1, "unknown table or key 'rules'"),
    ('[[rule]]\nmetric = "LOGIN.p99_ms"\nmax = 3\n\n[[rule]\n', 5, "malformed TOML"),
    ('[[rule]]\nmetric = "LOGIN.p99_ms"\nmax = 3\nmax = 4\n', 4, "malformed TOML"),
])
def test_bad_rules_name_file_line_reason(tmp_path: Path, text: str, line: int, reason: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as caught:
        load_rules(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert reason in message
    assert "\n" not in message


def test_no_rules_at_all(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"rules.toml: no rules"):
        load_rules(write(tmp_path, "[gate]\nmin_samples = 2\n"))


def test_missing_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"gate rules file .*nope.toml does not exist"):
        load_rules(tmp_path / "nope.toml")
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00rule")
    with pytest.raises(UsageError, match=r"cannot read gate rules file .*bin.toml"):
        load_rules(binary)


def test_extra_steps_extend_the_registry() -> None:
    text = '[gate]\nextra_steps = ["MOVE"]\n[[rule]]\nmetric = "MOVE.p95_ms"\nmax = 9\n'
    assert parse_rules(text).rules[0].metric.subject == "MOVE"
    with pytest.raises(UsageError, match="unknown step 'MOVE'"):
        parse_rules('[[rule]]\nmetric = "MOVE.p95_ms"\nmax = 9\n')


def test_default_gate_parses() -> None:
    rules = load_rules(GATES / "default.toml")
    metrics = {r.metric.name for r in rules.rules}
    assert {"NOOP.failures", "CONNECT.p99_ms", "stall.longest_s",
            "heartbeat_gap.longest_s"} <= metrics
    assert {"churn-ramp", "reconnect-flood"} <= rules.phases()
    lines = [r.line for r in rules.rules]
    text_lines = (GATES / "default.toml").read_text().splitlines()
    assert all(text_lines[n - 1].strip() == "[[rule]]" for n in lines)


def test_example_all_exercises_every_metric() -> None:
    rules = load_rules(GATES / "example-all.toml")
    used = {(r.metric.family, r.metric.subject, r.metric.stat) for r in rules.rules}
    steps_used = {s for f, s, _ in used if f == "step"}
    step_stats = {st for f, _, st in used if f == "step"}
    assert set(STEPS) | {"ALL"} <= steps_used
    assert set(STEP_STATS) <= step_stats
    assert any(re.fullmatch(r"p\d+(\.\d+)?_ms", st) for st in step_stats)
    assert set(SIGNALS) <= {s for f, s, _ in used if f == "series"}
    assert {(k, st) for k in EVENTS for st in EVENT_STATS} <= {
        (s, st) for f, s, st in used if f == "event"}
    assert set(INTEGRITY_STATS) <= {st for f, _, st in used if f == "integrity"}


def test_parse_metric_families() -> None:
    assert parse_metric("ALL.failure_ratio").is_ratio
    assert parse_metric("listen_overflows.increase").kind == "counter"
    assert parse_metric("greeting_latency_ms.p99.9").percentile == 99.9
    assert parse_metric("heartbeat_gap.longest_s").witness == "heartbeat_age_s"


def test_toml_lines_find_headers_and_keys_of_any_table() -> None:
    """The line finder shared with deploy/topology.py (tomllib gives no value positions)."""
    from loadtest.tomllines import TomlLines

    text = ("top = 1\n[service]\n[[store]]\nname = 'a'\n# name = 'no'\n[store.service]\n"
            "maxchild = 5\n\n[[store]]\n  \"name\" = 'b'\n")
    lines = TomlLines(text)
    assert (lines.top_level("top"), lines.top_level("store"), lines.top_level("nothing")) == (
        1, 3, None)
    assert lines.table("service") == 2 and lines.in_table("service", "name") == 2  # empty table
    assert (lines.array_table("store", 0), lines.array_table("store", 1),
            lines.array_table("store", 2)) == (3, 9, None)
    assert lines.array_key("store", 1, "name") == 10
    assert lines.array_key("store", 0, "maxchild") == 3  # in [store.service]: not the store's own
    assert lines.in_table("store.service", "maxchild") == 7
