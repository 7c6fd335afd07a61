"""Nothing lost, on real Cyrus: a run with RST-cut APPENDs audits clean (in-process and with
`cyrus-loadtest audit`), and the audit names what is taken or altered behind Cyrus's back, a
duplicated APPEND, and a LIST without a provisioned folder is a counted protocol error."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.core.credentials import quote, read_users_file
from loadtest.deploy.deployment import Deployment
from loadtest.imap.lean import LeanSession, login_command
from loadtest.imap.transport import DISCONNECT_LOGOUT, Target
from loadtest.integrity import ledger as lg
from loadtest.integrity.message import digest, make_message

pytestmark = pytest.mark.cyrus

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
LOCUSTFILE = HERE / "integrity_locustfile.py"


def run_integrity(deployment: Deployment, tmp_path: Path, *args: str, users: int = 3,
                  seconds: int = 5) -> tuple[int, Path, str]:
    """locust headless with integrity users; exit code, the run folder, stderr."""
    rules = tmp_path / "gate.toml"
    rules.write_text("".join(f'[[rule]]\nmetric = "integrity.{stat}"\nmax = 0\n'
                             for stat in ("lost", "duplicated", "corrupt"))
                     + '[[rule]]\nmetric = "integrity.checked"\nmin = 50\n')
    cmd = [str(BIN / "locust"), "-f", str(LOCUSTFILE), "--headless", "-u", str(users),
           "-r", str(users), "-t", f"{seconds}s", "--stop-timeout", "2", "--only-summary",
           "--deployment", deployment.root, "--artifacts", str(tmp_path / "artifacts"),
           "--collectors", "none", "--gate", str(rules), *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADTEST_")}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    (folder,) = (tmp_path / "artifacts").iterdir()
    return proc.returncode, folder, stderr


def audit(folder: Path, deployment: Deployment) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "cyrus-loadtest"), "audit", str(folder), "--deployment",
                           deployment.root], capture_output=True, text=True, timeout=120)


def message_file(deployment: Deployment, mailboxid: str, uid: int) -> Path:
    """Cyrus 3.6 keeps a mailbox's messages under its MAILBOXID: data/uuid/a/b/ID/UID."""
    (path,) = Path(deployment.instances[0].data_dir).glob(f"uuid/*/*/{mailboxid}/{uid}.")
    return path


def test_a_run_with_cut_appends_audits_clean_and_the_audit_names_what_was_taken(
        make_deployment, tmp_path: Path) -> None:
    deployment = make_deployment(users=6)
    code, folder, stderr = run_integrity(deployment, tmp_path, "--imap-disconnect", "reset",
                                         "--integrity-cut-ratio", "0.3", "--processes", "2")
    assert code == 0, stderr[-3000:]
    result = json.loads((folder / "audit.json").read_text())
    assert result["status"] == "clean" and result["checked"] >= 50, result
    entries = lg.read_ledger(folder)
    kinds = [e["kind"] for e in entries]
    assert kinds.count("cut") > 0 and kinds.count("ack") > 0
    assert len({e["mailbox"] for e in entries}) == 3  # one folder per user, across 2 workers
    assert audit(folder, deployment).returncode == 0

    boxes = lg.fold(entries)
    box = next(b for b in boxes.values() if len(b.acknowledged) >= 2)
    taken, altered = box.acknowledged[0], box.acknowledged[1]
    message_file(deployment, box.mailboxid, taken.acks[0][1]).unlink()
    gone = audit(folder, deployment)
    assert gone.returncode == 1, gone.stdout + gone.stderr
    assert f"lost: slot1:{box.user}/{box.mailbox} message {taken.id} (UID {taken.acks[0][1]})" \
        in gone.stdout
    path = message_file(deployment, box.mailboxid, altered.acks[0][1])
    path.write_bytes(path.read_bytes().replace(b"\r\nid ", b"\r\nID "))  # same size
    both = audit(folder, deployment)
    assert both.returncode == 1
    assert f"corrupt: slot1:{box.user}/{box.mailbox} message {altered.id}" in both.stdout
    assert "1 lost, 0 duplicated, 1 corrupt" in both.stdout


def test_a_duplicated_append_is_reported(make_deployment, tmp_path: Path) -> None:
    deployment = make_deployment(users=2)
    info = deployment.instances[0]
    credential = read_users_file(deployment.users_file, "test")[0]
    folder_name = "lt-integrity-dup-0"
    where = {"instance": info.name, "host": info.host, "port": info.port,
             "user": credential.username, "mailbox": folder_name}
    ledger = lg.Ledger()
    session = LeanSession(Target(info.host, info.port, info.name), lambda *a: None)
    session.connect()
    session.login(login_command(credential))
    session.exchange("CREATE", b"c CREATE " + quote(folder_name) + b"\r\n", b"c ")
    data = make_message("dup-0-1", credential.username, random.Random(1))
    ledger.record(lg.APPEND, where, id="dup-0-1", sha256=digest(data), size=len(data))
    for _ in range(2):  # a client retrying after a lost reply: the same id acknowledged twice
        validity, uid = session.append(quote(folder_name), data)
        ledger.record(lg.ACK, where, id="dup-0-1", uidvalidity=validity, uid=uid)
    session.disconnect(DISCONNECT_LOGOUT)
    run_folder = tmp_path / "run"
    run_folder.mkdir()
    ledger.flush(run_folder)
    result = audit(run_folder, deployment)
    assert result.returncode == 1, result.stdout + result.stderr
    assert (f"duplicated: slot1:{credential.username}/{folder_name} message dup-0-1 (UID 2): "
            "acknowledged 2 times (UIDs 1, 2)") in result.stdout


def test_a_missing_provisioned_folder_is_a_counted_protocol_error(make_deployment,
                                                                 tmp_path: Path) -> None:
    deployment = make_deployment(users=1)
    info = deployment.instances[0]
    credential = read_users_file(deployment.users_file, "test")[0]
    session = LeanSession(Target(info.host, info.port, info.name), lambda *a: None)
    session.connect()
    session.login(login_command(credential))
    session.exchange("DELETE", b'd DELETE "Trash"\r\n', b"d ")
    session.disconnect(DISCONNECT_LOGOUT)
    code, folder, stderr = run_integrity(deployment, tmp_path, users=1, seconds=2)
    assert "Traceback" not in stderr
    with open(folder / "locust_failures.csv") as fh:
        rows = {(r["Name"], r["Error"]): int(r["Occurrences"]) for r in csv.DictReader(fh)}
    assert rows.get(("LIST", "protocol error"), 0) > 0, rows
    assert code == 3  # nothing was written: integrity.checked has no data, inconclusive
