"""The samplers: each reads one source on the fixed clock and appends to the SeriesStore.

A sampler's ``read`` does the file or socket I/O (parsing only what it needs to decide what to
read next) and runs in an OS thread with a deadline; ``process`` records. Faults are results: a source that is missing, unreadable or hung
becomes a gap (value None, ``labels.why``) and one "collector_gap" event, and the others go on.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import resource
import threading
import time
import urllib.request
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.collectors.config import CollectorConfig
from loadtest.collectors.probe import HeldSession, probe_once
from loadtest.collectors.runtime import Clock, Runtime, Stopped, native_lock
from loadtest.collectors.stall import HeartbeatTracker, HeldResult, ProbeResult, find_stalls
from loadtest.core import parsers
from loadtest.core.credentials import Credential
from loadtest.core.series import Event, SeriesStore
from loadtest.deploy.procs import pid_alive

log = logging.getLogger("loadtest.collectors")
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Fault(Exception):
    """A source cannot be read; the message says why, once, in the gap event."""


class MasterGone(Fault):
    """Master's pid is not running (stopped, killed, or a zombie not yet reaped)."""


class Gaps:
    """Open collector gaps: one event per (collector, instance) while the same cause lasts."""

    def __init__(self, store: SeriesStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._open: dict[tuple[str, str | None], tuple[str, Event]] = {}
        self._noted: set[tuple[str, str | None, str]] = set()

    def gap(self, collector: str, instance: str | None, why: str, t: float,
            signals: tuple[str, ...] = ()) -> None:
        for signal in signals:
            self.store.add(signal, None, t=t, instance=instance, why=why)
        key = (collector, instance)
        with self._lock:
            current = self._open.get(key)
            if current is not None and current[0] == why:
                return
            if current is not None:
                self.store.close_event(current[1], end=max(t, current[1].t))
            event = self.store.event("collector_gap", t=t, instance=instance,
                                     collector=collector, why=why)
            self._open[key] = (why, event)
        log.warning("collector %s%s: %s", collector, f" [{instance}]" if instance else "", why)

    def ok(self, collector: str, instance: str | None, t: float) -> None:
        with self._lock:
            current = self._open.pop((collector, instance), None)
        if current is not None:
            # A slow read of an earlier tick can finish after a later tick opened the gap (a
            # canary that took over a second): the gap ends now, never before it began.
            self.store.close_event(current[1], end=max(t, current[1].t))

    def note(self, collector: str, instance: str | None, why: str, t: float) -> None:
        """A lasting limitation (the collector goes on, degraded): said once, as a closed event."""
        key = (collector, instance, why)
        with self._lock:
            if key in self._noted:
                return
            self._noted.add(key)
        self.store.event("collector_gap", t=t, end=t, instance=instance, collector=collector,
                         why=why, degraded=True)
        log.warning("collector %s%s: %s", collector, f" [{instance}]" if instance else "", why)

    def close_all(self, t: float) -> None:
        with self._lock:
            current, self._open = list(self._open.values()), {}
        for _why, event in current:
            self.store.close_event(event, end=t)


@dataclass
class Context:
    store: SeriesStore
    runtime: Runtime
    clock: Clock
    config: CollectorConfig
    gaps: Gaps


@dataclass(frozen=True)
class Target:
    """What the per-instance samplers need of a deployment instance."""

    name: str
    host: str
    port: int
    pid_file: str
    master_pid: int | None
    stats_file: str
    data_dir: str
    proc_dir: str
    listen_backlog: int | None
    users: tuple[Credential, ...] = ()
    log_file: str = ""  # the instance's syslog lines (our receiver writes them); "" = none
    inode_roots: tuple[str, ...] = ()  # the instance's directories (inode turnover)


# -- small /proc helpers (run inside ``read``) --------------------------------------------------

def read_text(path: str) -> str:
    with open(path) as fh:
        return fh.read()


def read_pid_stat(pid: int) -> parsers.PidStat:
    """/proc/PID/stat, parsed. One os.read: the line is far under 4 KB and the kernel hands it
    over whole; a third of open().read()'s cost, which counts with hundreds of children read
    every second."""
    fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    return parsers.parse_pid_stat(data)


def held_stat_limit() -> int:
    """How many /proc/PID/stat files a sampler may keep open: a quarter of the soft descriptor
    limit (the generator's sockets need the rest), at most 4,096."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(0, min(4096, (soft if soft != resource.RLIM_INFINITY else 16384) // 4))


class HeldStatFiles:
    """/proc/PID/stat of many processes, each opened once and read again with one ``pread``
    per sample: no path lookup, open and close per child and second (measured: 300 children a
    second cost about a third less CPU, kernel and Python together; benchmarks.md).

    A held descriptor stays bound to the process it was opened for: once that process is
    reaped, reading it fails, so a new process that reuses the pid is never read through it
    (it is opened afresh). Past ``limit`` open files, further pids are read with open, read
    and close. Safe between the reading thread and ``close`` from the hub: every use of a
    descriptor happens under one native lock, and after ``close`` nothing is held."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._fds: dict[int, int] = {}
        self._lock = native_lock()
        self._closed = False

    def read(self, pid: int) -> bytes:
        """The current /proc/PID/stat; FileNotFoundError or ProcessLookupError once gone."""
        with self._lock:
            fd = self._fds.pop(pid, None)
            if fd is not None:
                try:
                    data = os.pread(fd, 4096, 0)
                except OSError:
                    data = b""  # ESRCH: the process it was bound to is reaped
                if data:
                    self._fds[pid] = fd
                    return data
                os.close(fd)  # then the pid, still listed, is a new process: open it afresh
            fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
            try:
                data = os.pread(fd, 4096, 0)
            except BaseException:
                os.close(fd)
                raise
            if self._closed or len(self._fds) >= self.limit:
                os.close(fd)
            else:
                self._fds[pid] = fd
            return data

    def keep_only(self, pids: set[int]) -> None:
        """Close the files of pids no longer listed (exited and reaped)."""
        with self._lock:
            for pid in [p for p in self._fds if p not in pids]:
                os.close(self._fds.pop(pid))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            fds, self._fds = self._fds, {}
            for fd in fds.values():
                os.close(fd)

    def __len__(self) -> int:
        return len(self._fds)


def master_pid(target: Target) -> int:
    """The live master pid: the pid file first (a restarted master has a new pid)."""
    pid: int | None = None
    try:
        pid = int(read_text(target.pid_file).split()[0])
    except (OSError, ValueError, IndexError):
        pid = target.master_pid
    if pid is None:
        raise Fault(f"no master pid (pid file {target.pid_file} unreadable, none in deployment)")
    if not pid_alive(pid):
        raise MasterGone(f"master pid {pid} gone (server stopped?)")
    return pid


# -- base ----------------------------------------------------------------------------------------

class Sampler:
    """One source on the fixed clock: ``tick`` returns at once; the work runs as a task."""

    name = "sampler"
    signals: tuple[str, ...] = ()  # recorded as gaps when the source fails

    def __init__(self, ctx: Context, instance: str | None) -> None:
        self.ctx = ctx
        self.instance = instance
        self._reading = False  # a read still running (maybe hung): never start a second one
        self.io_timeout = max(ctx.config.interval, 1.0)

    def tick(self, t: float) -> None:
        if self.ctx.runtime.closed:
            return
        if self._reading:
            self.ctx.gaps.gap(self.name, self.instance, "previous read still running (hung?)",
                              t, self.signals)
            return
        self._reading = True
        self.ctx.runtime.spawn(self._run, t)

    def _guarded_read(self) -> Any:
        try:
            return self.read()
        finally:
            self._reading = False

    def _run(self, t: float) -> None:
        try:
            data = self.ctx.runtime.run_blocking(self._guarded_read, self.io_timeout)
            self.process(t, data)
        except Stopped:
            return
        except TimeoutError as exc:
            self.on_timeout(t, exc)
        except MasterGone as exc:
            self.on_master_gone(t, str(exc))
        except Fault as exc:
            self.on_fault(t, str(exc))
        except PermissionError as exc:
            self.on_fault(t, f"permission denied on {exc.filename}")
        except FileNotFoundError as exc:
            self.on_fault(t, f"{exc.filename} does not exist")
        except Exception as exc:  # a collector bug must not end the run: record it as a gap
            log.exception("collector %s failed", self.name)
            self.on_fault(t, f"{exc.__class__.__name__}: {exc}")
        else:
            self.ctx.gaps.ok(self.name, self.instance, t)

    def on_timeout(self, t: float, exc: TimeoutError) -> None:
        self.on_fault(t, f"read timed out ({exc})")

    def on_fault(self, t: float, why: str) -> None:
        self.ctx.gaps.gap(self.name, self.instance, why, t, self.signals)

    def on_master_gone(self, t: float, why: str) -> None:
        self.on_fault(t, why)

    def add(self, signal: str, value: float | None, t: float, **labels: Any) -> None:
        self.ctx.store.add(signal, value, t=t, instance=self.instance, **labels)

    def read(self) -> Any:
        raise NotImplementedError

    def process(self, t: float, data: Any) -> None:
        raise NotImplementedError

    def finish(self, t: float) -> None:
        """At stop: close what this sampler has open."""


# -- master's own stats: figures and heartbeat --------------------------------------------------

def read_master_report(path: str, attempts: int = 20) -> parsers.MasterStats | None:
    """Master's stats file, read without a lock, parsed. Master rewrites it once a second under
    an exclusive lock it takes without waiting, and skips that second's report while anyone
    holds a lock on the file. A reader that locks, ticking once a second like master, can stay
    in phase with master's writes for many seconds (its write time drifts about 1 ms per
    second): master then skips report after report, a heartbeat gap of our own making
    (measured: a 30 ms shared lock at master's write moment held off every report for 8 s). So
    we never lock; a read torn by a write in progress is read again 5 ms later. None when
    ``attempts`` reads in a row were torn (master stopped in the middle of a write)."""
    for attempt in range(attempts):
        if attempt:
            time.sleep(0.005)
        stats = parsers.parse_master_report(read_text(path))
        if stats is not None:
            return stats
    return None


class MasterSampler(Sampler):
    """Master's figures per service and family, spawns per second, and its heartbeat."""

    name = "master"
    signals = ("heartbeat_age_s",)

    def __init__(self, ctx: Context, target: Target) -> None:
        super().__init__(ctx, target.name)
        self.target = target
        self.url = ctx.config.metrics_url
        self.heartbeat = HeartbeatTracker(update_interval=ctx.config.stats_update_interval,
                                          threshold=ctx.config.heartbeat_threshold)
        self._gap_event: Event | None = None
        self._forks: dict[str, tuple[float, float]] = {}  # service -> (master time, forks)
        self.io_timeout = max(ctx.config.interval, 2.0)

    def read(self) -> tuple[parsers.MasterStats | None, str]:
        if self.url:
            with urllib.request.urlopen(self.url, timeout=self.io_timeout) as resp:
                return parsers.parse_master_stats(resp.read().decode("utf-8", "replace")), "http"
        master_pid(self.target)
        if not os.path.exists(self.target.stats_file):
            raise Fault(f"no stats file {self.target.stats_file} (prometheus_enabled off?)")
        return read_master_report(self.target.stats_file), "file"

    def process(self, t: float, data: tuple[parsers.MasterStats | None, str]) -> None:
        stats, source = data
        updated = None if stats is None else stats.updated
        transition = self.heartbeat.observe(t, updated)
        self._record_heartbeat(t, transition)
        age = self.heartbeat.age(t)
        self.add("heartbeat_age_s", age, t, source=source)
        if stats is None:
            self.ctx.gaps.note(self.name, self.instance,
                               "stats file torn in 20 reads over 100 ms (master stopped "
                               "mid-write?)", t)
            return
        for (service, family), values in stats.values.items():
            for signal, value in values.items():
                self.add(signal, value, t, service=service, family=family)
        for service in {s for s, _f in stats.values}:
            forks = stats.service(service).get("master_forks_total")
            if forks is None or updated is None:
                continue
            previous = self._forks.get(service)
            if previous is None or updated > previous[0]:
                self._forks[service] = (updated, forks)
            if previous is not None and updated > previous[0]:
                rate = max(0.0, forks - previous[1]) / (updated - previous[0])
                self.add("spawns_per_s", rate, t, service=service)

    def _record_heartbeat(self, t: float, gap: Any) -> None:
        if gap is None:
            return
        if gap.end is None:
            self._gap_event = self.ctx.store.event(
                "heartbeat_gap", t=gap.start, instance=self.instance,
                last_update=gap.last_update, master_stall=True)
            return
        # stall_s is the event's own length (end - t): the number the gate and report show.
        detail = {"stall_s": round(gap.stall_s, 3), "between_writes_s": round(gap.gap, 3),
                  "last_update": gap.last_update}
        if self._gap_event is not None:
            self.ctx.store.close_event(self._gap_event, end=gap.end, **detail)
            self._gap_event = None
        else:
            self.ctx.store.event("heartbeat_gap", t=gap.start, end=gap.end,
                                 instance=self.instance, master_stall=True, **detail)

    def on_master_gone(self, t: float, why: str) -> None:
        # No heartbeat can be judged without master; a gap left open ends where we lost sight.
        if self._gap_event is not None:
            self.ctx.store.close_event(self._gap_event, end=t, master_gone=True)
            self._gap_event = None
        super().on_master_gone(t, why)


# -- master's children from /proc -----------------------------------------------------------------

class ProcessSampler(Sampler):
    """Children of master grouped by service; spawns and exits; CPU of the Cyrus tree; zombie
    children (exited, not yet reaped by master); live imapds per executable.

    ``process_spawns`` comes from master's own fork counter (``master_forks_total`` in its
    stats file, per service), so children that live less than the 1 s sampling interval count
    too; ``process_exits`` then follows from conservation (live before + spawned - live now;
    never below 0, a negative balance carried to the next sample). Without master's stats file both fall back to children seen appearing or
    disappearing in /proc between two samples (labels ``source="proc"``), which misses the
    short-lived ones. ``imapd_binaries``: live imapds per executable (``/proc/PID/exe``, label
    ``binary``; read once per process: an imapd that re-execs in place keeps its first), so a
    rotated binary shows how live processes spread over its copies."""

    name = "processes"
    signals = ("imapd_processes", "cyrus_cpu_percent")

    def __init__(self, ctx: Context, target: Target) -> None:
        super().__init__(ctx, target.name)
        self.target = target
        self._services: dict[tuple[int, int], str] = {}  # (pid, starttime) -> service
        self._previous: set[tuple[int, int]] | None = None
        self._cpu: tuple[float, int] | None = None  # (t, ticks)
        self._forks: dict[str, float] | None = None  # master_forks_total per service
        self._exit_balance: dict[str, float] = {}  # exits counted ahead, per service (<= 0)
        self._exe: dict[tuple[int, int], str] = {}  # executable of each live imapd
        self._stat_files = HeldStatFiles(held_stat_limit())
        # Thousands of children take longer than a second to read on busy cores.
        self.io_timeout = max(2 * ctx.config.interval, 2.0)

    def read(self) -> dict[str, Any]:
        pid = master_pid(self.target)
        master = read_pid_stat(pid)
        children: dict[tuple[int, int], parsers.PidStat] = {}  # (pid, starttime) -> stat
        known = set(self._services)
        environ: dict[int, tuple[bytes | None, bytes | None, str | None]] = {}
        exe: dict[tuple[int, int], str] = {}
        listed = parsers.parse_children(read_text(f"/proc/{pid}/task/{pid}/children"))
        for child in listed:
            try:
                stat = parsers.parse_pid_stat(self._stat_files.read(child))
            except (FileNotFoundError, ProcessLookupError, parsers.ParseError):  # just exited
                continue
            key = (child, stat.starttime)
            children[key] = stat
            if key not in known:
                environ[child] = self._naming(child)
            if stat.comm == "imapd" and stat.state != "Z":
                if key in self._exe:  # read once per process: thousands of them per second
                    exe[key] = self._exe[key]
                else:
                    with contextlib.suppress(OSError):
                        exe[key] = os.readlink(f"/proc/{child}/exe").removesuffix(" (deleted)")
        self._exe = exe
        self._stat_files.keep_only(set(listed))
        return {"master": master, "children": children, "environ": environ, "exe": exe,
                "forks": self._read_forks()}

    def _read_forks(self) -> dict[str, float] | None:
        """master_forks_total per service from master's stats file (None: not available)."""
        try:
            stats = read_master_report(self.target.stats_file, attempts=2)
        except OSError:
            return None
        if stats is None:
            return None
        forks = {service: stats.service(service).get("master_forks_total")
                 for service in {s for s, _f in stats.values}}
        return {s: v for s, v in forks.items() if v is not None} or None

    @staticmethod
    def _naming(child: int) -> tuple[bytes | None, bytes | None, str | None]:
        """What names a new child's service: its environment, else its command line."""
        env = cmd = None
        why = None
        try:
            with open(f"/proc/{child}/environ", "rb") as fh:
                env = fh.read()
        except PermissionError:
            why = f"permission denied on /proc/{child}/environ: services named from cmdline"
        except OSError:
            pass
        if not env:
            try:
                with open(f"/proc/{child}/cmdline", "rb") as fh:
                    cmd = fh.read()
            except OSError:
                pass
        return env, cmd, why

    def finish(self, t: float) -> None:
        self._stat_files.close()

    def process(self, t: float, data: dict[str, Any]) -> None:
        ticks = data["master"].cpu_ticks_with_children
        current: dict[tuple[int, int], str] = {}
        imapd = zombies = 0
        for key, stat in data["children"].items():
            service = self._services.get(key)
            if service is None:
                env, cmd, why = data["environ"].get(key[0], (None, None, None))
                if why:
                    self.ctx.gaps.note(self.name, self.instance, why, t)
                service = parsers.service_of(env, cmd)
                self._services[key] = service
            current[key] = service
            ticks += stat.cpu_ticks_with_children
            imapd += stat.comm == "imapd"
            zombies += stat.state == "Z"
        counts = Counter(current.values())
        for service, count in sorted(counts.items()):
            self.add("child_processes", count, t, service=service)
        self.add("imapd_processes", imapd, t)
        self.add("zombie_children", zombies, t)
        for binary, count in sorted(Counter(data["exe"].values()).items()):
            self.add("imapd_binaries", count, t, binary=binary)
        forks = data["forks"]
        if self._previous is not None:
            exited = self._previous - current.keys()
            before = Counter(self._services[k] for k in self._previous)
            seen_spawns = Counter(current[k] for k in current.keys() - self._previous)
            seen_exits = Counter(self._services[k] for k in exited)  # named when first seen
            for service in sorted(counts.keys() | seen_exits.keys()):
                if forks is not None and self._forks is not None and service in forks:
                    spawned = max(0.0, forks[service] - self._forks.get(service, forks[service]))
                    # The counter and /proc are read a moment apart: a child counted as forked
                    # may not be listed yet. Carry a negative balance to the next sample, so
                    # the sum over the run stays exact and no sample is below 0.
                    ended = (before[service] + spawned - counts[service]
                             + self._exit_balance.get(service, 0.0))
                    self._exit_balance[service] = min(0.0, ended)
                    ended = max(0.0, ended)
                    self.add("process_spawns", spawned, t, service=service, source="master")
                    self.add("process_exits", ended, t, service=service, source="master")
                else:
                    self.add("process_spawns", seen_spawns[service], t, service=service,
                             source="proc")
                    self.add("process_exits", seen_exits[service], t, service=service,
                             source="proc")
            for key in exited:
                self._services.pop(key, None)
        self._previous = set(current)
        if forks is not None:
            self._forks = forks
        if self._cpu is not None and t > self._cpu[0]:
            percent = 100.0 * (ticks - self._cpu[1]) / CLK_TCK / (t - self._cpu[0])
            self.add("cyrus_cpu_percent", max(0.0, percent), t)
        self._cpu = (t, ticks)


# -- listen backlog ---------------------------------------------------------------------------------

Listeners = tuple[list[parsers.ListenSocket], dict[int, int]]  # sockets, port -> backlog limit


def read_listeners_netlink() -> Listeners:
    """The host's TCP listeners (v4 and v6) and their backlog limits, from sock_diag.

    The C-level socket class is used on purpose: this runs in an OS thread, where gevent's
    patched socket would need a hub of its own."""
    import _socket

    sockets: list[parsers.ListenSocket] = []
    limits: dict[int, int] = {}
    sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW, 4)  # NETLINK_SOCK_DIAG
    try:
        sock.settimeout(1.0)
        for seq, family in enumerate((_socket.AF_INET, _socket.AF_INET6), 1):
            sock.sendto(parsers.inet_diag_listen_request(family, seq), (0, 0))
            done = False
            while not done:
                # Each recv is one datagram of whole messages: parse it once, as it comes.
                found, found_limits, done = parsers.parse_inet_diag(sock.recv(65536))
                sockets += found
                for port, limit in found_limits.items():
                    limits[port] = limits.get(port, 0) + limit
    finally:
        sock.close()
    return sockets, limits


