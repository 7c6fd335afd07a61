"""Socket-level pieces shared by both session paths: connecting, TLS, disconnect modes.

Uses the ``socket`` and ``ssl`` modules as imported, so under Locust (which monkey-patches on
import) they are gevent's. Create SSL contexts only after ``import locust``.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
from dataclasses import dataclass

from loadtest.core.imapwire import open_socket

DISCONNECT_LOGOUT = "logout"  # LOGOUT, wait for the tagged OK, close
DISCONNECT_CLOSE = "close"  # close without LOGOUT: the kernel sends FIN
DISCONNECT_RESET = "reset"  # SO_LINGER (1, 0) then close: the kernel sends RST
DISCONNECT_MODES = (DISCONNECT_LOGOUT, DISCONNECT_CLOSE, DISCONNECT_RESET)

TLS_NONE = "none"
TLS_IMPLICIT = "implicit"
TLS_STARTTLS = "starttls"
TLS_MODES = (TLS_NONE, TLS_IMPLICIT, TLS_STARTTLS)

_LINGER_RESET = struct.pack("ii", 1, 0)


@dataclass(frozen=True)
class Target:
    """Where one simulated user connects. ``instance`` names the deployment's instance (or None)."""

    host: str
    port: int
    instance: str | None = None
    tls: str = TLS_NONE
    ssl_context: ssl.SSLContext | None = None
    tls_resume: bool = False  # offer the user's previous TLS session (see make_ssl_context)

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)


def make_ssl_context(ca_file: str | None, verify: bool = True,
                     resume: bool = False) -> ssl.SSLContext:
    """A client context: the system CAs, or only ``ca_file`` when given; no checks if not verify.

    ``resume``: sessions are to be resumed by session ID, which means TLS 1.2 without tickets.
    Cyrus 3.6 sets up its TLS context afresh for every connection, so it can never decrypt a
    ticket (each has a new random ticket key) and its TLS 1.3 resumption never succeeds; it
    resumes only from its session cache (tls_sessions.db, shared by its processes), which TLS
    1.2 session IDs use. Measured (`bench --tls`): TLS 1.3, none of 2,627 resumed; TLS 1.2
    without tickets, about half (1,529 of 3,073).
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if resume:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.options |= ssl.OP_NO_TICKET
    return context


def connect_socket(target: Target, timeout: float) -> socket.socket:
    """A TCP connection to ``target`` (see :func:`loadtest.core.imapwire.open_socket`)."""
    return open_socket(target.host, target.port, timeout)


def wrap_tls(sock: socket.socket, target: Target,
             session: ssl.SSLSession | None = None) -> ssl.SSLSocket:
    """The TLS handshake on ``sock`` with ``target``'s context (SNI and name checks: its host),
    offering ``session`` for resumption."""
    # The client's Finished and its first command go out back to back: without TCP_NODELAY
    # the command waits for the server's (delayed) ACK of the Finished.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if target.ssl_context is None:
        raise ValueError(f"TLS {target.tls!r} to {target.host} without an SSL context")
    tls_sock = target.ssl_context.wrap_socket(sock, server_hostname=target.host, session=session)
    set_quickack(tls_sock)
    return tls_sock


def resumable_session(sock: socket.socket | None, target: Target) -> ssl.SSLSession | None:
    """The session of ``sock`` to offer next time, when ``target`` resumes (else None)."""
    if not target.tls_resume or not isinstance(sock, ssl.SSLSocket):
        return None
    try:
        return sock.session
    except (OSError, ValueError):
        return None


def drop(sock: socket.socket | None, mode: str) -> None:
    """Close ``sock`` the way ``mode`` says (``close`` or ``reset``); never raises.

    For ``reset`` SO_LINGER (1, 0) goes on the socket itself and the socket is closed without
    shutdown(): shutdown() would send FIN first (imaplib's shutdown() does exactly that).
    The caller must have released every other reference (makefile objects) or close() is deferred.
    """
    if sock is None:
        return
    try:
        if mode == DISCONNECT_RESET:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sock.close()


def set_quickack(sock: socket.socket) -> None:
    """Cyrus does not set TCP_NODELAY with TLS: ACK at once so its next write is not delayed."""
    quickack = getattr(socket, "TCP_QUICKACK", None)
    if quickack is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)
