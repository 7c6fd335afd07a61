"""Option declaration and resolution with sources (pure)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from loadtest.errors import UsageError
from loadtest.settings import (
    Option,
    name_list,
    port,
    positive_float,
    resolve,
    seconds_range,
    sources_from_configargparse,
)

OPTS = [
    Option("imap_port", "port", parse=port),
    Option("imap_timeout", "timeout", default="10", parse=positive_float),
    Option("imap_wait", "wait", default="0", parse=seconds_range),
    Option("imap_tls", "tls", default="none", choices=("none", "implicit", "starttls")),
    Option("imap_password", "pw", secret=True, parse=port),
    Option("allow_remote_target", "allow", default=False, flag_only=True),
    Option("imap_steps", "steps", default="LIST", parse=name_list(["LIST", "SELECT"])),
]


def test_defaults_are_parsed_and_marked_default() -> None:
    s = resolve({}, {}, OPTS)
    assert s["imap_port"] is None
    assert s["imap_timeout"] == 10.0
    assert s["imap_wait"] == (0.0, 0.0)
    assert s["imap_steps"] == ("LIST",)
    assert s["allow_remote_target"] is False
    assert s.source("imap_timeout") == "default"


def test_sources_are_kept() -> None:
    s = resolve(
        {"imap_port": "1143", "imap_timeout": "2.5", "imap_wait": "1-3"},
        {"imap_port": "env LOADTEST_IMAP_PORT", "imap_timeout": "config file locust.conf key imap-timeout"},
        OPTS,
    )
    assert (s["imap_port"], s.source("imap_port")) == (1143, "env LOADTEST_IMAP_PORT")
    assert s.source("imap_timeout").startswith("config file")
    # Not default and no other source: it came from the command line.
    assert (s["imap_wait"], s.source("imap_wait")) == ((1.0, 3.0), "flag --imap-wait")


@pytest.mark.parametrize(
    "raw, source, message",
    [
        ({"imap_port": "abc"}, "env LOADTEST_IMAP_PORT",
         "bad value 'abc' for --imap-port (from env LOADTEST_IMAP_PORT): not an integer"),
        ({"imap_port": "70000"}, "flag --imap-port", "not a TCP port"),
        ({"imap_timeout": "-1"}, "config file locust.conf key imap-timeout", "must be a finite number > 0"),
        ({"imap_timeout": "0"}, "flag --imap-timeout", "must be a finite number > 0"),
        ({"imap_wait": "3-1"}, "flag --imap-wait", "upper bound below lower bound"),
        ({"imap_tls": "ssl"}, "env LOADTEST_IMAP_TLS", "choose one of none, implicit, starttls"),
        ({"imap_steps": "LIST,BOGUS"}, "flag --imap-steps", "unknown BOGUS"),
    ],
)
def test_bad_values_name_value_flag_and_source(raw: dict, source: str, message: str) -> None:
    name = next(iter(raw))
    with pytest.raises(UsageError) as info:
        resolve(raw, {name: source}, OPTS)
    text = str(info.value)
    assert message in text and source in text and "\n" not in text


def test_secret_values_never_in_errors_or_descriptions() -> None:
    with pytest.raises(UsageError) as info:
        resolve({"imap_password": "hunter2"}, {}, OPTS)
    assert "hunter2" not in str(info.value) and "***" in str(info.value)


def test_switches_from_env_or_config_strings() -> None:
    assert resolve({"allow_remote_target": "yes"}, {}, OPTS)["allow_remote_target"] is True
    assert resolve({"allow_remote_target": True}, {}, OPTS)["allow_remote_target"] is True
    with pytest.raises(UsageError):
        resolve({"allow_remote_target": "maybe"}, {}, OPTS)


def test_sources_from_configargparse_dict() -> None:
    port_action = SimpleNamespace(dest="imap_port")
    timeout_action = SimpleNamespace(dest="imap_timeout")
    wait_action = SimpleNamespace(dest="imap_wait")
    sources = sources_from_configargparse({
        "command_line": {"": (None, ["--imap-wait", "1"])},
        "environment_variables": {"LOADTEST_IMAP_PORT": (port_action, "1143")},
        "config_file|/tmp/locust.conf": {"imap-timeout": (timeout_action, "3")},
        "defaults": {"imap_wait": (wait_action, "0")},
    })
    assert sources == {
        "imap_port": "env LOADTEST_IMAP_PORT",
        "imap_timeout": "config file /tmp/locust.conf key imap-timeout",
        "imap_wait": "default",
    }


def test_declared_imap_options_have_flags_envs_and_config_keys() -> None:
    import loadtest.imap.config  # noqa: F401 - declares the IMAP options
    from loadtest.settings import option

    opt = option("allow_remote_target")
    assert (opt.flag, opt.env, opt.config_key) == (
        "--allow-remote-target", "LOADTEST_ALLOW_REMOTE_TARGET", "allow-remote-target")
    # Locust writes a web-UI option's value into the page, masked or not: keep secrets out.
    assert option("imap_password").secret and not option("imap_password").web_ui
    s = resolve({})
    assert "imap_password" in s.describe()
    assert resolve({"imap_password": "hunter2"}).describe()["imap_password"]["value"] == "***"


PER_CLASS_OPT = Option("imap_disconnect", "how", choices=("logout", "close", "reset"),
                       unset_choice="per-class")


@pytest.mark.parametrize("raw", [None, "per-class", ""])
def test_unset_choice_keeps_the_none_default_through_the_form(raw: object) -> None:
    # The web form shows an option with choices as a select and posts its first entry.
    assert PER_CLASS_OPT.all_choices == ("per-class", "logout", "close", "reset")
    assert PER_CLASS_OPT.parser_default == "per-class"
    settings = resolve({"imap_disconnect": raw}, {}, [PER_CLASS_OPT])
    assert settings["imap_disconnect"] is None
    assert settings.source("imap_disconnect") == "default"


def test_unset_choice_does_not_widen_the_real_choices() -> None:
    assert resolve({"imap_disconnect": "reset"}, {}, [PER_CLASS_OPT])["imap_disconnect"] == "reset"
    with pytest.raises(UsageError, match="choose one of per-class, logout, close, reset"):
        resolve({"imap_disconnect": "fin"}, {}, [PER_CLASS_OPT])


def test_values_changed_since_init_name_the_web_form() -> None:
    at_init = resolve({"imap_disconnect": None, "imap_timeout": "10"}, {},
                      [PER_CLASS_OPT, OPTS[1]])
    from_form = resolve({"imap_disconnect": "close", "imap_timeout": "10"}, {},
                        [PER_CLASS_OPT, OPTS[1]]).changed_since(at_init, "web form")
    assert from_form.describe() == {"imap_disconnect": {"value": "close", "source": "web form"},
                                    "imap_timeout": {"value": 10.0, "source": "default"}}
