"""Nothing lost under stress: the Locust user that writes mail and keeps a ledger, and the
wiring that gathers the ledger and audits it when the run ends.

``IntegrityUser`` (lean raw-socket path), one session per iteration: connect, LOGIN, LIST
(INBOX, the provisioned folders and its own folder must be listed), CREATE its own folder once,
SELECT it (UIDVALIDITY unchanged, EXISTS within what its ledger allows), UID FETCH a few
acknowledged messages and compare their bytes, then APPEND ``--integrity-appends`` messages,
each with a unique id and a body checksum. With probability ``--integrity-cut-ratio`` an APPEND
is cut: the connection is reset (RST) right after the literal, before the tagged reply, and the
session ends there. Otherwise the session ends as ``--imap-disconnect`` says (default logout).
A response that does not say what it must is the failure class ``protocol error``.

Every APPEND goes into the ledger (:mod:`loadtest.integrity.ledger`): on the master or local
runner into ``ledger.jsonl`` in the run folder every second; a worker sends its entries to the
master with its reports. When the run ends, before the gate, the ledger is audited
(:mod:`loadtest.integrity.cli`): ``audit.json`` and the samples behind the gate metrics
``integrity.checked/lost/duplicated/corrupt``.
"""

from __future__ import annotations

import random
import secrets
import weakref
from collections import deque
from typing import Any

from locust import events, task

from loadtest import plugin
from loadtest.core.credentials import quote
from loadtest.deploy.provision import DEFAULT_FOLDERS
from loadtest.imap import failures as f
from loadtest.imap.failures import ProtocolError, StepFailure
from loadtest.imap.lean import LeanSession, login_command
from loadtest.imap.response import fetch_messages, list_names, select_state
from loadtest.integrity import ledger as lg
from loadtest.integrity.message import digest, make_message
from loadtest.settings import Option, declare, positive_int
from loadtest.shapes import Phase, PhasedShape, fast_spawn_rate
from loadtest.users import ChurnUser, HeldSessionUser, ImapUser, ReconnectFloodUser


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("not a number") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError("must be between 0 and 1")
    return value


declare(
    Option("integrity_cut_ratio", "integrity users: share of APPENDs cut by RST right after "
           "the literal, before the server's reply (0..1)", default="0.1", parse=_ratio,
           group="cyrus-loadtest integrity"),
    Option("integrity_appends", "integrity users: APPENDs per session", default="5",
           parse=positive_int, group="cyrus-loadtest integrity"),
    Option("integrity_fetches", "integrity users: acknowledged messages fetched and compared "
           "per session", default="3", parse=positive_int, group="cyrus-loadtest integrity"),
)

# Set on the master's (or local runner's) parsed options at init; Locust sends the master's
# options to every worker with each spawn message, so all processes name folders alike.
TOKEN_OPTION = "cyrus_loadtest_integrity_token"
LEDGER_REPORT_KEY = "cyrus_loadtest_ledger"
FOLDER_PREFIX = "lt-integrity"
FLUSH_INTERVAL_S = 1.0
FETCH_POOL = 1000  # FETCH checks pick among this many latest acknowledged messages per user
_fallback_token = secrets.token_hex(3)  # library mode: no parsed options to share
_ledgers: weakref.WeakKeyDictionary[Any, lg.Ledger] = weakref.WeakKeyDictionary()
_collecting: weakref.WeakSet[Any] = weakref.WeakSet()  # master / local environments

_LIST = b's LIST "" "*"\r\n'
_TAG_LIST, _TAG_CREATE, _TAG_SELECT, _TAG_FETCH = b"s ", b"c ", b"e ", b"f "


def ledger_of(environment: Any) -> lg.Ledger:
    ledger = _ledgers.get(environment)
    if ledger is None:
        ledger = _ledgers[environment] = lg.Ledger()
    return ledger


def run_token(environment: Any) -> str:
    options = environment.parsed_options
    return getattr(options, TOKEN_OPTION, None) or _fallback_token


