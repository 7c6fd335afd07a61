"""`cyrus-loadtest` subcommands.

Every command turns bad input into one line on stderr and exit code 2 (`UsageError`); the
modules behind each subcommand are imported only when that subcommand runs, so `deploy` never
pays for Locust's gevent patching.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from loadtest.deploy.binaries import add_cyrus_bin_dir_flag
from loadtest.errors import EXIT_USAGE, UsageError

PROG = "cyrus-loadtest"

# name -> (module, help); each module has add_arguments(parser) and run(args) -> int.
PLUGGED_COMMANDS: dict[str, tuple[str, str]] = {
    "watch": ("loadtest.collectors.watch", "live server-side series for a deployment, like top"),
    "gate": ("loadtest.gate.cli", "evaluate gate rules over a run's artifacts"),
    "compare": ("loadtest.compare_cli", "judge a run against a baseline run (max_ratio rules)"),
    "report": ("loadtest.report.cli", "write the HTML report of a run's artifacts"),
    "bench": ("loadtest.bench.cli", "measure the load generator: CPU per session, flood cycles, "
              "held-session memory, collectors' cost, open-loop lateness (table and JSON)"),
    "acceptance": ("loadtest.acceptance", "start a test deployment, run the acceptance scenario "
                   "with the gate, write the report, stop the deployment"),
    "agent": ("loadtest.agent.server", "serve the server-side collectors on the Cyrus host over "
              "HTTP (/metrics for Prometheus, /series for --agent-url)"),
    "scenario": ("loadtest.scenario_cli", "run one incident scenario with its own deployment and gate"),
    "options": ("loadtest.options_cli", "every option of the locustfiles: flag, env name, "
                "config key, default, help (locust --help cannot show them)"),
    "audit": ("loadtest.integrity.cli", "check that a run's acknowledged messages are all there, "
              "byte for byte (its ledger against the mailboxes)"),
    "cyrus": ("loadtest.cyrus_build", "build a Cyrus master from the installed version's source "
              "with a known-bad variant's patch, for --cyrus-bin-dir"),
}

SERVICE_FLAGS = {
    # flag -> (ServiceOptions field, help)
    "--prefork": ("prefork", "imapd processes master keeps ready (default 2)"),
    "--maxchild": ("maxchild", "most imapd processes at once (default 400)"),
    "--maxforkrate": ("maxforkrate", "most forks per second, 0 = unlimited (default 0)"),
    "--imapd-reuse": ("imapd_reuse", "connections per imapd process, imapd -U; 1 = a fork per "
                                     "connection (default 250)"),
    "--imapd-idle-timeout": ("imapd_idle_timeout", "seconds an idle imapd waits, imapd -T "
                                                   "(default 60)"),
    "--listen-backlog": ("listen_backlog", "listen queue of the IMAP socket, master -l "
                                           "(default 1024; Cyrus' own default is 32)"),
}


def _deploy_up(args: argparse.Namespace) -> int:
    from loadtest.deploy.deployment import default_root
    from loadtest.deploy.manager import Timing, deploy_up
    from loadtest.deploy.topology import load_topology

    if args.dir is not None and not args.dir.strip():
        raise UsageError("--dir '' (from flag --dir) is empty: name a directory, or leave the "
                         "flag out for the default location")
    root = Path(args.dir) if args.dir else default_root()
    sources = {"dir": "flag --dir" if args.dir else "default directory",
               "port": "flag --port", "users": "flag --users", "instances": "flag --instances",
               "options": "flags", "volatile_dir": "flag --volatile-dir",
               "cyrus_bin_dir": "flag --cyrus-bin-dir"}
    options = {field: getattr(args, field) for field, _ in SERVICE_FLAGS.values()
               if getattr(args, field) is not None}
    if args.rotating_binary:
        options["imapd_binary"] = "symlink"
    if args.httpd_metrics:
        options["httpd_metrics"] = True
    slots = load_topology(args.topology) if args.topology is not None else None
    timing = Timing()
    with _progress() as progress:
        deployment = deploy_up(root, users=args.users, instances=args.instances, slots=slots,
                               port=args.port, options=options, progress=progress, timing=timing,
                               sources=sources, volatile_dir=args.volatile_dir,
                               tls=args.tls != "none", cyrus_bin_dir=args.cyrus_bin_dir)
    from loadtest.deploy.binaries import CyrusPrograms

    print(f"cyrus: {CyrusPrograms.from_dict(deployment.instances[0].cyrus).describe()}")
    for info in deployment.instances:
        imaps = f", imaps on {info.host}:{info.tls_port}" if info.tls_port else ""
        print(f"{info.name}: imap on {info.address}{imaps}, master pid {info.master_pid}, "
              f"users in {info.users_file}"
              + (f", metrics at {info.metrics_url}" if info.metrics_url else ""))
    print(f"provisioned {timing.users} users in {timing.total_s:.1f} s "
          f"(passwords {timing.sasl_s:.1f} s, start {timing.start_s:.1f} s, "
          f"mailboxes {timing.mailboxes_s:.1f} s)")
    print(f"deployment: {deployment.path}")
    if deployment.ca_file:
        print(f"TLS: certificates signed by {deployment.ca_file} (load runs take it from "
              "the deployment: --imap-tls implicit|starttls)")
    if args.dir:
        print(f"point load runs at it with --deployment {deployment.path} "
              f"or LOADTEST_DEPLOYMENT={deployment.path}")
    return 0


class _progress:
    """Provisioning progress: on a terminal a bar per phase with done/total and the time it has
    taken (no estimate left once done); with or without a terminal, the same line when a phase
    is complete (CI logs get those lines only)."""

    def __enter__(self) -> Callable[[str, int, int], None]:
        import time

        self._clock = time.monotonic
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._started: dict[str, float] = {}
        self._finished: set[str] = set()
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(TextColumn("provisioning: {task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), transient=True,
                                 console=Console(stderr=True))
            self._bar.start()
        return self.update

    def update(self, phase: str, done: int, total: int) -> None:
        self._started.setdefault(phase, self._clock())
        if self._bar is not None:
            if phase not in self._tasks:
                self._tasks[phase] = self._bar.add_task(phase, total=total)
            self._bar.update(self._tasks[phase], completed=done, total=total)
        if done >= total and phase not in self._finished:
            self._finished.add(phase)
            line = (f"provisioning: {phase} {done}/{total} done in "
                    f"{self._clock() - self._started[phase]:.1f} s")
            if self._bar is not None:
                self._bar.console.print(line, highlight=False)
            else:
                print(line, file=sys.stderr, flush=True)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def _resolve_root(args: argparse.Namespace) -> tuple[Path, str]:
    from loadtest.deploy.deployment import locate

    if getattr(args, "dir", None) is not None:
        if not args.dir.strip():
            raise UsageError("--dir '' (from flag --dir) is empty: name the deployment's directory")
        return Path(args.dir), "flag --dir"
    path, source = locate(args.deployment)
    return (path.parent if path.name.endswith(".json") else path), source


def _deploy_down(args: argparse.Namespace) -> int:
    from loadtest.deploy.manager import deploy_down

    root, source = _resolve_root(args)
    for line in deploy_down(root, remove=not args.keep, source=source):
        print(line)
    print(f"deployment in {root} is down" + (" (files kept)" if args.keep else ""))
    return 0


def _deploy_status(args: argparse.Namespace) -> int:
    from loadtest.deploy.manager import deploy_status

    root, source = _resolve_root(args)
    rows = deploy_status(root, source)
    healthy = True
    for row in rows:
        state = "up" if row.master_alive and row.greeting_ok else (
            "no greeting" if row.master_alive else "master not running")
        healthy &= state == "up"
        ready = "-" if row.ready_workers is None else f"{row.ready_workers:.0f}"
        age = "-" if row.stats_age_s is None else f"{row.stats_age_s:.1f} s"
        print(f"{row.name:10} {row.address:21} pid {row.master_pid or '-':>7}  {state:18} "
              f"ready workers {ready:>4}  stats written {age} ago")
    return 0 if healthy else 1


def _add_deployment_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--deployment", metavar="PATH",
                        help="deployment.json to use (env LOADTEST_DEPLOYMENT; default: the "
                             "default deployment directory)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    deploy = sub.add_parser("deploy", help="disposable Cyrus test deployments")
    deploy_sub = deploy.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = deploy_sub.add_parser("up", help="start and provision a test deployment")
    up.add_argument("--users", type=int, default=100, help="test users in all (default 100)")
    up.add_argument("--instances", type=int, default=1,
                    help="independent Cyrus instances (slots), users spread across them")
    up.add_argument("--topology", metavar="FILE", help="TOML file of stores and slots "
                    "(fixtures/topologies/); replaces --instances and --users")
    up.add_argument("--dir", help="where the deployment lives; a tmpfs path for speed, a disk "
                    "path for filesystem effects (default: under /dev/shm)")
    up.add_argument("--volatile-dir", metavar="DIR",
                    help="put each instance's proc, lock, socket and stats directories under DIR "
                    "(a tmpfs such as /dev/shm, as Debian keeps them in /run/cyrus) while data "
                    "and config stay in --dir; default: everything in --dir")
    up.add_argument("--port", type=int, help="IMAP port of the first instance (default: free ports)")
    add_cyrus_bin_dir_flag(up)
    for flag, (field, text) in SERVICE_FLAGS.items():
        up.add_argument(flag, dest=field, type=int, help=text)
    up.add_argument("--tls", choices=("on", "none"), default="on",
                    help="on (default): a CA made for the deployment, a certificate per instance, "
                    "imaps on its own port and STARTTLS on the plain one; none: plain IMAP only")
    up.add_argument("--rotating-binary", action="store_true",
                    help="run imapd through a symlink, for the rotate-binary fault")
    up.add_argument("--httpd-metrics", action="store_true",
                    help="also run Cyrus's httpd with its own Prometheus /metrics (needs "
                    "cyrus-caldav); its URL is in deployment.json, for --metrics-url")
    up.set_defaults(func=_deploy_up)
    for name, func, text in (("status", _deploy_status, "masters, ports and ready workers"),
                             ("down", _deploy_down, "stop every process of a deployment")):
        action = deploy_sub.add_parser(name, help=text)
        action.add_argument("--dir", help="the deployment's directory")
        _add_deployment_flag(action)
        if name == "down":
            action.add_argument("--keep", action="store_true", help="keep its files (logs)")
        action.set_defaults(func=func)

    for name, (module, text) in PLUGGED_COMMANDS.items():
        command = sub.add_parser(name, help=text)
        command.set_defaults(plugged=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Plugged commands own their arguments: parse those with the module's own parser.
    if argv and argv[0] in PLUGGED_COMMANDS:
        module_name, text = PLUGGED_COMMANDS[argv[0]]
        command = argparse.ArgumentParser(prog=f"{PROG} {argv[0]}", description=text)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            print(f"{PROG}: {argv[0]} is not available in this build ({exc.name})", file=sys.stderr)
            return EXIT_USAGE
        module.add_arguments(command)
        args = command.parse_args(argv[1:])
        runner = module.run
    else:
        args = parser.parse_args(argv)
        runner = args.func
    try:
        return runner(args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except RuntimeError as exc:  # deploy.instance.StartError and other run-time failures
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
