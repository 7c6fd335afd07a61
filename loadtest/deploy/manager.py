"""Bring a whole test deployment up and down: one or several instances, their users,
`deployment.json`.

`deploy_up` either returns a running, provisioned deployment or raises with nothing left
running; `deploy_down` ends every process of every instance, also after a crashed master.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.deploy import instance as inst
from loadtest.deploy.binaries import resolve as resolve_programs
from loadtest.deploy.deployment import DEPLOYMENT_FILE, Deployment, InstanceInfo
from loadtest.deploy.procs import pid_alive, pids_mentioning, terminate
from loadtest.deploy.provision import (
    TestUser,
    add_sasl_user,
    create_mailboxes,
    make_users,
    write_users_file,
)
from loadtest.deploy.render import InstancePaths, ServiceOptions
from loadtest.deploy.tls import make_ca
from loadtest.deploy.topology import SlotSpec, standalone_slots
from loadtest.errors import UsageError

MARKER = ".cyrus-loadtest"  # says a directory is ours to wipe
ADMIN_USER = "cyrusadmin"
ADMIN_PASSWORD_FILE = "admin.pass"

ProgressFn = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass
class Timing:
    """How long provisioning took, printed by `deploy up` (the 1,000-user figure)."""

    start_s: float = 0.0
    sasl_s: float = 0.0
    mailboxes_s: float = 0.0
    total_s: float = 0.0
    users: int = 0


def _prepare_root(root: Path, source: str) -> None:
    if (root / DEPLOYMENT_FILE).exists() or (root / MARKER).exists():
        live = pids_mentioning(str(root.resolve()).rstrip("/") + "/")
        if live:
            raise UsageError(f"a deployment is already running in {root} (from {source}): "
                             "`cyrus-loadtest deploy down` first, or choose another --dir")
        _remove_volatile(root)
        shutil.rmtree(root)
    elif root.exists() and not root.is_dir():
        raise UsageError(f"--dir {root} (from {source}) is a file, not a directory")
    elif root.exists() and any(root.iterdir()):
        raise UsageError(f"directory {root} (from {source}) is not empty and not a "
                         "cyrus-loadtest deployment: choose an empty or new --dir")
    if os.getuid() == 0:
        # The cyrus user must be able to reach the instance directories below.
        for parent in root.parents:
            if parent.exists() and parent.stat().st_mode & 0o001 == 0:
                raise UsageError(f"directory {root} (from {source}): the cyrus user cannot "
                                 f"enter {parent}; choose a --dir under /dev/shm, /tmp or /var/tmp")
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / MARKER).write_text("cyrus-loadtest deployment directory\n")
        if os.getuid() == 0:
            root.chmod(0o755)
    except OSError as exc:
        raise UsageError(f"cannot use directory {root} (from {source}): "
                         f"{exc.strerror or exc}") from None


def _volatile_base(volatile_dir: str | Path | None, root: Path, source: str) -> Path | None:
    """This deployment's own folder in the volatile directory (short: unix socket paths live
    there), or None when everything stays under the deployment's directory."""
    if volatile_dir is None:
        return None
    volatile_dir = Path(volatile_dir).absolute()
    if not volatile_dir.is_dir() or not os.access(volatile_dir, os.W_OK | os.X_OK):
        raise UsageError(f"--volatile-dir {volatile_dir} (from {source}) is not a writable "
                         "directory")
    digest = hashlib.sha1(str(root).encode()).hexdigest()[:10]
    return volatile_dir / f"cyrus-loadtest-{digest}"


def _remove_volatile(root: Path) -> None:
    """Remove the volatile folders a deployment in ``root`` recorded (stats, proc, sockets)."""
    try:
        deployment = Deployment.load(root / DEPLOYMENT_FILE)
    except UsageError:
        return
    for info in deployment.instances:
        if info.volatile_root:
            shutil.rmtree(info.volatile_root, ignore_errors=True)
            with contextlib.suppress(OSError):
                Path(info.volatile_root).parent.rmdir()  # the deployment's own folder, once empty


# What one test user costs on disk: `deploy up --users 300` on tmpfs took 2,436,269 bytes (du -sb,
# the instance's fixed part included), 8.1 KB a user: mailboxes, seed messages, indexes, sasldb.
BYTES_PER_USER = 10_000
# 300 users took 2.4 s to provision here, so 100,000 take ~15 minutes: longer than a load test
# runs, and more mailboxes than the generator's sessions can use (ports, memory).
MAX_USERS = 100_000


