"""Render one instance's imapd.conf and cyrus.conf from the templates in fixtures/cyrus/.

Pure module: no processes, no sockets. Service options are validated here, with the source of
each value, because later scenarios vary them from flags, topology files and fixtures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from string import Template
from typing import Any

from loadtest.deploy.binaries import PACKAGED_BIN_DIR
from loadtest.errors import UsageError
from loadtest.paths import fixtures_dir

SERVERNAME = "loadtest"  # sasldb realm must equal servername, or logins fail as cross-realm


@dataclass(frozen=True)
class ServiceOptions:
    """The Cyrus knobs that matter under load; every scenario may change them."""

    prefork: int = 2
    maxchild: int = 400
    maxforkrate: int = 0  # 0 = unlimited; master ignores the socket above it, retrying each 0.4 s
    imapd_reuse: int = 250  # imapd -U: connections per process; 1 = one process per connection
    imapd_idle_timeout: int = 60  # imapd -T: seconds an idle process waits for a new connection
    listen_backlog: int = 1024  # master -l; Cyrus' own default is 32
    babysit: bool = False  # babysit=1 silently sets maxforkrate=10
    prometheus_update_freq: int = 1  # seconds between master.txt rewrites: the heartbeat period
    failedloginpause: int = 0
    idled: bool = True  # IDLE push needs idled in DAEMON
    imapd_binary: str = ""  # default: the deployment's imapd; "symlink": through bin/imapd, for rotation
    httpd_metrics: bool = False  # also run httpd with Cyrus's own /metrics (a port of its own)

    _MINIMUMS = {"prefork": 0, "maxchild": 1, "maxforkrate": 0, "imapd_reuse": 1,
                 "imapd_idle_timeout": 1, "listen_backlog": 1, "prometheus_update_freq": 1,
                 "failedloginpause": 0}

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_mapping(cls, values: dict[str, Any], source: str) -> ServiceOptions:
        """Build from user input (flags, a topology table), naming ``source`` in every error."""
        return cls().updated(values, source)

    def updated(self, values: dict[str, Any], source: str) -> ServiceOptions:
        known = set(self.names())
        clean: dict[str, Any] = {}
        for key, raw in values.items():
            if key not in known:
                raise UsageError(f"unknown service option {key!r} in {source} "
                                 f"(known: {', '.join(sorted(known))})")
            clean[key] = _coerce(key, raw, type(getattr(self, key)), source)
            minimum = self._MINIMUMS.get(key)
            if minimum is not None and clean[key] < minimum:
                raise UsageError(f"service option {key}={raw!r} in {source}: must be >= {minimum}")
        return replace(self, **clean)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.names()}


def _coerce(key: str, raw: Any, kind: type, source: str) -> Any:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in {"1", "yes", "true", "on"}:
            return True
        if text in {"0", "no", "false", "off"}:
            return False
        raise UsageError(f"service option {key}={raw!r} in {source}: expected yes or no")
    if kind is int:
        if isinstance(raw, bool):
            raise UsageError(f"service option {key}={raw!r} in {source}: expected an integer")
        try:
            return int(str(raw).strip())
        except ValueError:
            raise UsageError(f"service option {key}={raw!r} in {source}: expected an integer") from None
    return str(raw)


@dataclass(frozen=True)
class TlsFiles:
    """An instance's certificate and key (made by loadtest.deploy.tls)."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class InstancePaths:
    """Where one instance keeps everything: derived from its root directory and, optionally, a
    volatile directory (a tmpfs, as Debian's /run/cyrus) for what is rewritten per connection:
    proc and lock files, sockets, the stats file."""

    root: Path
    volatile: Path | None = None

    @classmethod
    def of(cls, info: Any) -> InstancePaths:
        """The paths of a deployment's InstanceInfo."""
        return cls(Path(info.root), Path(info.volatile_root) if info.volatile_root else None)

    @property
    def imapd_conf(self) -> Path: return self.root / "imapd.conf"
    @property
    def cyrus_conf(self) -> Path: return self.root / "cyrus.conf"
    @property
    def config_dir(self) -> Path: return self.root / "conf"
    @property
    def data_dir(self) -> Path: return self.root / "data"
    @property
    def sieve_dir(self) -> Path: return self.root / "sieve"
    @property
    def run_dir(self) -> Path: return (self.volatile or self.root) / "run"
    @property
    def proc_dir(self) -> Path: return self.run_dir / "proc"
    @property
    def lock_dir(self) -> Path: return self.run_dir / "lock"
    @property
    def socket_dir(self) -> Path: return self.run_dir / "socket"
    @property
    def pid_file(self) -> Path: return self.run_dir / "master.pid"
    @property
    def syslog_socket(self) -> Path: return self.run_dir / "log.sock"
    @property
    def stats_dir(self) -> Path: return (self.volatile or self.root) / "stats"
    @property
    def stats_file(self) -> Path: return self.stats_dir / "master.txt"
    @property
    def log_dir(self) -> Path: return self.root / "log"
    @property
    def log_file(self) -> Path: return self.log_dir / "syslog.log"
    @property
    def master_log(self) -> Path: return self.log_dir / "master.log"
    @property
    def sasldb(self) -> Path: return self.config_dir / "sasldb2"
    @property
    def users_file(self) -> Path: return self.root / "users.csv"
    @property
    def fake_dev(self) -> Path: return self.root / "dev"
    @property
    def bin_dir(self) -> Path: return self.root / "bin"
    @property
    def imapd_link(self) -> Path: return self.bin_dir / "imapd"

    def directories(self) -> list[Path]:
        """Every directory Cyrus expects to exist before master starts."""
        conf = self.config_dir
        return [self.root, *([self.volatile] if self.volatile else []), conf, conf / "db", conf / "socket", conf / "log", conf / "msg",
                conf / "user", conf / "quota", conf / "sieve", self.data_dir, self.sieve_dir,
                self.run_dir, self.proc_dir, self.lock_dir, self.socket_dir, self.stats_dir,
                self.log_dir]


