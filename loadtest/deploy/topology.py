"""Topologies of stores and slots, as in the FastMail incident: a slot is one Cyrus instance (its
own config dir, partition and master); a store is a logical server made of a master slot and
optionally a replica slot. Users live on their store's master slot.

Pure module. File format (TOML)::

    [service]              # optional: service options for every slot
    prefork = 1

    [[store]]
    name = "store1"
    users = 20             # users living on this store
    master = "slot101"     # the slot that serves it
    replica = "slot201"    # optional: started as its own instance, holds no users
                           # (replication itself is not configured by this tool)
    [store.service]        # optional: options for this store's slots
    maxchild = 50
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtest.deploy.render import ServiceOptions
from loadtest.errors import UsageError
from loadtest.tomllines import TomlLines

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
STORE_KEYS = {"name", "users", "master", "replica", "service"}


@dataclass(frozen=True)
class SlotSpec:
    name: str
    users: int
    store: str | None = None
    role: str = "standalone"
    service: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # where the slot came from, for error messages


def spread(total: int, parts: int) -> list[int]:
    """``total`` users over ``parts`` slots as evenly as possible, the remainder first."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def standalone_slots(instances: int, users: int) -> list[SlotSpec]:
    """`--instances K`: K independent slots, the users spread across them."""
    if instances == 1:
        return [SlotSpec("slot1", users)]
    return [SlotSpec(f"slot{i + 1}", n) for i, n in enumerate(spread(users, instances))]


def parse_topology(text: str, source: str) -> tuple[list[SlotSpec], dict[str, Any]]:
    """Slots and the file-wide service options, or UsageError naming file, line and reason."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{source}: not valid TOML: {exc}") from None
    lines = TomlLines(text)
    unknown = set(data) - {"service", "store"}
    if unknown:
        key = sorted(unknown)[0]
        raise UsageError(f"{source}:{lines.top_level(key) or 1}: unknown table or key {key!r} "
                         "(expected [service] and [[store]])")
    service = data.get("service", {})
    if not isinstance(service, dict):
        raise UsageError(f"{source}:{lines.top_level('service') or 1}: [service] must be a table")
    ServiceOptions.from_mapping(service, f"{source}:{lines.table('service') or 1}")
    stores = data.get("store", [])
    if not isinstance(stores, list) or not stores:
        raise UsageError(f"{source}: no [[store]] entries: a topology needs at least one store")
    slots: list[SlotSpec] = []
    seen: set[str] = set()
    for index, store in enumerate(stores):
        line = lines.array_table("store", index) or 1
        where = f"{source}:{line}"
        extra = set(store) - STORE_KEYS
        if extra:
            raise UsageError(f"{where}: unknown key {sorted(extra)[0]!r} in [[store]] "
                             f"(known: {', '.join(sorted(STORE_KEYS))})")
        name = store.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise UsageError(f"{where}: store name {name!r} must be a word of letters, digits, "
                             "- and _ starting with a letter")
        users = store.get("users", 0)
        if not isinstance(users, int) or isinstance(users, bool) or users < 0:
            raise UsageError(f"{where}: store {name!r}: users = {users!r} must be a whole "
                             "number >= 0")
        options = {**service, **store.get("service", {})}
        ServiceOptions.from_mapping(options, f"{where} (store {name!r})")
        for role in ("master", "replica"):
            slot = store.get(role)
            if slot is None:
                if role == "master":
                    raise UsageError(f"{where}: store {name!r} has no master slot")
                continue
            if not isinstance(slot, str) or not NAME_RE.match(slot):
                raise UsageError(f"{where}: store {name!r}: {role} slot name {slot!r} is not "
                                 "a valid name")
            if slot in seen:
                raise UsageError(f"{where}: slot {slot!r} is used twice")
            seen.add(slot)
            slots.append(SlotSpec(slot, users if role == "master" else 0, name, role,
                                  options, where))
    return slots, service


def load_topology(path: str | Path, source: str = "flag --topology") -> list[SlotSpec]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read topology file {path} (from {source}): "
                         f"{exc.strerror}") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise UsageError(f"topology file {path} line {line} (from {source}): not UTF-8 text "
                         f"(byte {exc.object[exc.start]:#04x})") from None
    slots, _ = parse_topology(text, str(path))
    return slots
