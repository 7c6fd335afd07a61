"""What the run options configure, checked before the run starts, and the Run built from them.

On the master or local runner, init builds a `loadtest.run.Run` (folder, SeriesStore, step
recorder, gate rules, baseline, collectors, fault schedule). Every check comes before the run
folder exists: bad input is a UsageError naming the value's source and leaves nothing behind.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from loadtest.errors import UsageError
from loadtest.settings import Settings

if TYPE_CHECKING:
    from loadtest.collectors import CollectorConfig, CollectorSet
    from loadtest.core.series import SeriesStore
    from loadtest.gate.evaluate import Baseline
    from loadtest.imap.config import ImapConfig
    from loadtest.run import Run

logger = logging.getLogger(__name__)

# run option -> CollectorConfig field
COLLECTOR_OPTIONS = {"collectors": "collectors", "probe_rate": "probe_rate",
                     "collector_interval": "interval", "stall_threshold": "greeting_threshold",
                     "heartbeat_threshold": "heartbeat_threshold", "metrics_url": "metrics_url"}
# What works against a deployment that is not ours: sockets, an HTTP page, our own machine.
REMOTE_COLLECTORS = ("probe", "master", "machine")


def collector_settings(settings: Settings, remote: bool) -> tuple[CollectorConfig | None, bool]:
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


def remote_collectors(imap: ImapConfig, store: SeriesStore, config: CollectorConfig) -> CollectorSet:
    """Collectors for a target given by --imap-host: the probe (plaintext only: it is a plain
    socket), master's figures from --metrics-url, the generator machine's load."""
    from loadtest.collectors import CollectorSet
    from loadtest.collectors.samplers import Target

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


def baseline(settings: Settings) -> Baseline | None:
    """--baseline RUN: a finished run's artifacts, read before the run starts."""
    from loadtest.gate.cli import load_baseline

    if not settings.get("baseline"):
        return None
    try:
        return load_baseline(settings["baseline"])
    except UsageError as exc:
        raise UsageError(f"{exc} (--baseline, {settings.source('baseline')})") from None


def agent_settings(settings: Settings) -> tuple[str, str | None] | None:
    """--agent-url and its token, checked before the run starts."""
    from loadtest.agent.client import check_agent_url, read_token_file

    if not settings.get("agent_url"):
        return None
    url = check_agent_url(settings["agent_url"], settings.source("agent_url"))
    token_file = settings.get("agent_token_file")
    token = read_token_file(token_file, settings.source("agent_token_file")) if token_file else None
    return url, token


def attach_agent(collectors: CollectorSet, url: str, token: str | None) -> None:
    """The agent's series join the run under the (first) target's instance name."""
    from loadtest.agent.client import AgentSampler

    instance = collectors.targets[0].name if collectors.targets else "agent"
    collectors.samplers.append(AgentSampler(collectors.ctx, instance, url, token))


def build_run(settings: Settings, imap: ImapConfig, run_time: Any = None) -> Run:
    """The Run these options configure, against a local deployment or --imap-host;
    ``run_time`` is Locust's --run-time. A UsageError names the bad value; a run folder that
    cannot be created is one too."""
    from loadtest.core.series import SeriesStore
    from loadtest.deploy.deployment import load_deployment
    from loadtest.faults import FaultRunner, parse_faults
    from loadtest.gate.rules import load_rules
    from loadtest.run import Run, new_folder

    store = SeriesStore()
    try:  # every check before the run folder exists: bad input leaves nothing behind
        rules = load_rules(settings["gate"]) if settings.get("gate") else None
        baseline_run = baseline(settings)
        remote = bool(settings.get("imap_host"))
        collector_config, collect = collector_settings(settings, remote)
        specs = parse_faults(settings.get("faults"), settings.source("faults"))
        deployment = None
        if not remote:
            deployment = load_deployment(settings["deployment"], settings.source("deployment"))
        elif specs:
            raise UsageError("--faults needs a local test deployment (no --imap-host)")
        faults = (FaultRunner(specs, deployment, store, run_time=run_time)
                  if specs and deployment is not None else None)
        agent = agent_settings(settings) if collect else None
        folder = new_folder(settings["artifacts"], settings.get("run_name"))
    except OSError as exc:
        raise UsageError(f"cannot create the run folder under --artifacts "
                         f"{settings['artifacts']!r} ({settings.source('artifacts')}): "
                         f"{exc.strerror}") from None
    run = Run(folder, store=store, deployment=deployment)
    run.rules, run.faults = rules, faults
    run.baseline = baseline_run
    if faults is not None:
        faults.current_phase = run.current_phase  # faults with phase=NAME wait for it
    # No artifacts folder for the collectors: the plugin's one flusher writes the whole store.
    if collect and collector_config is not None and deployment is not None:
        from loadtest.collectors import CollectorSet

        run.collectors = CollectorSet.from_deployment(deployment, store, collector_config,
                                                      instances=imap.instances or None)
    elif collect and collector_config is not None:
        run.collectors = remote_collectors(imap, store, collector_config)
    if agent is not None and run.collectors is not None:
        attach_agent(run.collectors, *agent)
    return run
