"""Evaluate gate rules over a run's step statistics and collector series: one verdict per rule.

Pure module: no Locust, no gevent. The same function runs in-process when Locust quits and
offline from the artifacts folder, so both give the same verdict.

Before calling it in-process, close open events (`SeriesStore.close_open_events`) and set the
recorder's `end`: offline, only closed events exist in events.jsonl.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from loadtest.core.series import Event, Sample, SeriesStore
from loadtest.core.steps import StepRecorder, json_number
from loadtest.errors import EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_PASS
from loadtest.gate.metrics import ALL_STEPS, COUNTER, INTEGRITY, LATENCY, SPREAD, TALLY, Metric
from loadtest.gate.rules import Rule, RuleSet

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
VERDICT_FORMAT = 1
Window = tuple[float, float]
EVERYTHING: list[Window] = [(-math.inf, math.inf)]


@dataclass(frozen=True)
class RuleResult:
    rule: Rule
    status: str  # pass | fail | inconclusive
    measured: float | None
    samples: int | None  # what min_samples was checked against (None: not applicable)
    reason: str
    faults: tuple[str, ...] = ()  # injected faults overlapping a failing rule's interval
    baseline: float | None = None  # the baseline run's value (relative rules)


    @property
    def measured_text(self) -> str:
        return format_value(self.measured, self.rule.metric)

    def to_dict(self) -> dict[str, Any]:
        return {**self.rule.to_dict(), "status": self.status,
                "measured": json_number(self.measured), "measured_text": self.measured_text,
                "threshold": self.rule.threshold_text, "samples": self.samples,
                "reason": self.reason, "faults": list(self.faults),
                "baseline": json_number(self.baseline),
                "baseline_text": (None if self.baseline is None
                                  else format_value(self.baseline, self.rule.metric))}


@dataclass(frozen=True)
class Verdict:
    rules_path: str
    suite: str
    results: tuple[RuleResult, ...]
    run: str | None = None  # the run measured ("measured" numbers)
    baseline_run: str | None = None  # the run relative rules compare with ("baseline" numbers)

    @property
    def status(self) -> str:
        statuses = {r.status for r in self.results}
        if FAIL in statuses:
            return FAIL
        if INCONCLUSIVE in statuses:
            return INCONCLUSIVE
        return PASS

    @property
    def exit_code(self) -> int:
        return {PASS: EXIT_PASS, FAIL: EXIT_FAIL, INCONCLUSIVE: EXIT_INCONCLUSIVE}[self.status]

    def to_dict(self) -> dict[str, Any]:
        counts = {s: sum(r.status == s for r in self.results) for s in (PASS, FAIL, INCONCLUSIVE)}
        return {"format": VERDICT_FORMAT, "suite": self.suite, "rules_file": self.rules_path,
                "run": self.run, "baseline_run": self.baseline_run, "status": self.status, "exit_code": self.exit_code, "counts": counts,
                "results": [r.to_dict() for r in self.results]}


def format_value(value: float | None, metric: Metric) -> str:
    if value is None:
        return "no data"
    if math.isinf(value):
        return "inf"
    if metric.is_ratio:
        return f"{value:.4g} ({value * 100:.2f} %)"
    if metric.is_count or value == int(value):
        return f"{value:.0f}"
    return f"{value:.4g}"


@dataclass(frozen=True)
class Baseline:
    """The run relative rules (max_ratio, min_ratio) compare with."""

    name: str
    steps: StepRecorder
    store: SeriesStore
    start: float | None = None  # when the baseline run started (for plots)


def evaluate(rules: RuleSet, steps: StepRecorder, store: SeriesStore,
             baseline: Baseline | None = None, run: str | None = None) -> Verdict:
    """Measure every rule and judge it; relative rules against ``baseline`` (inconclusive
    without one)."""
    context = _Context(steps, store)
    base = None if baseline is None else _Context(baseline.steps, baseline.store)
    return Verdict(rules.path, rules.name,
                   tuple(_judge(rule, context, base, baseline.name if baseline else None)
                         for rule in rules.rules),
                   run, baseline.name if baseline else None)


class _Context:
    """One snapshot of the store, read once: samples by signal and events by kind (the web UI
    evaluates the live store every few seconds, so rules must not each scan all of it)."""

    def __init__(self, recorder: StepRecorder, store: SeriesStore) -> None:
        self.recorder = recorder
        self._samples: dict[str, list[Sample]] = defaultdict(list)
        self._events: dict[str, list[Event]] = defaultdict(list)
        latest: float | None = None
        for sample in store.samples():  # in time order per signal, as the store keeps them
            self._samples[sample.signal].append(sample)
            latest = sample.t if latest is None else max(latest, sample.t)
        for event in store.events():
            self._events[event.kind].append(event)
            latest = event.t if latest is None else max(latest, event.t)
        # An event still open at evaluation lasts until the last thing we know of.
        self.horizon = 0.0 if latest is None else latest
        self.phase_events = self.events("phase")

    def samples(self, signal: str) -> list[Sample]:
        return self._samples.get(signal, [])

    def events(self, kind: str) -> list[Event]:
        return self._events.get(kind, [])

    def windows(self, phase: str | None) -> list[Window] | None:
        """Time windows of a phase (None: it never ran); the whole run when phase is None."""
        if phase is None:
            return EVERYTHING
        found = [(e.t, e.end if e.end is not None else self.horizon)
                 for e in self.phase_events if e.detail.get("name") == phase]
        return found or None


def _measure(rule: Rule, ctx: _Context) -> tuple[float | None, int | None, str, str | None]:
    """(measured, samples, note, why inconclusive or None)."""
    metric = rule.metric
    windows = ctx.windows(rule.phase)
    if windows is None and not (metric.family in ("step", "step_ratio")
                                and rule.phase in ctx.recorder.phases()):
        return None, 0, "", f"phase {rule.phase!r} never ran (no phase event with that name)"
    samples: int | None
    if metric.family == "step":
        measured, samples, note = _step_value(rule, ctx, windows)
    elif metric.family == "step_ratio":
        measured, samples, note = _step_ratio(rule, ctx)
    elif metric.baseline:
        measured, samples, note = _vs_baseline(rule, ctx, windows or EVERYTHING)
    elif metric.family == "series":
        measured, samples, note = _series_value(rule, ctx, windows or EVERYTHING)
    elif metric.family == INTEGRITY:
        measured, samples, note = _integrity_value(rule, ctx)
    else:
        measured, samples, note = _event_value(rule, ctx, windows or EVERYTHING)
    if samples is not None and samples < rule.min_samples:
        return measured, samples, note, (f"only {samples} samples, the rule needs at least "
                                         f"{rule.min_samples}")
    if measured is None:
        return None, samples, note, note or "no data"
    return measured, samples, note, None


def ratio(measured: float, baseline: float, floor: float = 0.0) -> float:
    """measured / baseline, both raised to ``floor`` first (differences below it are noise);
    0 over 0 is 1 (unchanged), anything over 0 is +inf."""
    measured, baseline = max(measured, floor), max(baseline, floor)
    if baseline == 0:
        return 1.0 if measured == 0 else math.inf
    return measured / baseline


def _judge(rule: Rule, ctx: _Context, base: _Context | None = None,
           base_name: str | None = None) -> RuleResult:
    metric = rule.metric
    if (metric.family == INTEGRITY and metric.stat != "checked"
            and not ctx.samples(f"integrity_{metric.stat}")):
        # A run without integrity users wrote nothing, so nothing was lost: the default
        # gate's integrity rules must not make every other run inconclusive.
        return RuleResult(rule, PASS, None, None, NO_AUDIT + ": nothing written, nothing lost")
    measured, samples, note, inconclusive = _measure(rule, ctx)
    if inconclusive is not None:
        return RuleResult(rule, INCONCLUSIVE, measured, samples, inconclusive)
    assert measured is not None
    baseline = None
    if rule.relative:
        if base is None:
            return RuleResult(rule, INCONCLUSIVE, measured, samples,
                              "relative rule without a baseline run (--baseline RUN, or "
                              "`cyrus-loadtest compare BASE NEW`)")
        baseline, _base_samples, _note, base_inconclusive = _measure(rule, base)
        if base_inconclusive is not None:
            return RuleResult(rule, INCONCLUSIVE, measured, samples,
                              f"baseline run {base_name}: {base_inconclusive}", (), baseline)
    text = format_value(measured, metric)
    failed = None
    if rule.max is not None and measured > rule.max:
        failed = f"{text} > max {rule.max:g}"
    elif rule.min is not None and measured < rule.min:
        failed = f"{text} < min {rule.min:g}"
    elif baseline is not None:
        factor = ratio(measured, baseline, rule.ratio_floor)
        base_text = f"baseline {format_value(baseline, metric)} (run {base_name})"
        if rule.max_ratio is not None and factor > rule.max_ratio:
            failed = f"{text} = {factor:.3g} x {base_text} > max_ratio {rule.max_ratio:g}"
        elif rule.min_ratio is not None and factor < rule.min_ratio:
            failed = f"{text} = {factor:.3g} x {base_text} < min_ratio {rule.min_ratio:g}"
    if failed is not None:
        reason = f"{failed}: {note}" if note else failed
        faults = _faults_during(rule, ctx, ctx.windows(rule.phase) or EVERYTHING)
        if faults:
            reason += "; during injected fault " + ", ".join(faults)
        return RuleResult(rule, FAIL, measured, samples, reason, faults, baseline)
    if baseline is not None:
        text = (f"{text} = {ratio(measured, baseline, rule.ratio_floor):.3g} x baseline "
                f"{format_value(baseline, metric)} (run {base_name})")
    reason = f"{text} within {rule.threshold_text}"
    if note and (metric.family == "step_ratio" or metric.baseline):
        reason += f" ({note})"  # what was compared with what
    return RuleResult(rule, PASS, measured, samples, reason, (), baseline)


def _faults_during(rule: Rule, ctx: _Context, windows: list[Window]) -> tuple[str, ...]:
    """Injected faults (events of kind "fault") that overlap the failing rule's interval: its
    phase windows, narrowed for event rules to the rule's own events (say a heartbeat gap), and
    to the rule's instance when it has one. Named as written (the spec) with start and length
    in seconds from the run's start, so a verdict says which fault a failure coincides with."""
    if rule.metric.family == "event" and rule.metric.subject != "fault":
        own = [e for e in ctx.events(rule.metric.subject)
               if (rule.instance is None or e.instance == rule.instance)
               and _overlaps(e.t, _end(e, ctx), windows)]
        if own:  # the fault began before the gap was seen: allow the detector's delay
            windows = [(e.t - FAULT_SLACK_S, _end(e, ctx)) for e in own]
    origin = ctx.recorder.start or 0.0
    found = []
    for ev in ctx.events("fault"):
        if rule.instance is not None and ev.instance != rule.instance:
            continue
        if not _injected(ev):
            continue
        if not _overlaps(ev.t, _end(ev, ctx), windows):
            continue
        name = str(ev.detail.get("spec") or ev.detail.get("fault") or "fault")
        if ev.instance and "@" not in name:
            name = name.replace(":", f"@{ev.instance}:", 1) if ":" in name else f"{name}@{ev.instance}"
        length = f" for {ev.end - ev.t:.1f} s" if ev.end is not None and ev.end - ev.t >= 0.05 else ""
        found.append(f"{name} (at {ev.t - origin:.1f} s{length})")
    return tuple(found)


