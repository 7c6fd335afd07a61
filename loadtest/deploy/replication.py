"""Cyrus replication between the two slots of a store (FastMail 2007: a store is a master slot
and a replica slot): sync_server on the replica, a rolling sync_client on the master.

Pure module (text in, text out), applied to the rendered configs by `deploy up` before the
instances start. Needs Debian's cyrus-replication (sync_client, sync_server).

- replica cyrus.conf: a ``syncserver`` service on its own loopback port;
- master imapd.conf: ``sync_log`` on, where the replica listens, who to authenticate as (the
  deployment's admin, whose password both sasldbs hold), and a 1 s rolling interval;
- master cyrus.conf: ``sync_client -r`` (rolling replication) in DAEMON, started and restarted
  by master.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loadtest.deploy.deployment import InstanceInfo

SYNC_REPEAT_INTERVAL_S = 1


def replica_service(bin_dir: Path, imapd_conf: str, host: str, sync_port: int) -> str:
    return (f'  syncserver  cmd="{bin_dir}/sync_server -C {imapd_conf}" '
            f'listen="{host}:{sync_port}" prefork=1')


def master_daemon(bin_dir: Path, imapd_conf: str) -> str:
    return f'  syncclient  cmd="{bin_dir}/sync_client -C {imapd_conf} -r"'


def master_settings(host: str, sync_port: int, authname: str, password: str) -> str:
    return "\n".join([
        "",
        "# Rolling replication to this store's replica slot (cyrus-loadtest, FastMail 2007).",
        "sync_log: yes",
        f"sync_host: {host}",
        f"sync_port: {sync_port}",
        f"sync_authname: {authname}",
        f"sync_password: {password}",
        f"sync_repeat_interval: {SYNC_REPEAT_INTERVAL_S}",
        "",
    ])


def add_to_section(conf: str, section: str, line: str) -> str:
    """Insert ``line`` as the first entry of cyrus.conf's ``SECTION {`` block."""
    marker = f"{section} {{\n"
    if marker not in conf:
        raise ValueError(f"cyrus.conf has no {section} section")
    return conf.replace(marker, marker + line + "\n", 1)


def pairs(instances: Sequence[InstanceInfo]) -> list[tuple[InstanceInfo, InstanceInfo]]:
    """(master, replica) InstanceInfos of every store that has both."""
    found: list[tuple[InstanceInfo, InstanceInfo]] = []
    for master in instances:
        if master.role != "master":
            continue
        for replica in instances:
            if replica.role == "replica" and replica.store == master.store:
                found.append((master, replica))
    return found
