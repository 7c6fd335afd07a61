"""Pure parsers, on text copied from real files (Cyrus 3.6 master.txt, Linux 6.x /proc)."""

from __future__ import annotations

import pytest

from loadtest.core import parsers

# {configdirectory}/stats/master.txt of a Cyrus 3.6 master (prefork=2 plus one connection).
MASTER_TXT = """\
# HELP cyrus_master_ready_workers The number of ready workers
# TYPE cyrus_master_ready_workers gauge
cyrus_master_ready_workers{service="imap",family="ipv4"} 3 1795258256753
cyrus_master_ready_workers{service="idled",family="daemon"} 1 1795258256753
# HELP cyrus_master_forks_total The number of children spawned
# TYPE cyrus_master_forks_total counter
cyrus_master_forks_total{service="imap",family="ipv4"} 3 1795258256753
cyrus_master_forks_total{service="idled",family="daemon"} 1 1795258256753
# HELP cyrus_master_active_children The number of children servicing clients
# TYPE cyrus_master_active_children gauge
cyrus_master_active_children{service="imap",family="ipv4"} 3 1795258256753
cyrus_master_active_children{service="idled",family="daemon"} 1 1795258256753
# HELP cyrus_master_max_children The maximum number of child processes
# TYPE cyrus_master_max_children gauge
cyrus_master_max_children{service="imap",family="ipv4"} 400 1795258256753
cyrus_master_max_children{service="idled",family="daemon"} 1 1795258256753
# HELP cyrus_master_forks_per_second The rate at which we're spawning children
# TYPE cyrus_master_forks_per_second gauge
cyrus_master_forks_per_second{service="imap",family="ipv4"} 0 1795258256753
cyrus_master_forks_per_second{service="idled",family="daemon"} 0 1795258256753
# HELP cyrus_master_max_forks_per_second The maximum rate at which we will spawn children
# TYPE cyrus_master_max_forks_per_second gauge
cyrus_master_max_forks_per_second{service="imap",family="ipv4"} 0 1795258256753
cyrus_master_max_forks_per_second{service="idled",family="daemon"} 10 1795258256753
# HELP cyrus_master_ready_fails_total The number of failures in READY state
# TYPE cyrus_master_ready_fails_total counter
cyrus_master_ready_fails_total{service="imap",family="ipv4"} 0 1795258256753
cyrus_master_ready_fails_total{service="idled",family="daemon"} 0 1795258256753
"""

# A /metrics page (promstatsd / httpd) has no timestamps; the same parser reads it.
METRICS_PAGE = """\
# HELP cyrus_imap_connections_total The total number of IMAP connections
# TYPE cyrus_imap_connections_total counter
cyrus_imap_connections_total 1042
# TYPE cyrus_master_ready_workers gauge
cyrus_master_ready_workers{service="imap",family="ipv4"} 0
cyrus_master_ready_workers{service="imap",family="ipv6"} 2
"""

PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:E2C5 00000000:0000 0A 00000000:00000011 00:00000000 00000000     0        0 12330 1 0000000026a84409 100 0 0 10 0
   1: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1145 1 0000000032bf3cf0 100 0 0 10 0
   2: 0100007F:E2C5 0100007F:C350 01 00000000:00000000 00:00000000 00000000   105        0 13001 1 0000000011111111 20 4 30 10 -1
"""

PROC_NET_TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:E2C5 00000000000000000000000000000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 22330 1 0000000026a84409 100 0 0 10 0
"""

NETSTAT = """\
TcpExt: SyncookiesSent SyncookiesRecv ListenOverflows ListenDrops TCPHPHits
TcpExt: 0 0 17 19 47
IpExt: InNoRoutes InTruncatedPkts
IpExt: 0 3
"""

PROC_STAT = """\
cpu  3167 0 1640 54199 235 0 30 7 0 0
cpu0 1600 0 800 27000 100 0 15 3 0 0
intr 12345 0 0
ctxt 987654
btime 1795250000
processes 5928
procs_running 3
procs_blocked 1
softirq 1 2 3
"""

PID_STAT = ("6966 (imapd) S 6961 6961 6961 0 -1 4194304 1172 0 5 0 7 3 2 1 20 0 1 0 38729 "
            "71098368 4713 18446744073709551615 94095098871808 94095099111125 140723092739712 0 "
            "0 0 0 4096 26631 1 0 0 17 1 0 0 0 0 0 94095099175888 94095099184628 94095985836032 "
            "140723092740721 140723092740792 140723092740792 140723092742111 0\n")