FAULT_SLACK_S = 3.0


def _injected(event: Event) -> bool:
    """A fault event of a fault that was applied: not the injector's clean-up after the run
    ("undo ..."), not a fault that could not be applied (detail "error")."""
    return (not str(event.detail.get("fault", "")).startswith("undo ")
            and "error" not in event.detail)


def _end(event: Event, ctx: _Context) -> float:
    return event.end if event.end is not None else ctx.horizon


def _overlaps(start: float, end: float, windows: list[Window]) -> bool:
    return any(start <= w_end and end >= w_start for w_start, w_end in windows)


# -- step metrics --------------------------------------------------------------------------

def _step_value(rule: Rule, ctx: _Context,
                windows: list[Window] | None) -> tuple[float | None, int, str]:
    metric = rule.metric
    step = None if metric.subject == ALL_STEPS else metric.subject
    stats = ctx.recorder.select(step, rule.phase, rule.instance)
    note = ""
    if stats.failures:
        note = f"{stats.failures} of {stats.count} requests failed, failures count as +inf"
    if stats.count == 0:
        return None, 0, f"no {metric.subject} requests"
    if metric.stat == "failure_ratio":
        return stats.failure_ratio, stats.count, note
    if metric.stat == "failures":
        return float(stats.failures), stats.count, note
    if metric.stat == "count":
        return float(stats.count), stats.count, note
    if metric.stat == "max_ms":
        return stats.max_ms(), stats.count, note
    if metric.stat == "rate_per_s":
        duration: float | None
        if windows is not None and windows is not EVERYTHING:
            duration = sum(max(0.0, end - start) for start, end in windows)
        elif rule.phase is None:
            duration = ctx.recorder.duration()
        else:  # the phase is only known from the recorder's keys
            duration = (stats.last_t - stats.first_t
                        if stats.first_t is not None and stats.last_t is not None else None)
        if not duration:
            return None, stats.count, "run duration unknown or zero"
        return stats.successes / duration, stats.count, note
    assert metric.percentile is not None
    return stats.percentile_ms(metric.percentile), stats.count, note


