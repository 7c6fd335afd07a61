"""The multiplexed lean path (loadtest.imap.multiplex) against the fake server: the same steps
and failure classes as the greenlet-per-connection lean path, deadlines from the timer wheel,
pacing. Client-side behaviour only; against Cyrus see tests/integration/test_multiplex_cyrus.py and
the bench (`--imap-multiplex`)."""

from __future__ import annotations

import _socket
import socket
import time

import pytest
from gevent.monkey import get_original

from loadtest.core.credentials import Credential
from loadtest.imap import failures as f
from loadtest.imap.lean import login_command
from loadtest.imap.multiplex import Connection, Multiplexer, program, reset_in_place
from loadtest.imap.testing import BAD, BYE, DROP, GARBAGE, NO, STALL, FakeImapServer
from loadtest.imap.transport import DISCONNECT_CLOSE, DISCONNECT_LOGOUT, DISCONNECT_RESET, Target

LOGIN_LINE = login_command(Credential("alice", "secret"))


class Run:
    """Drive connections until `enough(self)` or a time limit; collect what was reported."""

    def __init__(self, timeout: float = 2.0, connect_timeout: float = 2.0) -> None:
        self.successes: list[tuple[str, str, float]] = []
        self.failures: list[tuple[str, str]] = []
        self.limit = time.monotonic() + 10.0
        self.enough = lambda run: False
        self.mux = Multiplexer(get_original("select", "epoll")(), self._pause, self._success,
                               self._failure, connect_timeout, timeout, max_block=0.01)

    def _pause(self, _woken: bool) -> None:
        time.sleep(0.001)  # under gevent's patching the fake server's threads are greenlets: a timer lets the hub poll their I/O
        if self.enough(self) or time.monotonic() > self.limit:
            self.mux.stop()

    def _success(self, request_type: str, step: str, ms: float, _length: int, _instance: str | None) -> None:
        self.successes.append((request_type, step, ms))

    def _failure(self, step: str, _ms: float, failure: f.StepFailure, _instance: str | None) -> None:
        self.failures.append((step, failure.failure_class))

    def steps(self, step: str) -> int:
        return sum(1 for _t, s, _ms in self.successes if s == step)

    def drive(self, conns: list[Connection], enough) -> None:
        self.enough = enough
        for conn in conns:
            self.mux.add(conn)
        self.mux.run()
        for conn in conns:
            self.mux.remove(conn)
        assert time.monotonic() < self.limit, "the loop did not get there in time"


def _target(server: FakeImapServer | None = None, port: int | None = None) -> Target:
    return Target("127.0.0.1", server.port if server else port, "slot1")


def test_churn_cycles_run_every_step_and_log_out() -> None:
    with FakeImapServer() as server:
        run = Run()
        conns = [Connection(_target(server), program(LOGIN_LINE, True, DISCONNECT_LOGOUT),
                            DISCONNECT_LOGOUT) for _ in range(3)]
        run.drive(conns, lambda r: r.steps(f.LOGOUT) >= 9)
        done = [c for c in server.wait_connections(9) if c.done.wait(2)]
    assert run.failures == []
    for step in (f.CONNECT, f.LOGIN, f.LIST):
        assert run.steps(step) >= 9
    assert all(c.commands == ["LOGIN", "LIST", "LOGOUT"] and c.end == "logout" for c in done[:9])
    assert all(ms >= 0 for _t, _s, ms in run.successes)


@pytest.mark.parametrize(("disconnect", "end"), [(DISCONNECT_RESET, "rst"), (DISCONNECT_CLOSE, "fin")])
def test_flood_leaves_with_rst_or_fin(disconnect: str, end: str) -> None:
    with FakeImapServer() as server:
        run = Run()
        conn = Connection(_target(server), program(None, False, disconnect), disconnect)
        run.drive([conn], lambda r: r.steps(f.CONNECT) >= 5)
        first = server.wait_connections(5)
        assert all(c.done.wait(2) for c in first[:5])
    assert run.failures == [] and {c.end for c in first[:5]} == {end}
    assert all(c.commands == [] for c in first[:5])


