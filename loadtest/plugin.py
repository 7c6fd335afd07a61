"""The one module that wires Locust events: options, init-time checks, per-environment state.

Importing it registers listeners on Locust's global events (``init_command_line_parser`` and
``init``); locustfiles import it through ``loadtest.users``. Each concern is its own function so
collectors and the gate can be added beside them:

- :func:`register_options`: every option declared with ``loadtest.settings.declare`` becomes a
  Locust option (``--flag``, env ``LOADTEST_NAME``, config-file key ``flag-name``), shown in the
  web UI unless declared otherwise; secrets are masked there.
- :func:`check_options_at_init`: resolve and validate the options before any user starts; a bad
  value is one line on stderr and exit code 2.
- :func:`recheck_options_at_test_start`: the web UI form can change options between runs.

An environment's state (its settings, IMAP configuration, the Run or a worker's step recorder)
lives in one :class:`RunController` registered on it as ``environment.cyrus_loadtest``, as
Locust's own contrib listeners keep theirs; the listeners here look it up and delegate.
"""

from __future__ import annotations

import logging
import os
import sys
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from locust import events

from loadtest import run as _run_options  # noqa: F401 - declares the run's options
from loadtest import settings as settings_mod
from loadtest.batch import attach_recorder
from loadtest.core.steps import StepRecorder
from loadtest.errors import EXIT_USAGE, UsageError
from loadtest.imap import config as imap_config_mod

if TYPE_CHECKING:
    from locust.env import Environment

    from loadtest.run import Run

logger = logging.getLogger(__name__)

# The parser Locust built: one per process, kept to learn where each value came from.
_parser: Any = None


# -- the per-environment controller ---------------------------------------------------------------

CONTROLLER_ATTRIBUTE = "cyrus_loadtest"


@dataclass
class WorkerSteps:
    """A worker's step statistics, sent to the master in each report, tagged with the phase the
    master last announced."""

    recorder: StepRecorder
    phase: str | None = None


class RunController:
    """One environment's cyrus-loadtest state: its resolved options and IMAP configuration,
    the options the web UI's form set, and the Run (master or local runner) or, on a worker,
    the step statistics it reports."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.settings: settings_mod.Settings | None = None
        # the options at init: later differences came from the web UI's form
        self.initial_settings: settings_mod.Settings | None = None
        self.imap: imap_config_mod.ImapConfig | None = None
        # option name -> "web form field NAME", for values the web UI's form set
        self.form_sources: dict[str, str] = {}
        self.run: Run | None = None
        self.worker: WorkerSteps | None = None


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


# -- options -----------------------------------------------------------------------------------


@events.init_command_line_parser.add_listener
def register_options(parser: Any, **_kwargs: Any) -> None:
    global _parser
    _parser = parser
    # This tool floods servers: its web UI listens on loopback unless asked (--web-host '*').
    # As a parser default, Locust's own start-up line names the address it really binds.
    parser.set_defaults(web_host="127.0.0.1")
    groups: dict[str, Any] = {}
    known = {a.dest for a in parser._actions}
    for opt in settings_mod.declared():
        if opt.name in known:
            continue  # the parser is built more than once per run (web UI form, --help)
        group = groups.get(opt.group) or groups.setdefault(opt.group, parser.add_argument_group(opt.group))
        kwargs: dict[str, Any] = {"dest": opt.name, "help": opt.help, "env_var": opt.env}
        if opt.flag_only:
            action = group.add_argument(opt.flag, action="store_true", default=False, **kwargs)
        else:
            choices = _ChoicesCheckedLater(opt.all_choices) if opt.all_choices else None
            action = group.add_argument(opt.flag, default=opt.parser_default, choices=choices,
                                        **kwargs)
        # What LocustArgumentParser.add_argument sets; argument groups lack its signature.
        action.include_in_web_ui = opt.web_ui
        action.is_secret = opt.secret
        action.is_required = False
        action.is_multiple = False


class _ChoicesCheckedLater(tuple):
    """The choices as help and the web UI list them, but argparse accepts any value: its own
    check would say "argument --imap-tls" for a value from env or a config file. The settings
    check them (`settings.resolve`) and name the value's source."""

    def __contains__(self, _value: object) -> bool:
        return True


