"""Many lean IMAP connections driven by one loop, each a small state machine on a non-blocking
socket registered with one epoll: no greenlet, no timeout object and no Python socket wrapper
per connection (``loadtest.driver`` runs it on the gevent hub).

A connection repeats a cycle: connect, read the greeting (step CONNECT), then a fixed program of
commands, each a timed step (LOGIN, LIST, LOGOUT), then leave (RST, FIN, or after LOGOUT's
reply). Same step names, failure classes and byte-level checks as :mod:`loadtest.imap.lean`:
the tagged status is read from the last line of what arrived. A cycle that leaves with an RST
and starts the next one at once keeps its socket: :func:`reset_in_place` aborts the connection
(the RST close() sends under SO_LINGER 0) and the same socket, still in the epoll set, connects
again from a new port: one system call (connect to AF_UNSPEC) instead of four per cycle
(socket, epoll_ctl, setsockopt, close).

Deadlines live in a timer wheel of millisecond slots (a dict of slot -> connections, a heap of
the slots in use): starting a step only sets ``deadline``; a connection found in an expired slot
whose deadline has moved on is put back in its new slot (each connection is in at most one
slot). Pacing (open loop) uses the same wheel to start a cycle at its scheduled time.

Pure module: ``socket`` (the C-level ``_socket`` class: under gevent its sockets are not
patched), ``errno``, ``heapq``, libc's ``connect`` through ``ctypes``; the epoll object and the
wait for readiness are passed in.
"""

from __future__ import annotations

import _socket
import contextlib
import ctypes
import errno
import heapq
import struct
from collections.abc import Callable
from time import perf_counter
from typing import Any

from loadtest.core.imapwire import CRLF, last_line_status
from loadtest.imap import failures as f
from loadtest.imap.lean import (
    _LIST_TAG,
    _LOGIN_TAG,
    _LOGOUT_TAG,
    LIST_COMMAND,
    LOGOUT_COMMAND,
    refusal,
)
from loadtest.imap.transport import DISCONNECT_LOGOUT, DISCONNECT_RESET, TLS_NONE, Target

EPOLLIN = 0x001
_RECV = 65536
_RETRY = 0.001  # after a connect that failed at once (refused, out of descriptors)
_LINGER_RESET = struct.pack("ii", 1, 0)
# struct sockaddr with sa_family AF_UNSPEC (0), zero-filled to the size of a sockaddr_in
_UNSPEC_ADDRESS = struct.pack("=H14x", _socket.AF_UNSPEC)
_libc_connect = ctypes.CDLL(None, use_errno=True).connect  # Python's connect needs an address of the socket's family
_CONNECT_ERRORS = {errno.ECONNREFUSED, errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH,
                   errno.EADDRNOTAVAIL}
# Connection states
_IDLE = 0  # no socket: waiting for its scheduled start (pacing) or removed
_GREETING = 1  # connect in progress or done, greeting not yet read (step CONNECT)
_COMMAND = 2  # a command of the program sent, waiting for its tagged reply

# report_success(request_type, step, response_time_ms, length, instance)
SuccessReporter = Callable[[str, str, float, int, "str | None"], None]
# report_failure(step, response_time_ms, failure, instance)
FailureReporter = Callable[[str, float, f.StepFailure, "str | None"], None]


def program(login_line: bytes | None, list_mailboxes: bool, disconnect: str
            ) -> tuple[tuple[str, str, bytes, bytes], ...]:
    """The commands after the greeting: (step, phase, command, tag) each."""
    steps = []
    if login_line is not None:
        steps.append((f.LOGIN, f.PHASE_LOGIN, login_line, _LOGIN_TAG))
    if list_mailboxes:
        steps.append((f.LIST, f.PHASE_COMMAND, LIST_COMMAND, _LIST_TAG))
    if disconnect == DISCONNECT_LOGOUT:
        steps.append((f.LOGOUT, f.PHASE_COMMAND, LOGOUT_COMMAND, _LOGOUT_TAG))
    return tuple(steps)


