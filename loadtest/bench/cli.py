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
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadtest.bench import figures as fg
from loadtest.bench import imaptest as it
from loadtest.core.credentials import pattern_credentials, read_users_file
from loadtest.deploy.binaries import add_cyrus_bin_dir_flag
from loadtest.errors import UsageError
from loadtest.paths import filesystem_type

if TYPE_CHECKING:
    from loadtest.deploy.deployment import Deployment

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
    parser.add_argument("--tls", action="store_true",
                        help="also compare TLS with plain IMAP on the bench's Cyrus, side by side: "
                             "lean churn over plain, implicit, starttls, each TLS mode with and "
                             "without resumption (generator and Cyrus CPU per session), and the "
                             "flood over plain and implicit TLS")
    parser.add_argument("--json", dest="json_path", default=None,
                        help="also write the figures as JSON to this file")
    parser.add_argument("--imaptest", default=None, metavar="PATH",
                        help="an imaptest binary (benchmarks/build_imaptest.sh builds one): run it "
                             "side by side against the same servers (churn and flood with LOGIN "
                             "against Cyrus, held sessions against the responder) and print ratios")


PARTS = ("responder", "held", "cyrus", "collectors")
# Run side by side in this order by --tls (MODE or MODE+resume).
TLS_BENCH_MODES = ("plain", "implicit", "starttls", "implicit+resume", "starttls+resume")


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
    imaptest = None
    if args.imaptest:
        imaptest = Path(args.imaptest)
        if not imaptest.is_file() or not imaptest.stat().st_mode & 0o111:
            raise UsageError(f"--imaptest {args.imaptest!r}: not an executable file")
    if "cyrus" not in skip:
        from loadtest.deploy.binaries import resolve

        resolve(args.cyrus_bin_dir)  # a bad --cyrus-bin-dir fails before any part runs
    if args.json_path:
        parent = Path(args.json_path).absolute().parent
        if not parent.is_dir():
            raise UsageError(f"--json {args.json_path!r}: directory {parent} does not exist")
    return {"skip": skip, "seconds": seconds, "deploy_dir": deploy_dir, "volatile_dir": volatile,
            "imaptest": imaptest}