def _sources() -> dict[str, str]:
    if _parser is None:
        return {}
    try:
        return settings_mod.sources_from_configargparse(_parser.get_source_to_settings_dict())
    except AttributeError:  # not parsed yet (library mode)
        return {}


def resolve_settings(environment: Any) -> settings_mod.Settings:
    """Options of this environment with their sources; env only when Locust parsed nothing."""
    options = environment.parsed_options
    if options is None:
        raw = {o.name: _env_or_default(o) for o in settings_mod.declared()}
        sources = {o.name: f"env {o.env}" for o in settings_mod.declared() if o.env in _environ()}
        return settings_mod.resolve(raw, sources)
    raw = {o.name: getattr(options, o.name, o.default) for o in settings_mod.declared()}
    return settings_mod.resolve(raw, {**_sources(), **controller_of(environment).form_sources})


def _check_swarm_form(environment: Any) -> Any:
    """A Flask before_request hook: the web UI's start form is checked like the command line
    before Locust starts anything, and a bad value is refused with the form as its origin."""

    def check() -> Any:
        from flask import jsonify, request

        if request.method != "POST" or not request.path.endswith("/swarm"):
            return None
        options = environment.parsed_options
        raw = {o.name: getattr(options, o.name, o.default) for o in settings_mod.declared()}
        form: dict[str, str] = {}
        for opt in settings_mod.declared():
            if opt.name not in request.form:
                continue
            value: Any = request.form[opt.name]
            value = (value == "true") if opt.flag_only else value
            if value != raw[opt.name] and str(value) != str(raw[opt.name]):
                raw[opt.name] = value  # changed in the form: the form is its source
                form[opt.name] = f"web form field {opt.name}"
        try:
            settings = settings_mod.resolve(raw, {**_sources(), **form})
            imap_config_mod.build_config(
                settings, require_credentials=_require_credentials(environment, settings))
        except UsageError as exc:
            logger.error("cyrus-loadtest: %s", exc)
            return jsonify({"success": False, "message": str(exc), "host": environment.host})
        controller_of(environment).form_sources = form
        return None

    return check


def _environ() -> dict[str, str]:
    return dict(os.environ)


def _env_or_default(opt: settings_mod.Option) -> Any:
    return _environ().get(opt.env, opt.default)


# -- IMAP users' configuration ----------------------------------------------------------------


def _require_credentials(environment: Any, settings: settings_mod.Settings) -> bool:
    """Only floods without LOGIN run without credentials."""
    classes = environment.user_classes or []
    if not classes or settings["imap_flood_login"]:
        return True
    return any(getattr(cls, "needs_credentials", True) for cls in classes)


WEB_FORM_SOURCE = "web form"


def configure(environment: Any) -> imap_config_mod.ImapConfig:
    """Resolve options and build the IMAP users' configuration (UsageError on bad input).

    Configured again at a test start from the web UI: values that differ from the ones at init
    came from the form, and their source says so."""
    controller = controller_of(environment)
    settings = resolve_settings(environment)
    if controller.initial_settings is not None:
        settings = settings.changed_since(controller.initial_settings, WEB_FORM_SOURCE)
    config = imap_config_mod.build_config(
        settings, require_credentials=_require_credentials(environment, settings)
    )
    controller.settings, controller.imap = settings, config
    if controller.initial_settings is None:
        controller.initial_settings = settings
    return config


def imap_config(environment: Any) -> imap_config_mod.ImapConfig:
    """The configuration users read at creation; built on first use in library mode."""
    config = controller_of(environment).imap
    return config if config is not None else configure(environment)


def settings_of(environment: Any) -> settings_mod.Settings | None:
    return controller_of(environment).settings


# -- event listeners -----------------------------------------------------------------------------


