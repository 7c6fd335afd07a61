"""Benchmark figures from raw measurements: each with its value, unit, method and target.

Pure module (no Locust, no gevent): the generator processes report raw counts, CPU seconds and
RSS; this turns them into the figures the issue asks for and says whether each meets its target.
"""

from __future__ import annotations

import operator
from dataclasses import asdict, dataclass, field
from typing import Any

from loadtest.imap.steptable import CONNECT, LOGIN, LOGOUT

FORMAT = 1

CPU_METHOD = ("user+system CPU of the generator process (getrusage RUSAGE_SELF) over the "
              "window / {count} completed in the window (Locust stats)")

# key -> (comparison, target value, where the target comes from)
TARGETS: dict[str, tuple[str, float, str]] = {
    "lean_churn_cpu_us_responder": ("<=", 230.0, "imaptest's CPU per session"),
    "lean_flood_cycles_per_core_responder": (">=", 20000.0, "issue 16"),
    "lean_flood_login_cycles_per_core_responder": (">=", 20000.0, "issue 16"),
    "lean_flood_cycles_per_core_cyrus": (">=", 20000.0, "issue 16"),
    "lean_flood_login_cycles_per_core_cyrus": (">=", 20000.0, "issue 16"),
    "lean_churn_cpu_us_cyrus": ("<=", 170.0, "issue 16: imaptest's CPU per session against Cyrus"),
    "multiplexed_churn_cpu_us_cyrus": ("<=", 170.0, "issue 16: imaptest's CPU per session against Cyrus"),
    "imapclient_churn_cpu_us_responder": ("<=", 450.0, "issue 8"),
    "lean_churn_sessions_per_s_cyrus": (">=", 595.0, "imaptest against Cyrus, data on disk"),
    "held_kb_per_session": ("<=", 20.0, "issue 16"),
    "held_sessions": (">=", 5000.0, "issue 8"),
    "collectors_core_percent": ("<=", 1.0, "issue 16 (300 children, --long)"),
}
_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


@dataclass
class Figure:
    key: str
    label: str
    value: float | None  # None: not measured (see detail["why"])
    unit: str
    method: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> str | None:
        spec = TARGETS.get(self.key)
        return None if spec is None else f"{spec[0]} {spec[1]:g}"

    @property
    def met(self) -> bool | None:
        return meets(self.key, self.value)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["target"] = self.target
        out["met"] = self.met
        return out


def meets(key: str, value: float | None) -> bool | None:
    """Whether ``value`` meets the target of ``key``; None without a target or a value."""
    spec = TARGETS.get(key)
    if spec is None or value is None:
        return None
    return _OPS[spec[0]](value, spec[1])


def ratio(numerator: float, denominator: float, scale: float = 1.0) -> float | None:
    return None if not denominator else numerator * scale / denominator


def window_cpu(raw: dict[str, Any]) -> float:
    return float(raw["user_cpu_seconds"]) + float(raw["system_cpu_seconds"])


def completed(raw: dict[str, Any], step: str) -> int:
    """Successful requests of ``step`` in the window (Locust's stats: requests - failures)."""
    entry = raw.get("steps", {}).get(step, {})
    return int(entry.get("requests", 0)) - int(entry.get("failures", 0))


def churn_figures(raw: dict[str, Any], path: str, against: str) -> list[Figure]:
    """CPU per session and sessions/s of one churn run (``path`` lean or imapclient,
    ``against`` responder or cyrus). A session counts when its LOGOUT succeeded."""
    sessions = completed(raw, LOGOUT)
    cpu = window_cpu(raw)
    wall = float(raw["wall_seconds"])
    detail = {"sessions": sessions, "users": raw["users"], "wall_s": round(wall, 3),
              "user_cpu_s": round(raw["user_cpu_seconds"], 4),
              "system_cpu_s": round(raw["system_cpu_seconds"], 4),
              "user_us_per_session": _round(ratio(raw["user_cpu_seconds"], sessions, 1e6)),
              "system_us_per_session": _round(ratio(raw["system_cpu_seconds"], sessions, 1e6)),
              "failures": raw.get("total_failures", 0)}
    users = raw["users"]
    return [
        Figure(f"{path}_churn_cpu_us_{against}",
               f"{path} churn: generator CPU per session ({against})",
               _round(ratio(cpu, sessions, 1e6)), "µs",
               CPU_METHOD.format(count="sessions (LOGOUT succeeded)"), detail),
        Figure(f"{path}_churn_sessions_per_s_{against}",
               f"{path} churn: sessions/s at {users} users ({against})",
               _round(ratio(sessions, wall)), "sessions/s",
               f"LOGOUT successes in the window / wall seconds, {users} closed-loop users "
               "(connect, greeting, LOGIN, LIST, LOGOUT)", {"sessions": sessions}),
    ]


