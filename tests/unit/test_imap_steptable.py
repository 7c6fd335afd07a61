"""The step table: derived lists, prerequisites and dispatch, on literal data and fake sessions."""

from __future__ import annotations

from typing import Any

import pytest

from loadtest.imap import steptable as st
from loadtest.imap.config import CHURN_OPTIONAL_STEPS, HELD_STEPS
from loadtest.imap.lean import LeanSession
from loadtest.imap.session import ImapSession


def test_step_names_are_unique_and_rows_are_found_by_name() -> None:
    assert len(set(st.STEPS)) == len(st.STEPS)
    assert st.step("FETCH").needs == ("LOGIN", "SELECT")


def test_options_choose_from_the_kinds_steps() -> None:
    assert st.chosen_steps(st.CHURN) == CHURN_OPTIONAL_STEPS == ("LIST", "SELECT", "STATUS", "FETCH")
    assert st.chosen_steps(st.HELD) == HELD_STEPS == ("NOOP", "STATUS", "IDLE")
    assert st.chosen_steps(st.FLOOD) == ()


def test_prerequisites() -> None:
    assert st.missing_prerequisite(st.CHURN, ["LIST", "FETCH"]) == ("FETCH", "SELECT")
    assert st.missing_prerequisite(st.CHURN, ["FETCH", "SELECT"]) is None
    # LOGIN is always run by the user, never chosen: not a missing prerequisite.
    assert st.missing_prerequisite(st.HELD, ["STATUS", "IDLE"]) is None


def test_every_declared_method_exists_on_its_session() -> None:
    for row in st.TABLE:
        assert row.users and set(row.users) <= set(st.USER_KINDS), row
        assert set(row.chosen_by) <= set(row.users), row
        assert set(row.needs) < set(st.STEPS), row
        if row.method is not None:
            assert callable(getattr(ImapSession, row.method)), row
        if row.lean_method is not None:
            assert callable(getattr(LeanSession, row.lean_method)), row


class FakeSession:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args: self.calls.append((name, args))


class Config:
    idle_seconds = 2.5


def test_run_step_calls_the_method_with_its_argument() -> None:
    session = FakeSession()
    for name in ("LIST", "STATUS", "IDLE"):
        st.run_step(session, name, Config())
    assert session.calls == [("list", ()), ("status", ()), ("idle", (2.5,))]
    st.run_step(session, "LIST", Config(), lean=True)
    assert session.calls[-1] == ("list", ())


def test_an_unknown_step_is_an_error_not_a_skip() -> None:
    session = FakeSession()
    with pytest.raises(ValueError, match=r"unknown IMAP step 'MOVE' \(known: CONNECT, LOGIN"):
        st.run_step(session, "MOVE", Config())
    with pytest.raises(ValueError, match="'CREATE' has no method on the imapclient session"):
        st.run_step(session, "CREATE", Config())
    with pytest.raises(ValueError, match="'NOOP' has no method on the lean session"):
        st.run_step(session, "NOOP", Config(), lean=True)
    assert session.calls == []
