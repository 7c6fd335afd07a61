"""Every source of samples and the signals it records, each declared once.

Pure module: data only, no imports of the project. A source is a collector (chosen with
``--collectors``; its samplers are registered by name in ``loadtest.collectors.collectorset``)
or another part of a run that records samples (the step recorder, a fault, the agent). Derived
from ``SOURCES``: the collector names and defaults (``loadtest.collectors.config``, the
``--collectors`` help in ``loadtest.run``, the agent's default collectors), the signals the gate
can judge and their kinds (``loadtest.gate.metrics``), the lines of the report's panels
(``loadtest.report.plots``) and of the web UI's charts (``loadtest.webui.payload``).
"""

from __future__ import annotations

from dataclasses import dataclass

# Signal kinds decide which aggregations the gate allows and what a null sample means.
LATENCY = "latency"  # a probe: null = no answer, counts as +inf in percentiles and max
GAUGE = "gauge"  # a level sampled on the clock: null = not sampled, skipped
COUNTER = "counter"  # a cumulative count: `increase` over the window, nulls skipped
TALLY = "tally"  # a cumulative count of occurrences of something we did (re-points of a link)
SPREAD = "spread"  # a gauge per label value (live imapds per executable), several per sample time
KINDS = (LATENCY, GAUGE, COUNTER, TALLY, SPREAD)


@dataclass(frozen=True)
class Signal:
    name: str  # the series name in series.jsonl
    kind: str  # one of KINDS
    unit: str  # "ms", "s", "/s", "%" or "" (a count)
    label: str  # what legends say instead of the name; "{step}" is the sample's step label
    gated: bool = True  # gate rules may name it (SIGNAL.AGG)
    panel: str | None = None  # the report panel that draws it (loadtest.report.plots)
    chart: str | None = None  # the live web UI chart that draws it (loadtest.webui.payload)


@dataclass(frozen=True)
class Source:
    name: str
    help: str  # what it samples, in a few words
    signals: tuple[Signal, ...]
    collector: bool = True  # a collector chosen with --collectors (else: always on when used)
    default: bool = True  # a collector that runs unless --collectors names others
    agent: bool = False  # a collector the agent runs by default on a Cyrus host


