"""Gate rules on the integrity audit's counts (integrity.*), on literal data."""

from __future__ import annotations

import pytest

from loadtest.core.series import SeriesStore
from loadtest.core.steps import StepRecorder
from loadtest.errors import UsageError
from loadtest.gate.evaluate import FAIL, INCONCLUSIVE, PASS, evaluate
from loadtest.gate.metrics import describe_all, parse_metric
from loadtest.gate.rules import load_rules, parse_rules
from loadtest.integrity.audit import CORRUPT, LOST, AuditResult, Problem
from loadtest.integrity.cli import record_samples
from loadtest.paths import fixtures_dir


def judge(text: str, store: SeriesStore) -> list[tuple[str, float | None]]:
    verdict = evaluate(parse_rules(text, "t.toml"), StepRecorder(), store)
    return [(r.status, r.measured) for r in verdict.results]


RULES = "".join(f'[[rule]]\nmetric = "integrity.{stat}"\nmax = 0\n'
                for stat in ("lost", "duplicated", "corrupt"))


def audited(result: AuditResult) -> SeriesStore:
    store = SeriesStore()
    record_samples(store, result)
    return store


def test_metric_names() -> None:
    assert parse_metric("integrity.lost").family == "integrity"
    with pytest.raises(ValueError, match="unknown integrity statistic"):
        parse_metric("integrity.missing")
    assert ("integrity.corrupt", "messages with other bytes than sent, and mailbox "
            "inconsistencies") in describe_all()


def test_a_clean_audit_passes_and_problems_fail() -> None:
    clean = AuditResult(checked=800)
    assert judge(RULES, audited(clean)) == [(PASS, 0.0)] * 3
    bad = AuditResult(checked=800, problems=[Problem(LOST, "u", "m", "gone", "id-1", 5),
                                             Problem(CORRUPT, "u", "m", "bytes", "id-2", 6)])
    assert judge(RULES, audited(bad)) == [(FAIL, 1.0), (PASS, 0.0), (FAIL, 1.0)]
    checked = evaluate(parse_rules('[[rule]]\nmetric = "integrity.checked"\nmin = 500\n'),
                       StepRecorder(), audited(clean)).results[0]
    assert (checked.status, checked.measured, checked.samples) == (PASS, 800.0, 800)


def test_no_integrity_user_passes_the_zero_rules_but_not_a_checked_minimum() -> None:
    assert [s for s, _ in judge(RULES, SeriesStore())] == [PASS] * 3
    assert judge('[[rule]]\nmetric = "integrity.checked"\nmin = 1\n', SeriesStore()) == [
        (INCONCLUSIVE, None)]


def test_an_incomplete_audit_is_inconclusive() -> None:
    incomplete = AuditResult(checked=10, incomplete=["user0001/x: LOGIN: auth rejected"])
    assert [s for s, _ in judge(RULES, audited(incomplete))] == [INCONCLUSIVE] * 3


def test_few_checked_messages_are_inconclusive_under_min_samples() -> None:
    text = "[gate]\nmin_samples = 10\n" + RULES
    assert [s for s, _ in judge(text, audited(AuditResult(checked=3)))] == [INCONCLUSIVE] * 3


def test_integrity_rules_take_no_phase_or_instance() -> None:
    with pytest.raises(UsageError, match="t.toml:3: .*whole run"):
        parse_rules('[[rule]]\nmetric = "integrity.lost"\nphase = "churn-ramp"\nmax = 0\n', "t.toml")


def test_default_gate_has_the_zero_rules() -> None:
    rules = load_rules(fixtures_dir() / "gates" / "default.toml")
    zero = {r.metric.name for r in rules.rules if r.metric.family == "integrity" and r.max == 0}
    assert zero == {"integrity.lost", "integrity.duplicated", "integrity.corrupt"}