def check_user_count(users: int, root: Path, source: str) -> None:
    """Refuse, before anything is created, a user count the machine or the suite cannot hold:
    more than MAX_USERS, or more than half the free space where the deployment would live."""
    if users > MAX_USERS:
        raise UsageError(f"--users {users} (from {source}): at most {MAX_USERS:,} test users "
                         "per deployment")
    existing = next((p for p in (root, *root.parents) if p.exists()), Path("/"))
    try:
        stat = os.statvfs(existing)
    except OSError:
        return
    free = stat.f_bavail * stat.f_frsize
    if users * BYTES_PER_USER > free // 2:
        raise UsageError(f"--users {users} (from {source}): about "
                         f"{users * BYTES_PER_USER / 1e6:,.0f} MB, more than half the "
                         f"{free / 1e6:,.0f} MB free in {existing}")


def _configure_replication(infos: list[InstanceInfo], admin_password: str) -> list[Any]:
    """Stores with a master and a replica slot replicate (sync_client -r to sync_server)."""
    from loadtest.deploy import replication
    from loadtest.deploy.binaries import PACKAGED_BIN_DIR

    found = replication.pairs(infos)
    if not found:
        return []
    bin_dir = PACKAGED_BIN_DIR  # cyrus-replication's programs, whatever master runs
    for tool in ("sync_client", "sync_server"):
        if not (bin_dir / tool).exists():
            raise UsageError(f"a topology with replica slots needs {bin_dir / tool}: install "
                             "Debian's cyrus-replication (ci/setup does)")
    for master, replica in found:
        sync_port = inst.free_port()
        replica_conf = Path(replica.cyrus_conf)
        replica_conf.write_text(replication.add_to_section(
            replica_conf.read_text(), "SERVICES",
            replication.replica_service(bin_dir, replica.imapd_conf, replica.host, sync_port)))
        master_conf = Path(master.cyrus_conf)
        master_conf.write_text(replication.add_to_section(
            master_conf.read_text(), "DAEMON", replication.master_daemon(bin_dir, master.imapd_conf)))
        imapd_conf = Path(master.imapd_conf)
        imapd_conf.write_text(imapd_conf.read_text() + replication.master_settings(
            replica.host, sync_port, ADMIN_USER, admin_password))
        _, _uid, gid = inst.service_user()
        os.chown(imapd_conf, -1, gid)
        imapd_conf.chmod(0o640)  # it now holds the admin's password: Cyrus's group only
        master.options = {**master.options, "replica": replica.name}
        replica.options = {**replica.options, "replica_of": master.name, "sync_port": sync_port}
    return found


def _ports(count: int, port: int | None, source: str) -> list[int]:
    if port is None:
        return [inst.free_port() for _ in range(count)]
    if not 1 <= port <= 65535 - count + 1:
        raise UsageError(f"port {port} (from {source}) is out of range")
    ports = list(range(port, port + count))
    for p in ports:
        inst.check_port_free(inst.HOST, p, source)
    return ports


def _free_ports(count: int, taken: Sequence[int]) -> list[int]:
    """``count`` free ports, none of them in ``taken`` nor twice."""
    ports: list[int] = []
    while len(ports) < count:
        candidate = inst.free_port()
        if candidate not in taken and candidate not in ports:
            ports.append(candidate)
    return ports


