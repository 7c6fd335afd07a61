"""What the server tab shows, as plain data: the chart layout, new points since a cursor, events
and gate rows. Pure module: no Flask, no Locust, no gevent (tested on literal samples).

The browser polls with a cursor (how many samples of the store it has seen) rather than a time:
probes record a sample at their *scheduled* time when they finish, up to a timeout later, so a
time cursor would drop late samples. The store only appends, so an index is exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from loadtest.core.series import Event, Sample
from loadtest.core.signals import SIGNALS, drawn_on, label

# Events drawn on every chart. Phases label the time axis; the rest are shaded bands.
MARKED_EVENT_KINDS = ("stall", "heartbeat_gap", "fault", "collector_gap", "phase")
MAX_EVENTS = 500  # the newest ones; a run with more has bigger problems than the chart


@dataclass(frozen=True)
class Line:
    signal: str
    label: str


@dataclass(frozen=True)
class Chart:
    key: str  # signals name it as their chart (loadtest.core.signals)
    title: str
    axis: str = ""  # the value axis' title
    log: bool = False  # latencies: a 1 s spike must not flatten 2 ms to the floor
    integer: bool = False  # counts: whole-number ticks

    @property
    def lines(self) -> tuple[Line, ...]:
        """The signals declared on this chart, in declaration order, with their labels."""
        return tuple(Line(name, label(name)) for name in drawn_on(chart=self.key))

    @property
    def unit(self) -> str:
        """After values in the legend and on the top tick: the lines' unit when they share one."""
        units = {SIGNALS[line.signal].unit for line in self.lines}
        return units.pop() if len(units) == 1 else ""

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "unit": self.unit, "axis": self.axis,
                "log": self.log, "integer": self.integer,
                "lines": [{"signal": ln.signal, "label": ln.label} for ln in self.lines]}


CHARTS: tuple[Chart, ...] = (
    Chart("latency", "New-connection greeting vs held-session NOOP", axis="ms (log)", log=True),
    Chart("heartbeat", "Master heartbeat: seconds since master.txt was written",
          axis="seconds"),
    Chart("spawns", "Spawns per second (master)", axis="spawns/s"),
    Chart("workers", "Ready workers and imapd processes", axis="processes", integer=True),
    Chart("backlog", "Listen backlog and overflows (host-wide, since start)", axis="connections",
          integer=True),
    Chart("canary", "Filesystem canary (create + unlink)", axis="ms (log)", log=True),
    Chart("load", "Load average", axis="load / processes"),
)
CHARTED_SIGNALS = frozenset(line.signal for chart in CHARTS for line in chart.lines)


def series_key(signal: str, instance: str | None) -> str:
    """One line per signal and Cyrus instance; labels (service, address family) are summed."""
    return signal if instance is None else f"{signal}@{instance}"


Points = dict[str, list[list[Any]]]


def new_points(samples: Sequence[Sample], cursor: int,
               signals: Iterable[str] = CHARTED_SIGNALS) -> tuple[Points, int]:
    """Points of the charted signals among ``samples[cursor:]`` and the next cursor. A cursor
    past the end (a new run's store) starts again from 0."""
    if cursor < 0 or cursor > len(samples):
        cursor = 0
    return chart_points(samples[cursor:], signals), len(samples)


def chart_points(samples: Iterable[Sample], signals: Iterable[str] = CHARTED_SIGNALS) -> Points:
    """Points of the charted signals among ``samples``, per series key, in time order.

    Samples of one key at the same time (one per service and address family, e.g. ready
    workers of imap on ipv4 and ipv6) are summed into one point; a gap (value None) stays None
    unless another sample at that time has a value.
    """
    wanted = frozenset(signals)
    merged: dict[str, dict[float, float | None]] = {}
    for sample in samples:
        if sample.signal not in wanted:
            continue
        by_time = merged.setdefault(series_key(sample.signal, sample.instance), {})
        value = sample.value
        if value is not None and not math.isfinite(value):
            value = None  # JSON has no infinity; an unanswered probe is a gap on the chart
        old = by_time.get(sample.t)
        if old is not None:
            by_time[sample.t] = old + value if value is not None else old
        else:
            by_time[sample.t] = value
    return {key: [[t, v] for t, v in sorted(by_time.items())] for key, by_time in merged.items()}


