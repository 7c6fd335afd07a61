"""The agent's pure parts on literal data: config discovery, error-line counting, the ring
store, its Prometheus text and series stream."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from loadtest.agent.discover import (
    parse_cyrus_conf_services,
    parse_imapd_conf,
    parse_listen,
    parse_master_cmdline,
    target_from_config,
)
from loadtest.agent.logerrors import count_cyrus_error_lines
from loadtest.agent.store import RingStore, prometheus_text, series_payload

DEBIAN_IMAPD = """\
# Debian's stock file, abridged
configdirectory: /var/lib/cyrus
defaultpartition: default
partition-default: /var/spool/cyrus/mail
proc_path: /run/cyrus/proc
syslog_prefix: cyrus-pre
servername: mail.example.org
"""

DEBIAN_CYRUS = """\
START {
  recover  cmd="/usr/sbin/cyrus ctl_cyrusdb -r"
}
SERVICES {
  # imap  cmd="imapd" listen="imap"
  imap    cmd="imapd -U 30" listen="0.0.0.0:1143" prefork=0 maxchild=100
  imaps   cmd="imapd -s -U 30" listen="imaps" prefork=0 maxchild=100
  lmtpunix cmd="lmtpd" listen="/run/cyrus/socket/lmtp" prefork=0
}
EVENTS {
  checkpoint cmd="ctl_cyrusdb -c" period=30
}
"""


def test_target_from_debian_style_config() -> None:
    imapd = parse_imapd_conf(DEBIAN_IMAPD)
    services = parse_cyrus_conf_services(DEBIAN_CYRUS)
    assert [s.name for s in services] == ["imap", "imaps", "lmtpunix"]
    target = target_from_config("pre", imapd, services, pid_file="/run/cyrus-master.pid",
                                master_pid=None, listen_backlog=None)
    assert (target.host, target.port) == ("127.0.0.1", 1143)
    assert target.stats_file == "/var/lib/cyrus/stats/master.txt"
    assert target.data_dir == "/var/spool/cyrus/mail"
    assert target.proc_dir == "/run/cyrus/proc"
    assert target.listen_backlog == 32  # Cyrus's default when master has no -l


def test_target_needs_partition_and_imap_service() -> None:
    with pytest.raises(ValueError, match="partition-default"):
        target_from_config("x", {"configdirectory": "/c"}, [], pid_file="", master_pid=None,
                           listen_backlog=None)
    with pytest.raises(ValueError, match="no plaintext imapd"):
        target_from_config("x", parse_imapd_conf(DEBIAN_IMAPD),
                           parse_cyrus_conf_services(DEBIAN_CYRUS.replace('"imapd -U', '"pop3d -U')),
                           pid_file="", master_pid=None, listen_backlog=None)


def test_listen_forms() -> None:
    assert parse_listen("127.0.0.2:143") == ("127.0.0.2", 143)
    assert parse_listen("[::1]:1143") == ("::1", 1143)
    assert parse_listen("1143") == ("127.0.0.1", 1143)
    assert parse_listen("imap") == ("127.0.0.1", 143)
    with pytest.raises(ValueError, match="nosuchservice"):
        parse_listen("nosuchservice")


def test_master_cmdline() -> None:
    raw = b"/usr/lib/cyrus/bin/master\0-C\0/etc/imapd.conf\0-M\0/srv/cyrus.conf\0-p\0/run/m.pid\0-l1024\0-d\0"
    assert parse_master_cmdline(raw) == {"-C": "/etc/imapd.conf", "-M": "/srv/cyrus.conf",
                                         "-p": "/run/m.pid", "-l": "1024"}


def test_error_lines_counted_by_kind_and_prefix() -> None:
    lines = [
        "Dec  1 08:00:00 host cyrus-pre/imap[12]: IOERROR: opening /var/spool/x: No such file",
        "Dec  1 08:00:01 host cyrus-pre/imap[13]: DBERROR: skiplist recovery",
        "Dec  1 08:00:02 host cyrus-pre/imap[14]: Fatal error: failed to open mailboxes list",
        "Dec  1 08:00:03 host cyrus-other/imap[15]: IOERROR: another instance",
        "Dec  1 08:00:04 host cyrus-pre/imap[16]: login: user1 plaintext",
    ]
    assert count_cyrus_error_lines(lines, "cyrus-pre/") == {"IOERROR": 1, "DBERROR": 1, "fatal": 1}
    assert count_cyrus_error_lines(lines, None)["IOERROR"] == 2


def test_ring_store_cursor_survives_trimming() -> None:
    store = RingStore("pre", keep_s=10)
    for t in range(20):
        store.add("load1", float(t), t=float(t))
    batch, cursor = store.since(0, limit=5)
    assert [s.value for s in batch] == [0, 1, 2, 3, 4] and cursor == 5
    store.trim(before=12.0)
    batch, cursor = store.since(cursor)
    assert [s.value for s in batch][0] == 12.0 and cursor == 20  # older ones are gone
    assert store.since(None) == ([], 20)
    assert all(s.instance == "pre" for s in batch)  # host figures belong to the instance


def test_prometheus_text_parses_and_keeps_latest() -> None:
    store = RingStore("pre")
    store.add("ready_workers", 1, t=100.0, service="imap", family="ipv4")
    store.add("ready_workers", 3, t=101.0, service="imap", family="ipv4")
    store.add("heartbeat_age_s", None, t=101.0, why="no stats file")
    store.add("generator_cpu_percent", 0.5, t=101.0)
    store.event("collector_gap", t=100.5, collector="master", why="no stats file")
    text = prometheus_text(store, window_s=5, now=102.0).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    ready = families["cyrus_agent_ready_workers"].samples
    assert [(s.labels["service"], s.value) for s in ready] == [("imap", 3.0)]
    assert "cyrus_agent_heartbeat_age_s" not in families  # a gap is not a value
    assert families["cyrus_agent_agent_cpu_percent"].samples[0].value == 0.5
    assert families["cyrus_agent_collector_gap"].samples[0].labels["collector"] == "master"
    assert families["cyrus_agent_up"].samples[0].value == 1.0


def test_series_payload_events_have_stable_ids() -> None:
    store = RingStore("pre")
    store.add("load1", 1.0, t=10.0)
    ev = store.event("heartbeat_gap", t=10.0)
    first = series_payload(store, 0, 0.0, "pre", now=11.0)
    assert first["cursor"] == 1 and first["events"][0]["end"] is None
    store.close_event(ev, end=12.0)
    second = series_payload(store, first["cursor"], 11.0, "pre", now=13.0)
    assert second["samples"] == []
    assert second["events"][0]["id"] == first["events"][0]["id"]
    assert second["events"][0]["end"] == 12.0