def deploy_up(root: str | Path, *, users: int = 100, instances: int = 1,
              slots: Sequence[SlotSpec] | None = None, port: int | None = None,
              options: ServiceOptions | dict[str, Any] | None = None,
              progress: ProgressFn | None = None, timing: Timing | None = None,
              sources: dict[str, str] | None = None,
              volatile_dir: str | Path | None = None, tls: bool = True,
              cyrus_bin_dir: str | Path | None = None) -> Deployment:
    """Start and provision a deployment in ``root``; ``sources`` names where each argument
    came from (flag, env, file) for error messages. With ``tls`` (the default) a CA made for
    the deployment signs a certificate for every instance, which serves imaps on a port of
    its own beside imap (STARTTLS on the plain port). ``cyrus_bin_dir``: a directory of Cyrus
    programs (at least master) to run instead of the packaged ones (default: env
    LOADTEST_CYRUS_BIN_DIR, else the packaged install)."""
    sources = sources or {}
    started = time.monotonic()
    timing = timing or Timing()
    cyrus = resolve_programs(str(cyrus_bin_dir) if cyrus_bin_dir else None,
                             sources.get("cyrus_bin_dir", "flag --cyrus-bin-dir"))
    if users < 0:
        raise UsageError(f"--users {users} (from {sources.get('users', 'argument')}): must be >= 0")
    if instances < 1:
        raise UsageError(f"--instances {instances} (from "
                         f"{sources.get('instances', 'argument')}): must be >= 1")
    if not isinstance(options, ServiceOptions):
        options = ServiceOptions.from_mapping(options or {}, sources.get("options", "options"))
    slots = list(slots) if slots else standalone_slots(instances, users)
    root = Path(root).absolute()
    volatile = _volatile_base(volatile_dir, root, sources.get("volatile_dir", "flag --volatile-dir"))
    check_user_count(sum(slot.users for slot in slots), root, sources.get("users", "argument"))
    # Every check before the directory is touched: a refusal leaves nothing behind.
    ports = _ports(len(slots), port, sources.get("port", "flag --port"))
    tls_ports: list[int | None] = list(_free_ports(len(slots), ports)) if tls else [None] * len(slots)
    _prepare_root(root, sources.get("dir", "flag --dir"))

    infos: list[InstanceInfo] = []
    all_users: list[TestUser] = []
    next_user = 1
    ca_cert: Path | None = None
    try:
        admin_password = secrets.token_urlsafe(16)
        password_file = root / ADMIN_PASSWORD_FILE
        password_file.touch(mode=0o600)
        password_file.write_text(admin_password + "\n")
        if tls:
            # A CN holds at most 64 characters: name the CA by a digest of its directory.
            ca_cert = make_ca(root, hashlib.sha1(str(root).encode()).hexdigest()[:10])
        for slot, slot_port, tls_port in zip(slots, ports, tls_ports, strict=True):
            slot_options = options.updated(slot.service, slot.source or "topology")
            info = inst.lay_out(slot.name, root / slot.name, slot_options, port=slot_port,
                                admin_user=ADMIN_USER,
                                volatile=volatile / slot.name if volatile else None,
                                ca_cert=ca_cert, tls_port=tls_port, cyrus=cyrus)
            info.store, info.role = slot.store, slot.role
            infos.append(info)
            slot_users = make_users(slot.users, first=next_user, instance=slot.name)
            next_user += slot.users
            all_users.extend(slot_users)
            write_users_file(Path(info.users_file), slot_users)

        replicated = _configure_replication(infos, admin_password)
        t0 = time.monotonic()
        total = len(all_users)  # the admins' passwords are not counted
        done = 0
        _, uid, gid = inst.service_user()
        for info in infos:
            sasldb = InstancePaths.of(info).sasldb
            add_sasl_user(sasldb, ADMIN_USER, admin_password)
            # A replica holds its master's users too: they can log in there after a failover
            # (and the replication-lag collector looks for its message as the user).
            served = {info.name} | {m.name for m, r in replicated if r is info}
            for user in (u for u in all_users if u.instance in served):
                add_sasl_user(sasldb, user.name, user.password)
                done += 1
                if progress and done % 25 == 0:
                    progress("passwords", done, total)
            os.chown(sasldb, uid, gid)
        if progress and done % 25:
            progress("passwords", done, total)  # the last, partial batch: the count ends at total
        timing.sasl_s = time.monotonic() - t0

        t0 = time.monotonic()
        # Replicas first: a master's sync_client that finds no sync_server backs off ~25 s.
        for info in sorted(infos, key=lambda i: i.role != "replica"):
            inst.start(info)
        timing.start_s = time.monotonic() - t0

        t0 = time.monotonic()
        created = 0
        for info in infos:
            mine = [u for u in all_users if u.instance == info.name]

            def tick(n: int, _total: int = len(all_users)) -> None:
                nonlocal created
                created += n
                if progress and (created % 25 == 0 or created == _total):
                    progress("mailboxes", created, _total)

            create_mailboxes(info, ADMIN_USER, admin_password, mine, progress=tick)
        timing.mailboxes_s = time.monotonic() - t0
    except BaseException as exc:
        for info in infos:
            inst.stop(info)
        if isinstance(exc, UsageError | KeyboardInterrupt):
            # Bad input or the user's Ctrl-C: leave nothing. A failed start keeps its logs.
            shutil.rmtree(root, ignore_errors=True)
            if volatile is not None:
                shutil.rmtree(volatile, ignore_errors=True)
            raise
        if isinstance(exc, Exception):
            logs = "; ".join(f"{info.name}: {info.log_file} and {info.master_log}" for info in infos)
            raise RuntimeError(f"deploy up in {root} failed: {exc}\n"
                               f"logs kept ({logs or 'none written'}); "
                               f"remove with `cyrus-loadtest deploy down --dir {root}`") from exc
        raise

    users_file = root / "users.csv"
    write_users_file(users_file, all_users, with_instance=True)
    deployment = Deployment(root=str(root), instances=infos, users_file=str(users_file),
                            admin_user=ADMIN_USER, admin_password_file=str(password_file),
                            created=time.time(), ca_file=str(ca_cert) if ca_cert else None)
    deployment.save()
    timing.users = len(all_users)
    timing.total_s = time.monotonic() - started
    return deployment


