"""Targets and credentials from options, a deployment.json and users files (pure file I/O)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest import FORMAT_VERSION
from loadtest.core.credentials import read_users_file
from loadtest.deploy.deployment import Deployment, InstanceInfo
from loadtest.errors import UsageError
from loadtest.imap.config import build_config
from loadtest.settings import resolve


def _instance(root: Path, name: str, port: int, host: str = "127.0.0.1") -> InstanceInfo:
    users = root / f"{name}.csv"
    users.write_text("username,password\n" + "".join(f"{name}u{i},pw{i}\n" for i in range(3)))
    d = str(root / name)
    return InstanceInfo(name=name, host=host, port=port, root=d, imapd_conf=d, cyrus_conf=d,
                        config_dir=d, data_dir=d, proc_dir=d, lock_dir=d, stats_file=d,
                        pid_file=d, log_file=d, master_log=d, users_file=str(users))


@pytest.fixture
def deployment(tmp_path: Path) -> Deployment:
    a, b = _instance(tmp_path, "a", 1143), _instance(tmp_path, "b", 2143)
    users = tmp_path / "users.csv"
    users.write_text("username,password,instance\n" + "".join(
        f"{inst}u{i},pw{i},{inst}\n" for i in range(3) for inst in "ab"))
    dep = Deployment(root=str(tmp_path), instances=[a, b], users_file=str(users),
                     admin_user="admin", admin_password_file=str(tmp_path / "admin"),
                     version=FORMAT_VERSION)
    dep.save()
    return dep


def test_users_spread_over_instances_and_land_where_their_mailbox_lives(deployment: Deployment) -> None:
    config = build_config(resolve({"deployment": deployment.root}))
    seen = [config.slot(i) for i in range(6)]
    assert [t.instance for t, _ in seen] == ["a", "b", "a", "b", "a", "b"]
    assert all(c.username.startswith(t.instance) for t, c in seen)
    assert len({c.username for _, c in seen}) == 6  # each simulated user its own mailbox
    assert {(t.host, t.port) for t, _ in seen} == {("127.0.0.1", 1143), ("127.0.0.1", 2143)}


def test_selected_instances_only(deployment: Deployment) -> None:
    config = build_config(resolve({"deployment": deployment.root, "imap_instances": "b"}))
    assert {config.slot(i)[0].instance for i in range(5)} == {"b"}
    with pytest.raises(UsageError, match="no instance 'c'"):
        build_config(resolve({"deployment": deployment.root, "imap_instances": "c"}))


def test_explicit_host_with_pattern_credentials() -> None:
    config = build_config(resolve({
        "imap_host": "127.0.0.1", "imap_port": "1143", "imap_user_pattern": "user{n}",
        "imap_password": "pw", "imap_user_count": "3",
    }))
    assert [config.slot(i)[1].username for i in range(4)] == ["user1", "user2", "user3", "user1"]
    assert config.slot(0)[0].address == ("127.0.0.1", 1143)


def test_pattern_without_password_is_refused() -> None:
    with pytest.raises(UsageError, match="needs --imap-password"):
        build_config(resolve({"imap_host": "127.0.0.1", "imap_user_pattern": "user{n}"}))


def test_remote_target_refused_unless_allowed() -> None:
    raw = {"imap_host": "192.0.2.10", "imap_user_pattern": "u{n}", "imap_password": "x"}
    with pytest.raises(UsageError, match="refusing non-loopback target '192.0.2.10'"):
        build_config(resolve(raw, {"imap_host": "env LOADTEST_IMAP_HOST"}))
    config = build_config(resolve({**raw, "allow_remote_target": "true"}))
    assert config.slot(0)[0].host == "192.0.2.10"


def test_remote_instance_in_deployment_refused(tmp_path: Path) -> None:
    inst = _instance(tmp_path, "far", 143, host="192.0.2.7")
    dep = Deployment(root=str(tmp_path), instances=[inst], users_file=inst.users_file,
                     admin_user="admin", admin_password_file="x", version=FORMAT_VERSION)
    dep.save()
    with pytest.raises(UsageError, match="instance far"):
        build_config(resolve({"deployment": str(tmp_path)}))


def test_flood_without_login_needs_no_credentials(tmp_path: Path) -> None:
    config = build_config(resolve({"imap_host": "127.0.0.1", "deployment": str(tmp_path)}),
                          require_credentials=False)
    assert config.slot(0)[1] is None
    with pytest.raises(UsageError, match="no credentials"):
        build_config(resolve({"imap_host": "127.0.0.1", "deployment": str(tmp_path)}))


def test_fetch_needs_select() -> None:
    raw = {"imap_host": "127.0.0.1", "imap_user_pattern": "u{n}", "imap_password": "x"}
    with pytest.raises(UsageError, match="FETCH needs SELECT"):
        build_config(resolve({**raw, "imap_churn_steps": "LIST,FETCH"}))
    config = build_config(resolve({**raw, "imap_churn_steps": "fetch,select,list"}))
    assert config.churn_steps == ("LIST", "SELECT", "FETCH")


def test_missing_ca_file() -> None:
    raw = {"imap_host": "127.0.0.1", "imap_user_pattern": "u{n}", "imap_password": "x",
           "imap_tls": "implicit", "imap_ca_file": "/nonexistent/ca.pem"}
    with pytest.raises(UsageError, match="CA file /nonexistent/ca.pem .*does not exist"):
        build_config(resolve(raw))


@pytest.mark.parametrize(
    "content, message",
    [
        ("u1,p1\nu2\n", "line 2 (from test): expected username,password[,instance], got 1 fields"),
        ("u1,secretpw,a,extra\n", "line 1 (from test): expected username,password[,instance], got 4"),
        ("u1,\n", "line 1 (from test): empty password"),
        ("username,password\n", "has no users"),
        ("u1,p\u00e9\n", "line 1 (from test): password has characters"),
    ],
)
def test_malformed_users_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "users.csv"
    path.write_text(content)
    with pytest.raises(UsageError) as info:
        read_users_file(path, "test")
    assert message in str(info.value)
    assert "secretpw" not in str(info.value) and "p\u00e9" not in str(info.value)


def test_missing_users_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"users file .*nope.csv \(from flag --imap-users-file\) does not exist"):
        read_users_file(tmp_path / "nope.csv", "flag --imap-users-file")


def test_credential_repr_hides_password() -> None:
    from loadtest.core.credentials import Credential

    assert "hunter2" not in repr(Credential("u", "hunter2"))
