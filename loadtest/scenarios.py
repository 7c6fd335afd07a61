"""The incident scenarios: each a plan of named phases (plain data) and a PhasedShape that runs
it, plus the few users whose behaviour a scenario fixes. docs/scenarios.md says what each
reproduces, how to run it and how to read its verdict.

Every phase adds (or, at the end of the reconnect storm, removes) users of exactly one class:
Locust's dispatcher splits a mixed addition by class weight, not by the counts a scenario wants,
and it removes the most recently added users first, so one class per step keeps counts exact.

Sizes come from three options shared by every scenario (``--scenario-duration``,
``--scenario-users``, ``--scenario-held``); each scenario's defaults, deployment, faults and gate
are declared once in ``loadtest.scenario_catalogue`` (plain data, read by the CLI too).
"""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from locust import task

from loadtest import plugin
from loadtest.errors import UsageError
from loadtest.imap.failures import StepFailure
from loadtest.imap.lean import login_command
from loadtest.imap.transport import DISCONNECT_LOGOUT
from loadtest.scenario_catalogue import KONSTANZ_WINDOW_S, SCENARIOS, SOAK_HARD_CAP, Scenario
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
# Per-user pace of the lock-file sessions: 10 users x 2/s keep 2 shared cores well below
# saturation here, so a canary that rises means the filesystem, not the CPU.
LOCKFILE_DEFAULT_RATE = 2.0
# Process budget of the soak: what one live imapd costs, the share of available memory the soak
# may take, sockets the generator keeps for itself. The cost is measured when the plan is made
# (median Pss of /proc/PID/smaps_rollup of the deployment's live imapds, times
# LOGGED_IN_FACTOR: an idle preforked imapd of Cyrus 3.6.1 here had 3.2-3.3 MiB, one after LOGIN
# and SELECT INBOX 3.9 MiB, median of 10); IMAPD_PSS_BYTES when nothing can be measured (a
# remote target, no imapd alive). PSS shares the binary's pages among all children, so with
# thousands of sessions it is lower, not higher.
IMAPD_PSS_BYTES = 4 * 1024 * 1024
LOGGED_IN_FACTOR = 1.25
MEMORY_SHARE = 0.5
GENERATOR_SPARE_FDS = 200
# Share of the live processes that come and go together in each bulk wave; the period between
# waves (a wave of 700 sessions took ~15 s to reconnect here), shorter for short runs.
WAVE_SHARE = 0.25
WAVE_PERIOD_S = (5.0, 30.0)
# The last phase: every session ends at once and the collectors watch master reap them
# (a tenth of the run, within these bounds: a few samples at least).
EXIT_PHASE_S = 15.0
EXIT_MIN_S = 5.0


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
        self._login_line = login_command(self._credential())


class BulkWaveUser(HeldSessionUser):
    """A held session that ends together with all the others: at every multiple of the wave
    period on the wall clock, every wave user logs out at once (with one imapd per connection,
    hundreds of processes exit together) and at once connects, logs in and LISTs again (as many
    forks). The UC Davis freeze came whenever processes came and went in bulk."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        # From the options, not the shape: a worker process has no shape.
        settings = plugin.settings_of(environment)
        duration = settings.get("scenario_duration") if settings is not None else None
        self.period_s = wave_period(float(duration or ProcessChurnShape.scenario.duration))

    def wait_time(self) -> float:
        return self.period_s - time.time() % self.period_s

    @task
    def hold(self) -> None:
        session = self.session
        try:
            if session.connected:
                session.disconnect(DISCONNECT_LOGOUT)
            session.connect()
            session.login(self._credential())
            session.list()
        except StepFailure:
            pass  # reported once by the session; the next wave reconnects


class LockFileSessionUser(ChurnUser):
    """A session of the 2010 server, paced open loop at --imap-rate sessions/s (default 2):
    create the user's lock file in the instance's lock directory, connect, LOGIN, LIST, logout,
    remove the lock file. The file is Cyrus 3.6's own user lock, ``*U*USER.lock``, owned like
    the directory, so Cyrus opens the same file when it needs the lock during the session.
    Cyrus alone creates it once and keeps it (its inode stays: measured with the inodes
    collector); the 2010 server created and deleted one per session, so this user does.
    Churn users take other credentials than held sessions, so no live session of the same user
    holds the file when it goes."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        rate = self.config.rate if self.config.rate > 0 else LOCKFILE_DEFAULT_RATE
        self._period = 1.0 / rate
        lock_dir = lock_dir_of(environment, self.target.instance)
        self._lock_file = (None if lock_dir is None or self.credential is None
                           else lock_dir / f"*U*{self.credential.username}.lock")

    @task
    def churn(self) -> None:
        lock = self._lock_file
        if lock is not None:
            with contextlib.suppress(OSError):  # a lock file we cannot make is no failed step
                owner = lock.parent.stat()
                fd = os.open(lock, os.O_WRONLY | os.O_CREAT, 0o600)
                try:
                    os.fchown(fd, owner.st_uid, owner.st_gid)
                finally:
                    os.close(fd)
        try:
            super().churn()
        finally:
            if lock is not None:
                with contextlib.suppress(OSError):
                    lock.unlink()


