"""One disposable Cyrus instance: lay out its directory, start master, wait for the greeting,
stop it and check that nothing of it is left.

Like Cassandane: a unique directory per instance, generated configs, an allocated port,
wait-until-ready, and a stop that verifies.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from loadtest.core.imapwire import Wire, open_socket
from loadtest.deploy.binaries import DEB_PACKAGES, CyrusPrograms, resolve
from loadtest.deploy.deployment import InstanceInfo
from loadtest.deploy.procs import pid_alive, pids_mentioning, terminate, wait_gone
from loadtest.deploy.render import (
    InstancePaths,
    ServiceOptions,
    TlsFiles,
    render_cyrus_conf,
    render_imapd_conf,
)
from loadtest.deploy.tls import issue_server_cert
from loadtest.errors import UsageError

HOST = "127.0.0.1"
UNIX_PATH_MAX = 107  # sun_path is 108 bytes with the terminating NUL
ROTATING_BINARY = "symlink"  # ServiceOptions.imapd_binary value: run imapd through a symlink
STOP_GRACE_S = 10.0
# Mount point (outside /dev, so an instance living under /dev/shm cannot loop) where the host's
# /dev is visible inside an instance's private mount namespace.
HOST_DEV_MOUNT = Path("/run/cyrus-loadtest/hostdev")


class StartError(RuntimeError):
    """master did not come up; the message carries the tail of its logs."""


def programs_of(info: InstanceInfo) -> CyrusPrograms:
    """The programs an instance was laid out with (resolved again for an older
    deployment.json that does not record them)."""
    return CyrusPrograms.from_dict(info.cyrus) if info.cyrus else resolve()


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def check_port_free(host: str, port: int, source: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UsageError(f"port {port} (from {source}) is not usable on {host}: "
                             f"{exc.strerror}") from None


def service_user() -> tuple[str | None, int, int]:
    """Who Cyrus runs as: as root master drops to the `cyrus` user; otherwise ourselves,
    named in imapd.conf, because a non-root master exits unless cyrus_user is the invoker."""
    if os.getuid() == 0:
        try:
            entry = pwd.getpwnam("cyrus")
        except KeyError:
            raise UsageError(f"no `cyrus` system user: apt-get install {DEB_PACKAGES}") from None
        return None, entry.pw_uid, entry.pw_gid
    entry = pwd.getpwuid(os.getuid())
    return entry.pw_name, entry.pw_uid, entry.pw_gid


def can_capture_syslog() -> bool:
    return os.getuid() == 0 and shutil.which("unshare") is not None


def lay_out(name: str, root: Path, options: ServiceOptions, *, port: int, admin_user: str,
            users_file: Path | None = None, volatile: Path | None = None,
            ca_cert: Path | None = None, tls_port: int | None = None,
            cyrus: CyrusPrograms | None = None) -> InstanceInfo:
    """Create the instance directory and render its configs. Nothing runs yet. With
    ``ca_cert`` and ``tls_port``: a certificate signed by that CA and an imaps service."""
    cyrus = cyrus or resolve()
    paths = InstancePaths(root, volatile)
    longest = max((paths.syslog_socket, paths.socket_dir / "notify"), key=lambda p: len(str(p)))
    if len(os.fsencode(longest)) > UNIX_PATH_MAX:
        raise UsageError(f"directory {root} is too deep: unix socket {longest} would exceed "
                         f"{UNIX_PATH_MAX} bytes; choose a shorter --dir")
    cyrus_user, uid, gid = service_user()
    for directory in paths.directories():
        directory.mkdir(parents=True, exist_ok=True)
    if options.imapd_binary == ROTATING_BINARY:
        # cyrus.conf points at a symlink the binary-rotation fault re-points (UC Davis, 2007).
        paths.bin_dir.mkdir(exist_ok=True)
        paths.imapd_link.unlink(missing_ok=True)
        paths.imapd_link.symlink_to(cyrus.path("imapd"))
        options = replace(options, imapd_binary=str(paths.imapd_link))
    tls: TlsFiles | None = None
    if ca_cert is not None and tls_port is not None:
        tls = issue_server_cert(ca_cert, paths.root, name, HOST, uid, gid)
    else:
        tls_port = None
    paths.imapd_conf.write_text(render_imapd_conf(name, paths, options, admin_user=admin_user,
                                                  cyrus_user=cyrus_user, tls=tls))
    httpd_port = free_port() if options.httpd_metrics else None
    paths.cyrus_conf.write_text(render_cyrus_conf(name, paths, options, host=HOST, port=port,
                                                  programs=cyrus.programs, tls_port=tls_port,
                                                  httpd_port=httpd_port))
    if can_capture_syslog():
        _build_fake_dev(paths)
    for directory in paths.directories():
        os.chown(directory, uid, gid)
    return InstanceInfo(
        name=name, host=HOST, port=port, root=str(paths.root),
        imapd_conf=str(paths.imapd_conf), cyrus_conf=str(paths.cyrus_conf),
        config_dir=str(paths.config_dir), data_dir=str(paths.data_dir),
        proc_dir=str(paths.proc_dir), lock_dir=str(paths.lock_dir),
        stats_file=str(paths.stats_file), pid_file=str(paths.pid_file),
        log_file=str(paths.log_file), master_log=str(paths.master_log),
        users_file=str(users_file or paths.users_file), options=options.as_dict(),
        volatile_root=str(volatile) if volatile else None, cyrus=cyrus.to_dict(),
        tls_port=tls_port, tls_cert=str(tls.cert) if tls else None,
        metrics_url=f"http://{HOST}:{httpd_port}/metrics" if httpd_port else None,
    )


def _build_fake_dev(paths: InstancePaths) -> None:
    """A /dev for the instance's mount namespace: every host entry by symlink, plus `log`."""
    fake = paths.fake_dev
    if fake.exists():
        shutil.rmtree(fake)
    fake.mkdir()
    for entry in os.listdir("/dev"):
        if entry != "log":
            (fake / entry).symlink_to(HOST_DEV_MOUNT / entry)
    (fake / "log").symlink_to(paths.syslog_socket)