def _step_ratio(rule: Rule, ctx: _Context) -> tuple[float | None, int, str]:
    """Step A's percentile over step B's, same phase and instance: fewer requests of the two
    count as the samples; a failed request of A is +inf (so is the ratio)."""
    metric = rule.metric
    assert metric.percentile is not None and metric.versus is not None
    pair = [ctx.recorder.select(step, rule.phase, rule.instance)
            for step in (metric.subject, metric.versus)]
    samples = min(s.count for s in pair)
    for stats, step in zip(pair, (metric.subject, metric.versus), strict=True):
        if stats.count == 0:
            return None, 0, f"no {step} requests"
    top, bottom = (s.percentile_ms(metric.percentile) for s in pair)
    assert top is not None and bottom is not None
    note = f"{metric.subject} {_ms(top)} / {metric.versus} {_ms(bottom)}"
    if math.isinf(bottom):
        return None, samples, f"{note}: too many {metric.versus} failures to compare"
    return (math.inf if math.isinf(top) else top / max(bottom, 1e-3)), samples, note


def _ms(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.4g} ms"


# -- series metrics ------------------------------------------------------------------------

def _in_windows(t: float, windows: list[Window]) -> bool:
    return any(start <= t <= end for start, end in windows)


def _matching(rule: Rule, samples: Iterable[Sample]) -> list[Sample]:
    return [s for s in samples
            if (rule.instance is None or s.instance == rule.instance)
            and all(str(s.labels.get(k)) == v for k, v in rule.labels.items())]


