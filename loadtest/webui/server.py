"""The server tab's Flask side: a page, its JSON endpoints and the hooks into Locust's own UI.

No Locust import here (importing Locust monkey-patches the process), so the routes can be tested
on a plain Flask app; ``loadtest.webui.install`` does the Locust glue.

Routes, below Locust's base path (``--web-base-path``), each behind Locust's login when
``--web-login`` is on:

- ``{base}/cyrus/``          the page: live charts and the gate table (``?embed=1``: charts only,
                             for the frame inside Locust's own tab)
- ``{base}/cyrus/series``    ``?cursor=N``: points recorded since the N-th sample, and events
- ``{base}/cyrus/gate``      the gate's rules with current values and pass/fail
- ``{base}/cyrus/download/NAME``  the run's series.csv, events.csv, verdict.json, junit.xml and
                             report.zip as they are now (listed in Locust's Download Data tab)
- ``{base}/cyrus/static/..`` the page's scripts and styles (shipped in the package)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request, send_from_directory, url_for
from flask.typing import ResponseReturnValue

from loadtest.core.series import SeriesStore
from loadtest.webui import payload

log = logging.getLogger("loadtest.webui")

STATIC_DIR = Path(__file__).resolve().parent / "static"
BLUEPRINT_NAME = "cyrus_loadtest"
TAB_KEY = "cyrus"
TAB_TITLE = "Cyrus server"
GATE_REFRESH_S = 3.0  # at least; raised when evaluating takes long (it runs on Locust's hub)
GATE_MAX_SHARE = 0.05  # evaluate at most ~5 % of the time

Provider = Callable[[], Any]
AuthDecorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _provider(value: Any) -> Provider:
    """A value or a zero-argument callable returning the current value (a new run may bring a
    new store, recorder or rules file)."""
    return value if callable(value) else (lambda: value)


class ServerTab:
    """State behind the routes: where the data comes from and the cached gate verdict.

    ``store``: the collectors' SeriesStore (or a callable returning the current one, or None
    before the first run). ``rules``: a ``loadtest.gate.rules.RuleSet``, a path to a gate file,
    or a callable returning either (None: no gate table). ``steps``: the plugin's
    ``StepRecorder`` (or its ``to_dict()``, or a callable); None evaluates step rules on no data
    (they show as inconclusive) while series and event rules still get measured values.
    """

    def __init__(self, store: Any = None, *, rules: Any = None, steps: Any = None,
                 run: Any = None, hide_host: bool = False,
                 gate_refresh_s: float = GATE_REFRESH_S,
                 gate_max_share: float = GATE_MAX_SHARE) -> None:
        self.hide_host = hide_host
        self.get_store = _provider(store)
        self.get_rules = _provider(rules)
        self.get_steps = _provider(steps)
        # The plugin's loadtest.run.Run (info: start, load_end, status; folder): None before
        # the first run or outside the plugin.
        self.get_run = _provider(run)
        self._failed_at: dict[str, float] = {}  # rule key -> run-relative s of its first fail
        self._failed_run: Any = None
        self.gate_refresh_s = gate_refresh_s
        self.gate_max_share = gate_max_share
        self._gate_cache: dict[str, Any] | None = None
        self._gate_at = 0.0
        self._gate_interval = gate_refresh_s
        self._rules_cache: tuple[str, Any] | None = None

    # -- data ------------------------------------------------------------------------------
    def series(self, cursor: int) -> dict[str, Any]:
        store = self.get_store()
        if store is None:
            return {"run": None, "cursor": 0, "points": {}, "events": [], "now": time.time(),
                    "window": self.window(), "charts": [c.to_dict() for c in payload.CHARTS]}
        added, total = store.tail(cursor)
        return {
            "window": self.window(),
            # A new store (a new run) restarts the browser's cursor and clears its charts.
            "run": f"{id(store):x}",
            "cursor": total,
            "reset": cursor == 0 or cursor > total,
            "points": payload.chart_points(added),
            "events": payload.event_dicts(store.events()),
            "now": time.time(),
            "charts": [c.to_dict() for c in payload.CHARTS],
        }

    def window(self) -> dict[str, Any]:
        """The run's time window and state: waiting (no test yet), running, or finished (the
        page then freezes on start..end and says so)."""
        info = getattr(self.get_run(), "info", None) or {}
        status, start = info.get("status"), info.get("start")
        if not start or status in (None, "initialised"):
            state = "waiting"
        elif status == "running":
            state = "running"
        else:
            state = "finished"
        return {"start": start, "end": info.get("load_end") if state == "finished" else None,
                "state": state}

    def _note_failures(self, verdict: dict[str, Any], start: float | None) -> dict[str, float]:
        """When each failing rule was first seen failing (run-relative seconds)."""
        store = self.get_store()
        if store is not self._failed_run:
            self._failed_at, self._failed_run = {}, store
        now = time.time()
        for result in verdict.get("results", []):
            key = payload.rule_key(result)
            if result.get("status") == "fail" and key not in self._failed_at and start:
                self._failed_at[key] = max(0.0, now - start)
        return self._failed_at

    def gate(self) -> dict[str, Any]:
        """The cached verdict, re-evaluated when older than the refresh interval."""
        now = time.monotonic()
        if self._gate_cache is None or now - self._gate_at >= self._gate_interval:
            started = time.perf_counter()
            self._gate_cache = self._evaluate()
            took = time.perf_counter() - started
            self._gate_at = time.monotonic()
            # Evaluation blocks Locust's hub: on a long run keep it a small share of the time.
            self._gate_interval = max(self.gate_refresh_s, took / self.gate_max_share)
            self._gate_cache["evaluation_ms"] = round(took * 1000.0, 1)
            self._gate_cache["columns"] = payload.gate_columns()  # the page's table header
        return self._gate_cache

    def _rules(self) -> Any:
        from loadtest.gate.rules import RuleSet, load_rules

        rules = self.get_rules()
        if rules is None or isinstance(rules, RuleSet):
            return rules
        path = str(rules)
        if self._rules_cache is None or self._rules_cache[0] != path:
            self._rules_cache = (path, load_rules(path))
        return self._rules_cache[1]

    def _evaluate(self) -> dict[str, Any]:
        from loadtest.core.steps import StepRecorder
        from loadtest.errors import UsageError
        from loadtest.gate.evaluate import evaluate

        try:
            rules = self._rules()
        except UsageError as exc:
            return {"status": "error", "rules_file": None, "rows": [], "message": str(exc),
                    "updated": time.time()}
        if rules is None:
            return {"status": "none", "rules_file": None, "rows": [],
                    "message": "no gate rules file", "updated": time.time()}
        store = self.get_store() or SeriesStore()
        steps = self.get_steps()
        steps_known = steps is not None
        if not steps_known:
            steps = StepRecorder(per_second=False)
        try:
            verdict = evaluate(rules, steps, store).to_dict()
        except Exception as exc:  # a live table must not take the web UI down
            log.exception("gate evaluation for the web UI failed")
            return {"status": "error", "rules_file": rules.path, "rows": [],
                    "message": f"gate evaluation failed: {exc}", "updated": time.time()}
        window = self.window()
        phases = {str(e.detail.get("name")) for e in store.events("phase")}
        rows = payload.gate_rows(verdict, phases if window["state"] == "running" else None,
                                 self._note_failures(verdict, window["start"]))
        return {"status": verdict["status"], "rules_file": verdict["rules_file"],
                "suite": verdict["suite"], "counts": verdict["counts"], "rows": rows,
                "overall": payload.overall(rows, verdict["status"]), "message": "",
                "updated": time.time(), "steps_known": steps_known}

    # -- Flask -----------------------------------------------------------------------------
    def blueprint(self, base_path: str, auth: AuthDecorator) -> Blueprint:
        bp = Blueprint(BLUEPRINT_NAME, __name__, url_prefix=f"{base_path.rstrip('/')}/{TAB_KEY}",
                       static_folder=str(STATIC_DIR), static_url_path="/static")

        @bp.route("/")
        @auth
        def page() -> Response:
            return send_from_directory(STATIC_DIR, "server.html", max_age=0)

        @bp.route("/series")
        @auth
        def series() -> ResponseReturnValue:
            raw = request.args.get("cursor", "0")
            try:
                cursor = int(raw)
            except ValueError:
                return jsonify({"error": f"bad cursor {raw!r}: not an integer"}), 400
            return jsonify(self.series(cursor))

        @bp.route("/gate")
        @auth
        def gate() -> Response:
            return jsonify(self.gate())

        @bp.route("/form")
        @auth
        def form() -> Response:
            from loadtest import settings

            # Options are declared by the modules the locustfile imported (all by now).
            help_of = {o.name: o.help for o in settings.declared() if o.web_ui}
            return jsonify({"groups": payload.form_layout(help_of)})

        @bp.route("/download/<name>")
        @auth
        def download(name: str) -> ResponseReturnValue:
            from loadtest.webui import downloads

            if name not in downloads.FILES:
                return jsonify({"error": f"no download {name!r} (known: "
                                         f"{', '.join(downloads.FILES)})"}), 404
            body, mimetype = downloads.build(name, self)
            return Response(body, mimetype=mimetype, headers={
                "Content-Disposition": f'attachment; filename="{downloads.file_name(name, self)}"'})

        return bp

    def register(self, app: Flask, *, base_path: str = "",
                 auth: AuthDecorator | None = None, locust_index: str = "locust.index",
                 locust_stats: str = "locust.request_stats") -> None:
        """Add the routes to ``app`` and hook Locust's own pages: a script in the index page
        that shows the charts inside Locust's "Cyrus server" tab, and the gate rows in the
        ``/stats/requests`` answer Locust's UI polls (its extended-table mechanism)."""
        app.register_blueprint(self.blueprint(base_path, auth or (lambda f: f)))

        @app.after_request
        def extend_locust_pages(response: Response) -> Response:
            try:
                if request.endpoint == locust_index:
                    return self._inject_tab_script(response)
                if request.endpoint == locust_stats:
                    return self._add_gate_rows(response)
            except Exception:  # never break Locust's own pages
                log.exception("cannot extend Locust's %s", request.endpoint)
            return response

    def _inject_tab_script(self, response: Response) -> Response:
        if response.status_code != 200 or response.mimetype != "text/html":
            return response
        html = response.get_data(as_text=True)
        src = url_for(f"{BLUEPRINT_NAME}.static", filename="locust-tab.js")
        hide = ' data-hide-host="1"' if self.hide_host else ""
        tag = f'<script src="{src}" data-tab-title="{TAB_TITLE}"{hide}></script>'
        if "</body>" in html:
            html = html.replace("</body>", tag + "\n</body>", 1)
        else:
            html += tag
        response.set_data(html)
        return response

    def _add_gate_rows(self, response: Response) -> Response:
        if response.status_code != 200 or not response.is_json:
            return response
        data = response.get_json()
        extended = [e for e in data.get("extended_stats", []) if e.get("key") != TAB_KEY]
        extended.append({"key": TAB_KEY, "data": self.gate()["rows"]})
        data["extended_stats"] = extended
        # Locust memoizes this view: build a new body rather than touching a cached object.
        response.set_data(_json_bytes(data))
        return response


def _json_bytes(data: Any) -> bytes:
    from flask import json

    return json.dumps(data).encode("utf-8")


def tab_template_args(template_args: dict[str, Any]) -> None:
    """Declare the tab and its table in Locust's template args, keeping other extensions'."""
    tabs = [t for t in template_args.get("extended_tabs") or [] if t.get("key") != TAB_KEY]
    tabs.append({"key": TAB_KEY, "title": TAB_TITLE})
    tables = [t for t in template_args.get("extended_tables") or [] if t.get("key") != TAB_KEY]
    tables.append({"key": TAB_KEY, "structure": payload.gate_columns()})
    template_args["extended_tabs"] = tabs
    template_args["extended_tables"] = tables
    from loadtest.webui.downloads import FILES

    csv_files = [f for f in template_args.get("extended_csv_files") or []
                 if f"/{TAB_KEY}/download/" not in f.get("href", "")]
    csv_files += [{"href": f"./{TAB_KEY}/download/{name}", "title": f"Download {title}"}
                  for name, title in FILES.items()]
    template_args["extended_csv_files"] = csv_files
