"""Shared fixtures: real, disposable Cyrus deployments started by the project's own code.

`cyrus_deployment` (session): one instance with 20 users, shared by tests that only read or log
in. `make_deployment(**options)` (function): a deployment with its own service options (say
`imapd_reuse=1`, `maxchild=5`, `listen_backlog=32`) for tests that change or break the server;
`cyrus_bin_dir=DIR` runs the programs of a build directory (`cyrus-loadtest cyrus build`).
Both always tear down and check that no process of the deployment is left.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loadtest.deploy.deployment import Deployment
from loadtest.deploy.instance import instance_pids
from loadtest.deploy.manager import deploy_down, deploy_up
from loadtest.deploy.procs import pids_mentioning

# Under /dev/shm (tmpfs, fast) and not under pytest's 0700 tmp dirs: Cyrus runs as `cyrus`.
TEST_ROOT = Path(os.environ.get("LOADTEST_TEST_ROOT", f"/dev/shm/cyrus-loadtest-pytest-{os.getpid()}"))


def _teardown(deployment: Deployment) -> None:
    if Path(deployment.root).exists():  # a test may have taken it down itself
        deploy_down(deployment.root)
    left = [pid for info in deployment.instances for pid in instance_pids(info)]
    assert not left, f"processes of {deployment.root} left after deploy down: {left}"


@pytest.fixture(scope="session")
def test_root() -> Iterator[Path]:
    TEST_ROOT.mkdir(parents=True, exist_ok=True)
    TEST_ROOT.chmod(0o755)
    yield TEST_ROOT
    shutil.rmtree(TEST_ROOT, ignore_errors=True)


@pytest.fixture(scope="session")
def cyrus_deployment(test_root: Path) -> Iterator[Deployment]:
    deployment = deploy_up(test_root / "shared", users=20)
    try:
        yield deployment
    finally:
        _teardown(deployment)


@pytest.fixture
def make_deployment(test_root: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Deployment]]:
    created: list[Deployment] = []

    def make(*, users: int = 10, instances: int = 1, root_dir: Path | None = None,
             volatile_dir: Path | None = None, tls: bool = True,
             cyrus_bin_dir: Path | str | None = None, **options: object) -> Deployment:
        # Short: unix socket paths below it must fit in 108 bytes.
        name = f"{request.node.name[5:25]}-{len(created)}".strip("_").replace("[", "-").replace("]", "")
        deployment = deploy_up(root_dir or test_root / name, users=users, instances=instances,
                               options=options, volatile_dir=volatile_dir, tls=tls,
                               cyrus_bin_dir=cyrus_bin_dir)
        created.append(deployment)
        return deployment

    yield make
    for deployment in created:
        _teardown(deployment)


def _proc(pid: int | str) -> tuple[str, int, bytes] | None:
    """(state, parent pid, program) of a live process, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        program = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return None
    return fields[0], int(fields[1]), program


@pytest.fixture
def no_fault_left(test_root: Path) -> Iterator[None]:
    """After a fault test: no process of a test deployment stopped (state T), every imapd the
    child of a running master, no deployment folder without its deployment.json."""
    yield
    for pid in pids_mentioning(str(test_root) + "/"):
        proc = _proc(pid)
        if proc is None:
            continue  # exited meanwhile
        state, parent, program = proc
        assert state != "T", f"pid {pid} ({program!r}) of a test deployment left stopped"
        if b"imapd" in program:
            master = _proc(parent)
            assert master is not None and master[2].endswith(b"/master") and master[0] != "T", \
                f"imapd {pid} is not the child of a running master (parent {parent})"
    for folder in test_root.iterdir():
        if (folder / ".cyrus-loadtest").exists():
            assert (folder / "deployment.json").exists(), f"half-created deployment in {folder}"
