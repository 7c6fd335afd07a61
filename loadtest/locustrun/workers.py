"""Distributed runs: workers record steps and send them to the master in their reports; the
master merges them into its Run's recorder and tells the workers its current phase."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loadtest.batch import attach_recorder
from loadtest.core.steps import StepRecorder

if TYPE_CHECKING:
    from locust.env import Environment

STEPS_REPORT_KEY = "cyrus_loadtest_steps"
PHASE_MESSAGE = "cyrus_loadtest_phase"


@dataclass
class WorkerSteps:
    """A worker's step statistics, drained into each report to the master, tagged with the
    phase the master last announced."""

    recorder: StepRecorder = field(default_factory=StepRecorder)
    phase: str | None = None

    def report(self, data: dict[str, Any]) -> None:
        """Add the steps since the last report to a worker's report."""
        data[STEPS_REPORT_KEY] = self.recorder.drain()


def is_worker(environment: Environment) -> bool:
    from locust.runners import WorkerRunner

    return isinstance(environment.runner, WorkerRunner)


def set_up_worker(environment: Environment) -> WorkerSteps:
    """Record this worker's steps and follow the master's phase."""
    worker = WorkerSteps()
    attach_recorder(environment, worker.recorder, lambda: worker.phase)

    def take_phase(message: Any, **_kwargs: Any) -> None:
        worker.phase = message.data["name"]

    assert environment.runner is not None
    environment.runner.register_message(PHASE_MESSAGE, take_phase)
    return worker


def worker_steps(data: dict[str, Any]) -> dict[str, Any] | None:
    """The steps in a worker's report, or None."""
    return data.get(STEPS_REPORT_KEY)


def broadcast_phase(environment: Environment, name: str | None) -> None:
    """Workers tag their step statistics with the master's current phase."""
    from locust.runners import MasterRunner

    runner = environment.runner
    if isinstance(runner, MasterRunner):
        runner.send_message(PHASE_MESSAGE, {"name": name})
