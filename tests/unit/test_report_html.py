"""`cyrus-loadtest report ARTIFACTS`: report.html from a synthetic run, offline, with every plot
it shows present as a PNG; missing signals and missing files handled."""

from __future__ import annotations

import argparse
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from loadtest.core.series import SeriesStore
from loadtest.core.steps import StepRecorder
from loadtest.errors import UsageError
from loadtest.gate import cli as gate_cli
from loadtest.report import cli
from loadtest.report.plots import PANELS
from loadtest.report.synthetic import SyntheticRun, synthetic_run, write_synthetic_run

GATES = Path(__file__).resolve().parents[2] / "fixtures" / "gates"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.urls: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if tag == "img" and name == "src" and value:
                self.images.append(value)
            if name in ("src", "href") and value:
                self.urls.append(value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def report(folder: Path, *extra: str) -> tuple[Path, Links]:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert cli.run(parser.parse_args([str(folder), *extra])) == 0
    page = folder / "report.html"
    links = Links()
    links.feed(page.read_text())
    return page, links


def test_report_references_every_plot_and_each_exists(tmp_path: Path) -> None:
    folder = write_synthetic_run(tmp_path / "run", synthetic_run(instances=("slot1", "slot2")))
    gate_args = argparse.ArgumentParser()
    gate_cli.add_arguments(gate_args)
    gate_cli.run(gate_args.parse_args([str(folder), "--rules", str(GATES / "default.toml")]))
    page, links = report(folder)
    assert len(links.images) == len(PANELS)
    for src in links.images:
        png = folder / src
        assert png.is_file() and png.read_bytes().startswith(PNG_MAGIC), src
        assert png.stat().st_size > 5_000  # a drawn plot, not an empty canvas
    assert sorted(p.name for p in folder.glob("*.png")) == sorted(links.images)
    # Offline: nothing but files beside the page.
    assert all("://" not in url and not url.startswith("//") for url in links.urls)
    text = page.read_text()
    assert "<script" not in text
    # The verdict is on top, before the timeline, with the failing rules' reasons.
    assert text.index("Verdict: <b>FAIL</b>") < text.index("<h2>Timeline</h2>")
    assert "heartbeat_gap.longest_s" in text and "3.5 &gt; max 2.5" in text
    body = " ".join(links.text)
    assert "reconnect-flood" in body and "stop_master" in body
    assert "no data" in body  # the synthetic run has no CPU signals
    # Empty panels are PNGs of more than 5 KB too: only the CPU panel may say "no data".
    assert text.count("(no data)") == 1 and "CPU of Cyrus and of the generator (no data)" in text
    assert "***" in body and "password" in body  # options shown, redacted as written


def test_report_names_the_cyrus_build(tmp_path: Path) -> None:
    folder = write_synthetic_run(tmp_path / "run")
    _, links = report(folder)
    body = " ".join(links.text)
    assert "Cyrus 3.6.1 from /var/cache/cyrus-loadtest/builds/" in body
    assert "variant konstanz-2016 (master; the rest packaged" in body


def test_report_with_rules_but_no_verdict_file(tmp_path: Path) -> None:
    folder = write_synthetic_run(tmp_path / "run", synthetic_run(stall=False))
    page, _ = report(folder)
    assert "No verdict" in page.read_text()
    page, _ = report(folder, "--rules", str(GATES / "default.toml"))
    assert "Verdict: <b>PASS</b>" in page.read_text()
    assert not (folder / "verdict.json").exists()


def test_report_of_a_run_with_no_data_at_all(tmp_path: Path) -> None:
    empty = SyntheticRun(StepRecorder(), SeriesStore(), 1_700_000_000.0, 1_700_000_010.0)
    folder = write_synthetic_run(tmp_path / "empty", empty)
    page, links = report(folder)
    assert len(links.images) == len(PANELS)
    assert all((folder / src).is_file() for src in links.images)
    assert page.read_text().count("(no data)") == len(PANELS)
    assert "no requests were recorded" in page.read_text()


def test_report_refuses_incomplete_or_foreign_folder(tmp_path: Path) -> None:
    folder = write_synthetic_run(tmp_path / "run", synthetic_run(stall=False, scale=0.1))
    (folder / "events.jsonl").unlink()
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    with pytest.raises(UsageError, match=r"is incomplete: missing events.jsonl"):
        cli.run(parser.parse_args([str(folder)]))
    (folder / "events.jsonl").touch()
    (folder / "run.json").write_text(json.dumps({"format_version": 2}))
    with pytest.raises(UsageError, match=r"run.json has format version 2"):
        cli.run(parser.parse_args([str(folder)]))
    assert not (folder / "report.html").exists() and not list(folder.glob("*.png"))


def test_verdict_table_shows_each_rule_scope_with_labels(tmp_path: Path) -> None:
    folder = write_synthetic_run(tmp_path / "run", synthetic_run(stall=False, scale=0.1))
    rules = tmp_path / "scoped.toml"
    rules.write_text('[[rule]]\nmetric = "ready_workers.min"\nmin = 0\nphase = "warmup"\n'
                     'instance = "slot1"\nlabels = { service = "imap" }\n')
    page, _ = report(folder, "--rules", str(rules))
    assert "<td>phase=warmup instance=slot1 service=imap</td>" in page.read_text()


def test_a_run_that_quit_before_any_test_started_claims_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "never"
    empty = SyntheticRun(StepRecorder(), SeriesStore(), 0.0, 0.0)
    write_synthetic_run(folder, empty)
    run = json.loads((folder / "run.json").read_text())
    del run["start"], run["end"]  # as the plugin leaves it: initialised, never started
    (folder / "run.json").write_text(json.dumps(run))
    (folder / "verdict.json").write_text(json.dumps(
        {"status": "pass", "exit_code": 0, "counts": {"pass": 3}, "results": [],
         "rules_file": "x.toml"}))
    page, links = report(folder)
    text = page.read_text()
    assert "No load ran" in text
    assert "Verdict: <b>PASS</b>" not in text and "1970" not in text


def test_stalls_beside_the_verdict_and_events_as_a_table(tmp_path: Path) -> None:
    folder = write_synthetic_run(tmp_path / "run", synthetic_run())
    page, links = report(folder, "--rules", str(GATES / "default.toml"))
    text = page.read_text()
    verdict_part = text[text.index("<h2>Verdict</h2>"):text.index("<h2>Run</h2>")]
    # synthetic: heartbeat gap 45.0-48.5 s, stall 45.2-47.5 s after the start
    assert "<b>master heartbeat gap</b> at 45.0 s for <b>3.5 s</b>" in verdict_part
    assert "<b>master stall (new connections)</b> at 45.2 s for <b>2.3 s</b>" in verdict_part
    # failing rules first
    results = [cell for cell in ("fail", "pass") if f'<span class="{cell}">' in verdict_part]
    assert verdict_part.index('<span class="fail">') < verdict_part.index('<span class="pass">')
    assert results == ["fail", "pass"]
    body = " ".join(links.text)
    assert "phase churn-ramp" in body and "fault" in body
    assert "<details><summary>Options" in text


def test_plot_legends_use_words_and_rates_drop_to_zero_between_seconds() -> None:
    from loadtest.report.plots import line_label, zero_filled

    assert line_label("step_rate_per_s", {"step": "LOGIN"}, None) == "LOGIN"
    assert line_label("ready_workers", {"service": "imap", "family": "ipv4"}, "slot1") == \
        "ready workers imap/ipv4 [slot1]"
    assert zero_filled([(0.0, 5.0), (1.0, 6.0), (6.0, 150.0)]) == [
        (0.0, 5.0), (1.0, 6.0), (2.0, 0.0), (5.0, 0.0), (6.0, 150.0)]
