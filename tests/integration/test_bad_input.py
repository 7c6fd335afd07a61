"""Bad input from the reliability pass (issue 13): each is one line on stderr naming the value
and its origin, exit 2, no traceback, and nothing half-done (no folder, no NAME.tmp, no PNG).
Through the real command lines (`cyrus-loadtest`, `locust`); none of them starts a Cyrus."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.cyrus  # `deploy up` checks that Cyrus is installed before anything

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CHURN = str(REPO / "locustfiles" / "churn.py")


def run(*cmd: str, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LOADTEST_")}
    full_env.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=cwd,
                          timeout=timeout)


def one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """The run ended with exit 2 and one error line holding every fragment; return that line."""
    assert result.returncode == 2, (result.returncode, result.stderr[-1500:])
    assert "Traceback" not in result.stderr, result.stderr[-1500:]
    lines = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(lines) == 1, result.stderr[-1500:]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def deployment_file(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "deployment.json"
    path.write_text(json.dumps(data))
    return path


def valid_deployment(tmp_path: Path, **instance: object) -> dict:
    users = tmp_path / "users.csv"
    users.write_text("username,password\nuser0001,secret\n")
    info = {"name": "slot1", "host": "127.0.0.1", "port": 1, "root": str(tmp_path),
            **{k: str(tmp_path / k) for k in ("imapd_conf", "cyrus_conf", "config_dir",
                                               "data_dir", "proc_dir", "lock_dir", "stats_file",
                                               "pid_file", "log_file", "master_log")},
            "users_file": str(users), **instance}
    return {"root": "/somewhere/else", "instances": [info], "users_file": str(users),
            "admin_user": "cyrusadmin", "admin_password_file": str(tmp_path / "admin.pass"),
            "version": 1}


# -- deploy up ---------------------------------------------------------------------------------


def test_topology_with_non_utf8_bytes(tmp_path: Path) -> None:
    topology = tmp_path / "bad.toml"
    topology.write_bytes(b'[[store]]\nname = "st\xe9re"\n')
    one_line_error(run(str(BIN / "cyrus-loadtest"), "deploy", "up", "--dir",
                       str(tmp_path / "d"), "--topology", str(topology)),
                   str(topology), "line 2", "not UTF-8")
    assert not (tmp_path / "d").exists()


def test_dir_naming_a_file(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("mine")
    one_line_error(run(str(BIN / "cyrus-loadtest"), "deploy", "up", "--dir", str(a_file)),
                   str(a_file), "is a file")
    assert a_file.read_text() == "mine"


@pytest.mark.parametrize("action", ["up", "down", "status"])
def test_empty_dir_is_refused_not_the_default_location(action: str) -> None:
    one_line_error(run(str(BIN / "cyrus-loadtest"), "deploy", action, "--dir", ""),
                   "--dir ''", "empty")


@pytest.mark.parametrize("users", ["99999999999999999999", "10000000"])
def test_users_beyond_what_can_be_held_are_refused_before_starting(tmp_path: Path,
                                                                   users: str) -> None:
    one_line_error(run(str(BIN / "cyrus-loadtest"), "deploy", "up", "--dir",
                       str(tmp_path / "d"), "--users", users), f"--users {users}")
    assert not (tmp_path / "d").exists()


def test_port_in_use_leaves_no_folder(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        one_line_error(run(str(BIN / "cyrus-loadtest"), "deploy", "up", "--dir",
                           str(tmp_path / "d"), "--port", str(port)), f"port {port}")
    assert not (tmp_path / "d").exists()


# -- deployment.json read by locust and watch ---------------------------------------------------


BAD_DEPLOYMENTS = {
    "a list": ([1, 2], "not an object"),
    "no instances": ({"version": 1, "instances": [], "root": "/x", "users_file": "/x",
                      "admin_user": "a", "admin_password_file": "/x"}, "non-empty list"),
}


@pytest.mark.parametrize("case", [*BAD_DEPLOYMENTS, "port x"])
@pytest.mark.parametrize("tool", ["locust", "watch"])
def test_bad_deployment_file(tmp_path: Path, case: str, tool: str) -> None:
    if case == "port x":
        data, fragment = valid_deployment(tmp_path, port="x"), "port 'x' is not a port number"
    else:
        data, fragment = BAD_DEPLOYMENTS[case]
    path = deployment_file(tmp_path, data)
    if tool == "locust":
        result = run(str(BIN / "locust"), "-f", CHURN, "--headless", "-u", "1", "-t", "1s",
                     "--deployment", str(path), "--artifacts", str(tmp_path / "a"), cwd=tmp_path)
        assert not (tmp_path / "a").exists()
    else:
        result = run(str(BIN / "cyrus-loadtest"), "watch", "--deployment", str(path),
                     "--duration", "1")
    one_line_error(result, str(path), fragment)


def test_remote_host_in_deployment_names_the_file_passed(tmp_path: Path) -> None:
    path = deployment_file(tmp_path, valid_deployment(tmp_path, host="192.0.2.1"))
    line = one_line_error(run(str(BIN / "locust"), "-f", CHURN, "--headless", "-u", "1", "-t",
                              "1s", "--deployment", str(path), cwd=tmp_path),
                          str(path), "192.0.2.1")
    assert "/somewhere/else" not in line


def test_missing_users_file_names_the_deployment_file_passed(tmp_path: Path) -> None:
    data = valid_deployment(tmp_path)
    data["users_file"] = str(tmp_path / "gone.csv")
    path = deployment_file(tmp_path, data)
    line = one_line_error(run(str(BIN / "locust"), "-f", CHURN, "--headless", "-u", "1", "-t",
                              "1s", "--deployment", str(path), cwd=tmp_path),
                          "gone.csv", f"from {path}")
    assert "/somewhere/else" not in line


# -- locust options --------------------------------------------------------------------------


@pytest.mark.parametrize("faults, fragment", [
    ("kill-master:at=nan", "at=nan is not a finite number"),
    ("stall-master:at=inf", "at=inf is not a finite number"),
    ("stall-master:at=1,duration=2,at=3", "at= given twice"),
    ("signal-storm:duration=10,rate=1e9", "at most 50,000"),
])
def test_bad_fault_specs(tmp_path: Path, faults: str, fragment: str) -> None:
    path = deployment_file(tmp_path, valid_deployment(tmp_path))
    one_line_error(run(str(BIN / "locust"), "-f", CHURN, "--headless", "-u", "1", "-t", "1s",
                       "--deployment", str(path), "--faults", faults, cwd=tmp_path),
                   fragment, "--faults")


def test_choice_from_env_names_the_env_variable(tmp_path: Path) -> None:
    one_line_error(run(str(BIN / "locust"), "-f", CHURN, "--headless", "-u", "1", "-t", "1s",
                       env={"LOADTEST_IMAP_TLS": "sometimes"}, cwd=tmp_path),
                   "'sometimes'", "--imap-tls", "env LOADTEST_IMAP_TLS", "choose one of")


def test_choice_from_config_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "locust.conf").write_text("imap-disconnect = slam\n")
    one_line_error(run(str(BIN / "locust"), "-f", CHURN, "--headless", "-u", "1", "-t", "1s",
                       cwd=tmp_path),
                   "'slam'", "--imap-disconnect", "locust.conf")


def test_negative_wait_says_what_is_wrong(tmp_path: Path) -> None:
    one_line_error(run(str(BIN / "locust"), "-f", CHURN, "--headless", "-u", "1", "-t", "1s",
                       "--imap-wait", "-2", cwd=tmp_path),
                   "'-2'", "--imap-wait", "must be >= 0")


# -- report ------------------------------------------------------------------------------------


def finished_run(tmp_path: Path) -> Path:
    """A small run folder from the fixture the report tests use."""
    from loadtest.report.synthetic import write_synthetic_run

    return write_synthetic_run(tmp_path / "run")


def test_report_with_a_verdict_that_is_not_one_writes_nothing(tmp_path: Path) -> None:
    folder = finished_run(tmp_path)
    (folder / "verdict.json").write_text("[1]")
    before = sorted(p.name for p in folder.iterdir())
    one_line_error(run(str(BIN / "cyrus-loadtest"), "report", str(folder)),
                   "verdict.json", "not a verdict")
    assert sorted(p.name for p in folder.iterdir()) == before  # no PNG, no report


@pytest.mark.parametrize("where", ["proc", "folder"])
def test_report_output_that_cannot_be_written(tmp_path: Path, where: str) -> None:
    folder = finished_run(tmp_path)
    output = "/proc/report.html" if where == "proc" else str(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    one_line_error(run(str(BIN / "cyrus-loadtest"), "report", str(folder), "--output", output),
                   "--output", output)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not list(tmp_path.rglob("*.tmp"))


# -- the web UI's start form -----------------------------------------------------------------


def test_web_form_with_a_refused_target_is_refused_and_names_the_form(tmp_path: Path) -> None:
    import time
    import urllib.parse
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        web_port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADTEST_")}
    locust = subprocess.Popen(
        [str(BIN / "locust"), "-f", CHURN, "--web-port", str(web_port), "--imap-host",
         "127.0.0.1", "--imap-port", "1", "--imap-user-pattern", "user{n}", "--imap-user-count",
         "1", "--imap-password", "x", "--collectors", "none", "--artifacts", str(tmp_path / "a")],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{web_port}/", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and locust.poll() is None, "no web UI"
                time.sleep(0.2)
        form = urllib.parse.urlencode({"user_count": "1", "spawn_rate": "1", "host": "",
                                       "imap_host": "192.0.2.1"}).encode()
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/swarm", data=form,
                                    timeout=10) as response:
            answer = json.loads(response.read())
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/stats/requests",
                                    timeout=10) as response:
            state = json.loads(response.read())["state"]
    finally:
        locust.terminate()
        locust.communicate(timeout=30)
    assert answer["success"] is False
    assert "192.0.2.1" in answer["message"] and "web form field imap_host" in answer["message"]
    assert state != "running"
