"""The declared options (``loadtest.settings.declare``) as Locust options, and their values.

Every declared option becomes a Locust option (``--flag``, env ``LOADTEST_NAME``, config-file
key ``flag-name``), shown in the web UI unless declared otherwise; secrets are masked there.
Values are resolved with the source of each: the command line, env, a config file, the web
UI's form.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loadtest import settings as settings_mod
from loadtest.errors import UsageError
from loadtest.imap import config as imap_config_mod

if TYPE_CHECKING:
    from locust.env import Environment

logger = logging.getLogger(__name__)

# The parser Locust built: one per process, kept to learn where each value came from.
_parser: Any = None


def declare_on_parser(parser: Any) -> None:
    """Add every declared option to Locust's parser (once: it is built more than once)."""
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


def resolve_settings(environment: Environment, form_sources: dict[str, str]) -> settings_mod.Settings:
    """Options of this environment with their sources (``form_sources``: those the web UI's
    form set); env only when Locust parsed nothing."""
    options = environment.parsed_options
    if options is None:
        raw = {o.name: _env_or_default(o) for o in settings_mod.declared()}
        sources = {o.name: f"env {o.env}" for o in settings_mod.declared() if o.env in _environ()}
        return settings_mod.resolve(raw, sources)
    raw = {o.name: getattr(options, o.name, o.default) for o in settings_mod.declared()}
    return settings_mod.resolve(raw, {**_sources(), **form_sources})


def require_credentials(environment: Environment, settings: settings_mod.Settings) -> bool:
    """Only floods without LOGIN run without credentials."""
    classes = environment.user_classes or []
    if not classes or settings["imap_flood_login"]:
        return True
    return any(getattr(cls, "needs_credentials", True) for cls in classes)


def swarm_form_check(environment: Environment,
                     accept: Callable[[dict[str, str]], None]) -> Callable[[], Any]:
    """A Flask before_request hook: the web UI's start form is checked like the command line
    before Locust starts anything, and a bad value is refused with the form as its origin.
    ``accept`` receives the options the form set (option name -> "web form field NAME")."""

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
                settings, require_credentials=require_credentials(environment, settings))
        except UsageError as exc:
            logger.error("cyrus-loadtest: %s", exc)
            return jsonify({"success": False, "message": str(exc), "host": environment.host})
        accept(form)
        return None

    return check


def _environ() -> dict[str, str]:
    return dict(os.environ)


def _env_or_default(opt: settings_mod.Option) -> Any:
    return _environ().get(opt.env, opt.default)