def test_master_stats_per_service_and_family_with_ms_timestamp() -> None:
    stats = parsers.parse_master_stats(MASTER_TXT)
    assert stats.updated == pytest.approx(1795258256.753)
    imap = stats.values[("imap", "ipv4")]
    assert imap == {"ready_workers": 3, "master_forks_total": 3, "active_children": 3,
                    "max_children": 400, "ready_fails_total": 0}
    assert stats.values[("idled", "daemon")]["max_children"] == 1
    # forks_per_second and max_forks_per_second are not among the signals
    assert "forks_per_second" not in imap


def test_a_whole_master_report_and_reads_torn_by_a_write() -> None:
    """Master rewrites the file in place: a read during a write is torn. The fast parser of
    master's own lines and the general Prometheus one agree on whole reports and both refuse
    torn ones."""
    whole = parsers.parse_master_report(MASTER_TXT)
    assert whole == parsers.parse_master_stats(MASTER_TXT)
    assert parsers.master_report_whole(MASTER_TXT)
    assert parsers.parse_master_report("") == parsers.MasterStats({}, None)  # not written yet
    assert parsers.master_report_whole("")
    newer = MASTER_TXT.replace("1795258256753", "1795258257754")
    cut = newer.index("# HELP cyrus_master_max_forks_per_second")
    # (new and old differ from the timestamp's tenth digit on)
    inside = newer.index("1795258257754") + 11
    torn = [
        # A shorter new report over a longer old one, read before master's ftruncate: the old
        # report's tail follows with its older timestamp.
        newer[:cut] + MASTER_TXT[cut:],
        MASTER_TXT[:MASTER_TXT.index(" 3 1795") + 3],  # the read ends inside a line
        newer[:inside] + MASTER_TXT[inside:],  # cut in the middle of a timestamp
        MASTER_TXT[:cut] + "cyrus_master_max_forks_per_second{servi" + MASTER_TXT[cut:],
    ]
    for text in torn:
        assert parsers.parse_master_report(text) is None, text
        assert not parsers.master_report_whole(text), text


def test_master_report_in_another_format_goes_to_the_general_parser() -> None:
    # A label master does not write today, and a sample without a timestamp.
    text = MASTER_TXT.replace('{service="imap",family="ipv4"}',
                              '{service="imap",family="ipv4",host="a"}')
    stats = parsers.parse_master_report(text)
    assert stats is not None and stats.values[("imap", "ipv4")]["max_children"] == 400
    assert stats.updated == pytest.approx(1795258256.753)


def test_metrics_page_sums_families_and_has_no_heartbeat() -> None:
    stats = parsers.parse_master_stats(METRICS_PAGE)
    assert stats.updated is None
    assert stats.service("imap") == {"ready_workers": 2}


def test_prometheus_parser_rejects_garbage() -> None:
    with pytest.raises(parsers.ParseError):
        parsers.parse_prometheus("cyrus_master_ready_workers{service=\"imap\" 3\n")


def test_listen_queue_v4_and_v6_for_the_port_only() -> None:
    sockets = (parsers.parse_proc_net_tcp(PROC_NET_TCP)
               + parsers.parse_proc_net_tcp(PROC_NET_TCP6))
    assert [(s.address, s.port, s.queue) for s in sockets] == [
        ("127.0.0.1", 58053, 17), ("0.0.0.0", 2024, 0), ("::1", 58053, 2)]
    assert parsers.listen_queue(sockets, 58053) == 19
    assert parsers.listen_queue(sockets, 143) is None


def test_proc_net_tcp_without_header_is_refused() -> None:
    with pytest.raises(parsers.ParseError):
        parsers.parse_proc_net_tcp("0.05 0.07 0.03 1/85 5928\n")


def test_netstat_counters() -> None:
    counters = parsers.parse_netstat(NETSTAT)
    assert counters["TcpExt.ListenOverflows"] == 17
    assert counters["TcpExt.ListenDrops"] == 19
    assert counters["IpExt.InTruncatedPkts"] == 3


def test_proc_stat_and_loadavg() -> None:
    stat = parsers.parse_proc_stat(PROC_STAT)
    assert (stat.processes, stat.procs_running, stat.procs_blocked) == (5928, 3, 1)
    assert stat.cpu_ticks == 3167 + 1640 + 54199 + 235 + 30 + 7
    assert stat.context_switches == 987654
    assert stat.cpu_system_ticks == 1640 + 0 + 30  # system + irq + softirq
    assert stat.cpu_idle_ticks == 54199 + 235  # idle + iowait
    load = parsers.parse_loadavg("0.05 0.07 0.03 1/85 5928\n")
    assert (load.load1, load.load15, load.runnable, load.total) == (0.05, 0.03, 1, 85)
    with pytest.raises(parsers.ParseError):
        parsers.parse_proc_stat("cpu 1 2 3\n")
    with pytest.raises(parsers.ParseError):
        parsers.parse_loadavg("")