def start(info: InstanceInfo, *, timeout: float = 30.0) -> InstanceInfo:
    """Start the syslog receiver and master, and wait for an IMAP greeting.

    On failure nothing of the instance is left running and StartError carries the log tails.
    """
    paths = InstancePaths.of(info)
    master = programs_of(info).path("master")
    paths.pid_file.unlink(missing_ok=True)
    master_argv = [str(master), "-C", info.imapd_conf, "-M", info.cyrus_conf,
                   "-p", info.pid_file, "-l", str(info.options.get("listen_backlog", 1024))]
    # No LD_LIBRARY_PATH: a built master finds its library by rpath, and Debian's programs it
    # execs would die with status 127.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LOCUST_", "LOADTEST_")) and k != "LD_LIBRARY_PATH"}
    if can_capture_syslog():
        info.syslog_pid = _start_syslog_receiver(paths)
        HOST_DEV_MOUNT.mkdir(parents=True, exist_ok=True)
        # unshare and sh exec in place, so the pid we get is master's own pid.
        script = (f'mount --rbind /dev "{HOST_DEV_MOUNT}" && '
                  f'mount --bind "{paths.fake_dev}" /dev && exec "$@"')
        argv = ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
                script, "master", *master_argv]
    else:
        paths.log_file.write_text("syslog capture needs root (a private mount namespace); "
                                  "Cyrus log lines go to the host's /dev/log, if any\n")
        argv = master_argv
    with open(paths.master_log, "ab") as log:
        # A session of its own: on shutdown master signals its whole process group.
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, env=env, cwd=info.root)
    info.master_pid = proc.pid
    try:
        wait_for_greeting(info, timeout=timeout, proc=proc)
    except StartError:
        stop(info)
        raise
    return info


def _start_syslog_receiver(paths: InstancePaths) -> int:
    paths.syslog_socket.unlink(missing_ok=True)
    with open(paths.master_log, "ab") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "loadtest.deploy.syslogd", "--socket", str(paths.syslog_socket),
             "--output", str(paths.log_file), "--pid-file", str(paths.pid_file)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
            start_new_session=True, close_fds=True)
    deadline = time.monotonic() + 10.0
    while not paths.syslog_socket.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise StartError(f"syslog receiver for {paths.root} did not start; see {paths.master_log}")
        time.sleep(0.02)
    return proc.pid


def wait_for_greeting(info: InstanceInfo, *, timeout: float,
                      proc: subprocess.Popen[bytes] | None = None) -> str:
    """Poll until master's service answers with an untagged OK; `master -d` would return
    before the port is bound, and master may die right after, so only a greeting proves it."""
    deadline = time.monotonic() + timeout
    last_error = "no attempt"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StartError(f"master of {info.name} exited with status {proc.returncode} "
                             f"before greeting\n{log_tail(info)}")
        try:
            with open_socket(info.host, info.port, timeout=2.0) as sock:
                greeting = Wire(sock).line().decode("ascii", "replace")
                if greeting.startswith("* OK"):
                    return greeting
                last_error = f"unexpected greeting {greeting[:80]!r}"
        except OSError as exc:
            last_error = exc.strerror or str(exc)
        if _log_says_bind_failed(info):
            raise StartError(f"master of {info.name} could not bind {info.address} (in use by "
                             f"another process?)\n{log_tail(info)}")
        time.sleep(0.05)
    raise StartError(f"master of {info.name} gave no IMAP greeting on {info.address} within "
                     f"{timeout:.0f} s ({last_error})\n{log_tail(info)}")


def _log_says_bind_failed(info: InstanceInfo) -> bool:
    try:
        with open(info.log_file, "rb") as fh:
            return b"unable to bind to imap" in fh.read()
    except OSError:
        return False


def log_tail(info: InstanceInfo, lines: int = 15) -> str:
    parts = []
    for label, path in (("master log", info.master_log), ("syslog", info.log_file)):
        try:
            text = Path(path).read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            text = ["(none)"]
        parts.append(f"--- {label} {path}:\n" + "\n".join(text))
    return "\n".join(parts)


def instance_pids(info: InstanceInfo) -> list[int]:
    """Every live process of the instance: master, its children, orphans of a crashed master,
    the syslog receiver; all carry the instance's root directory in their command line."""
    return pids_mentioning(info.root.rstrip("/") + "/")


def stop(info: InstanceInfo, *, grace: float = STOP_GRACE_S) -> list[int]:
    """SIGTERM master (it takes its children down), SIGKILL after ``grace``, then end any
    process of the instance still alive (orphans of a killed master). Returns pids that
    survived everything (should be empty)."""
    if info.master_pid is not None and pid_alive(info.master_pid):
        terminate([info.master_pid], grace)
    else:
        wait_gone([info.master_pid] if info.master_pid else [], 0.1)  # reap if it was ours
    leftovers = [p for p in instance_pids(info) if p != info.syslog_pid]
    survivors = terminate(leftovers, 2.0) if leftovers else []
    if info.syslog_pid:
        survivors += terminate([info.syslog_pid], 2.0)
    return survivors
