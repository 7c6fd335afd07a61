"""Measure the collectors' own CPU cost with a few hundred imapd processes alive.

Starts a disposable deployment with ``--prefork N`` ready imapd workers and no imaps service
(so master has N children to walk in /proc every sample), waits until master is done forking,
runs every collector at its default rates for ``--seconds``, and prints the CPU time (user and
system) this process used meanwhile, as a share of one core (a line for people, then the same
figures as one JSON line). ``--collectors each`` measures each collector alone.
Aim (issue 16): at most 1 % of one core with 300 children. Not a test: it prints what it
measured.

    .venv/bin/python benchmarks/collectors_cost.py --prefork 300 --seconds 20 --gevent
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from loadtest.collectors import CollectorConfig, CollectorSet, SeriesStore
from loadtest.deploy.deployment import Deployment
from loadtest.deploy.manager import deploy_down, deploy_up
from loadtest.deploy.watchdog import watching


def cpu_seconds() -> tuple[float, float, float]:
    """CPU seconds of this process (every thread): the total from the scheduler's own runtime
    (CLOCK_PROCESS_CPUTIME_ID, to the nanosecond), and user and system from getrusage (sampled
    at each timer tick, so a share under 0.2 % of a core over a minute is a rough split)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return time.process_time(), usage.ru_utime, usage.ru_stime


def wait_for_children(master: int, count: int, stats_file: str) -> list[str]:
    """Master's children once it has forked ``count`` and is done forking: its stats file
    exists (master's loop completes only after the prefork burst) and the count held still for
    a second. Measuring during the burst would count every new child's naming reads."""
    deadline = time.monotonic() + 90
    previous: list[str] = []
    while time.monotonic() < deadline:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if len(children) >= count and children == previous and os.path.exists(stats_file):
            return children
        previous = children
        time.sleep(1.0)
    raise SystemExit(f"master {master} did not settle at {count} children within 90 s "
                     f"({len(previous)} now)")


def measure(deployment: Deployment, root: str, chosen: tuple[str, ...], seconds: float,
            gevent: bool, children: int) -> None:
    """Run the ``chosen`` collectors (all default ones if empty) for ``seconds``; print the
    CPU this process used meanwhile."""
    store = SeriesStore()
    config = CollectorConfig()
    if chosen:
        config = config.updated({"collectors": ",".join(chosen)}, "--collectors")
    collectors = CollectorSet.from_deployment(deployment, store, config,
                                              artifacts=os.path.join(root, "artifacts"))
    cpu0, user0, system0 = cpu_seconds()
    wall0 = time.monotonic()
    collectors.start()
    time.sleep(seconds)
    collectors.stop()
    cpu1, user1, system1 = cpu_seconds()
    wall = time.monotonic() - wall0
    user, system = user1 - user0, system1 - system0
    cpu = cpu1 - cpu0
    samples = len(store.samples())
    print(f"collectors {','.join(config.collectors)} ({'gevent' if gevent else 'threads'}), "
          f"default rates (probe {config.probe_rate:g}/s, others every {config.interval:g} s), "
          f"{children} imapd children: {cpu:.3f} s CPU in {wall:.1f} s = "
          f"{100 * cpu / wall:.2f} % of one core ({100 * user / wall:.2f} user, "
          f"{100 * system / wall:.2f} system); {samples} samples ({samples / wall:.0f}/s), "
          f"missed ticks {collectors.missed_ticks}")
    # The same figures for programs (cyrus-loadtest bench reads the last line).
    print(json.dumps({"core_percent": round(100 * cpu / wall, 2), "cpu_s": round(cpu, 3),
                      "user_s": round(user, 3), "system_s": round(system, 3),
                      "wall_s": round(wall, 1), "samples": samples, "imapd_children": children,
                      "collectors": list(config.collectors),
                      "missed_ticks": collectors.missed_ticks}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefork", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--gevent", action="store_true", help="run under gevent monkey-patching")
    parser.add_argument("--collectors", default="",
                        help="comma-separated collectors (default: the default set); 'each' "
                             "measures every default collector alone, one after the other")
    args = parser.parse_args()
    if args.gevent:
        from gevent import monkey

        monkey.patch_all()
    root = tempfile.mkdtemp(prefix="collectors-cost-", dir="/dev/shm")
    os.chmod(root, 0o755)
    directory = os.path.join(root, "d")
    with watching(directory):  # stops the deployment if this script is killed
        # No imaps service: prefork applies to each listening service, and N children is the
        # point.
        deployment = deploy_up(directory, users=3, tls=False,
                               options={"prefork": args.prefork, "maxchild": args.prefork + 100})
        try:
            master = deployment.instances[0].master_pid
            children = wait_for_children(master, args.prefork,
                                         deployment.instances[0].stats_file)
            print(f"master {master} has {len(children)} children")
            if args.collectors == "each":
                sets = [(name,) for name in CollectorConfig().collectors]
            else:
                sets = [tuple(c for c in args.collectors.split(",") if c)]
            for chosen in sets:
                measure(deployment, root, chosen, args.seconds, args.gevent, len(children))
        finally:
            deploy_down(deployment.root)
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