def read_listeners_proc() -> Listeners:
    """The same from /proc/net/tcp and tcp6 (no backlog limits there)."""
    texts = [read_text("/proc/net/tcp")]
    if os.path.exists("/proc/net/tcp6"):
        texts.append(read_text("/proc/net/tcp6"))
    return [s for text in texts for s in parsers.parse_proc_net_tcp(text)], {}


class BacklogSampler(Sampler):
    """The accept queue of the instance's listening socket (and its limit, master -l).

    sock_diag (netlink) lists only listeners; /proc/net/tcp, the fallback, lists every socket
    of the host (thousands of TIME_WAITs under churn). Measured with
    benchmarks/collectors_cost.py when sock_diag was added: 0.13 % of a core through netlink
    against 1.44 % through /proc/net/tcp."""

    name = "backlog"
    signals = ("listen_queue",)

    def __init__(self, ctx: Context, target: Target) -> None:
        super().__init__(ctx, target.name)
        self.target = target
        self.netlink = True

    def read(self) -> tuple[str, Listeners]:
        if self.netlink:
            try:
                return "netlink", read_listeners_netlink()
            except (OSError, parsers.ParseError):
                self.netlink = False
        return "proc", read_listeners_proc()

    def process(self, t: float, data: tuple[str, Listeners]) -> None:
        source, (sockets, limits) = data
        if source == "proc":
            self.ctx.gaps.note(self.name, None, "sock_diag unavailable: reading /proc/net/tcp", t)
        queue = parsers.listen_queue(sockets, self.target.port)
        if queue is None:
            raise Fault(f"nothing listens on port {self.target.port} (server stopped?)")
        backlog = limits.get(self.target.port, self.target.listen_backlog)
        labels = {} if backlog is None else {"backlog": backlog}
        self.add("listen_queue", queue, t, **labels)