def deploy_down(root: str | Path, *, remove: bool = True, source: str = "flag --dir") -> list[str]:
    """Stop every instance in ``root`` (also orphans of a crashed master) and, unless
    ``remove`` is False, delete the directory. Returns what was stopped, for the terminal."""
    root = Path(root).absolute()
    if not (root / DEPLOYMENT_FILE).exists() and not (root / MARKER).exists():
        raise UsageError(f"no cyrus-loadtest deployment in {root} (from {source})")
    stopped: list[str] = []
    if (root / DEPLOYMENT_FILE).exists():
        deployment = Deployment.load(root / DEPLOYMENT_FILE, source)
        for info in deployment.instances:
            was_alive = pid_alive(info.master_pid)
            survivors = inst.stop(info)
            if survivors:
                raise RuntimeError(f"processes of {info.name} survived SIGKILL: {survivors}")
            stopped.append(f"{info.name} ({info.address}): "
                           + ("stopped" if was_alive else "master was not running; cleaned up")
                           + f"; {log_errors(info.log_file)}")
    # Whatever still mentions the directory (a half-started deployment) is ours too.
    leftovers = pids_mentioning(str(root).rstrip("/") + "/")
    if leftovers:
        survivors = terminate(leftovers, 2.0)
        if survivors:
            raise RuntimeError(f"processes in {root} survived SIGKILL: {survivors}")
        stopped.append(f"{len(leftovers)} leftover process(es) ended")
    if remove:
        _remove_volatile(root)
        shutil.rmtree(root, ignore_errors=True)
    return stopped


def log_errors(log_file: str) -> str:
    """What Cassandane checks at every stop: IOERROR, DBERROR and fatal lines in the instance's
    syslog, as a short phrase with the first such line."""
    from loadtest.core.parsers import CYRUS_ERROR, count_cyrus_errors

    counts: dict[str, int] = {}
    first = b""
    try:
        with open(log_file, "rb") as fh:
            for line in fh:
                if CYRUS_ERROR.search(line):
                    first = first or line.strip()
                    for kind, n in count_cyrus_errors(line).items():
                        counts[kind] = counts.get(kind, 0) + n
    except OSError as exc:
        return f"its log {log_file} is unreadable ({exc.strerror})"
    if not counts:
        return "no Cyrus errors in its log"
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
    return f"Cyrus errors in its log: {kinds}; first: {first[:200].decode(errors='replace')}"


@dataclass
class InstanceStatus:
    name: str
    address: str
    master_pid: int | None
    master_alive: bool
    greeting_ok: bool
    ready_workers: float | None
    stats_age_s: float | None


def read_ready_workers(stats_file: str) -> float | None:
    """Ready imap workers according to master's stats file (None when unreadable)."""
    from loadtest.core.parsers import ParseError, parse_master_stats

    try:
        stats = parse_master_stats(Path(stats_file).read_text())
    except (OSError, ParseError):
        return None
    return stats.service("imap").get("ready_workers")


def deploy_status(root_or_file: str | Path, source: str = "default location") -> list[InstanceStatus]:
    deployment = Deployment.load(root_or_file, source)
    result = []
    for info in deployment.instances:
        alive = pid_alive(info.master_pid)
        greeting = False
        if alive:
            try:
                inst.wait_for_greeting(info, timeout=2.0)
                greeting = True
            except inst.StartError:
                greeting = False
        try:
            age = time.time() - Path(info.stats_file).stat().st_mtime
        except OSError:
            age = None
        result.append(InstanceStatus(info.name, info.address, info.master_pid, alive, greeting,
                                     read_ready_workers(info.stats_file) if alive else None, age))
    return result
