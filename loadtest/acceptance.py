"""`cyrus-loadtest acceptance`: the one-command acceptance run.

Start a local test deployment, run locustfiles/acceptance.py headless against it with the
collectors and the gate, write the report, stop the deployment, and exit with the gate's code:
0 pass, 1 fail, 2 usage or configuration error, 3 inconclusive. The deployment is stopped on
every path out, SIGINT and SIGTERM included.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtest.deploy.binaries import add_cyrus_bin_dir_flag
from loadtest.errors import EXIT_FAIL, UsageError
from loadtest.imap.transport import TLS_MODES, TLS_NONE
from loadtest.paths import PROJECT_ROOT, fixtures_dir

DEFAULT_DURATION = 90.0
DEFAULT_USERS = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", default=str(DEFAULT_DURATION),
                        help=f"seconds of load (default {DEFAULT_DURATION:.0f})")
    parser.add_argument("--users", default=str(DEFAULT_USERS),
                        help=f"peak churn users, and as many flood users (default {DEFAULT_USERS})")
    parser.add_argument("--held", default="4", help="held sessions throughout (default 4)")
    parser.add_argument("--artifacts", default="artifacts",
                        help="folder under which the run's folder goes (default ./artifacts)")
    parser.add_argument("--gate", default=str(fixtures_dir() / "gates" / "default.toml"),
                        help="gate rules (default fixtures/gates/default.toml)")
    parser.add_argument("--fault", action="append", default=[],
                        help="inject a fault (repeatable), e.g. stall-master:at=30,duration=3")
    parser.add_argument("--deployment", help="use this running deployment (deployment.json) "
                        "instead of starting one")
    parser.add_argument("--provision-users", default="100",
                        help="test users in the deployment it starts (default 100)")
    parser.add_argument("--imap-tls", choices=TLS_MODES, default=TLS_NONE,
                        help="run the load over TLS: implicit (the deployment's imaps port) or "
                        "starttls; the deployment's own CA verifies it (default none). The "
                        "collectors' probes stay on plain IMAP")
    parser.add_argument("--imap-tls-resume", choices=("on", "off"), default="off",
                        help="TLS session resumption (see locust --help)")
    add_cyrus_bin_dir_flag(parser)


def number_arg(text: str, flag: str, kind: type = float, minimum: float = 1) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise UsageError(f"bad value {text!r} for {flag}: not a "
                         f"{'whole number' if kind is int else 'number'}") from None
    if value < minimum:
        raise UsageError(f"bad value {text!r} for {flag}: must be at least {minimum:g}")
    return value


def run(args: argparse.Namespace) -> int:
    duration = number_arg(args.duration, "--duration", float, 10)
    users = number_arg(args.users, "--users", int, 1)
    held = number_arg(args.held, "--held", int, 1)
    provision = number_arg(args.provision_users, "--provision-users", int, 1)
    return orchestrate(LoadRun(
        label="acceptance",
        locustfile=PROJECT_ROOT / "locustfiles" / "acceptance.py",
        gate=args.gate,
        faults=list(args.fault),
        artifacts=args.artifacts,
        duration=duration,
        locust_args=["--acceptance-duration", str(duration), "--acceptance-users", str(users),
                     "--acceptance-held", str(held), *tls_args(args)],
        summary=f"{duration:.0f} s of load: {held} held sessions, churn ramp to {users} users, "
                f"then {users} reconnect-flood users"
                + (f", over TLS ({args.imap_tls})" if args.imap_tls != TLS_NONE else ""),
        deployment=args.deployment,
        deploy_kwargs={"users": provision, **cyrus_bin_dir_kwargs(args)},
    ))


def tls_args(args: argparse.Namespace) -> list[str]:
    """The locust flags for --imap-tls / --imap-tls-resume (nothing for plain IMAP)."""
    if args.imap_tls == TLS_NONE:
        return []
    return ["--imap-tls", args.imap_tls, "--imap-tls-resume", args.imap_tls_resume]


def cyrus_bin_dir_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """deploy_up's arguments for --cyrus-bin-dir; refused with --deployment (that deployment
    already runs its own programs)."""
    if not args.cyrus_bin_dir:
        return {}
    if args.deployment:
        raise UsageError("--cyrus-bin-dir and --deployment exclude each other: the given "
                         "deployment already runs its programs (see its deployment.json)")
    return {"cyrus_bin_dir": args.cyrus_bin_dir,
            "sources": {"cyrus_bin_dir": "flag --cyrus-bin-dir"}}


@dataclass
class LoadRun:
    """One headless run of a locustfile with its gate, and the deployment it needs."""

    label: str  # prefixes every output line, the run folder and the deployment directory
    locustfile: Path
    gate: str
    faults: list[str]
    artifacts: str
    duration: float  # seconds of load the shape plans (Locust's --run-time allows 5 more)
    locust_args: list[str] = field(default_factory=list)
    summary: str = ""  # what the load is, printed before it starts
    deployment: str | None = None  # a running deployment to use instead of starting one
    deploy_kwargs: dict[str, Any] = field(default_factory=dict)  # deploy_up(root, **these)
    root: Path | None = None  # where to start the deployment (default: beside default_root())
    check_deployment: Callable[[Any], None] | None = None  # says what does not fit the run


def orchestrate(job: LoadRun) -> int:
    """Check the input, start the deployment (unless given one), run Locust headless with the
    gate, write the report, stop the deployment; return the gate's exit code."""
    label = job.label
    from loadtest.faults.spec import parse_faults
    from loadtest.gate.rules import load_rules

    load_rules(job.gate)  # a bad rules file fails before anything starts
    parse_faults(job.faults, "flag --fault")
    artifacts = Path(job.artifacts).absolute()
    try:
        artifacts.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create --artifacts {artifacts}: {exc.strerror}") from None

    from loadtest.deploy.deployment import Deployment, default_root
    from loadtest.deploy.manager import deploy_down, deploy_up
    from loadtest.deploy.watchdog import start_watchdog, stop_watchdog

    own_deployment = job.deployment is None
    # SIGTERM (a CI job cancelled) becomes KeyboardInterrupt so the finally below runs.
    signal.signal(signal.SIGTERM, _interrupt)
    locust: subprocess.Popen[bytes] | None = None
    watchdog: subprocess.Popen[bytes] | None = None
    root = job.root or default_root().parent / f"{label}-{os.getpid()}"
    try:
        if own_deployment:
            print(f"{label}: starting a test deployment in {root} ...", flush=True)
            # Stops the deployment if this process is killed without a way out (SIGKILL).
            watchdog = start_watchdog(root)
            deployment = deploy_up(root, **job.deploy_kwargs)
        else:
            assert job.deployment is not None  # own_deployment is False only with --deployment
            deployment = Deployment.load(job.deployment, "flag --deployment")
        if job.check_deployment is not None:
            job.check_deployment(deployment)
        run_name = time.strftime(f"{label}-%Y%m%d-%H%M%S")
        command = [
            sys.executable, "-m", "locust", "-f", str(job.locustfile),
            "--headless", "--only-summary", "--deployment", str(deployment.path),
            "--artifacts", str(artifacts), "--run-name", run_name, "--gate", job.gate,
            *job.locust_args, "--run-time", f"{int(job.duration) + 5}s",
            "--stop-timeout", "5",
        ]
        if job.faults:
            command += ["--faults", ";".join(job.faults)]
        if job.summary:
            print(f"{label}: {job.summary}", flush=True)
        locust = subprocess.Popen(command, cwd=PROJECT_ROOT)
        code = locust.wait()
        if not _write_report(label, artifacts, run_name):
            code = code or EXIT_FAIL
        return code
    except KeyboardInterrupt:
        if locust is not None and locust.poll() is None:
            locust.send_signal(signal.SIGINT)  # Locust writes its artifacts and the gate on SIGINT
            try:
                locust.wait(timeout=30)
            except subprocess.TimeoutExpired:
                locust.kill()
        print(f"{label}: interrupted", file=sys.stderr)
        if locust is not None:
            _write_report(label, artifacts, run_name)  # what was measured until the interrupt
        return 130
    finally:
        if own_deployment and (root / "deployment.json").exists():
            deploy_down(root)
            print(f"{label}: test deployment stopped", flush=True)
        stop_watchdog(watchdog)


def _write_report(label: str, artifacts: Path, run_name: str) -> bool:
    """report.html of the run (its verdict.json from the in-process gate); False when the run
    left no artifacts to report on."""
    from loadtest.core.runfolder import load_run
    from loadtest.report.html import render

    folder = _run_folder(artifacts, run_name)
    if folder is None or not (folder / "run.json").exists():
        print(f"{label}: the run wrote no artifacts; see the output above", file=sys.stderr)
        return False
    try:
        report = render(load_run(folder), None, None)
    except (UsageError, OSError) as exc:
        print(f"{label}: no report for {folder}: {exc}", file=sys.stderr)
        return False
    print(f"{label}: report {report}")
    print(f"{label}: artifacts {folder} (verdict.json, junit.xml)")
    return True


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM (a cancelled CI job) takes the same way out as Ctrl-C: deployment stopped."""
    raise KeyboardInterrupt


def _run_folder(artifacts: Path, run_name: str) -> Path | None:
    candidates = sorted(artifacts.glob(f"{run_name}*"))
    return candidates[-1] if candidates else None

