"""The incident scenarios as plain data: one declaration per scenario with everything about it
but its plan (the phases, in `loadtest.scenarios`): the locustfile and gate file, the plan's
default sizes, the deployment it starts, its own faults and Locust options.

`cyrus-loadtest scenario` (loadtest.scenario_cli) reads it for its choices, help, deployment and
faults without importing Locust, so `--help` and bad input cost nothing; each scenario's shape
(loadtest.scenarios) reads its default duration, users and held sessions from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# konstanz-2016's injection window (its fault and its "interrupted" phase): long enough that a
# loop which never completes shows as a heartbeat gap several times the 1 s stats period, short
# next to the incident's minutes.
KONSTANZ_WINDOW_S = 10.0
# The UC Davis incident's own figure (12,000 imapds on one Tru64 cluster): the process churn
# soak never holds more sessions.
SOAK_HARD_CAP = 12_000
# Test users in the deployment a scenario starts, unless it says otherwise.
PROVISION_USERS = 100


@dataclass(frozen=True)
class Scenario:
    name: str  # cyrus-loadtest scenario NAME
    module: str  # locustfiles/<module>.py and fixtures/gates/<module>.toml
    what: str
    # The plan's defaults (--duration/--scenario-duration, --users/--scenario-users,
    # --held/--scenario-held): seconds, peak churn, rush or storm users, held sessions.
    duration: float
    users: int
    held: int
    options: dict[str, Any] = field(default_factory=dict)  # service options of its deployment
    topology: str | None = None  # fixtures/topologies/<name>
    on_disk: bool = False  # deployment directory on a disk filesystem, not tmpfs
    faults: tuple[str, ...] = ()  # faults that are part of the scenario itself
    provision_users: int = PROVISION_USERS
    locust_args: tuple[str, ...] = ()  # locust options of its own (the user's come after)
    # Run the same users and load on one instance afterwards and compare this phase side by side
    # (only with the scenario's own deployment; gate of the second run: this file).
    compare_phase: str | None = None
    compare_gate: str | None = None

    @property
    def locustfile(self) -> str:
        """Its locustfile, relative to the project's locustfiles/."""
        return f"{self.module}.py"

    @property
    def gate_file(self) -> str:
        """Its gate, relative to fixtures/gates/."""
        return f"{self.module}.toml"


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario(
        "morning-rush", "morning_rush", "held sessions, then logins ramping open loop to a peak "
        "(Konstanz 2016)", duration=180, users=20, held=20),
    Scenario(
        "reconnect-storm", "reconnect_storm", "held sessions and churn, then clients dropping "
        "with RST and reconnecting at once (Konstanz DDoS)",
        duration=150, users=8, held=10),  # a 67 s storm
    Scenario(
        "konstanz-2016", "konstanz_2016", "held sessions arriving fast, churn, a reconnect "
        "storm, then every select() of master interrupted (EINTR) for a while, then recovery: "
        "the loop that never completes and the refusal that outlasts it (Konstanz 2016)",
        duration=120, users=8, held=1000,
        # One imapd per connection: every session goes through master's fork and accounting.
        options={"imapd_reuse": 1, "maxchild": 2_000},
        faults=(f"eintr-inject:phase=interrupted,duration={KONSTANZ_WINDOW_S:g}",),
        provision_users=1_000),
    Scenario(
        "process-churn", "process_churn", "one imapd per connection, held sessions up to the "
        "machine's process budget, connect/logout churn, then a quarter of them logging out and "
        "in together in waves (UC Davis 2007)",
        duration=600, users=8,
        held=SOAK_HARD_CAP,  # bounded below by the machine's process budget
        # maxchild above the soak's hard cap: the machine's memory, not master, bounds the live
        # processes.
        options={"imapd_reuse": 1, "maxchild": SOAK_HARD_CAP + 100}, provision_users=200),
    Scenario(
        "binary-rotation", "binary_rotation", "login/logout churn, then the imapd symlink "
        "re-pointed over 24 copies at every 10 ms tick while held sessions join (the UC Davis "
        "workaround)", duration=120, users=6, held=40,
        options={"imapd_binary": "symlink", "imapd_reuse": 5},
        faults=("rotate-binary:phase=rotation,every=0,copies=24",)),
    Scenario(
        "lockfile-churn", "lockfile_churn", "sessions that each create and remove Cyrus's user "
        "lock file, on a disk filesystem, CPU not saturated, canary against its own baseline "
        "(2010)", duration=120, users=10, held=4, on_disk=True,
        locust_args=("--collectors", "probe,master,processes,backlog,machine,canary,inodes")),
    Scenario(
        "stores-and-slots", "stores_and_slots", "two stores, each a master slot replicating to "
        "a replica slot, load on both masters at once, a verdict per slot and the replication "
        "lag per store (FastMail 2007)",
        duration=120,
        users=8,  # a multiple of the instance count spreads churn evenly
        held=8, topology="two-stores.toml", compare_phase="all-slots",
        compare_gate="stores_and_slots_one_instance.toml"),
)}
