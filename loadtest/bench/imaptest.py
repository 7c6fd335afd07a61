"""imaptest (Dovecot's C load generator) side by side with ours: its command lines, the parsing
of its output, and the ratios ``cyrus-loadtest bench --imaptest PATH`` prints.

The parsing and the arithmetic are pure (literal text in, numbers out; no Locust, no gevent);
:func:`run_imaptest` runs the binary, bounded in time, and reads its CPU time (user + system of
the whole process, from ``wait4``) and peak RSS. Build the binary with
``benchmarks/build_imaptest.sh`` (docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.bench import figures as fg

# imaptest's state probabilities for each comparison (``-`` clears all but SELECT and LOGOUT).
# churn: greeting, LOGIN, LIST "" *, LOGOUT per connection (as ChurnUser on the lean path).
CHURN_STATES = ("-", "select=0", "login=100", "list=100", "logout=100")
# flood: greeting, LOGIN sent, close (src/client.c: with disconnect=100 a client disconnects
# right after handling its first input, the greeting, to which it answered with LOGIN; it does
# not wait for LOGIN's reply, so a cycle is a "Disc"). ReconnectFloodUser with
# --imap-flood-login also reads LOGIN's OK before its RST: a little more work per cycle for us.
# (imaptest refuses to start unless one of LIST..LOGOUT has a probability: LOGOUT keeps 100.)
FLOOD_LOGIN_STATES = ("-", "select=0", "login=100", "disconnect=100")
# held: LOGIN once, then NOOP, never LOGOUT (as HeldSessionUser).
HELD_STATES = ("-", "select=0", "login=100", "noop=100", "logout=0")

# Short names imaptest prints in its "Totals:" table (src/client-state.c).
LOGIN = "Logi"
LIST = "List"
LOGOUT = "Logo"
DISCONNECT = "Disc"
NOOP = "Noop"


class ImaptestOutputError(ValueError):
    """imaptest's output had no "Totals:" table we could read."""


def parse_totals(output: str) -> dict[str, int]:
    """The command counts of imaptest's final "Totals:" table, by short name.

    The table is a line of short names, one or two lines of percentages, then one line of
    counts in the same order. Two states share a short name (NOOP and IDLE are both "Noop"):
    their counts are summed.
    """
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == "Totals:"]
    if not starts:
        raise ImaptestOutputError("no 'Totals:' line in imaptest's output")
    rest = [line.split() for line in lines[starts[-1] + 1:] if line.strip()]
    if not rest:
        raise ImaptestOutputError("nothing after 'Totals:' in imaptest's output")
    names = rest[0]
    for fields in rest[1:]:
        if any("%" in f for f in fields) or not fields:
            continue  # a probability line
        if not all(f.isdigit() for f in fields):
            raise ImaptestOutputError(f"unexpected line after 'Totals:': {' '.join(fields)!r}")
        if len(fields) != len(names):
            raise ImaptestOutputError(
                f"{len(names)} names but {len(fields)} counts in imaptest's 'Totals:' table")
        totals: dict[str, int] = {}
        for name, count in zip(names, fields, strict=True):
            totals[name] = totals.get(name, 0) + int(count)
        return totals
    raise ImaptestOutputError("no line of counts after 'Totals:' in imaptest's output")


def command(binary: str | Path, host: str, port: int, userfile: str | Path, clients: int,
            seconds: int, states: tuple[str, ...]) -> list[str]:
    """imaptest's argument vector. ``user=unused`` because it exits with "Missing username"
    without one, even with ``userfile=`` (the userfile still picks the users)."""
    return [str(binary), "user=unused", f"userfile={userfile}", f"host={host}", f"port={port}",
            f"clients={clients}", f"secs={seconds}", *states]


@dataclass
class ImaptestRun:
    """What one imaptest run did: its totals, CPU seconds, peak RSS and wall time."""

    totals: dict[str, int]
    user_cpu_seconds: float
    system_cpu_seconds: float
    max_rss_kb: int
    wall_seconds: float
    clients: int
    argv: list[str]

    @property
    def cpu_seconds(self) -> float:
        return self.user_cpu_seconds + self.system_cpu_seconds