@events.init.add_listener
def check_options_at_init(environment: Any, **_kwargs: Any) -> None:
    if environment.parsed_options is None:
        return  # library mode: users configure on first use
    if getattr(environment, "web_ui", None) is not None:
        environment.web_ui.app.before_request(_check_swarm_form(environment))
    try:
        configure(environment)
    except UsageError as exc:
        options = environment.parsed_options
        # --processes children hit the same error: let the parent print it once.
        if not (getattr(options, "worker", False) and getattr(options, "processes", None)):
            sys.stderr.write(f"cyrus-loadtest: error: {exc}\n")
            sys.stderr.flush()
        sys.exit(EXIT_USAGE)


@events.test_start.add_listener
def recheck_options_at_test_start(environment: Any, **_kwargs: Any) -> None:
    """The web UI form may have changed options: rebuild (a bad value stops the run)."""
    if environment.parsed_options is None or getattr(environment.parsed_options, "headless", False):
        return
    try:
        configure(environment)
    except UsageError as exc:
        logger.error("cyrus-loadtest: %s", exc)
        if environment.runner is not None:
            environment.runner.quit()


# -- the run: artifacts, step statistics, collectors, faults, gate --------------------------------
#
# On the master or local runner, init builds a `loadtest.run.Run` (folder, SeriesStore, step
# recorder, gate rules, collectors, fault schedule); workers only record steps and send them to
# the master in their reports. Bad rules or faults stop the run before any user starts.

STEPS_REPORT_KEY = "cyrus_loadtest_steps"
PHASE_MESSAGE = "cyrus_loadtest_phase"
FLUSH_INTERVAL_S = 1.0


def run_of(environment: Any) -> Run | None:
    """The Run of this environment (master or local runner), or None (workers, library mode)."""
    return controller_of(environment).run


def _is_worker(environment: Any) -> bool:
    from locust.runners import WorkerRunner

    return isinstance(environment.runner, WorkerRunner)


def _fail_at_init(environment: Any, message: str) -> None:
    sys.stderr.write(f"cyrus-loadtest: error: {message}\n")
    sys.stderr.flush()
    sys.exit(EXIT_USAGE)


# run option -> CollectorConfig field
COLLECTOR_OPTIONS = {"collectors": "collectors", "probe_rate": "probe_rate",
                     "collector_interval": "interval", "stall_threshold": "greeting_threshold",
                     "heartbeat_threshold": "heartbeat_threshold", "metrics_url": "metrics_url"}
# What works against a deployment that is not ours: sockets, an HTTP page, our own machine.
REMOTE_COLLECTORS = ("probe", "master", "machine")


def _collector_settings(settings: Any, remote: bool) -> tuple[Any, bool]:
    """The collectors' configuration from the run options, each error naming its source."""
    from loadtest.collectors import CollectorConfig

    wanted = settings.get("collectors")
    if wanted and wanted.strip().lower() == "none":
        return None, False
    config = CollectorConfig()
    for option, field_name in COLLECTOR_OPTIONS.items():
        if settings.get(option):
            config = config.updated({field_name: settings[option]}, settings.source(option))
    if remote and not wanted:
        # Another host's /proc and files are out of reach; master's figures need --metrics-url.
        config = config.updated({"collectors": [c for c in REMOTE_COLLECTORS
                                                if c != "master" or config.metrics_url]},
                                "remote target")
    return config, bool(config.collectors)


def _remote_collectors(environment: Any, store: Any, config: Any) -> Any:
    """Collectors for a target given by --imap-host: the probe (plaintext only: it is a plain
    socket), master's figures from --metrics-url, the generator machine's load."""
    from loadtest.collectors import CollectorSet
    from loadtest.collectors.samplers import Target

    imap = imap_config(environment)
    target, credential = imap.slot(0)
    if target.tls != "none" and "probe" in config.collectors:
        logger.warning("cyrus-loadtest: the probe speaks plaintext IMAP only; no probe "
                       "against a TLS target")
        config = config.updated({"collectors": [c for c in config.collectors if c != "probe"]},
                                "TLS target")
    remote = Target(name=target.instance or f"{target.host}:{target.port}", host=target.host,
                    port=target.port, pid_file="", master_pid=None, stats_file="", data_dir="",
                    proc_dir="", listen_backlog=None, users=(credential,) if credential else ())
    return CollectorSet([remote], store, config)