class IntegrityUser(ImapUser):
    """Writes messages to its own folder, checks what it reads back, keeps the ledger."""

    session: LeanSession

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        settings = plugin.settings_of(environment)
        self.cut_ratio: float = settings["integrity_cut_ratio"] if settings else 0.1
        self.appends: int = settings["integrity_appends"] if settings else 5
        self.fetches: int = settings["integrity_fetches"] if settings else 3
        self.ledger = ledger_of(environment)
        self.token = run_token(environment)
        self.folder = f"{FOLDER_PREFIX}-{self.token}-{self.index}"
        self._folder_arg = quote(self.folder)
        self.where = {"instance": self.target.instance, "host": self.target.host,
                      "port": self.target.port, "user": self._credential().username,
                      "mailbox": self.folder}
        # The provisioned folders are known for a deployment of ours, not for another server.
        self.expected_folders = {"INBOX", *(DEFAULT_FOLDERS if self.target.instance else ())}
        self.rng = random.Random()
        self.session = self._new_session(LeanSession)
        self._login_line = login_command(self._credential())
        self._created = False
        self._uidvalidity: int | None = None
        self._acked_count = 0
        # the latest acknowledged messages, for the FETCH checks: (uid, sha256, id)
        self._acked: deque[tuple[int, str, str]] = deque(maxlen=FETCH_POOL)
        self._unresolved = 0  # cut, failed: may or may not be in the folder
        self._seq = 0

    @task
    def write_and_check(self) -> None:
        self.pace()
        session = self.session
        try:
            session.connect()
            session.login(self._login_line)
            self._list()
            if not self._created:
                session.exchange(f.CREATE, _TAG_CREATE + b"CREATE " + self._folder_arg + b"\r\n",
                                 _TAG_CREATE)
                self._created = True
            self._select()
            if self._acked:
                self._fetch()
            for _ in range(self.appends):
                if not self._append():
                    return  # cut: the connection is gone
            session.disconnect(self.disconnect_mode)
        except StepFailure:
            pass  # reported once by the session; the iteration ends

    # -- steps with their checks ---------------------------------------------------------------

    def _list(self) -> None:
        def check(data: bytes) -> None:
            names = set(list_names(data))
            if "INBOX" not in {n.upper() for n in names}:
                raise ProtocolError("LIST without INBOX")
            missing = self.expected_folders - names - {"INBOX"}
            if missing:
                raise ProtocolError("LIST without a provisioned folder")
            if self.folder in names:
                self._created = True  # a CREATE whose reply was lost still made it
            elif self._created:
                raise ProtocolError("LIST without the user's own folder")

        self.session.exchange(f.LIST, _LIST, _TAG_LIST, check)

    def _select(self) -> None:
        def check(data: bytes) -> None:
            state = select_state(data)
            if self._uidvalidity is None:
                self._uidvalidity = state.uidvalidity
                self.ledger.record(lg.MAILBOX, self.where, uidvalidity=state.uidvalidity,
                                   mailboxid=state.mailboxid)
            elif state.uidvalidity != self._uidvalidity:
                raise ProtocolError("UIDVALIDITY changed")
            acked = self._acked_count
            if not acked <= state.exists <= acked + self._unresolved:
                raise ProtocolError("EXISTS does not match the ledger")

        self.session.exchange(f.SELECT, _TAG_SELECT + b"SELECT " + self._folder_arg + b"\r\n",
                              _TAG_SELECT, check)

    def _fetch(self) -> None:
        chosen = self.rng.sample(self._acked, min(self.fetches, len(self._acked)))
        uids = b",".join(b"%d" % uid for uid, _, _ in chosen)

        def check(data: bytes) -> None:
            bodies = {m.uid: m.body for m in fetch_messages(data)}
            for uid, sha, message_id in chosen:
                body = bodies.get(uid)
                if body is None:
                    raise ProtocolError("FETCH left out an acknowledged message")
                got = digest(body)
                if got != sha:
                    self.ledger.record(lg.MISMATCH, self.where, id=message_id, uid=uid, sha256=got)
                    raise ProtocolError("FETCH returned other bytes than acknowledged")

        self.session.exchange(f.FETCH, _TAG_FETCH + b"UID FETCH " + uids + b" (UID BODY.PEEK[])\r\n",
                              _TAG_FETCH, check)

    def _append(self) -> bool:
        """One APPEND with its ledger lines; False when it was cut (the connection is gone)."""
        self._seq += 1
        message_id = f"{self.token}-{self.index}-{self._seq}"
        message = make_message(message_id, self._credential().username, self.rng)
        sha = digest(message)
        self.ledger.record(lg.APPEND, self.where, id=message_id, sha256=sha, size=len(message))
        cut = self.rng.random() < self.cut_ratio
        try:
            uids = self.session.append(self._folder_arg, message, cut=cut)
        except StepFailure as failure:
            self._unresolved += 1
            self.ledger.record(lg.FAILED, self.where, id=message_id, why=failure.failure_class)
            raise
        if uids is None:
            self._unresolved += 1
            self.ledger.record(lg.CUT, self.where, id=message_id)
            return False
        validity, uid = uids
        self.ledger.record(lg.ACK, self.where, id=message_id, uidvalidity=validity, uid=uid)
        self._acked.append((uid, sha, message_id))
        self._acked_count += 1
        return True