def test_reset_flood_keeps_its_socket_and_connects_from_a_new_port_each_cycle() -> None:
    with FakeImapServer() as server:
        run = Run()
        conn = Connection(_target(server), program(LOGIN_LINE, False, DISCONNECT_RESET),
                          DISCONNECT_RESET)
        sockets = []  # held: a closed socket's id or descriptor could be reused by the next

        def enough(r: Run) -> bool:
            sockets.append(conn.sock)
            return r.steps(f.LOGIN) >= 5

        run.drive([conn], enough)
        first = server.wait_connections(5)[:5]
        assert all(c.done.wait(2) for c in first)
    assert run.failures == [] and len({id(s) for s in sockets if s is not None}) == 1
    assert {c.end for c in first} == {"rst"} and all(c.commands == ["LOGIN"] for c in first)
    assert len({c.peer for c in first}) == 5


def test_reset_in_place_sends_rst_and_leaves_the_socket_ready_to_connect_again() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        # The C socket, as the loop's: gevent's connect would first raise the error the reset
        # left pending, which the kernel's connect clears.
        client = _socket.socket()
        ports = []
        for _ in range(2):
            client.connect(listener.getsockname())
            ports.append(client.getsockname()[1])
            server_side, _ = listener.accept()
            with server_side:
                server_side.sendall(b"* OK\r\n")
                assert client.recv(16) == b"* OK\r\n"
                assert reset_in_place(client.fileno())
                with pytest.raises(ConnectionResetError):
                    server_side.recv(16)
            with pytest.raises(OSError):  # unconnected now
                client.getpeername()
        client.close()
    assert ports[0] != ports[1]


def test_flood_with_login() -> None:
    with FakeImapServer() as server:
        run = Run()
        conn = Connection(_target(server), program(LOGIN_LINE, False, DISCONNECT_RESET),
                          DISCONNECT_RESET)
        run.drive([conn], lambda r: r.steps(f.LOGIN) >= 3)
        assert server.wait_connections(3)[0].commands[:1] == ["LOGIN"]
    assert run.failures == []


@pytest.mark.parametrize(("behaviour", "step", "failure_class"), [
    ({"login": NO}, f.LOGIN, f.AUTH_REJECTED),
    ({"login": BAD}, f.LOGIN, f.AUTH_REJECTED),
    ({"list": NO}, f.LIST, f.PROTOCOL_ERROR),
    ({"list": DROP}, f.LIST, f.CONNECTION_LOST),
    ({"greeting": BYE}, f.CONNECT, f.BYE_GREETING),
    ({"greeting": GARBAGE}, f.CONNECT, f.PROTOCOL_ERROR),
    ({"list": STALL}, f.LIST, f.RESPONSE_TIMEOUT),
    ({"greeting": STALL}, f.CONNECT, f.GREETING_TIMEOUT),
])
def test_failures_are_classified_and_the_cycle_starts_again(behaviour: dict, step: str,
                                                             failure_class: str) -> None:
    with FakeImapServer(stall_seconds=3, **behaviour) as server:
        run = Run(timeout=0.3, connect_timeout=0.3)
        conn = Connection(_target(server), program(LOGIN_LINE, True, DISCONNECT_LOGOUT),
                          DISCONNECT_LOGOUT)
        run.drive([conn], lambda r: len(r.failures) >= 2)
    assert run.failures[:2] == [(step, failure_class)] * 2


def test_refused() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = Run()
    conn = Connection(_target(port=port), program(None, False, DISCONNECT_RESET), DISCONNECT_RESET)
    run.drive([conn], lambda r: len(r.failures) >= 3)
    assert set(run.failures) == {(f.CONNECT, f.REFUSED)}


def test_pacing_starts_cycles_on_schedule_and_reports_lateness() -> None:
    with FakeImapServer() as server:
        run = Run()
        conn = Connection(_target(server), program(None, False, DISCONNECT_RESET),
                          DISCONNECT_RESET, period=0.05)
        t0 = time.monotonic()
        run.drive([conn], lambda r: r.steps(f.CONNECT) >= 6)
        elapsed = time.monotonic() - t0
    lags = [ms for t, s, ms in run.successes if t == "PACING" and s == "SCHEDULE_LAG"]
    assert len(lags) >= 6 and all(ms >= 0 for ms in lags)
    assert elapsed >= 0.25  # six starts 50 ms apart: not all at once


def test_tls_is_refused() -> None:
    with pytest.raises(ValueError, match="no TLS"):
        Connection(Target("127.0.0.1", 993, None, "implicit"), (), DISCONNECT_RESET)
