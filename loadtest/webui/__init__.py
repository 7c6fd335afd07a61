"""Locust web UI extension: a "Cyrus server" tab with live server-side charts and the gate table.

Called by ``loadtest.locustrun.controller`` in the ``init`` event (the web UI has not started serving yet)::

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

__all__ = ["TAB_KEY", "TAB_TITLE", "ServerTab", "install"]

log = logging.getLogger("loadtest.webui")


def install(environment: Any, store: Any = None, *, rules: Any = None,
            steps: Any = None, run: Any = None, hide_host: bool = False) -> ServerTab | None:
    """Add the server tab to ``environment.web_ui``; None when there is no web UI.

    ``store``, ``rules``, ``steps``, ``run``: see :class:`loadtest.webui.server.ServerTab` (each
    a value or a zero-argument callable returning the current one). ``hide_host``: the target
    comes from a deployment, so Locust's Host field (and its notice) is hidden in the start
    form. Where the web UI listens is not
    decided here: ``loadtest.plugin`` makes 127.0.0.1 the default of ``--web-host``.
    """
    web_ui = getattr(environment, "web_ui", None)
    if web_ui is None:
        return None
    existing = getattr(web_ui, "cyrus_server_tab", None)
    if existing is not None:
        # Installed already (the plugin and a locustfile both asking): the first one stays.
        log.debug("server tab already installed; keeping the first one")
        return existing
    tab = ServerTab(store, rules=rules, steps=steps, run=run, hide_host=hide_host)
    web_ui.cyrus_server_tab = tab
    tab.register(web_ui.app, base_path=_base_path(web_ui), auth=web_ui.auth_required_if_enabled)
    tab_template_args(web_ui.template_args)
    return tab


def _base_path(web_ui: Any) -> str:
    """Locust keeps --web-base-path only as its blueprint's URL prefix."""
    blueprint = web_ui.app.blueprints.get("locust")
    prefix = getattr(blueprint, "url_prefix", None) or ""
    return prefix.rstrip("/")
