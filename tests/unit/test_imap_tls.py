"""TLS on the client side without Cyrus: the deployment's CA and imaps port reach the targets,
resumption settings, and why a handshake failed (reasons from literal SSL errors)."""

from __future__ import annotations

import pickle
import ssl
from pathlib import Path

import pytest

from loadtest import FORMAT_VERSION
from loadtest.deploy.deployment import Deployment, InstanceInfo
from loadtest.deploy.tls import make_ca
from loadtest.errors import UsageError
from loadtest.imap import failures as f
from loadtest.imap.config import build_config
from loadtest.settings import resolve


def _deployment(root: Path, *, tls: bool) -> Deployment:
    users = root / "users.csv"
    users.write_text("username,password,instance\nu1,pw,a\n")
    d = str(root / "a")
    info = InstanceInfo(name="a", host="127.0.0.1", port=1143, root=d, imapd_conf=d,
                        cyrus_conf=d, config_dir=d, data_dir=d, proc_dir=d, lock_dir=d,
                        stats_file=d, pid_file=d, log_file=d, master_log=d,
                        users_file=str(users), tls_port=1993 if tls else None)
    ca = str(make_ca(root, "test")) if tls else None
    dep = Deployment(root=str(root), instances=[info], users_file=str(users), admin_user="admin",
                     admin_password_file=str(root / "admin"), version=FORMAT_VERSION, ca_file=ca)
    dep.save()
    return dep


def _target(raw: dict):
    return build_config(resolve(raw)).slot(0)[0]


def test_implicit_tls_takes_the_imaps_port_and_the_deployments_ca(tmp_path: Path) -> None:
    dep = _deployment(tmp_path, tls=True)
    target = _target({"deployment": dep.root, "imap_tls": "implicit"})
    assert target.port == 1993 and target.tls == "implicit"
    assert target.ssl_context.verify_mode == ssl.CERT_REQUIRED
    # the deployment's CA, and only it, is trusted
    (ca,) = target.ssl_context.get_ca_certs()
    assert "cyrus-loadtest test CA test" in str(ca["subject"])


def test_starttls_stays_on_the_plain_port_and_plain_needs_no_context(tmp_path: Path) -> None:
    dep = _deployment(tmp_path, tls=True)
    target = _target({"deployment": dep.root, "imap_tls": "starttls"})
    assert (target.port, target.tls) == (1143, "starttls") and target.ssl_context is not None
    plain = _target({"deployment": dep.root})
    assert (plain.port, plain.ssl_context) == (1143, None)


def test_an_explicit_ca_file_wins_over_the_deployments(tmp_path: Path) -> None:
    (tmp_path / "dep").mkdir()
    dep = _deployment(tmp_path / "dep", tls=True)
    other = make_ca(tmp_path, "other")
    target = _target({"deployment": dep.root, "imap_tls": "implicit", "imap_ca_file": str(other)})
    (ca,) = target.ssl_context.get_ca_certs()
    assert "test CA other" in str(ca["subject"])


@pytest.mark.parametrize("mode", ["implicit", "starttls"])
def test_tls_against_a_deployment_without_tls_is_a_usage_error(tmp_path: Path, mode: str) -> None:
    dep = _deployment(tmp_path, tls=False)
    with pytest.raises(UsageError, match=f"--imap-tls {mode} .*serves no TLS .*--tls none"):
        build_config(resolve({"deployment": dep.root, "imap_tls": mode}))


def test_resumption_is_tls_1_2_without_tickets_and_off_by_default(tmp_path: Path) -> None:
    dep = _deployment(tmp_path, tls=True)
    off = _target({"deployment": dep.root, "imap_tls": "implicit"})
    on = _target({"deployment": dep.root, "imap_tls": "implicit", "imap_tls_resume": "on"})
    assert not off.tls_resume and on.tls_resume
    assert on.ssl_context.maximum_version == ssl.TLSVersion.TLSv1_2
    assert on.ssl_context.options & ssl.OP_NO_TICKET
    assert not off.ssl_context.options & ssl.OP_NO_TICKET
    with pytest.raises(UsageError, match="imap-tls-resume"):
        build_config(resolve({"deployment": dep.root, "imap_tls_resume": "maybe"}))


def _verify_error(code: int) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_code = code
    return exc


@pytest.mark.parametrize("code, reason", [
    (20, f.TLS_UNKNOWN_CA),  # unable to get local issuer certificate
    (19, f.TLS_UNKNOWN_CA),  # self-signed certificate in chain
    (18, f.TLS_UNKNOWN_CA),
    (10, f.TLS_EXPIRED),
    (9, f.TLS_NOT_YET_VALID),
    (62, f.TLS_NAME_MISMATCH),  # hostname
    (64, f.TLS_NAME_MISMATCH),  # IP address
    (23, f.TLS_CERTIFICATE_REJECTED),  # revoked: not one we name
])
def test_tls_reason_from_the_verify_code(code: int, reason: str) -> None:
    exc = _verify_error(code)
    assert f.classify(exc, f.PHASE_TLS) == f.TLS
    assert f.tls_reason(exc) == reason


def test_a_handshake_failure_that_is_not_about_the_certificate() -> None:
    exc = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    assert f.tls_reason(exc) == f.TLS_HANDSHAKE_FAILED
    wrapped = OSError("during STARTTLS")
    wrapped.__context__ = _verify_error(10)
    assert f.tls_reason(wrapped) == f.TLS_EXPIRED


def test_the_failure_table_shows_class_and_reason_str_stays_the_class() -> None:
    failure = f.StepFailure(f.TLS, f.CONNECT, f.TLS_UNKNOWN_CA)
    assert str(failure) == "TLS"
    assert repr(failure) == "TLS (unknown CA)"
    again = pickle.loads(pickle.dumps(failure))
    assert (repr(again), again.detail, again.step) == ("TLS (unknown CA)", "unknown CA", "CONNECT")
