"""imaptest's output parsed from literal text, and the ratios `bench --imaptest` prints (pure)."""

from __future__ import annotations

import pytest

from loadtest.bench import figures as fg
from loadtest.bench import imaptest as it

# imaptest 1.0 (release-2.3) output of a churn run: per-second rows, the averages, then totals.
# Its rows end with a space (printf("%4d ")): kept here as written.
CHURN_OUTPUT = (
    "Logi List Logo \n"
    "100% 100% 100% \n"
    "1685 1683 1684   10/ 10\n"
    "1702 1703 1702   10/ 10\n"
    "   4    3    3 ms/cmd avg\n"
    "\n"
    "Totals:\n"
    "Logi List Logo \n"
    "100% 100% 100% \n"
    "25283 25280 25281 \n"
)

# An "again" probability row under the percentages, and two states printed as "Noop".
AGAIN_OUTPUT = (
    "Totals:\n"
    "Logi List Noop Fetc Fet2 Noop Logo \n"
    "100%  50% 100% 100% 100%   0% 100% \n"
    "                     30%           \n"
    "  12    6   40   12    9    2   11 \n"
)


def test_totals_of_a_churn_run() -> None:
    assert it.parse_totals(CHURN_OUTPUT) == {"Logi": 25283, "List": 25280, "Logo": 25281}


def test_probability_rows_are_skipped_and_shared_names_summed() -> None:
    totals = it.parse_totals(AGAIN_OUTPUT)
    assert totals == {"Logi": 12, "List": 6, "Noop": 42, "Fetc": 12, "Fet2": 9, "Logo": 11}


def test_only_the_last_totals_table_counts() -> None:
    twice = CHURN_OUTPUT.replace("25283 25280 25281", "1 1 1") + CHURN_OUTPUT
    assert it.parse_totals(twice)["Logo"] == 25281


@pytest.mark.parametrize(("text", "message"), [
    ("Fatal: Invalid probabilities\n", "no 'Totals:' line"),
    ("Totals:\n", "nothing after 'Totals:'"),
    ("Totals:\nLogi Logo \n100% 100% \n", "no line of counts"),
    ("Totals:\nLogi Logo \n100% 100% \n  12 \n", "2 names but 1 counts"),
    ("Totals:\nLogi Logo \n  12 Error: boom\n", "unexpected line after 'Totals:'"),
])
def test_output_without_readable_totals_is_an_error(text: str, message: str) -> None:
    with pytest.raises(it.ImaptestOutputError, match=message):
        it.parse_totals(text)


def _run(totals: dict[str, int], user: float = 0.0, system: float = 0.0, rss_kb: int = 0,
         wall: float = 10.0, clients: int = 10) -> it.ImaptestRun:
    return it.ImaptestRun(totals, user, system, rss_kb, wall, clients, ["imaptest"])


def test_command_line_asks_for_the_userfile_and_states() -> None:
    argv = it.command("/x/imaptest", "127.0.0.1", 1143, "/tmp/u", 10, 15, it.CHURN_STATES)
    assert argv[:7] == ["/x/imaptest", "user=unused", "userfile=/tmp/u", "host=127.0.0.1",
                        "port=1143", "clients=10", "secs=15"]
    assert argv[7:] == ["-", "select=0", "login=100", "list=100", "logout=100"]


def test_imaptest_churn_figures() -> None:
    cpu, rate = it.churn_figures(_run({"Logi": 10001, "List": 10000, "Logo": 10000},
                                      user=0.5, system=1.2), "cyrus")
    assert cpu.key == "imaptest_churn_cpu_us_cyrus" and cpu.value == 170.0
    assert cpu.detail["user_us_per_session"] == 50.0 and cpu.detail["system_us_per_session"] == 120.0
    assert rate.key == "imaptest_churn_sessions_per_s_cyrus" and rate.value == 1000.0


def test_imaptest_flood_counts_disconnects() -> None:
    fig = it.flood_figure(_run({"Logi": 0, "Logo": 0, "Disc": 27000}, user=1.0, system=1.0), "cyrus")
    assert fig.key == "imaptest_flood_login_cycles_per_core_cyrus" and fig.value == 13500.0


def test_imaptest_held_memory_is_the_difference_to_one_client() -> None:
    many = _run({"Logi": 501, "Noop": 9}, rss_kb=18000, clients=501)
    one = _run({"Logi": 1, "Noop": 9}, rss_kb=12000, clients=1)
    assert it.held_kb_per_session(many, one) == 12.0
    assert it.held_figure(many, one, "responder").key == "imaptest_held_kb_per_session_responder"


def _fig(key: str, value: float | None) -> fg.Figure:
    return fg.Figure(key, key, value, "", "")


def test_ratios_are_ours_over_imaptests() -> None:
    figures = [_fig("lean_churn_cpu_us_cyrus", 255.0), _fig("imaptest_churn_cpu_us_cyrus", 170.0),
               _fig("lean_churn_sessions_per_s_cyrus", 1500.0),
               _fig("imaptest_churn_sessions_per_s_cyrus", 1600.0)]
    ratios = {f.key: f for f in it.ratio_figures(figures)}
    assert set(ratios) == {"ratio_churn_cpu_per_session", "ratio_churn_sessions_per_s",
                           "ratio_multiplexed_churn_cpu_per_session",
                           "ratio_multiplexed_churn_sessions_per_s"}
    assert ratios["ratio_multiplexed_churn_cpu_per_session"].value is None  # ours not measured
    assert ratios["ratio_churn_cpu_per_session"].value == 1.5
    assert ratios["ratio_churn_cpu_per_session"].detail["better"] == "lower"
    assert ratios["ratio_churn_sessions_per_s"].value == 0.94  # 0.9375, two decimals
    assert ratios["ratio_churn_sessions_per_s"].detail["better"] == "higher"


def test_a_ratio_with_a_side_missing_has_no_value_and_says_why() -> None:
    figures = [_fig("held_kb_per_session", 20.0), _fig("imaptest_held_kb_per_session_responder", None)]
    (fig,) = it.ratio_figures(figures)
    assert fig.value is None
    assert fig.detail["why"] == "imaptest_held_kb_per_session_responder not measured"
    zero = it.ratio_figures([_fig("held_kb_per_session", 20.0),
                             _fig("imaptest_held_kb_per_session_responder", 0.0)])
    assert zero[0].value is None  # no division by zero, no made-up number
