"""IMAP on the wire, for every client of loadtest: the lean session and its multiplexed loop
(``imap/``), the collectors' probe and provisioning (``deploy/``).

Framing, pure (bytes in, values out): where a line ends (``{n}`` literals skipped, however the
reads split them), where a tagged response ends, its tagged line and status, the literal prefix
of a command. :class:`Wire` reads and writes one connection blocking on the socket it is given
(plain, gevent's or SSL): send a command, read a line, read a whole response.

Nothing here decides what a refusal means: a malformed status is returned as None, and each
client raises its own error (the sessions' ``ProtocolError``, provisioning's RuntimeError). The
server closing the connection is ``ConnectionError``; a :attr:`Wire.deadline` passed,
``TimeoutError``.
"""

from __future__ import annotations

import re
import socket
import time
from typing import Any

from loadtest.core.credentials import quote

CRLF = b"\r\n"
RECV_SIZE = 65536
STATUSES = (b"OK", b"NO", b"BAD")
_LITERAL_AT_END = re.compile(rb"\{(\d+)\+?\}$")
_CLOSE_BRACE = ord("}")


def literal_prefix(size: int, non_synchronizing: bool) -> bytes:
    """``{size}`` CRLF, or ``{size+}`` CRLF (LITERAL+: the data follows at once, without waiting
    for the server's ``+`` continuation)."""
    return b"{%d+}\r\n" % size if non_synchronizing else b"{%d}\r\n" % size


def login_line(tag: bytes, username: str, password: str) -> bytes:
    """A whole LOGIN command: ``tag`` (``b"l "``), the quoted name and password, CRLF."""
    return tag + b"LOGIN " + quote(username) + b" " + quote(password) + CRLF


def line_end(data: bytes, start: int = 0) -> int | None:
    """Index just past the CRLF that ends the line starting at ``start``, or None while it is
    incomplete. A ``{n}`` at a line's end is followed by n bytes that may hold anything (CRLF,
    a line that looks tagged): the line goes on after them."""
    pos = start
    while True:
        eol = data.find(CRLF, pos)
        if eol < 0:
            return None
        # The "}" test first: nearly every line ends otherwise, and it costs no regex.
        if eol <= pos or data[eol - 1] != _CLOSE_BRACE:
            return eol + 2
        match = _LITERAL_AT_END.search(data, pos, eol)
        if match is None:
            return eol + 2
        pos = eol + 2 + int(match.group(1))
        if pos > len(data):
            return None


def scan_response(data: bytes, tag: bytes, start: int = 0) -> tuple[int | None, int]:
    """(end, resume) of the response to ``tag`` (``b"a "``) in ``data`` from ``start``: ``end``
    is the index just past its tagged line, None while incomplete; then ``resume`` is where
    the first incomplete line starts, so a reader scans only what is new after its next recv
    (when complete, ``resume`` is where the tagged line starts)."""
    pos = start
    while True:
        end = line_end(data, pos)
        if end is None:
            return None, pos
        if data.startswith(tag, pos):
            return end, pos
        pos = end


def response_end(data: bytes, tag: bytes, start: int = 0) -> int | None:
    """Index just past the tagged line of ``tag`` in ``data``, or None while incomplete."""
    return scan_response(data, tag, start)[0]


def tagged_line(data: bytes, end: int) -> bytes:
    """The tagged line of a complete response ending at ``end`` (without CRLF)."""
    return data[data.rfind(b"\n", 0, end - 2) + 1 : end - 2]


def tagged_status(line: bytes, tag: bytes) -> bytes | None:
    """``OK``, ``NO`` or ``BAD`` of the tagged line ``line`` of ``tag``; None if it is none."""
    status = line[len(tag) : len(tag) + 3].rstrip()
    if not line.startswith(tag) or status not in STATUSES:
        return None
    return status


