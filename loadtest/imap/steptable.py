"""The IMAP steps, each declared once: its name, the session methods that time it, which users
run it, what it needs first.

Pure module: no Locust, no gevent, no I/O. Everything else that lists steps derives from
``TABLE``: the step names (``loadtest.imap.failures``), the gate's step metrics
(``loadtest.gate.metrics``), the options that choose steps and their prerequisite check
(``loadtest.imap.config``) and the users' dispatch (``loadtest.users``, through
:func:`session_method`).

Rows are in session order: a user that runs several chosen steps runs them in table order
(churn: LIST, SELECT, STATUS, FETCH; held sessions: NOOP, STATUS, IDLE).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# User kinds (loadtest.users, loadtest.integrity_user): who runs a step.
CHURN = "churn"  # connect, LOGIN, chosen steps, logout; repeat
HELD = "held"  # one long session: chosen steps every interval
FLOOD = "flood"  # connect (optionally LOGIN) and drop
INTEGRITY = "integrity"  # writes and reads back acknowledged mail
USER_KINDS = (CHURN, HELD, FLOOD, INTEGRITY)

# Step names: the Locust request name of each timed step (docs/internals.md).
CONNECT = "CONNECT"
LOGIN = "LOGIN"
LIST = "LIST"
SELECT = "SELECT"
NOOP = "NOOP"
STATUS = "STATUS"
FETCH = "FETCH"
IDLE = "IDLE"
LOGOUT = "LOGOUT"
CREATE = "CREATE"
APPEND = "APPEND"


@dataclass(frozen=True)
class Step:
    name: str
    method: str | None  # the timed method of the imapclient session (loadtest.imap.session)
    lean_method: str | None  # the timed method of the raw-socket session (loadtest.imap.lean)
    users: tuple[str, ...]  # user kinds that run it
    chosen_by: tuple[str, ...] = ()  # user kinds whose --imap-KIND-steps option may choose it
    needs: tuple[str, ...] = ()  # steps that must have run first in the same session
    argument: str | None = None  # the ImapConfig field passed to the method, e.g. idle_seconds


TABLE: tuple[Step, ...] = (
    Step(CONNECT, "connect", "connect", (CHURN, HELD, FLOOD, INTEGRITY)),
    Step(LOGIN, "login", "login", (CHURN, HELD, FLOOD, INTEGRITY), needs=(CONNECT,)),
    Step(LIST, "list", "list", (CHURN, INTEGRITY), (CHURN,), needs=(LOGIN,)),
    Step(SELECT, "select", None, (CHURN, INTEGRITY), (CHURN,), needs=(LOGIN,)),
    Step(NOOP, "noop", None, (HELD,), (HELD,), needs=(LOGIN,)),
    Step(STATUS, "status", None, (CHURN, HELD), (CHURN, HELD), needs=(LOGIN,)),
    Step(FETCH, "fetch", None, (CHURN, INTEGRITY), (CHURN,), needs=(LOGIN, SELECT)),
    Step(IDLE, "idle", None, (HELD,), (HELD,), needs=(LOGIN,), argument="idle_seconds"),
    Step(LOGOUT, "logout", "logout", (CHURN, HELD, FLOOD, INTEGRITY), needs=(CONNECT,)),
    # The integrity user's own steps, sent through the lean session's generic exchange().
    Step(CREATE, None, None, (INTEGRITY,), needs=(LOGIN,)),
    Step(APPEND, None, "append", (INTEGRITY,), needs=(LOGIN,)),
)

STEPS: tuple[str, ...] = tuple(step.name for step in TABLE)
_BY_NAME = {step.name: step for step in TABLE}


def step(name: str) -> Step:
    """The row of ``name``; ValueError naming the known steps for any other name."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown IMAP step {name!r} (known: {', '.join(STEPS)})") from None


def chosen_steps(kind: str) -> tuple[str, ...]:
    """The steps the options of user kind ``kind`` choose from, in session order."""
    return tuple(s.name for s in TABLE if kind in s.chosen_by)


def missing_prerequisite(kind: str, chosen: Iterable[str]) -> tuple[str, str] | None:
    """(step, the step it needs) for the first chosen step of ``kind`` whose prerequisite is
    choosable for that kind but not chosen (e.g. FETCH without SELECT); None when all are met.
    Prerequisites the user always runs (CONNECT, LOGIN) are not chosen and need no check."""
    chosen = set(chosen)
    choosable = set(chosen_steps(kind))
    for row in TABLE:
        if row.name in chosen:
            for need in row.needs:
                if need in choosable and need not in chosen:
                    return row.name, need
    return None


def run_step(session: Any, name: str, config: Any, *, lean: bool = False) -> Any:
    """Run step ``name`` on ``session``, with its argument (if any) taken from ``config`` (an
    ImapConfig); ValueError as :func:`session_method`."""
    method = session_method(session, name, lean=lean)
    argument = step(name).argument
    return method(getattr(config, argument)) if argument else method()


def session_method(session: Any, name: str, *, lean: bool = False) -> Callable[..., Any]:
    """The bound method of ``session`` that times step ``name`` (the lean session's with
    ``lean``). ValueError for an unknown step or one that session type has no method for: a
    step the options accept but nothing runs is a bug, never a silent skip."""
    row = step(name)
    method = row.lean_method if lean else row.method
    if method is None:
        path = "lean" if lean else "imapclient"
        raise ValueError(f"IMAP step {name!r} has no method on the {path} session")
    return getattr(session, method)