# -- the machine ------------------------------------------------------------------------------------

def tree_cpu_ticks(pid: int) -> int:
    """CPU ticks of ``pid``, its reaped children and its live children (one level)."""
    total = read_pid_stat(pid).cpu_ticks_with_children
    try:
        children = parsers.parse_children(read_text(f"/proc/{pid}/task/{pid}/children"))
    except OSError:
        children = []
    for child in children:
        with contextlib.suppress(OSError):
            total += read_pid_stat(child).cpu_ticks_with_children
    return total


class MachineSampler(Sampler):
    """Host-wide: load, runnable/blocked, forks, listen overflows, generator CPU, the kernel's
    CPU share, busy CPU share, context switches per second, the process table's size."""

    name = "machine"
    signals = ("load1", "procs_running", "procs_blocked")

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx, None)
        self.generator_pid = os.getpid()
        self._previous: tuple[float, parsers.ProcStat, int] | None = None
        self._netstat0: dict[str, int] | None = None

    def read(self) -> dict[str, Any]:
        return {"loadavg": read_text("/proc/loadavg"), "stat": read_text("/proc/stat"),
                "netstat": read_text("/proc/net/netstat"),
                "generator": tree_cpu_ticks(self.generator_pid)}

    def process(self, t: float, data: dict[str, Any]) -> None:
        load = parsers.parse_loadavg(data["loadavg"])
        stat = parsers.parse_proc_stat(data["stat"])
        netstat = parsers.parse_netstat(data["netstat"])
        self.add("load1", load.load1, t)
        self.add("procs_running", stat.procs_running, t)
        self.add("procs_blocked", stat.procs_blocked, t)
        # Scheduling entities (threads included) on the host: the kernel's process table.
        self.add("host_processes", load.total, t)
        if self._netstat0 is None:
            self._netstat0 = netstat
        for signal, key in (("listen_overflows", "TcpExt.ListenOverflows"),
                            ("listen_drops", "TcpExt.ListenDrops")):
            if key in netstat:
                # Since the collectors started: host-wide (all listeners of this namespace).
                self.add(signal, netstat[key] - self._netstat0.get(key, 0), t, scope="host")
        if self._previous is not None:
            t0, stat0, gen0 = self._previous
            dt = t - t0
            if dt > 0:
                self.add("host_forks_per_s", (stat.processes - stat0.processes) / dt, t)
                self.add("generator_cpu_percent",
                         100.0 * (data["generator"] - gen0) / CLK_TCK / dt, t)
                self.add("context_switches_per_s",
                         (stat.context_switches - stat0.context_switches) / dt, t)
            ticks = stat.cpu_ticks - stat0.cpu_ticks
            if ticks > 0:  # shares of all CPUs' time since the last sample
                self.add("host_cpu_system_percent",
                         100.0 * (stat.cpu_system_ticks - stat0.cpu_system_ticks) / ticks, t)
                self.add("host_cpu_busy_percent",
                         100.0 - 100.0 * (stat.cpu_idle_ticks - stat0.cpu_idle_ticks) / ticks, t)
        self._previous = (t, stat, data["generator"])


