"""Test users for an instance: sasldb passwords, mailboxes with folders, seed messages.

Users go into the instance's own sasldb with saslpasswd2 (about 3.5 ms each); mailboxes are
created over IMAP as the admin on a few parallel connections, which is what makes 1,000 users
take seconds rather than minutes.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import os
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template

from loadtest.core.credentials import quote
from loadtest.core.imapwire import Wire, literal_prefix, open_socket
from loadtest.deploy.deployment import InstanceInfo
from loadtest.deploy.render import SERVERNAME
from loadtest.paths import fixtures_dir

DEFAULT_FOLDERS = ("Sent", "Drafts", "Trash")
ADMIN_RIGHTS = "lrswipkxtecda"
PROVISION_CONNECTIONS = 4
PIPELINE_USERS = 10  # users per pipelined batch
# Cyrus under load sometimes answers NO to a command that works a moment later (seen: APPEND ->
# "NO System I/O error", syslog "IOERROR: creating message file ... File exists"): retried.
TRANSIENT_RETRIES = 3
TRANSIENT_BACKOFF_S = 0.2
TRANSIENT_ANSWERS = (b"System I/O error", b"[SERVERBUG]", b"[UNAVAILABLE]", b"[INUSE]",
                     b"Resource temporarily unavailable", b"try again")


def is_transient(answer: bytes) -> bool:
    """A tagged NO (never BAD) that says the server could not do it now, not that it is wrong."""
    return answer.startswith(b"NO") and any(t.lower() in answer.lower()
                                            for t in TRANSIENT_ANSWERS)


@dataclass(frozen=True)
class TestUser:
    name: str
    password: str
    instance: str = ""

    def __repr__(self) -> str:  # never show the password
        return f"TestUser({self.name!r}, instance={self.instance!r})"


def make_users(count: int, *, prefix: str = "user", first: int = 1,
               instance: str = "") -> list[TestUser]:
    width = max(4, len(str(first + count - 1)))
    return [TestUser(f"{prefix}{n:0{width}d}", secrets.token_urlsafe(12), instance)
            for n in range(first, first + count)]


def add_sasl_user(sasldb: Path, name: str, password: str) -> None:
    result = subprocess.run(
        ["saslpasswd2", "-f", str(sasldb), "-p", "-c", "-u", SERVERNAME, name],
        input=password.encode() + b"\n", capture_output=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"saslpasswd2 failed for {name}: "
                           f"{result.stderr.decode(errors='replace').strip()}")


def write_users_file(path: Path, users: Sequence[TestUser], *, with_instance: bool = False) -> None:
    """CSV username,password[,instance]; 0600 because it holds passwords."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["username", "password", "instance"] if with_instance
                        else ["username", "password"])
        for user in users:
            writer.writerow([user.name, user.password, user.instance] if with_instance
                            else [user.name, user.password])
    os.replace(tmp, path)


@functools.cache
def _seed_templates() -> tuple[Template, ...]:
    """The seed messages, read once per process (with CRLF line ends, as IMAP wants)."""
    return tuple(Template(path.read_text().replace("\r\n", "\n").replace("\n", "\r\n"))
                 for path in sorted((fixtures_dir() / "seed").glob("*.eml")))


def seed_messages(user: str) -> list[bytes]:
    return [template.safe_substitute(user=user).encode() for template in _seed_templates()]


class AdminConnection:
    """A minimal pipelining IMAP client for provisioning: send a batch of commands, then read
    every tagged answer. One round trip per batch instead of one per command."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self._wire = Wire(open_socket(host, port, timeout))
        self._tag = 0
        greeting = self._wire.line()
        if not greeting.startswith(b"* OK"):
            raise RuntimeError(f"unexpected greeting {greeting[:80]!r}")

    def pipeline(self, commands: Sequence[bytes], retries: int = TRANSIENT_RETRIES) -> None:
        """Run ``commands`` (without tags) in order; raise on the first NO or BAD. When the
        first failure is a transient server error (an I/O error under load), the failed
        commands are sent again in their order, up to ``retries`` times."""
        for attempt in range(retries + 1):
            failed = self._send(commands)
            if not failed:
                return
            index, answer = failed[0]
            if attempt == retries or not is_transient(answer):
                again = f" (after {attempt} retries)" if attempt else ""
                raise RuntimeError(f"IMAP command failed{again}: {commands[index][:60]!r} -> "
                                   f"{answer[:120]!r}")
            commands = [commands[i] for i, _ in failed]
            time.sleep(TRANSIENT_BACKOFF_S * (attempt + 1))

    def _send(self, commands: Sequence[bytes]) -> list[tuple[int, bytes]]:
        """Send a batch, read every tagged answer; the failed ones as (index, answer)."""
        tags = []
        out = bytearray()
        for command in commands:
            self._tag += 1
            tag = b"p%d" % self._tag
            tags.append(tag)
            out += tag + b" " + command + b"\r\n"
        self._wire.send(bytes(out))
        pending = set(tags)
        failed = []
        while pending:
            line = self._wire.line()
            tag, _, rest = line.partition(b" ")
            if tag in pending:
                pending.discard(tag)
                if not rest.startswith(b"OK"):
                    failed.append((tags.index(tag), rest))
        return sorted(failed)

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self.pipeline([b"LOGOUT"])
        self._wire.sock.close()


_quote = quote  # the sessions' IMAP quoting (names and passwords here are ASCII)


def user_commands(user: TestUser, admin_user: str, folders: Sequence[str]) -> list[bytes]:
    """CREATE the INBOX, grant the admin (who has no implicit rights on users' mailboxes), CREATE
    the folders, and MULTIAPPEND the seed messages with non-synchronizing literals (LITERAL+)."""
    inbox = f"user/{user.name}"
    commands = [b"CREATE " + _quote(inbox),
                b"SETACL " + _quote(inbox) + b" " + _quote(admin_user) + b" " + ADMIN_RIGHTS.encode()]
    commands += [b"CREATE " + _quote(f"{inbox}/{folder}") for folder in folders]
    messages = seed_messages(user.name)
    if messages:
        append = bytearray(b"APPEND " + _quote(inbox))
        for message in messages:
            append += b" () " + literal_prefix(len(message), non_synchronizing=True) + message
        commands.append(bytes(append))
    return commands


def create_mailboxes(info: InstanceInfo, admin_user: str, admin_password: str,
                     users: Sequence[TestUser], *, folders: Sequence[str] = DEFAULT_FOLDERS,
                     connections: int = PROVISION_CONNECTIONS, batch: int = PIPELINE_USERS,
                     progress: Callable[[int], None] | None = None) -> None:
    """INBOX, folders and seed messages for each user, over IMAP as the admin."""
    pending = list(users)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            conn = AdminConnection(info.host, info.port)
            conn.pipeline([b"LOGIN " + _quote(admin_user) + b" " + _quote(admin_password)])
            while True:
                with lock:
                    if not pending or errors:
                        break
                    chunk = [pending.pop() for _ in range(min(batch, len(pending)))]
                conn.pipeline([c for user in chunk for c in user_commands(user, admin_user, folders)])
                if progress:
                    progress(len(chunk))
            conn.close()
        except BaseException as exc:  # reported by the caller
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=worker, daemon=True)
               for _ in range(max(1, min(connections, len(users))))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"creating mailboxes on {info.name} failed: {errors[0]}") from errors[0]