def _tls_lines(tls: TlsFiles | None) -> str:
    if tls is None:
        return "# TLS: off (deploy up --tls none)"
    return ("# TLS: imaps on its own port, STARTTLS on the plain one; certificate signed by the\n"
            "# deployment's own CA.\n"
            f"tls_server_cert: {tls.cert}\n"
            f"tls_server_key: {tls.key}\n"
            "# No client certificates: production IMAP clients send none.\n"
            "tls_client_certs: off")


def render_imapd_conf(name: str, paths: InstancePaths, options: ServiceOptions, *,
                      admin_user: str, cyrus_user: str | None,
                      tls: TlsFiles | None = None) -> str:
    template = Template((fixtures_dir() / "cyrus" / "imapd.conf.tmpl").read_text())
    return template.substitute(
        instance_name=name, root=paths.root, config_dir=paths.config_dir,
        data_dir=paths.data_dir, sieve_dir=paths.sieve_dir, proc_dir=paths.proc_dir,
        lock_dir=paths.lock_dir, socket_dir=paths.socket_dir, stats_dir=paths.stats_dir,
        sasldb_path=paths.sasldb, servername=SERVERNAME, syslog_prefix=f"loadtest-{name}",
        cyrus_user_line=f"cyrus_user: {cyrus_user}" if cyrus_user else "",
        prometheus_update_freq=options.prometheus_update_freq, admin_user=admin_user,
        failedloginpause=options.failedloginpause, tls_lines=_tls_lines(tls),
        httpd_lines=("httpmodules: prometheus\nprometheus_need_auth: none"
                     if options.httpd_metrics else ""),
    )


def render_cyrus_conf(name: str, paths: InstancePaths, options: ServiceOptions, *,
                      host: str, port: int, programs: Mapping[str, str | Path],
                      tls_port: int | None = None, httpd_port: int | None = None) -> str:
    """``programs``: path of each Cyrus program by name (imapd, ctl_cyrusdb, idled), which may
    come from different directories (a build directory and the packaged install). With
    ``tls_port`` an `imaps` service (imapd -s: TLS from the first byte) beside `imap`, with the
    same process options; with ``httpd_port`` Cyrus's httpd (and promstatsd, both from the
    packaged install) serving /metrics."""
    template = Template((fixtures_dir() / "cyrus" / "cyrus.conf.tmpl").read_text())
    idled = f'  idled  cmd="{programs["idled"]} -C {paths.imapd_conf}"' if options.idled else ""
    imapd = options.imapd_binary or str(programs["imapd"])
    imaps = ""
    if tls_port is not None:
        imaps = (f'  imaps cmd="{imapd} -s -C {paths.imapd_conf} -U {options.imapd_reuse} '
                 f'-T {options.imapd_idle_timeout}" listen="{host}:{tls_port}" '
                 f"prefork={options.prefork} maxchild={options.maxchild}"
                 f"{_limit_attributes(options)}")
    return template.substitute(
        instance_name=name, ctl_cyrusdb=programs["ctl_cyrusdb"], imapd_conf=paths.imapd_conf,
        imapd_binary=imapd, imaps_line=imaps,
        imapd_reuse=options.imapd_reuse, imapd_idle_timeout=options.imapd_idle_timeout,
        host=host, port=port, prefork=options.prefork, maxchild=options.maxchild,
        maxforkrate_attr=f" maxforkrate={options.maxforkrate}" if options.maxforkrate else "",
        babysit_attr=" babysit=1" if options.babysit else "",
        idled_line=idled,
        httpd_service=(f'  http  cmd="{PACKAGED_BIN_DIR}/httpd -C {paths.imapd_conf}" '
                       f'listen="{host}:{httpd_port}" prefork=0'
                       if httpd_port else ""),
        # httpd's /metrics serves what promstatsd collates from every service's stats files.
        promstatsd_line=(f'  promstatsd  cmd="{PACKAGED_BIN_DIR}/promstatsd -C {paths.imapd_conf}"'
                         if httpd_port else ""),
    )


def _limit_attributes(options: ServiceOptions) -> str:
    return ((f" maxforkrate={options.maxforkrate}" if options.maxforkrate else "")
            + (" babysit=1" if options.babysit else ""))
