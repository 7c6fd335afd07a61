"""The metric registry: every name a gate rule may use, what it measures and how it is computed.

Pure module: no Locust, no gevent. Grammar and meaning are documented in docs/gate.md
("Gate rules"); `parse_metric` is the single place that decides whether a name exists.

Four families:

- step metrics ``STEP.STAT`` over the step recorder (steps.json): STEP is an IMAP step name or
  ``ALL``; STAT is ``failure_ratio``, ``failures``, ``count``, ``rate_per_s``, ``max_ms`` or a
  percentile ``p50_ms``, ``p99_ms``, ``p99.9_ms``.
- series metrics ``SIGNAL.AGG`` over the collectors' samples (series.jsonl): ``min``, ``max``,
  ``mean``, ``last``, ``increase`` (counters) or a percentile ``p95``.
- event metrics ``KIND.STAT`` over events.jsonl: ``longest_s``, ``total_s``, ``count``.
- integrity metrics ``integrity.STAT`` (``checked``, ``lost``, ``duplicated``, ``corrupt``): the
  counts of the integrity audit at the end of the run (samples ``integrity_STAT`` in
  series.jsonl, written by loadtest.integrity.cli).

Two comparisons judge a run against itself rather than an absolute bound:

- ``A_vs_B.pNN_ratio`` (two steps): step A's percentile over step B's in the same scope, e.g.
  ``LIST_vs_LOGIN.p99_ratio`` (UC Davis 2007: LOGIN fine while LIST timed out).
- ``SIGNAL.pNN_vs_baseline`` (a latency or gauge signal): its percentile in the rule's phase
  over the same percentile in the rule's ``baseline`` phase, e.g.
  ``canary_proc_ms.p99_vs_baseline`` (2010: the canary's rise against its own quiet level).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from loadtest.core.signals import (  # noqa: F401  (LATENCY, ... are the gate's kind names)
    COUNTER,
    GATED_SIGNALS,
    GAUGE,
    LATENCY,
    SOURCES,
    SPREAD,
    TALLY,
)
from loadtest.imap.steptable import STEPS  # the one table of IMAP steps; ALL = every step together

ALL_STEPS = "ALL"

STEP_STATS = {
    "failure_ratio": "failed / all requests (0..1)",
    "failures": "number of failed requests",
    "count": "number of requests (successes + failures)",
    "rate_per_s": "successful requests per second over the run or phase",
    "max_ms": "slowest request in ms; +inf when any request failed",
}
PERCENTILE_STEP_STAT = re.compile(r"^p(\d{1,3}(?:\.\d+)?)_ms$")
PERCENTILE_AGG = re.compile(r"^p(\d{1,3}(?:\.\d+)?)$")

# The signals and their kinds come from their sources' declarations (loadtest.core.signals).
SIGNALS: dict[str, str] = GATED_SIGNALS
AGGREGATIONS = {
    LATENCY: ("min", "max", "mean", "last"),  # plus percentiles
    GAUGE: ("min", "max", "mean", "last"),  # plus percentiles
    COUNTER: ("increase", "max", "last"),
    # count: occurrences in the window; rate_per_s: per second of the window
    TALLY: ("count", "rate_per_s", "last"),
    # distinct: most label values (executables) present at one sample time; max: most on one
    SPREAD: ("distinct", "max"),
}
PERCENTILE_KINDS = (LATENCY, GAUGE)
STEP_RATIO = re.compile(r"^p(\d{1,3}(?:\.\d+)?)_ratio$")
VS_BASELINE = re.compile(r"^p(\d{1,3}(?:\.\d+)?)_vs_baseline$")

# Event kinds, and the signal whose samples prove the detector was watching (min_samples): no
# heartbeat samples at all must not read as "longest heartbeat gap 0 s".
EVENTS: dict[str, str | None] = {
    "stall": "greeting_latency_ms",
    "heartbeat_gap": "heartbeat_age_s",
    "collector_gap": None,
    "fault": None,
}
EVENT_STATS = {
    "longest_s": "longest event in seconds (clipped to the phase), 0 when none",
    "total_s": "sum of event durations in seconds (clipped to the phase)",
    "count": "number of events (overlapping the phase)",
    # Recovery: what of an event lies outside every injected fault's window. A master that
    # recovers when the fault ends has ~0 here; one that stays stuck has the rest of its stall.
    "longest_outside_faults_s": "longest stretch of an event outside every injected fault's "
                                "window, in seconds (clipped to the phase), 0 when none",
}

INTEGRITY = "integrity"
INTEGRITY_STATS = {
    "checked": "messages the integrity audit compared (ledger + seed messages)",
    "lost": "acknowledged messages missing or unreadable",
    "duplicated": "messages present (or acknowledged) more than once",
    "corrupt": "messages with other bytes than sent, and mailbox inconsistencies",
}


@dataclass(frozen=True)
class Metric:
    name: str  # as written
    family: str  # step | series | event
    subject: str  # step name (or ALL), signal name, event kind
    stat: str  # failure_ratio, p99_ms, max, p95, increase, longest_s, ...
    percentile: float | None = None
    kind: str | None = None  # signal kind for series metrics
    witness: str | None = None  # for event metrics: the signal whose samples count
    versus: str | None = None  # step ratios: the step in the denominator
    baseline: bool = False  # series: over the same percentile in the rule's baseline phase

    @property
    def is_ratio(self) -> bool:
        return self.stat == "failure_ratio"

    @property
    def is_count(self) -> bool:
        return self.stat in ("failures", "count", "distinct")


def parse_metric(name: str, extra_steps: tuple[str, ...] = ()) -> Metric:
    """Resolve a metric name or raise ValueError with the reason (the caller adds file:line)."""
    subject, dot, stat = name.partition(".")
    if not dot or not subject or not stat:
        raise ValueError(f"metric {name!r} is not SUBJECT.STAT (e.g. \"LOGIN.p99_ms\", "
                         "\"greeting_latency_ms.p99\", \"stall.longest_s\")")
    steps = STEPS + tuple(extra_steps) + (ALL_STEPS,)
    left, vs, right = subject.partition("_vs_")
    if vs and left in steps and right in steps:
        match = STEP_RATIO.match(stat)
        if not match:
            raise ValueError(f"metric {name!r}: a step comparison takes pNN_ratio, e.g. "
                             f"\"{left}_vs_{right}.p99_ratio\"")
        return Metric(name, "step_ratio", left, stat, _percentile(name, match.group(1)),
                      versus=right)
    if subject in steps:
        match = PERCENTILE_STEP_STAT.match(stat)
        if match:
            return Metric(name, "step", subject, stat, _percentile(name, match.group(1)))
        if stat in STEP_STATS:
            return Metric(name, "step", subject, stat)
        raise ValueError(f"metric {name!r}: unknown step statistic {stat!r} "
                         f"(known: {', '.join(STEP_STATS)}, pNN_ms)")
    if subject in SIGNALS:
        kind = SIGNALS[subject]
        match = VS_BASELINE.match(stat)
        if match and kind in PERCENTILE_KINDS:
            return Metric(name, "series", subject, stat, _percentile(name, match.group(1)), kind,
                          baseline=True)
        match = PERCENTILE_AGG.match(stat)
        if match and kind in PERCENTILE_KINDS:
            return Metric(name, "series", subject, stat, _percentile(name, match.group(1)), kind)
        if stat in AGGREGATIONS[kind]:
            return Metric(name, "series", subject, stat, None, kind)
        allowed = ", ".join(AGGREGATIONS[kind]) + (", pNN, pNN_vs_baseline"
                                                   if kind in PERCENTILE_KINDS else "")
        raise ValueError(f"metric {name!r}: {subject} is a {kind} signal, "
                         f"{stat!r} is not one of {allowed}")
    if subject in EVENTS:
        if stat in EVENT_STATS:
            return Metric(name, "event", subject, stat, witness=EVENTS[subject])
        raise ValueError(f"metric {name!r}: unknown event statistic {stat!r} "
                         f"(known: {', '.join(EVENT_STATS)})")
    if subject == INTEGRITY:
        if stat in INTEGRITY_STATS:
            return Metric(name, INTEGRITY, subject, stat)
        raise ValueError(f"metric {name!r}: unknown integrity statistic {stat!r} "
                         f"(known: {', '.join(INTEGRITY_STATS)})")
    if subject.isupper():
        raise ValueError(f"metric {name!r}: unknown step {subject!r} (known: "
                         f"{', '.join(steps)}; declare others in [gate] extra_steps)")
    raise ValueError(f"metric {name!r}: unknown signal or event {subject!r} "
                     "(see docs/gate.md for the list)")


def _percentile(name: str, text: str) -> float:
    value = float(text)
    if not 0.0 < value < 100.0:
        raise ValueError(f"metric {name!r}: percentile {text} is not between 0 and 100")
    return value


def describe_all() -> list[tuple[str, str]]:
    """(pattern, meaning) for every metric family: `cyrus-loadtest gate --list-metrics`."""
    rows = [("STEP", f"one of {', '.join(STEPS)}, {ALL_STEPS} (or a declared extra step)")]
    rows += [(f"STEP.{stat}", text) for stat, text in STEP_STATS.items()]
    rows.append(("STEP.pNN_ms", "percentile latency in ms, failures count as +inf"))
    rows.append(("STEP_vs_STEP.pNN_ratio", "one step's percentile over another's, same scope"))
    for source in SOURCES:
        for signal in source.signals:
            if not signal.gated:
                continue
            kind = signal.kind
            aggs = list(AGGREGATIONS[kind]) + (["pNN", "pNN_vs_baseline"]
                                               if kind in PERCENTILE_KINDS else [])
            unit = f" in {signal.unit}" if signal.unit else ""
            rows.append((f"{signal.name}.{{{','.join(aggs)}}}", f"{kind} signal{unit}, from {source.name}"))
    for kind in EVENTS:
        rows.append((f"{kind}.{{{','.join(EVENT_STATS)}}}", f"{kind} events"))
    rows += [(f"{INTEGRITY}.{stat}", text) for stat, text in INTEGRITY_STATS.items()]
    return rows
