"""Pure parsers for what the collectors read: master's Prometheus stats, /proc files.

No I/O, no Locust, no gevent: every function takes the text (or bytes) of one file and returns
plain data, so each is tested on literal text copied from a real machine.
"""

from __future__ import annotations

import ipaddress
import os
import re
import struct
from collections import Counter
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

# Metric names master writes into {configdirectory}/stats/master.txt (Cyrus 3.6 master.c).
MASTER_METRICS = {
    "cyrus_master_forks_total": "master_forks_total",
    "cyrus_master_ready_workers": "ready_workers",
    "cyrus_master_active_children": "active_children",
    "cyrus_master_max_children": "max_children",
    "cyrus_master_ready_fails_total": "ready_fails_total",
}

TCP_LISTEN = "0A"  # st column of /proc/net/tcp for a listening socket


class ParseError(ValueError):
    """The text is not what the file is supposed to contain."""


# -- Prometheus text (master's stats file, or a /metrics page) -------------------------------

@dataclass(frozen=True, slots=True)
class PromSample:
    name: str
    labels: dict[str, str]
    value: float
    timestamp: float | None  # unix seconds (master writes milliseconds; the parser converts)


def parse_prometheus(text: str) -> list[PromSample]:
    """Every sample of a Prometheus text exposition, in order."""
    try:
        return [PromSample(s.name, dict(s.labels), float(s.value),
                           None if s.timestamp is None else float(s.timestamp))
                for family in text_string_to_metric_families(text)
                for s in family.samples]
    except ValueError as exc:
        raise ParseError(f"not Prometheus text: {exc}") from None


@dataclass(frozen=True, slots=True)
class MasterStats:
    """Master's per-service figures, keyed by (service, family), plus its last write time."""

    values: dict[tuple[str, str], dict[str, float]]  # (service, family) -> signal -> value
    updated: float | None  # newest timestamp in the file: when master last completed its loop

    def service(self, name: str) -> dict[str, float]:
        """Sum over address families (ipv4 + ipv6 listeners of one service)."""
        total: dict[str, float] = {}
        for (service, _family), signals in self.values.items():
            if service == name:
                for signal, value in signals.items():
                    total[signal] = total.get(signal, 0.0) + value
        return total


def parse_master_stats(text: str) -> MasterStats:
    return _master_stats(parse_prometheus(text))


def _master_stats(samples: list[PromSample]) -> MasterStats:
    values: dict[tuple[str, str], dict[str, float]] = {}
    updated: float | None = None
    for sample in samples:
        if sample.timestamp is not None and (updated is None or sample.timestamp > updated):
            updated = sample.timestamp
        signal = MASTER_METRICS.get(sample.name)
        if signal is None:
            continue
        key = (sample.labels.get("service", ""), sample.labels.get("family", ""))
        values.setdefault(key, {})[signal] = sample.value
    return MasterStats(values, updated)


# One sample line of master's own report (master.c do_prom_report): name, labels, value, ms.
_MASTER_LINE = re.compile(r'([a-z_]+)\{service="([^"]*)",family="([^"]*)"\} (\S+) (\d+)')


def parse_master_report(text: str) -> MasterStats | None:
    """Master's own stats file (stats/master.txt); None when the read was torn by master
    rewriting it meanwhile. Master writes the report in place (one write, then ftruncate) with
    the same millisecond timestamp on every sample, so a read that caught a write halfway has
    samples of two reports (two timestamps), a line cut in two or no final newline. An empty
    file (master has not written yet) counts as whole. Master's fixed line format is read with
    one regular expression, a tenth of the general Prometheus parser's cost; a line in another
    format sends the text to that parser."""
    if not text:
        return MasterStats({}, None)
    if not text.endswith("\n"):
        return None
    values: dict[tuple[str, str], dict[str, float]] = {}
    stamps: set[str] = set()
    try:
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            match = _MASTER_LINE.fullmatch(line)
            if match is None:
                raise ValueError(line)
            name, service, family, value, stamp = match.groups()
            stamps.add(stamp)
            signal = MASTER_METRICS.get(name)
            if signal is not None:
                values.setdefault((service, family), {})[signal] = float(value)
    except ValueError:
        try:
            samples = parse_prometheus(text)
        except ParseError:
            return None
        whole = len({sample.timestamp for sample in samples}) <= 1
        return _master_stats(samples) if whole else None
    if len(stamps) > 1:
        return None
    return MasterStats(values, int(stamps.pop()) / 1000.0 if stamps else None)


def master_report_whole(text: str) -> bool:
    """Whether ``text`` is one whole report of master's (see :func:`parse_master_report`)."""
    return parse_master_report(text) is not None