def local_deployment(settings: Any) -> Any:
    """The local deployment the settings name, loaded afresh (the web form may have changed
    them since the run was set up, and a worker has no run); None for a remote target
    (``--imap-host``) or when none is found."""
    if settings is None or settings.get("imap_host"):
        return None
    from loadtest.deploy.deployment import load_deployment

    try:
        return load_deployment(settings.get("deployment"), settings.source("deployment"))
    except UsageError:
        return None


def lock_dir_of(environment: Any, instance: str | None) -> Path | None:
    """The lock directory of a local deployment's instance (None: remote or not found)."""
    deployment = local_deployment(plugin.settings_of(environment))
    if deployment is None:
        return None
    try:
        info = deployment.instance(instance) if instance else deployment.instances[0]
    except UsageError:
        return None
    return Path(info.lock_dir)


# Locust gives a subclass its base classes' tasks besides its own: these users would run the
# plain churn / hold half the time. Only their own task.
BulkWaveUser.tasks = [BulkWaveUser.hold]
LockFileSessionUser.tasks = [LockFileSessionUser.churn]


# -- sizes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    duration: float
    users: int
    held: int


def process_budget(maxchild: int, reserved: int, mem_available_bytes: int | None,
                   open_files_limit: int | None, cap: int = SOAK_HARD_CAP,
                   imapd_bytes: int = IMAPD_PSS_BYTES) -> int:
    """Live imapd processes the soak may hold open: bounded by master's maxchild (less what
    churn and probes need), by memory at ``imapd_bytes`` each, by the generator's open-files
    limit, and by ``cap``."""
    limits = [cap, maxchild - reserved]
    if mem_available_bytes is not None:
        limits.append(int(mem_available_bytes * MEMORY_SHARE // max(1, imapd_bytes)))
    if open_files_limit is not None:
        limits.append(open_files_limit - GENERATOR_SPARE_FDS)
    return max(1, min(limits))


def measured_imapd_bytes(master_pids: list[int]) -> int | None:
    """What a logged-in imapd costs: median Pss of the live imapd children of these masters
    (smaps_rollup), times LOGGED_IN_FACTOR; None when there is none to measure."""
    pss = []
    for master in master_pids:
        try:
            children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        except OSError:
            continue
        for child in children:
            try:
                if Path(f"/proc/{child}/comm").read_text().strip() != "imapd":
                    continue
                rollup = Path(f"/proc/{child}/smaps_rollup").read_text()
            except OSError:
                continue
            pss += [int(line.split()[1]) * 1024 for line in rollup.splitlines()
                    if line.startswith("Pss:")]
    return int(statistics.median(pss) * LOGGED_IN_FACTOR) if pss else None


def maxchild_of(deployment: Any) -> int | None:
    """The smallest maxchild of the deployment's instances (None: no deployment)."""
    if deployment is None or not deployment.instances:
        return None
    from loadtest.deploy.render import ServiceOptions

    default = ServiceOptions().maxchild  # what deploy up renders when the option is absent
    return min(int(i.options.get("maxchild", default)) for i in deployment.instances)


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
    """Fill: held sessions up to the process budget less the wave, each one live imapd (25 %);
    soak: plus connect/LOGIN/LIST/logout churn, one fork+exec per connection (25 %); bulk: plus
    the wave users (WAVE_SHARE of the budget) that log out and in again all together every
    wave period (40-45 %); exit: every session ends at once, all live imapds exit together, the
    collectors watching (a tenth of the run, within EXIT_MIN_S..EXIT_PHASE_S)."""
    d = s.duration
    t1, t2 = d * 0.25, d * 0.5
    t3 = d - min(EXIT_PHASE_S, max(EXIT_MIN_S, d * 0.1))
    wave = max(1, round(s.held * WAVE_SHARE))
    steady = max(1, s.held - wave)
    # Fill at most 50 sessions/s: with one fork per connection master spawns ~70/s here.
    fill_rate = float(min(50, max(4, steady / max(1.0, t1 * 0.5))))
    everyone = steady + s.users + wave
    return [
        Phase("fill", 0.0, t1, steady, fill_rate, (HeldSessionUser,)),
        Phase("soak", t1, t2, steady + s.users, fast_spawn_rate(s.users), (ChurnUser,)),
        Phase("bulk", t2, t3, everyone, fill_rate, (BulkWaveUser,)),
        Phase("exit", t3, d, 0, fast_spawn_rate(everyone), (HeldSessionUser,)),
    ]


# Konstanz 2016: held sessions arrive at this rate at least (one fork each with imapd -U 1: the
# high fork rate of the incident's mornings). The "interrupted" phase is the eintr-inject fault's
# window (KONSTANZ_WINDOW_S); the run's other phases share the rest.
ARRIVAL_RATE = 100.0
LEAVE_MIN_S = 8.0


def plan_konstanz_2016(s: Sizes) -> list[Phase]:
    """The 2016 master stall's path, in six phases: held sessions arriving at ARRIVAL_RATE or
    faster ("arrive", 25 % of the run less the fault's window); login/logout churn on top
    ("steady", 10 %); storm users dropping with RST and reconnecting at once ("storm", 20 %);
    with the same users, master's every wait interrupted ("interrupted": the scenario's
    eintr-inject fault starts with it and lasts KONSTANZ_WINDOW_S); the storm users leave and the
    churn must be served as before ("recovery", 25 %: the incident's master refused new
    connections until restarted); then every session ends at once ("leave", 20 %, at least
    LEAVE_MIN_S): as many imapds exit together, each a SIGCHLD to master, the incident's
    interruptions without any fault."""
    rest = max(5 * LEAVE_MIN_S, s.duration - KONSTANZ_WINDOW_S)
    t1 = rest * 0.25
    t2 = t1 + rest * 0.10
    t3 = t2 + rest * 0.20
    t4 = t3 + KONSTANZ_WINDOW_S
    t5 = t4 + rest * 0.25
    end = t5 + max(LEAVE_MIN_S, rest * 0.20)
    steady = s.held + s.users
    everyone = steady + s.users
    arrival = max(ARRIVAL_RATE, s.held / max(1.0, t1 * 0.5))
    return [
        Phase("arrive", 0.0, t1, s.held, arrival, (HeldSessionUser,)),
        Phase("steady", t1, t2, steady, fast_spawn_rate(s.users), (ChurnUser,)),
        Phase("storm", t2, t3, everyone, fast_spawn_rate(s.users), (StormUser,)),
        Phase("interrupted", t3, t4, everyone, fast_spawn_rate(s.users), (StormUser,)),
        Phase("recovery", t4, t5, steady, fast_spawn_rate(s.users), (ChurnUser,)),
        Phase("leave", t5, end, 0, fast_spawn_rate(everyone), (HeldSessionUser,)),
    ]


def wave_period(duration: float) -> float:
    """Seconds between bulk waves: an eighth of the run (at least two waves in the bulk phase),
    within WAVE_PERIOD_S."""
    low, high = WAVE_PERIOD_S
    return max(low, min(high, duration / 8.0))


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


def plan_lockfile_churn(s: Sizes) -> list[Phase]:
    """Held sessions alone (30 %: the canary's baseline), then plus lock-file sessions."""
    t1, d = s.duration * 0.3, s.duration
    return [
        Phase("baseline", 0.0, t1, s.held, fast_spawn_rate(s.held), (HeldSessionUser,)),
        Phase("churn", t1, d, s.held + s.users, fast_spawn_rate(s.users), (LockFileSessionUser,)),
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
    """Reads the shared scenario options; subclasses name their scenario (its declaration gives
    the defaults) and give the plan."""

    abstract = True
    scenario: ClassVar[Scenario]

    def sizes(self) -> Sizes:
        settings = self.settings()

        def pick(name: str, default: Any) -> Any:
            value = settings.get(name) if settings is not None else None
            return default if value is None else value

        return Sizes(float(pick("scenario_duration", self.scenario.duration)),
                     int(pick("scenario_users", self.scenario.users)),
                     int(pick("scenario_held", self.scenario.held)))


class MorningRushShape(ScenarioShape):
    scenario = SCENARIOS["morning-rush"]

    def plan(self) -> list[Phase]:
        return plan_morning_rush(self.sizes())


class ReconnectStormShape(ScenarioShape):
    scenario = SCENARIOS["reconnect-storm"]

    def plan(self) -> list[Phase]:
        return plan_reconnect_storm(self.sizes())


class Konstanz2016Shape(ScenarioShape):
    scenario = SCENARIOS["konstanz-2016"]

    def plan(self) -> list[Phase]:
        return plan_konstanz_2016(self.sizes())


class ProcessChurnShape(ScenarioShape):
    scenario = SCENARIOS["process-churn"]

    def plan(self) -> list[Phase]:
        sizes = self.sizes()
        mem, nofile = machine_limits()
        deployment = self._deployment()
        maxchild = maxchild_of(deployment) or SOAK_HARD_CAP
        imapd_bytes = IMAPD_PSS_BYTES
        if deployment is not None:
            imapd_bytes = measured_imapd_bytes(
                [i.master_pid for i in deployment.instances if i.master_pid]) or IMAPD_PSS_BYTES
        # Churn users, the collectors' probe and held session, prefork and some slack.
        budget = process_budget(maxchild, sizes.users + 10, mem, nofile,
                                imapd_bytes=imapd_bytes)
        held = min(sizes.held, budget)
        return plan_process_churn(Sizes(sizes.duration, sizes.users, held))

    def _deployment(self) -> Any:
        """The local deployment the run uses (None for a remote target or none found)."""
        return local_deployment(self.settings())


class BinaryRotationShape(ScenarioShape):
    scenario = SCENARIOS["binary-rotation"]

    def plan(self) -> list[Phase]:
        return plan_binary_rotation(self.sizes())


class LockFileChurnShape(ScenarioShape):
    scenario = SCENARIOS["lockfile-churn"]

    def plan(self) -> list[Phase]:
        # A longer quiet baseline: the canary's own p99 before churn is the reference.
        return plan_lockfile_churn(self.sizes())


class StoresAndSlotsShape(ScenarioShape):
    scenario = SCENARIOS["stores-and-slots"]

    def plan(self) -> list[Phase]:
        return plan_churn_after_warm_up(self.sizes(), "all-slots", warm_up="held")


__all__ = [
    "BinaryRotationShape", "BulkWaveUser", "Konstanz2016Shape", "LockFileSessionUser", "LockFileChurnShape", "MorningRushShape", "ProcessChurnShape",
    "ReconnectStormShape", "RushLoginUser", "Sizes", "StormUser", "StoresAndSlotsShape",
]
