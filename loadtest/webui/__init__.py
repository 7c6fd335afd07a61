"""Locust web UI extension: a "Cyrus server" tab with live server-side charts and the gate table.

Call from ``loadtest/plugin.py`` in the ``init`` event (the web UI has not started serving yet)::

    from loadtest.webui import install

    tab = install(environment, store=lambda: current_store, rules=gate_file_or_ruleset,
                  steps=lambda: step_recorder)

It does nothing (returns None) without a web UI: headless runs and workers. In distributed mode
the collectors run on the master, which is also where the web UI lives, so the store is local.
Everything the page needs ships in ``loadtest/webui/static/``: no network at run time.
"""

from __future__ import annotations

import logging
from typing import Any

from loadtest.webui.server import TAB_KEY, TAB_TITLE, ServerTab, tab_template_args

__all__ = ["LOOPBACK", "TAB_KEY", "TAB_TITLE", "ServerTab", "default_web_host", "install"]

log = logging.getLogger("loadtest.webui")
LOOPBACK = "127.0.0.1"


def default_web_host(options: Any) -> str | None:
    """The address the web UI should bind to when the user did not choose one, else None.

    Locust binds to every interface by default (``--web-host`` empty); this project binds to
    loopback. ``--web-host '*'`` (or env ``LOCUST_WEB_HOST='*'``) still means all interfaces.
    """
    if options is None:
        return None
    chosen = getattr(options, "web_host", None)
    return LOOPBACK if chosen in ("", None) else None


def install(environment: Any, store: Any = None, *, rules: Any = None, steps: Any = None,
            bind_loopback: bool = True) -> ServerTab | None:
    """Add the server tab to ``environment.web_ui``; None when there is no web UI.

    ``store``, ``rules``, ``steps``: see :class:`loadtest.webui.server.ServerTab` (each a value
    or a zero-argument callable returning the current one). With ``bind_loopback`` the web UI
    binds to 127.0.0.1 unless ``--web-host`` was given; this works only before the web UI
    starts serving, i.e. in the ``init`` event.
    """
    web_ui = getattr(environment, "web_ui", None)
    if web_ui is None:
        return None
    existing = getattr(web_ui, "cyrus_server_tab", None)
    if existing is not None:
        # Installed already (the plugin and a locustfile both asking): the first one stays.
        log.debug("server tab already installed; keeping the first one")
        return existing
    tab = ServerTab(store, rules=rules, steps=steps)
    web_ui.cyrus_server_tab = tab
    base_path = _base_path(web_ui)
    tab.register(web_ui.app, base_path=base_path, auth=web_ui.auth_required_if_enabled)
    tab_template_args(web_ui.template_args)
    if bind_loopback:
        host = default_web_host(getattr(environment, "parsed_options", None))
        if host is not None:
            if web_ui.greenlet is not None:
                log.warning("web UI already serving on all interfaces: install() came too late "
                            "to bind it to %s", host)
            else:
                web_ui.host = host
                port = getattr(web_ui, "port", "")
                log.info("Web UI bound to %s:%s%s only (--web-host '*' for all interfaces)",
                         host, port, base_path or "/")
    return tab


def _base_path(web_ui: Any) -> str:
    """Locust keeps --web-base-path only as its blueprint's URL prefix."""
    blueprint = web_ui.app.blueprints.get("locust")
    prefix = getattr(blueprint, "url_prefix", None) or ""
    return prefix.rstrip("/")
