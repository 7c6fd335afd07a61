"""Measure the collectors' own CPU cost with a few hundred imapd processes alive.

Starts a disposable deployment with ``--prefork N`` ready imapd workers (so master has N
children to walk in /proc every sample), runs every collector at its default rates for
``--seconds``, and prints the CPU time this process used meanwhile, as a share of one core
(a line for people, then the same figures as one JSON line).
Aim: under 2 % of one core at default rates. Not a test: it prints what it measured.

    .venv/bin/python benchmarks/collectors_cost.py --prefork 300 --seconds 20
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
from loadtest.deploy.manager import deploy_down, deploy_up


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefork", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--gevent", action="store_true", help="run under gevent monkey-patching")
    args = parser.parse_args()
    if args.gevent:
        from gevent import monkey

        monkey.patch_all()
    root = tempfile.mkdtemp(prefix="collectors-cost-", dir="/dev/shm")
    os.chmod(root, 0o755)
    deployment = deploy_up(os.path.join(root, "d"), users=3,
                           options={"prefork": args.prefork, "maxchild": args.prefork + 100})
    try:
        master = deployment.instances[0].master_pid
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until master has forked its prefork workers
            children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
            if len(children) >= args.prefork:
                break
            time.sleep(0.5)
        print(f"master {master} has {len(children)} children")
        store = SeriesStore()
        collectors = CollectorSet.from_deployment(deployment, store, CollectorConfig(),
                                                  artifacts=os.path.join(root, "artifacts"))
        cpu0, wall0 = cpu_seconds(), time.monotonic()
        collectors.start()
        time.sleep(args.seconds)
        collectors.stop()
        cpu, wall = cpu_seconds() - cpu0, time.monotonic() - wall0
        samples = len(store.samples())
        print(f"collectors ({'gevent' if args.gevent else 'threads'}), default rates "
              f"(probe {collectors.config.probe_rate:g}/s, others every "
              f"{collectors.config.interval:g} s), {len(children)} imapd children: "
              f"{cpu:.3f} s CPU in {wall:.1f} s = {100 * cpu / wall:.2f} % of one core; "
              f"{samples} samples ({samples / wall:.0f}/s), missed ticks {collectors.missed_ticks}")
        # The same figures for programs (cyrus-loadtest bench reads this last line).
        print(json.dumps({"core_percent": round(100 * cpu / wall, 2), "cpu_s": round(cpu, 3),
                          "wall_s": round(wall, 1), "samples": samples,
                          "imapd_children": len(children),
                          "missed_ticks": collectors.missed_ticks}))
    finally:
        deploy_down(deployment.root)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
