"""Provisioning retries a transient NO (Cyrus under load: `APPEND ... NO System I/O error`) a
bounded number of times and fails at once on anything else. A scripted IMAP server on loopback
answers each command as the test says."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from loadtest.deploy import provision
from loadtest.deploy.provision import AdminConnection, is_transient

Answer = Callable[[bytes, int], bytes]  # (command, how often it was seen) -> answer text


@pytest.fixture
def server() -> Iterator[Callable[[Answer], tuple[int, list[bytes]]]]:
    listener = socket.create_server(("127.0.0.1", 0))
    threads = []

    def start(answer: Answer) -> tuple[int, list[bytes]]:
        received: list[bytes] = []

        def serve() -> None:
            conn, _ = listener.accept()
            with conn, conn.makefile("rb") as reader:
                conn.sendall(b"* OK ready\r\n")
                seen: dict[bytes, int] = {}
                for line in reader:
                    tag, _, command = line.rstrip(b"\r\n").partition(b" ")
                    received.append(command)
                    seen[command] = seen.get(command, 0) + 1
                    conn.sendall(tag + b" " + answer(command, seen[command]) + b"\r\n")

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)
        return listener.getsockname()[1], received

    yield start
    listener.close()


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provision, "TRANSIENT_BACKOFF_S", 0.0)


def test_transient_no_is_retried_and_only_the_failed_commands_are_sent_again(server) -> None:
    def answer(command: bytes, seen: int) -> bytes:
        return b"NO System I/O error" if command == b"APPEND b" and seen == 1 else b"OK done"

    port, received = server(answer)
    conn = AdminConnection("127.0.0.1", port)
    conn.pipeline([b"CREATE a", b"APPEND b", b"CREATE c"])
    assert received == [b"CREATE a", b"APPEND b", b"CREATE c", b"APPEND b"]


def test_retries_are_bounded(server) -> None:
    port, received = server(lambda command, seen: b"NO System I/O error")
    conn = AdminConnection("127.0.0.1", port)
    with pytest.raises(RuntimeError, match=r"after 3 retries.*APPEND b.*System I/O error"):
        conn.pipeline([b"APPEND b"])
    assert received == [b"APPEND b"] * 4


def test_a_real_refusal_is_not_retried(server) -> None:
    port, received = server(lambda command, seen: b"NO Mailbox already exists")
    conn = AdminConnection("127.0.0.1", port)
    with pytest.raises(RuntimeError, match="Mailbox already exists"):
        conn.pipeline([b"CREATE a"])
    assert received == [b"CREATE a"]


@pytest.mark.parametrize("answer, transient", [
    (b"NO System I/O error", True),
    (b"NO [SERVERBUG] Internal error", True),
    (b"NO [UNAVAILABLE] Try later", True),
    (b"BAD System I/O error", False),
    (b"NO Permission denied", False),
    (b"NO [ALREADYEXISTS] Mailbox already exists", False),
])
def test_what_counts_as_transient(answer: bytes, transient: bool) -> None:
    assert is_transient(answer) is transient
