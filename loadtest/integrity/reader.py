"""Reading the audited mailboxes over IMAP, as each mailbox's own user (sockets: the audit's
I/O edge). One session per user: for each of its ledger's mailboxes LIST, STATUS, EXAMINE,
``UID FETCH 1:* (UID)`` (what the index lists) and ``UID FETCH 1:* (BODY.PEEK[])`` (what can be
read, in slices of UIDs: Cyrus leaves out a message whose file is gone), then the INBOX for
the seed messages.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from loadtest.core.credentials import Credential, quote
from loadtest.imap import failures as f
from loadtest.imap.lean import LeanSession, login_command
from loadtest.imap.response import fetch_messages, list_names, status_state
from loadtest.imap.transport import DISCONNECT_LOGOUT, Target
from loadtest.integrity.audit import MailboxView, SeedView
from loadtest.integrity.ledger import MailboxKey, MailboxLedger

_TAG = b"r "
AUDIT_TIMEOUT_S = 60.0
BODIES_PER_FETCH = 500  # a long run's folder is read in slices, not as one response

# (instance, user) -> the Credential to log in with, or None (not known)
CredentialLookup = Callable[[str | None, str], Credential | None]


def _ignore(*_args: object) -> None:
    pass


def read_mailboxes(boxes: Iterable[MailboxLedger], credential_of: CredentialLookup,
                   seeds_of: Callable[[str], list[bytes]] | None = None,
                   target_of: Callable[[MailboxLedger], Target] | None = None,
                   ) -> tuple[dict[MailboxKey, MailboxView], list[SeedView]]:
    """Views of every mailbox in ``boxes`` and, when ``seeds_of`` gives a user's seed messages,
    of each user's INBOX. A user that cannot be read gets views with ``error`` set."""
    by_user: dict[tuple[str | None, str], list[MailboxLedger]] = defaultdict(list)
    for box in boxes:
        by_user[(box.instance, box.user)].append(box)
    views: dict[MailboxKey, MailboxView] = {}
    seeds: list[SeedView] = []
    for (instance, user), user_boxes in by_user.items():
        first = user_boxes[0]
        target = target_of(first) if target_of else Target(first.host, first.port, instance)
        credential = credential_of(instance, user)
        expected = seeds_of(user) if seeds_of else []
        if credential is None:
            for box in user_boxes:
                views[box.key] = MailboxView(error=f"no password known for {user}")
            if expected:
                seeds.append(SeedView(instance, user, expected, error=f"no password known for {user}"))
            continue
        session = LeanSession(target, _ignore, AUDIT_TIMEOUT_S, AUDIT_TIMEOUT_S)
        try:
            session.connect()
            session.login(login_command(credential))
            for box in user_boxes:
                views[box.key] = _read_mailbox(session, box.mailbox)
            if expected:
                inbox = _read_mailbox(session, "INBOX")
                seeds.append(SeedView(instance, user, expected, list(inbox.bodies.values())))
            session.disconnect(DISCONNECT_LOGOUT)
        except f.StepFailure as failure:
            for box in user_boxes:
                views.setdefault(box.key, MailboxView(error=f"{failure.step}: {failure}"))
            if expected and not any(s.user == user and s.instance == instance for s in seeds):
                seeds.append(SeedView(instance, user, expected, error=f"{failure.step}: {failure}"))
        finally:
            session.abort()
    return views, seeds


def _read_mailbox(session: LeanSession, mailbox: str) -> MailboxView:
    name = quote(mailbox)
    listed = list_names(session.exchange(f.LIST, _TAG + b'LIST "" ' + name + b"\r\n", _TAG))
    if mailbox not in listed and not (mailbox.upper() == "INBOX" and "INBOX" in
                                      (n.upper() for n in listed)):
        return MailboxView(missing=True)
    state = status_state(session.exchange(
        f.STATUS, _TAG + b"STATUS " + name + b" (MESSAGES UIDNEXT UIDVALIDITY)\r\n", _TAG))
    session.exchange(f.SELECT, _TAG + b"EXAMINE " + name + b"\r\n", _TAG)
    view = MailboxView(uidvalidity=state.uidvalidity, uidnext=state.uidnext,
                       status_messages=state.exists)
    if state.exists:
        index = fetch_messages(session.exchange(f.FETCH, _TAG + b"UID FETCH 1:* (UID)\r\n", _TAG))
        view.uids = sorted(m.uid for m in index)
        for first in range(0, len(view.uids), BODIES_PER_FETCH):
            chunk = view.uids[first : first + BODIES_PER_FETCH]
            bodies = fetch_messages(session.exchange(
                f.FETCH, _TAG + b"UID FETCH %d:%d (UID BODY.PEEK[])\r\n" % (chunk[0], chunk[-1]),
                _TAG))
            view.bodies.update((m.uid, m.body) for m in bodies if m.body is not None)
    return view
