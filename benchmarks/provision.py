"""Benchmark: how long provisioning N users with mailboxes takes (default 1,000).

Run: .venv/bin/python benchmarks/provision.py [--users N] [--dir D]
Prints measured figures; the aim from the foundation issue is under 15 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

from loadtest.deploy.manager import Timing, deploy_down, deploy_up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--dir", default=f"/dev/shm/cyrus-loadtest-bench-{os.getpid()}")
    args = parser.parse_args()
    timing = Timing()
    wall = time.monotonic()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    deployment = deploy_up(args.dir, users=args.users, timing=timing)
    try:
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = {
            "users": timing.users, "total_s": round(timing.total_s, 2),
            "passwords_s": round(timing.sasl_s, 2), "start_s": round(timing.start_s, 2),
            "mailboxes_s": round(timing.mailboxes_s, 2),
            "users_per_s": round(timing.users / timing.total_s, 1),
            "saslpasswd2_cpu_s": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 2),
            "storage": deployment.root,
        }
    finally:
        deploy_down(deployment.root)
    result["wall_with_teardown_s"] = round(time.monotonic() - wall, 2)
    print(f"provisioned {result['users']} users in {result['total_s']} s "
          f"(passwords {result['passwords_s']} s, start {result['start_s']} s, "
          f"mailboxes {result['mailboxes_s']} s)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
