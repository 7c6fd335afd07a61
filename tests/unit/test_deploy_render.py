"""Config rendering, service options and topologies: pure, no Cyrus needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.deploy.render import (
    InstancePaths,
    ServiceOptions,
    TlsFiles,
    render_cyrus_conf,
    render_imapd_conf,
)
from loadtest.deploy.topology import parse_topology, spread, standalone_slots
from loadtest.errors import UsageError
from loadtest.paths import fixtures_dir

PACKAGED = {name: f"/usr/lib/cyrus/bin/{name}" for name in ("master", "imapd", "ctl_cyrusdb", "idled")}


def conf_keys(text: str) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in text.splitlines()
             if line.strip() and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def test_every_path_the_instance_writes_lives_in_its_directory() -> None:
    root = Path("/srv/lt/slot7")
    text = render_imapd_conf("slot7", InstancePaths(root), ServiceOptions(),
                             admin_user="admin", cyrus_user=None)
    keys = conf_keys(text)
    for key in ("configdirectory", "partition-default", "sievedir", "proc_path",
                "mboxname_lockpath", "lmtpsocket", "idlesocket", "notifysocket",
                "prometheus_stats_dir", "sasl_sasldb_path"):
        assert keys[key].startswith(str(root) + "/"), (key, keys[key])
    assert keys["prometheus_enabled"] == "yes"
    assert keys["syslog_prefix"] == "loadtest-slot7"
    assert "cyrus_user" not in keys


def test_two_instances_share_no_path() -> None:
    a, b = (conf_keys(render_imapd_conf(n, InstancePaths(Path(f"/srv/lt/{n}")),
                                        ServiceOptions(), admin_user="admin", cyrus_user="me"))
            for n in ("slot1", "slot2"))
    shared = {k for k, v in a.items() if v.startswith("/") and b.get(k) == v}
    assert not shared


def test_service_options_reach_cyrus_conf() -> None:
    options = ServiceOptions().updated({"prefork": "0", "maxchild": 5, "maxforkrate": 20,
                                        "imapd_reuse": 1, "babysit": "yes"}, "test")
    text = render_cyrus_conf("slot1", InstancePaths(Path("/srv/lt/slot1")), options,
                             host="127.0.0.1", port=14300, programs=PACKAGED)
    imap_line = next(line for line in text.splitlines() if line.strip().startswith("imap "))
    assert 'listen="127.0.0.1:14300"' in imap_line
    assert "-U 1 " in imap_line and "-C /srv/lt/slot1/imapd.conf" in imap_line
    assert "prefork=0" in imap_line and "maxchild=5" in imap_line
    assert "maxforkrate=20" in imap_line and "babysit=1" in imap_line
    # master does not pass -C on: every cmd must carry it
    cmds = [line for line in text.splitlines() if "cmd=" in line]
    assert cmds and all("-C /srv/lt/slot1/imapd.conf" in line for line in cmds)


def test_tls_serves_imaps_beside_imap_with_the_same_process_options() -> None:
    options = ServiceOptions().updated({"prefork": 0, "maxchild": 7, "imapd_reuse": 1,
                                        "maxforkrate": 30}, "test")
    text = render_cyrus_conf("slot1", InstancePaths(Path("/srv/lt/slot1")), options,
                             host="127.0.0.1", port=14300, programs=PACKAGED,
                             tls_port=14993)
    lines = {line.split()[0]: line for line in text.splitlines() if "cmd=" in line}
    imaps, imap = lines["imaps"], lines["imap"]
    assert 'listen="127.0.0.1:14993"' in imaps and 'listen="127.0.0.1:14300"' in imap
    assert '/imapd -s -C /srv/lt/slot1/imapd.conf' in imaps and " -s " not in imap
    for attribute in ("-U 1 ", "prefork=0", "maxchild=7", "maxforkrate=30"):
        assert attribute in imaps and attribute in imap


def test_tls_none_renders_no_imaps_and_no_certificate() -> None:
    paths = InstancePaths(Path("/srv/lt/slot1"))
    cyrus = render_cyrus_conf("slot1", paths, ServiceOptions(), host="127.0.0.1", port=14300,
                              programs=PACKAGED)
    assert "imaps" not in cyrus
    keys = conf_keys(render_imapd_conf("slot1", paths, ServiceOptions(), admin_user="admin",
                                       cyrus_user=None))
    assert not any(key.startswith("tls_") for key in keys)


def test_tls_names_the_instance_certificate_and_asks_no_client_certificate() -> None:
    tls = TlsFiles(cert=Path("/srv/lt/slot1/tls/server.pem"),
                   key=Path("/srv/lt/slot1/tls/server.key"))
    keys = conf_keys(render_imapd_conf("slot1", InstancePaths(Path("/srv/lt/slot1")),
                                       ServiceOptions(), admin_user="admin", cyrus_user=None,
                                       tls=tls))
    assert keys["tls_server_cert"] == "/srv/lt/slot1/tls/server.pem"
    assert keys["tls_server_key"] == "/srv/lt/slot1/tls/server.key"
    assert keys["tls_client_certs"] == "off"


def test_httpd_metrics_adds_httpd_promstatsd_and_the_prometheus_module() -> None:
    paths = InstancePaths(Path("/srv/lt/slot1"))
    options = ServiceOptions().updated({"httpd_metrics": "yes"}, "test")
    text = render_cyrus_conf("slot1", paths, options, host="127.0.0.1", port=14300,
                             programs=PACKAGED, httpd_port=14380)
    http = next(line for line in text.splitlines() if line.strip().startswith("http "))
    assert 'listen="127.0.0.1:14380"' in http and "/httpd -C /srv/lt/slot1/imapd.conf" in http
    assert "promstatsd -C /srv/lt/slot1/imapd.conf" in text
    conf = render_imapd_conf("slot1", paths, options, admin_user="admin", cyrus_user=None)
    assert "httpmodules: prometheus" in conf
    plain = render_cyrus_conf("slot1", paths, ServiceOptions(), host="127.0.0.1", port=14300,
                              programs=PACKAGED)
    assert "httpd" not in plain and "promstatsd" not in plain


def test_each_program_from_its_own_directory() -> None:
    """A build directory may hold only some programs: cyrus.conf names each one's own path."""
    programs = {**PACKAGED, "imapd": "/var/cache/lt/build/imapd"}
    text = render_cyrus_conf("slot1", InstancePaths(Path("/srv/lt/slot1")), ServiceOptions(),
                             host="127.0.0.1", port=14300, programs=programs)
    assert 'cmd="/var/cache/lt/build/imapd -C' in text
    assert 'cmd="/usr/lib/cyrus/bin/ctl_cyrusdb -C' in text
    assert 'cmd="/usr/lib/cyrus/bin/idled -C' in text


