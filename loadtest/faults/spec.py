"""Fault schedules: what to inject, when, for how long, how often.

Pure module. One fault per spec string (flag ``--fault``, env ``LOADTEST_FAULTS`` separated by
``;``, or a scenario's ``faults = [...]`` list)::

    KIND[@INSTANCE]:key=value,key=value

    stall-master:at=10,duration=3            SIGSTOP master at 10 s, SIGCONT 3 s later
    signal-storm:at=5,duration=10,rate=2000  2,000 SIGCHLD/s at master, evenly paced from a
                                             process of its own (the EINTR path of 2016)
    eintr-inject:at=5,duration=10            every pselect6 of master fails with EINTR (strace
                                             -e inject), the 2016 condition made certain
    reload-master:at=20                      SIGHUP master once
    rotate-binary:at=0,every=2,copies=5      re-point the imapd symlink every 2 s (UC Davis)
    rotate-binary:phase=rotation,every=0     from the phase "rotation" on, at every tick (10 ms)
    kill-child:at=5,every=1,count=10         SIGKILL a random imapd child, 10 times
    kill-master:at=30                        SIGKILL master; restarted when the run ends

``at`` is seconds after the test starts (default 0), or after the phase ``phase`` starts when
given (a fault that belongs to a phase waits for it; it never starts if the phase never runs);
``every`` repeats the fault with that period
(``count`` times, default: until the run ends); ``duration`` is how long a lasting fault lasts.
"""

from __future__ import annotations

import math
import signal
from dataclasses import dataclass, field
from typing import Any

from loadtest.errors import UsageError
from loadtest.faults.storm import MAX_RATE as MAX_STORM_RATE

# kind -> (lasting?, {param: (type, default)})
KINDS: dict[str, tuple[bool, dict[str, tuple[type, Any]]]] = {
    "stall-master": (True, {"duration": (float, 3.0)}),
    "signal-storm": (True, {"duration": (float, 5.0), "rate": (float, 1000.0), "signal": (str, "CHLD")}),
    "eintr-inject": (True, {"duration": (float, 10.0)}),
    "reload-master": (False, {}),
    "rotate-binary": (True, {"copies": (int, 5), "duration": (float, 0.0)}),
    "kill-child": (False, {"service": (str, "imap")}),
    "kill-master": (False, {}),
}
COMMON: dict[str, tuple[type, Any]] = {"at": (float, 0.0), "every": (float, 0.0), "count": (int, 0),
                                       "phase": (str, "")}


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
        return KINDS[self.kind][0]

    @property
    def duration(self) -> float:
        return float(self.params.get("duration", 0.0))

    def times(self, run_time: float | None = None) -> list[float]:
        """Start offsets of every occurrence (up to ``run_time`` when it repeats forever)."""
        if self.every <= 0 or self.kind == "rotate-binary":  # rotation repeats by itself
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
    if kind not in KINDS:
        raise UsageError(f"unknown fault kind {kind!r} in {text!r} (from {source}); "
                         f"known: {', '.join(KINDS)}")
    lasting, params = KINDS[kind]
    allowed = {**COMMON, **params}
    values: dict[str, Any] = {name: default for name, (_, default) in allowed.items()}
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
        kind_of = allowed[key][0]
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
    if kind == "signal-storm":
        name = str(values["signal"]).upper().removeprefix("SIG")
        if name not in {"CHLD", "ALRM", "URG", "WINCH"}:
            raise UsageError(f"fault {text!r} (from {source}): signal {values['signal']!r} is "
                             "not harmless to master; use CHLD, ALRM, URG or WINCH")
        values["signal"] = name
        if not 0 < values["rate"] <= MAX_STORM_RATE:
            raise UsageError(f"fault {text!r} (from {source}): rate={values['rate']:g} must be "
                             f"> 0 and at most {MAX_STORM_RATE:,.0f} signals/s")
    if kind == "rotate-binary" and values["copies"] < 2:
        raise UsageError(f"fault {text!r} (from {source}): rotate-binary needs copies >= 2")
    if kind in ("stall-master", "signal-storm", "eintr-inject") and values["duration"] <= 0:
        raise UsageError(f"fault {text!r} (from {source}): {kind} needs duration > 0")
    common = {k: values.pop(k) for k in COMMON}
    return FaultSpec(kind, instance.strip() or None, common["at"], common["every"],
                     common["count"], values, text.strip(), phase=common["phase"].strip() or None)


def parse_faults(texts: list[str] | str | None, source: str) -> list[FaultSpec]:
    if not texts:
        return []
    if isinstance(texts, str):
        texts = [t for t in texts.split(";") if t.strip()]
    return [parse_fault(t, source) for t in texts]


def signal_number(name: str) -> int:
    return int(getattr(signal, f"SIG{name}"))
