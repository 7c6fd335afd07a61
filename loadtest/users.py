"""Locust users for Cyrus IMAP: churn, held sessions, reconnect floods.

Each user adapts the session core's step reports to Locust: a failed step fires
``environment.events.request`` at once (request_type ``IMAP``, name = step,
``context["instance"]`` and ``context["failure_class"]``); successes go to the process's
:class:`loadtest.batch.StepBatcher`, which hands them to Locust's stats and the gate in
batches (at least every quarter second). A failed step ends the iteration; the failure was
already reported once by the session.

Pacing: closed loop (``--imap-wait``) or open loop (``--imap-rate`` sessions/s per user). In
open loop each session has a scheduled start (``t0 + k / rate``); a late session starts at once
(the schedule is kept, so a slow server does not lower the offered load) and its lateness is
fired as request_type ``PACING``, name ``SCHEDULE_LAG`` (milliseconds, never a failure).
"""

from __future__ import annotations

import contextlib
import itertools
from time import perf_counter
from typing import Any, TypeVar

import gevent
from locust import User, events, task

from loadtest import plugin
from loadtest.batch import batcher_of
from loadtest.core.credentials import Credential
from loadtest.imap import failures as f
from loadtest.imap import steptable
from loadtest.imap.config import ImapConfig
from loadtest.imap.failures import StepFailure
from loadtest.imap.lean import LeanSession, login_command
from loadtest.imap.session import ImapSession
from loadtest.imap.timed import TimedSession
from loadtest.imap.transport import DISCONNECT_LOGOUT, DISCONNECT_RESET

PACING_REQUEST_TYPE = "PACING"
SCHEDULE_LAG = "SCHEDULE_LAG"

SessionT = TypeVar("SessionT", bound=TimedSession)

# Simulated users across all classes in this process take consecutive credentials.
_user_counter = itertools.count()


class ImapUser(User):
    """Base: a target and a credential per user, the step reporter, pacing."""

    abstract = True
    default_disconnect = DISCONNECT_LOGOUT
    needs_credentials = True
    session: TimedSession  # made by each user class

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        config: ImapConfig = plugin.imap_config(environment)
        self.config = config
        self.index = _next_index(environment)  # unique among the run's simulated users
        self.target, self.credential = config.slot(self.index)
        self.disconnect_mode = config.disconnect or self.default_disconnect
        self._fire = environment.events.request.fire
        self._batcher = batcher_of(environment)  # successes in batches (loadtest.batch)
        self._next_start: float | None = None
        self._period = 1.0 / config.rate if config.rate > 0 else 0.0

    def _new_session(self, cls: type[SessionT]) -> SessionT:
        return cls(self.target, self.report, self.config.connect_timeout, self.config.timeout)

    def _credential(self) -> Credential:
        # config.slot gives every user a credential when its class needs one (or refuses the run)
        if self.credential is None:
            raise RuntimeError(f"{type(self).__name__} needs a credential and has none")
        return self.credential
    def _multiplex(self, login_line: bytes | None, list_mailboxes: bool) -> None:
        """--imap-multiplex: hand this user's connection to the process's event loop
        (loadtest.driver); the user's own greenlet then only waits to be stopped."""
        from loadtest.driver import driver_of
        from loadtest.imap.multiplex import Connection, program

        config = self.config
        self._driver = driver_of(self.environment, config.connect_timeout, config.timeout,
                                 (PACING_REQUEST_TYPE, SCHEDULE_LAG))
        self._connection = Connection(self.target, program(login_line, list_mailboxes,
                                                           self.disconnect_mode), self.disconnect_mode,
                                      self._period)
        self._driver.join(self._connection)

    def _multiplexed(self) -> bool:
        """In a task: True (after waiting until the user stops) when the loop drives it."""
        if getattr(self, "_connection", None) is None:
            return False
        gevent.sleep(3600)
        return True

    # -- Locust hooks ------------------------------------------------------------------------

    def on_stop(self) -> None:
        if getattr(self, "_connection", None) is not None:
            self._driver.leave(self._connection)
            return
        self.session.abort()

    def wait_time(self) -> float:
        if self._period:
            if self._next_start is None:
                return 0.0
            return max(0.0, self._next_start - perf_counter())
        return self.config.think_time()

    # -- reporting ---------------------------------------------------------------------------

    def report(self, step: str, response_time_ms: float, length: int, failure: StepFailure | None) -> None:
        if failure is None:
            self._batcher.success(f.REQUEST_TYPE, step, response_time_ms, length, self.target.instance)
            return
        context = {"instance": self.target.instance, "failure_class": failure.failure_class}
        if failure.detail:
            context["failure_detail"] = failure.detail
        self._fire(
            request_type=f.REQUEST_TYPE,
            name=step,
            response_time=response_time_ms,
            response_length=length,
            exception=failure,
            context=context,
        )

    def pace(self) -> None:
        """Open loop: record how late this session starts and schedule the next one."""
        if not self._period:
            return
        now = perf_counter()
        if self._next_start is None:
            self._next_start = now
        lag_ms = max(0.0, (now - self._next_start) * 1000.0)
        self._batcher.success(PACING_REQUEST_TYPE, SCHEDULE_LAG, lag_ms, 0, self.target.instance)
        self._next_start += self._period


