"""`deployment.json`: what a load run needs to know about a running test deployment.

Pure module (files only): written by `deploy up`, read by locustfiles, collectors, the gate and
`deploy status/down`. Paths are absolute.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadtest import FORMAT_VERSION
from loadtest.errors import UsageError
from loadtest.paths import atomic_write

DEPLOYMENT_FILE = "deployment.json"
ENV_DEPLOYMENT = "LOADTEST_DEPLOYMENT"


@dataclass
class InstanceInfo:
    """One Cyrus instance (a "slot"): its own master, port, config and data directories."""

    name: str
    host: str
    port: int
    root: str  # the instance's own directory; everything it writes lives below it
    imapd_conf: str
    cyrus_conf: str
    config_dir: str
    data_dir: str  # the mail partition
    proc_dir: str
    lock_dir: str
    stats_file: str  # master's Prometheus text file, rewritten every update interval
    pid_file: str
    log_file: str  # syslog lines of this instance, captured by our receiver
    master_log: str  # master's own stdout/stderr
    users_file: str  # CSV username,password of the users living on this instance
    master_pid: int | None = None
    syslog_pid: int | None = None
    store: str | None = None
    role: str = "standalone"  # standalone | master | replica
    options: dict[str, Any] = field(default_factory=dict)  # service options it was rendered with
    volatile_root: str | None = None  # proc, lock, sockets, stats here (a tmpfs) when set
    tls_port: int | None = None  # imaps (TLS from the first byte); None with `deploy up --tls none`
    tls_cert: str | None = None  # server certificate (signed by the deployment's CA)
    metrics_url: str | None = None  # Cyrus's own httpd /metrics (deploy up --httpd-metrics)
    cyrus: dict[str, Any] = field(default_factory=dict)  # deploy.binaries.CyrusPrograms: which
    # master, imapd... (a build directory and/or the packaged install), master's version

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class Deployment:
    root: str
    instances: list[InstanceInfo]
    users_file: str  # CSV username,password[,instance] of every user
    admin_user: str
    admin_password_file: str  # mode 0600; never copied into artifacts
    created: float = 0.0
    version: int = FORMAT_VERSION
    ca_file: str | None = None  # the CA that signed every instance's certificate; None: no TLS

    @property
    def path(self) -> Path:
        return Path(self.root) / DEPLOYMENT_FILE

    def instance(self, name: str) -> InstanceInfo:
        for inst in self.instances:
            if inst.name == name:
                return inst
        names = ", ".join(i.name for i in self.instances)
        raise UsageError(f"no instance {name!r} in {self.path} (it has: {names})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self) -> Path:
        return atomic_write(self.path, json.dumps(self.to_dict(), indent=2) + "\n")

    # The file this deployment was read from, with where that choice came from (not the `root`
    # written inside the JSON): errors about its contents name the file the user passed.
    loaded_from: str | None = None

    @property
    def origin(self) -> str:
        return self.loaded_from or str(self.path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str) -> Deployment:
        if not isinstance(data, dict):
            raise UsageError(f"{source}: not a cyrus-loadtest deployment file (a JSON "
                             f"{type(data).__name__}, not an object)")
        version = data.get("version")
        if version != FORMAT_VERSION:
            raise UsageError(
                f"{source}: deployment format version {version!r}, this cyrus-loadtest reads "
                f"version {FORMAT_VERSION}; redeploy with `cyrus-loadtest deploy up`"
            )
        try:
            raw = data["instances"]
            if not isinstance(raw, list) or not raw:
                raise TypeError('"instances" must be a non-empty list')
            instances = [InstanceInfo(**i) for i in raw]
            rest = {k: v for k, v in data.items() if k != "instances"}
            deployment = cls(instances=instances, **rest)
        except (KeyError, TypeError) as exc:
            raise UsageError(f"{source}: not a cyrus-loadtest deployment file ({exc})") from None
        for info in instances:
            _check_instance(info, source)
        deployment.loaded_from = source
        return deployment

    @classmethod
    def load(cls, path: str | os.PathLike[str], source: str | None = None) -> Deployment:
        path = Path(path)
        if path.is_dir():
            path = path / DEPLOYMENT_FILE
        where = f"{path} (from {source})" if source else str(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise UsageError(
                f"no deployment at {where}: start one with `cyrus-loadtest deploy up`"
            ) from None
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read deployment {where}: {exc}") from None
        return cls.from_dict(data, where)


def _check_instance(info: InstanceInfo, source: str) -> None:
    """The fields a load run acts on have the right type (a hand-edited file fails here, in one
    line, not in a socket call or an os.kill)."""
    def bad(field_name: str, value: Any, wanted: str) -> UsageError:
        return UsageError(f"{source}: instance {info.name!r}: {field_name} {value!r} is not "
                          f"{wanted}")

    if not isinstance(info.name, str) or not info.name:
        raise bad("name", info.name, "a name")
    if not isinstance(info.host, str) or not info.host:
        raise bad("host", info.host, "a host name or address")
    if isinstance(info.port, bool) or not isinstance(info.port, int) or not 0 < info.port < 65536:
        raise bad("port", info.port, "a port number (1-65535)")
    for name in ("master_pid", "syslog_pid"):
        value = getattr(info, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value <= 0):
            raise bad(name, value, "a process id")
    for name in ("root", "users_file", "stats_file", "pid_file", "log_file", "data_dir",
                 "proc_dir"):
        if not isinstance(getattr(info, name), str):
            raise bad(name, getattr(info, name), "a path")


def default_root() -> Path:
    """Where `deploy up` puts a deployment when no --dir is given (tmpfs when there is one)."""
    override = os.environ.get("LOADTEST_HOME")
    if override:
        return Path(override) / "default"
    user = os.environ.get("USER") or str(os.getuid())
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm / f"cyrus-loadtest-{user}" / "default"
    return Path.home() / ".cache" / "cyrus-loadtest" / "default"


def locate(explicit: str | None = None, explicit_source: str = "flag --deployment") -> tuple[Path, str]:
    """Find the deployment.json to use and say where that choice came from.

    Order: an explicit path (flag or config), then env LOADTEST_DEPLOYMENT, then the default root.
    """
    if explicit:
        return Path(explicit), explicit_source
    env = os.environ.get(ENV_DEPLOYMENT)
    if env:
        return Path(env), f"env {ENV_DEPLOYMENT}"
    return default_root() / DEPLOYMENT_FILE, "default location"


def load_deployment(explicit: str | None = None, explicit_source: str = "flag --deployment") -> Deployment:
    path, source = locate(explicit, explicit_source)
    return Deployment.load(path, source)