# -- filesystem canary ------------------------------------------------------------------------------

def canary_once(directory: str) -> float:
    """Seconds to create, write, fsync and unlink a small file in ``directory``."""
    path = os.path.join(directory, f".loadtest-canary-{os.getpid()}-{threading.get_ident()}")
    start = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, b"cyrus-loadtest canary\n")
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(path)
    return time.perf_counter() - start


class CanarySampler(Sampler):
    name = "canary"

    def __init__(self, ctx: Context, target: Target, kind: str, directory: str) -> None:
        super().__init__(ctx, target.name)
        self.kind = kind
        self.directory = directory
        self.signal = f"canary_{kind}_ms"
        self.signals = (self.signal,)
        self.name = f"canary_{kind}"
        self.io_timeout = ctx.config.canary_timeout

    def read(self) -> float:
        if not Path(self.directory).is_dir():
            raise Fault(f"{self.kind} directory {self.directory} does not exist")
        return canary_once(self.directory)

    def process(self, t: float, seconds: float) -> None:
        self.add(self.signal, seconds * 1000.0, t, dir=self.directory)

    def on_timeout(self, t: float, exc: TimeoutError) -> None:
        # A filesystem that does not answer is the finding, not a gap: record the wait so far.
        self.add(self.signal, self.io_timeout * 1000.0, t, dir=self.directory, outcome="timeout")


