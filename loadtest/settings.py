"""Options: declared once, resolved with the source of each value (flag, env, config file).

Pure module: no Locust, no gevent. Any module declares its options with :func:`declare`; the
plugin registers every declared option with Locust's parser (``--flag``, env ``LOADTEST_NAME``,
config-file key ``flag-name`` in locust.conf / pyproject.toml ``[tool.locust]``) and resolves
them at init. Values are parsed and validated here, not by argparse, so an error can say where
the bad value came from: ``bad value 'x' for --imap-port (from env LOADTEST_IMAP_PORT): ...``.

Precedence (Locust's, via ConfigArgParse): flag > env > config file > default.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from loadtest.errors import UsageError

ENV_PREFIX = "LOADTEST_"
DEFAULT_SOURCE = "default"


@dataclass(frozen=True)
class Option:
    """One option. ``parse`` turns the raw string into the value or raises ValueError(reason)."""

    name: str  # attribute name on Locust's parsed options, e.g. "imap_port"
    help: str
    default: Any = None
    parse: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None
    flag_only: bool = False  # a boolean switch (store_true); env/config take true/false
    secret: bool = False  # masked in the web UI, redacted everywhere
    web_ui: bool = True
    group: str = "cyrus-loadtest"
    # A choice that stands for "no value" (the default): Locust's web form shows an option with
    # choices as a select and posts its first entry, so a None default needs a choice of its own
    # to survive the form (e.g. "per-class": each user class keeps its own default).
    unset_choice: str | None = None

    @property
    def all_choices(self) -> tuple[str, ...] | None:
        """What the parser and the web form accept: ``unset_choice`` first, then ``choices``."""
        if self.choices is None or self.unset_choice is None:
            return self.choices
        return (self.unset_choice, *self.choices)

    @property
    def parser_default(self) -> Any:
        """The default as the parser (and the web form) shows it."""
        return self.unset_choice if self.unset_choice is not None else self.default

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def config_key(self) -> str:
        return self.name.replace("_", "-")


_REGISTRY: dict[str, Option] = {}


def declare(*options: Option) -> None:
    """Add options to the registry. Declaring the same option again (re-import) is harmless."""
    for option in options:
        existing = _REGISTRY.get(option.name)
        if existing is not None and existing != option:
            raise ValueError(f"option {option.name} declared twice with different definitions")
        _REGISTRY[option.name] = option


def declared() -> list[Option]:
    return list(_REGISTRY.values())


def option(name: str) -> Option:
    return _REGISTRY[name]


@dataclass(frozen=True)
class Value:
    value: Any
    source: str  # "flag --imap-port", "env LOADTEST_IMAP_PORT", "config file X key imap-port", "default"


class Settings:
    """Resolved option values, each with where it came from."""

    def __init__(self, values: Mapping[str, Value]) -> None:
        self._values = dict(values)

    def __getitem__(self, name: str) -> Any:
        return self._values[name].value

    def get(self, name: str, default: Any = None) -> Any:
        value = self._values.get(name)
        return default if value is None else value.value

    def source(self, name: str) -> str:
        return self._values[name].source

    def changed_since(self, earlier: Settings, source: str) -> Settings:
        """These settings with ``source`` as the source of every value that differs from
        ``earlier`` (the web form changed it between init and a test start)."""
        values = {}
        for name, value in self._values.items():
            before = earlier._values.get(name)
            moved = before is not None and before.value != value.value
            values[name] = Value(value.value, source) if moved else value
        return Settings(values)

    def describe(self) -> dict[str, dict[str, Any]]:
        """Values and sources for run.json, secrets redacted."""
        out = {}
        for name, value in self._values.items():
            secret = name in _REGISTRY and _REGISTRY[name].secret
            shown = "***" if secret and value.value else value.value
            out[name] = {"value": shown, "source": value.source}
        return out


def resolve(
    raw: Mapping[str, Any],
    sources: Mapping[str, str] | None = None,
    options: Iterable[Option] | None = None,
) -> Settings:
    """Parse and validate the raw values of ``options`` (all declared ones by default).

    ``raw`` maps option name to what the parser produced (a string, a bool for switches, or the
    default); ``sources`` maps option name to its source description. A name missing from
    ``sources`` came from the command line when it differs from the default.
    """
    sources = sources or {}
    values: dict[str, Value] = {}
    for opt in options if options is not None else declared():
        value = raw.get(opt.name, opt.default)
        # The web form posts "" for an empty field: that is the default too.
        unset = value in (opt.default, opt.parser_default) or (value == "" and opt.default is None)
        source = sources.get(opt.name) or (DEFAULT_SOURCE if unset else f"flag {opt.flag}")
        values[opt.name] = Value(_parse(opt, value, source), source)
    return Settings(values)


def _parse(opt: Option, value: Any, source: str) -> Any:
    if opt.flag_only and not isinstance(value, str):
        return bool(value)
    if opt.flag_only:
        try:
            return parse_bool(value)
        except ValueError as exc:
            raise UsageError(f"bad value {value!r} for {opt.flag} (from {source}): {exc}") from None
    if value is None or (isinstance(value, str) and value == "" and opt.default is None):
        return opt.default
    if opt.unset_choice is not None and value == opt.unset_choice:
        return opt.default
    if not isinstance(value, str):
        return value  # a typed default, or a value already parsed (web UI re-resolution)
    shown = "***" if opt.secret else repr(value)
    if opt.choices is not None and value not in opt.choices:
        raise UsageError(
            f"bad value {shown} for {opt.flag} (from {source}): "
            f"choose one of {', '.join(opt.all_choices or opt.choices)}"
        )
    try:
        return opt.parse(value)
    except ValueError as exc:
        raise UsageError(f"bad value {shown} for {opt.flag} (from {source}): {exc}") from None


# Parsers for Option.parse: raise ValueError with a short reason.


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true/false, yes/no, on/off or 1/0")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError("not an integer") from None
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def port(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise ValueError("not a TCP port (1-65535)")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError("not a number") from None


def non_negative_float(text: str) -> float:
    value = _number(text)
    if not 0 <= value < math.inf:  # also false for NaN
        raise ValueError("must be a finite number >= 0")
    return value


def positive_float(text: str) -> float:
    value = _number(text)
    if not 0 < value < math.inf:
        raise ValueError("must be a finite number > 0")
    return value


def seconds_range(text: str) -> tuple[float, float]:
    """``2`` or ``1-3`` (seconds): a constant or a uniform range."""
    if text.strip().startswith("-"):
        raise ValueError("seconds must be >= 0 (N or MIN-MAX)")
    low, sep, high = text.partition("-")
    lo = non_negative_float(low)
    hi = non_negative_float(high) if sep else lo
    if hi < lo:
        raise ValueError("range upper bound below lower bound")
    return lo, hi


def name_list(allowed: Iterable[str] | None = None) -> Callable[[str], tuple[str, ...]]:
    """A parser for comma-separated names, each from ``allowed`` when given."""
    allowed_set = {a.upper() for a in allowed} if allowed is not None else None

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(n.strip() for n in text.split(",") if n.strip())
        if allowed_set is not None:
            names = tuple(n.upper() for n in names)
            bad = [n for n in names if n not in allowed_set]
            if bad:
                raise ValueError(f"unknown {', '.join(bad)} (known: {', '.join(sorted(allowed_set))})")
        return names

    return parse


def sources_from_configargparse(source_to_settings: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Option name -> source, from ConfigArgParse's ``get_source_to_settings_dict()``.

    Its keys: ``command_line``, ``environment_variables`` (env name -> (action, value)),
    ``config_file|PATH`` (key -> (action, value)) and ``defaults``. Command-line values are not
    listed per option; :func:`resolve` treats a non-default value without a source as a flag.
    """
    sources: dict[str, str] = {}
    for key, settings in source_to_settings.items():
        if key == "environment_variables":
            for env_name, (action, _value) in settings.items():
                if action is not None:
                    sources[action.dest] = f"env {env_name}"
        elif key.startswith("config_file"):
            path = key.partition("|")[2] or "config file"
            for cfg_key, (action, _value) in settings.items():
                if action is not None:
                    sources[action.dest] = f"config file {path} key {cfg_key}"
        elif key == "defaults":
            for _name, (action, _value) in settings.items():
                if action is not None:
                    sources.setdefault(action.dest, DEFAULT_SOURCE)
    return sources