@pytest.mark.parametrize("values, fragment", [
    ({"maxchild": "lots"}, "maxchild='lots' in flag --maxchild: expected an integer"),
    ({"maxchild": 0}, "maxchild=0 in flag --maxchild: must be >= 1"),
    ({"prefrok": 1}, "unknown service option 'prefrok' in flag --maxchild"),
    ({"babysit": "maybe"}, "expected yes or no"),
])
def test_bad_service_options_name_value_and_source(values: dict, fragment: str) -> None:
    with pytest.raises(UsageError, match=None) as info:
        ServiceOptions.from_mapping(values, "flag --maxchild")
    assert fragment in str(info.value)


def test_spread_and_standalone_slots() -> None:
    assert spread(10, 3) == [4, 3, 3]
    assert sum(spread(1001, 7)) == 1001
    slots = standalone_slots(3, 20)
    assert [s.name for s in slots] == ["slot1", "slot2", "slot3"]
    assert sum(s.users for s in slots) == 20


def test_shipped_topology_parses() -> None:
    path = fixtures_dir() / "topologies" / "two-stores.toml"
    slots, service = parse_topology(path.read_text(), str(path))
    assert [(s.name, s.store, s.role, s.users) for s in slots] == [
        ("slot608", "store23", "master", 10), ("slot308", "store23", "replica", 0),
        ("slot908", "store24", "master", 10), ("slot503", "store24", "replica", 0)]
    assert service == {"prefork": 1, "maxchild": 100}
    assert slots[2].service["maxchild"] == 50


@pytest.mark.parametrize("text, fragment", [
    ("[[store]]\nname = 'a'\nusers = 1\n", "t.toml:1: store 'a' has no master slot"),
    ("[[store]]\nname = 'a'\nmaster = 's1'\n\n[[store]]\nname = 'b'\nmaster = 's1'\n",
     "t.toml:5: slot 's1' is used twice"),
    ("[[store]]\nname = 'a'\nmaster = 's1'\nusers = -3\n", "users = -3 must be a whole number"),
    ("[[store]]\nname = 'a'\nmaster = 's1'\nsluts = 2\n", "t.toml:1: unknown key 'sluts'"),
    ("[service]\nmaxchild = 'x'\n[[store]]\nname='a'\nmaster='s'\n",
     "maxchild='x' in t.toml:1: expected an integer"),
    ("[[store]\n", "t.toml: not valid TOML"),
    ("[stores]\n", "t.toml:1: unknown table or key 'stores'"),
    ("", "t.toml: no [[store]] entries"),
])
def test_bad_topology_names_file_line_and_reason(text: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_topology(text, "t.toml")
    assert fragment in str(info.value)


def test_filesystem_type_from_mounts_text() -> None:
    from loadtest.paths import filesystem_type_in

    mounts = ("/dev/vda / ext4 rw 0 0\n"
              "tmpfs /dev/shm tmpfs rw 0 0\n"
              "shm /dev/shm tmpfs rw 0 0\n"
              "/dev/vdb /dev/shm/big ext4 rw 0 0\n"
              "/dev/vdc /mnt/my\\040disk xfs rw 0 0\n")
    assert filesystem_type_in("/var/tmp/x", mounts) == "ext4"
    assert filesystem_type_in("/dev/shm/lt/slot1", mounts) == "tmpfs"
    assert filesystem_type_in("/dev/shm/big/slot1", mounts) == "ext4"
    assert filesystem_type_in("/mnt/my disk/a", mounts) == "xfs"
    assert filesystem_type_in("/dev/shmx", mounts) == "ext4"  # a prefix of the name is not inside
    # a point mounted twice: the later entry is the one in effect
    assert filesystem_type_in("/dev/shm", "tmpfs /dev/shm tmpfs rw 0 0\n/dev/vdb /dev/shm ext4 rw 0 0\n") == "ext4"
