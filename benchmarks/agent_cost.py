"""Measure `cyrus-loadtest agent`'s own CPU at default rates, with a load side polling /series
every second and a Prometheus-style scrape of /metrics every 5 s.

Starts a disposable deployment with ``--prefork N`` ready imapd workers (children for the
process sampler to walk), runs the agent beside it as its own process for ``--seconds`` and
prints the agent's CPU time (from /proc/PID/stat) as a share of one core (a line for people,
then one JSON line). Aim: at most 2 % of one core. Not a test: it prints what it measured.

    .venv/bin/python benchmarks/agent_cost.py --prefork 100 --seconds 30
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from loadtest.collectors.samplers import CLK_TCK
from loadtest.core.parsers import parse_pid_stat
from loadtest.deploy.manager import deploy_down, deploy_up


def agent_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        return parse_pid_stat(fh.read()).cpu_ticks_with_children / CLK_TCK


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefork", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="agent-cost-", dir="/dev/shm")
    os.chmod(root, 0o755)
    deployment = deploy_up(os.path.join(root, "d"), users=3,
                           options={"prefork": args.prefork, "maxchild": args.prefork + 100})
    agent = None
    try:
        info = deployment.instances[0]
        agent = subprocess.Popen([sys.executable, "-m", "loadtest.cli", "agent", "--port", "0",
                                  "--master-pid", str(info.master_pid)],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert agent.stdout is not None
        url = agent.stdout.readline().split()[3].rsplit("/", 1)[0]
        time.sleep(3)  # start-up (imports) is not the steady state
        cpu0, wall0 = agent_cpu_s(agent.pid), time.monotonic()
        cursor = None
        polls = 0
        while time.monotonic() - wall0 < args.seconds:
            query = "" if cursor is None else f"?since={cursor}"
            cursor = json.loads(urllib.request.urlopen(f"{url}/series{query}").read())["cursor"]
            if polls % 5 == 0:
                urllib.request.urlopen(f"{url}/metrics").read()
            polls += 1
            time.sleep(1.0)
        cpu, wall = agent_cpu_s(agent.pid) - cpu0, time.monotonic() - wall0
        print(f"agent at default rates (1 s), {args.prefork} imapd children, /series every "
              f"1 s, /metrics every 5 s: {cpu:.3f} s CPU in {wall:.1f} s = "
              f"{100 * cpu / wall:.2f} % of one core")
        print(json.dumps({"core_percent": round(100 * cpu / wall, 2), "cpu_s": round(cpu, 3),
                          "wall_s": round(wall, 1), "imapd_children": args.prefork}))
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(10)
        deploy_down(deployment.root)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