# -- /proc/net/tcp and tcp6 -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ListenSocket:
    address: str
    port: int
    queue: int  # connections completed by the kernel, not yet accepted (rx_queue)
    inode: int
    # The queue's limit is not in /proc/net/tcp (tx_queue of a listener is 0): it is master -l.


def _decode_address(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr)
    # The kernel prints each 32-bit word in host (little-endian) byte order.
    fixed = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(fixed))


def parse_proc_net_tcp(text: str) -> list[ListenSocket]:
    """Listening sockets of /proc/net/tcp or /proc/net/tcp6."""
    sockets = []
    lines = text.splitlines()
    if not lines or not lines[0].split() or lines[0].split()[0] != "sl":
        raise ParseError("not /proc/net/tcp: no 'sl' header")
    for line in lines[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != TCP_LISTEN:
            continue
        addr, port = fields[1].split(":")
        _tx, rx = fields[4].split(":")
        sockets.append(ListenSocket(_decode_address(addr), int(port, 16), int(rx, 16),
                                    int(fields[9])))
    return sockets


def listen_queue(sockets: list[ListenSocket], port: int) -> int | None:
    """Accept-queue length summed over the sockets listening on ``port``; None if none is."""
    matching = [s for s in sockets if s.port == port]
    if not matching:
        return None
    return sum(s.queue for s in matching)


# -- /proc/net/netstat, /proc/stat, /proc/loadavg ---------------------------------------------

def parse_netstat(text: str) -> dict[str, int]:
    """Counters of /proc/net/netstat (header line + value line per group), as 'TcpExt.Name'."""
    counters: dict[str, int] = {}
    lines = text.splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        names, numbers = header.split(), values.split()
        if not names or names[0] != numbers[0]:
            raise ParseError(f"/proc/net/netstat: header {names[:1]} without its values")
        group = names[0].rstrip(":")
        for name, number in zip(names[1:], numbers[1:], strict=False):
            counters[f"{group}.{name}"] = int(number)
    return counters


@dataclass(frozen=True, slots=True)
class ProcStat:
    processes: int  # forks since boot
    procs_running: int
    procs_blocked: int
    cpu_ticks: int  # all CPUs, all states (for the collectors' own share)
    context_switches: int = 0  # since boot (ctxt)
    cpu_system_ticks: int = 0  # system + irq + softirq: the kernel's share
    cpu_idle_ticks: int = 0  # idle + iowait


def parse_proc_stat(text: str) -> ProcStat:
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        parts = line.split()
        if parts:
            fields[parts[0]] = parts[1:]
    try:
        cpu = [int(x) for x in fields["cpu"]]
        # cpu: user nice system idle iowait irq softirq steal guest guest_nice
        return ProcStat(int(fields["processes"][0]), int(fields["procs_running"][0]),
                        int(fields["procs_blocked"][0]), sum(cpu),
                        int(fields["ctxt"][0]) if "ctxt" in fields else 0,
                        cpu[2] + sum(cpu[5:7]), cpu[3] + (cpu[4] if len(cpu) > 4 else 0))
    except (KeyError, IndexError, ValueError) as exc:
        raise ParseError(f"/proc/stat: missing or bad field {exc}") from None


@dataclass(frozen=True, slots=True)
class LoadAvg:
    load1: float
    load5: float
    load15: float
    runnable: int
    total: int


def parse_loadavg(text: str) -> LoadAvg:
    try:
        l1, l5, l15, ratio, _last = text.split()
        runnable, total = ratio.split("/")
        return LoadAvg(float(l1), float(l5), float(l15), int(runnable), int(total))
    except ValueError:
        raise ParseError(f"/proc/loadavg: unexpected {text.strip()!r}") from None


# -- /proc/PID/stat, environ, cmdline, children ------------------------------------------------

@dataclass(frozen=True, slots=True)
class PidStat:
    pid: int
    comm: str
    state: str
    ppid: int
    utime: int  # clock ticks
    stime: int
    cutime: int  # reaped children's CPU (master reaps its imapds: their CPU lands here)
    cstime: int
    starttime: int  # ticks after boot: with pid, identifies a process across pid reuse

    @property
    def cpu_ticks_with_children(self) -> int:
        return self.utime + self.stime + self.cutime + self.cstime


def parse_pid_stat(text: str | bytes) -> PidStat:
    """/proc/PID/stat (as text or as the bytes read from it)."""
    # comm may contain spaces and parentheses: it ends at the last ')'.
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        head, rest = text.rsplit(")", 1)
        pid, comm = head.split("(", 1)
        f = rest.split(None, 21)  # up to starttime, the 22nd field
        return PidStat(int(pid), comm, f[0], int(f[1]), int(f[11]), int(f[12]), int(f[13]),
                       int(f[14]), int(f[19]))
    except (ValueError, IndexError):
        raise ParseError(f"/proc/PID/stat: unexpected {text[:80]!r}") from None


def parse_children(text: str) -> list[int]:
    """/proc/PID/task/TID/children: space-separated pids."""
    return [int(x) for x in text.split()]


def environ_value(data: bytes, name: bytes) -> str | None:
    """One variable of a /proc/PID/environ (NUL-separated NAME=value), without decoding the
    others: a child's environment is a few kilobytes, read for every new child."""
    key = name + b"="
    if data.startswith(key):
        start = len(key)
    else:
        found = data.find(b"\0" + key)
        if found < 0:
            return None
        start = found + 1 + len(key)
    end = data.find(b"\0", start)
    return data[start:end if end >= 0 else len(data)].decode(errors="replace")


def service_of(environ: bytes | None, cmdline: bytes | None) -> str:
    """The Cyrus service a master child serves: CYRUS_SERVICE from its environment (master sets
    it before exec), else the program name from its command line."""
    if environ:
        service = environ_value(environ, b"CYRUS_SERVICE")
        if service:
            return service
    if cmdline:
        argv0 = cmdline.split(b"\0", 1)[0].decode(errors="replace")
        if argv0:
            return os.path.basename(argv0.split()[0])
    return "unknown"


# -- sock_diag (netlink): listening sockets without reading every socket of the host -----------

NLMSG_DONE = 3
NLMSG_ERROR = 2
SOCK_DIAG_BY_FAMILY = 20
TCP_LISTEN_STATE = 10
_NLMSGHDR = struct.Struct("=IHHII")
_DIAG_MSG = struct.Struct("=BBBB2s2s16s16sI8sIIIII")  # inet_diag_msg, 72 bytes


def inet_diag_listen_request(family: int, seq: int = 1) -> bytes:
    """A dump request for the TCP listeners of one address family (AF_INET or AF_INET6)."""
    body = struct.pack("=BBBBI48s", family, 6, 0, 0, 1 << TCP_LISTEN_STATE, b"")
    flags = 0x1 | 0x300  # NLM_F_REQUEST | NLM_F_DUMP
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, flags, seq, 0) + body


