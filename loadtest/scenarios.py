"""The incident scenarios: each a plan of named phases (plain data) and a PhasedShape that runs
it, plus the few users whose behaviour a scenario fixes. docs/scenarios.md says what each
reproduces, how to run it and how to read its verdict.

Every phase adds (or, at the end of the reconnect storm, removes) users of exactly one class:
Locust's dispatcher splits a mixed addition by class weight, not by the counts a scenario wants,
and it removes the most recently added users first, so one class per step keeps counts exact.

Sizes come from three options shared by every scenario (``--scenario-duration``,
``--scenario-users``, ``--scenario-held``); each scenario has its own defaults.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from typing import Any

from loadtest import plugin
from loadtest.imap.lean import login_command
from loadtest.settings import Option, declare, positive_float, positive_int
from loadtest.shapes import Phase, PhasedShape, fast_spawn_rate
from loadtest.users import ChurnUser, HeldSessionUser, ReconnectFloodUser

GROUP = "cyrus-loadtest scenario"
declare(
    Option("scenario_duration", "total seconds of the scenario (default: the scenario's own)",
           parse=positive_float, group=GROUP),
    Option("scenario_users", "peak churn users of the scenario: login rush users, storm users, "
           "churn users (default: the scenario's own)", parse=positive_int, group=GROUP),
    Option("scenario_held", "held sessions kept open throughout (default: the scenario's own; "
           "the process churn soak fills up to the machine's process budget)",
           parse=positive_int, group=GROUP),
)

# Per-user pace of the login rush when --imap-rate is not given: open loop, so a slow server
# cannot lower the offered load (late sessions show as PACING/SCHEDULE_LAG).
RUSH_DEFAULT_RATE = 2.0
# Process budget of the soak: what one live imapd costs, the share of available memory the soak
# may take, sockets the generator keeps for itself. The imapd cost is an assumption rounded up
# from one measurement (Cyrus 3.6.1 Debian 12, a test deployment with imapd_reuse=1): 10 held
# sessions after LOGIN and SELECT INBOX, Pss of /proc/PID/smaps_rollup of master's imapd
# children, median 3902 KiB (3120..3941); idle preforked ones 3.2-3.3 MiB. PSS shares the
# binary's pages among all children, so with hundreds of sessions it is lower, not higher.
# Measure again with `cyrus-loadtest deploy up`, held sessions, and that file.
IMAPD_PSS_BYTES = 4 * 1024 * 1024
MEMORY_SHARE = 0.5
GENERATOR_SPARE_FDS = 200
SOAK_HARD_CAP = 500


# -- users a scenario fixes ---------------------------------------------------------------------


class RushLoginUser(ChurnUser):
    """A user arriving at work: connect, LOGIN, LIST, LOGOUT, always paced open loop at
    --imap-rate sessions/s (default 2), so the offered login rate is what the plan says."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        rate = self.config.rate if self.config.rate > 0 else RUSH_DEFAULT_RATE
        self._period = 1.0 / rate


class StormUser(ReconnectFloodUser):
    """A client behind a firewall that drops it: connect, LOGIN, drop with RST (unless
    --imap-disconnect says otherwise), reconnect at once (Konstanz DDoS)."""

    needs_credentials = True

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self._login_line = login_command(self.credential)


# -- sizes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    duration: float
    users: int
    held: int


