"""Replication between a store's slots, as text: what deploy up adds to the rendered configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.deploy.deployment import InstanceInfo
from loadtest.deploy.replication import (
    add_to_section,
    master_daemon,
    master_settings,
    pairs,
    replica_service,
)

CYRUS_CONF = "START {\n  recover cmd=x\n}\n\nSERVICES {\n  imap cmd=y\n}\n\nDAEMON {\n\n}\n"


def test_replica_gets_a_sync_server_and_master_a_rolling_sync_client() -> None:
    replica = add_to_section(CYRUS_CONF, "SERVICES",
                             replica_service(Path("/bin"), "/r/imapd.conf", "127.0.0.1", 2005))
    assert ('SERVICES {\n  syncserver  cmd="/bin/sync_server -C /r/imapd.conf" '
            'listen="127.0.0.1:2005" prefork=1\n  imap cmd=y\n}') in replica
    master = add_to_section(CYRUS_CONF, "DAEMON", master_daemon(Path("/bin"), "/m/imapd.conf"))
    assert 'DAEMON {\n  syncclient  cmd="/bin/sync_client -C /m/imapd.conf -r"\n' in master
    settings = master_settings("127.0.0.1", 2005, "cyrusadmin", "s3cret")
    assert {line.split(": ")[0] for line in settings.splitlines() if ": " in line} == {
        "sync_log", "sync_host", "sync_port", "sync_authname", "sync_password",
        "sync_repeat_interval"}
    assert "sync_port: 2005" in settings
    with pytest.raises(ValueError, match="no EVENTS section"):
        add_to_section(CYRUS_CONF, "EVENTS", "x")


def info(name: str, store: str | None, role: str) -> InstanceInfo:
    return InstanceInfo(name, "127.0.0.1", 1, *(["/x"] * 12), store=store, role=role)


def test_pairs_are_stores_with_both_slots() -> None:
    slots = [info("slot608", "store23", "master"), info("slot308", "store23", "replica"),
             info("slot908", "store24", "master"), info("slot1", None, "standalone")]
    assert [(m.name, r.name) for m, r in pairs(slots)] == [("slot608", "slot308")]
