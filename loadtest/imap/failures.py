"""IMAP failure classes and the mapping from exceptions to classes; the step names, declared
in loadtest.imap.steptable, are re-exported here.

Pure module: no Locust, no gevent. The class string is the whole failure message, so Locust's
failure table keeps one row per (step, class) whatever the host, port, time or server text.
"""

from __future__ import annotations

import imaplib
import socket
import ssl

from loadtest.core.steps import REQUEST_TYPE  # noqa: F401  (users fire their steps with it)

# Sessions and users name their steps f.LOGIN, f.LIST, ...
from loadtest.imap.steptable import (  # noqa: F401
    APPEND,
    CONNECT,
    CREATE,
    FETCH,
    IDLE,
    LIST,
    LOGIN,
    LOGOUT,
    NOOP,
    SELECT,
    STATUS,
    STEPS,
)

# Failure classes.
REFUSED = "refused"
CONNECT_TIMEOUT = "connect timeout"
GREETING_TIMEOUT = "greeting timeout"
BYE_GREETING = "BYE greeting"
CONNECTION_LOST = "connection lost"
AUTH_REJECTED = "auth rejected"
PROTOCOL_ERROR = "protocol error"
RESPONSE_TIMEOUT = "response timeout"
TLS = "TLS"
FAILURE_CLASSES = (
    REFUSED,
    CONNECT_TIMEOUT,
    GREETING_TIMEOUT,
    BYE_GREETING,
    CONNECTION_LOST,
    AUTH_REJECTED,
    PROTOCOL_ERROR,
    RESPONSE_TIMEOUT,
    TLS,
)

# Phases of a step: where in the exchange an exception happened decides its class.
PHASE_CONNECT = "connect"  # TCP connect in progress
PHASE_TLS = "tls"  # TLS handshake (implicit TLS or STARTTLS)
PHASE_GREETING = "greeting"  # connected, waiting for the server's greeting
PHASE_LOGIN = "login"  # LOGIN sent, waiting for its completion
PHASE_COMMAND = "command"  # any other command


# Why a TLS handshake failed (StepFailure.detail): a small fixed set, so the failure table keeps
# one row per reason.
TLS_UNKNOWN_CA = "unknown CA"
TLS_NAME_MISMATCH = "name mismatch"
TLS_EXPIRED = "expired"
TLS_NOT_YET_VALID = "not yet valid"
TLS_CERTIFICATE_REJECTED = "certificate rejected"  # any other verification error
TLS_HANDSHAKE_FAILED = "handshake failed"  # not a certificate problem: protocol, alert, ...
# OpenSSL's X509_V_ERR_* codes (x509_vfy.h), as ssl.SSLCertVerificationError.verify_code.
_VERIFY_REASONS = {
    2: TLS_UNKNOWN_CA,  # unable to get issuer certificate
    9: TLS_NOT_YET_VALID,
    10: TLS_EXPIRED,
    18: TLS_UNKNOWN_CA,  # self-signed certificate
    19: TLS_UNKNOWN_CA,  # self-signed certificate in chain
    20: TLS_UNKNOWN_CA,  # unable to get local issuer certificate
    21: TLS_UNKNOWN_CA,  # unable to verify the first certificate
    62: TLS_NAME_MISMATCH,  # hostname mismatch
    63: TLS_NAME_MISMATCH,  # email address mismatch
    64: TLS_NAME_MISMATCH,  # IP address mismatch
}


class StepFailure(Exception):
    """A step failed with a known class. ``str()`` is the class and nothing else; ``detail``
    (TLS failures: the reason, e.g. ``unknown CA``) goes into ``repr()``, which is what
    Locust's failure table shows."""

    def __init__(self, failure_class: str, step: str, detail: str | None = None) -> None:
        super().__init__(failure_class)
        self.failure_class = failure_class
        self.step = step
        self.detail = detail

    def __str__(self) -> str:
        return self.failure_class

    def __repr__(self) -> str:
        # Locust's failure table shows repr(exception): the bare class, and the reason if any.
        return f"{self.failure_class} ({self.detail})" if self.detail else self.failure_class

    def __reduce__(self):  # picklable for Locust's worker -> master messages
        return (StepFailure, (self.failure_class, self.step, self.detail))


class ProtocolError(Exception):
    """The server answered something we cannot use (NO/BAD, garbage, unexpected BYE text)."""


class ByeGreeting(Exception):
    """The server's greeting was ``* BYE``: it refuses new sessions."""


class AuthRejected(Exception):
    """LOGIN completed with NO (or BAD): the server is alive and said no."""


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from, outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def classify(exc: BaseException, phase: str) -> str | None:
    """The failure class of ``exc`` raised during ``phase``; None when it is not an I/O failure
    (a bug in our code, which must stay a traceback).

    The innermost transport error decides: imapclient turns a dropped connection during LOGIN
    into LoginError, and imaplib wraps socket errors in ``abort``; both keep the original in
    ``__context__``.
    """
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, StepFailure):
            return e.failure_class
    # Transport errors first, innermost (last in the chain) wins.
    for e in reversed(chain):
        cls = _transport_class(e, phase)
        if cls is not None:
            return cls
    for e in chain:
        if isinstance(e, ByeGreeting):
            return BYE_GREETING
        if isinstance(e, AuthRejected):
            return AUTH_REJECTED
        if isinstance(e, ProtocolError):
            return PROTOCOL_ERROR
    for e in chain:
        if isinstance(e, imaplib.IMAP4.abort):
            # EOF, or an untagged BYE in the middle of a command: the session is gone. Checked
            # along the whole chain first: imapclient wraps an abort during LOGIN in LoginError.
            if phase == PHASE_GREETING and _says_bye(e):
                return BYE_GREETING
            if "unexpected response" in str(e):  # imaplib could not parse a line
                return PROTOCOL_ERROR
            return CONNECTION_LOST
    for e in chain:
        if isinstance(e, imaplib.IMAP4.error):
            if phase in (PHASE_GREETING, PHASE_CONNECT):
                return BYE_GREETING if _says_bye(e) else PROTOCOL_ERROR
            if phase == PHASE_LOGIN:
                return AUTH_REJECTED
            return PROTOCOL_ERROR
    return None


def tls_reason(exc: BaseException) -> str:
    """Why a TLS handshake failed, from the SSL error in ``exc``'s chain: one of the TLS_*
    reasons above."""
    for e in _chain(exc):
        if isinstance(e, ssl.SSLCertVerificationError):
            return _VERIFY_REASONS.get(e.verify_code, TLS_CERTIFICATE_REJECTED)
    return TLS_HANDSHAKE_FAILED


def _says_bye(exc: BaseException) -> bool:
    return "BYE" in str(exc)


def _transport_class(e: BaseException, phase: str) -> str | None:
    if isinstance(e, TimeoutError | socket.timeout):
        if phase == PHASE_CONNECT:
            return CONNECT_TIMEOUT
        if phase in (PHASE_GREETING, PHASE_TLS):
            return GREETING_TIMEOUT
        return RESPONSE_TIMEOUT
    if isinstance(e, ssl.SSLError | ssl.CertificateError):
        if phase != PHASE_TLS and isinstance(e, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return CONNECTION_LOST
        return TLS
    if isinstance(e, EOFError):
        return CONNECTION_LOST
    if isinstance(e, OSError):
        # Before the TCP connection exists every error (refused, unreachable, no route, name not
        # resolved) means the same to the user: no connection could be made.
        return REFUSED if phase == PHASE_CONNECT else CONNECTION_LOST
    return None
