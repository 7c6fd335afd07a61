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
