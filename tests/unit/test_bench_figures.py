"""Benchmark figures from literal measurements; argument checks of `cyrus-loadtest bench`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from loadtest.bench import cli
from loadtest.bench import figures as fg
from loadtest.errors import UsageError

CHURN = {"users": 10, "wall_seconds": 5.0, "user_cpu_seconds": 0.6, "system_cpu_seconds": 0.4,
         "total_failures": 0,
         "steps": {"CONNECT": {"requests": 5002, "failures": 2}, "LOGOUT": {"requests": 5000, "failures": 0}}}


def test_churn_cpu_per_session_is_cpu_over_completed_sessions() -> None:
    cpu, rate = fg.churn_figures(CHURN, "lean", "responder")
    assert cpu.key == "lean_churn_cpu_us_responder"
    assert cpu.value == 200.0 and cpu.unit == "µs"  # 1.0 s CPU / 5000 sessions
    assert cpu.detail["user_us_per_session"] == 120.0 and cpu.detail["system_us_per_session"] == 80.0
    assert cpu.target == "<= 230" and cpu.met is True
    assert rate.value == 1000.0 and rate.met is None  # no target against the responder
    assert "getrusage" in cpu.method


def test_a_missed_target_is_reported_as_missed() -> None:
    raw = {**CHURN, "user_cpu_seconds": 2.0}
    cpu, _ = fg.churn_figures(raw, "lean", "responder")
    assert cpu.value == 480.0 and cpu.met is False
    assert fg.table_rows([cpu])[0][3] == "MISSED"


def test_no_sessions_is_no_figure_not_zero() -> None:
    raw = {**CHURN, "steps": {"LOGOUT": {"requests": 3, "failures": 3}}}
    cpu, rate = fg.churn_figures(raw, "imapclient", "cyrus")
    assert cpu.value is None and cpu.met is None and rate.value == 0.0


def test_tls_figures_put_generator_and_cyrus_cpu_per_session_side_by_side() -> None:
    gen, server, rate = fg.tls_churn_figures({**CHURN, "server_cpu_seconds": 6.0},
                                             "starttls+resume")
    assert (gen.key, gen.value) == ("tls_starttls_resume_generator_cpu_us", 200.0)
    assert (server.key, server.value) == ("tls_starttls_resume_cyrus_cpu_us", 1200.0)
    assert rate.value == 1000.0 and "cutime" in server.method
    # a run without the server's pid measured no server CPU: no figure, not zero
    _, unmeasured, _ = fg.tls_churn_figures(CHURN, "plain")
    assert unmeasured.value is None


def test_tls_flood_figures() -> None:
    raw = {"users": 10, "wall_seconds": 5.0, "user_cpu_seconds": 0.5, "system_cpu_seconds": 0.5,
           "server_cpu_seconds": 2.0, "steps": {"CONNECT": {"requests": 4000, "failures": 0}}}
    rate, server = fg.tls_flood_figures(raw, "implicit")
    assert (rate.key, rate.value) == ("tls_implicit_flood_cycles_per_s", 800.0)
    assert rate.detail["generator_us_per_cycle"] == 250.0
    assert (server.key, server.value) == ("tls_implicit_flood_cyrus_cpu_us", 500.0)


def test_flood_cycles_per_core() -> None:
    raw = {"users": 10, "wall_seconds": 5.0, "user_cpu_seconds": 1.0, "system_cpu_seconds": 1.0,
           "steps": {"CONNECT": {"requests": 20000, "failures": 0}}}
    fig = fg.flood_figure(raw)
    assert fig.key == "lean_flood_cycles_per_core_responder"
    assert fig.value == 10000.0 and fig.detail["cycles_per_s"] == 4000.0
    assert fig.met is False  # the target is 20,000 (issue 16)


def test_flood_with_login_counts_login_successes() -> None:
    raw = {"users": 10, "wall_seconds": 5.0, "user_cpu_seconds": 0.5, "system_cpu_seconds": 0.5,
           "steps": {"CONNECT": {"requests": 30000, "failures": 0},
                     "LOGIN": {"requests": 25000, "failures": 1000}}}
    fig = fg.flood_figure(raw, "cyrus", login=True)
    assert fig.key == "lean_flood_login_cycles_per_core_cyrus"
    assert fig.value == 24000.0 and fig.met is True


def test_held_memory_per_session() -> None:
    raw = {"logged_in": 5000, "rss_before_bytes": 50 * 2**20, "rss_after_bytes": 150 * 2**20}
    per_session, count = fg.held_figures(raw, 5000)
    assert per_session.value == pytest.approx(20.5, abs=0.1) and per_session.met is False  # <= 20
    assert count.value == 5000.0 and count.met is True
    lean = fg.held_figures({**raw, "rss_after_bytes": 140 * 2**20}, 5000)[0]
    assert lean.value == pytest.approx(18.4, abs=0.1) and lean.met is True
    short = fg.held_figures({**raw, "logged_in": 4000}, 5000)[1]
    assert short.met is False


def test_open_loop_lateness_figure() -> None:
    raw = {**CHURN, "rate_per_user": 80.0,
           "schedule_lag": {"requests": 4000, "failures": 0, "p50_ms": 1, "p95_ms": 4, "p99_ms": 9,
                            "max_ms": 30.0}}
    fig = fg.open_loop_figure(raw, capacity=1000.0, share=0.8)
    assert fig.value == 9 and fig.detail["offered_sessions_per_s"] == 800.0
    assert fig.detail["achieved_sessions_per_s"] == 1000.0
    assert fig.key == "open_loop_lag_p99_ms_cyrus" and fig.detail["fell_behind"] is False
    behind = fg.open_loop_figure({**raw, "rate_per_user": 200.0}, 2500.0, 0.8)
    assert behind.detail["fell_behind"] is True  # offered 2000/s, achieved 1000/s
    assert fg.open_loop_figure(raw, 1000.0, 0.8, "responder").key == "open_loop_lag_p99_ms_responder"


def test_document_is_json_with_targets_and_verdicts() -> None:
    figs = [*fg.churn_figures(CHURN, "lean", "responder"),
            fg.missing("collectors_core_percent", "collectors", "%", "script not found")]
    doc = json.loads(json.dumps(fg.document(figs, {"command": "cyrus-loadtest bench"})))
    assert doc["format"] == fg.FORMAT and doc["command"] == "cyrus-loadtest bench"
    last = doc["figures"][-1]
    assert last["value"] is None and last["met"] is None and last["detail"]["why"] == "script not found"
    assert "script not found" in fg.table_rows(figs)[-1][1]


def test_collectors_cost_json_line_is_parsed() -> None:
    out = ("master 1 has 50 children\ncollectors (threads), default rates (probe 4/s, others every "
           "1 s), 50 imapd children: 0.123 s CPU in 10.0 s = 1.23 % of one core; 400 samples "
           "(40/s), missed ticks 0\n"
           '{"core_percent": 1.23, "cpu_s": 0.123, "wall_s": 10.0, "samples": 400, '
           '"imapd_children": 50, "missed_ticks": 0}\n')
    percent, detail = cli.parse_collectors_cost(out)
    assert percent == 1.23 and detail == {"cpu_s": 0.123, "wall_s": 10.0, "samples": 400}
    assert cli.parse_collectors_cost("Traceback ...") == (None, {})
    assert cli.parse_collectors_cost("") == (None, {})
    # The human line alone (no JSON after it: the script was killed) is no figure.
    assert cli.parse_collectors_cost(out.splitlines()[1]) == (None, {})


def _args(**kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args([])
    for k, v in kw.items():
        setattr(args, k, v)
    return args


@pytest.mark.parametrize(("kw", "message"), [
    ({"skip": "cyrus,bogus"}, "--skip 'cyrus,bogus': unknown part 'bogus'"),
    ({"seconds": 0.0}, "--seconds 0.0"),
    ({"users": 0}, "--users 0"),
    ({"held": 10**6}, "--held 1000000"),
    ({"deploy_dir": "/nonexistent/dir"}, "--deploy-dir '/nonexistent/dir': not a directory"),
    ({"json_path": "/nonexistent/dir/b.json"}, "--json '/nonexistent/dir/b.json'"),
    ({"volatile_dir": "/nonexistent/tmpfs"}, "--volatile-dir '/nonexistent/tmpfs': not a directory"),
    ({"imaptest": "/nonexistent/imaptest"}, "--imaptest '/nonexistent/imaptest': not an executable file"),
    ({"imaptest": "/etc/passwd"}, "--imaptest '/etc/passwd': not an executable file"),
])
def test_bad_arguments_are_one_line_usage_errors(kw: dict, message: str) -> None:
    with pytest.raises(UsageError) as err:
        cli.check_args(_args(**kw))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_defaults_and_long() -> None:
    assert cli.check_args(_args())["seconds"] == 5.0
    assert cli.check_args(_args(long=True))["seconds"] == 20.0


def test_volatile_dir_follows_debian_layout_on_disk() -> None:
    # tmpfs deployment: nothing to move; a disk deployment: proc, lock, stats on /dev/shm
    assert cli.check_args(_args(deploy_dir="/dev/shm"))["volatile_dir"] is None
    assert cli.check_args(_args(deploy_dir="/var/tmp"))["volatile_dir"] == Path("/dev/shm")
    assert cli.check_args(_args(deploy_dir="/var/tmp", volatile_dir="none"))["volatile_dir"] is None
    assert cli.check_args(_args(volatile_dir="/tmp"))["volatile_dir"] == Path("/tmp")


def test_filesystem_of_the_bench_directories() -> None:
    assert cli.filesystem_type(Path("/dev/shm")) == "tmpfs"


def test_handshakes_logged_counts_resumed_and_new(tmp_path: Path) -> None:
    log = tmp_path / "syslog.log"
    log.write_text(
        "<21>x loadtest-s/imaps[1]: starttls: TLSv1.3 with cipher A (256/256 bits new) no auth\n"
        "<21>x loadtest-s/imaps[2]: starttls: TLSv1.2 with cipher B (256/256 bits reused) no auth\n"
        "<21>x loadtest-s/imaps[2]: starttls: TLSv1.2 with cipher B (256/256 bits reused) no auth\n")
    assert cli.handshakes_logged(log) == (2, 1)
    assert cli.handshakes_logged(tmp_path / "none") == (0, 0)