SERVER_CPU_METHOD = ("user+system CPU of Cyrus' master, its live imapds and the reaped ones "
                     "(master's cutime/cstime) over the window / {count} completed in the window")


def tls_churn_figures(raw: dict[str, Any], mode: str) -> list[Figure]:
    """Generator and Cyrus CPU per session and sessions/s of one lean churn run over ``mode``
    (plain, implicit, starttls, implicit+resume, starttls+resume), all against one deployment."""
    sessions = completed(raw, LOGOUT)
    server_cpu = raw.get("server_cpu_seconds")
    key = mode.replace("+", "_")
    detail = {"sessions": sessions, "wall_s": round(float(raw["wall_seconds"]), 3),
              "failures": raw.get("total_failures", 0),
              "connect_p50_ms": raw.get("steps", {}).get(CONNECT, {}).get("p50_ms")}
    return [
        Figure(f"tls_{key}_generator_cpu_us", f"lean churn over {mode}: generator CPU per session",
               _round(ratio(window_cpu(raw), sessions, 1e6)), "µs",
               CPU_METHOD.format(count="sessions (LOGOUT succeeded)"), detail),
        Figure(f"tls_{key}_cyrus_cpu_us", f"lean churn over {mode}: Cyrus CPU per session",
               _round(ratio(server_cpu or 0.0, sessions, 1e6)) if server_cpu is not None else None,
               "µs", SERVER_CPU_METHOD.format(count="sessions"), dict(detail)),
        Figure(f"tls_{key}_sessions_per_s", f"lean churn over {mode}: sessions/s at "
               f"{raw['users']} users", _round(ratio(sessions, float(raw["wall_seconds"]))),
               "sessions/s", "LOGOUT successes in the window / wall seconds", {}),
    ]


def tls_flood_figures(raw: dict[str, Any], mode: str) -> list[Figure]:
    """Connect-greeting-RST cycles/s over ``mode`` and what each costs Cyrus."""
    cycles = completed(raw, CONNECT)
    key = mode.replace("+", "_")
    server_cpu = raw.get("server_cpu_seconds")
    return [
        Figure(f"tls_{key}_flood_cycles_per_s", f"flood over {mode}: connect-greeting-RST "
               f"cycles/s at {raw['users']} users",
               _round(ratio(cycles, float(raw["wall_seconds"]))), "cycles/s",
               "CONNECT successes in the window / wall seconds",
               {"cycles": cycles, "failures": raw.get("total_failures", 0),
                "generator_us_per_cycle": _round(ratio(window_cpu(raw), cycles, 1e6))}),
        Figure(f"tls_{key}_flood_cyrus_cpu_us", f"flood over {mode}: Cyrus CPU per cycle",
               _round(ratio(server_cpu or 0.0, cycles, 1e6)) if server_cpu is not None else None,
               "µs", SERVER_CPU_METHOD.format(count="cycles"), {}),
    ]


def flood_figure(raw: dict[str, Any], against: str = "responder", login: bool = False) -> Figure:
    """Reconnect-flood cycles per generator core-second. A cycle: a CONNECT success (greeting
    read), or with ``login`` a LOGIN success (connect, greeting, LOGIN)."""
    step = LOGIN if login else CONNECT
    cycles = completed(raw, step)
    cpu = window_cpu(raw)
    what = "connect-greeting-LOGIN-RST" if login else "connect-greeting-RST"
    return Figure(
        f"lean_flood{'_login' if login else ''}_cycles_per_core_{against}",
        f"flood: {what} cycles per generator core-second ({against}, {raw['users']} users)",
        _round(ratio(cycles, cpu)), "cycles/s/core",
        f"{step} successes in the window / user+system CPU seconds of the generator process "
        "(lean path, --imap-multiplex: one loop drives every connection)",
        {"cycles": cycles, "cycles_per_s": _round(ratio(cycles, float(raw["wall_seconds"]))),
         "cpu_s": round(cpu, 4), "failures": raw.get("total_failures", 0)},
    )