def _baseline(settings: Any) -> Any:
    """--baseline RUN: a finished run's artifacts, read before the run starts."""
    from loadtest.gate.cli import load_baseline

    if not settings.get("baseline"):
        return None
    try:
        return load_baseline(settings["baseline"])
    except UsageError as exc:
        raise UsageError(f"{exc} (--baseline, {settings.source('baseline')})") from None


def _agent_settings(settings: Any) -> tuple[str, str | None] | None:
    """--agent-url and its token, checked before the run starts."""
    from loadtest.agent.client import check_agent_url, read_token_file

    if not settings.get("agent_url"):
        return None
    url = check_agent_url(settings["agent_url"], settings.source("agent_url"))
    token_file = settings.get("agent_token_file")
    token = read_token_file(token_file, settings.source("agent_token_file")) if token_file else None
    return url, token


def _attach_agent(collectors: Any, url: str, token: str | None) -> None:
    """The agent's series join the run under the (first) target's instance name."""
    from loadtest.agent.client import AgentSampler

    instance = collectors.targets[0].name if collectors.targets else "agent"
    collectors.samplers.append(AgentSampler(collectors.ctx, instance, url, token))


@events.init.add_listener
def set_up_run(environment: Any, **_kwargs: Any) -> None:
    options = environment.parsed_options
    if options is None or environment.runner is None:
        return  # library mode: the caller wires what it needs
    if _is_worker(environment):
        _set_up_worker(environment)
        return
    from loadtest.core.series import SeriesStore
    from loadtest.deploy.deployment import load_deployment
    from loadtest.faults import FaultRunner, parse_faults
    from loadtest.gate.rules import load_rules
    from loadtest.run import Run, describe_options, new_folder

    settings = settings_of(environment)
    if settings is None:
        return  # check_options_at_init already exited on bad options
    store = SeriesStore()
    try:  # every check before the run folder exists: bad input leaves nothing behind
        rules = load_rules(settings["gate"]) if settings.get("gate") else None
        baseline = _baseline(settings)
        remote = bool(settings.get("imap_host"))
        collector_config, collect = _collector_settings(settings, remote)
        specs = parse_faults(settings.get("faults"), settings.source("faults"))
        deployment = None
        if not remote:
            deployment = load_deployment(settings["deployment"], settings.source("deployment"))
        elif specs:
            raise UsageError("--faults needs a local test deployment (no --imap-host)")
        faults = (FaultRunner(specs, deployment, store, run_time=getattr(options, "run_time", None))
                  if specs and deployment is not None else None)
        agent = _agent_settings(settings) if collect else None
        folder = new_folder(settings["artifacts"], settings.get("run_name"))
    except UsageError as exc:
        _fail_at_init(environment, str(exc))
        return
    except OSError as exc:
        _fail_at_init(environment, f"cannot create the run folder under --artifacts "
                      f"{settings['artifacts']!r} ({settings.source('artifacts')}): {exc.strerror}")
        return
    run = Run(folder, store=store)
    run.rules, run.faults = rules, faults
    run.baseline = baseline
    if faults is not None:
        faults.current_phase = run.current_phase  # faults with phase=NAME wait for it
    # No artifacts folder for the collectors: the plugin's one flusher writes the whole store.
    if collect and deployment is not None:
        from loadtest.collectors import CollectorSet

        instances = imap_config(environment).instances or None
        run.collectors = CollectorSet.from_deployment(deployment, store, collector_config,
                                                      instances=instances)
    elif collect:
        run.collectors = _remote_collectors(environment, store, collector_config)
    if agent is not None:
        _attach_agent(run.collectors, *agent)
    controller_of(environment).run = run
    from loadtest.webui import install as install_webui

    # The Cyrus server tab: live series and gate table (register_options binds to 127.0.0.1).
    install_webui(environment, store=lambda: run.store, rules=lambda: run.rules,
                  steps=lambda: run.recorder, run=lambda: run,
                  hide_host=deployment is not None)
    attach_recorder(environment, run.recorder, run.current_phase)
    # Locust's HTML report goes into the run folder unless the user chose a place: finish_run
    # writes it (and the CSVs: Locust's CSV writer exists before init).
    run.locust_html = None if getattr(options, "html_file", None) else folder / "locust_report.html"
    run.on_phase = lambda name: _broadcast_phase(environment, name)
    run.write_info(locustfile=getattr(options, "locustfile", None),
                   deployment=str(deployment.path) if deployment else None,
                   # which master/imapd ran (a build directory or the packaged install)
                   cyrus=deployment.instances[0].cyrus if deployment else None,
                   target=(settings.get("imap_host") or None),
                   options=describe_options(settings, options), status="initialised")
    print(f"cyrus-loadtest: artifacts of this run in {folder}", file=sys.stderr, flush=True)


