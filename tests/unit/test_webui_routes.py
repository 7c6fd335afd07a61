"""The server tab's routes: on a plain Flask app (fast), and on Locust's own web UI in a child
process (importing Locust monkey-patches the process it runs in, so not in pytest's own)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

from flask import Blueprint, Flask, jsonify

from loadtest.core.series import SeriesStore
from loadtest.core.steps import StepRecorder
from loadtest.gate.rules import parse_rules
from loadtest.webui import ServerTab
from loadtest.webui.server import STATIC_DIR

RULES = parse_rules('[[rule]]\nmetric = "load1.max"\nmax = 4\n\n'
                    '[[rule]]\nmetric = "CONNECT.p99_ms"\nmax = 250\n', "live.toml")


def locust_like_app(base: str = "") -> Flask:
    """Locust's shape: its pages in a blueprint named "locust" under the base path."""
    app = Flask(__name__)
    bp = Blueprint("locust", __name__, url_prefix=base or None)

    @bp.route("/")
    def index() -> str:
        return "<html><body><div id=root></div></body></html>"

    @bp.route("/stats/requests")
    def request_stats():  # noqa: ANN202
        return jsonify({"stats": [], "state": "running"})

    app.register_blueprint(bp)
    return app


def test_series_with_cursor_and_new_run() -> None:
    store = SeriesStore()
    current = {"store": store}
    tab = ServerTab(lambda: current["store"], rules=RULES)
    app = locust_like_app("/base")
    tab.register(app, base_path="/base")
    client = app.test_client()
    store.add("load1", 0.5, t=100.0)
    store.add("greeting_latency_ms", 3.0, t=100.0, instance="slot1")
    store.event("stall", t=100.5, instance="slot1")
    first = client.get("/base/cyrus/series?cursor=0").get_json()
    assert first["points"] == {"load1": [[100.0, 0.5]], "greeting_latency_ms@slot1": [[100.0, 3.0]]}
    assert first["cursor"] == 2 and first["reset"] is True
    assert [e["kind"] for e in first["events"]] == ["stall"]
    assert [c["key"] for c in first["charts"]][:3] == ["latency", "heartbeat", "spawns"]
    assert first["window"] == {"start": None, "end": None, "state": "waiting"}
    store.add("load1", 0.7, t=101.0)
    second = client.get("/base/cyrus/series?cursor=2").get_json()
    assert second["points"] == {"load1": [[101.0, 0.7]]} and second["reset"] is False
    assert second["run"] == first["run"]
    current["store"] = SeriesStore()  # a new run
    third = client.get("/base/cyrus/series?cursor=3").get_json()
    assert third["run"] != first["run"] and third["reset"] is True and third["points"] == {}


def test_bad_cursor_is_a_clear_400() -> None:
    app = locust_like_app()
    ServerTab(SeriesStore()).register(app)
    response = app.test_client().get("/cyrus/series?cursor=abc")
    assert response.status_code == 400
    assert response.get_json()["error"] == "bad cursor 'abc': not an integer"


def test_no_store_yet_says_so() -> None:
    app = locust_like_app()
    ServerTab(None, rules=RULES).register(app)
    data = app.test_client().get("/cyrus/series").get_json()
    assert data["run"] is None and data["points"] == {}


def test_gate_live_values_cached_and_refreshed() -> None:
    store = SeriesStore()
    recorder = StepRecorder(per_second=False)
    tab = ServerTab(store, rules=RULES, steps=recorder, gate_refresh_s=0.0, gate_max_share=math.inf)
    app = locust_like_app()
    tab.register(app)
    client = app.test_client()
    store.add("load1", 1.0, t=1.0)
    gate = client.get("/cyrus/gate").get_json()
    assert [(r["metric"], r["status"], r["measured"]) for r in gate["rows"]] == [
        ("CONNECT.p99_ms", "inconclusive", "no data"), ("load1.max", "pass", "1")]
    assert gate["status"] == "inconclusive" and gate["steps_known"] is True
    store.add("load1", 9.0, t=2.0)
    recorder.on_request("IMAP", "CONNECT", 3.0, False)
    gate = client.get("/cyrus/gate").get_json()
    assert [r["status"] for r in gate["rows"]] == ["fail", "pass"] and gate["status"] == "fail"

    cached = ServerTab(store, rules=RULES, gate_refresh_s=3600.0)
    before = cached.gate()["rows"][0]["measured"]
    store.add("load1", 20.0, t=3.0)
    assert cached.gate()["rows"][0]["measured"] == before  # not re-evaluated within the interval