def test_pid_stat_fields() -> None:
    stat = parsers.parse_pid_stat(PID_STAT)
    assert (stat.pid, stat.comm, stat.state, stat.ppid) == (6966, "imapd", "S", 6961)
    assert (stat.utime, stat.stime, stat.cutime, stat.cstime) == (7, 3, 2, 1)
    assert stat.starttime == 38729
    assert stat.cpu_ticks_with_children == 13


def test_pid_stat_comm_with_spaces_and_parens() -> None:
    text = PID_STAT.replace("(imapd)", "(a) b (c)")
    stat = parsers.parse_pid_stat(text)
    assert stat.comm == "a) b (c"
    assert stat.ppid == 6961


def test_children_and_service_naming() -> None:
    assert parsers.parse_children("6966 6967 6968 6969 ") == [6966, 6967, 6968, 6969]
    assert parsers.parse_children("") == []
    env = b"PATH=/usr/bin\0CYRUS_SERVICE=imap\0CYRUS_ID=0\0"
    cmd = b"/usr/lib/cyrus/bin/imapd\0-C\0/dev/shm/x/imapd.conf\0-U\0250\0"
    assert parsers.service_of(env, cmd) == "imap"
    # environ unreadable (permission denied): the program name stands in
    assert parsers.service_of(None, cmd) == "imapd"
    assert parsers.service_of(None, None) == "unknown"


def test_one_environment_variable_wherever_it_stands() -> None:
    value = parsers.environ_value
    assert value(b"CYRUS_SERVICE=imap\0PATH=/bin\0", b"CYRUS_SERVICE") == "imap"
    assert value(b"PATH=/bin\0CYRUS_SERVICE=imaps\0X=1\0", b"CYRUS_SERVICE") == "imaps"
    assert value(b"PATH=/bin\0CYRUS_SERVICE=pop3", b"CYRUS_SERVICE") == "pop3"  # no final NUL
    assert value(b"XCYRUS_SERVICE=no\0PATH=/bin\0", b"CYRUS_SERVICE") is None
    assert value(b"PATH=/bin\0", b"CYRUS_SERVICE") is None
    assert value(b"CYRUS_SERVICE=\0", b"CYRUS_SERVICE") == ""


# sock_diag reply (NETLINK_SOCK_DIAG, AF_INET listeners) captured on Linux 6.x: four listeners,
# then NLMSG_DONE. Port 41559 is a Cyrus instance started with master -l 1024.
INET_DIAG_REPLY = bytes.fromhex(
    "7c000000140002000100000051550000020a0000a25700007f00000100000000000000000000000000000000"
    "00000000000000000000000000000000010000000000000000000000000000000004000000000000060d0200"
    "050008000000000008000f00000000000c001500010000000000000006001600520000007c00000014000200"
    "0100000051550000020a0000a50f00007f000001000000000000000000000000000000000000000000000000"
    "0000000000000000020000000000000000000000000000000004000000000000b86b01000500080000000000"
    "08000f00000000000c001500010000000000000006001600520000007c000000140002000100000051550000"
    "020a000007e80000000000000000000000000000000000000000000000000000000000000000000000000000"
    "03000000000000000000000000000000800000000000000079040000050008000000000008000f0000000000"
    "0c001500010000000000000006001600520000007c000000140002000100000051550000020a0000c0550000"
    "7f00000100000000000000000000000000000000000000000000000000000000000000000400000000000000"
    "00000000000000000004000000000000fc0c0200050008000000000008000f00000000000c00150001000000"
    "0000000006001600520000001400000003000200010000005155000000000000")


def test_inet_diag_listeners_with_queue_limits() -> None:
    sockets, limits, done = parsers.parse_inet_diag(INET_DIAG_REPLY)
    assert done
    assert [(s.address, s.port, s.queue) for s in sockets] == [
        ("127.0.0.1", 41559, 0), ("127.0.0.1", 42255, 0), ("0.0.0.0", 2024, 0),
        ("127.0.0.1", 49237, 0)]
    assert limits[41559] == 1024 and limits[2024] == 128
    # an incomplete dump (no NLMSG_DONE yet) says so
    assert parsers.parse_inet_diag(INET_DIAG_REPLY[:124])[2] is False


def test_inet_diag_request_asks_for_tcp_listeners() -> None:
    request = parsers.inet_diag_listen_request(2, seq=7)
    assert len(request) == 16 + 56
    assert request[16:18] == bytes([2, 6])  # AF_INET, IPPROTO_TCP
    assert int.from_bytes(request[20:24], "little") == 1 << 10  # TCP_LISTEN
