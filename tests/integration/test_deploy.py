"""Disposable deployments against real Cyrus: start, serve users, stop with nothing left,
several instances side by side, and every bad-input case of the deployment CLI."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from imapclient import IMAPClient

from loadtest.deploy import instance as inst
from loadtest.deploy.deployment import Deployment, InstanceInfo
from loadtest.deploy.manager import deploy_down
from loadtest.deploy.procs import pid_alive
from loadtest.deploy.render import ServiceOptions

pytestmark = pytest.mark.cyrus
CLI = [sys.executable, "-m", "loadtest.cli"]


def first_user(info: InstanceInfo) -> tuple[str, str]:
    with open(info.users_file, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["username", "password"]
    return rows[1][0], rows[1][1]


def login(info: InstanceInfo) -> IMAPClient:
    user, password = first_user(info)
    client = IMAPClient(info.host, info.port, ssl=False, timeout=10)
    client.login(user, password)
    return client


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_provisioned_user_sees_folders_and_seed_messages(cyrus_deployment: Deployment) -> None:
    info = cyrus_deployment.instances[0]
    client = login(info)
    try:
        folders = {name for _flags, _sep, name in client.list_folders()}
        assert {"INBOX", "Sent", "Drafts", "Trash"} <= folders
        assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 3
        subjects = [env[b"ENVELOPE"].subject for env in client.fetch(client.search("ALL"), ["ENVELOPE"]).values()]
        assert b"Welcome to the load test" in subjects
    finally:
        client.logout()
    with open(cyrus_deployment.users_file, newline="") as fh:
        assert len(list(csv.reader(fh))) == 20 + 1


def test_master_stats_file_and_captured_syslog(cyrus_deployment: Deployment) -> None:
    info = cyrus_deployment.instances[0]
    stats = Path(info.stats_file).read_text()
    assert 'cyrus_master_forks_total{service="imap",family="ipv4"}' in stats
    assert "cyrus_master_ready_workers" in stats
    before = Path(info.stats_file).stat().st_mtime
    time.sleep(2.2)  # master rewrites it every update interval (1 s): the heartbeat
    assert Path(info.stats_file).stat().st_mtime > before
    login(info).logout()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        log = Path(info.log_file).read_text(errors="replace")
        if f"loadtest-{info.name}/imap" in log and "User logged in" in log:
            break
        time.sleep(0.1)
    assert f"loadtest-{info.name}/imap" in log and "User logged in" in log


def test_password_files_are_private(cyrus_deployment: Deployment) -> None:
    for path in (cyrus_deployment.users_file, cyrus_deployment.admin_password_file,
                 cyrus_deployment.instances[0].users_file):
        assert os.stat(path).st_mode & 0o077 == 0, path
    assert "password" not in Path(cyrus_deployment.path).read_text().replace(
        "admin_password_file", "")


def test_stop_leaves_no_process(make_deployment) -> None:
    deployment = make_deployment(users=3, prefork=3)
    info = deployment.instances[0]
    client = login(info)  # a busy child at stop time
    pids = inst.instance_pids(info)
    assert info.master_pid in pids and len(pids) >= 4  # master, prefork imapds, syslog receiver
    deploy_down(deployment.root, remove=False)
    client.shutdown()
    assert inst.instance_pids(info) == []
    assert not any(pid_alive(p) for p in pids)
    assert "All children have exited" in Path(info.log_file).read_text(errors="replace")


def test_two_instances_side_by_side(make_deployment) -> None:
    deployment = make_deployment(users=6, instances=2)
    a, b = deployment.instances
    assert a.port != b.port and a.master_pid != b.master_pid
    assert len({a.root, b.root}) == 2
    clients = [login(a), login(b)]
    try:
        for client in clients:
            assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 3
    finally:
        for client in clients:
            client.logout()
    users_a, users_b = first_user(a)[0], first_user(b)[0]
    assert users_a != users_b  # users are spread, each lives on one instance
    with open(deployment.users_file, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["instance"] for r in rows} == {a.name, b.name} and len(rows) == 6


def test_down_after_killed_master_ends_every_child(make_deployment) -> None:
    deployment = make_deployment(users=2, prefork=3)
    info = deployment.instances[0]
    os.kill(info.master_pid, signal.SIGKILL)
    time.sleep(0.3)
    orphans = [p for p in inst.instance_pids(info) if p != info.syslog_pid]
    assert orphans, "imapd children should outlive a SIGKILLed master"
    stopped = deploy_down(deployment.root, remove=False)
    assert "master was not running" in stopped[0]
    assert inst.instance_pids(info) == []


def test_cli_up_status_down(test_root: Path) -> None:
    root = test_root / "cli"
    up = cli("deploy", "up", "--dir", str(root), "--users", "3", "--maxchild", "20")
    assert up.returncode == 0, up.stderr
    assert "provisioned 3 users" in up.stdout
    try:
        deployment = Deployment.load(root)
        assert deployment.instances[0].options["maxchild"] == 20
        status = cli("deploy", "status", "--deployment", str(deployment.path))
        assert status.returncode == 0, status.stdout + status.stderr
        assert " up " in status.stdout
    finally:
        down = cli("deploy", "down", "--dir", str(root))
    assert down.returncode == 0, down.stderr
    assert not root.exists()
    status = cli("deploy", "status", "--dir", str(root))
    assert status.returncode == 2 and "no deployment at" in status.stderr


def assert_one_line_usage_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_cyrus_bin_dir_env_is_the_flags_env_form(test_root: Path) -> None:
    result = cli("deploy", "up", "--dir", str(test_root / "nocyrus"),
                 env={"LOADTEST_CYRUS_BIN_DIR": "/nonexistent/cyrus"})
    assert_one_line_usage_error(result, "/nonexistent/cyrus", "env LOADTEST_CYRUS_BIN_DIR",
                                "no such directory")
    assert not (test_root / "nocyrus").exists()


@pytest.mark.parametrize("master, fragments", [
    (None, ("no executable master",)),
    ("plain", ("master is not an executable file",)),
    ("impostor", ("is not a Cyrus master", "exited 0 saying 'hello'")),
])
def test_bad_cyrus_bin_dir_starts_nothing(tmp_path: Path, test_root: Path, master: str | None,
                                          fragments: tuple[str, ...]) -> None:
    bin_dir = tmp_path / "build"
    bin_dir.mkdir()
    if master is not None:
        (bin_dir / "master").write_text("#!/bin/sh\necho hello\n")
        (bin_dir / "master").chmod(0o755 if master == "impostor" else 0o644)
    root = test_root / f"badbin-{master}"
    result = cli("deploy", "up", "--dir", str(root), "--cyrus-bin-dir", str(bin_dir))
    assert_one_line_usage_error(result, str(bin_dir), "flag --cyrus-bin-dir", *fragments)
    assert not root.exists() and inst.pids_mentioning(str(root) + "/") == []


def test_cyrus_bin_dir_with_only_master(tmp_path: Path, test_root: Path) -> None:
    """A build directory holding only master: master runs from it, the rest is packaged, and
    deployment.json says so with master's version."""
    bin_dir = tmp_path / "build"
    bin_dir.mkdir()
    (bin_dir / "master").symlink_to("/usr/lib/cyrus/bin/master")
    root = test_root / "onlymaster"
    result = cli("deploy", "up", "--dir", str(root), "--users", "1", "--cyrus-bin-dir", str(bin_dir))
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"from {bin_dir}" in result.stdout
        info = Deployment.load(root).instances[0]
        assert info.cyrus["bin_dir"] == str(bin_dir) and info.cyrus["version"].startswith("3.")
        assert info.cyrus["programs"]["master"] == str(bin_dir / "master")
        assert info.cyrus["programs"]["imapd"] == "/usr/lib/cyrus/bin/imapd"
        argv0 = Path(f"/proc/{info.master_pid}/cmdline").read_bytes().split(b"\0")
        assert str(bin_dir / "master").encode() in argv0
    finally:
        cli("deploy", "down", "--dir", str(root))


