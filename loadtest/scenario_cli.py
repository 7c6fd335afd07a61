"""`cyrus-loadtest scenario NAME`: one incident scenario, end to end.

Start the deployment the scenario needs (service options, topology, a disk directory), run its
locustfile headless with its gate and faults, write the report, stop the deployment, exit with
the gate's code (0 pass, 1 fail, 2 usage or configuration error, 3 inconclusive). The same
orchestration as `cyrus-loadtest acceptance` (loadtest.acceptance.orchestrate). No Locust here:
the scenarios are declared as plain data (loadtest.scenario_catalogue), so `--help` and bad
input cost nothing.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from loadtest.acceptance import LoadRun, cyrus_bin_dir_kwargs, number_arg, orchestrate
from loadtest.deploy.binaries import add_cyrus_bin_dir_flag
from loadtest.errors import UsageError
from loadtest.paths import PROJECT_ROOT, fixtures_dir
from loadtest.scenario_catalogue import PROVISION_USERS, SCENARIOS, Scenario


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
    own_users = "; ".join(
        [f"{s.provision_users} for {s.name}" for s in SCENARIOS.values()
         if s.provision_users != PROVISION_USERS and not s.topology]
        + [f"the topology's for {s.name}" for s in SCENARIOS.values() if s.topology])
    parser.add_argument("--provision-users", help="test users in the deployment it starts "
                        f"(default {PROVISION_USERS}; {own_users})")
    add_cyrus_bin_dir_flag(parser)
    parser.add_argument("locust_args", nargs=argparse.REMAINDER, metavar="LOCUST_ARGS",
                        help="everything after NAME goes to locust, e.g. NAME --imap-rate 4 "
                        "(the options above come before NAME)")


OWN_FLAGS = ("--duration", "--users", "--held", "--artifacts", "--gate", "--fault",
             "--deployment", "--dir", "--provision-users", "--no-compare", "--cyrus-bin-dir")


def run(args: argparse.Namespace) -> int:
    scenario = SCENARIOS[args.name]
    for arg in args.locust_args:
        if arg.split("=", 1)[0] in OWN_FLAGS:
            raise UsageError(f"{arg.split('=', 1)[0]} after the scenario name {args.name} would go "
                             "to locust: put the scenario's own options before NAME")
    duration = (number_arg(args.duration, "--duration", float, 10) if args.duration
                else scenario.duration)
    locust_args = ["--scenario-duration", str(duration)]
    if args.users:
        locust_args += ["--scenario-users", str(number_arg(args.users, "--users", int, 1))]
    if args.held:
        locust_args += ["--scenario-held", str(number_arg(args.held, "--held", int, 1))]
    provision = (number_arg(args.provision_users, "--provision-users", int, 1)
                 if args.provision_users else scenario.provision_users)
    deploy_kwargs: dict[str, Any] = {"options": dict(scenario.options),
                                     **cyrus_bin_dir_kwargs(args)}
    if scenario.topology:
        from loadtest.deploy.topology import load_topology

        topology = fixtures_dir() / "topologies" / scenario.topology
        deploy_kwargs["slots"] = load_topology(topology, f"scenario {args.name}")
    else:
        deploy_kwargs["users"] = provision
    root = Path(args.dir).absolute() if args.dir else None
    if root is None and scenario.on_disk:
        from loadtest.deploy.deployment import default_root

        # The default deployments' per-user folder name (cyrus-loadtest-USER), on disk.
        root = Path("/var/tmp") / default_root().parent.name / f"{args.name}-{os.getpid()}"
    label = args.name
    code = orchestrate(LoadRun(
        label=label,
        locustfile=PROJECT_ROOT / "locustfiles" / scenario.locustfile,
        gate=args.gate or str(fixtures_dir() / "gates" / scenario.gate_file),
        faults=[*scenario.faults, *args.fault],
        artifacts=args.artifacts,
        duration=duration,
        locust_args=[*locust_args, *scenario.locust_args, *args.locust_args],
        summary=f"{duration:.0f} s of {args.name}: {scenario.what}",
        deployment=args.deployment,
        deploy_kwargs=deploy_kwargs,
        root=root,
        check_deployment=lambda d: _check_fit(args.name, scenario, d),
    ))
    if scenario.compare_phase and scenario.topology and not args.deployment and not args.no_compare:
        _compare_with_one_instance(args, scenario, deploy_kwargs,
                                   [*locust_args, *scenario.locust_args, *args.locust_args],
                                   duration)
    return code


def _compare_with_one_instance(args: argparse.Namespace, scenario: Scenario,
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
        label=label, locustfile=PROJECT_ROOT / "locustfiles" / scenario.locustfile,
        gate=str(fixtures_dir() / "gates" / str(scenario.compare_gate)), faults=list(args.fault),
        artifacts=args.artifacts, duration=duration, locust_args=locust_args,
        summary=f"{duration:.0f} s of {args.name} on one instance",
        deploy_kwargs={"options": dict(scenario.options), "users": users},
        root=Path(args.dir).absolute() / "one-instance" if args.dir else None,
    ))
    second = _newest(artifacts, label)
    if first is None or second is None:
        print(f"{args.name}: no comparison: a run wrote no artifacts", flush=True)
        return
    table = compare({"slots": load_run(first), "one instance": load_run(second)},
                    str(scenario.compare_phase), first)
    print(f"{args.name}: side by side in phase {scenario.compare_phase} "
          f"({first / 'comparison.html'}):\n{table}", flush=True)


def _newest(artifacts: Path, label: str) -> Path | None:
    """The newest run folder LABEL-DATE-TIME (not LABEL-one-instance-...)."""
    found = sorted(p for p in artifacts.glob(f"{label}-2*") if p.is_dir())
    return found[-1] if found else None


def _check_fit(name: str, scenario: Scenario, deployment: Any) -> None:
    """A given deployment must be able to carry the scenario's own faults (UsageError before
    any load); any other service option that differs from the scenario's is said, and the run
    goes on."""
    from loadtest.faults.injectors import make_injector
    from loadtest.faults.spec import parse_faults

    for fault in parse_faults(list(scenario.faults), f"scenario {name}"):
        info = deployment.instance(fault.instance) if fault.instance else deployment.instances[0]
        make_injector(fault, info).check()
    for info in deployment.instances:
        for key, wanted in scenario.options.items():
            have = info.options.get(key)
            if key != "imapd_binary" and have is not None and have != wanted:
                print(f"{name}: note: instance {info.name} runs {key}={have}, the scenario "
                      f"expects {wanted}", flush=True)
    if scenario.topology and len(deployment.instances) < 2:
        print(f"{name}: note: the deployment has one instance; the scenario is about several",
              flush=True)
