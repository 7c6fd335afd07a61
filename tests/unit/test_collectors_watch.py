"""`watch` without a server: option errors and the table rows."""

from __future__ import annotations

import argparse

import pytest

from loadtest.collectors import SeriesStore
from loadtest.collectors.watch import Newest, add_arguments, latest, run
from loadtest.errors import UsageError


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(("argv", "message"), [
    (["--duration", "soon"], "--duration 'soon' (from flag --duration): not a number"),
    (["--duration", "0"], "must be > 0"),
    (["--probe-rate", "-1"], "probe_rate=-1.0 in flag --probe-rate: must be > 0"),
    (["--collectors", "probe,cpu"], "unknown collector 'cpu' in flag --collectors"),
])
def test_bad_options_are_usage_errors_naming_the_flag(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(parse("--deployment", "/nonexistent", *argv))


def test_missing_deployment_is_a_usage_error(tmp_path: object) -> None:
    with pytest.raises(UsageError, match="no deployment at"):
        run(parse("--deployment", f"{tmp_path}/none", "--duration", "1"))


def test_latest_keeps_the_newest_sample_per_series() -> None:
    store = SeriesStore()
    store.add("ready_workers", 3, t=10.0, instance="s1", service="imap", family="ipv4")
    store.add("ready_workers", 0, t=11.0, instance="s1", service="imap", family="ipv4")
    store.add("ready_workers", 1, t=11.0, instance="s1", service="idled", family="daemon")
    store.add("load1", None, t=11.0, why="gone")
    store.add("load1", 0.5, t=5.0)
    assert latest(store, since=9.0) == [
        ("host", "load1", "why=gone", "gap"),
        ("s1", "ready_workers", "family=daemon,service=idled", "1"),
        ("s1", "ready_workers", "family=ipv4,service=imap", "0"),
    ]


def test_newest_follows_the_store_reading_only_what_is_new() -> None:
    store = SeriesStore()
    newest = Newest(store)
    store.add("load1", 0.5, t=10.0)
    newest.update()
    assert newest.rows(since=9.0) == [("host", "load1", "", "0.5")]
    store.add("load1", 0.75, t=12.0)
    store.add("load1", 0.25, t=11.0)  # late: not the newest
    newest.update()
    assert newest.rows(since=9.0) == [("host", "load1", "", "0.75")]
    assert newest.rows(since=13.0) == []


def test_board_rows_have_unit_threshold_and_state() -> None:
    from loadtest.collectors.config import CollectorConfig
    from loadtest.collectors.watch import BAD, GAP, NO_DATA, OK, WARN, Row, board_rows, plain_block

    store = SeriesStore()
    store.add("greeting_latency_ms", 2.0, t=10.0, instance="s1")
    store.add("greeting_latency_ms", 1400.0, t=11.0, instance="s1")
    store.add("heartbeat_age_s", 1.5, t=11.0, instance="s1")
    store.add("ready_workers", 0, t=11.0, instance="s1", service="imap", family="ipv4")
    store.add("ready_workers", 0, t=11.0, instance="s1", service="imap", family="ipv6")
    store.add("load1", None, t=11.0, why="gone")
    store.add("spawns_per_s", 3.0, t=2.0, instance="s1")
    rows = board_rows(store, CollectorConfig(), since=9.0)
    assert rows == [
        Row("greeting (new connection)", "s1", "1400.0 ms", "> 1000 ms", BAD),
        Row("master heartbeat age", "s1", "1.5 s", "> 2.5 s", WARN),
        Row("spawns (master)", "s1", "-", "", NO_DATA),
        Row("ready workers", "s1", "0", "= 0", BAD),
        Row("load average", "host", "gap", "", GAP),
    ]
    assert OK not in {r.state for r in rows}
    block = plain_block(rows, "title")
    assert block.splitlines()[0] == "--- title"
    assert "greeting (new connection) [s1]" in block and "(bad > 1000 ms)" in block
