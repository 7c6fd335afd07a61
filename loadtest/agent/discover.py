"""Find an existing Cyrus from its own configuration: imapd.conf, cyrus.conf and master's command
line. Pure parsing functions (tested on literal text) plus `discover`, which reads the files.

Debian's defaults when nothing is given: /etc/imapd.conf, /etc/cyrus.conf, pid file
/run/cyrus-master.pid, listen backlog 32 (master -l / listen_queue_backlog).
"""

from __future__ import annotations

import os
import shlex
import socket
from dataclasses import dataclass

from loadtest.collectors.samplers import Target
from loadtest.errors import UsageError

DEBIAN_IMAPD_CONF = "/etc/imapd.conf"
DEBIAN_CYRUS_CONF = "/etc/cyrus.conf"
DEBIAN_PID_FILE = "/run/cyrus-master.pid"
CYRUS_DEFAULT_BACKLOG = 32


def parse_imapd_conf(text: str) -> dict[str, str]:
    """``key: value`` lines of an imapd.conf; comments and blank lines skipped, last one wins."""
    options: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if sep and key.strip():
            options[key.strip()] = value.strip()
    return options


@dataclass(frozen=True)
class Service:
    name: str
    cmd: list[str]
    listen: str
    attrs: dict[str, str]


def parse_cyrus_conf_services(text: str) -> list[Service]:
    """The entries of the SERVICES section of a cyrus.conf."""
    services: list[Service] = []
    section = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if line.endswith("{"):
            section = line[:-1].strip().upper()
            continue
        if line == "}":
            section = None
            continue
        if section != "SERVICES":
            continue
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        if len(words) < 2:
            continue
        attrs = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        services.append(Service(words[0], shlex.split(attrs.pop("cmd", "")),
                                attrs.pop("listen", ""), attrs))
    return services


def imap_service(services: list[Service]) -> Service | None:
    """The plaintext IMAP service: cmd runs imapd without -s (which is imaps)."""
    for service in services:
        if service.cmd and os.path.basename(service.cmd[0]) == "imapd" and "-s" not in service.cmd:
            return service
    return None


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port``, ``port`` or a service name, as master reads listen=."""
    host, port = "", listen
    if listen.startswith("["):
        host, _, port = listen[1:].partition("]")
        port = port.lstrip(":")
    elif ":" in listen:
        host, _, port = listen.rpartition(":")
    if not port.isdigit():
        try:
            port = str(socket.getservbyname(port, "tcp"))
        except OSError:
            raise ValueError(f"listen={listen!r}: unknown port or service name") from None
    return host or "127.0.0.1", int(port)


def parse_master_cmdline(cmdline: bytes) -> dict[str, str]:
    """master's -C, -M, -p and -l from /proc/PID/cmdline."""
    args = [a.decode(errors="replace") for a in cmdline.split(b"\0") if a]
    found: dict[str, str] = {}
    for i, arg in enumerate(args):
        if arg in ("-C", "-M", "-p", "-l") and i + 1 < len(args):
            found[arg] = args[i + 1]
        elif len(arg) > 2 and arg[:2] in ("-C", "-M", "-p", "-l"):
            found[arg[:2]] = arg[2:]
    return found


def target_from_config(name: str, imapd: dict[str, str], services: list[Service], *,
                       pid_file: str, master_pid: int | None,
                       listen_backlog: int | None) -> Target:
    """A collectors' Target from parsed configuration; ValueError naming what is missing."""
    configdir = imapd.get("configdirectory")
    if not configdir:
        raise ValueError("no configdirectory in imapd.conf")
    partition = imapd.get("defaultpartition", "default")
    data_dir = imapd.get(f"partition-{partition}")
    if not data_dir:
        raise ValueError(f"no partition-{partition} in imapd.conf")
    service = imap_service(services)
    if service is None:
        raise ValueError("no plaintext imapd service in the SERVICES section of cyrus.conf")
    host, port = parse_listen(service.listen)
    if host in ("*", "0.0.0.0", "::"):
        host = "127.0.0.1"
    stats_dir = imapd.get("prometheus_stats_dir") or os.path.join(configdir, "stats")
    if listen_backlog is None and imapd.get("listen_queue_backlog", "").isdigit():
        listen_backlog = int(imapd["listen_queue_backlog"])
    return Target(name=name, host=host, port=port, pid_file=pid_file, master_pid=master_pid,
                  stats_file=os.path.join(stats_dir, "master.txt"), data_dir=data_dir,
                  proc_dir=imapd.get("proc_path") or os.path.join(configdir, "proc"),
                  listen_backlog=listen_backlog or CYRUS_DEFAULT_BACKLOG)


def discover(*, imapd_conf: str | None = None, cyrus_conf: str | None = None,
             master_pid: int | None = None, pid_file: str | None = None,
             name: str | None = None) -> tuple[Target, dict[str, str]]:
    """The Cyrus to watch, and its imapd.conf options. A master pid gives its -C/-M/-p/-l; flags override; Debian's
    defaults fill the rest. UsageError (one line, naming the file) on anything unreadable."""
    found: dict[str, str] = {}
    if master_pid is not None:
        try:
            with open(f"/proc/{master_pid}/cmdline", "rb") as fh:
                found = parse_master_cmdline(fh.read())
        except OSError as exc:
            raise UsageError(f"--master-pid {master_pid}: cannot read its command line "
                             f"({exc.strerror})") from None
    imapd_path = imapd_conf or found.get("-C") or DEBIAN_IMAPD_CONF
    cyrus_path = cyrus_conf or found.get("-M") or DEBIAN_CYRUS_CONF
    texts = {}
    for label, path in (("imapd.conf", imapd_path), ("cyrus.conf", cyrus_path)):
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                texts[label] = fh.read()
        except OSError as exc:
            raise UsageError(f"cannot read {label} {path}: {exc.strerror}") from None
    imapd = parse_imapd_conf(texts["imapd.conf"])
    backlog_text = found.get("-l")
    backlog = int(backlog_text) if backlog_text and backlog_text.isdigit() else None
    pid_path = pid_file or found.get("-p") or imapd.get("master_pid_file") or DEBIAN_PID_FILE
    try:
        target = target_from_config(name or imapd.get("servername") or socket.gethostname(),
                                  imapd, parse_cyrus_conf_services(texts["cyrus.conf"]),
                                  pid_file=pid_path, master_pid=master_pid,
                                  listen_backlog=backlog)
    except ValueError as exc:
        raise UsageError(f"{imapd_path} / {cyrus_path}: {exc}") from None
    return target, imapd