def event_dicts(events: Iterable[Event], kinds: Iterable[str] = MARKED_EVENT_KINDS,
                limit: int = MAX_EVENTS) -> list[dict[str, Any]]:
    """Events to mark, oldest first, at most ``limit`` (the newest)."""
    wanted = frozenset(kinds)
    chosen = [e for e in events if e.kind in wanted]
    chosen.sort(key=lambda e: e.t)
    return [{"t": e.t, "end": e.end, "kind": e.kind, "instance": e.instance,
             "label": event_label(e)} for e in chosen[-limit:]]


def event_label(event: Event) -> str:
    detail = event.detail
    if event.kind == "phase":
        return str(detail.get("name", "phase"))
    if event.kind == "fault":
        what = detail.get("name") or detail.get("fault") or detail.get("action") or "fault"
        return f"fault: {what}"
    if event.kind == "collector_gap":
        return f"collector gap: {detail.get('collector', '?')}"
    if event.kind == "heartbeat_gap":
        return "master heartbeat gap"
    return "master stall"


STATUS_ORDER = {"fail": 0, "error": 0, "inconclusive": 1, "waiting": 2, "pass": 3}
WAITING = "waiting"


def gate_rows(verdict: dict[str, Any], phases_seen: Iterable[str] | None = None,
              failed_at: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Rows of the gate table from ``Verdict.to_dict()``, failing rules first: keys without
    underscores, because Locust's UI camel-cases the keys of extended tables.

    ``phases_seen``: phases that have begun; a rule of a phase not reached yet is "waiting"
    (when None, every phase counts as reached). ``failed_at``: rule key -> run-relative seconds
    when the rule was first seen failing (the live tab keeps it)."""
    seen = None if phases_seen is None else set(phases_seen)
    rows = []
    for result in verdict.get("results", []):
        status = result.get("status", "")
        phase = result.get("phase")
        if seen is not None and phase and phase not in seen:
            status = WAITING
        key = rule_key(result)
        since = (failed_at or {}).get(key)
        rows.append({
            "rule": result.get("name") or result.get("metric"),
            "metric": result.get("metric"),
            "scope": result["scope"],
            "threshold": result.get("threshold", ""),
            "measured": result.get("measured_text", ""),
            "samples": "" if result.get("samples") is None else result["samples"],
            "status": status,
            "since": "" if since is None or status != "fail" else f"+{since:.0f} s",
            # The reason repeats measured and threshold for pass/fail; it explains the rest.
            "reason": ("phase not reached yet" if status == WAITING else
                       "" if status in ("pass", "fail") else result.get("reason", "")),
            "key": key,
        })
    rows.sort(key=lambda r: STATUS_ORDER.get(r["status"], 4))
    return rows


def rule_key(result: dict[str, Any]) -> str:
    return f"{result.get('name') or result.get('metric')}|{result.get('scope', '')}"


GATE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("status", "Status"), ("rule", "Rule"), ("scope", "Scope"), ("threshold", "Threshold"),
    ("measured", "Now"), ("samples", "Samples"), ("since", "Failing since"), ("reason", "Note"),
)


def gate_columns() -> list[dict[str, str]]:
    """The gate table's columns (key of ``gate_rows``, title), for Locust's extended table and
    the server page alike."""
    return [{"key": key, "title": title} for key, title in GATE_COLUMNS]


def overall(rows: list[dict[str, Any]], status: str) -> str:
    """One line for the top of the tab: the verdict now and how many rules fail."""
    failing = [r for r in rows if r["status"] == "fail"]
    waiting = sum(1 for r in rows if r["status"] == WAITING)
    text = f"gate {status.upper()} now"
    if failing:
        text += f": {len(failing)} of {len(rows)} rules failing ({failing[0]['rule']}"
        text += f" since {failing[0]['since']})" if failing[0]["since"] else ")"
    else:
        text += f": {len(rows)} rules"
    if waiting:
        text += f", {waiting} waiting for their phase"
    return text


# The start form's custom parameters, grouped, with labels in words (Locust lists them in
# alphabetical order with labels made from the option names). Options not listed here go last,
# under "Other", with Locust's own label.
FORM_GROUPS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Target", (
        ("deployment", "Deployment (deployment.json or its folder)"),
        ("imap_instances", "Instances of the deployment"),
        ("imap_host", "IMAP host (instead of the deployment)"),
        ("imap_port", "IMAP port"),
        ("imap_tls", "TLS"),
        ("imap_ca_file", "CA certificates file"),
        ("imap_tls_insecure", "Do not verify the certificate"),
        ("imap_tls_resume", "Resume TLS sessions"),
    )),
    ("Users", (
        ("acceptance_users", "Churn users at the peak (acceptance)"),
        ("acceptance_held", "Held sessions (acceptance)"),
        ("scenario_users", "Peak users (scenario)"),
        ("scenario_held", "Held sessions (scenario)"),
        ("imap_users_file", "Users file (CSV)"),
        ("imap_user_pattern", "User name pattern"),
        ("imap_user_count", "Users in the pattern"),
    )),
    ("Behaviour", (
        ("imap_disconnect", "How sessions end"),
        ("imap_rate", "Sessions per second per user (open loop)"),
        ("imap_wait", "Seconds between sessions (closed loop)"),
        ("imap_churn_steps", "Churn steps after LOGIN"),
        ("imap_lean", "Lean raw-socket churn"),
        ("imap_multiplex", "One loop drives every connection (floods, lean churn)"),
        ("imap_held_steps", "Held-session steps"),
        ("imap_held_interval", "Seconds between held-session rounds"),
        ("imap_idle_seconds", "Seconds per IDLE"),
        ("imap_flood_login", "Floods log in before dropping"),
        ("imap_connect_timeout", "Connect timeout (s)"),
        ("imap_timeout", "Response timeout (s)"),
    )),
    ("Run", (
        ("acceptance_duration", "Duration in seconds (acceptance)"),
        ("scenario_duration", "Duration in seconds (scenario)"),
        ("gate", "Gate rules file"),
        ("faults", "Faults to inject"),
        ("collectors", "Collectors"),
        ("probe_rate", "Probes per second"),
        ("collector_interval", "Seconds between samples"),
        ("stall_threshold", "Stall threshold (s)"),
        ("heartbeat_threshold", "Heartbeat gap threshold (s)"),
        ("metrics_url", "Master's /metrics URL"),
        ("agent_url", "Collector agent URL (a Cyrus on another host)"),
        ("agent_token_file", "Agent token file"),
        ("baseline", "Baseline run folder (relative rules)"),
        ("artifacts", "Artifacts folder"),
        ("run_name", "Run folder name"),
    )),
    ("Integrity", (
        ("integrity_appends", "APPENDs per session (integrity users)"),
        ("integrity_fetches", "Acknowledged messages fetched and compared per session"),
        ("integrity_cut_ratio", "Share of APPENDs cut by RST before the reply"),
    )),
)


def form_layout(help_of: dict[str, str]) -> list[dict[str, Any]]:
    """The groups for the page script: each option by the name Locust gives its field
    (camelCase), with its label and help (``help_of``: option name -> help text)."""
    listed = {name for _title, options in FORM_GROUPS for name, _label in options}
    groups = [{"title": title, "options": [
        {"field": camel(name), "label": label, "help": help_of.get(name, "")}
        for name, label in options]} for title, options in FORM_GROUPS]
    rest = [{"field": camel(name), "label": "", "help": ""} for name in sorted(help_of)
            if name not in listed]
    if rest:
        groups.append({"title": "Other", "options": rest})
    return groups


def camel(name: str) -> str:
    """Locust's field name for an option: imap_disconnect -> imapDisconnect."""
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)
