"""The server tab's data on literal samples: points since a cursor, events, gate rows."""

from __future__ import annotations

import math

from loadtest.core.series import Event, Sample, SeriesStore
from loadtest.core.steps import StepRecorder
from loadtest.gate.evaluate import evaluate
from loadtest.gate.rules import parse_rules
from loadtest.webui import payload


def s(t: float, signal: str, value: float | None, instance: str | None = None, **labels) -> Sample:
    return Sample(t, signal, value, instance, labels)


def test_points_since_cursor_per_signal_and_instance() -> None:
    samples = [
        s(10.0, "greeting_latency_ms", 2.5, "slot1"),
        s(10.0, "greeting_latency_ms", 3.5, "slot2"),
        s(10.0, "load1", 0.5),
        s(10.0, "not_charted", 1.0),
        s(11.0, "load1", 0.75),
    ]
    points, cursor = payload.new_points(samples, 0)
    assert cursor == 5
    assert points == {
        "greeting_latency_ms@slot1": [[10.0, 2.5]],
        "greeting_latency_ms@slot2": [[10.0, 3.5]],
        "load1": [[10.0, 0.5], [11.0, 0.75]],
    }
    later, cursor2 = payload.new_points(samples, 3)
    assert later == {"load1": [[11.0, 0.75]]} and cursor2 == 5


def test_same_instant_of_several_services_is_summed_and_gaps_stay_gaps() -> None:
    samples = [
        s(5.0, "ready_workers", 2.0, service="imap", family="ipv4"),
        s(5.0, "ready_workers", 3.0, service="imap", family="ipv6"),
        s(6.0, "ready_workers", None, why="stats file missing"),
        s(7.0, "ready_workers", None, service="imap", family="ipv4"),
        s(7.0, "ready_workers", 1.0, service="imap", family="ipv6"),
    ]
    points, _ = payload.new_points(samples, 0)
    assert points == {"ready_workers": [[5.0, 5.0], [6.0, None], [7.0, 1.0]]}


def test_late_probe_sample_is_not_lost_and_comes_out_in_time_order() -> None:
    # A probe records at its scheduled time when it finishes: appended after a newer sample.
    samples = [s(20.0, "greeting_latency_ms", 1.0), s(18.0, "greeting_latency_ms", 4000.0)]
    points, _ = payload.new_points(samples, 1)
    assert points == {"greeting_latency_ms": [[18.0, 4000.0]]}
    all_points, _ = payload.new_points(samples, 0)
    assert all_points["greeting_latency_ms"] == [[18.0, 4000.0], [20.0, 1.0]]


def test_infinite_value_becomes_a_gap_and_bad_cursor_restarts() -> None:
    samples = [s(1.0, "held_noop_latency_ms", math.inf)]
    assert payload.new_points(samples, 0)[0] == {"held_noop_latency_ms": [[1.0, None]]}
    assert payload.new_points(samples, 7) == ({"held_noop_latency_ms": [[1.0, None]]}, 1)
    assert payload.new_points(samples, -1)[1] == 1


def test_events_marked_oldest_first_newest_kept() -> None:
    events = [
        Event(30.0, "fault", 31.0, "slot1", {"name": "stop-master"}),
        Event(10.0, "stall", None, "slot1", {}),
        Event(20.0, "heartbeat_gap", 24.0, None, {}),
        Event(5.0, "something_else", None, None, {}),
        Event(0.0, "phase", 40.0, None, {"name": "churn-ramp"}),
    ]
    out = payload.event_dicts(events)
    assert [(e["t"], e["kind"], e["label"]) for e in out] == [
        (0.0, "phase", "churn-ramp"),
        (10.0, "stall", "master stall"),
        (20.0, "heartbeat_gap", "master heartbeat gap"),
        (30.0, "fault", "fault: stop-master"),
    ]
    assert out[1]["end"] is None and out[3]["end"] == 31.0
    assert [e["t"] for e in payload.event_dicts(events, limit=2)] == [20.0, 30.0]


def test_every_issue_chart_is_there() -> None:
    charted = payload.CHARTED_SIGNALS
    for signal in ("greeting_latency_ms", "held_noop_latency_ms", "spawns_per_s", "ready_workers",
                   "imapd_processes", "listen_queue", "canary_data_ms", "load1"):
        assert signal in charted


def test_gate_rows_from_a_real_verdict() -> None:
    rules = parse_rules(
        '[[rule]]\nmetric = "load1.max"\nmax = 4\n\n'
        '[[rule]]\nmetric = "greeting_latency_ms.p95"\nmax = 100\ninstance = "slot1"\n\n'
        '[[rule]]\nmetric = "LOGIN.p99_ms"\nmax = 250\n', "rules.toml")
    store = SeriesStore()
    for t, v in ((1.0, 0.5), (2.0, 6.0)):
        store.add("load1", v, t=t)
    store.add("greeting_latency_ms", 12.0, t=1.0, instance="slot1")
    verdict = evaluate(rules, StepRecorder(per_second=False), store).to_dict()
    rows = payload.gate_rows(verdict)
    assert [r["status"] for r in rows] == ["fail", "inconclusive", "pass"]  # failing first
    assert rows[0]["rule"] == "load1.max <= 4" and rows[0]["measured"] == "6"
    assert rows[2]["scope"] == "instance=slot1" and rows[2]["samples"] == 1
    assert rows[1]["measured"] == "no data"
    assert all("_" not in key for row in rows for key in row)


def test_gate_rows_failing_first_waiting_for_unreached_phases_and_failing_since() -> None:
    rules = parse_rules(
        '[[rule]]\nmetric = "load1.min"\nmin = 0\n\n'
        '[[rule]]\nmetric = "load1.max"\nmax = 4\nphase = "flood"\n\n'
        '[[rule]]\nmetric = "load1.max"\nmax = 4\n', "rules.toml")
    store = SeriesStore()
    for t, v in ((1.0, 0.5), (2.0, 6.0)):
        store.add("load1", v, t=t)
    verdict = evaluate(rules, StepRecorder(per_second=False), store).to_dict()
    key = payload.rule_key(verdict["results"][2])
    rows = payload.gate_rows(verdict, phases_seen=["warm-up"], failed_at={key: 12.4})
    assert [r["status"] for r in rows] == ["fail", "waiting", "pass"]
    assert rows[0]["since"] == "+12 s" and rows[0]["reason"] == ""
    assert rows[1]["reason"] == "phase not reached yet"
    assert payload.overall(rows, "fail") == (
        "gate FAIL now: 1 of 3 rules failing (load1.max <= 4 since +12 s), "
        "1 waiting for their phase")