def test_gate_from_rules_file_and_bad_file(tmp_path: Path) -> None:
    good = tmp_path / "gate.toml"
    good.write_text('[[rule]]\nmetric = "load1.max"\nmax = 4\n')
    path = {"rules": str(good)}
    tab = ServerTab(SeriesStore(), rules=lambda: path["rules"], gate_refresh_s=0.0, gate_max_share=math.inf)
    assert tab.gate()["rules_file"] == str(good) and len(tab.gate()["rows"]) == 1
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rule]]\nmetric = "load1.max"\n')
    path["rules"] = str(bad)
    gate = tab.gate()
    assert gate["status"] == "error" and gate["rows"] == []
    assert gate["message"] == f"{bad}:1: load1.max: rule has neither min nor max"
    assert ServerTab(SeriesStore()).gate()["message"] == "no gate rules file"


def test_page_and_static_assets_are_served_from_the_package() -> None:
    app = locust_like_app("/lt")
    ServerTab(SeriesStore()).register(app, base_path="/lt")
    client = app.test_client()
    page = client.get("/lt/cyrus/")
    assert page.status_code == 200 and b'src="static/server.js"' in page.data
    for name in ("server.js", "cyruscharts.js", "server.css", "locust-tab.js"):
        assert client.get(f"/lt/cyrus/static/{name}").status_code == 200, name
    # Nothing on the page is fetched from another host.
    for path in STATIC_DIR.iterdir():
        text = path.read_text()
        assert "http://" not in text and "https://" not in text, path.name


def test_locust_pages_extended_without_breaking_them() -> None:
    store = SeriesStore()
    store.add("load1", 5.0, t=1.0)
    app = locust_like_app("/base")
    ServerTab(store, rules=RULES).register(app, base_path="/base")
    client = app.test_client()
    index = client.get("/base/").get_data(as_text=True)
    assert '<script src="/base/cyrus/static/locust-tab.js"' in index
    assert index.index("locust-tab.js") < index.index("</body>")
    stats = client.get("/base/stats/requests").get_json()
    assert stats["state"] == "running"
    [extended] = stats["extended_stats"]
    assert extended["key"] == "cyrus"
    assert [(r["metric"], r["status"]) for r in extended["data"]] == [
        ("load1.max", "fail"), ("CONNECT.p99_ms", "inconclusive")]


# -- on Locust's own web UI --------------------------------------------------------------------

LOCUST_SCRIPT = textwrap.dedent("""
    import json, sys
    import loadtest.plugin  # its init_command_line_parser listener: --web-host defaults to loopback
    from locust import User, task
    from locust.env import Environment
    from locust.argument_parser import parse_options
    from loadtest.core.series import SeriesStore
    from loadtest.webui import install

    class Nobody(User):
        @task
        def nothing(self):
            pass

    args = json.loads(sys.argv[1])
    env = Environment(user_classes=[Nobody], parsed_options=parse_options(args))
    env.create_local_runner()
    opts = env.parsed_options
    web_host = "" if opts.web_host == "*" else opts.web_host  # what locust.main does
    web_ui = env.create_web_ui(host=web_host, port=0, web_base_path=opts.web_base_path,
                               web_login=opts.web_login, delayed_start=True)
    web_ui.app.secret_key = "test"
    if opts.web_login:
        web_ui.login_manager.user_loader(lambda user_id: None)  # nobody is logged in
    store = SeriesStore()
    store.add("load1", 0.25, t=1.0)
    tab = install(env, store, rules=sys.argv[2])
    assert install(env, SeriesStore()) is tab  # a second install keeps the first
    client = web_ui.app.test_client()
    base = opts.web_base_path
    out = {"host": web_ui.host, "tabs": web_ui.template_args.get("extended_tabs"),
           "tables": [t["key"] for t in web_ui.template_args.get("extended_tables", [])]}
    for name, path in (("page", "/cyrus/"), ("series", "/cyrus/series"), ("gate", "/cyrus/gate"),
                       ("index", "/"), ("stats", "/stats/requests")):
        r = client.get(base + path)
        out[name] = {"status": r.status_code, "location": r.headers.get("Location"),
                     "json": r.get_json(silent=True),
                     "script": b"cyrus/static/locust-tab.js" in r.data}
    print(json.dumps(out))
""")