def _next_index(environment: Any) -> int:
    """Spread users over credentials across workers too: the worker in slot i of n takes
    i, i+n, i+2n, ... so two workers never log in as the same mailbox at once (while the users
    file has enough entries)."""
    local = next(_user_counter)
    slot, count = worker_slot(environment)
    return local * count + slot


# Set by the master on its parsed options at test start; Locust sends the master's custom
# options to every worker with each spawn message, before the worker creates a user.
WORKER_SLOTS_OPTION = "cyrus_loadtest_worker_slots"


def worker_slot(environment: Any) -> tuple[int, int]:
    """(slot, count) of this process among the run's workers.

    From the master's assignment (every worker, remote ones too, see :func:`assign_worker_slots`),
    else from ``--processes N`` and Locust's worker index, else (0, 1): a local run, or a worker
    that joined after the test started (it may then share credentials with another one).
    """
    runner = environment.runner
    options = environment.parsed_options
    if runner is None or options is None:
        return 0, 1
    assigned = getattr(options, WORKER_SLOTS_OPTION, None)
    client_id = getattr(runner, "client_id", None)
    if assigned and client_id in assigned.get("slots", {}):
        return int(assigned["slots"][client_id]), max(1, int(assigned["count"]))
    workers = getattr(options, "processes", None) or 1
    index = getattr(runner, "worker_index", 0)
    if workers <= 1 or not 0 <= index < workers:
        return 0, 1
    return index, workers


def slot_assignment(worker_ids: list[str]) -> dict[str, Any]:
    """Dense slots 0..n-1 for the workers (ids in Locust's worker-index order) and their count."""
    return {"count": len(worker_ids), "slots": {wid: i for i, wid in enumerate(worker_ids)}}


@events.test_start.add_listener
def assign_worker_slots(environment: Any, **_kwargs: Any) -> None:
    """On the master: give each connected worker a slot and the worker count (Locust's own
    worker indexes only grow as workers come and go, and a remote worker cannot know how many
    others there are)."""
    from locust.runners import MasterRunner

    runner = environment.runner
    if not isinstance(runner, MasterRunner) or environment.parsed_options is None:
        return
    nodes = runner.clients.ready + runner.clients.spawning + runner.clients.running
    ids = sorted((node.id for node in nodes), key=runner.get_worker_index)
    setattr(environment.parsed_options, WORKER_SLOTS_OPTION, slot_assignment(ids))


class ChurnUser(ImapUser):
    """connect, LOGIN, LIST (and optionally SELECT/STATUS/FETCH), logout; repeat."""

    session: LeanSession | ImapSession

    def on_start(self) -> None:
        if self.config.lean:
            self.session = self._new_session(LeanSession)
            self._login_line = login_command(self._credential())
            if self.config.multiplex:
                self._multiplex(self._login_line, list_mailboxes=True)
        else:
            self.session = self._new_session(ImapSession)

    @task
    def churn(self) -> None:
        if self._multiplexed():
            return
        self.pace()
        session = self.session
        try:
            session.connect()
            if isinstance(session, LeanSession):
                session.login(self._login_line)
                session.list()
            else:
                session.login(self._credential())
                for step in self.config.churn_steps:
                    steptable.run_step(session, step, self.config)
            session.disconnect(self.disconnect_mode)
        except StepFailure:
            pass  # reported once by the session; the iteration ends


class HeldSessionUser(ImapUser):
    """Logs in once and keeps the session: NOOP/STATUS/IDLE every interval, reconnecting when the
    server drops it. It measures what existing users feel while others churn."""

    session: ImapSession

    def on_start(self) -> None:
        self.session = self._new_session(ImapSession)

    def on_stop(self) -> None:
        with contextlib.suppress(StepFailure):
            self.session.disconnect(DISCONNECT_LOGOUT)

    def wait_time(self) -> float:
        return self.config.held_interval

    @task
    def hold(self) -> None:
        session = self.session
        try:
            if not session.connected:
                session.connect()
                session.login(self._credential())
            for step in self.config.held_steps:
                steptable.run_step(session, step, self.config)
        except StepFailure:
            pass  # torn down; the next round reconnects


class ReconnectFloodUser(ImapUser):
    """connect, greeting, optionally LOGIN, drop abruptly (reset by default, or close), and
    reconnect at once: the firewall-drop / DDoS pattern of the Konstanz incident."""

    default_disconnect = DISCONNECT_RESET
    needs_credentials = False  # unless --imap-flood-login
    session: LeanSession

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.session = self._new_session(LeanSession)
        self._login_line = login_command(self._credential()) if self.config.flood_login else None

    def on_start(self) -> None:
        if self.config.multiplex:
            self._multiplex(self._login_line, list_mailboxes=False)

    @task
    def flood(self) -> None:
        if self._multiplexed():
            return
        self.pace()
        session = self.session
        try:
            session.connect()
            if self._login_line is not None:
                session.login(self._login_line)
            session.disconnect(self.disconnect_mode)
        except StepFailure:
            pass
