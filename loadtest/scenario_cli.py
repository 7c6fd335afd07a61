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
from loadtest.deploy.binaries import add_cyrus_bin_dir_flag
from loadtest.errors import UsageError
from loadtest.faults.eintr import KONSTANZ_WINDOW_S
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
    locust_args: tuple[str, ...] = ()  # locust options of its own (the user's come after)
    # Run the same users and load on one instance afterwards and compare this phase side by side
    # (only with the scenario's own deployment; gate of the second run: this file).
    compare_phase: str | None = None
    compare_gate: str | None = None


SCENARIOS: dict[str, ScenarioSpec] = {
    "morning-rush": ScenarioSpec(
        "morning_rush", "held sessions, then logins ramping open loop to a peak (Konstanz 2016)",
        180),
    "reconnect-storm": ScenarioSpec(
        "reconnect_storm", "held sessions and churn, then clients dropping with RST and "
        "reconnecting at once (Konstanz DDoS)", 150),
    "konstanz-2016": ScenarioSpec(
        "konstanz_2016", "held sessions arriving fast, churn, a reconnect storm, then every "
        "select() of master interrupted (EINTR) for a while, then recovery: the loop that never "
        "completes and the refusal that outlasts it (Konstanz 2016)", 120,
        # One imapd per connection: every session goes through master's fork and accounting.
        options={"imapd_reuse": 1, "maxchild": 2_000},
        faults=(f"eintr-inject:phase=interrupted,duration={KONSTANZ_WINDOW_S:g}",),
        provision_users=1_000),
    "process-churn": ScenarioSpec(
        "process_churn", "one imapd per connection, held sessions up to the machine's process "
        "budget, connect/logout churn, then a quarter of them logging out and in together in "
        "waves (UC Davis 2007)", 600,
        # maxchild above the soak's hard cap (12,000, loadtest.scenarios.SOAK_HARD_CAP): the
        # machine's memory, not master, bounds the live processes.
        options={"imapd_reuse": 1, "maxchild": 12_100}, provision_users=200),
    "binary-rotation": ScenarioSpec(
        "binary_rotation", "login/logout churn, then the imapd symlink re-pointed over 24 copies "
        "at every 10 ms tick while held sessions join (the UC Davis workaround)", 120,
        options={"imapd_binary": "symlink", "imapd_reuse": 5},
        faults=("rotate-binary:phase=rotation,every=0,copies=24",)),
    "lockfile-churn": ScenarioSpec(
        "lockfile_churn", "sessions that each create and remove Cyrus's user lock file, on a "
        "disk filesystem, CPU not saturated, canary against its own baseline (2010)", 120,
        on_disk=True,
        locust_args=("--collectors", "probe,master,processes,backlog,machine,canary,inodes")),
    "stores-and-slots": ScenarioSpec(
        "stores_and_slots", "two stores, each a master slot replicating to a replica slot, "
        "load on both masters at once, a verdict per slot and the replication lag per store "
        "(FastMail 2007)", 120, topology="two-stores.toml", compare_phase="all-slots",
        compare_gate="stores_and_slots_one_instance.toml"),
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
    parser.add_argument("--no-compare", action="store_true",
                        help="stores-and-slots: skip the comparison run on one instance")
    parser.add_argument("--provision-users", help="test users in the deployment it starts "
                        "(default 100; 200 for process-churn; the topology's for stores-and-slots)")
    add_cyrus_bin_dir_flag(parser)
    parser.add_argument("locust_args", nargs=argparse.REMAINDER, metavar="LOCUST_ARGS",
                        help="everything after NAME goes to locust, e.g. NAME --imap-rate 4 "
                        "(the options above come before NAME)")


OWN_FLAGS = ("--duration", "--users", "--held", "--artifacts", "--gate", "--fault",
             "--deployment", "--dir", "--provision-users", "--no-compare", "--cyrus-bin-dir")


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
    code = orchestrate(LoadRun(
        label=label,
        locustfile=PROJECT_ROOT / "locustfiles" / f"{spec.module}.py",
        gate=args.gate or str(fixtures_dir() / "gates" / f"{spec.module}.toml"),
        faults=[*spec.faults, *args.fault],
        artifacts=args.artifacts,
        duration=duration,
        locust_args=[*locust_args, *spec.locust_args, *args.locust_args],
        summary=f"{duration:.0f} s of {args.name}: {spec.what}",
        deployment=args.deployment,
        deploy_kwargs=deploy_kwargs,
        root=root,
        check_deployment=lambda d: _check_fit(args.name, spec, d),
    ))
    if spec.compare_phase and spec.topology and not args.deployment and not args.no_compare:
        _compare_with_one_instance(args, spec, deploy_kwargs, [*locust_args, *spec.locust_args,
                                                               *args.locust_args], duration)
    return code


def _compare_with_one_instance(args: argparse.Namespace, spec: ScenarioSpec,
                               deploy_kwargs: dict[str, Any], locust_args: list[str],
                               duration: float) -> None:
    """The same users (as many as the topology's) and the same load on one instance with the
    default service options, then both runs side by side in comparison.html of the first."""
    from loadtest.comparison import compare
    from loadtest.core.runfolder import load_run

    artifacts = Path(args.artifacts).absolute()
    first = _newest(artifacts, args.name)
    users = sum(slot.users for slot in deploy_kwargs["slots"])
    label = f"{args.name}-one-instance"
    print(f"{args.name}: comparison run: the same load on one instance with {users} users",
          flush=True)
    orchestrate(LoadRun(
        label=label, locustfile=PROJECT_ROOT / "locustfiles" / f"{spec.module}.py",
        gate=str(fixtures_dir() / "gates" / str(spec.compare_gate)), faults=list(args.fault),
        artifacts=args.artifacts, duration=duration, locust_args=locust_args,
        summary=f"{duration:.0f} s of {args.name} on one instance",
        deploy_kwargs={"options": dict(spec.options), "users": users},
        root=Path(args.dir).absolute() / "one-instance" if args.dir else None,
    ))
    second = _newest(artifacts, label)
    if first is None or second is None:
        print(f"{args.name}: no comparison: a run wrote no artifacts", flush=True)
        return
    table = compare({"slots": load_run(first), "one instance": load_run(second)},
                    str(spec.compare_phase), first)
    print(f"{args.name}: side by side in phase {spec.compare_phase} "
          f"({first / 'comparison.html'}):\n{table}", flush=True)


def _newest(artifacts: Path, label: str) -> Path | None:
    """The newest run folder LABEL-DATE-TIME (not LABEL-one-instance-...)."""
    found = sorted(p for p in artifacts.glob(f"{label}-2*") if p.is_dir())
    return found[-1] if found else None


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