def run_imaptest(argv: list[str], limit: float, scratch: Path) -> ImaptestRun:
    """Run imaptest to its end (``secs=``), at most ``limit`` seconds; RuntimeError when it
    overruns or prints no totals. CPU from ``wait4`` on the process itself (imaptest is one
    process): its whole run, start-up included (milliseconds). Its output goes to a file in
    ``scratch`` (a pipe would need a reader while we wait for its rusage)."""
    env = {**os.environ, "LD_LIBRARY_PATH": "/usr/lib/dovecot"}
    out_path = scratch / "imaptest.out"
    t0 = time.monotonic()
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=_raise_nofile)
    status = rusage = None
    try:
        while status is None:
            pid, status_code, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status, rusage = status_code, usage
            elif time.monotonic() - t0 > limit:
                raise RuntimeError(f"imaptest did not finish in {limit:.0f} s")
            else:
                time.sleep(0.05)
    finally:
        if status is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(proc.pid, 0)
        proc.returncode = -1  # reaped here: keep Popen from waiting again
    wall = time.monotonic() - t0
    text = out_path.read_text(encoding="utf-8", errors="replace")
    try:
        totals = parse_totals(text)
    except ImaptestOutputError as exc:
        tail = (text.strip().splitlines() or ["no output"])[-1][:200]
        code = os.waitstatus_to_exitcode(status)
        raise RuntimeError(f"imaptest (exit {code}): {exc}; last line: {tail}") from None
    clients = next((int(a.split("=", 1)[1]) for a in argv if a.startswith("clients=")), 0)
    assert rusage is not None  # set together with status, which the loop above waited for
    return ImaptestRun(totals, rusage.ru_utime, rusage.ru_stime, rusage.ru_maxrss,
                       wall, clients, argv)


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def write_userfile(path: Path, credentials: list[Any]) -> Path:
    """imaptest's userfile (``user:password`` lines), 0600 because it holds passwords."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        for credential in credentials:
            fh.write(f"{credential.username}:{credential.password}\n")
    return path


# -- figures and ratios (pure) ---------------------------------------------------------------

IMAPTEST_CPU_METHOD = ("imaptest: user+system CPU of its process (wait4, whole run: start-up is "
                       "milliseconds) / {count} in its 'Totals:' table")


def churn_figures(run: ImaptestRun, against: str) -> list[fg.Figure]:
    """imaptest's CPU per session and sessions/s of a churn run (a session: one LOGOUT)."""
    sessions = run.totals.get(LOGOUT, 0)
    detail = {"sessions": sessions, "clients": run.clients, "wall_s": round(run.wall_seconds, 3),
              "user_us_per_session": fg._round(fg.ratio(run.user_cpu_seconds, sessions, 1e6)),
              "system_us_per_session": fg._round(fg.ratio(run.system_cpu_seconds, sessions, 1e6)),
              "totals": run.totals}
    return [
        fg.Figure(f"imaptest_churn_cpu_us_{against}",
                  f"imaptest churn: CPU per session ({against})",
                  fg._round(fg.ratio(run.cpu_seconds, sessions, 1e6)), "µs",
                  IMAPTEST_CPU_METHOD.format(count="LOGOUTs"), detail),
        fg.Figure(f"imaptest_churn_sessions_per_s_{against}",
                  f"imaptest churn: sessions/s at {run.clients} clients ({against})",
                  fg._round(fg.ratio(sessions, run.wall_seconds)), "sessions/s",
                  "LOGOUTs in its 'Totals:' / wall seconds of its run", {"sessions": sessions}),
    ]


