"""Load shapes made of named phases; each phase boundary becomes a "phase" event in the run's
series, so gate rules can be limited to a phase (`phase = "reconnect-flood"`).

`Phase` and `plan_*` are plain data; the LoadTestShape subclasses only read the plan.
Locust's shape stages limit what is spawned, not what already runs: phases therefore only ever
add users (held sessions stay, churn users stay while flood users join).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from locust import LoadTestShape

from loadtest import plugin
from loadtest.errors import UsageError
from loadtest.settings import Option, declare, positive_float, positive_int
from loadtest.users import ChurnUser, HeldSessionUser, ReconnectFloodUser

declare(
    Option("acceptance_duration", "total seconds of the acceptance scenario", default="90",
           parse=positive_float, group="cyrus-loadtest scenario"),
    Option("acceptance_users", "peak churn users of the acceptance scenario (flood users: as many)",
           default="10", parse=positive_int, group="cyrus-loadtest scenario"),
    Option("acceptance_held", "held sessions kept open throughout the acceptance scenario",
           default="4", parse=positive_int, group="cyrus-loadtest scenario"),
)


@dataclass(frozen=True)
class Phase:
    name: str
    start: float  # seconds from the run's start
    end: float
    users: int  # total users at the end of the phase
    spawn_rate: float
    user_classes: tuple[type, ...]
    ramp_from: int | None = None  # users at the start of the phase, when it ramps

    def users_at(self, t: float) -> int:
        if self.ramp_from is None or self.end <= self.start:
            return self.users
        share = min(1.0, max(0.0, (t - self.start) / (self.end - self.start)))
        return self.ramp_from + round((self.users - self.ramp_from) * share)


def fast_spawn_rate(*counts: int) -> float:
    """Spawn rate that reaches a phase's users within about a quarter second."""
    return float(max(4, 4 * max(counts)))


def plan_acceptance(duration: float, churn: int, held: int) -> list[Phase]:
    """Warm-up with held sessions (15 %), churn ramp to ``churn`` users (50 %), reconnect
    flood with as many flood users on top (35 %).

    Each phase spawns one class only: Locust splits a mixed increase by class weight, not by
    the counts asked for, while the users already running stay.
    """
    t1, t2 = duration * 0.15, duration * 0.65
    fast = fast_spawn_rate(held, churn)
    return [
        Phase("warm-up", 0.0, t1, held, fast, (HeldSessionUser,)),
        Phase("churn-ramp", t1, t2, held + churn, fast, (ChurnUser,), ramp_from=held),
        Phase("reconnect-flood", t2, duration, held + 2 * churn, fast, (ReconnectFloodUser,)),
    ]


class PhasedShape(LoadTestShape):
    """Runs a list of phases; subclasses provide `plan()`, planned again at each start."""

    abstract = True

    def plan(self) -> list[Phase]:
        raise NotImplementedError

    def settings(self) -> Any:
        """The options as they are now: the web UI form may have changed them since init (the
        first tick comes before test_start, where the plugin re-reads them)."""
        if self.runner is None:
            return None
        environment = self.runner.environment
        try:
            return plugin.resolve_settings(environment)
        except UsageError:  # the plugin reports it at test_start and stops the run
            return plugin.settings_of(environment)

    def reset_time(self) -> None:
        # The web UI may change the options between runs: plan again at each start.
        super().reset_time()
        self.__dict__.pop("_phases", None)

    def tick(self) -> tuple[int, float, list[type]] | tuple[int, float] | None:
        if not hasattr(self, "_phases"):
            self._phases = self.plan()
        t = self.get_run_time()
        run = plugin.run_of(self.runner.environment) if self.runner is not None else None
        for phase in self._phases:
            if phase.start <= t < phase.end:
                if run is not None:
                    run.set_phase(phase.name)
                return phase.users_at(t), phase.spawn_rate, list(phase.user_classes)
        if run is not None:
            run.set_phase(None)
        return None


class AcceptanceShape(PhasedShape):
    def plan(self) -> list[Phase]:
        settings: Any = self.settings()
        return plan_acceptance(float(settings["acceptance_duration"]),
                               int(settings["acceptance_users"]), int(settings["acceptance_held"]))