def _set_up_worker(environment: Any) -> None:
    worker = WorkerSteps(StepRecorder())
    controller_of(environment).worker = worker
    attach_recorder(environment, worker.recorder, lambda: worker.phase)

    def take_phase(message: Any, **_kwargs: Any) -> None:
        worker.phase = message.data["name"]

    environment.runner.register_message(PHASE_MESSAGE, take_phase)


def _broadcast_phase(environment: Any, name: str | None) -> None:
    """Workers tag their step statistics with the master's current phase."""
    from locust.runners import MasterRunner

    runner = environment.runner
    if isinstance(runner, MasterRunner):
        runner.send_message(PHASE_MESSAGE, {"name": name})


@events.report_to_master.add_listener
def send_steps_to_master(client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
    for controller in list(_controllers):
        runner = controller.environment.runner
        if controller.worker is not None and getattr(runner, "client_id", None) == client_id:
            data[STEPS_REPORT_KEY] = controller.worker.recorder.drain()


@events.worker_report.add_listener
def merge_worker_steps(client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
    steps = data.get(STEPS_REPORT_KEY)
    if not steps:
        return
    for controller in list(_controllers):
        if controller.run is not None:
            controller.run.recorder.merge(steps)


@events.test_start.add_listener
def start_run(environment: Any, **_kwargs: Any) -> None:
    run = run_of(environment)
    if run is None:
        return
    import time

    import gevent

    from loadtest.run import describe_options, disconnect_modes

    run.recorder.start = run.recorder.start or time.time()
    # The web form may have changed the options since init: record what this run really uses.
    settings = settings_of(environment)
    run.write_info(start=run.recorder.start, status="running",
                   options=describe_options(settings, environment.parsed_options),
                   user_classes=disconnect_modes(environment.user_classes or [],
                                                 imap_config(environment).disconnect,
                                                 settings.source("imap_disconnect")
                                                 if settings is not None else "option"))
    if run.collectors is not None:
        run.collectors.start()
    if run.faults is not None:
        run.faults.start()
    run.flusher = gevent.spawn(_flush_every_second, run)


def _flush_every_second(run: Any) -> None:
    """Per-second step series and the store reach the folder every second: a killed run loses
    at most a second."""
    import time

    import gevent

    from loadtest.core.eventlog import EventLog, check_run

    event_log = EventLog()  # stalls, gaps and faults as log lines (Locust's Logs tab)
    while True:
        gevent.sleep(FLUSH_INTERVAL_S)
        run.recorder.emit_per_second(run.store, before=time.time() - 2)
        _write_measurements(run)
        check_run(event_log, run)


def _write_measurements(run: Any) -> None:
    """The series, events and step statistics (steps.json: so the offline gate of a killed run
    judges what was measured) into the folder."""
    from loadtest.core.series import EVENTS_FILE, SERIES_FILE
    from loadtest.core.steps import STEPS_FILE

    run.write_artifact(f"{SERIES_FILE}, {EVENTS_FILE}", lambda: run.store.flush(run.folder))
    run.write_artifact(STEPS_FILE, lambda: run.recorder.save(run.folder))


@events.test_stop.add_listener
def stop_run(environment: Any, **_kwargs: Any) -> None:
    run = run_of(environment)
    if run is None:
        return
    if run.faults is not None:
        run.faults.stop()
    if run.collectors is not None:
        run.collectors.stop()
    run.set_phase(None)
    if run.info.get("status") == "running":
        import time

        # Where the load ended (the report's time axis ends here, not when Locust quits).
        run.write_info(load_end=time.time(), status="stopped")
    # Between runs (the web UI's /stop) nothing is measured: the flusher rests until the next
    # test_start, after writing what the run measured.
    if run.flusher is not None:
        run.flusher.kill(block=False)
        run.flusher = None
        _write_measurements(run)


@events.quitting.add_listener
def finish_run(environment: Any, **_kwargs: Any) -> None:
    """Stop everything, evaluate the gate in-process, set the exit code, write the artifacts."""
    run = run_of(environment)
    if run is None:
        return
    import time

    stop_run(environment)
    run.recorder.end = time.time()
    run.recorder.emit_per_second(run.store)
    run.store.close_open_events(run.recorder.end)  # a stall that never recovered ends now
    for hook in run.before_gate:
        hook()
    status = "finished"
    if run.rules is not None:
        from loadtest.core.runfolder import JUNIT_FILE, VERDICT_FILE
        from loadtest.gate.evaluate import evaluate
        from loadtest.gate.output import print_verdict, write_outputs

        # Evaluated in memory: the verdict and exit code stand even if no file can be written.
        verdict = evaluate(run.rules, run.recorder, run.store, run.baseline,
                           run=run.folder.name if run.baseline else None)
        print_verdict(verdict)
        environment.process_exit_code = verdict.exit_code
        status = f"gate {verdict.status}"
        run.write_artifact(f"{VERDICT_FILE}, {JUNIT_FILE}",
                           lambda: write_outputs(verdict, run.folder))
    # no gate: Locust's own exit code (1 when any request failed)
    _write_measurements(run)
    run.write_artifact("locust_stats.json, locust_*.csv",
                       lambda: _write_locust_stats(environment, run.folder))
    if run.locust_html is not None:
        run.write_artifact(run.locust_html.name, lambda: _write_locust_html(environment, run))
    run.write_info(end=run.recorder.end, status=status)
    if line := run.unwritten_line():
        print(line, file=sys.stderr, flush=True)


def _write_locust_html(environment: Any, run: Any) -> None:
    """Locust's HTML report into the run folder (written here, not by Locust, so that a folder
    that cannot take it is one line among the unwritten artifacts, not a traceback)."""
    from locust.html import get_html_report

    from loadtest.paths import atomic_write

    atomic_write(run.locust_html, get_html_report(environment, show_download_link=False))


def _write_locust_stats(environment: Any, folder: Any) -> None:
    """Locust's own statistics (JSON and CSV) in the run folder."""
    import csv
    import json

    from locust import stats as locust_stats

    stats = environment.runner.stats
    # Not stats.serialize_stats(): it resets every entry (it serves worker reports).
    entries = [entry.serialize() for entry in stats.entries.values()]
    (folder / "locust_stats.json").write_text(json.dumps(entries, indent=1))
    writer = locust_stats.StatsCSV(environment, locust_stats.PERCENTILES_TO_REPORT)
    for name, write in (("locust_stats.csv", writer.requests_csv),
                        ("locust_failures.csv", writer.failures_csv),
                        ("locust_exceptions.csv", writer.exceptions_csv)):
        with open(folder / name, "w", newline="") as fh:
            write(csv.writer(fh))