def reset_in_place(fd: int) -> bool:
    """Abort the TCP connection on ``fd`` with an RST and leave the socket open, unconnected and
    in its epoll set, ready to connect again: ``connect`` to an AF_UNSPEC address (POSIX: it
    resets the peer address). On Linux that is ``tcp_disconnect``, the call ``close()`` makes
    under SO_LINGER 0: the server sees the same RST, the local port is released (no TIME_WAIT),
    and the next ``connect`` clears the pending error the reset leaves. True when done."""
    return _libc_connect(fd, _UNSPEC_ADDRESS, len(_UNSPEC_ADDRESS)) == 0


class Connection:
    """One simulated user's connection slot: its target, program and pacing."""

    __slots__ = ("target", "address", "family", "instance", "program", "reset", "period",
                 "next_start", "sock", "fd", "state", "index", "t0", "cycle_t0", "deadline",
                 "buffer", "wheel_slot", "active")

    def __init__(self, target: Target, steps: tuple[tuple[str, str, bytes, bytes], ...],
                 disconnect: str, period: float = 0.0) -> None:
        if target.tls != TLS_NONE:
            raise ValueError("the multiplexed lean path has no TLS")
        self.target = target
        self.address = target.address
        self.family = _socket.AF_INET6 if ":" in target.host else _socket.AF_INET
        self.instance = target.instance
        self.program = steps
        self.reset = disconnect == DISCONNECT_RESET
        self.period = period
        self.next_start: float | None = None
        self.sock: Any = None
        self.fd = -1
        self.state = _IDLE
        self.index = -1
        self.t0 = 0.0
        self.cycle_t0 = 0.0
        self.deadline = 0.0
        self.buffer = b""
        self.wheel_slot: int | None = None
        self.active = True