def _series_value(rule: Rule, ctx: _Context,
                  windows: list[Window]) -> tuple[float | None, int, str]:
    metric = rule.metric
    every = _matching(rule, ctx.samples(metric.subject))
    inside = [s for s in every if _in_windows(s.t, windows)]
    if metric.kind == COUNTER and metric.stat == "increase":
        return _increase(every, windows), len(inside), ""
    if metric.kind == TALLY and metric.stat in ("count", "rate_per_s"):
        return _tally(rule, ctx, every, inside, windows)
    if metric.kind == SPREAD:
        return _spread(metric.stat, inside)
    nulls = sum(s.value is None for s in inside)
    if metric.kind == LATENCY:
        # A probe that got no answer is slower than any answer.
        values = [math.inf if s.value is None else s.value for s in inside]
        note = f"{nulls} of {len(inside)} probes got no answer (+inf)" if nulls else ""
    else:
        values = [s.value for s in inside if s.value is not None]
        note = ""
    if not values:
        return None, len(inside), f"no {metric.subject} samples"
    stat = metric.stat
    if stat == "min":
        finite = [v for v in values if not math.isinf(v)]
        return (min(finite) if finite else math.inf), len(inside), note
    if stat == "max":
        return max(values), len(inside), note
    if stat == "mean":
        return sum(values) / len(values), len(inside), note
    if stat == "last":
        return values[-1], len(inside), note  # samples are in time order per signal
    assert metric.percentile is not None
    return nearest_rank(values, metric.percentile), len(inside), note


