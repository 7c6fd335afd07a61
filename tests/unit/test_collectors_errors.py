"""Cyrus's error lines as the `cyrus_errors` counter (on literal syslog text and a log file this
test writes), and collector gaps that never end before they begin."""

from __future__ import annotations

from pathlib import Path

from loadtest.collectors.config import CollectorConfig
from loadtest.collectors.runtime import Clock, Runtime
from loadtest.collectors.samplers import Context, CyrusErrorSampler, Gaps, Target
from loadtest.core.parsers import count_cyrus_errors
from loadtest.core.series import SeriesStore
from loadtest.gate.metrics import parse_metric

SYSLOG = b"""\
<21>Dec  1 08:18:36 loadtest-slot1/ctl_cyrusdb[2036]: recovering cyrus databases
<19>Dec  1 08:18:40 loadtest-slot1/imap[2101]: IOERROR: creating message file /x/stage./2101-1-1 File exists
<19>Dec  1 08:18:41 loadtest-slot1/imap[2102]: DBERROR: opening /x/mailboxes.db: cyrusdb error
<18>Dec  1 08:18:42 loadtest-slot1/imap[2103]: Fatal error: can't read config file
<21>Dec  1 08:18:43 loadtest-slot1/imap[2104]: login: localhost [127.0.0.1] user0001 plaintext
<21>Dec  1 08:18:44 loadtest-slot1/imap[2105]: IOERRORS is not a word Cyrus logs
"""


def test_error_lines_are_counted_by_kind() -> None:
    assert count_cyrus_errors(SYSLOG) == {"IOERROR": 1, "DBERROR": 1, "fatal": 1}
    assert count_cyrus_errors(b"") == {}


def sampler(log: Path) -> tuple[CyrusErrorSampler, SeriesStore]:
    store = SeriesStore()
    ctx = Context(store, Runtime(), Clock(), CollectorConfig(), Gaps(store))
    target = Target(name="slot1", host="127.0.0.1", port=143, pid_file="", master_pid=None,
                    stats_file="", data_dir="", proc_dir="", listen_backlog=None,
                    log_file=str(log))
    return CyrusErrorSampler(ctx, target), store


def step(errors: CyrusErrorSampler, t: float) -> None:
    errors.process(t, errors.read())


def test_counts_only_lines_logged_after_start_and_whole_lines_once(tmp_path: Path) -> None:
    log = tmp_path / "syslog.log"
    log.write_bytes(SYSLOG)  # before the run: not counted
    errors, store = sampler(log)
    step(errors, 1.0)
    with log.open("ab") as fh:
        fh.write(b"<19>Dec  1 08:19:00 loadtest-slot1/imap[9]: IOERROR: fsync")  # no newline yet
    step(errors, 2.0)
    with log.open("ab") as fh:
        fh.write(b" failed\n<19>Dec  1 08:19:01 loadtest-slot1/imap[9]: DBERROR: x\n")
    step(errors, 3.0)
    step(errors, 4.0)
    samples = [(s.t, s.value, s.labels) for s in store.samples("cyrus_errors")]
    assert samples == [(1.0, 0.0, {}), (2.0, 0.0, {}), (3.0, 2.0, {}), (4.0, 2.0, {})]
    assert errors.counts == {"IOERROR": 1, "DBERROR": 1}


def test_a_truncated_log_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "syslog.log"
    log.write_bytes(SYSLOG)
    errors, store = sampler(log)
    step(errors, 1.0)
    log.write_bytes(b"<19>Dec  1 08:19:00 loadtest-slot1/imap[9]: IOERROR: x\n")
    step(errors, 2.0)
    assert [s.value for s in store.samples("cyrus_errors")] == [0.0, 1.0]


def test_cyrus_errors_is_a_gate_counter() -> None:
    assert parse_metric("cyrus_errors.increase").name == "cyrus_errors.increase"


def test_a_gap_closed_by_an_earlier_tick_does_not_end_before_it_began() -> None:
    store = SeriesStore()
    gaps = Gaps(store)
    # tick 11 finds tick 10's read still running; tick 10's read then finishes and says ok
    gaps.gap("canary_proc", "slot1", "previous read still running (hung?)", 11.0)
    gaps.ok("canary_proc", "slot1", 10.0)
    gaps.gap("canary_data", "slot1", "slow", 21.0)
    gaps.gap("canary_data", "slot1", "slower", 20.0)  # another cause, reported late
    gaps.close_all(30.0)
    events = store.events("collector_gap")
    assert len(events) == 3
    assert all(e.end is not None and e.end >= e.t for e in events)


def test_deploy_down_reports_the_errors_in_an_instance_log(tmp_path: Path) -> None:
    from loadtest.deploy.manager import log_errors

    log = tmp_path / "syslog.log"
    log.write_bytes(SYSLOG)
    said = log_errors(str(log))
    assert said.startswith("Cyrus errors in its log: 1 DBERROR, 1 IOERROR, 1 fatal; first: ")
    assert "IOERROR: creating message file" in said
    log.write_bytes(SYSLOG.splitlines(keepends=True)[0])
    assert log_errors(str(log)) == "no Cyrus errors in its log"
    assert "unreadable" in log_errors(str(tmp_path / "gone.log"))
