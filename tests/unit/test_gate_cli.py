"""`cyrus-loadtest gate ARTIFACTS --rules FILE` on artifacts folders, good and bad."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from loadtest.errors import EXIT_FAIL, EXIT_PASS, UsageError
from loadtest.gate import cli
from loadtest.report.synthetic import synthetic_run, write_synthetic_run

GATES = Path(__file__).resolve().parents[2] / "fixtures" / "gates"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cyrus-loadtest gate")
    cli.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_run(tmp_path_factory.mktemp("healthy"), synthetic_run(stall=False))


@pytest.fixture(scope="module")
def stalled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_run(tmp_path_factory.mktemp("stalled"), synthetic_run(stall=True))


def test_offline_gate_pass_and_fail(healthy: Path, stalled: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(parse([str(healthy), "--rules", str(GATES / "default.toml")])) == EXIT_PASS
    assert json.loads((healthy / "verdict.json").read_text())["status"] == "pass"
    assert (healthy / "junit.xml").is_file()
    junit = tmp_path / "out" / "gate.xml"
    junit.parent.mkdir()
    code = cli.run(parse([str(stalled), "--rules", str(GATES / "default.toml"),
                          "--junit", str(junit), "--json", str(tmp_path / "v.json")]))
    assert code == EXIT_FAIL
    assert junit.is_file() and not (stalled / "junit.xml").exists()
    assert json.loads((tmp_path / "v.json").read_text())["exit_code"] == EXIT_FAIL
    assert "FAIL" in capsys.readouterr().out


def copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        if f.suffix in (".json", ".jsonl") and f.name != "verdict.json":
            (dst / f.name).write_bytes(f.read_bytes())
    return dst


@pytest.mark.parametrize("missing", ["run.json", "steps.json", "series.jsonl", "events.jsonl"])
def test_incomplete_folder_names_folder_and_file(healthy: Path, tmp_path: Path,
                                                 missing: str) -> None:
    folder = copy_run(healthy, tmp_path / "run")
    (folder / missing).unlink()
    with pytest.raises(UsageError) as caught:
        cli.run(parse([str(folder), "--rules", str(GATES / "default.toml")]))
    assert str(caught.value) == f"artifacts folder {folder} is incomplete: missing {missing}"
    assert not (folder / "verdict.json").exists()  # nothing half-done


def test_other_format_version(healthy: Path, tmp_path: Path) -> None:
    folder = copy_run(healthy, tmp_path / "run")
    run = json.loads((folder / "run.json").read_text())
    run["format_version"] = 0
    (folder / "run.json").write_text(json.dumps(run))
    with pytest.raises(UsageError, match=rf"artifacts folder {folder}: run.json has format "
                                         r"version 0, this cyrus-loadtest reads version 1"):
        cli.run(parse([str(folder), "--rules", str(GATES / "default.toml")]))


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("run.json", "{not json", "cannot read run.json"),
    ("steps.json", '{"format": 7}', "bad steps.json"),
    ("series.jsonl", "{}\n{}\n", "bad series or events"),
])
def test_corrupt_files(healthy: Path, tmp_path: Path, name: str, content: str,
                       reason: str) -> None:
    folder = copy_run(healthy, tmp_path / "run")
    (folder / name).write_text(content)
    with pytest.raises(UsageError, match=rf"artifacts folder {folder}: {reason}"):
        cli.run(parse([str(folder), "--rules", str(GATES / "default.toml")]))


def test_no_folder_and_bad_rules_come_first(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"artifacts folder .*nowhere does not exist"):
        cli.run(parse([str(tmp_path / "nowhere"), "--rules", str(GATES / "default.toml")]))
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rule]]\nmetric = "LOGIN.p99_ms"\nmax = "x"\n')
    # The rules are checked before the (also missing) folder.
    with pytest.raises(UsageError, match=rf"^{bad}:3: LOGIN.p99_ms: max = 'x'"):
        cli.run(parse([str(tmp_path / "nowhere"), "--rules", str(bad)]))


def test_truncated_last_line_of_a_killed_run_still_gates(healthy: Path, tmp_path: Path) -> None:
    folder = copy_run(healthy, tmp_path / "run")
    with (folder / "series.jsonl").open("a") as fh:
        fh.write('{"t": 1700000059.9, "signal": "load1", "val')  # killed mid-write
    assert cli.run(parse([str(folder), "--rules", str(GATES / "default.toml")])) == EXIT_PASS


def test_list_metrics_names_every_signal_and_event(capsys: pytest.CaptureFixture[str]) -> None:
    from loadtest.cli import main
    from loadtest.gate.metrics import EVENTS, SIGNALS, STEP_STATS, STEPS

    with pytest.raises(SystemExit) as exit_info:
        main(["gate", "--list-metrics"])  # no ARTIFACTS, no --rules: like --help
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in (*SIGNALS, *EVENTS, *STEP_STATS, *STEPS):
        assert name in out, name