# -- Cyrus's own error lines ------------------------------------------------------------------

CYRUS_ERRORS_SIGNAL = "cyrus_errors"
ERROR_LOG_READ_MAX = 4 << 20  # bytes read per tick at most: a flooded log cannot hold the clock


class CyrusErrorSampler(Sampler):
    """IOERROR, DBERROR and fatal lines the instance logged since the collectors started, as a
    counter (Cassandane fails a test on any of them). No labels: the gate's `increase` follows
    one series per label set, and `deploy down` names the kinds."""

    name = "errors"
    signals = (CYRUS_ERRORS_SIGNAL,)

    def __init__(self, ctx: Context, target: Target) -> None:
        super().__init__(ctx, target.name)
        self.path = target.log_file
        self._offset: int | None = None  # None: start at the end (earlier lines are not ours)
        self._partial = b""  # a line not yet complete
        self.counts: Counter[str] = Counter()

    def read(self) -> Counter[str]:
        with open(self.path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if self._offset is None or size < self._offset:  # first read, or log truncated
                self._offset, self._partial = (size if self._offset is None else 0), b""
            fh.seek(self._offset)
            data = fh.read(ERROR_LOG_READ_MAX)
        self._offset += len(data)
        complete, newline, self._partial = (self._partial + data).rpartition(b"\n")
        return parsers.count_cyrus_errors(complete + newline)

    def process(self, t: float, new: Counter[str]) -> None:
        self.counts.update(new)
        self.add(CYRUS_ERRORS_SIGNAL, float(sum(self.counts.values())), t)

# -- inode turnover --------------------------------------------------------------------------------

class InodeSampler(Sampler):
    """Files created and removed per directory of the instance (its root and volatile root,
    without log/), counted by inotify, so short-lived files count: ``inode_creates_per_s`` and
    ``inode_unlinks_per_s`` with label ``dir`` ("run/proc", "run/lock", "conf/db", ...). A rename
    counts as a removal where it leaves and a creation where it lands (Cyrus writes its
    databases to a new file and renames it over the old one)."""

    name = "inodes"
    signals = ("inode_creates_per_s",)

    def __init__(self, ctx: Context, target: Target) -> None:
        super().__init__(ctx, target.name)
        self.target = target
        self.watcher: Any = None
        self._last: float | None = None
        self._seen: set[str] = set()

    def read(self) -> Any:
        if self.watcher is None:
            from loadtest.collectors.inotify import Watcher

            roots = [Path(r) for r in self.target.inode_roots if Path(r).is_dir()]
            if not roots:
                raise Fault("no instance directory to watch")
            self.watcher = Watcher(roots, skip=("log",))
        return self.watcher.drain()

    def process(self, t: float, turnover: Any) -> None:
        if turnover.overflowed:
            self.ctx.gaps.note(self.name, self.instance, "inotify queue overflowed: counts are "
                               "low (raise fs.inotify.max_queued_events)", t)
        last, self._last = self._last, t
        if last is None or t <= last:
            return  # the first drain only starts the watch
        self._seen |= set(turnover.created) | set(turnover.removed)
        for group in sorted(self._seen):
            self.add("inode_creates_per_s", turnover.created[group] / (t - last), t, dir=group)
            self.add("inode_unlinks_per_s", turnover.removed[group] / (t - last), t, dir=group)

    def finish(self, t: float) -> None:
        if self.watcher is not None:
            self.watcher.close()


# -- replication lag ------------------------------------------------------------------------------

REPLICATION_TIMEOUT_S = 20.0
REPLICATION_POLL_S = 0.05


def measure_replication_lag(master: Target, replica: Target, user: Credential, token: str,
                            timeout: float = REPLICATION_TIMEOUT_S) -> float:
    """APPEND a message with a unique Subject to the user's INBOX on the master slot, then look
    for it on the replica slot as the same user (SELECT, SEARCH SUBJECT) until it is there:
    seconds from the APPEND's OK to the first sighting. TimeoutError after ``timeout``."""
    import imaplib

    message = (f"From: cyrus-loadtest <loadtest@localhost>\r\nSubject: loadtest-lag {token}\r\n"
               "\r\nreplication lag probe\r\n").encode()
    with imaplib.IMAP4(master.host, master.port, timeout=timeout) as conn:
        conn.login(user.username, user.password)
        conn.append("INBOX", None, None, message)
        appended = time.monotonic()
    with imaplib.IMAP4(replica.host, replica.port, timeout=timeout) as conn:
        conn.login(user.username, user.password)
        while True:
            try:  # the mailbox itself may not have reached the replica yet
                conn.select("INBOX", readonly=True)
                _typ, data = conn.search(None, "SUBJECT", f'"{token}"')
                if data and data[0] and data[0].split():
                    return time.monotonic() - appended
            except imaplib.IMAP4.error:
                pass
            if time.monotonic() - appended > timeout:
                raise TimeoutError(f"message not on {replica.name} after {timeout:.0f} s")
            time.sleep(REPLICATION_POLL_S)


class ReplicationSampler:
    """Replication lag of one store, master slot to replica slot (``replication_lag_s``, on the
    master's instance with labels ``replica`` and ``store``): one measurement at a time, started
    on the clock whenever none is running (so about one per sync interval plus the lag). A
    message that never arrives is recorded as the whole wait, ``outcome="timeout"``."""

    name = "replication"

    def __init__(self, ctx: Context, master: Target, replica: Target, store: str | None) -> None:
        self.ctx = ctx
        self.master = master
        self.replica = replica
        self.store = store or master.name
        # Not the probe's or the held session's user (the first two) when there is a third.
        self.user = master.users[-1] if master.users else None
        self._busy = False
        self._count = itertools.count()
        if self.user is None:
            ctx.gaps.note(self.name, master.name, "no users on the master slot: no lag probe",
                          ctx.clock.now())

    def tick(self, t: float) -> None:
        if self._busy or self.ctx.runtime.closed or self.user is None:
            return
        self._busy = True
        self.ctx.runtime.spawn(self._measure, t)

    def _measure(self, t: float) -> None:
        assert self.user is not None
        labels = {"replica": self.replica.name, "store": self.store}
        token = f"{os.getpid()}-{self.master.name}-{next(self._count)}-{time.time():.3f}"
        try:
            lag = measure_replication_lag(self.master, self.replica, self.user, token)
            self.ctx.store.add("replication_lag_s", lag, t=t, instance=self.master.name, **labels)
        except TimeoutError as exc:
            self.ctx.store.add("replication_lag_s", REPLICATION_TIMEOUT_S, t=t,
                               instance=self.master.name, outcome="timeout", why=str(exc), **labels)
        except Exception as exc:  # refused, lost, rejected: a gap, never the end of the run
            self.ctx.store.add("replication_lag_s", None, t=t, instance=self.master.name,
                               outcome="failed", why=f"{exc.__class__.__name__}: {exc}", **labels)
        finally:
            self._busy = False

    def finish(self, t: float) -> None:
        """Nothing held open between measurements."""


# -- responsiveness probes and stall detection ------------------------------------------------------

PROBE_WINDOW_S = 120.0


class ProbeSampler:
    """Fresh-connection probes and the held session's NOOPs on one fixed schedule, plus the
    stall analysis over both (once a second)."""

    name = "probe"

    def __init__(self, ctx: Context, target: Target) -> None:
        self.ctx = ctx
        self.target = target
        self.instance = target.name
        config = ctx.config
        self.timeout = config.probe_timeout
        users = list(target.users)
        self.probe_user = users[0] if users else None
        self._lock = threading.Lock()
        self._probes: deque[ProbeResult] = deque()
        self._pending: set[float] = set()  # scheduled times of probes still running
        self._held: deque[HeldResult] = deque()
        self._stall_events: dict[float, Event] = {}
        # Closed stalls as (start, end): once the window drops a closed stall's first probes,
        # its remaining late probes must not read as a new stall.
        self._closed_stalls: list[tuple[float, float]] = []
        self._ticks = 0
        self._analyse_every = max(1, round(config.probe_rate))
        held_user = users[1] if len(users) > 1 else self.probe_user
        self.held = None if held_user is None else HeldSession(
            target.host, target.port, held_user, self.timeout, ctx.runtime.spawn, self._on_noop)
        if self.probe_user is None:
            ctx.gaps.note(self.name, self.instance,
                          "no users in the deployment: probes stop at the greeting, no held "
                          "session", ctx.clock.now())

    def tick(self, t: float) -> None:
        with self._lock:
            self._pending.add(t)
        self.ctx.runtime.spawn(self._probe, t)
        if self.held is not None:
            self.held.noop(t)
        self._ticks += 1
        if self._ticks % self._analyse_every == 0:
            self.analyse(self.ctx.clock.now())

    def _probe(self, t: float) -> None:
        out = probe_once(self.target.host, self.target.port, self.probe_user, self.timeout)
        add = self.ctx.store.add
        inst = self.instance
        steps = (("connect", out.connect, "connect_latency_ms"),
                 ("greeting", out.greeting, "greeting_latency_ms"),
                 ("login", out.login, "login_latency_ms"))
        for step, seconds, signal in steps:
            if seconds is not None:
                add(signal, seconds * 1000.0, t=t, instance=inst)
            elif out.failed_step == step:
                if out.timed_out:
                    # A hang is a result: the probe waited its whole budget.
                    add(signal, self.timeout * 1000.0, t=t, instance=inst, outcome="timeout",
                        why=out.failure)
                else:
                    add(signal, None, t=t, instance=inst, outcome="failed", why=out.failure)
                break
        if out.failed_step in ("connect", "greeting"):
            elapsed = self.timeout if out.timed_out else None
            greeted = False
        else:
            elapsed, greeted = out.greeting, True
        if elapsed is None:
            elapsed = max(0.0, self.ctx.clock.now() - t)
        with self._lock:
            self._pending.discard(t)
            self._probes.append(ProbeResult(t, elapsed, greeted))

    def _on_noop(self, t: float, seconds: float | None, why: str | None) -> None:
        # An answer; a timeout (the wait so far, marked); or a failure (a gap).
        labels = {} if why is None else {"outcome": "failed" if seconds is None else "timeout",
                                         "why": why}
        self.ctx.store.add("held_noop_latency_ms", None if seconds is None else seconds * 1000.0,
                           t=t, instance=self.instance, **labels)
        with self._lock:
            self._held.append(HeldResult(t, seconds if why is None else None))

    def analyse(self, now: float) -> None:
        with self._lock:
            horizon = min([now - PROBE_WINDOW_S, *self._stall_events])
            while self._probes and self._probes[0].start < horizon:
                self._probes.popleft()
            while self._held and self._held[0].start < horizon:
                self._held.popleft()
            self._closed_stalls = [c for c in self._closed_stalls if c[1] >= horizon]
            probes = list(self._probes) + [ProbeResult(s, None, False) for s in self._pending]
            held = list(self._held)
        config = self.ctx.config
        stalls = find_stalls(probes, held, now=now, greeting_threshold=config.greeting_threshold,
                             held_threshold=config.held_threshold)
        self._reanchor(stalls)
        for stall in stalls:
            self._reconcile(stall)

    def _reanchor(self, stalls: list[Any]) -> None:
        """A probe still waiting past the threshold counts as late, but its greeting may turn
        out to have come in time (its LOGIN kept it waiting). A stall it opened then starts at
        its next late probe: the open event moves there instead of staying open to the run's
        end beside a second event for the same stall; with no late probe after it, it was no
        stall and its event (never written yet) goes."""
        current = {stall.start for stall in stalls}
        for start, event in sorted(self._stall_events.items()):
            if start in current:
                continue
            del self._stall_events[start]
            successor = next((stall.start for stall in stalls  # in start order
                              if stall.start > start and stall.start not in self._stall_events
                              and not self._closed(stall.start)), None)
            if successor is None:
                self.ctx.store.discard_event(event)
            else:
                event.t = successor
                self._stall_events[successor] = event

    def _closed(self, start: float) -> bool:
        return any(begin <= start <= end for begin, end in self._closed_stalls)

    def _reconcile(self, stall: Any) -> None:
        if self._closed(stall.start):
            return
        event = self._stall_events.get(stall.start)
        detail = {"probes": stall.probes, "timeouts": stall.timeouts,
                  "held_session": stall.held_session, "held_noop_max_ms": stall.held_noop_max_ms,
                  "threshold_s": self.ctx.config.greeting_threshold}
        if event is None:
            if self.held is not None and stall.held_session == "failing":
                return  # the held session failed too: an outage (seen as gaps), not a stall
            event = self.ctx.store.event("stall", t=stall.start, instance=self.instance,
                                         **detail)
            self._stall_events[stall.start] = event
        if stall.end is not None:
            self.ctx.store.close_event(event, end=stall.end,
                                       duration_s=round(stall.end - stall.start, 3), **detail)
            self._stall_events.pop(stall.start, None)
            self._closed_stalls.append((stall.start, stall.end))
        else:
            event.detail.update(detail)

    def finish(self, t: float) -> None:
        if self.held is not None:
            self.held.close()
        self.analyse(t)


def make_target(instance: Any, users: list[Credential]) -> Target:
    """A Target from a deployment InstanceInfo."""
    options = instance.options or {}
    return Target(name=instance.name, host=instance.host, port=int(instance.port),
                  pid_file=instance.pid_file, master_pid=instance.master_pid,
                  stats_file=instance.stats_file, data_dir=instance.data_dir,
                  proc_dir=instance.proc_dir, listen_backlog=options.get("listen_backlog"),
                  users=tuple(users), log_file=instance.log_file,
                  inode_roots=tuple(r for r in (instance.root, instance.volatile_root) if r))