class Bench:
    def __init__(self, args: argparse.Namespace, checked: dict[str, Any], say: Any) -> None:
        self.args = args
        self.seconds: float = checked["seconds"]
        self.skip: set[str] = checked["skip"]
        self.deploy_dir: Path = checked["deploy_dir"]
        self.volatile_dir: Path | None = checked["volatile_dir"]
        self.imaptest: Path | None = checked.get("imaptest")
        self.scratch: Path | None = None  # imaptest's userfiles and output (0700, removed at the end)
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
        assert proc.stdout is not None  # stdout=PIPE
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
        try:
            if "responder" not in self.skip:
                self.churn_and_open_loop(env, "responder", "the responder")
                self.flood(env, "responder", login=False)
                self.flood(env, "responder", login=True)
            if "held" not in self.skip:
                held = self.args.held
                self.say(f"{held} held sessions in one generator process ...")
                self._guard(lambda: fg.held_figures(self.generator(
                    {"kind": "held", "users": held, "spawn_rate": 1000, "spawn_timeout": 90},
                    {**env, "LOADTEST_IMAP_HELD_INTERVAL": "600"}), held),
                    "held_kb_per_session", "held sessions: generator memory per session", "KB")
                if self.imaptest:
                    self.imaptest_held(port, held)
        finally:
            stop_process(proc)

    def cyrus_part(self) -> None:
        from loadtest.deploy.manager import deploy_down, deploy_up
        from loadtest.deploy.watchdog import watching

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
        with watching(root):  # stops the deployment if the bench is killed
            deployment = deploy_up(root, users=users, volatile_dir=volatile,
                                   cyrus_bin_dir=self.args.cyrus_bin_dir,
                                   sources={"dir": "flag --deploy-dir",
                                            "volatile_dir": "flag --volatile-dir"})
            self.context["deployment"]["cyrus"] = deployment.instances[0].cyrus
            try:
                self.against_deployment(deployment)
            finally:
                deploy_down(deployment.root)  # also removes the directory

    def against_deployment(self, deployment: Deployment) -> None:
        """Every Cyrus part against the bench's own deployment."""
        env = {"LOADTEST_DEPLOYMENT": str(deployment.path)}
        instance = deployment.instances[0]
        after_lean = None
        if self.imaptest:
            userfile = it.write_userfile(
                self._scratch() / "cyrus-users", read_users_file(deployment.users_file, "deployment.json"))
            after_lean = lambda: self.imaptest_churn(instance.host, instance.port, userfile)  # noqa: E731
        self.churn_and_open_loop(env, "cyrus", "Cyrus", after_lean)
        self.flood(env, "cyrus", login=False)
        self.flood(env, "cyrus", login=True)
        if self.imaptest:
            self.imaptest_flood(instance.host, instance.port, userfile)
        if self.args.tls:
            self.tls_part(env, instance.master_pid, Path(instance.log_file))

    def churn_and_open_loop(self, env: dict[str, str], against: str, server: str,
                            after_lean: Any = None) -> None:
        """Closed-loop churn on the lean and imapclient paths, then the open loop paced from the
        lean path's capacity. ``against`` keys the figures, ``server`` names it for the log;
        ``after_lean()`` runs right after the lean churn (imaptest's, back to back)."""
        users = self.args.users
        capacity = None
        for path in ("lean", "multiplexed", "imapclient"):
            self.say(f"churn, {path} path, against {server}, {users} users ...")
            figs = self._guard(lambda p=path: fg.churn_figures(
                self.generator({"kind": "churn", "users": users, "lean": p != "imapclient"},
                               {**env, **_lean_env(p != "imapclient"), **_multiplex_env(p)}), p, against),
                f"{path}_churn_cpu_us_{against}", f"{path} churn: generator CPU per session ({against})", "µs")
            if path == "lean" and len(figs) > 1:
                capacity = figs[1].value
            if path == "lean" and after_lean is not None:
                after_lean()
        if capacity:
            self.open_loop(env, capacity, against)

    def tls_part(self, env: dict[str, str], master_pid: int | None, log_file: Path) -> None:
        """Lean churn and floods over each TLS mode and plain, one after the other against the
        same deployment, with Cyrus' CPU over each generator's window, and how many handshakes
        Cyrus logged as resumed during each run (its syslog, captured when running as root)."""
        users = self.args.users
        for mode in TLS_BENCH_MODES:
            tls, _, resume = mode.partition("+")
            tls_env = {**env, **_lean_env(True), "LOADTEST_IMAP_TLS": tls if tls != "plain" else "none",
                       "LOADTEST_IMAP_TLS_RESUME": "on" if resume else "off"}
            self.say(f"lean churn over {mode} against Cyrus, {users} users ...")
            before = handshakes_logged(log_file)

            def measure(e: dict[str, str] = tls_env, m: str = mode,
                        b: tuple[int, int] = before) -> list[fg.Figure]:
                figs = fg.tls_churn_figures(self.generator(
                    {"kind": "churn", "users": users, "lean": True, "server_pid": master_pid}, e), m)
                after = handshakes_logged(log_file)
                reused, new = after[0] - b[0], after[1] - b[1]
                figs[1].detail["handshakes_reused"], figs[1].detail["handshakes_new"] = reused, new
                return figs

            self._guard(measure, f"tls_{mode.replace('+', '_')}_cyrus_cpu_us",
                        f"lean churn over {mode}", "µs")
        for mode in ("plain", "implicit"):
            self.say(f"flood, connect-greeting-RST over {mode}, against Cyrus, {users} users ...")
            flood_env = {**env, "LOADTEST_IMAP_TLS": "none" if mode == "plain" else mode,
                         "LOADTEST_IMAP_DISCONNECT": "reset"}
            self._guard(lambda e=flood_env, m=mode: fg.tls_flood_figures(self.generator(
                {"kind": "flood", "users": users, "server_pid": master_pid}, e), m),
                f"tls_{mode}_flood_cycles_per_s", f"flood over {mode}", "cycles/s")

    def flood(self, env: dict[str, str], against: str, login: bool) -> None:
        users = self.args.users
        what = "connect-greeting-LOGIN-RST" if login else "connect-greeting-RST"
        self.say(f"flood, {what}, against {against}, {users} users ...")
        # One loop drives every connection (--imap-multiplex): the flood's fastest path.
        flood_env = {**env, "LOADTEST_IMAP_DISCONNECT": "reset", "LOADTEST_IMAP_MULTIPLEX": "true"}
        if login:
            flood_env["LOADTEST_IMAP_FLOOD_LOGIN"] = "true"
        self._guard(lambda: [fg.flood_figure(self.generator({"kind": "flood", "users": users}, flood_env),
                                             against, login)],
                    f"lean_flood{'_login' if login else ''}_cycles_per_core_{against}",
                    f"flood ({what}) cycles per generator core-second ({against})", "cycles/s/core")

    # -- imaptest, side by side --------------------------------------------------------------

    def _scratch(self) -> Path:
        if self.scratch is None:
            self.scratch = Path(tempfile.mkdtemp(prefix="cyrus-loadtest-bench-imaptest-"))
        return self.scratch

    def _imaptest(self, host: str, port: int, userfile: Path, clients: int, states: tuple[str, ...],
                  seconds: int | None = None) -> it.ImaptestRun:
        secs = seconds if seconds is not None else max(1, round(self.seconds))
        assert self.imaptest is not None  # the imaptest parts run only with --imaptest
        argv = it.command(self.imaptest, host, port, userfile, clients, secs, states)
        return it.run_imaptest(argv, secs + 60, self._scratch())

    def imaptest_churn(self, host: str, port: int, userfile: Path) -> None:
        users = self.args.users
        self.say(f"imaptest churn against Cyrus, {users} clients ...")
        self._guard(lambda: it.churn_figures(self._imaptest(host, port, userfile, users, it.CHURN_STATES),
                                             "cyrus"),
                    "imaptest_churn_cpu_us_cyrus", "imaptest churn: CPU per session (cyrus)", "µs")

    def imaptest_flood(self, host: str, port: int, userfile: Path) -> None:
        users = self.args.users
        self.say(f"imaptest flood (LOGIN, close) against Cyrus, {users} clients ...")
        self._guard(lambda: [it.flood_figure(self._imaptest(host, port, userfile, users,
                                                            it.FLOOD_LOGIN_STATES), "cyrus")],
                    "imaptest_flood_login_cycles_per_core_cyrus",
                    "imaptest flood (LOGIN, close): cycles per core-second (cyrus)", "cycles/s/core")

    def imaptest_held(self, port: int, held: int) -> None:
        self.say(f"imaptest with {held} held sessions (and with 1) against the responder ...")
        userfile = self._scratch() / "responder-users"
        it.write_userfile(userfile, pattern_credentials("user{n}", RESPONDER_PASSWORD, 10000,
                                                        "the bench's responder"))
        # Long enough for every client to connect and log in (imaptest ramps up its clients).
        seconds = max(5, round(self.seconds))

        def measure() -> list[fg.Figure]:
            many = self._imaptest("127.0.0.1", port, userfile, held, it.HELD_STATES, seconds)
            one = self._imaptest("127.0.0.1", port, userfile, 1, it.HELD_STATES, seconds)
            return [it.held_figure(many, one, "responder")]

        self._guard(measure, "imaptest_held_kb_per_session_responder",
                    "imaptest held sessions: memory per session (responder)", "KB")

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
        # --gevent: the collectors run in Locust's gevent-patched process during a run.
        cmd = [sys.executable, str(COLLECTORS_COST), "--prefork", str(prefork),
               "--seconds", str(seconds), "--gevent"]
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
        try:
            if not {"responder", "held"} <= self.skip:
                self.responder_part()
            if "cyrus" not in self.skip:
                self.cyrus_part()
            if "collectors" not in self.skip:
                self.collectors_part()
        finally:
            if self.scratch is not None:
                shutil.rmtree(self.scratch, ignore_errors=True)
        if self.imaptest:
            self.figures.extend(it.ratio_figures(self.figures))
            self.context["imaptest"] = str(self.imaptest)
        else:
            self.context["imaptest"] = None
            self.say("comparison with imaptest skipped (no --imaptest PATH; "
                     "benchmarks/build_imaptest.sh builds one)")
        self.context["machine"]["load_after"] = list(os.getloadavg())
        self.context["duration_s"] = round(time.time() - started, 1)
        return fg.document(self.figures, self.context)


def handshakes_logged(log_file: Path) -> tuple[int, int]:
    """(resumed, new) TLS handshakes in an instance's captured syslog ("starttls: ... bits
    reused)" / "bits new)"); (0, 0) when there is no log."""
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return 0, 0
    return text.count("bits reused)"), text.count("bits new)")


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


def _multiplex_env(path: str) -> dict[str, str]:
    return {"LOADTEST_IMAP_MULTIPLEX": "true"} if path == "multiplexed" else {}


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
    if not document.get("imaptest"):
        console.print("comparison with imaptest: skipped (no --imaptest PATH; "
                      "benchmarks/build_imaptest.sh builds one)")


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