def held_figures(raw: dict[str, Any], wanted: int) -> list[Figure]:
    sessions = int(raw["logged_in"])
    delta = int(raw["rss_after_bytes"]) - int(raw["rss_before_bytes"])
    detail = {"sessions": sessions, "wanted": wanted, "rss_before_mb": round(raw["rss_before_bytes"] / 2**20, 1),
              "rss_after_mb": round(raw["rss_after_bytes"] / 2**20, 1),
              "spawn_s": round(raw.get("spawn_seconds", 0.0), 1)}
    return [
        Figure("held_kb_per_session", "held sessions (imapclient): generator memory per session",
               _round(ratio(delta, sessions, 1 / 1024)), "KB",
               "RSS of the generator process (/proc/self/statm) once every held user had logged in "
               "minus RSS before spawning, / sessions logged in", detail),
        Figure("held_sessions", "held sessions logged in at once in one generator process",
               float(sessions), "sessions",
               "LOGIN successes (Locust stats) with every user holding its connection", detail),
    ]


def open_loop_figure(raw: dict[str, Any], capacity: float, share: float,
                     against: str = "cyrus") -> Figure:
    lag = raw.get("schedule_lag", {})
    sessions = completed(raw, LOGOUT)
    wall = float(raw["wall_seconds"])
    offered = float(raw.get("rate_per_user", 0.0)) * raw["users"]
    detail = {"capacity_sessions_per_s": _round(capacity), "share": share,
              "offered_sessions_per_s": _round(offered),
              "achieved_sessions_per_s": _round(ratio(sessions, wall)),
              "lag_p50_ms": lag.get("p50_ms"), "lag_p95_ms": lag.get("p95_ms"),
              "lag_max_ms": lag.get("max_ms"), "sessions_started": lag.get("requests", 0),
              "failures": raw.get("total_failures", 0)}
    achieved = detail["achieved_sessions_per_s"]
    # Lateness that grows through the window means the offered rate was not sustained (the
    # server or a busy machine fell behind), not that pacing is imprecise: say which it was.
    detail["fell_behind"] = bool(offered and achieved is not None and achieved < 0.95 * offered)
    return Figure(
        f"open_loop_lag_p99_ms_{against}",
        f"open loop at {share:.0%} of measured capacity: session start lateness p99 ({against})",
        lag.get("p99_ms"), "ms",
        "PACING/SCHEDULE_LAG events (lateness of each session's start against its schedule "
        "t0 + k/rate), Locust's percentile over the window; rate per user = "
        f"{share:g} x lean churn sessions/s measured just before against the same server / users",
        detail)


def collectors_figure(percent: float | None, detail: dict[str, Any]) -> Figure:
    return Figure("collectors_core_percent", "collectors at default rates: share of one core",
                  percent, "%",
                  "benchmarks/collectors_cost.py: CPU of the collecting process (the "
                  "scheduler's clock, process_time) over the wall time, every collector at "
                  "default rates, N ready imapd children (no imaps service: N in all), under "
                  "gevent as in a Locust run", detail)


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def missing(key: str, label: str, unit: str, why: str) -> Figure:
    """A figure that could not be measured, with the reason (never a made-up number)."""
    return Figure(key, label, None, unit, "not measured", {"why": why})


def document(figures: list[Figure], context: dict[str, Any]) -> dict[str, Any]:
    """The JSON document: context (command, machine, load, deployment) and the figures."""
    return {"format": FORMAT, **context, "figures": [f.to_dict() for f in figures]}


def table_rows(figures: list[Figure]) -> list[tuple[str, str, str, str, str]]:
    """(label, measured, target, verdict, method) per figure, for the terminal table."""
    rows = []
    for fig in figures:
        digits = 2 if fig.unit == "x" else 1  # ratios
        measured = "n/a" if fig.value is None else f"{fig.value:,.{digits}f} {fig.unit}"
        if fig.value is None and fig.detail.get("why"):
            measured += f" ({fig.detail['why']})"
        verdict = {True: "met", False: "MISSED", None: ""}[fig.met]
        rows.append((fig.label, measured, fig.target or "", verdict, fig.method))
    return rows
