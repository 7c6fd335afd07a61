"""The one module that wires Locust events; what each listener does lives in `loadtest.locustrun`.

Importing it registers listeners on Locust's global events; locustfiles import it through
``loadtest.users``. Each environment's state is a `locustrun.controller.RunController`
registered on it (``environment.cyrus_loadtest``); the listeners find it and delegate:

- :func:`register_options`: every option declared with ``loadtest.settings.declare`` becomes a
  Locust option (`locustrun.options`).
- :func:`check_options_at_init`: resolve and validate the options before any user starts; a bad
  value is one line on stderr and exit code 2.
- :func:`recheck_options_at_test_start`: the web UI form can change options between runs.
- :func:`set_up_run`, :func:`start_run`, :func:`stop_run`, :func:`finish_run`: the run's folder,
  collectors, faults and gate on the master or local runner (`locustrun.assembly`,
  `locustrun.lifecycle`); workers record steps (`locustrun.workers`) and
  :func:`send_steps_to_master` / :func:`merge_worker_steps` carry them to the master.

Users, shapes and scenarios read an environment's state through :func:`imap_config`,
:func:`settings_of`, :func:`resolve_settings` and :func:`run_of`.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

from locust import events

from loadtest import run as _run_options  # noqa: F401 - declares the run's options
from loadtest.errors import EXIT_USAGE, UsageError
from loadtest.locustrun import options
from loadtest.locustrun.controller import controller_of, live_controllers

if TYPE_CHECKING:
    from locust.env import Environment

    from loadtest.imap.config import ImapConfig
    from loadtest.run import Run
    from loadtest.settings import Settings

logger = logging.getLogger(__name__)


# -- what users, shapes and scenarios read -----------------------------------------------------


def resolve_settings(environment: Environment) -> Settings:
    """Options of this environment with their sources; env only when Locust parsed nothing."""
    return controller_of(environment).resolve_settings()


def configure(environment: Environment) -> ImapConfig:
    """Resolve options and build the IMAP users' configuration (UsageError on bad input)."""
    return controller_of(environment).configure()


def imap_config(environment: Environment) -> ImapConfig:
    """The configuration users read at creation; built on first use in library mode."""
    return controller_of(environment).imap_config()


def settings_of(environment: Environment) -> Settings | None:
    return controller_of(environment).settings


def run_of(environment: Environment) -> Run | None:
    """The Run of this environment (master or local runner), or None (workers, library mode)."""
    return controller_of(environment).run


# -- options -----------------------------------------------------------------------------------


@events.init_command_line_parser.add_listener
def register_options(parser: Any, **_kwargs: Any) -> None:
    options.declare_on_parser(parser)


@events.init.add_listener
def check_options_at_init(environment: Environment, **_kwargs: Any) -> None:
    if environment.parsed_options is None:
        return  # library mode: users configure on first use
    controller = controller_of(environment)
    web_ui = getattr(environment, "web_ui", None)
    if web_ui is not None:
        web_ui.app.before_request(
            options.swarm_form_check(environment, controller.accept_form))
    try:
        controller.configure()
    except UsageError as exc:
        parsed = environment.parsed_options
        # --processes children hit the same error: let the parent print it once.
        if not (getattr(parsed, "worker", False) and getattr(parsed, "processes", None)):
            sys.stderr.write(f"cyrus-loadtest: error: {exc}\n")
            sys.stderr.flush()
        sys.exit(EXIT_USAGE)


@events.test_start.add_listener
def recheck_options_at_test_start(environment: Environment, **_kwargs: Any) -> None:
    """The web UI form may have changed options: rebuild (a bad value stops the run)."""
    if environment.parsed_options is None or getattr(environment.parsed_options, "headless", False):
        return
    try:
        controller_of(environment).configure()
    except UsageError as exc:
        logger.error("cyrus-loadtest: %s", exc)
        if environment.runner is not None:
            environment.runner.quit()


# -- the run: artifacts, step statistics, collectors, faults, gate --------------------------------


@events.init.add_listener
def set_up_run(environment: Environment, **_kwargs: Any) -> None:
    if environment.parsed_options is None or environment.runner is None:
        return  # library mode: the caller wires what it needs
    controller_of(environment).set_up()


@events.report_to_master.add_listener
def send_steps_to_master(client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
    for controller in live_controllers():
        controller.report_to_master(client_id, data)


@events.worker_report.add_listener
def merge_worker_steps(client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
    for controller in live_controllers():
        controller.merge_worker_report(data)


@events.test_start.add_listener
def start_run(environment: Environment, **_kwargs: Any) -> None:
    controller_of(environment).start()


@events.test_stop.add_listener
def stop_run(environment: Environment, **_kwargs: Any) -> None:
    controller_of(environment).stop()


@events.quitting.add_listener
def finish_run(environment: Environment, **_kwargs: Any) -> None:
    """Stop everything, evaluate the gate in-process, set the exit code, write the artifacts."""
    controller_of(environment).finish()
