"""`cyrus-loadtest bench`: what the load generator costs, measured through Locust.

Every measurement runs in a generator process of its own (``loadtest.bench.generator``: Locust's
Environment and LocalRunner, the project's users, the gate's step recorder on the request
event), against a minimal IMAP responder in another process (``loadtest.bench.responder``) or a
disposable Cyrus deployment started here (tmpfs by default, ``--deploy-dir`` for a disk). The
collectors' cost comes from ``benchmarks/collectors_cost.py``. Loopback only; every process is
bounded in time and stopped by its pid.

    cyrus-loadtest bench                      # short run, under 2 minutes
    cyrus-loadtest bench --long --json bench.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from loadtest.bench import figures as fg
from loadtest.cli import add_cyrus_bin_dir_flag
from loadtest.errors import UsageError
from loadtest.paths import filesystem_type

REPO = Path(__file__).resolve().parents[2]
COLLECTORS_COST = REPO / "benchmarks" / "collectors_cost.py"
OPEN_LOOP_SHARE = 0.8
# Pattern password for the responder (it accepts any LOGIN): not a secret.
RESPONDER_PASSWORD = "bench"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--long", action="store_true",
                        help="longer windows (20 s each) and the collectors with 300 imapd "
                             "children (several minutes); default: a short run under 2 minutes")
    parser.add_argument("--seconds", type=float, default=None,
                        help="measurement window of each run in seconds (default 5, 20 with --long)")
    parser.add_argument("--users", type=int, default=10,
                        help="concurrent users of the churn and flood runs (default 10)")
    parser.add_argument("--held", type=int, default=5000,
                        help="sessions held at once in one generator process (default 5000)")
    parser.add_argument("--deploy-dir", default="/dev/shm",
                        help="directory under which the bench's own Cyrus deployment is made "
                             "(default /dev/shm, tmpfs; a disk directory such as /var/tmp "
                             "measures Cyrus with its data on disk)")
    parser.add_argument("--volatile-dir", default="auto",
                        help="where the deployment's proc, lock, socket and stats directories go: "
                             "'auto' (default) keeps them on /dev/shm when --deploy-dir is a disk, "
                             "as Debian keeps them in /run/cyrus; 'none' puts them on --deploy-dir "
                             "too (every per-connection file on disk); or a directory")
    add_cyrus_bin_dir_flag(parser)
    parser.add_argument("--skip", default="",
                        help="comma-separated parts to leave out: responder, held, cyrus, "
                             "collectors")
    parser.add_argument("--json", dest="json_path", default=None,
                        help="also write the figures as JSON to this file")


PARTS = ("responder", "held", "cyrus", "collectors")


def check_args(args: argparse.Namespace) -> dict[str, Any]:
    """Validate everything before anything starts (UsageError naming the flag)."""
    skip = {p.strip() for p in args.skip.split(",") if p.strip()}
    bad = skip - set(PARTS)
    if bad:
        raise UsageError(f"--skip {args.skip!r}: unknown part {sorted(bad)[0]!r} "
                         f"(choose from {', '.join(PARTS)})")
    seconds = args.seconds if args.seconds is not None else (20.0 if args.long else 5.0)
    if not 0 < seconds <= 300:
        raise UsageError(f"--seconds {args.seconds}: must be more than 0 and at most 300")
    if not 1 <= args.users <= 500:
        raise UsageError(f"--users {args.users}: must be between 1 and 500")
    if not 1 <= args.held <= 20000:
        raise UsageError(f"--held {args.held}: must be between 1 and 20000")
    deploy_dir = Path(args.deploy_dir)
    if "cyrus" not in skip and not deploy_dir.is_dir():
        raise UsageError(f"--deploy-dir {args.deploy_dir!r}: not a directory")
    volatile: Path | None = None
    if args.volatile_dir == "auto":
        volatile = Path("/dev/shm") if filesystem_type(deploy_dir) != "tmpfs" else None
    elif args.volatile_dir != "none":
        volatile = Path(args.volatile_dir)
        if "cyrus" not in skip and not volatile.is_dir():
            raise UsageError(f"--volatile-dir {args.volatile_dir!r}: not a directory")
    if "cyrus" not in skip:
        from loadtest.deploy.binaries import resolve

        resolve(args.cyrus_bin_dir)  # a bad --cyrus-bin-dir fails before any part runs
    if args.json_path:
        parent = Path(args.json_path).absolute().parent
        if not parent.is_dir():
            raise UsageError(f"--json {args.json_path!r}: directory {parent} does not exist")
    return {"skip": skip, "seconds": seconds, "deploy_dir": deploy_dir, "volatile_dir": volatile}


class Bench:
    def __init__(self, args: argparse.Namespace, checked: dict[str, Any], say: Any) -> None:
        self.args = args
        self.seconds: float = checked["seconds"]
        self.skip: set[str] = checked["skip"]
        self.deploy_dir: Path = checked["deploy_dir"]
        self.volatile_dir: Path | None = checked["volatile_dir"]
        self.say = say
        self.figures: list[fg.Figure] = []
        self.context: dict[str, Any] = {}

    # -- processes ---------------------------------------------------------------------------

    def generator(self, spec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
        """Run one measurement in a generator process; its JSON result (or RuntimeError)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("LOADTEST_")}
        base.update(env)
        spec = {"warmup": 1.0, "seconds": self.seconds, **spec}
        limit = float(spec["seconds"]) + float(spec["warmup"]) + float(spec.get("spawn_timeout", 60)) + 30
        returncode, out, err = run_bounded(
            [sys.executable, "-m", "loadtest.bench.generator", json.dumps(spec)], limit, env=base)
        if returncode is None:
            raise RuntimeError(f"generator run {spec['kind']} did not finish in {limit:.0f} s")
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if returncode != 0 or not lines:
            tail = err.strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"generator run {spec['kind']} failed (exit {returncode}): {tail[0]}")
        return json.loads(lines[-1])

    def start_responder(self) -> tuple[subprocess.Popen, int]:
        limit = 30 * self.seconds + 300  # bounded even if we die without closing its stdin
        proc = subprocess.Popen([sys.executable, "-m", "loadtest.bench.responder",
                                 "--max-seconds", str(limit)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        if not line.strip().isdigit():
            stop_process(proc)
            raise RuntimeError("the IMAP responder did not start")
        return proc, int(line)

    # -- parts -------------------------------------------------------------------------------

    def responder_part(self) -> None:
        proc, port = self.start_responder()
        env = {"LOADTEST_IMAP_HOST": "127.0.0.1", "LOADTEST_IMAP_PORT": str(port),
               "LOADTEST_IMAP_USER_PATTERN": "user{n}", "LOADTEST_IMAP_USER_COUNT": "10000",
               "LOADTEST_IMAP_PASSWORD": RESPONDER_PASSWORD}
        users = self.args.users
        try:
            if "responder" not in self.skip:
                self.churn_and_open_loop(env, "responder", "the responder")
                self.say(f"flood, connect-greeting-RST, against the responder, {users} users ...")
                self._guard(lambda: [fg.flood_figure(self.generator(
                    {"kind": "flood", "users": users}, {**env, "LOADTEST_IMAP_DISCONNECT": "reset"}))],
                    "lean_flood_cycles_per_core_responder", "flood cycles per generator core-second", "cycles/s/core")
            if "held" not in self.skip:
                held = self.args.held
                self.say(f"{held} held sessions in one generator process ...")
                self._guard(lambda: fg.held_figures(self.generator(
                    {"kind": "held", "users": held, "spawn_rate": 1000, "spawn_timeout": 90},
                    {**env, "LOADTEST_IMAP_HELD_INTERVAL": "600"}), held),
                    "held_kb_per_session", "held sessions: generator memory per session", "KB")
        finally:
            stop_process(proc)

    def cyrus_part(self) -> None:
        from loadtest.deploy.manager import deploy_down, deploy_up

        users = self.args.users
        root = self.deploy_dir / f"cyrus-loadtest-bench-{os.getpid()}"
        fstype = filesystem_type(self.deploy_dir)
        volatile = self.volatile_dir
        self.context["deployment"] = {
            "dir": str(root), "filesystem": fstype,
            "volatile_dir": str(volatile) if volatile else None,
            "volatile_filesystem": filesystem_type(volatile) if volatile else fstype}
        where = f" (proc, lock, stats on {volatile})" if volatile else ""
        self.say(f"deploying Cyrus in {root} ({fstype}){where} ...")
        deployment = deploy_up(root, users=users, volatile_dir=volatile,
                               cyrus_bin_dir=self.args.cyrus_bin_dir,
                               sources={"dir": "flag --deploy-dir",
                                        "volatile_dir": "flag --volatile-dir"})
        self.context["deployment"]["cyrus"] = deployment.instances[0].cyrus
        try:
            self.churn_and_open_loop({"LOADTEST_DEPLOYMENT": str(deployment.path)}, "cyrus", "Cyrus")
        finally:
            deploy_down(deployment.root)  # also removes the directory

    def churn_and_open_loop(self, env: dict[str, str], against: str, server: str) -> None:
        """Closed-loop churn on the lean and imapclient paths, then the open loop paced from the
        lean path's capacity. ``against`` keys the figures, ``server`` names it for the log."""
        users = self.args.users
        capacity = None
        for path in ("lean", "imapclient"):
            self.say(f"churn, {path} path, against {server}, {users} users ...")
            figs = self._guard(lambda p=path: fg.churn_figures(
                self.generator({"kind": "churn", "users": users, "lean": p == "lean"},
                               {**env, **_lean_env(p == "lean")}), p, against),
                f"{path}_churn_cpu_us_{against}", f"{path} churn: generator CPU per session ({against})", "µs")
            if path == "lean" and len(figs) > 1:
                capacity = figs[1].value
        if capacity:
            self.open_loop(env, capacity, against)

    def open_loop(self, env: dict[str, str], capacity: float, against: str) -> None:
        """Lean churn paced at OPEN_LOOP_SHARE of the capacity just measured against the same
        server: how late sessions start (against the responder: the generator's own pacing)."""
        users = self.args.users
        rate = OPEN_LOOP_SHARE * capacity / users
        self.say(f"open loop at {OPEN_LOOP_SHARE:.0%} of {capacity:.0f} sessions/s ({against}) ...")
        self._guard(lambda: [fg.open_loop_figure(self.generator(
            {"kind": "churn", "users": users, "lean": True, "rate_per_user": rate},
            {**env, **_lean_env(True), "LOADTEST_IMAP_RATE": f"{rate:.6f}"}),
            capacity, OPEN_LOOP_SHARE, against)],
            f"open_loop_lag_p99_ms_{against}", f"open loop: session start lateness p99 ({against})", "ms")

    def collectors_part(self) -> None:
        prefork, seconds = (300, 20.0) if self.args.long else (50, max(5.0, self.seconds))
        self.say(f"collectors at default rates, {prefork} imapd children, {seconds:g} s ...")
        if not COLLECTORS_COST.exists():
            self.figures.append(fg.missing("collectors_core_percent", "collectors: share of one core",
                                           "%", f"{COLLECTORS_COST} not found (not a source checkout)"))
            return
        cmd = [sys.executable, str(COLLECTORS_COST), "--prefork", str(prefork), "--seconds", str(seconds)]
        _returncode, out, err = run_bounded(cmd, seconds + 120)
        percent, detail = parse_collectors_cost(out)
        detail.update(prefork=prefork, seconds=seconds, command=" ".join(cmd[1:]))
        if percent is None:
            detail["why"] = (err.strip().splitlines() or ["no figure in its output"])[-1][:200]
        self.figures.append(fg.collectors_figure(percent, detail))

    def _guard(self, measure: Any, key: str, label: str, unit: str) -> list[fg.Figure]:
        """A part that fails is a figure with its reason, not a crash of the whole bench."""
        try:
            figs = measure()
        except RuntimeError as exc:
            figs = [fg.missing(key, label, unit, str(exc))]
        self.figures.extend(figs)
        return figs

    def run(self) -> dict[str, Any]:
        started = time.time()
        self.context.update(
            command="cyrus-loadtest bench " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["bench"] else "cyrus-loadtest bench",
            started=started, machine={"cpus": os.cpu_count(), "load_before": list(os.getloadavg()),
                                      "python": sys.version.split()[0]},
            window_s=self.seconds, users=self.args.users)
        if not {"responder", "held"} <= self.skip:
            self.responder_part()
        if "cyrus" not in self.skip:
            self.cyrus_part()
        if "collectors" not in self.skip:
            self.collectors_part()
        self.context["machine"]["load_after"] = list(os.getloadavg())
        self.context["duration_s"] = round(time.time() - started, 1)
        return fg.document(self.figures, self.context)


def parse_collectors_cost(output: str) -> tuple[float | None, dict[str, Any]]:
    """The share of one core from collectors_cost.py's last line (JSON), and its detail."""
    lines = output.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None, {}
    if not isinstance(result, dict) or not isinstance(result.get("core_percent"), (int, float)):
        return None, {}
    return float(result["core_percent"]), {k: result[k] for k in ("cpu_s", "wall_s", "samples")
                                           if k in result}


def _lean_env(lean: bool) -> dict[str, str]:
    return {"LOADTEST_IMAP_LEAN": "1"} if lean else {}


def run_bounded(cmd: list[str], limit: float, env: dict[str, str] | None = None
                ) -> tuple[int | None, str, str]:
    """Run ``cmd`` in a process group of its own; after ``limit`` seconds kill the group.
    (returncode, stdout, stderr); returncode None when it was killed for time."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return None, out, err
    return proc.returncode, out, err


def stop_process(proc: subprocess.Popen) -> None:
    """Close its stdin (the responder's stop signal), then terminate by pid if need be."""
    try:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def print_table(document: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    figures = [fg.Figure(**{k: d[k] for k in ("key", "label", "value", "unit", "method", "detail")})
               for d in document["figures"]]
    machine = document["machine"]
    dep = document.get("deployment", {})
    title = (f"generator benchmark: {machine['cpus']} CPUs, load average "
             f"{machine['load_before'][0]:.2f} before / {machine['load_after'][0]:.2f} after"
             + (f", Cyrus on {dep['filesystem']} ({dep['dir']})" if dep else ""))
    table = Table(title=title, show_lines=True)
    for name in ("figure", "measured", "target", "", "method"):
        table.add_column(name, overflow="fold")
    for row in fg.table_rows(figures):
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # logs and pipes: keep the method column readable
    console.print(table)


def run(args: argparse.Namespace) -> int:
    checked = check_args(args)
    bench = Bench(args, checked, lambda text: print(f"bench: {text}", file=sys.stderr, flush=True))
    document = bench.run()
    print_table(document)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(document, indent=1) + "\n")
        print(f"figures written to {args.json_path}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cyrus-loadtest bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except UsageError as exc:
        print(f"cyrus-loadtest bench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
