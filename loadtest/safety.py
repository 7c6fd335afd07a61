"""Target safety: loopback-only unless explicitly allowed, and password redaction.

Pure module: no Locust, no gevent.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from typing import Any

from loadtest.errors import UsageError

REDACTED = "***"
# Keys whose values are secrets wherever they appear in options or artifacts.
SECRET_KEYS = frozenset({"password", "passwd", "admin_password", "imap_password", "secret"})


def is_loopback(host: str) -> bool:
    """True when every address ``host`` resolves to is loopback (127.0.0.0/8 or ::1)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses)


def check_target(host: str, allow_remote: bool, source: str = "target") -> None:
    """Refuse a non-loopback target unless the user allowed it explicitly."""
    if allow_remote or is_loopback(host):
        return
    raise UsageError(
        f"refusing non-loopback target {host!r} (from {source}): this tool floods servers; "
        "pass --allow-remote-target (env LOADTEST_ALLOW_REMOTE_TARGET=1) if you mean it"
    )


def redact(options: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``options`` with every secret-looking value replaced, recursively."""
    clean: dict[str, Any] = {}
    for key, value in options.items():
        if any(s in key.lower() for s in SECRET_KEYS):
            clean[key] = REDACTED if value else value
        elif isinstance(value, Mapping):
            clean[key] = redact(value)
        elif isinstance(value, list):
            clean[key] = [redact(v) if isinstance(v, Mapping) else v for v in value]
        else:
            clean[key] = value
    return clean
