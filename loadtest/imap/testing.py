"""A scriptable fake IMAP server: the test double shipped beside the real sessions.

For client-side unit tests and benchmarks only (never as proof that something works against
Cyrus). It speaks just enough IMAP4rev1 for our sessions, can misbehave on purpose (BYE or no
greeting, NO/BAD, dropped or stalled commands) and records, per connection, the commands it got
and how the client left: ``logout``, ``fin`` (EOF) or ``rst`` (ConnectionResetError).

Threads and the ``socket`` module as imported: under gevent's monkey-patching they are
greenlets, which is what a patched client needs.

Also the tests' way to open a session on either path (``imapclient`` or ``lean``) and log in.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

from loadtest.core.credentials import Credential
from loadtest.imap.lean import LeanSession, login_command
from loadtest.imap.session import ImapSession
from loadtest.imap.timed import Reporter
from loadtest.imap.transport import Target

OK = "ok"
NO = "no"
BAD = "bad"
BYE = "bye"
DROP = "drop"  # close the connection instead of answering
STALL = "stall"  # never answer
GARBAGE = "garbage"


# The two session paths, by the names tests parametrize with.
SESSION_PATHS = ("imapclient", "lean")


def new_session(
    path: str, target: Target, report: Reporter, connect_timeout: float = 2.0, timeout: float = 2.0
) -> ImapSession | LeanSession:
    """A session of ``path`` (``imapclient`` or ``lean``), not connected yet."""
    cls = LeanSession if path == "lean" else ImapSession
    return cls(target, report, connect_timeout, timeout)


def login(session: ImapSession | LeanSession, credential: Credential) -> None:
    """The LOGIN step on either path (the lean one takes the pre-encoded line)."""
    if isinstance(session, LeanSession):
        session.login(login_command(credential))
    else:
        session.login(credential)


def logged_in_session(
    path: str,
    target: Target,
    report: Reporter,
    credential: Credential,
    connect_timeout: float = 2.0,
    timeout: float = 2.0,
) -> ImapSession | LeanSession:
    """A session of ``path`` after CONNECT and LOGIN (each step reported as usual)."""
    session = new_session(path, target, report, connect_timeout, timeout)
    session.connect()
    login(session, credential)
    return session


@dataclass
class Connection:
    commands: list[str] = field(default_factory=list)  # command names, upper case (no arguments)
    literals: list[bytes] = field(default_factory=list)  # the literals of the commands, in order
    end: str | None = None  # "logout", "fin", "rst", "server" (we dropped it), "error"
    peer: tuple[str, int] | None = None  # the client's address and port
    done: threading.Event = field(default_factory=threading.Event)


class FakeImapServer:
    """``with FakeImapServer(login=NO) as server: ... server.port ...``

    Behaviours: ``greeting`` in ok/bye/stall/garbage; ``login``, ``list``, ``logout`` and
    ``other`` (every other command) in ok/no/bad/drop/stall. ``tls`` is None, "implicit" or
    "starttls" (then ``certfile``/``keyfile`` are needed). ``accept=False`` listens with a
    backlog of 0 and never accepts: once that queue is full, connects time out.

    Literals in commands: ``{n}`` gets a ``+`` continuation, ``{n+}`` (LITERAL+, announced in
    the greeting when ``literal_plus``) none; each literal is recorded, and APPEND answers
    ``[APPENDUID 1 k]`` for its k-th message. ``untagged`` replaces the untagged lines answered
    to a command (``{"FETCH": b"* 1 FETCH (UID 1 BODY[] {3}\\r\\nabc)\\r\\n"}``).
    """

    # Declared here: inside __init__ the parameter ``list`` hides the builtin.
    connections: list[Connection]
    _threads: list[threading.Thread]
    _held: list[socket.socket]

    def __init__(
        self,
        greeting: str = OK,
        login: str = OK,
        list: str = OK,  # noqa: A002 - named after the command
        logout: str = OK,
        other: str = OK,
        tls: str | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
        accept: bool = True,
        stall_seconds: float = 30.0,
        literal_plus: bool = False,
        untagged: dict[str, bytes] | None = None,
    ) -> None:
        self.behaviour = {"GREETING": greeting, "LOGIN": login, "LIST": list, "LOGOUT": logout}
        self.other = other
        self.literal_plus = literal_plus
        self.untagged = {**_RESPONSES, **(untagged or {})}
        self.tls = tls
        self.accept = accept
        self.stall_seconds = stall_seconds
        self.connections = []
        self._context: ssl.SSLContext | None = None
        if tls:
            self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            if certfile is None:
                raise ValueError("a TLS fake server needs a certfile")
            self._context.load_cert_chain(certfile, keyfile)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0 if not accept else 128)
        self.host, self.port = self._listener.getsockname()
        self._stop = threading.Event()
        self._threads = []
        self._held = []

    def _tls(self) -> ssl.SSLContext:
        if self._context is None:
            raise RuntimeError("TLS asked of a fake server made without tls=")
        return self._context

    def __enter__(self) -> FakeImapServer:
        if self.accept:
            self._spawn(self._accept_loop)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() does not
        with contextlib.suppress(OSError):
            self._listener.close()
        for sock in self._held:
            sock.close()
        for thread in self._threads:
            thread.join(timeout=2)

    def wait_connections(self, count: int, timeout: float = 5.0) -> list[Connection]:
        """Wait until ``count`` connections have ended; returns them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ended = [c for c in self.connections if c.done.is_set()]
            if len(ended) >= count:
                return ended
            time.sleep(0.01)
        raise TimeoutError(f"only {len(self.connections)} connections, not {count} ended")

    def fill_backlog(self, count: int = 3) -> None:
        """Queue connections that are never accepted (for ``accept=False``)."""
        for _ in range(count):
            sock = socket.socket()
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError, OSError):
                sock.connect(self._listener.getsockname())
            self._held.append(sock)

    # -- internals ---------------------------------------------------------------------------

    def _spawn(self, fn, *args) -> None:
        thread = threading.Thread(target=fn, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, peer = self._listener.accept()
            except OSError:
                return
            conn = Connection(peer=peer[:2])
            self.connections.append(conn)
            self._spawn(self._serve, sock, conn)

    def _stall(self) -> None:
        self._stop.wait(self.stall_seconds)

    def _serve(self, sock: socket.socket, conn: Connection) -> None:
        try:
            if self.tls == "implicit":
                sock = self._tls().wrap_socket(sock, server_side=True)
            self._session(sock, conn)
        except ConnectionResetError:
            conn.end = "rst"
        except (OSError, ssl.SSLError):
            conn.end = conn.end or "error"
        finally:
            with contextlib.suppress(OSError):
                sock.close()
            conn.done.set()

    def _session(self, sock: socket.socket, conn: Connection) -> None:
        greeting = self.behaviour["GREETING"]
        if greeting == STALL:
            self._stall()
            conn.end = "server"
            return
        if greeting == BYE:
            sock.sendall(b"* BYE Too many connections\r\n")
            conn.end = "server"
            return
        if greeting == GARBAGE:
            sock.sendall(b"HELLO\r\n")
        else:
            plus = b" LITERAL+" if self.literal_plus else b""
            sock.sendall(b"* OK [CAPABILITY IMAP4rev1" + plus + b" STARTTLS IDLE AUTH=PLAIN] "
                         b"fake ready\r\n")
        reader = _CommandReader(sock, conn.literals)
        idling: bytes | None = None
        appended = 0
        while True:
            line = reader.line()
            if line is None:
                conn.end = conn.end or "fin"
                return
            sock = reader.sock  # after STARTTLS: the TLS socket
            if idling is not None:
                if line.upper() == b"DONE":
                    sock.sendall(idling + b" OK Idle completed\r\n")
                    idling = None
                continue
            tag, _, rest = line.partition(b" ")
            words = rest.split(b" ")
            name = words[0].upper().decode("ascii", "replace")
            if name == "UID" and len(words) > 1:
                name = words[1].upper().decode("ascii", "replace")
            conn.commands.append(name)
            how = self.behaviour.get(name, self.other)
            if how == DROP:
                conn.end = "server"
                return
            if how == STALL:
                self._stall()
                conn.end = "server"
                return
            if how in (NO, BAD):
                sock.sendall(tag + (b" NO" if how == NO else b" BAD") + b" refused by fake\r\n")
                continue
            if name == "LOGOUT":
                sock.sendall(b"* BYE bye\r\n" + tag + b" OK Completed\r\n")
                conn.end = "logout"
                return
            if name == "STARTTLS":
                sock.sendall(tag + b" OK Begin TLS negotiation now\r\n")
                reader.sock = self._tls().wrap_socket(sock, server_side=True)
                continue
            if name == "IDLE":
                sock.sendall(b"+ idling\r\n")
                idling = tag
                continue
            if name == "APPEND":
                appended += 1
                sock.sendall(tag + b" OK [APPENDUID 1 %d] Completed\r\n" % appended)
                continue
            sock.sendall(self.untagged.get(name, b"") + tag + b" OK Completed\r\n")


class _CommandReader:
    """A client's command lines, literals taken out (recorded in ``literals``): a synchronizing
    literal ``{n}`` is answered with a ``+`` continuation before its bytes are read."""

    def __init__(self, sock: socket.socket, literals: list[bytes]) -> None:
        self.sock = sock
        self.literals = literals
        self._buffer = b""

    def line(self) -> bytes | None:
        """The next command line, each literal replaced by ``{}``; None at EOF."""
        line = b""
        while True:
            part = self._until(b"\r\n")
            if part is None:
                return None
            match = _LITERAL.search(part)
            if match is None:
                return line + part
            line += part[: match.start()] + b"{}"
            if not match.group(2):
                self.sock.sendall(b"+ go ahead\r\n")
            literal = self._exactly(int(match.group(1)))
            if literal is None:
                return None
            self.literals.append(literal)

    def _until(self, end: bytes) -> bytes | None:
        while end not in self._buffer:
            if not self._fill():
                return None
        part, _, self._buffer = self._buffer.partition(end)
        return part

    def _exactly(self, size: int) -> bytes | None:
        while len(self._buffer) < size:
            if not self._fill():
                return None
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _fill(self) -> bool:
        data = self.sock.recv(4096)
        self._buffer += data
        return bool(data)


_LITERAL = re.compile(rb"\{(\d+)(\+?)\}$")


_RESPONSES = {
    "CAPABILITY": b"* CAPABILITY IMAP4rev1 STARTTLS IDLE AUTH=PLAIN\r\n",
    "LIST": b'* LIST (\\HasNoChildren) "/" INBOX\r\n* LIST (\\HasNoChildren) "/" Sent\r\n',
    "SELECT": b"* 2 EXISTS\r\n* 0 RECENT\r\n* FLAGS (\\Seen)\r\n* OK [UIDVALIDITY 1] ok\r\n",
    "EXAMINE": b"* 2 EXISTS\r\n* 0 RECENT\r\n* FLAGS (\\Seen)\r\n* OK [UIDVALIDITY 1] ok\r\n",
    "STATUS": b"* STATUS INBOX (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 1 UNSEEN 0)\r\n",
    "FETCH": b"* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n* 2 FETCH (UID 2 FLAGS ())\r\n",
}