# -- the shape: mail written during churn and floods ------------------------------------------


def plan_integrity(duration: float, writers: int, churn: int, held: int) -> list[Phase]:
    """The acceptance scenario's phases with ``writers`` integrity users writing throughout:
    held sessions, then the writers (both "warm-up", 15 %), a churn ramp to ``churn`` users
    (50 %), a reconnect flood with as many flood users on top (35 %). One class per step, as
    in :func:`loadtest.shapes.plan_acceptance`."""
    t0, t1, t2 = duration * 0.05, duration * 0.15, duration * 0.65
    fast = fast_spawn_rate(held, writers, churn)
    base = held + writers
    return [
        Phase("warm-up", 0.0, t0, held, fast, (HeldSessionUser,)),
        Phase("warm-up", t0, t1, base, fast, (IntegrityUser,)),
        Phase("churn-ramp", t1, t2, base + churn, fast, (ChurnUser,), ramp_from=base),
        Phase("reconnect-flood", t2, duration, base + 2 * churn, fast, (ReconnectFloodUser,)),
    ]


class IntegrityShape(PhasedShape):
    """-t sets the duration (else --acceptance-duration), -u the integrity users (else
    --acceptance-users); churn and flood users and held sessions as in the acceptance shape."""

    use_common_options = True

    def plan(self) -> list[Phase]:
        settings: Any = self.settings()
        options = self.runner.environment.parsed_options if self.runner is not None else None
        duration = float(getattr(options, "run_time", None) or settings["acceptance_duration"])
        writers = int(getattr(options, "num_users", None) or settings["acceptance_users"])
        return plan_integrity(duration, writers, int(settings["acceptance_users"]),
                              int(settings["acceptance_held"]))


# -- the ledger's way to the run folder, and the audit at the end ------------------------------


@events.init.add_listener
def _set_up(environment: Any, **_kwargs: Any) -> None:
    run = plugin.run_of(environment)
    if run is None:
        return  # a worker (its reports carry the ledger) or library mode
    options = environment.parsed_options
    if options is not None and not getattr(options, TOKEN_OPTION, None):
        setattr(options, TOKEN_OPTION, secrets.token_hex(3))
    _collecting.add(environment)
    run.before_gate.append(lambda: _audit_at_end(environment, run))


@events.test_start.add_listener
def _start_flushing(environment: Any, **_kwargs: Any) -> None:
    run = plugin.run_of(environment)
    if run is None or getattr(run, "ledger_flusher", None) is not None:
        return
    import gevent

    ledger = ledger_of(environment)

    def flush_every_second() -> None:
        while True:
            gevent.sleep(FLUSH_INTERVAL_S)
            ledger.flush(run.folder)

    run.ledger_flusher = gevent.spawn(flush_every_second)


@events.report_to_master.add_listener
def _send_ledger(client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
    for environment, ledger in list(_ledgers.items()):
        if environment.runner is not None and getattr(environment.runner, "client_id", None) == client_id:
            entries = ledger.drain()
            if entries:
                data[LEDGER_REPORT_KEY] = entries


@events.worker_report.add_listener
def _merge_ledger(client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
    entries = data.get(LEDGER_REPORT_KEY)
    if entries:
        for environment in list(_collecting):
            ledger_of(environment).extend(entries)


def _audit_at_end(environment: Any, run: Any) -> None:
    from loadtest.integrity.cli import audit_at_end

    flusher = getattr(run, "ledger_flusher", None)
    if flusher is not None:
        flusher.kill(block=False)
    ledger = ledger_of(environment)
    ledger.flush(run.folder)
    if not ledger.count:
        return  # no integrity user in this run: nothing to audit
    audit_at_end(lg.read_ledger(run.folder), plugin.imap_config(environment), run.folder,
                 run.store)