def process_budget(maxchild: int, reserved: int, mem_available_bytes: int | None,
                   open_files_limit: int | None, cap: int = SOAK_HARD_CAP) -> int:
    """Live imapd processes the soak may hold open: bounded by master's maxchild (less what
    churn and probes need), by memory, by the generator's open-files limit, and by ``cap``."""
    limits = [cap, maxchild - reserved]
    if mem_available_bytes is not None:
        limits.append(int(mem_available_bytes * MEMORY_SHARE // IMAPD_PSS_BYTES))
    if open_files_limit is not None:
        limits.append(open_files_limit - GENERATOR_SPARE_FDS)
    return max(1, min(limits))


def machine_limits() -> tuple[int | None, int | None]:
    """MemAvailable in bytes and the soft open-files limit of this process."""
    mem = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return mem, (None if soft == resource.RLIM_INFINITY else soft)


# -- plans (plain data) -----------------------------------------------------------------------


def plan_morning_rush(s: Sizes) -> list[Phase]:
    """Held sessions of the users already at work (20 %), logins ramping to the peak (50 %),
    the peak held (30 %)."""
    t1, t2, d = s.duration * 0.2, s.duration * 0.7, s.duration
    peak = s.held + s.users
    return [
        Phase("at-work", 0.0, t1, s.held, fast_spawn_rate(s.held), (HeldSessionUser,)),
        Phase("rush-ramp", t1, t2, peak, fast_spawn_rate(s.users), (RushLoginUser,), ramp_from=s.held),
        Phase("peak", t2, d, peak, fast_spawn_rate(s.users), (RushLoginUser,)),
    ]


def plan_reconnect_storm(s: Sizes) -> list[Phase]:
    """Held sessions (10 %), plus login/logout churn (25 %), plus as many storm users as churn
    users dropping with RST and reconnecting at once (45 %), then the storm users leave and
    the churn must be served as before (20 %)."""
    d = s.duration
    t1, t2, t3 = d * 0.1, d * 0.35, d * 0.8
    steady = s.held + s.users
    return [
        Phase("settle", 0.0, t1, s.held, fast_spawn_rate(s.held), (HeldSessionUser,)),
        Phase("steady", t1, t2, steady, fast_spawn_rate(s.users), (ChurnUser,)),
        Phase("storm", t2, t3, steady + s.users, fast_spawn_rate(s.users), (StormUser,)),
        Phase("after-storm", t3, d, steady, fast_spawn_rate(s.users), (ChurnUser,)),
    ]


def plan_process_churn(s: Sizes) -> list[Phase]:
    """Fill: held sessions up to the process budget, each one live imapd (30 %); soak: plus
    connect/LOGIN/LIST/logout churn, one fork+exec per connection (70 %)."""
    t1, d = s.duration * 0.3, s.duration
    # Fill at most 50 sessions/s: with one fork per connection master spawns ~70/s here.
    fill_rate = float(min(50, max(4, s.held / max(1.0, t1 * 0.5))))
    return [
        Phase("fill", 0.0, t1, s.held, fill_rate, (HeldSessionUser,)),
        Phase("soak", t1, d, s.held + s.users, fast_spawn_rate(s.users), (ChurnUser,)),
    ]


def plan_binary_rotation(s: Sizes) -> list[Phase]:
    """Churn users alone (15 %), then the rotation (85 %): the rotate-binary fault starts with
    this phase (phase=rotation) and held sessions join one by one on top of the churn, so the
    live imapds that serve them were spawned at different link targets (UC Davis: live
    processes spread over the copies)."""
    t1, d = s.duration * 0.15, s.duration
    return [
        Phase("churn", 0.0, t1, s.users, fast_spawn_rate(s.users), (ChurnUser,)),
        Phase("rotation", t1, d, s.users + s.held, fast_spawn_rate(s.held), (HeldSessionUser,),
              ramp_from=s.users),
    ]


def plan_churn_after_warm_up(s: Sizes, name: str, warm_up: str = "warm-up",
                             share: float = 0.2) -> list[Phase]:
    """Held sessions alone (``share``), then plus churn users: the binary rotation and
    lock-file scenarios (their difference is the deployment and the fault, not the load)."""
    t1, d = s.duration * share, s.duration
    return [
        Phase(warm_up, 0.0, t1, s.held, fast_spawn_rate(s.held), (HeldSessionUser,)),
        Phase(name, t1, d, s.held + s.users, fast_spawn_rate(s.users), (ChurnUser,)),
    ]


# -- shapes ---------------------------------------------------------------------------------


class ScenarioShape(PhasedShape):
    """Reads the shared scenario options; subclasses give defaults and the plan."""

    abstract = True
    default_duration = 120.0
    default_users = 4
    default_held = 4

    def sizes(self) -> Sizes:
        settings = self.settings()

        def pick(name: str, default: Any) -> Any:
            value = settings.get(name) if settings is not None else None
            return default if value is None else value

        return Sizes(float(pick("scenario_duration", self.default_duration)),
                     int(pick("scenario_users", self.default_users)),
                     int(pick("scenario_held", self.default_held)))


class MorningRushShape(ScenarioShape):
    default_duration = 180.0
    default_users = 20
    default_held = 20

    def plan(self) -> list[Phase]:
        return plan_morning_rush(self.sizes())


class ReconnectStormShape(ScenarioShape):
    default_duration = 150.0  # a 67 s storm
    default_users = 8
    default_held = 10

    def plan(self) -> list[Phase]:
        return plan_reconnect_storm(self.sizes())


class ProcessChurnShape(ScenarioShape):
    default_duration = 600.0
    default_users = 8
    default_held = SOAK_HARD_CAP  # bounded below by the machine's process budget

    def plan(self) -> list[Phase]:
        sizes = self.sizes()
        mem, nofile = machine_limits()
        maxchild = self._maxchild()
        # Churn users, the collectors' probe and held session, prefork and some slack.
        budget = process_budget(maxchild, sizes.users + 10, mem, nofile)
        held = min(sizes.held, budget)
        return plan_process_churn(Sizes(sizes.duration, sizes.users, held))

    def _maxchild(self) -> int:
        run = plugin.run_of(self.runner.environment) if self.runner is not None else None
        deployment = getattr(run, "deployment", None)
        if deployment is None:  # a remote target: only the hard cap and the machine bound it
            return SOAK_HARD_CAP
        return min(int(i.options.get("maxchild", SOAK_HARD_CAP)) for i in deployment.instances)


class BinaryRotationShape(ScenarioShape):
    default_duration = 120.0
    default_users = 6
    default_held = 40

    def plan(self) -> list[Phase]:
        return plan_binary_rotation(self.sizes())


class LockFileChurnShape(ScenarioShape):
    default_duration = 120.0
    default_users = 10
    default_held = 4

    def plan(self) -> list[Phase]:
        # A longer quiet baseline: the canary's own p99 before churn is the reference.
        return plan_churn_after_warm_up(self.sizes(), "churn", warm_up="baseline", share=0.3)


class StoresAndSlotsShape(ScenarioShape):
    default_duration = 120.0
    default_users = 8  # a multiple of the instance count spreads churn evenly
    default_held = 8

    def plan(self) -> list[Phase]:
        return plan_churn_after_warm_up(self.sizes(), "all-slots", warm_up="held")


__all__ = [
    "BinaryRotationShape", "LockFileChurnShape", "MorningRushShape", "ProcessChurnShape",
    "ReconnectStormShape", "RushLoginUser", "Sizes", "StormUser", "StoresAndSlotsShape",
]
