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
"""

from __future__ import annotations

import logging
import os
import sys
import weakref
from typing import Any

from locust import events

from loadtest import settings as settings_mod
from loadtest.errors import EXIT_USAGE, UsageError
from loadtest.imap import config as imap_config_mod

logger = logging.getLogger(__name__)

# The parser Locust built (kept to learn where each value came from) and per-environment state.
_parser: Any = None
_resolved: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


# -- options -----------------------------------------------------------------------------------


@events.init_command_line_parser.add_listener
def register_options(parser: Any, **_kwargs: Any) -> None:
    global _parser
    _parser = parser
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
            action = group.add_argument(opt.flag, default=opt.default, choices=opt.choices, **kwargs)
        # What LocustArgumentParser.add_argument sets; argument groups lack its signature.
        action.include_in_web_ui = opt.web_ui
        action.is_secret = opt.secret
        action.is_required = False
        action.is_multiple = False


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
    return settings_mod.resolve(raw, _sources())


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


def configure(environment: Any) -> imap_config_mod.ImapConfig:
    """Resolve options and build the IMAP users' configuration (UsageError on bad input)."""
    settings = resolve_settings(environment)
    config = imap_config_mod.build_config(
        settings, require_credentials=_require_credentials(environment, settings)
    )
    _resolved[environment] = {"settings": settings, "imap": config}
    return config


def imap_config(environment: Any) -> imap_config_mod.ImapConfig:
    """The configuration users read at creation; built on first use in library mode."""
    state = _resolved.get(environment)
    if state is None:
        return configure(environment)
    return state["imap"]


def settings_of(environment: Any) -> settings_mod.Settings | None:
    state = _resolved.get(environment)
    return state["settings"] if state else None


# -- event listeners -----------------------------------------------------------------------------


@events.init.add_listener
def check_options_at_init(environment: Any, **_kwargs: Any) -> None:
    if environment.parsed_options is None:
        return  # library mode: users configure on first use
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