def last_line_status(data: bytes, tag: bytes) -> bytes | None:
    """The three bytes after ``tag`` (``b"OK "``, ``b"NO "``, ``b"BAD"`` or whatever came) when
    the last line of ``data`` is complete and tagged with ``tag``, else None: more is to come.

    The hot path's check (lean sessions, the multiplexed loop), with no scan of the lines
    before. It holds for commands that are never pipelined and whose responses hold no literal
    that ends in a line starting with the tag (LOGIN, LOGOUT, STARTTLS, LIST of plain names);
    other responses go through :func:`scan_response`.
    """
    if not data.endswith(CRLF):
        return None
    start = data.rfind(b"\n", 0, len(data) - 1) + 1
    if not data.startswith(tag, start):
        return None
    return data[start + len(tag) : start + len(tag) + 3]


def open_socket(host: str, port: int, timeout: float, nodelay: bool = False) -> socket.socket:
    """A TCP connection to ``host`` (an address) and ``port``, its timeout set; Nagle off with
    ``nodelay``. Not ``socket.create_connection``: its getaddrinfo goes through gevent's thread
    pool on every call, even for a numeric address (measured: more than a third of the
    imapclient path's CPU per session)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        if nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(timeout)
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


class Wire:
    """One IMAP connection's bytes over ``sock``: commands out, lines and responses in.

    What arrives after a line or a response stays in ``buffer`` for the next read.
    ``deadline`` (``time.monotonic()``; None: the socket's own timeout) bounds every recv:
    a read that would pass it raises TimeoutError.
    """

    __slots__ = ("sock", "buffer", "deadline")

    def __init__(self, sock: Any, deadline: float | None = None) -> None:
        self.sock = sock  # Any: a socket of the socket module, gevent's or an SSL socket
        self.buffer = b""
        self.deadline = deadline

    def send(self, data: bytes) -> None:
        # A command is far smaller than the socket buffer: one send() nearly always takes all
        # of it, without sendall()'s Python loop (and its timeout) around it.
        sent = self.sock.send(data)
        if sent < len(data):
            self.sock.sendall(data[sent:])

    def command(self, command: bytes, tag: bytes) -> bytes:
        """Send ``command`` (tagged with ``tag``, CRLF at its end) and read its response:
        returns the tagged line (without CRLF)."""
        self.send(command)
        data = self.response(tag)
        return tagged_line(data, len(data))

    def send_literal(self, head: bytes, data: bytes, non_synchronizing: bool) -> bool:
        """Send ``head`` (a command up to its literal: ``b"a APPEND box "``), ``data`` as a
        literal and the command's CRLF. A synchronizing literal waits for the server's ``+``
        first: False (nothing more sent) when another line came instead, such as a tagged NO."""
        prefix = literal_prefix(len(data), non_synchronizing)
        if non_synchronizing:
            self.send(head + prefix + data + CRLF)
            return True
        self.send(head + prefix)
        if not self.line().startswith(b"+"):
            return False
        self.send(data + CRLF)
        return True

    def line(self) -> bytes:
        """The next line, the literals it holds included, without its final CRLF."""
        data = self.buffer or self.recv_first()
        while (end := line_end(data)) is None:
            data += self.recv()
        self.buffer = data[end:]
        return data[: end - 2]

    def response(self, tag: bytes) -> bytes:
        """Everything up to the tagged line of ``tag`` and that line (with its CRLF): the
        untagged lines and their literals."""
        data = self.buffer or self.recv_first()
        resume = 0
        while True:
            end, resume = scan_response(data, tag, resume)
            if end is not None:
                self.buffer = data[end:]
                return data[:end]
            data += self.recv()

    def completion(self, tag: bytes) -> tuple[bytes, int]:
        """(status, bytes read) of the response to ``tag``, found by :func:`last_line_status`
        (status: the three bytes after the tag). The hot path: see there for when it holds."""
        data = self.buffer or self.recv_first()
        while (status := last_line_status(data, tag)) is None:
            data += self.recv()
        self.buffer = b""
        return status, len(data)

    def recv_first(self) -> bytes:
        """The first recv of a read with nothing buffered (a subclass may wait for it first)."""
        return self.recv()

    def recv(self) -> bytes:
        sock = self.sock
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
        data = sock.recv(RECV_SIZE)
        if not data:
            raise ConnectionError("the server closed the connection")
        return data
