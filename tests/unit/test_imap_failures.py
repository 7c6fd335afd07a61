"""Failure classification on literal exceptions (pure)."""

from __future__ import annotations

import imaplib
import re
import socket
import ssl
from pathlib import Path

import pytest
from imapclient.exceptions import LoginError

from loadtest.imap import failures as f


def _raised_from(outer: Exception, inner: BaseException) -> Exception:
    """``outer`` raised while handling ``inner``, as imaplib/imapclient do."""
    try:
        try:
            raise inner
        except BaseException:
            raise outer  # noqa: B904 - the implicit context is what we test
    except Exception as exc:
        return exc


@pytest.mark.parametrize(
    "exc, phase, expected",
    [
        (ConnectionRefusedError(111, "Connection refused"), f.PHASE_CONNECT, f.REFUSED),
        (OSError(113, "No route to host"), f.PHASE_CONNECT, f.REFUSED),
        (socket.gaierror(-2, "Name or service not known"), f.PHASE_CONNECT, f.REFUSED),
        (TimeoutError("timed out"), f.PHASE_CONNECT, f.CONNECT_TIMEOUT),
        (TimeoutError("timed out"), f.PHASE_GREETING, f.GREETING_TIMEOUT),
        (TimeoutError("timed out"), f.PHASE_TLS, f.GREETING_TIMEOUT),
        (TimeoutError("timed out"), f.PHASE_COMMAND, f.RESPONSE_TIMEOUT),
        (TimeoutError("timed out"), f.PHASE_LOGIN, f.RESPONSE_TIMEOUT),
        (f.ByeGreeting(), f.PHASE_GREETING, f.BYE_GREETING),
        (imaplib.IMAP4.error("* BYE too many"), f.PHASE_GREETING, f.BYE_GREETING),
        (imaplib.IMAP4.error("HELLO"), f.PHASE_GREETING, f.PROTOCOL_ERROR),
        (ConnectionResetError(104, "reset"), f.PHASE_COMMAND, f.CONNECTION_LOST),
        (ConnectionResetError(104, "reset"), f.PHASE_LOGIN, f.CONNECTION_LOST),
        (BrokenPipeError(32, "pipe"), f.PHASE_COMMAND, f.CONNECTION_LOST),
        (EOFError(), f.PHASE_GREETING, f.CONNECTION_LOST),
        (imaplib.IMAP4.abort("socket error: EOF"), f.PHASE_COMMAND, f.CONNECTION_LOST),
        (f.AuthRejected(), f.PHASE_LOGIN, f.AUTH_REJECTED),
        (LoginError("[AUTHENTICATIONFAILED] Invalid credentials"), f.PHASE_LOGIN, f.AUTH_REJECTED),
        (imaplib.IMAP4.error("LIST command error: BAD"), f.PHASE_COMMAND, f.PROTOCOL_ERROR),
        (f.ProtocolError("tagged NO"), f.PHASE_COMMAND, f.PROTOCOL_ERROR),
        (ssl.SSLError(1, "WRONG_VERSION_NUMBER"), f.PHASE_TLS, f.TLS),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), f.PHASE_TLS, f.TLS),
        (ssl.SSLEOFError(8, "EOF"), f.PHASE_TLS, f.TLS),
        (ssl.SSLEOFError(8, "EOF"), f.PHASE_COMMAND, f.CONNECTION_LOST),
        (f.StepFailure(f.REFUSED, f.CONNECT), f.PHASE_COMMAND, f.REFUSED),
    ],
)
def test_classify(exc: Exception, phase: str, expected: str) -> None:
    assert f.classify(exc, phase) == expected


def test_dropped_connection_during_login_is_connection_lost_not_auth_rejected() -> None:
    # imapclient's login() turns imaplib's abort (EOF) into LoginError.
    abort = _raised_from(imaplib.IMAP4.abort("command: LOGIN => socket error: EOF"),
                         imaplib.IMAP4.abort("socket error: EOF"))
    login_error = _raised_from(LoginError(str(abort)), abort)
    assert f.classify(login_error, f.PHASE_LOGIN) == f.CONNECTION_LOST


def test_innermost_transport_error_wins() -> None:
    wrapped = _raised_from(imaplib.IMAP4.abort("socket error: timed out"), TimeoutError())
    assert f.classify(wrapped, f.PHASE_COMMAND) == f.RESPONSE_TIMEOUT


def test_programming_errors_are_not_classified() -> None:
    assert f.classify(KeyError("x"), f.PHASE_COMMAND) is None
    assert f.classify(ValueError("bad int"), f.PHASE_LOGIN) is None


def test_step_failure_message_is_the_class_only_and_pickles() -> None:
    import pickle

    failure = f.StepFailure(f.AUTH_REJECTED, f.LOGIN)
    assert str(failure) == repr(failure) == "auth rejected"
    again = pickle.loads(pickle.dumps(failure))
    assert (str(again), again.step) == ("auth rejected", "LOGIN")


def test_contract_names() -> None:
    # docs/internals.md fixes these strings; the failure table depends on them.
    doc = (Path(__file__).resolve().parents[2] / "docs" / "internals.md").read_text()
    section = doc.split("## IMAP steps and failure classes", 1)[1].split("\n\n", 2)[1]
    assert set(re.findall(r"`([A-Z]+)`", section)) - {f.REQUEST_TYPE} == set(f.STEPS)
    assert f.FAILURE_CLASSES == (
        "refused", "connect timeout", "greeting timeout", "BYE greeting", "connection lost",
        "auth rejected", "protocol error", "response timeout", "TLS",
    )