def _tally(rule: Rule, ctx: _Context, every: list[Sample], inside: list[Sample],
           windows: list[Window]) -> tuple[float | None, int, str]:
    """Occurrences counted in the windows (the increase of the cumulative count), or per second
    of the windows (the run's duration when the rule has no phase)."""
    count = _increase(every, windows)
    if count is None or rule.metric.stat == "count":
        return count, len(inside), ""
    if windows is EVERYTHING:
        duration = ctx.recorder.duration()
    else:
        duration = sum(max(0.0, end - start) for start, end in windows)
    if not duration:
        return None, len(inside), "run duration unknown or zero"
    return count / duration, len(inside), f"{count:.0f} in {duration:.0f} s"


def _spread(stat: str, inside: list[Sample]) -> tuple[float | None, int, str]:
    """A gauge per label value, sampled together: ``distinct`` is the most label values present
    (value > 0) at one sample time of one instance, ``max`` the largest single value. The
    samples are the sample times."""
    times: dict[tuple[str | None, float], list[Sample]] = defaultdict(list)
    for s in inside:
        if s.value is not None:
            times[(s.instance, s.t)].append(s)
    if not times:
        return None, 0, "no samples"
    if stat == "max":
        return max(s.value or 0.0 for group in times.values() for s in group), len(times), ""
    present = [sum(1 for s in group if s.value) for group in times.values()]
    return float(max(present)), len(times), ""


def _vs_baseline(rule: Rule, ctx: _Context,
                 windows: list[Window]) -> tuple[float | None, int, str]:
    """The signal's percentile in the rule's phase over the same percentile in the baseline
    phase (a latency probe with no answer counts as +inf in both)."""
    metric = rule.metric
    assert metric.percentile is not None and rule.baseline_phase is not None
    base_windows = ctx.windows(rule.baseline_phase)
    if base_windows is None:
        return None, 0, f"baseline phase {rule.baseline_phase!r} never ran"
    every = _matching(rule, ctx.samples(metric.subject))
    values = [_values(metric, [s for s in every if _in_windows(s.t, w)])
              for w in (windows, base_windows)]
    samples = min(len(v) for v in values)
    if samples == 0:
        return None, 0, f"no {metric.subject} samples in the phase or its baseline"
    now, base = (nearest_rank(v, metric.percentile) for v in values)
    note = f"{_fmt_value(now)} against {_fmt_value(base)} in {rule.baseline_phase}"
    if math.isinf(base):
        return None, samples, f"{note}: the baseline itself got no answer"
    return (math.inf if math.isinf(now) else now / max(base, 1e-6)), samples, note


def _values(metric: Metric, samples: list[Sample]) -> list[float]:
    if metric.kind == LATENCY:
        return [math.inf if s.value is None else s.value for s in samples]
    return [s.value for s in samples if s.value is not None]


def _fmt_value(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.4g}"


def nearest_rank(values: list[float], percentile: float) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(percentile / 100.0 * len(ordered)))
    return ordered[rank - 1]