class Multiplexer:
    """Drives connections: :meth:`add` / :meth:`remove` them, :meth:`run` until :meth:`stop`.

    ``epoll`` is a ``select.epoll`` (the real one). The loop blocks in it for at most
    ``max_block`` seconds, then calls ``pause(woken)``, where the caller lets other work run
    (on gevent: a pass through the hub); ``woken`` says that ``wake_fd`` (registered in the
    epoll too: on gevent, the hub's own epoll descriptor) became readable, i.e. other work is
    waiting now. Successes and failures go to the reporters; the pacing lateness of a
    cycle start to ``report_success("PACING", "SCHEDULE_LAG", ...)``.
    """

    def __init__(self, epoll: Any, pause: Callable[[bool], None], report_success: SuccessReporter,
                 report_failure: FailureReporter, connect_timeout: float, timeout: float,
                 pacing_type: str = "PACING", pacing_name: str = "SCHEDULE_LAG",
                 max_block: float = 0.005, wake_fd: int | None = None) -> None:
        self.epoll = epoll
        self.pause = pause
        self.max_block = max_block
        self.wake_fd = wake_fd
        if wake_fd is not None:
            epoll.register(wake_fd, EPOLLIN)
        self.report_success = report_success
        self.report_failure = report_failure
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.pacing = (pacing_type, pacing_name)
        self.by_fd: dict[int, Connection] = {}
        self.connections: set[Connection] = set()
        self._wheel: dict[int, list[Connection]] = {}
        self._slots: list[int] = []  # heap of the wheel's slots in use
        self._running = False

    # -- membership --------------------------------------------------------------------------

    def add(self, conn: Connection) -> None:
        self.connections.add(conn)
        conn.active = True
        self._start(conn, perf_counter())

    def remove(self, conn: Connection) -> None:
        """Stop ``conn``: its socket is closed (FIN), nothing more is reported for it."""
        conn.active = False
        self.connections.discard(conn)
        self._close(conn, reset=False)

    def stop(self) -> None:
        self._running = False

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        """Until :meth:`stop` or no connection is left."""
        self._running = True
        poll = self.epoll.poll
        by_fd = self.by_fd
        readable = self._readable
        slots = self._slots
        max_block = self.max_block
        wake_fd = self.wake_fd
        while self._running and self.connections:
            now = perf_counter()
            timeout = min(max_block, slots[0] / 1000.0 - now) if slots else max_block
            events = poll(timeout if timeout > 0.0 else 0.0, 1024)
            now = perf_counter()
            woken = False
            for event_fd, _mask in events:
                conn = by_fd.get(event_fd)
                if conn is not None:
                    readable(conn, now)
                elif event_fd == wake_fd:
                    woken = True
            if slots and slots[0] <= now * 1000.0:
                self._expire(now)
            self.pause(woken)

    # -- one connection ----------------------------------------------------------------------

    def _start(self, conn: Connection, now: float) -> None:
        """A new cycle: pacing, then a non-blocking connect; the greeting's arrival (or an
        error) makes the socket readable."""
        if conn.period:
            if conn.next_start is None:
                conn.next_start = now
            if now < conn.next_start:
                # an unconnected socket would be reported (HUP) by every poll until then
                self._close(conn, reset=False)
                self._arm(conn, conn.next_start)
                return
            lag_ms = (now - conn.next_start) * 1000.0
            self.report_success(self.pacing[0], self.pacing[1], lag_ms, 0, conn.instance)
            conn.next_start += conn.period
        conn.cycle_t0 = conn.t0 = now
        conn.state = _GREETING
        conn.index = -1
        conn.buffer = b""
        sock = conn.sock  # kept by reset_in_place: open, unconnected, registered
        if sock is None:
            try:
                sock = _socket.socket(conn.family, _socket.SOCK_STREAM | _socket.SOCK_NONBLOCK)
            except OSError as exc:  # out of file descriptors: a local failure, but reported
                self._fail(conn, f.CONNECT, f.PHASE_CONNECT, exc, now, restart=False)
                self._arm(conn, now + _RETRY)
                return
            conn.sock = sock
        code = sock.connect_ex(conn.address)
        if code not in (0, errno.EINPROGRESS):
            self._fail(conn, f.CONNECT, f.PHASE_CONNECT, ConnectionRefusedError(code, "connect"),
                       now, restart=False)
            self._arm(conn, now + _RETRY)  # the next loop round, not a recursion
            return
        if conn.fd < 0:
            conn.fd = sock.fileno()
            self.by_fd[conn.fd] = conn
            self.epoll.register(conn.fd, EPOLLIN)
        self._arm(conn, now + self.connect_timeout)

    def _readable(self, conn: Connection, now: float) -> None:
        sock = conn.sock
        if sock is None:
            return
        try:
            data = sock.recv(_RECV)
        except BlockingIOError:
            return
        except OSError as exc:
            if conn.state == _GREETING:
                phase = f.PHASE_CONNECT if exc.errno in _CONNECT_ERRORS else f.PHASE_GREETING
                self._fail(conn, f.CONNECT, phase, exc, now)
            else:
                step, phase = conn.program[conn.index][:2]
                self._fail(conn, step, phase, exc, now)
            return
        if not data:
            self._fail_current(conn, EOFError(), now)
            return
        if conn.buffer:
            data = conn.buffer + data
        if conn.state == _GREETING:
            if not data.endswith(CRLF):
                conn.buffer = data
                return
            if not data.startswith((b"* OK", b"* PREAUTH")):
                bye = data.startswith(b"* BYE")
                self._fail(conn, f.CONNECT, f.PHASE_GREETING,
                           f.ByeGreeting() if bye else f.ProtocolError("unexpected greeting"), now)
                return
            conn.buffer = b""
            self.report_success(f.REQUEST_TYPE, f.CONNECT, (now - conn.t0) * 1000.0, len(data),
                                conn.instance)
        else:
            step, phase, _command, tag = conn.program[conn.index]
            status = last_line_status(data, tag)
            if status is None:
                conn.buffer = data  # an incomplete line, or untagged lines so far
                return
            conn.buffer = b""
            if status != b"OK ":
                self._fail(conn, step, phase, refusal(tag, status), now)
                return
            self.report_success(f.REQUEST_TYPE, step, (now - conn.t0) * 1000.0, len(data),
                                conn.instance)
        conn.index += 1
        if conn.index < len(conn.program):
            command = conn.program[conn.index][2]
            try:
                sent = sock.send(command)
            except OSError as exc:
                self._fail_current(conn, exc, now)
                return
            if sent < len(command):  # a few dozen bytes into an empty socket buffer: never
                self._fail_current(conn, f.ProtocolError("short send"), now)
                return
            conn.state = _COMMAND
            conn.t0 = now
            conn.deadline = now + self.timeout  # the wheel finds the new deadline lazily
            return
        # A reset flood that goes on keeps its socket (_start closes it if paced to later).
        if not (conn.reset and conn.active and reset_in_place(conn.fd)):
            self._close(conn, reset=conn.reset)
        if conn.active:
            self._start(conn, now)

    def _fail_current(self, conn: Connection, exc: Exception, now: float) -> None:
        if conn.state == _GREETING:
            self._fail(conn, f.CONNECT, f.PHASE_GREETING, exc, now)
        else:
            step, phase = conn.program[conn.index][:2]
            self._fail(conn, step, phase, exc, now)

    def _fail(self, conn: Connection, step: str, phase: str, exc: Exception, now: float,
              restart: bool = True) -> None:
        failure_class = f.classify(exc, phase) or f.PROTOCOL_ERROR
        self._close(conn, reset=False)
        self.report_failure(step, (now - conn.t0) * 1000.0, f.StepFailure(failure_class, step),
                            conn.instance)
        if restart and conn.active:
            self._start(conn, now)

    def _close(self, conn: Connection, reset: bool) -> None:
        sock, conn.sock = conn.sock, None
        conn.state = _IDLE
        if sock is None:
            return
        self.by_fd.pop(conn.fd, None)
        conn.fd = -1
        try:
            if reset:
                sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_LINGER, _LINGER_RESET)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sock.close()  # also leaves the epoll set

    # -- the timer wheel ---------------------------------------------------------------------

    def _arm(self, conn: Connection, deadline: float) -> None:
        conn.deadline = deadline
        slot = int(deadline * 1000.0) + 1
        if conn.wheel_slot is not None:
            if conn.wheel_slot <= slot:
                return  # in an earlier slot: moved on when that slot expires
            self._wheel[conn.wheel_slot].remove(conn)  # rare: a deadline earlier than before
        conn.wheel_slot = slot
        bucket = self._wheel.get(slot)
        if bucket is None:
            self._wheel[slot] = [conn]
            heapq.heappush(self._slots, slot)
        else:
            bucket.append(conn)

    def _expire(self, now: float) -> None:
        now_ms = now * 1000.0
        slots = self._slots
        while slots and slots[0] <= now_ms:
            for conn in self._wheel.pop(heapq.heappop(slots), ()):
                conn.wheel_slot = None
                if not conn.active:
                    continue
                if conn.state == _IDLE:
                    if conn.sock is None:
                        self._start(conn, now)  # its scheduled start, or a retry
                    continue
                if conn.deadline > now:
                    self._arm(conn, conn.deadline)
                    continue
                self._timed_out(conn, now)

    def _timed_out(self, conn: Connection, now: float) -> None:
        if conn.state == _GREETING:
            # Connected (the greeting is late) or not (connect timeout)? Only asked on timeout.
            try:
                conn.sock.getpeername()
            except OSError:
                self._fail(conn, f.CONNECT, f.PHASE_CONNECT, TimeoutError(), now)
                return
            if now < conn.cycle_t0 + self.connect_timeout + self.timeout and \
                    conn.deadline < conn.cycle_t0 + self.connect_timeout + self.timeout:
                # connected within connect_timeout: the greeting has `timeout` (approximately:
                # from the connect deadline, not from the unobserved moment connect completed)
                self._arm(conn, conn.cycle_t0 + self.connect_timeout + self.timeout)
                return
            self._fail(conn, f.CONNECT, f.PHASE_GREETING, TimeoutError(), now)
            return
        step, phase = conn.program[conn.index][:2]
        self._fail(conn, step, phase, TimeoutError(), now)
