"""The fixed clock and fault handling, without Cyrus: a listener that never greets (the client
side of a hung server), a dead master pid, a missing stats file, bad settings."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from loadtest.collectors import CollectorConfig, CollectorSet, SeriesStore
from loadtest.collectors.samplers import Target
from loadtest.errors import UsageError

RATE = 4.0


def silent_listener() -> socket.socket:
    """Accepts in the kernel (connect succeeds) but never sends a greeting: a frozen server."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def target(port: int, tmp: Path, pid: int | None) -> Target:
    pid_file = tmp / "master.pid"
    if pid is not None:
        pid_file.write_text(f"{pid}\n")
    return Target(name="t1", host="127.0.0.1", port=port, pid_file=str(pid_file),
                  master_pid=pid, stats_file=str(tmp / "stats" / "master.txt"),
                  data_dir=str(tmp), proc_dir=str(tmp / "missing-proc"), listen_backlog=64)


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_hung_probes_time_out_on_schedule_and_the_clock_keeps_time(tmp_path: Path) -> None:
    listener = silent_listener()
    try:
        store = SeriesStore()
        config = CollectorConfig().updated({"probe_rate": RATE, "probe_timeout": 1.0,
                                            "collectors": "probe"}, "test")
        collectors = CollectorSet([target(listener.getsockname()[1], tmp_path, None)], store,
                                  config)
        collectors.start()
        time.sleep(3.0)
        collectors.stop()
        time.sleep(1.2)  # let the last probes reach their deadline
    finally:
        listener.close()
    greetings = store.samples("greeting_latency_ms", instance="t1")
    # Every probe hung; each was recorded as a timeout at its deadline ...
    assert greetings and all(s.labels.get("outcome") == "timeout" for s in greetings)
    assert all(s.value == 1000.0 for s in greetings)
    # ... and the probes kept starting on the 0.25 s grid while earlier ones hung.
    starts = sorted(s.t for s in greetings)
    assert len(starts) >= 10
    steps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert all(abs(step - 1 / RATE) < 1e-6 for step in steps), steps
    assert collectors.missed_ticks == 0


def test_faults_are_gaps_said_once_and_the_others_go_on(tmp_path: Path) -> None:
    listener = silent_listener()
    try:
        store = SeriesStore()
        config = CollectorConfig().updated(
            {"collectors": "master,processes,machine,canary,backlog", "interval": 0.25}, "test")
        dead = target(listener.getsockname()[1], tmp_path / "a", None)
        (tmp_path / "a").mkdir()
        Path(dead.pid_file).write_text(f"{dead_pid()}\n")
        no_stats = Target(**{**dead.__dict__, "name": "t2", "pid_file": str(tmp_path / "b.pid"),
                             "master_pid": os.getpid()})
        collectors = CollectorSet([dead, no_stats], store, config, artifacts=tmp_path / "art")
        collectors.start()
        time.sleep(1.6)
        collectors.stop()
    finally:
        listener.close()
    gaps = store.events("collector_gap")
    whys = {(e.instance, e.detail["collector"]): e.detail["why"] for e in gaps}
    assert "gone" in whys[("t1", "master")]
    assert "gone" in whys[("t1", "processes")]
    assert "no stats file" in whys[("t2", "master")]
    assert "missing-proc" in whys[("t1", "canary_proc")]
    # said once per cause, although every sample since was a gap
    assert len([e for e in gaps if e.instance == "t1" and e.detail["collector"] == "master"]) == 1
    heartbeat = store.samples("heartbeat_age_s", instance="t1")
    assert len(heartbeat) >= 4 and all(s.value is None and "gone" in s.labels["why"]
                                       for s in heartbeat)
    # the others went on: machine, backlog and the data canary have real values
    assert [s for s in store.samples("load1") if s.value is not None]
    assert [s for s in store.samples("canary_data_ms", instance="t1") if s.value is not None]
    assert store.samples("listen_queue", instance="t2")[0].value == 0
    # processes of t2 (master = this test process) are sampled
    assert store.samples("cyrus_cpu_percent", instance="t2")
    # flushed to artifacts; every event closed at stop
    assert (tmp_path / "art" / "series.jsonl").stat().st_size > 0
    assert all(e.end is not None for e in store.events())
    assert len(SeriesStore.load(tmp_path / "art").events("collector_gap")) == len(gaps)


def test_runs_under_gevent_monkey_patching(tmp_path: Path) -> None:
    """Locust's concurrency model: the same clock with greenlets and gevent's thread pool."""
    listener = silent_listener()
    code = textwrap.dedent(f"""
        from gevent import monkey; monkey.patch_all()
        import time
        from loadtest.collectors import CollectorConfig, CollectorSet, SeriesStore
        from loadtest.collectors.runtime import gevent_patched
        from loadtest.collectors.samplers import Target
        assert gevent_patched()
        t = Target(name="g", host="127.0.0.1", port={listener.getsockname()[1]},
                   pid_file="/nonexistent", master_pid=None, stats_file="/nonexistent",
                   data_dir={str(tmp_path)!r}, proc_dir={str(tmp_path)!r}, listen_backlog=64)
        store = SeriesStore()
        config = CollectorConfig().updated({{"probe_timeout": 1.0}}, "test")
        cs = CollectorSet([t], store, config)
        cs.start(); time.sleep(2.6); cs.stop(); time.sleep(1.2)
        starts = sorted(s.t for s in store.samples("greeting_latency_ms"))
        steps = {{round(b - a, 6) for a, b in zip(starts, starts[1:])}}
        print(len(starts), steps, len(store.samples("canary_data_ms")),
              len(store.samples("load1")))
    """)
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=30, check=True).stdout.split()
    finally:
        listener.close()
    probes, steps, canaries, loads = int(out[0]), out[1], int(out[-2]), int(out[-1])
    assert probes >= 9 and steps == "{0.25}"
    assert canaries >= 2 and loads >= 2


@pytest.mark.parametrize(("values", "message"), [
    ({"probe_rate": "fast"}, "probe_rate='fast' in flag --probe-rate: not a number"),
    ({"interval": 0}, "interval=0.0 in flag --probe-rate: must be > 0"),
    ({"collectors": "probe,disk"}, "unknown collector 'disk' in flag --probe-rate"),
    ({"heartbeat_threshold": 0.5}, "must exceed stats_update_interval"),
    ({"colectors": "probe"}, "unknown collector setting 'colectors'"),
    ({"metrics_url": "localhost:8080"}, "not an http(s) URL"),
])
def test_bad_settings_name_value_and_source(values: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CollectorConfig().updated(values, "flag --probe-rate")