def parse_inet_diag(data: bytes) -> tuple[list[ListenSocket], dict[int, int], bool]:
    """Listeners in one or more netlink replies: (sockets, port -> backlog limit, done).

    For a listener the kernel reports the accept queue in idiag_rqueue and its limit (master -l)
    in idiag_wqueue; /proc/net/tcp shows only the former, after every other socket."""
    sockets: list[ListenSocket] = []
    limits: dict[int, int] = {}
    done = False
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size:
            raise ParseError(f"netlink message of length {length}")
        if kind == NLMSG_DONE:
            done = True
        elif kind == NLMSG_ERROR:
            code = struct.unpack_from("=i", data, offset + _NLMSGHDR.size)[0]
            raise ParseError(f"sock_diag error {-code}")
        elif kind == SOCK_DIAG_BY_FAMILY:
            (family, _state, _timer, _retrans, sport, _dport, src, _dst, _if, _cookie, _expires,
             rqueue, wqueue, _uid, inode) = _DIAG_MSG.unpack_from(data, offset + _NLMSGHDR.size)
            port = int.from_bytes(sport, "big")
            raw = src[:4] if family == 2 else src
            sockets.append(ListenSocket(str(ipaddress.ip_address(raw)), port, rqueue, inode))
            limits[port] = limits.get(port, 0) + wqueue
        offset += (length + 3) & ~3
    return sockets, limits, done


# -- Cyrus's syslog: error lines, as Cassandane checks them at every stop -----------------------

# IOERROR/DBERROR prefix Cyrus's I/O and database errors; fatal() logs "Fatal error: ...".
CYRUS_ERROR = re.compile(rb"\b(IOERROR|DBERROR)\b|\b([Ff]atal error)\b")


def count_cyrus_errors(data: bytes) -> Counter[str]:
    """Error lines in syslog text by kind ("IOERROR", "DBERROR", "fatal"); a line counts once."""
    counts: Counter[str] = Counter()
    for line in data.splitlines():
        match = CYRUS_ERROR.search(line)
        if match:
            counts[match.group(1).decode() if match.group(1) else "fatal"] += 1
    return counts
