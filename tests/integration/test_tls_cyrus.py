"""TLS against real Cyrus: the deployment's certificates, churn and held sessions over implicit
TLS and STARTTLS, resumption as Cyrus sees it, and certificate problems as classified failures."""

from __future__ import annotations

import os
import pwd
import socket
import ssl
from pathlib import Path

import pytest
from test_users_locust import counts, run_locust

from loadtest.deploy import instance as inst
from loadtest.deploy.deployment import Deployment
from loadtest.deploy.manager import deploy_down
from loadtest.deploy.tls import issue_server_cert, make_ca

pytestmark = pytest.mark.cyrus


def test_certificates_and_keys(cyrus_deployment: Deployment) -> None:
    ca = Path(cyrus_deployment.ca_file)
    assert ca.is_file() and os.stat(ca.with_name("ca.key")).st_mode & 0o777 == 0o600
    for info in cyrus_deployment.instances:
        key = Path(info.tls_cert).with_name("server.key")
        assert os.stat(key).st_mode & 0o777 == 0o600
        cyrus_uid = pwd.getpwnam("cyrus").pw_uid if os.getuid() == 0 else os.getuid()
        assert os.stat(key).st_uid == cyrus_uid  # imapd reads it after dropping to cyrus
        assert info.tls_port and info.tls_port != info.port
        # imaps answers on its own port with a certificate the deployment's CA signed
        context = ssl.create_default_context(cafile=str(ca))
        with socket.create_connection((info.host, info.tls_port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname=info.host) as tls:
            assert tls.recv(4096).startswith(b"* OK")


@pytest.mark.parametrize("mode, extra", [
    ("implicit", ()),
    ("starttls", ()),
    ("starttls", ("--imap-lean",)),
])
def test_churn_over_tls_without_failures(cyrus_deployment: Deployment, tmp_path: Path,
                                         mode: str, extra: tuple[str, ...]) -> None:
    rc, stats, failures, stderr = run_locust("churn.py", cyrus_deployment, tmp_path,
                                             "--imap-tls", mode, *extra)
    assert rc == 0, stderr[-2000:]
    assert counts(stats)["LOGIN"] > 0 and counts(stats)["LIST"] > 0
    assert not failures and all(r["num_failures"] == 0 for r in stats.values())


def test_held_sessions_over_tls(cyrus_deployment: Deployment, tmp_path: Path) -> None:
    rc, stats, failures, stderr = run_locust(
        "held_sessions.py", cyrus_deployment, tmp_path, "--imap-tls", "implicit",
        "--imap-held-interval", "0.5", "--imap-held-steps", "NOOP,IDLE",
        "--imap-idle-seconds", "0.2")
    assert rc == 0, stderr[-2000:]
    assert counts(stats)["NOOP"] > 3 and counts(stats)["IDLE"] > 3
    assert counts(stats)["LOGIN"] <= 3  # held: one login per user
    assert not failures


@pytest.mark.skipif(not inst.can_capture_syslog(), reason="Cyrus' log lines need root to capture")
def test_resumption_is_what_cyrus_logs(make_deployment, tmp_path: Path) -> None:
    deployment = make_deployment(users=2)
    rc, stats, _failures, stderr = run_locust("churn.py", deployment, tmp_path, "--imap-lean",
                                              "--imap-tls", "implicit", "--imap-tls-resume", "on",
                                              users=2, seconds=2)
    assert rc == 0, stderr[-2000:]
    log = Path(deployment.instances[0].log_file).read_text(errors="replace")
    reused, new = log.count("bits reused)"), log.count("bits new)")
    # Cyrus resumes only a share of the sessions offered (measured between a tenth and two
    # thirds, see docs/benchmarks.md); without resumption it resumes none.
    assert reused > 0 and new > 0, (reused, new)
    assert "TLSv1.2 with cipher" in log and "TLSv1.3 with cipher" not in log


def test_wrong_ca_is_a_classified_tls_failure(cyrus_deployment: Deployment,
                                              tmp_path: Path) -> None:
    other_ca = make_ca(tmp_path, "somebody else")
    rc, stats, failures, stderr = run_locust("churn.py", cyrus_deployment, tmp_path,
                                             "--imap-tls", "implicit",
                                             "--imap-ca-file", str(other_ca), seconds=2)
    assert rc == 1
    assert {(r["Name"], r["Error"]) for r in failures} == {("CONNECT", "TLS (unknown CA)")}
    assert "LOGIN" not in counts(stats)
    assert "Traceback" not in stderr


def test_name_mismatch_is_a_classified_tls_failure(cyrus_deployment: Deployment,
                                                   tmp_path: Path) -> None:
    info = cyrus_deployment.instances[0]  # its certificate names 127.0.0.1 only
    rc, _stats, failures, stderr = run_locust(
        "churn.py", None, tmp_path, "--imap-host", "localhost", "--imap-port", str(info.tls_port),
        "--imap-tls", "implicit", "--imap-ca-file", cyrus_deployment.ca_file,
        "--imap-users-file", info.users_file, seconds=2)
    assert rc == 1
    assert {(r["Name"], r["Error"]) for r in failures} == {("CONNECT", "TLS (name mismatch)")}
    assert "Traceback" not in stderr


def test_expired_certificate_is_a_classified_tls_failure(make_deployment,
                                                         tmp_path: Path) -> None:
    deployment = make_deployment(users=2)
    info = deployment.instances[0]
    # imapd loads its certificate for every connection: replacing the files is enough.
    _user, uid, gid = inst.service_user()
    issue_server_cert(Path(deployment.ca_file), Path(info.root), info.name, info.host, uid, gid,
                      days=-1)
    rc, _stats, failures, stderr = run_locust("churn.py", deployment, tmp_path,
                                              "--imap-tls", "implicit", users=2, seconds=2)
    assert rc == 1
    assert {(r["Name"], r["Error"]) for r in failures} == {("CONNECT", "TLS (expired)")}
    assert "Traceback" not in stderr


def test_tls_none_deploys_plain_imap_only_and_down_leaves_nothing(make_deployment) -> None:
    deployment = make_deployment(users=1, tls=False)
    info = deployment.instances[0]
    assert deployment.ca_file is None and info.tls_port is None
    assert "imaps" not in Path(info.cyrus_conf).read_text()
    assert not (Path(deployment.root) / "tls").exists()
    deploy_down(deployment.root)
    assert not Path(deployment.root).exists() and inst.instance_pids(info) == []