def test_port_in_use(test_root: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("deploy", "up", "--dir", str(test_root / "busy"), "--port", str(port))
    assert_one_line_usage_error(result, f"port {port} (from flag --port)")
    assert inst.pids_mentioning(str(test_root / "busy") + "/") == []


def test_unusable_directory() -> None:
    result = cli("deploy", "up", "--dir", "/etc/hostname/deployment")
    assert_one_line_usage_error(result, "/etc/hostname/deployment", "flag --dir")


def test_directory_too_deep_for_unix_sockets(test_root: Path) -> None:
    deep = test_root / ("d" * 90)
    result = cli("deploy", "up", "--dir", str(deep), "--users", "1")
    assert_one_line_usage_error(result, "too deep", "107 bytes")
    assert inst.pids_mentioning(str(deep) + "/") == [] and not deep.exists()


def test_bad_topology_file(tmp_path: Path, test_root: Path) -> None:
    topology = tmp_path / "bad.toml"
    topology.write_text("[[store]]\nname = 'store1'\nmaster = 'slot1'\nusers = 'many'\n")
    result = cli("deploy", "up", "--dir", str(test_root / "topo"), "--topology", str(topology))
    assert_one_line_usage_error(result, f"{topology}:1", "users = 'many'")
    assert not (test_root / "topo" / "deployment.json").exists()


def test_bad_service_option_flag(test_root: Path) -> None:
    result = cli("deploy", "up", "--dir", str(test_root / "opt"), "--maxchild", "0")
    assert_one_line_usage_error(result, "maxchild=0", "must be >= 1")


def test_master_that_cannot_start_leaves_nothing(test_root: Path) -> None:
    root = test_root / "broken"
    info = inst.lay_out("broken", root, ServiceOptions(), port=inst.free_port(), admin_user="a")
    Path(info.cyrus_conf).write_text('SERVICES {\n  imap cmd="imapd" listen=\n}\n')
    with pytest.raises(inst.StartError) as error:
        inst.start(info, timeout=10)
    message = str(error.value)
    assert "exited with status" in message and "unable to find command or port" in message
    assert inst.instance_pids(info) == []


def test_port_taken_after_check_fails_fast_with_log(test_root: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        info = inst.lay_out("taken", test_root / "taken", ServiceOptions(),
                            port=busy.getsockname()[1], admin_user="a")
        with pytest.raises(inst.StartError) as error:
            inst.start(info, timeout=20)
    assert "could not bind" in str(error.value) and "Address already in use" in str(error.value)
    assert inst.instance_pids(info) == []


def test_volatile_directories_on_tmpfs_data_on_disk(make_deployment, tmp_path_factory) -> None:
    disk = Path("/var/tmp") / f"cyrus-loadtest-pytest-{os.getpid()}"
    volatile = Path("/dev/shm")
    deployment = make_deployment(users=2, root_dir=disk / "vol", volatile_dir=volatile)
    info = deployment.instances[0]
    try:
        assert info.data_dir.startswith(str(disk)) and info.imapd_conf.startswith(str(disk))
        for path in (info.proc_dir, info.lock_dir, info.stats_file, info.pid_file):
            assert path.startswith(str(volatile) + "/"), path
        client = login(info)  # a session's proc file lives in the volatile proc dir
        try:
            assert any(Path(info.proc_dir).iterdir())
        finally:
            client.logout()
        assert Path(info.stats_file).exists()
        deploy_down(deployment.root)
        assert not Path(info.volatile_root).exists() and not disk.joinpath("vol").exists()
    finally:
        shutil.rmtree(disk, ignore_errors=True)


def test_bad_volatile_dir(test_root: Path) -> None:
    result = cli("deploy", "up", "--dir", str(test_root / "v"), "--volatile-dir", "/nonexistent/tmpfs")
    assert_one_line_usage_error(result, "--volatile-dir /nonexistent/tmpfs", "flag --volatile-dir")
    assert not (test_root / "v").exists()