# Within a panel or chart, lines are drawn in the order declared here.
SOURCES: tuple[Source, ...] = (
    Source("probe", "new-connection probes and a held-session NOOP", (
        Signal("greeting_latency_ms", LATENCY, "ms", "greeting (probe)",
               panel="greeting-vs-held", chart="latency"),
        Signal("connect_latency_ms", LATENCY, "ms", "TCP connect (probe)",
               panel="greeting-vs-held"),
        Signal("login_latency_ms", LATENCY, "ms", "LOGIN (probe)", panel="greeting-vs-held"),
        Signal("held_noop_latency_ms", LATENCY, "ms", "held-session NOOP",
               panel="greeting-vs-held", chart="latency"),
    )),
    Source("master", "master's stats file: workers, children, forks, heartbeat", (
        Signal("heartbeat_age_s", GAUGE, "s", "seconds since master's last write",
               panel="heartbeat", chart="heartbeat"),
        Signal("spawns_per_s", GAUGE, "/s", "spawns (master)", panel="spawns", chart="spawns"),
        Signal("ready_workers", GAUGE, "", "ready workers", panel="workers", chart="workers"),
        Signal("active_children", GAUGE, "", "active children", panel="workers"),
        Signal("max_children", GAUGE, "", "maximum children"),
        Signal("master_forks_total", COUNTER, "", "forks (master)"),
        Signal("ready_fails_total", COUNTER, "", "ready fails (master)"),
    ), agent=True),
    Source("processes", "master's children in /proc", (
        Signal("imapd_processes", GAUGE, "", "imapd processes", panel="processes",
               chart="workers"),
        Signal("child_processes", GAUGE, "", "children", panel="processes"),
        Signal("process_spawns", GAUGE, "", "new children", panel="spawns"),
        Signal("process_exits", GAUGE, "", "exited children", panel="spawns"),
        Signal("zombie_children", GAUGE, "", "zombie children"),
        Signal("imapd_binaries", SPREAD, "", "imapds per executable"),
        Signal("cyrus_cpu_percent", GAUGE, "%", "Cyrus", panel="cpu"),
    ), agent=True),
    Source("backlog", "listen sockets' accept queues (sock_diag)", (
        Signal("listen_queue", GAUGE, "", "accept queue (Recv-Q)", panel="backlog",
               chart="backlog"),
    ), agent=True),
    Source("machine", "the host: load, forks, CPU, listen overflows", (
        Signal("listen_overflows", COUNTER, "", "listen overflows", panel="backlog",
               chart="backlog"),
        Signal("listen_drops", COUNTER, "", "listen drops", panel="backlog"),
        Signal("load1", GAUGE, "", "load average (1 min)", panel="load", chart="load"),
        Signal("procs_running", GAUGE, "", "processes running", panel="load", chart="load"),
        Signal("procs_blocked", GAUGE, "", "processes blocked", panel="load"),
        Signal("host_processes", GAUGE, "", "host processes"),
        Signal("host_forks_per_s", GAUGE, "/s", "host forks", panel="spawns"),
        Signal("generator_cpu_percent", GAUGE, "%", "generator", panel="cpu"),
        Signal("context_switches_per_s", GAUGE, "/s", "context switches"),
        Signal("host_cpu_system_percent", GAUGE, "%", "host CPU (system)"),
        Signal("host_cpu_busy_percent", GAUGE, "%", "host CPU (busy)"),
    ), agent=True),
    Source("canary", "a file created, fsynced and removed in the data and proc directories", (
        Signal("canary_data_ms", LATENCY, "ms", "data partition", panel="canary",
               chart="canary"),
        Signal("canary_proc_ms", LATENCY, "ms", "proc directory", panel="canary",
               chart="canary"),
    ), agent=True),
    Source("errors", "IOERROR/DBERROR/fatal lines of the instance's log", (
        Signal("cyrus_errors", COUNTER, "", "IOERROR/DBERROR/fatal lines"),
    )),
    # inotify watches of the instance's tree: only when asked for (the lock-file scenario).
    Source("inodes", "files created and removed per directory (inotify)", (
        Signal("inode_creates_per_s", GAUGE, "/s", "files created"),
        Signal("inode_unlinks_per_s", GAUGE, "/s", "files removed"),
    ), default=False),
    Source("replication", "replication lag of each replicated store", (
        Signal("replication_lag_s", LATENCY, "s", "replication lag"),
    )),
    Source("steps", "the step recorder's per-second statistics", (
        Signal("step_rate_per_s", GAUGE, "/s", "{step}", panel="request-rate"),
        Signal("step_failures_per_s", GAUGE, "/s", "failures (all steps)",
               panel="request-rate"),
        Signal("step_p95_ms", LATENCY, "ms", "{step} p95", panel="step-latency"),
        Signal("step_p50_ms", LATENCY, "ms", "{step} p50", panel="step-latency"),
    ), collector=False),
    Source("faults", "the rotate-binary fault", (
        Signal("rotation", TALLY, "", "binary rotations"),
    ), collector=False),
    Source("agent", "the collector agent on a Cyrus host (--agent-url)", (
        Signal("agent_cpu_percent", GAUGE, "%", "agent"),
        Signal("log_errors_total", COUNTER, "", "error lines (agent's log)", gated=False),
        Signal("agent_clock_offset_s", GAUGE, "s", "agent clock offset", gated=False),
    ), collector=False),
)

COLLECTORS: tuple[str, ...] = tuple(s.name for s in SOURCES if s.collector)
DEFAULT_COLLECTORS: tuple[str, ...] = tuple(s.name for s in SOURCES if s.collector and s.default)
AGENT_COLLECTORS: tuple[str, ...] = tuple(s.name for s in SOURCES if s.collector and s.agent)
SIGNALS: dict[str, Signal] = {sig.name: sig for source in SOURCES for sig in source.signals}
GATED_SIGNALS: dict[str, str] = {name: sig.kind for name, sig in SIGNALS.items() if sig.gated}


def label(name: str) -> str:
    """What a legend says for ``name``: its label, else the name itself."""
    declared = SIGNALS.get(name)
    return declared.label if declared else name


def drawn_on(*, panel: str | None = None, chart: str | None = None) -> tuple[str, ...]:
    """The signals of a report panel or a web UI chart, in declaration order."""
    return tuple(s.name for s in SIGNALS.values()
                 if (panel is not None and s.panel == panel)
                 or (chart is not None and s.chart == chart))


def collectors_help() -> str:
    """``--collectors``' help: the names, and which are off unless named."""
    off = [s.name for s in SOURCES if s.collector and not s.default]
    return (f"server-side collectors to run: {','.join(COLLECTORS)}, or none (default: all"
            + (f" but {','.join(off)})" if off else ")"))
