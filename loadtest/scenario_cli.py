"""`cyrus-loadtest scenario NAME`: one incident scenario, end to end.

Start the deployment the scenario needs (service options, topology, a disk directory), run its
locustfile headless with its gate and faults, write the report, stop the deployment, exit with
the gate's code (0 pass, 1 fail, 2 usage or configuration error, 3 inconclusive). The same
orchestration as `cyrus-loadtest acceptance` (loadtest.acceptance.orchestrate). No Locust here:
the catalogue below is plain data, so `--help` and bad input cost nothing.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtest.acceptance import LoadRun, cyrus_bin_dir_kwargs, number_arg, orchestrate
from loadtest.cli import add_cyrus_bin_dir_flag
from loadtest.errors import UsageError
from loadtest.paths import PROJECT_ROOT, fixtures_dir


@dataclass(frozen=True)
class ScenarioSpec:
    module: str  # locustfiles/<module>.py and fixtures/gates/<module>.toml
    what: str
    duration: float  # default seconds (the shape's own default)
    options: dict[str, Any] = field(default_factory=dict)  # service options of its deployment
    topology: str | None = None  # fixtures/topologies/<name>
    on_disk: bool = False  # deployment directory on a disk filesystem, not tmpfs
    faults: tuple[str, ...] = ()  # faults that are part of the scenario itself
    provision_users: int = 100


SCENARIOS: dict[str, ScenarioSpec] = {
    "morning-rush": ScenarioSpec(
        "morning_rush", "held sessions, then logins ramping open loop to a peak (Konstanz 2016)",
        180),
    "reconnect-storm": ScenarioSpec(
        "reconnect_storm", "held sessions and churn, then clients dropping with RST and "
        "reconnecting at once (Konstanz DDoS)", 150),
    "process-churn": ScenarioSpec(
        "process_churn", "one imapd per connection, held sessions up to the process budget, "
        "connect/logout churn (UC Davis 2007)", 600, options={"imapd_reuse": 1, "maxchild": 600},
        provision_users=200),
    "binary-rotation": ScenarioSpec(
        "binary_rotation", "login/logout churn while the imapd symlink is re-pointed every 3 s "
        "(the UC Davis workaround)", 120, options={"imapd_binary": "symlink", "imapd_reuse": 5},
        faults=("rotate-binary:every=3,copies=5",)),
    "lockfile-churn": ScenarioSpec(
        "lockfile_churn", "login/logout churn on a disk filesystem, canary latency (2010)", 120,
        on_disk=True),
    "stores-and-slots": ScenarioSpec(
        "stores_and_slots", "four slots on one machine, load on all at once, a verdict per "
        "slot (FastMail 2007)", 120, topology="four-slots.toml"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", choices=sorted(SCENARIOS),
                        help="; ".join(f"{n}: {s.what}" for n, s in SCENARIOS.items()))
    parser.add_argument("--duration", help="seconds of load (default: the scenario's own)")
    parser.add_argument("--users", help="peak churn, rush or storm users (default: the "
                        "scenario's own)")
    parser.add_argument("--held", help="held sessions (default: the scenario's own)")
    parser.add_argument("--artifacts", default="artifacts",
                        help="folder under which the run's folder goes (default ./artifacts)")
    parser.add_argument("--gate", help="gate rules (default fixtures/gates/<scenario>.toml)")
    parser.add_argument("--fault", action="append", default=[],
                        help="inject a fault besides the scenario's own (repeatable), e.g. "
                        "stall-master:at=30,duration=3")
    parser.add_argument("--deployment", help="use this running deployment (deployment.json) "
                        "instead of starting the scenario's own")
    parser.add_argument("--dir", help="where to start the scenario's deployment (default: "
                        "tmpfs, or /var/tmp for the lock-file scenario)")
    parser.add_argument("--provision-users", help="test users in the deployment it starts "
                        "(default 100; 200 for process-churn; the topology's for stores-and-slots)")
    add_cyrus_bin_dir_flag(parser)
    parser.add_argument("locust_args", nargs=argparse.REMAINDER, metavar="LOCUST_ARGS",
                        help="everything after NAME goes to locust, e.g. NAME --imap-rate 4 "
                        "(the options above come before NAME)")


OWN_FLAGS = ("--duration", "--users", "--held", "--artifacts", "--gate", "--fault",
             "--deployment", "--dir", "--provision-users", "--cyrus-bin-dir")


def run(args: argparse.Namespace) -> int:
    spec = SCENARIOS[args.name]
    for arg in args.locust_args:
        if arg.split("=", 1)[0] in OWN_FLAGS:
            raise UsageError(f"{arg.split('=', 1)[0]} after the scenario name {args.name} would go "
                             "to locust: put the scenario's own options before NAME")
    duration = number_arg(args.duration, "--duration", float, 10) if args.duration else spec.duration
    locust_args = ["--scenario-duration", str(duration)]
    if args.users:
        locust_args += ["--scenario-users", str(number_arg(args.users, "--users", int, 1))]
    if args.held:
        locust_args += ["--scenario-held", str(number_arg(args.held, "--held", int, 1))]
    provision = (number_arg(args.provision_users, "--provision-users", int, 1)
                 if args.provision_users else spec.provision_users)
    deploy_kwargs: dict[str, Any] = {"options": dict(spec.options), **cyrus_bin_dir_kwargs(args)}
    if spec.topology:
        from loadtest.deploy.topology import load_topology

        topology = fixtures_dir() / "topologies" / spec.topology
        deploy_kwargs["slots"] = load_topology(topology, f"scenario {args.name}")
    else:
        deploy_kwargs["users"] = provision
    root = Path(args.dir).absolute() if args.dir else None
    if root is None and spec.on_disk:
        from loadtest.deploy.deployment import default_root

        # The default deployments' per-user folder name (cyrus-loadtest-USER), on disk.
        root = Path("/var/tmp") / default_root().parent.name / f"{args.name}-{os.getpid()}"
    label = args.name
    return orchestrate(LoadRun(
        label=label,
        locustfile=PROJECT_ROOT / "locustfiles" / f"{spec.module}.py",
        gate=args.gate or str(fixtures_dir() / "gates" / f"{spec.module}.toml"),
        faults=[*spec.faults, *args.fault],
        artifacts=args.artifacts,
        duration=duration,
        locust_args=[*locust_args, *args.locust_args],
        summary=f"{duration:.0f} s of {args.name}: {spec.what}",
        deployment=args.deployment,
        deploy_kwargs=deploy_kwargs,
        root=root,
        check_deployment=lambda d: _check_fit(args.name, spec, d),
    ))


def _check_fit(name: str, spec: ScenarioSpec, deployment: Any) -> None:
    """A given deployment must be able to carry the scenario's own faults (UsageError before
    any load); any other service option that differs from the scenario's is said, and the run
    goes on."""
    from loadtest.faults.injectors import make_injector
    from loadtest.faults.spec import parse_faults

    for fault in parse_faults(list(spec.faults), f"scenario {name}"):
        info = deployment.instance(fault.instance) if fault.instance else deployment.instances[0]
        make_injector(fault, info).check()
    for info in deployment.instances:
        for key, wanted in spec.options.items():
            have = info.options.get(key)
            if key != "imapd_binary" and have is not None and have != wanted:
                print(f"{name}: note: instance {info.name} runs {key}={have}, the scenario "
                      f"expects {wanted}", flush=True)
    if spec.topology and len(deployment.instances) < 2:
        print(f"{name}: note: the deployment has one instance; the scenario is about several",
              flush=True)
