"""What the IMAP users need, resolved once from the options: targets, credentials, pacing.

No Locust here (the plugin calls :func:`build_config` at init, tests call it directly). Reads
``deployment.json`` and users files; every problem is a one-line UsageError naming the value and
where it came from.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field

from loadtest.core.credentials import Credential, pattern_credentials, read_users_file
from loadtest.deploy.deployment import Deployment, InstanceInfo, load_deployment
from loadtest.errors import UsageError
from loadtest.imap import failures as f
from loadtest.imap.steptable import CHURN, HELD, chosen_steps, missing_prerequisite
from loadtest.imap.transport import (
    DISCONNECT_MODES,
    TLS_IMPLICIT,
    TLS_MODES,
    TLS_NONE,
    Target,
    make_ssl_context,
)
from loadtest.safety import check_target
from loadtest.settings import (
    Option,
    Settings,
    declare,
    name_list,
    non_negative_float,
    port,
    positive_float,
    positive_int,
    seconds_range,
)

PER_CLASS = "per-class"  # --imap-disconnect: each user class keeps its own default
CHURN_OPTIONAL_STEPS = chosen_steps(CHURN)  # LIST, SELECT, STATUS, FETCH
HELD_STEPS = chosen_steps(HELD)  # NOOP, STATUS, IDLE

declare(
    Option("imap_host", "IMAP host to load (default: the instances in deployment.json)"),
    Option("imap_port", "IMAP port (default 143, 993 with --imap-tls implicit; with a "
           "deployment, its imap or imaps port)", parse=port),
    Option("deployment", "deployment.json (or its directory) to take targets and users from"),
    Option("imap_instances", "comma-separated instance names of the deployment to load "
           "(default: all, users spread across them)", parse=name_list()),
    Option("allow_remote_target", "allow a target outside loopback (127.0.0.0/8, ::1)",
           default=False, flag_only=True, web_ui=False),
    Option("imap_tls", "TLS: none, implicit (IMAPS) or starttls", default=TLS_NONE,
           choices=TLS_MODES),
    Option("imap_ca_file", "CA certificates (PEM) to verify the server with (default: the "
           "deployment's own CA)"),
    Option("imap_tls_resume", "TLS session resumption: on (each user offers its last session: "
           "TLS 1.2 session IDs, the only resumption Cyrus 3.6 accepts) or off (a full TLS 1.3 "
           "handshake per connection)",
           default="off", choices=("on", "off")),
    Option("imap_tls_insecure", "do not verify the server's certificate", default=False,
           flag_only=True),
    Option("imap_users_file", "CSV username,password[,instance] (default: the deployment's)"),
    Option("imap_user_pattern", "user names from a pattern instead, e.g. user{n} (n = 1..count)"),
    Option("imap_user_count", "how many users the pattern names", default="20",
           parse=positive_int),
    # Kept out of the web UI: Locust puts a secret option's value in the page source.
    Option("imap_password", "password of the pattern's users (prefer env LOADTEST_IMAP_PASSWORD)",
           secret=True, web_ui=False),
    Option("imap_disconnect", "how sessions end: logout, close (FIN) or reset (RST) for every "
           "user class; per-class (default): logout for churn and held sessions, reset for floods",
           choices=DISCONNECT_MODES, unset_choice=PER_CLASS),
    Option("imap_rate", "open loop: target sessions/s per user (0: closed loop, --imap-wait "
           "between sessions)", default="0", parse=non_negative_float),
    Option("imap_wait", "closed loop: seconds between sessions, N or MIN-MAX", default="0",
           parse=seconds_range),
    Option("imap_connect_timeout", "seconds for the TCP connect", default="5",
           parse=positive_float),
    Option("imap_timeout", "seconds for the greeting and each response", default="10",
           parse=positive_float),
    Option("imap_churn_steps", f"churn steps after LOGIN, from {','.join(CHURN_OPTIONAL_STEPS)}",
           default="LIST", parse=name_list(CHURN_OPTIONAL_STEPS)),
    Option("imap_lean", "churn on the lean raw-socket path (LIST only) instead of imapclient",
           default=False, flag_only=True),
    Option("imap_held_steps", f"held-session steps each interval, from {','.join(HELD_STEPS)}",
           default="NOOP", parse=name_list(HELD_STEPS)),
    Option("imap_held_interval", "seconds between held-session rounds", default="5",
           parse=positive_float),
    Option("imap_idle_seconds", "seconds each IDLE lasts", default="2", parse=positive_float),
    Option("imap_flood_login", "reconnect floods also LOGIN before dropping", default=False,
           flag_only=True),
    Option("imap_multiplex", "drive every flood (and lean churn) connection of a process from "
           "one event loop, each a state machine on a non-blocking socket, instead of a "
           "greenlet each (plain IMAP only)", default=False, flag_only=True),
)


@dataclass
class ImapConfig:
    # (target, credential) pairs, interleaved across instances; user k takes slots[k % len].
    slots: list[tuple[Target, Credential | None]]
    connect_timeout: float = 5.0
    timeout: float = 10.0
    disconnect: str | None = None
    rate: float = 0.0
    wait: tuple[float, float] = (0.0, 0.0)
    churn_steps: tuple[str, ...] = (f.LIST,)
    lean: bool = False
    held_steps: tuple[str, ...] = (f.NOOP,)
    held_interval: float = 5.0
    idle_seconds: float = 2.0
    flood_login: bool = False
    multiplex: bool = False
    instances: list[str] = field(default_factory=list)

    def slot(self, index: int) -> tuple[Target, Credential | None]:
        return self.slots[index % len(self.slots)]

    def think_time(self) -> float:
        low, high = self.wait
        return low if low == high else random.uniform(low, high)


def build_config(settings: Settings, require_credentials: bool = True) -> ImapConfig:
    """Resolve targets and credentials; raise UsageError (one line) on anything wrong."""
    _check_ca_file(settings)
    tls = settings["imap_tls"]
    allow_remote = settings["allow_remote_target"]
    host = settings["imap_host"]
    deployment: Deployment | None = None
    if host:
        port_ = settings["imap_port"] or (993 if tls == TLS_IMPLICIT else 143)
        check_target(host, allow_remote, settings.source("imap_host"))
        ssl_context = _ssl_context(settings, settings["imap_ca_file"],
                                   settings.source("imap_ca_file"))
        targets = [Target(host, port_, None, tls, ssl_context, _resume(settings))]
    else:
        deployment = load_deployment(settings["deployment"], settings.source("deployment"))
        instances = deployment.instances
        if settings["imap_instances"]:
            instances = [deployment.instance(name) for name in settings["imap_instances"]]
        if settings["imap_port"] and len(instances) > 1:
            raise UsageError(
                f"--imap-port (from {settings.source('imap_port')}) needs a single target; "
                f"the deployment has {len(instances)} instances (choose with --imap-instances)"
            )
        ssl_context = _deployment_ssl_context(settings, deployment)
        targets = []
        for inst in instances:
            check_target(inst.host, allow_remote, f"{deployment.origin} instance {inst.name}")
            port_ = settings["imap_port"] or _instance_port(settings, deployment, inst)
            targets.append(Target(inst.host, port_, inst.name, tls, ssl_context, _resume(settings)))
    slots = _slots(settings, targets, deployment, require_credentials)
    disconnect = settings["imap_disconnect"]
    for kind in (CHURN, HELD):
        name = f"imap_{kind}_steps"
        unmet = missing_prerequisite(kind, settings[name])
        if unmet:
            raise UsageError(
                f"--imap-{kind}-steps {','.join(settings[name])} (from {settings.source(name)}): "
                f"{unmet[0]} needs {unmet[1]}"
            )
    if settings["imap_multiplex"] and tls != TLS_NONE:
        raise UsageError(
            f"--imap-multiplex (from {settings.source('imap_multiplex')}) drives plain IMAP "
            f"only; --imap-tls is {tls} (from {settings.source('imap_tls')})"
        )
    return ImapConfig(
        slots=slots,
        connect_timeout=settings["imap_connect_timeout"],
        timeout=settings["imap_timeout"],
        disconnect=disconnect,
        rate=settings["imap_rate"],
        wait=settings["imap_wait"],
        churn_steps=tuple(s for s in CHURN_OPTIONAL_STEPS if s in settings["imap_churn_steps"]),
        lean=settings["imap_lean"],
        held_steps=tuple(s for s in HELD_STEPS if s in settings["imap_held_steps"]),
        held_interval=settings["imap_held_interval"],
        idle_seconds=settings["imap_idle_seconds"],
        flood_login=settings["imap_flood_login"],
        multiplex=settings["imap_multiplex"],
        instances=[t.instance for t in targets if t.instance],
    )


def _check_ca_file(settings: Settings) -> None:
    ca_file = settings["imap_ca_file"]
    if ca_file and not os.path.isfile(ca_file):
        raise UsageError(
            f"CA file {ca_file} (from {settings.source('imap_ca_file')}) does not exist"
        )


def _ssl_context(settings: Settings, ca_file: str | None, source: str):
    if settings["imap_tls"] == TLS_NONE:
        return None
    try:
        return make_ssl_context(ca_file, verify=not settings["imap_tls_insecure"],
                                resume=_resume(settings))
    except Exception as exc:  # ssl.SSLError on a file that is not PEM certificates
        raise UsageError(
            f"CA file {ca_file} (from {source}) is not usable: {exc.__class__.__name__}"
        ) from None


def _resume(settings: Settings) -> bool:
    return settings["imap_tls"] != TLS_NONE and settings["imap_tls_resume"] == "on"


def _no_tls(settings: Settings, deployment: Deployment) -> UsageError:
    return UsageError(
        f"--imap-tls {settings['imap_tls']} (from {settings.source('imap_tls')}): the "
        f"deployment {deployment.path} serves no TLS (deployed with --tls none); redeploy "
        "without it, or load it with --imap-tls none"
    )


def _deployment_ssl_context(settings: Settings, deployment: Deployment):
    """The context for a deployment's instances: --imap-ca-file if given, else the CA that
    `deploy up` made for the deployment."""
    if settings["imap_ca_file"]:
        return _ssl_context(settings, settings["imap_ca_file"], settings.source("imap_ca_file"))
    if settings["imap_tls"] != TLS_NONE and not deployment.ca_file:
        raise _no_tls(settings, deployment)
    return _ssl_context(settings, deployment.ca_file, f"{deployment.path} ca_file")


def _instance_port(settings: Settings, deployment: Deployment, inst: InstanceInfo) -> int:
    """The imaps port for implicit TLS, the imap port otherwise (STARTTLS starts on it)."""
    if settings["imap_tls"] != TLS_IMPLICIT:
        return inst.port
    if inst.tls_port is None:
        raise _no_tls(settings, deployment)
    return inst.tls_port


def _credentials(
    settings: Settings, deployment: Deployment | None, require: bool
) -> list[Credential] | None:
    users_file = settings["imap_users_file"]
    if users_file:
        return read_users_file(users_file, settings.source("imap_users_file"))
    pattern = settings["imap_user_pattern"]
    if pattern:
        password = settings["imap_password"]
        if not password:
            raise UsageError(
                f"--imap-user-pattern (from {settings.source('imap_user_pattern')}) needs "
                "--imap-password (env LOADTEST_IMAP_PASSWORD)"
            )
        return pattern_credentials(
            pattern, password, settings["imap_user_count"], settings.source("imap_user_pattern")
        )
    if deployment is None:
        try:
            deployment = load_deployment(settings["deployment"], settings.source("deployment"))
        except UsageError:
            if not require:
                return None
            raise UsageError(
                "no credentials: pass --imap-users-file, or --imap-user-pattern with "
                "--imap-password, or a deployment (--deployment)"
            ) from None
    return read_users_file(deployment.users_file, deployment.origin)


def _slots(
    settings: Settings,
    targets: list[Target],
    deployment: Deployment | None,
    require_credentials: bool,
) -> list[tuple[Target, Credential | None]]:
    credentials = _credentials(settings, deployment, require_credentials)
    if credentials is None:
        return [(t, None) for t in targets]
    columns: list[list[tuple[Target, Credential]]]
    if any(c.instance for c in credentials) and any(t.instance for t in targets):
        # The file says where each mailbox lives: log in there, skip unselected instances.
        by_instance = {t.instance: t for t in targets}
        per_target: dict[str | None, list[tuple[Target, Credential]]] = {}
        for cred in credentials:
            target = by_instance.get(cred.instance)
            if target is None and cred.instance is None and len(targets) == 1:
                target = targets[0]
            if target is not None:
                per_target.setdefault(target.instance, []).append((target, cred))
        columns = list(per_target.values())
    else:
        # Same users everywhere (or one target): deal credentials round-robin over targets.
        columns = [[] for _ in targets]
        for i, cred in enumerate(credentials):
            columns[i % len(targets)].append((targets[i % len(targets)], cred))
    slots = _interleave(columns)
    if not slots:
        names = ", ".join(t.instance or t.host for t in targets)
        raise UsageError(f"no users for the selected targets ({names}) in the users file")
    return slots


def _interleave(columns: list[list[tuple[Target, Credential]]]
                ) -> list[tuple[Target, Credential | None]]:
    """Consecutive users go to different instances: a0, b0, a1, b1, ..."""
    out: list[tuple[Target, Credential | None]] = []
    for i in range(max((len(c) for c in columns), default=0)):
        out.extend(column[i] for column in columns if i < len(column))
    return out