def flood_figure(run: ImaptestRun, against: str) -> fg.Figure:
    """imaptest's connect-LOGIN-close cycles per CPU second (a cycle: one "Disc")."""
    cycles = run.totals.get(DISCONNECT, 0)
    return fg.Figure(
        f"imaptest_flood_login_cycles_per_core_{against}",
        f"imaptest flood (LOGIN, close): cycles per core-second ({against})",
        fg._round(fg.ratio(cycles, run.cpu_seconds)), "cycles/s/core",
        "imaptest: 'Disc' count in its 'Totals:' (greeting, LOGIN sent, close) / user+system CPU "
        "seconds of its process (wait4, whole run)",
        {"cycles": cycles, "cycles_per_s": fg._round(fg.ratio(cycles, run.wall_seconds)),
         "cpu_s": round(run.cpu_seconds, 4), "totals": run.totals})


def held_kb_per_session(many: ImaptestRun, one: ImaptestRun) -> float | None:
    """Memory per held session: peak RSS with N clients minus peak RSS with one, / (N - 1)."""
    return fg._round(fg.ratio(many.max_rss_kb - one.max_rss_kb, many.clients - one.clients))


def held_figure(many: ImaptestRun, one: ImaptestRun, against: str) -> fg.Figure:
    return fg.Figure(
        f"imaptest_held_kb_per_session_{against}",
        f"imaptest held sessions: memory per session ({against})",
        held_kb_per_session(many, one), "KB",
        "peak RSS (wait4 ru_maxrss) of imaptest with N clients minus with 1 client, / (N - 1); "
        "each client logs in once and sends NOOPs",
        {"clients": many.clients, "max_rss_kb": many.max_rss_kb,
         "max_rss_kb_one_client": one.max_rss_kb, "logins": many.totals.get(LOGIN, 0)})


# (our figure's key, imaptest's figure key, the ratio's key, label, True when lower is better)
RATIOS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("lean_churn_cpu_us_cyrus", "imaptest_churn_cpu_us_cyrus", "ratio_churn_cpu_per_session",
     "lean churn CPU per session / imaptest's (Cyrus)", True),
    ("multiplexed_churn_cpu_us_cyrus", "imaptest_churn_cpu_us_cyrus",
     "ratio_multiplexed_churn_cpu_per_session",
     "multiplexed lean churn CPU per session / imaptest's (Cyrus)", True),
    ("multiplexed_churn_sessions_per_s_cyrus", "imaptest_churn_sessions_per_s_cyrus",
     "ratio_multiplexed_churn_sessions_per_s",
     "multiplexed lean churn sessions/s / imaptest's (Cyrus)", False),
    ("lean_churn_sessions_per_s_cyrus", "imaptest_churn_sessions_per_s_cyrus",
     "ratio_churn_sessions_per_s", "lean churn sessions/s / imaptest's (Cyrus)", False),
    ("lean_flood_login_cycles_per_core_cyrus", "imaptest_flood_login_cycles_per_core_cyrus",
     "ratio_flood_login_cycles_per_core",
     "flood with LOGIN, cycles per core-second / imaptest's (Cyrus)", False),
    ("held_kb_per_session", "imaptest_held_kb_per_session_responder", "ratio_held_kb_per_session",
     "held sessions, memory per session / imaptest's (responder)", True),
)


def ratio_figures(figures: list[fg.Figure]) -> list[fg.Figure]:
    """Ours / imaptest's for every pair measured (a pair with a side missing: no value, and why)."""
    by_key = {fig.key: fig for fig in figures}
    out = []
    for ours_key, theirs_key, key, label, lower_better in RATIOS:
        ours, theirs = by_key.get(ours_key), by_key.get(theirs_key)
        if ours is None and theirs is None:
            continue
        value = None
        why = None
        if ours is None or ours.value is None:
            why = f"{ours_key} not measured"
        elif theirs is None or theirs.value is None:
            why = f"{theirs_key} not measured"
        else:
            value = fg.ratio(ours.value, theirs.value)
            value = None if value is None else round(value, 2)
        detail: dict[str, Any] = {"ours": None if ours is None else ours.value,
                                  "imaptest": None if theirs is None else theirs.value,
                                  "better": "lower" if lower_better else "higher"}
        if why:
            detail["why"] = why
        out.append(fg.Figure(key, label, value, "x",
                             f"{ours_key} / {theirs_key}, measured back to back against the same "
                             f"server ({'lower' if lower_better else 'higher'} is better for us)",
                             detail))
    return out
