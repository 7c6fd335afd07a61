"""The Cyrus server tab in a real browser: Locust's CLI with the web UI against a real Cyrus,
a swarm started from the form in headless Chromium (Debian's), charts and gate table checked,
screenshots saved under artifacts/tests/ (the paths are printed)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from loadtest.deploy.deployment import Deployment
from loadtest.gate.rules import load_rules
from loadtest.paths import PROJECT_ROOT, fixtures_dir
from loadtest.webui.payload import GATE_COLUMNS

pytestmark = pytest.mark.cyrus

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    # Without these Chromium keeps trying to reach Google's services on a closed network.
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
LOCUSTFILE = Path(__file__).with_name("webui_locustfile.py")
BASE = "/loadtest"  # exercise --web-base-path
ARTIFACTS = Path(os.environ.get("LOADTEST_TEST_ARTIFACTS", PROJECT_ROOT / "artifacts" / "tests"))
CHART_KEYS = ("latency", "heartbeat", "spawns", "workers", "backlog", "canary", "load")

sync_api = pytest.importorskip("playwright.sync_api")
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} missing (ci/setup installs Debian's chromium)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(what: str, check: Callable[[], object], timeout: float, every: float = 0.5) -> object:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:g} s (last: {last!r})")


@pytest.fixture(params=["local", "distributed"])
def locust_web(request: pytest.FixtureRequest, make_deployment: Callable[..., Deployment],
               tmp_path: Path) -> Iterator[dict]:
    """Locust with its web UI: a local runner, or a master with 2 worker processes (the tab and
    the collectors live on the master)."""
    deployment = make_deployment(users=10)
    port = free_port()
    log = tmp_path / "locust.log"
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--deployment", deployment.root,
           "--web-port", str(port), "--web-base-path", BASE, "--run-time", "50s",
           "--gate", str(fixtures_dir() / "gates" / "default.toml"),
           "--artifacts", str(tmp_path / "artifacts"), "--loglevel", "INFO"]
    if request.param == "distributed":
        cmd += ["--processes", "2"]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT, env=env)
    try:
        url = f"http://127.0.0.1:{port}{BASE}/"

        def up() -> bool:
            assert proc.poll() is None, f"locust exited {proc.returncode}: {log.read_text()[-2000:]}"
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    return resp.status == 200
            except OSError:
                return False

        wait_until("Locust web UI answering", up, 20)
        yield {"url": url, "pid": proc.pid, "port": port, "deployment": deployment, "log": log}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def frame_charts(frame) -> dict[str, int]:  # noqa: ANN001 - a Playwright frame
    return frame.eval_on_selector_all(
        ".cyrus-chart", "els => Object.fromEntries(els.map(e => [e.id.slice(6), +e.dataset.points]))")


def test_server_tab_in_chromium(locust_web: dict) -> None:
    # The web UI binds to loopback only unless --web-host says otherwise.
    listening = {c.laddr for c in psutil.Process(locust_web["pid"]).net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == locust_web["port"]}
    assert {a.ip for a in listening} == {"127.0.0.1"}, listening
    rules = load_rules(fixtures_dir() / "gates" / "default.toml").rules
    master_pid = locust_web["deployment"].instances[0].master_pid
    assert master_pid
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    stopped_master = False
    try:
        with sync_api.sync_playwright() as pw:
            # Playwright gives every launch a fresh temporary --user-data-dir of its own.
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            external: list[str] = []
            page.on("request", lambda r: None if r.url.startswith(("http://127.0.0.1", "data:"))
                    else external.append(r.url))
            page.set_default_timeout(15000)
            page.goto(locust_web["url"])

            # The project's own options are in the start form (Locust camel-cases names).
            for name in ("imapHost", "imapPort", "imapUsersFile", "imapDisconnect", "imapWait"):
                assert page.locator(f"form [name={name}]").count() == 1, name
            page.click("text=Custom parameters")  # a collapsed section of the form
            page.fill("input[name=userCount]", "4")
            page.fill("input[name=spawnRate]", "4")
            page.fill("input[name=imapWait]", "0.3")
            page.fill("input[name=imapHeldInterval]", "1")
            page.click("form button[type=submit]")

            tab = page.locator('[role=tab]:has-text("Cyrus server")')
            tab.click(timeout=15000)
            assert tab.count() == 1  # one tab, though workers import the locustfile too
            page.wait_for_selector("#cyrus-server-frame", timeout=10000)
            frame = wait_until("charts frame loaded",
                               lambda: page.frame(url=lambda u: "embed=1" in u), 10)
            points = wait_until("every chart has data points", lambda: (
                c := frame_charts(frame)) and all(c.get(k, 0) > 0 for k in CHART_KEYS) and c, 25)
            print(f"\npoints per chart after start: {points}")

            # Locust's own table in the tab: one row per gate rule, with live values.
            rows = wait_until("gate table has a row per rule", lambda: (
                r := page.eval_on_selector_all(
                    "table tbody tr", "trs => trs.map(tr => [...tr.cells].map(td => td.innerText))"))
                and len(r) == len(rules) and r, 10)
            statuses = {row[0].lower() for row in rows}
            assert statuses <= {"pass", "fail", "inconclusive", "waiting"}, statuses
            now = [key for key, _title in GATE_COLUMNS].index("measured")
            assert any(row[now] not in ("no data", "") for row in rows), rows

            # A master frozen for 3.5 s: its heartbeat stops and the charts mark the gap.
            os.kill(master_pid, signal.SIGSTOP)
            stopped_master = True
            time.sleep(3.5)
            os.kill(master_pid, signal.SIGCONT)
            stopped_master = False
            marks = wait_until("heartbeat gap marked on the charts", lambda: (
                t := frame.inner_text("#marks")) and re.search(r"\d+ heartbeat gap", t) and t, 12)
            print(f"events marked: {marks}")

            shot = ARTIFACTS / "webui-locust-tab.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")

            # The page on its own: charts and its own gate table.
            solo = browser.new_page(viewport={"width": 1400, "height": 1000})
            solo.goto(locust_web["url"] + "cyrus/")
            wait_until("standalone charts have points", lambda: (
                c := frame_charts(solo.main_frame)) and all(c.get(k, 0) > 0 for k in CHART_KEYS), 10)
            # The page renders all rows at once: the first non-empty table is the whole one.
            solo_rows = wait_until("standalone gate rows", lambda: solo.eval_on_selector_all(
                "#gate-rows tr", "trs => trs.map(tr => [...tr.cells].map(td => td.textContent))"),
                10)
            assert len(solo_rows) == len(rules), solo_rows
            assert {row[0] for row in solo_rows} <= {"pass", "fail", "inconclusive", "waiting"}, \
                solo_rows
            head = solo.eval_on_selector_all("#gate-table thead th", "ths => ths.map(th => th.textContent)")
            assert head == [title for _key, title in GATE_COLUMNS], head
            shot2 = ARTIFACTS / "webui-server-page.png"
            solo.screenshot(path=str(shot2), full_page=True)
            print(f"screenshot: {shot2}")

            page.get_by_role("button", name="Stop", exact=True).click()

            def state() -> str:
                with urllib.request.urlopen(locust_web["url"] + "stats/requests", timeout=5) as r:
                    return json.load(r)["state"]

            wait_until("swarm stopped", lambda: state() == "stopped", 20)
            assert external == [], f"the page fetched from outside: {external}"
            browser.close()
    finally:
        if stopped_master:
            os.kill(master_pid, signal.SIGCONT)


ACCEPTANCE = PROJECT_ROOT / "locustfiles" / "acceptance.py"
SHOT_VIEWPORT = {"width": 1440, "height": 900}
STOP_S = 3.0


def locust_state(url: str) -> str:
    with urllib.request.urlopen(url + "stats/requests", timeout=5) as resp:
        return json.load(resp)["state"]


def test_acceptance_from_the_unchanged_form(make_deployment: Callable[..., Deployment],
                                            tmp_path: Path) -> None:
    """locustfiles/acceptance.py started from the form as Locust shows it: each user class keeps
    its own disconnect mode (floods reset, churn logs out) and run.json says so. A 3 s SIGSTOP of
    master is one number in the event, the gate and the report. Screenshots at 1440x900."""
    deployment = make_deployment(users=20)
    master_pid = deployment.instances[0].master_pid
    port = free_port()
    artifacts = tmp_path / "artifacts"
    log = tmp_path / "locust.log"
    cmd = [sys.executable, "-m", "locust", "-f", str(ACCEPTANCE), "--deployment", deployment.root,
           "--web-port", str(port), "--acceptance-duration", "24", "--acceptance-users", "3",
           "--acceptance-held", "2", "--gate", str(fixtures_dir() / "gates" / "default.toml"),
           "--artifacts", str(artifacts), "--run-name", "form", "--loglevel", "INFO"]
    url = f"http://127.0.0.1:{port}/"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)
    stopped_master = False
    try:
        def up() -> bool:
            assert proc.poll() is None, f"locust exited {proc.returncode}: {log.read_text()[-2000:]}"
            try:
                return locust_state(url) == "ready"
            except OSError:
                return False

        wait_until("Locust web UI answering", up, 30)
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=SHOT_VIEWPORT)
            page.set_default_timeout(15000)
            page.goto(url)
            # The form as Locust renders it: the disconnect select shows per-class; the target
            # comes from the deployment, so Locust's Host field is hidden.
            assert page.locator("form [name=imapDisconnect]").count() == 1
            wait_until("Host field hidden", lambda: page.locator("input[name=host]").is_hidden(), 5)
            # Custom parameters in groups with labels in words (opening the section changes
            # no value).
            page.click("text=Custom parameters")
            wait_until("parameters grouped", lambda: page.locator(
                "label:has-text('How sessions end')").count() == 1 and page.locator(
                "#cyrus-form-group-2:has-text('Behaviour')").count() == 1, 10)
            page.screenshot(path=str(ARTIFACTS / "webui-acceptance-form.png"), full_page=True)
            page.click("form button[type=submit]")  # nothing changed
            wait_until("swarm running", lambda: locust_state(url) == "running", 15)
            time.sleep(1.0)  # Locust selects its Statistics tab once the swarm runs

            def tab_frame() -> object:
                page.locator('[role=tab]:has-text("Cyrus server")').click()
                return page.frame(url=lambda u: "embed=1" in u)

            frame = wait_until("charts frame loaded", tab_frame, 15, every=1.0)
            wait_until("charts have points", lambda: (c := frame_charts(frame))
                       and c.get("latency", 0) > 2, 20)
            page.screenshot(path=str(ARTIFACTS / "webui-acceptance-running.png"))
            time.sleep(3.0)  # into the churn ramp (15 % of 24 s is warm-up)
            os.kill(master_pid, signal.SIGSTOP)
            stopped_master = True
            time.sleep(STOP_S)
            os.kill(master_pid, signal.SIGCONT)
            stopped_master = False
            wait_until("heartbeat gap marked", lambda: re.search(
                r"heartbeat gap", frame.inner_text("#marks")), 12)
            page.screenshot(path=str(ARTIFACTS / "webui-acceptance-after-stall.png"))
            wait_until("the shape ended the run", lambda: locust_state(url) == "stopped", 40)
            wait_until("the tab says finished",
                       lambda: frame.inner_text("#status").startswith("finished"), 10)
            page.screenshot(path=str(ARTIFACTS / "webui-acceptance-finished.png"), full_page=True)
            # The run's files in Locust's Download Data tab, built from the live run.
            page.locator('[role=tab]:has-text("Download Data")').click()
            hrefs = page.eval_on_selector_all("a", "as => as.map(a => a.getAttribute('href'))")
            assert "./cyrus/download/report.zip" in hrefs, hrefs
            with urllib.request.urlopen(url + "cyrus/download/verdict.json", timeout=30) as resp:
                assert json.load(resp)["status"] in ("pass", "fail", "inconclusive")
            # Stalls and gaps are lines in Locust's Logs tab.
            page.locator('[role=tab]:has-text("Logs")').click()
            wait_until("heartbeat gap in the Logs tab",
                       lambda: "master heartbeat gap" in page.inner_text("body"), 10)
            proc.send_signal(signal.SIGTERM)  # quitting: steps.json, verdict, run.json end
            proc.wait(30)
            folder = artifacts / "form"
            report = subprocess.run([sys.executable, "-m", "loadtest.cli", "report", str(folder)],
                                    capture_output=True, text=True, timeout=120)
            assert report.returncode == 0, report.stderr
            shot_page = browser.new_page(viewport=SHOT_VIEWPORT)
            shot_page.goto((folder / "report.html").as_uri())
            shot_page.screenshot(path=str(ARTIFACTS / "report-acceptance.png"), full_page=True)
            report_text = shot_page.inner_text("body")
            browser.close()
    finally:
        if stopped_master:
            os.kill(master_pid, signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)

    run = json.loads((folder / "run.json").read_text())
    print(f"\nuser classes in run.json: {run['user_classes']}")
    assert run["user_classes"] == {
        "ChurnUser": {"disconnect": "logout", "source": "ChurnUser's default"},
        "HeldSessionUser": {"disconnect": "logout", "source": "HeldSessionUser's default"},
        "ReconnectFloodUser": {"disconnect": "reset", "source": "ReconnectFloodUser's default"},
    }
    assert run["options"]["cyrus_loadtest"]["imap_disconnect"] == {"value": None,
                                                                   "source": "default"}
    steps = json.loads((folder / "steps.json").read_text())
    flood: dict[str, int] = {}
    for entry in steps["entries"]:
        if entry["request_type"] == "IMAP" and entry["phase"] == "reconnect-flood":
            flood[entry["step"]] = flood.get(entry["step"], 0) + entry["count"]
    print(f"reconnect-flood phase steps: {flood}")
    # Churn users stay through the flood and log out after each LOGIN; flood users (no LOGIN)
    # must not: every LOGOUT of the phase belongs to a LOGIN (at most one per churn user began
    # before the phase), while the flood's CONNECTs far outnumber the LOGINs.
    assert flood.get("LOGOUT", 0) <= flood.get("LOGIN", 0) + 3, flood
    assert flood["CONNECT"] > 2 * flood.get("LOGIN", 0) + 50, flood

    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    gaps = [e for e in events if e["kind"] == "heartbeat_gap"]
    assert len(gaps) == 1, gaps
    gap = gaps[0]
    length = gap["end"] - gap["t"]
    print(f"{STOP_S:g} s SIGSTOP: heartbeat gap {length:.2f} s, detail {gap['detail']}")
    assert abs(length - STOP_S) <= 0.5 + 0.1  # +0.1: the stop itself is two kill() calls
    assert gap["detail"]["stall_s"] == pytest.approx(length, abs=0.001)
    verdict = json.loads((folder / "verdict.json").read_text())
    (rule,) = [r for r in verdict["results"] if r["metric"] == "heartbeat_gap.longest_s"]
    assert rule["measured"] == pytest.approx(length, abs=0.001)
    shown = f"{length:.1f} s"
    assert shown in report_text, report_text[:3000]
