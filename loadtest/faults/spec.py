"""Fault schedules: what to inject, when, for how long, how often.

Parsing is pure; the kinds it knows and their settings are declared on their injectors
(``faults/injectors.py``, ``FaultKind``). One fault per spec string (flag ``--fault``, env
``LOADTEST_FAULTS`` separated by ``;``, or a scenario's ``faults = [...]`` list)::

    KIND[@INSTANCE]:key=value,key=value

    stall-master:at=10,duration=3            SIGSTOP master at 10 s, SIGCONT 3 s later
    rotate-binary:phase=rotation,every=0     from the phase "rotation" on, at every tick (10 ms)

Every kind, an example of each and what it does: docs/scenarios.md's fault table; each kind's own
settings, defaults and bounds: its ``KIND`` in faults/injectors.py.

``at`` is seconds after the test starts (default 0), or after the phase ``phase`` starts when
given (a fault that belongs to a phase waits for it; it never starts if the phase never runs);
``every`` repeats the fault with that period
(``count`` times, default: until the run ends); ``duration`` is how long a lasting fault lasts.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loadtest.errors import UsageError


@dataclass(frozen=True)
class Param:
    """One setting of a fault kind: its type, its default, and the bound it must keep
    (``above``: strictly greater; ``at_least``: greater or equal), said as "KIND needs ...".
    Every number is also finite and >= 0."""

    type: type
    default: Any
    above: float | None = None
    at_least: float | None = None

    def complaint(self, kind: str, key: str, value: Any) -> str | None:
        if self.above is not None and not value > self.above:
            return f"{kind} needs {key} > {self.above:g}"
        if self.at_least is not None and not value >= self.at_least:
            return f"{kind} needs {key} >= {self.at_least:g}"
        return None


@dataclass(frozen=True)
class FaultKind:
    """A fault kind as the grammar knows it, declared once on its injector
    (``faults/injectors.py``, ``Injector.KIND``): its name, whether it lasts (undone after
    ``duration``) or happens at once, its settings besides COMMON's, whether it repeats by itself
    (``every`` is then its own period, not a schedule of occurrences), and a check of the values
    that one setting's bound cannot say: it may normalise them in place and returns what is wrong
    (None: nothing)."""

    name: str
    lasting: bool
    params: dict[str, Param] = field(default_factory=dict)
    repeats_itself: bool = False
    check: Callable[[dict[str, Any]], str | None] | None = None


# Settings every kind has: when it starts (after the test, or after the phase ``phase``), how
# often it repeats and how many times.
COMMON: dict[str, Param] = {"at": Param(float, 0.0), "every": Param(float, 0.0),
                            "count": Param(int, 0), "phase": Param(str, "")}


def fault_kinds() -> dict[str, FaultKind]:
    """Every kind, in declaration order: the injectors declare them (a lazy import: the
    injectors import this module for FaultSpec)."""
    from loadtest.faults.injectors import KINDS

    return KINDS


@dataclass(frozen=True)
class FaultSpec:
    kind: str
    instance: str | None = None  # None: the first instance
    at: float = 0.0
    every: float = 0.0  # 0: once
    count: int = 0  # with every: how many times, 0 = until the run ends
    params: dict[str, Any] = field(default_factory=dict)
    text: str = ""  # as the user wrote it, for events and messages
    phase: str | None = None  # at counts from the start of this phase (None: of the test)

    @property
    def lasting(self) -> bool:
        return fault_kinds()[self.kind].lasting

    @property
    def duration(self) -> float:
        return float(self.params.get("duration", 0.0))

    def times(self, run_time: float | None = None) -> list[float]:
        """Start offsets of every occurrence (up to ``run_time`` when it repeats forever)."""
        if self.every <= 0 or fault_kinds()[self.kind].repeats_itself:
            return [self.at]
        if self.count:
            return [self.at + i * self.every for i in range(self.count)]
        if run_time is None:
            raise ValueError("an endless repeating fault needs the run time")
        n = int(max(0.0, run_time - self.at) // self.every) + 1
        return [self.at + i * self.every for i in range(n)]


def parse_fault(text: str, source: str) -> FaultSpec:
    head, _, rest = text.strip().partition(":")
    kind, _, instance = head.partition("@")
    kind = kind.strip()
    kinds = fault_kinds()
    if kind not in kinds:
        raise UsageError(f"unknown fault kind {kind!r} in {text!r} (from {source}); "
                         f"known: {', '.join(kinds)}")
    declared = kinds[kind]
    allowed = {**COMMON, **declared.params}
    values: dict[str, Any] = {name: param.default for name, param in allowed.items()}
    seen: set[str] = set()
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or key not in allowed:
            raise UsageError(f"fault {text!r} (from {source}): unknown setting {item!r} for "
                             f"{kind} (known: {', '.join(sorted(allowed))})")
        if key in seen:
            raise UsageError(f"fault {text!r} (from {source}): {key}= given twice")
        seen.add(key)
        kind_of = allowed[key].type
        try:
            value = kind_of(raw.strip())
        except ValueError:
            raise UsageError(f"fault {text!r} (from {source}): {key}={raw.strip()!r} is not "
                             f"a {kind_of.__name__}") from None
        if kind_of is float and not math.isfinite(value):
            raise UsageError(f"fault {text!r} (from {source}): {key}={raw.strip()} is not a "
                             "finite number")
        if kind_of in (int, float) and value < 0:
            raise UsageError(f"fault {text!r} (from {source}): {key}={raw.strip()} must be >= 0")
        values[key] = value
    complaint = _complaint(declared, values)
    if complaint:
        raise UsageError(f"fault {text!r} (from {source}): {complaint}")
    common = {k: values.pop(k) for k in COMMON}
    return FaultSpec(kind, instance.strip() or None, common["at"], common["every"],
                     common["count"], values, text.strip(), phase=common["phase"].strip() or None)


def _complaint(declared: FaultKind, values: dict[str, Any]) -> str | None:
    """The first thing wrong with a kind's values: its own check first, then each bound."""
    if declared.check is not None:
        found = declared.check(values)
        if found:
            return found
    for key, param in declared.params.items():
        found = param.complaint(declared.name, key, values[key])
        if found:
            return found
    return None


def parse_faults(texts: list[str] | str | None, source: str) -> list[FaultSpec]:
    if not texts:
        return []
    if isinstance(texts, str):
        texts = [t for t in texts.split(";") if t.strip()]
    return [parse_fault(t, source) for t in texts]


def signal_number(name: str) -> int:
    return int(getattr(signal, f"SIG{name}"))
