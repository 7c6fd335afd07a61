"""A Cyrus started the way a Debian admin would, not by `deploy up`: a hand-written imapd.conf
and cyrus.conf at a root of its own, `master` started directly, users in a sasldb, stopped by
its pid. It stands in for a pre-production host in the agent's tests.
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from loadtest.deploy.instance import free_port
from loadtest.deploy.procs import pid_alive, wait_gone
from loadtest.deploy.provision import add_sasl_user
from loadtest.deploy.render import SERVERNAME

BIN = Path("/usr/lib/cyrus/bin")

IMAPD_CONF = """\
configdirectory: {root}/conf
defaultpartition: default
partition-default: {root}/spool
proc_path: {root}/run/proc
mboxname_lockpath: {root}/run/lock
lmtpsocket: {root}/run/socket/lmtp
idlesocket: {root}/run/socket/idle
notifysocket: {root}/run/socket/notify
servername: {servername}
syslog_prefix: {prefix}
prometheus_enabled: yes
prometheus_update_freq: 1s
admins: admin
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {root}/conf/sasldb2
sasl_mech_list: PLAIN LOGIN
reverseacls: yes
failedloginpause: 0
{extra}
"""

CYRUS_CONF = """\
START {{
  recover  cmd="{bin}/ctl_cyrusdb -C {root}/imapd.conf -r"
}}
SERVICES {{
  imap  cmd="{bin}/imapd -C {root}/imapd.conf -U {reuse}" listen="127.0.0.1:{port}" prefork={prefork} maxchild={maxchild}
{extra_services}}}
{daemon}EVENTS {{
  checkpoint  cmd="{bin}/ctl_cyrusdb -C {root}/imapd.conf -c" period=30
}}
"""


@dataclass
class ExternalCyrus:
    root: Path
    port: int
    master_pid: int
    users: list[tuple[str, str]]
    imapd_conf: Path
    cyrus_conf: Path
    pid_file: Path
    http_port: int | None = None

    def write_users_file(self) -> Path:
        path = self.root / "users.csv"
        path.write_text("username,password\n" + "".join(f"{u},{p}\n" for u, p in self.users))
        path.chmod(0o600)
        return path

    def stop(self) -> None:
        """SIGTERM to master (it signals its process group), then SIGKILL the group; wait_gone
        reaps it."""
        if pid_alive(self.master_pid):
            os.kill(self.master_pid, signal.SIGTERM)
            if wait_gone([self.master_pid], 10.0):
                os.killpg(self.master_pid, signal.SIGKILL)


def start_external_cyrus(root: Path, *, users: int = 4, maxchild: int = 100, prefork: int = 2,
                         reuse: int = 250, backlog: int = 1024, http: bool = False,
                         timeout: float = 30.0) -> ExternalCyrus:
    port = free_port()
    http_port = free_port() if http else None
    for sub in ("conf", "spool", "run/proc", "run/lock", "run/socket", "conf/stats"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    extra = ""
    extra_services = ""
    daemon = ""
    if http_port is not None:
        extra = "httpmodules: prometheus\nprometheus_need_auth: none\n"
        extra_services = (f'  http  cmd="{BIN}/httpd -C {root}/imapd.conf" '
                          f'listen="127.0.0.1:{http_port}" prefork=0\n')
        # httpd's /metrics serves the reports promstatsd collates (service.txt, usage.txt).
        daemon = f'DAEMON {{\n  promstatsd  cmd="{BIN}/promstatsd -C {root}/imapd.conf"\n}}\n'

    imapd_conf = root / "imapd.conf"
    cyrus_conf = root / "cyrus.conf"
    imapd_conf.write_text(IMAPD_CONF.format(root=root, servername=SERVERNAME,
                                            prefix=f"ext-{port}", extra=extra))
    cyrus_conf.write_text(CYRUS_CONF.format(root=root, bin=BIN, port=port, reuse=reuse,
                                            prefork=prefork, maxchild=maxchild,
                                            extra_services=extra_services, daemon=daemon))
    credentials = [(f"ext{n:03d}", f"pw-{n}-{port}") for n in range(1, users + 1)]
    for name, password in credentials:
        add_sasl_user(root / "conf" / "sasldb2", name, password)
    cyrus = pwd.getpwnam("cyrus")
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            os.chown(os.path.join(dirpath, name), cyrus.pw_uid, cyrus.pw_gid)
    os.chown(root, cyrus.pw_uid, cyrus.pw_gid)
    pid_file = root / "run" / "master.pid"
    log = open(root / "master.log", "ab")  # noqa: SIM115 - master keeps it
    proc = subprocess.Popen([str(BIN / "master"), "-C", str(imapd_conf), "-M", str(cyrus_conf),
                             "-p", str(pid_file), "-l", str(backlog)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, close_fds=True, cwd=root)
    log.close()
    started = ExternalCyrus(root, port, proc.pid, credentials, imapd_conf, cyrus_conf, pid_file,
                            http_port)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                if sock.recv(100).startswith(b"* OK"):
                    return started
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            started.stop()
            raise RuntimeError(f"external Cyrus at {root} did not greet on {port}: "
                               f"{(root / 'master.log').read_text()[-500:]}")
        time.sleep(0.1)
