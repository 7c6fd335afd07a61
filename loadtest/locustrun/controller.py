"""`RunController`: one Locust environment's cyrus-loadtest state, registered on it.

As Locust's own contrib listeners keep theirs, the state lives on the environment
(``environment.cyrus_loadtest``), not in module globals: the resolved options and IMAP
configuration, the options the web UI's form set, and the Run (master or local runner) or, on
a worker, its step statistics. `loadtest.plugin`'s listeners find it and delegate to it.
"""

from __future__ import annotations

import sys
import weakref
from typing import TYPE_CHECKING, Any

from loadtest.batch import attach_recorder
from loadtest.errors import EXIT_USAGE, UsageError
from loadtest.imap import config as imap_config_mod
from loadtest.locustrun import assembly, lifecycle, options, workers
from loadtest.settings import Settings

if TYPE_CHECKING:
    from locust.env import Environment

    from loadtest.run import Run

CONTROLLER_ATTRIBUTE = "cyrus_loadtest"
WEB_FORM_SOURCE = "web form"


class RunController:
    """One environment's state and what happens to it at init, test start, stop and quit."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.settings: Settings | None = None
        # the options at init: later differences came from the web UI's form
        self.initial_settings: Settings | None = None
        self.imap: imap_config_mod.ImapConfig | None = None
        # option name -> "web form field NAME", for values the web UI's form set
        self.form_sources: dict[str, str] = {}
        self.run: Run | None = None  # master or local runner, once set up
        self.worker: workers.WorkerSteps | None = None  # a worker, once set up

    # -- options and the IMAP users' configuration

    def resolve_settings(self) -> Settings:
        return options.resolve_settings(self.environment, self.form_sources)

    def configure(self) -> imap_config_mod.ImapConfig:
        """Resolve options and build the IMAP users' configuration (UsageError on bad input).

        Configured again at a test start from the web UI: values that differ from the ones at
        init came from the form, and their source says so."""
        settings = self.resolve_settings()
        if self.initial_settings is not None:
            settings = settings.changed_since(self.initial_settings, WEB_FORM_SOURCE)
        config = imap_config_mod.build_config(
            settings, require_credentials=options.require_credentials(self.environment, settings))
        self.settings, self.imap = settings, config
        if self.initial_settings is None:
            self.initial_settings = settings
        return config

    def imap_config(self) -> imap_config_mod.ImapConfig:
        """The configuration users read at creation; built on first use in library mode."""
        return self.imap if self.imap is not None else self.configure()

    def accept_form(self, form_sources: dict[str, str]) -> None:
        self.form_sources = form_sources

    # -- the run

    def set_up(self) -> None:
        """At init: a worker records steps for the master; the master or local runner builds
        its Run (bad options stop the process with exit code 2 before any user starts)."""
        environment = self.environment
        parsed = environment.parsed_options
        if workers.is_worker(environment):
            self.worker = workers.set_up_worker(environment)
            return
        if self.settings is None:
            return  # the options check at init already exited on bad options
        settings = self.settings
        try:
            run = assembly.build_run(settings, self.imap_config(),
                                     run_time=getattr(parsed, "run_time", None))
        except UsageError as exc:
            fail_at_init(str(exc))
            return
        self.run = run
        deployment = run.deployment
        from loadtest.run import describe_options
        from loadtest.webui import install as install_webui

        # The Cyrus server tab: live series and gate table (options bind it to 127.0.0.1).
        install_webui(environment, store=lambda: run.store, rules=lambda: run.rules,
                      steps=lambda: run.recorder, run=lambda: run,
                      hide_host=deployment is not None)
        attach_recorder(environment, run.recorder, run.current_phase)
        # Locust's HTML report goes into the run folder unless the user chose a place: the end
        # of the run writes it (and the CSVs: Locust's CSV writer exists before init).
        run.locust_html = (None if getattr(parsed, "html_file", None)
                           else run.folder / "locust_report.html")
        run.on_phase = lambda name: workers.broadcast_phase(environment, name)
        run.write_info(locustfile=getattr(parsed, "locustfile", None),
                       deployment=str(deployment.path) if deployment else None,
                       # which master/imapd ran (a build directory or the packaged install)
                       cyrus=deployment.instances[0].cyrus if deployment else None,
                       target=(settings.get("imap_host") or None),
                       options=describe_options(settings, parsed), status="initialised")
        print(f"cyrus-loadtest: artifacts of this run in {run.folder}", file=sys.stderr,
              flush=True)

    def start(self) -> None:
        if self.run is None:
            return
        from loadtest.run import describe_options, disconnect_modes

        # The web form may have changed the options since init: record what this run uses.
        settings = self.settings
        lifecycle.start(
            self.run, options=describe_options(settings, self.environment.parsed_options),
            user_classes=disconnect_modes(self.environment.user_classes or [],
                                          self.imap_config().disconnect,
                                          settings.source("imap_disconnect")
                                          if settings is not None else "option"))

    def stop(self) -> None:
        if self.run is not None:
            lifecycle.stop(self.run)

    def finish(self) -> None:
        if self.run is not None:
            lifecycle.finish(self.run, self.environment)

    # -- distributed runs

    def report_to_master(self, client_id: str, data: dict[str, Any]) -> None:
        """A worker's report: its steps since the last one."""
        if self.worker is not None and getattr(self.environment.runner, "client_id", None) == client_id:
            self.worker.report(data)

    def merge_worker_report(self, data: dict[str, Any]) -> None:
        """The master adds a worker's steps to its run."""
        steps = workers.worker_steps(data)
        if steps and self.run is not None:
            self.run.recorder.merge(steps)


# Every live controller, for the two events that name no environment (report_to_master,
# worker_report); a controller lives as long as its environment.
_controllers: weakref.WeakSet[RunController] = weakref.WeakSet()


def controller_of(environment: Environment) -> RunController:
    """The environment's controller, registered on it at first use."""
    controller = getattr(environment, CONTROLLER_ATTRIBUTE, None)
    if not isinstance(controller, RunController):
        controller = RunController(environment)
        setattr(environment, CONTROLLER_ATTRIBUTE, controller)
        _controllers.add(controller)
    return controller


def live_controllers() -> list[RunController]:
    return list(_controllers)


def fail_at_init(message: str) -> None:
    """A bad option at init: one line on stderr, exit code 2."""
    sys.stderr.write(f"cyrus-loadtest: error: {message}\n")
    sys.stderr.flush()
    sys.exit(EXIT_USAGE)
