"""What both session paths share: the step reporter, the default timeouts, and the timed base
class with its failure handling (report once, tear down, raise :class:`StepFailure`)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from time import perf_counter
from typing import NoReturn

from loadtest.imap import failures as f
from loadtest.imap.transport import Target, resumable_session

# report(step, response_time_ms, response_length, failure or None)
Reporter = Callable[[str, float, int, "f.StepFailure | None"], None]

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_TIMEOUT = 10.0


class TimedSession:
    """A target, a reporter, timeouts and the phase the current step is in. Subclasses provide
    ``abort()`` (tear the connection down without reporting)."""

    __slots__ = ("target", "report", "connect_timeout", "timeout", "phase", "tls_session")

    def __init__(
        self,
        target: Target,
        report: Reporter,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.target = target
        self.report = report
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.phase = f.PHASE_CONNECT
        # The last TLS session, offered at the next connect when the target resumes.
        self.tls_session: ssl.SSLSession | None = None

    def keep_tls_session(self, sock: socket.socket | None) -> None:
        """Before closing ``sock``: remember its TLS session for the next connect (by then a
        TLS 1.3 ticket or a TLS 1.2 session has arrived)."""
        session = resumable_session(sock, self.target)
        if session is not None:
            self.tls_session = session

    def abort(self) -> None:
        raise NotImplementedError

    def _fail(self, step: str, t0: float, exc: Exception) -> NoReturn:
        elapsed_ms = (perf_counter() - t0) * 1000.0
        failure_class = f.classify(exc, self.phase)
        self.abort()
        if failure_class is None:
            raise exc  # not an I/O failure: a bug, keep its traceback
        detail = f.tls_reason(exc) if failure_class == f.TLS else None
        failure = f.StepFailure(failure_class, step, detail)
        self.report(step, elapsed_ms, 0, failure)
        raise failure from None