def _increase(samples: list[Sample], windows: list[Window]) -> float | None:
    """Sum of a counter's increases inside the windows, per (instance, labels) series, with the
    last sample before a window as its baseline and resets (a drop) counted from zero."""
    groups: dict[tuple[Any, ...], list[Sample]] = defaultdict(list)
    for s in samples:
        if s.value is not None:
            key = (s.instance, tuple(sorted((k, str(v)) for k, v in s.labels.items())))
            groups[key].append(s)
    total = 0.0
    seen = False
    for series in groups.values():
        series.sort(key=lambda s: s.t)
        for start, end in windows:
            previous: float | None = None
            for s in series:
                if s.t < start:
                    previous = s.value
                    continue
                if s.t > end:
                    break
                seen = True
                if previous is not None:
                    assert s.value is not None
                    total += s.value - previous if s.value >= previous else s.value
                previous = s.value
    return total if seen else None


# -- integrity metrics ----------------------------------------------------------------------

NO_AUDIT = "no integrity audit in this run (no integrity user)"


def _integrity_value(rule: Rule, ctx: _Context) -> tuple[float | None, int | None, str]:
    """The last count the audit wrote (integrity_STAT); samples = messages it checked."""
    found = ctx.samples(f"integrity_{rule.metric.stat}")
    if not found:
        return None, None, NO_AUDIT
    last = found[-1]
    checked = ctx.samples("integrity_checked")
    samples = int(checked[-1].value) if checked and checked[-1].value is not None else None
    if last.value is None:
        return None, samples, f"integrity audit {last.labels.get('why', 'gave no value')}"
    return last.value, samples, ""


# -- event metrics -------------------------------------------------------------------------

def _event_value(rule: Rule, ctx: _Context,
                 windows: list[Window]) -> tuple[float | None, int | None, str]:
    metric = rule.metric
    events: list[Event] = [e for e in ctx.events(metric.subject)
                           if (rule.instance is None or e.instance == rule.instance)
                           and (metric.subject != "fault" or _injected(e))]
    faults = ([(f.t, _end(f, ctx)) for f in ctx.events("fault") if _injected(f)
               and (rule.instance is None or f.instance in (None, rule.instance))]
              if metric.stat == "longest_outside_faults_s" else [])
    overlaps: list[float] = []
    for ev in events:
        end = _end(ev, ctx)
        if not _overlaps(ev.t, end, windows):
            continue
        if faults:
            overlaps.append(max((_clipped(piece, windows) for piece in
                                 outside((ev.t, end), faults)), default=0.0))
        else:
            overlaps.append(_clipped((ev.t, end), windows))
    samples: int | None = None
    if metric.witness:
        witness = _matching(rule, ctx.samples(metric.witness))
        samples = sum(_in_windows(s.t, windows) for s in witness)
    if metric.stat == "count":
        value = float(len(overlaps))
    elif metric.stat == "total_s":
        value = sum(overlaps)
    else:  # longest_s, longest_outside_faults_s
        value = max(overlaps, default=0.0)
    note = f"{len(overlaps)} {metric.subject} events" if overlaps else ""
    if faults:
        note += f"{', ' if note else ''}{len(faults)} fault windows excluded"
    return value, samples, note


def _clipped(interval: Window, windows: list[Window]) -> float:
    """Seconds of ``interval`` inside ``windows``."""
    start, end = interval
    return sum(max(0.0, min(end, w_end) - max(start, w_start)) for w_start, w_end in windows)


def outside(interval: Window, holes: list[Window]) -> list[Window]:
    """The pieces of ``interval`` not covered by any of ``holes`` (pure)."""
    pieces = [interval]
    for hole_start, hole_end in holes:
        rest: list[Window] = []
        for start, end in pieces:
            if hole_end <= start or hole_start >= end:
                rest.append((start, end))
                continue
            if hole_start > start:
                rest.append((start, hole_start))
            if hole_end < end:
                rest.append((hole_end, end))
        pieces = rest
    return pieces
