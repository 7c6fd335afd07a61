"""One generator measurement, in a process of its own (``python -m loadtest.bench.generator
SPEC_JSON``), printing one JSON object on stdout.

Runs the project's Locust users the way a headless run does: Locust's ``Environment`` and
``LocalRunner``, request events into Locust's stats, plus the plugin's step recorder (the gate's
HDR histograms) on the same event. Users are configured through ``LOADTEST_*`` environment
variables set by the parent (library mode reads them, see ``loadtest.plugin``).

The measurement window starts once every user is spawned and a warm-up has passed: Locust's
stats are reset and ``getrusage(RUSAGE_SELF)`` read (user + system CPU of this whole process:
every greenlet, Locust's own work, the listeners); at the end of the window both are read again.

Kinds: ``churn`` (ChurnUser), ``flood`` (ReconnectFloodUser), ``held`` (HeldSessionUser: RSS
before spawning and once every user is logged in). With ``server_pid`` (a Cyrus master) the
server's CPU over the same window too: master, its live children and the reaped ones (their CPU
lands in master's cutime/cstime once master reaps them).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any

from loadtest.imap.steptable import CONNECT, LIST, LOGIN, LOGOUT, NOOP


def rss_bytes() -> int:
    """Resident set size of this process, from /proc/self/statm."""
    import os

    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_times() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def server_cpu_seconds(master_pid: int | None) -> float:
    """CPU seconds of a Cyrus master, its reaped children (exited imapds) and its live ones."""
    if not master_pid:
        return 0.0
    import os

    from loadtest.collectors.samplers import tree_cpu_ticks

    return tree_cpu_ticks(int(master_pid)) / os.sysconf("SC_CLK_TCK")


def _entry(stats: Any, name: str, method: str = "IMAP") -> dict[str, Any]:
    entry = stats.entries.get((name, method))
    if entry is None:
        return {"requests": 0, "failures": 0}
    out = {"requests": entry.num_requests, "failures": entry.num_failures}
    if entry.num_requests:
        out.update(
            avg_ms=entry.avg_response_time,
            p50_ms=entry.get_response_time_percentile(0.5),
            p95_ms=entry.get_response_time_percentile(0.95),
            p99_ms=entry.get_response_time_percentile(0.99),
            max_ms=entry.max_response_time,
        )
    return out


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    import gevent
    import locust  # noqa: F401 - gevent's monkey-patching, before anything opens a socket
    from locust.env import Environment

    from loadtest import plugin, users
    from loadtest.batch import attach_recorder
    from loadtest.bench.responder import raise_nofile
    from loadtest.core.steps import REQUEST_TYPE, StepRecorder

    raise_nofile()
    kind = spec["kind"]
    user_class = {"churn": users.ChurnUser, "flood": users.ReconnectFloodUser,
                  "held": users.HeldSessionUser}[kind]
    environment = Environment(user_classes=[user_class])
    plugin.configure(environment)
    recorder = StepRecorder()
    attach_recorder(environment, recorder)
    runner = environment.create_local_runner()
    count = int(spec["users"])
    rss0 = rss_bytes()
    spawn_t0 = time.monotonic()
    runner.start(count, spawn_rate=float(spec.get("spawn_rate", count)))
    out: dict[str, Any] = {"kind": kind, "users": count, "lean": bool(spec.get("lean")),
                           "rate_per_user": float(spec.get("rate_per_user", 0.0))}
    deadline = spawn_t0 + float(spec.get("spawn_timeout", 120))
    stats = environment.stats
    try:
        if kind == "held":
            # Every user logged in: LOGIN successes reach the user count.
            while time.monotonic() < deadline:
                login = stats.entries.get((LOGIN, REQUEST_TYPE))
                if login is not None and login.num_requests - login.num_failures >= count:
                    break
                gevent.sleep(0.2)
            gevent.sleep(float(spec.get("settle", 1.0)))
            out["rss_before_bytes"] = rss0
            out["rss_after_bytes"] = rss_bytes()
            out["logged_in"] = _entry(stats, LOGIN)["requests"] - _entry(stats, LOGIN)["failures"]
            out["spawn_seconds"] = time.monotonic() - spawn_t0
            out["steps"] = {n: _entry(stats, n) for n in (CONNECT, LOGIN, NOOP)}
            return out
        while runner.user_count < count and time.monotonic() < deadline:
            gevent.sleep(0.05)
        gevent.sleep(float(spec.get("warmup", 1.0)))
        stats.reset_all()
        server_pid = spec.get("server_pid")
        server0 = server_cpu_seconds(server_pid)
        cpu0, wall0 = cpu_times(), time.monotonic()
        gevent.sleep(float(spec["seconds"]))
        cpu1, wall1 = cpu_times(), time.monotonic()
        if server_pid:
            out["server_cpu_seconds"] = server_cpu_seconds(server_pid) - server0
        out["wall_seconds"] = wall1 - wall0
        out["user_cpu_seconds"] = cpu1[0] - cpu0[0]
        out["system_cpu_seconds"] = cpu1[1] - cpu0[1]
        out["steps"] = {n: _entry(stats, n) for n in (CONNECT, LOGIN, LIST, LOGOUT)}
        out["schedule_lag"] = _entry(stats, "SCHEDULE_LAG", "PACING")
        out["total_failures"] = stats.total.num_failures
        return out
    finally:
        runner.quit()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(argv[0])
    result = measure(spec)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
