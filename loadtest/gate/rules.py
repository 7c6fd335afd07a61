"""Gate rules: a small TOML grammar (docs/gate.md, "Gate rules"), parsed and checked before any
load starts. Every error names the file, the line and the reason and is a UsageError (exit 2).

Pure module: no Locust, no gevent.

    [gate]
    min_samples = 20            # default for every rule (1 when absent)

    [[rule]]
    metric = "LOGIN.p99_ms"     # see loadtest/gate/metrics.py
    max = 500                   # pass when measured <= max (and >= min when given)
    phase = "reconnect-flood"   # optional: only this phase of a shaped run
    instance = "slot1"          # optional: only this Cyrus instance
    max_ratio = 1.2             # optional: measured <= 1.2 x the baseline run's value of the
                                # same metric, phase and instance (--baseline, `compare`)
    baseline_phase = "quiet"    # for SIGNAL.pNN_vs_baseline: the phase it is compared with
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtest.errors import UsageError
from loadtest.gate.metrics import Metric, parse_metric
from loadtest.tomllines import TomlLines

RULE_KEYS = ("metric", "min", "max", "min_ratio", "max_ratio", "ratio_floor", "phase", "instance",
             "labels", "min_samples", "name", "baseline_phase")
GATE_KEYS = ("min_samples", "extra_steps", "name")
DEFAULT_MIN_SAMPLES = 1


@dataclass(frozen=True)
class Rule:
    metric: Metric
    min: float | None = None
    max: float | None = None
    phase: str | None = None
    instance: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    min_samples: int = DEFAULT_MIN_SAMPLES
    name: str = ""
    line: int | None = None  # where the rule starts in its file
    min_ratio: float | None = None  # relative to the baseline run's value
    max_ratio: float | None = None
    ratio_floor: float = 0.0  # both values are raised to at least this before the ratio

    @property
    def relative(self) -> bool:
        return self.min_ratio is not None or self.max_ratio is not None
    baseline_phase: str | None = None  # the phase a pNN_vs_baseline metric is compared with

    @property
    def threshold_text(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f">= {_fmt(self.min)}")
        if self.max is not None:
            parts.append(f"<= {_fmt(self.max)}")
        if self.min_ratio is not None:
            parts.append(f">= {_fmt(self.min_ratio)} x baseline")
        if self.max_ratio is not None:
            parts.append(f"<= {_fmt(self.max_ratio)} x baseline")
        if self.ratio_floor and self.relative:
            parts[-1] += f" (floor {_fmt(self.ratio_floor)})"
        return " and ".join(parts)

    @property
    def scope_text(self) -> str:
        parts = [f"phase={self.phase}"] if self.phase else []
        if self.baseline_phase:
            parts.append(f"baseline_phase={self.baseline_phase}")
        if self.instance:
            parts.append(f"instance={self.instance}")
        parts += [f"{k}={v}" for k, v in sorted(self.labels.items())]
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "metric": self.metric.name, "min": self.min, "max": self.max,
                "min_ratio": self.min_ratio, "max_ratio": self.max_ratio,
                "ratio_floor": self.ratio_floor, "phase": self.phase, "instance": self.instance, "labels": self.labels,
                "scope": self.scope_text, "min_samples": self.min_samples, "line": self.line,
                "baseline_phase": self.baseline_phase}


@dataclass(frozen=True)
class RuleSet:
    path: str
    rules: tuple[Rule, ...]
    name: str = "cyrus-loadtest gate"

    def phases(self) -> set[str]:
        return {r.phase for r in self.rules if r.phase}


def _fmt(value: float) -> str:
    return f"{value:g}"


def load_rules(path: str | Path) -> RuleSet:
    """Read and check a gate file; UsageError ("FILE:LINE: reason") on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"gate rules file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read gate rules file {path}: {exc}") from None
    return parse_rules(text, str(path))


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    locator = TomlLines(text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        where = f"{source}:{match.group(1)}" if match else source
        raise UsageError(f"{where}: malformed TOML: {reason}") from None

    def fail(line: int | None, reason: str) -> UsageError:
        return UsageError(f"{source}:{line}: {reason}" if line else f"{source}: {reason}")

    for key in data:
        if key not in ("gate", "rule"):
            raise fail(locator.top_level(key), f"unknown table or key {key!r} "
                       "(a gate file has [gate] and [[rule]] tables)")
    gate = data.get("gate", {})
    if not isinstance(gate, dict):
        raise fail(locator.top_level("gate"), "'gate' must be a table: [gate]")
    for key in gate:
        if key not in GATE_KEYS:
            raise fail(locator.in_table("gate", key), f"unknown key {key!r} in [gate] "
                       f"(known: {', '.join(GATE_KEYS)})")
    default_min_samples = _min_samples(gate.get("min_samples", DEFAULT_MIN_SAMPLES),
                                       lambda r: fail(locator.in_table("gate", "min_samples"), r))
    extra_steps = gate.get("extra_steps", [])
    if not (isinstance(extra_steps, list)
            and all(isinstance(s, str) and re.fullmatch(r"[A-Z][A-Z0-9_-]*", s)
                    for s in extra_steps)):
        raise fail(locator.in_table("gate", "extra_steps"),
                   "extra_steps must be a list of upper-case step names, e.g. [\"MOVE\"]")
    suite_name = gate.get("name", "cyrus-loadtest gate")
    if not isinstance(suite_name, str):
        raise fail(locator.in_table("gate", "name"), "[gate] name must be a string")

    raw_rules = data.get("rule")
    if raw_rules is None:
        raise fail(None, "no rules: add at least one [[rule]] table with metric and min or max")
    if not isinstance(raw_rules, list) or not all(isinstance(r, dict) for r in raw_rules):
        raise fail(locator.top_level("rule"), "rules must be written as [[rule]] tables")
    def rule_line(index: int) -> int | None:
        # An inline array (rule = [{...}]) has no [[rule]] headers: its first line.
        return locator.array_table("rule", index) or locator.top_level("rule")

    def rule_key(index: int, key: str) -> int | None:
        start = rule_line(index)
        return None if start is None else locator.key_in_section(start, key) or start

    rules = tuple(
        _parse_rule(raw, rule_line(i), lambda key, i=i: rule_key(i, key),
                    default_min_samples, tuple(extra_steps), fail)
        for i, raw in enumerate(raw_rules)
    )
    return RuleSet(source, rules, suite_name)


def _parse_rule(raw: dict[str, Any], line: int | None, key_line: Any, default_min_samples: int,
                extra_steps: tuple[str, ...], fail: Any) -> Rule:
    for key in raw:
        if key not in RULE_KEYS:
            raise fail(key_line(key), f"unknown key {key!r} in [[rule]] "
                       f"(known: {', '.join(RULE_KEYS)})")
    metric_name = raw.get("metric")
    if not isinstance(metric_name, str):
        raise fail(line, "[[rule]] without metric = \"...\"")
    try:
        metric = parse_metric(metric_name, extra_steps)
    except ValueError as exc:
        raise fail(key_line("metric"), str(exc)) from None

    bounds: dict[str, float | None] = {}
    for key in ("min", "max"):
        value = raw.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value):
                raise fail(key_line(key), f"{metric_name}: {key} = {value!r} is not a finite "
                           "number")
            if metric.is_ratio and not 0.0 <= value <= 1.0:
                raise fail(key_line(key), f"{metric_name}: {key} = {value!r} is not a ratio "
                           "between 0 and 1 (write 0.01 for 1 %)")
            if value < 0:
                raise fail(key_line(key), f"{metric_name}: {key} = {value!r} is negative")
            value = float(value)
        bounds[key] = value
    for key in ("min_ratio", "max_ratio"):
        value = raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not math.isfinite(value) or value <= 0):
            raise fail(key_line(key), f"{metric_name}: {key} = {value!r} is not a positive "
                       "number (1.2 = at most 20 % above the baseline)")
        bounds[key] = None if value is None else float(value)
    floor = raw.get("ratio_floor", 0.0)
    if isinstance(floor, bool) or not isinstance(floor, int | float) \
            or not math.isfinite(floor) or floor < 0:
        raise fail(key_line("ratio_floor"), f"{metric_name}: ratio_floor = {floor!r} is not a "
                   "number >= 0")
    if floor and bounds["min_ratio"] is None and bounds["max_ratio"] is None:
        raise fail(key_line("ratio_floor"), f"{metric_name}: ratio_floor without max_ratio or "
                   "min_ratio")
    if all(bounds[k] is None for k in ("min", "max", "min_ratio", "max_ratio")):
        raise fail(line, f"{metric_name}: rule has neither min nor max")
    if (bounds["min_ratio"] is not None and bounds["max_ratio"] is not None
            and bounds["min_ratio"] > bounds["max_ratio"]):
        raise fail(key_line("min_ratio"), f"{metric_name}: min_ratio {bounds['min_ratio']:g} > "
                   f"max_ratio {bounds['max_ratio']:g}: no value could pass")
    if bounds["min"] is not None and bounds["max"] is not None and bounds["min"] > bounds["max"]:
        raise fail(key_line("min"), f"{metric_name}: min {bounds['min']:g} > max "
                   f"{bounds['max']:g}: no value could pass")

    scope: dict[str, str | None] = {}
    for key in ("phase", "instance", "name", "baseline_phase"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise fail(key_line(key), f"{metric_name}: {key} must be a non-empty string")
        scope[key] = value
    labels = raw.get("labels", {})
    if not isinstance(labels, dict) or not all(isinstance(v, str | int) and not isinstance(v, bool)
                                               for v in labels.values()):
        raise fail(key_line("labels"), f"{metric_name}: labels must be a table of strings, "
                   "e.g. labels = { service = \"imap\" }")
    if metric.baseline and not scope["baseline_phase"]:
        raise fail(line, f"{metric_name}: a pNN_vs_baseline metric needs baseline_phase = \"PHASE\" "
                   "(the phase it is compared with)")
    if scope["baseline_phase"] and not metric.baseline:
        raise fail(key_line("baseline_phase"), f"{metric_name}: baseline_phase only applies to "
                   "SIGNAL.pNN_vs_baseline metrics")
    if labels and metric.family != "series":
        raise fail(key_line("labels"), f"{metric_name}: labels only apply to series metrics")
    for key in ("phase", "instance"):
        if scope[key] is not None and metric.family == "integrity":
            raise fail(key_line(key), f"{metric_name}: the integrity audit counts the whole run "
                       f"(no {key})")
    min_samples = _min_samples(raw.get("min_samples", default_min_samples),
                               lambda r: fail(key_line("min_samples"), f"{metric_name}: {r}"))
    rule = Rule(metric, bounds["min"], bounds["max"], scope["phase"], scope["instance"],
                {k: str(v) for k, v in labels.items()}, min_samples, "", line,
                bounds["min_ratio"], bounds["max_ratio"], float(floor), scope["baseline_phase"])
    name = scope["name"] or " ".join(p for p in (metric.name, rule.threshold_text,
                                                 f"[{rule.scope_text}]" if rule.scope_text
                                                 else "") if p)
    return dataclasses.replace(rule, name=name)


def _min_samples(value: Any, fail: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise fail(f"min_samples = {value!r} is not a whole number >= 0")
    return value