def run_in_locust(args: list[str], tmp_path: Path) -> dict:
    rules = tmp_path / "gate.toml"
    rules.write_text('[[rule]]\nmetric = "load1.max"\nmax = 4\n')
    done = subprocess.run([sys.executable, "-c", LOCUST_SCRIPT, json.dumps(args), str(rules)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_on_locust_web_ui_with_base_path_binds_loopback(tmp_path: Path) -> None:
    out = run_in_locust(["--web-base-path", "/lt"], tmp_path)
    assert out["host"] == "127.0.0.1"
    assert out["tabs"] == [{"key": "cyrus", "title": "Cyrus server"}]
    assert out["tables"] == ["cyrus"]
    assert out["page"]["status"] == 200
    assert out["series"]["json"]["points"] == {"load1": [[1.0, 0.25]]}
    assert out["gate"]["json"]["rows"][0]["status"] == "pass"
    assert out["index"]["status"] == 200 and out["index"]["script"]
    assert out["stats"]["json"]["extended_stats"][0]["data"][0]["measured"] == "0.25"


def test_on_locust_web_ui_host_chosen_by_user_is_kept(tmp_path: Path) -> None:
    assert run_in_locust(["--web-host", "*"], tmp_path)["host"] == ""
    assert run_in_locust(["--web-host", "127.0.0.2"], tmp_path)["host"] == "127.0.0.2"


def test_on_locust_web_ui_routes_need_the_login(tmp_path: Path) -> None:
    out = run_in_locust(["--web-login"], tmp_path)
    for name in ("page", "series", "gate", "index", "stats"):
        assert out[name]["status"] == 302, name
        assert "/login" in out[name]["location"], name
    assert not out["index"]["script"]


def test_downloads_and_the_finished_window(tmp_path: Path) -> None:
    import io
    import zipfile
    from types import SimpleNamespace

    from loadtest.webui.server import tab_template_args

    store = SeriesStore()
    recorder = StepRecorder(per_second=False)
    run = SimpleNamespace(folder=tmp_path / "run-1", info={"start": 100.0, "status": "running"})
    tab = ServerTab(store, rules=RULES, steps=recorder, run=run)
    app = locust_like_app()
    tab.register(app)
    client = app.test_client()
    store.add("load1", 9.0, t=101.0)
    store.event("heartbeat_gap", t=102.0, end=105.0, instance="slot1", stall_s=3.0)
    recorder.on_request("IMAP", "CONNECT", 3.0, False)
    assert client.get("/cyrus/series?cursor=0").get_json()["window"]["state"] == "running"

    series = client.get("/cyrus/download/series.csv")
    assert series.status_code == 200 and "run-1-series.csv" in series.headers["Content-Disposition"]
    assert series.data.decode().splitlines()[1] == "101.000,load1,,9.0,"
    events = client.get("/cyrus/download/events.csv").data.decode().splitlines()
    assert events[1].startswith("102.000,105.000,3.000,heartbeat_gap,slot1,")
    verdict = client.get("/cyrus/download/verdict.json").get_json()
    assert verdict["status"] == "fail"
    assert b"<testsuite" in client.get("/cyrus/download/junit.xml").data
    assert client.get("/cyrus/download/nothing").status_code == 404
    archive = zipfile.ZipFile(io.BytesIO(client.get("/cyrus/download/report.zip").data))
    assert "report.html" in archive.namelist() and any(n.endswith(".png") for n in archive.namelist())

    run.info.update(status="stopped", load_end=130.0)
    assert client.get("/cyrus/series?cursor=0").get_json()["window"] == {
        "start": 100.0, "end": 130.0, "state": "finished"}
    args: dict = {"extended_csv_files": [{"href": "./other.csv", "title": "other"}]}
    tab_template_args(args)
    hrefs = [f["href"] for f in args["extended_csv_files"]]
    assert hrefs[0] == "./other.csv" and "./cyrus/download/report.zip" in hrefs


def test_form_layout_groups_every_declared_option() -> None:
    import ast

    import loadtest
    import loadtest.imap.config  # noqa: F401 - declares the IMAP options the form lists
    from loadtest.webui.payload import FORM_GROUPS

    # Every Option(...) in the package's source that the web form shows (read, not imported:
    # some declaring modules import Locust, which must not patch this process).
    declared = set()
    for path in Path(loadtest.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Option"
                    and node.args and isinstance(node.args[0], ast.Constant)
                    and not any(k.arg == "web_ui" and isinstance(k.value, ast.Constant)
                                and k.value.value is False for k in node.keywords)):
                declared.add(node.args[0].value)
    assert len(declared) > 30
    grouped = {name for _title, options in FORM_GROUPS for name, _label in options}
    assert declared <= grouped, declared - grouped  # a new option needs a group and a label
    tab = ServerTab(SeriesStore())
    app = locust_like_app()
    tab.register(app)
    groups = app.test_client().get("/cyrus/form").get_json()["groups"]
    assert [g["title"] for g in groups][:4] == ["Target", "Users", "Behaviour", "Run"]
    behaviour = {o["field"]: o for o in groups[2]["options"]}
    assert behaviour["imapDisconnect"]["label"] == "How sessions end"
    assert "per-class" in behaviour["imapDisconnect"]["help"]
