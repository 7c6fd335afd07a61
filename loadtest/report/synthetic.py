"""A synthetic but realistic run (the acceptance scenario's shape) for tests and demos of the gate
and the report: held sessions throughout, a churn ramp, a reconnect flood with a 2.5 s master
stall, collector series at 1 Hz under the signal names of docs/internals.md.

Pure apart from `write_synthetic_run`, which writes an artifacts folder. Not used by real runs.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

from loadtest.core.runfolder import RUN_FILE, run_header
from loadtest.core.series import SeriesStore
from loadtest.core.steps import REQUEST_TYPE, StepRecorder
from loadtest.imap.steptable import CONNECT, LIST, LOGIN, LOGOUT, NOOP

T0 = 1_700_000_000.0
PHASES = (("warmup", 0.0, 10.0), ("churn-ramp", 10.0, 40.0), ("reconnect-flood", 40.0, 55.0),
          ("cooldown", 55.0, 60.0))
STALL = (45.0, 47.5)  # seconds after T0: master SIGSTOPped
HEARTBEAT_GAP = (45.0, 48.5)


@dataclass
class SyntheticRun:
    recorder: StepRecorder
    store: SeriesStore
    start: float
    end: float


def phase_at(offset: float) -> str | None:
    for name, start, end in PHASES:
        if start <= offset < end:
            return name
    return None


def synthetic_run(seed: int = 7, instances: tuple[str, ...] = ("slot1",),
                  scale: float = 1.0, stall: bool = True) -> SyntheticRun:
    """Build the run in memory. `scale` multiplies the request rates; `stall=False` gives a
    healthy run (no master stall, no listen overflows) that the default gate passes."""
    rng = random.Random(seed)
    recorder = StepRecorder()
    store = SeriesStore()
    start, end = T0, T0 + PHASES[-1][2]
    recorder.start, recorder.end = start, end
    for name, p_start, p_end in PHASES:
        store.event("phase", t=T0 + p_start, end=T0 + p_end, name=name)
    for instance in instances if stall else ():
        store.event("fault", t=T0 + STALL[0], end=T0 + STALL[1], instance=instance,
                    fault="stall-master",
                    spec=f"stall-master:at={STALL[0]:g},duration={STALL[1] - STALL[0]:g}",
                    name="stop_master")
        store.event("stall", t=T0 + STALL[0] + 0.2, end=T0 + STALL[1], instance=instance,
                    signal="greeting_latency_ms")
        store.event("heartbeat_gap", t=T0 + HEARTBEAT_GAP[0], end=T0 + HEARTBEAT_GAP[1],
                    instance=instance)

    def stalled(offset: float) -> bool:
        return stall and STALL[0] <= offset < STALL[1]

    # Requests: held sessions NOOP every second; churn sessions CONNECT/LOGIN/LIST/LOGOUT.
    for second in range(int(PHASES[-1][2])):
        phase = phase_at(second)
        for instance in instances:
            for _held in range(20):
                t = T0 + second + rng.random()
                recorder.on_request(REQUEST_TYPE, NOOP, rng.lognormvariate(math.log(0.6), 0.3),
                                    False, phase, instance, t=t)
            if phase == "churn-ramp":
                sessions = int(scale * (20 + 8 * (second - 10)))
            elif phase == "reconnect-flood":
                sessions = int(scale * 150)
            else:
                sessions = int(scale * 10)
            for _session in range(sessions):
                t = T0 + second + rng.random()
                offset = t - T0
                greeting = rng.lognormvariate(math.log(2.0 + sessions / 40), 0.4)
                if stalled(offset):
                    greeting += (STALL[1] - offset) * 1000.0
                lost = phase == "reconnect-flood" and rng.random() < 0.01
                recorder.on_request(REQUEST_TYPE, CONNECT, 0.3 if lost else greeting, lost, phase,
                                    instance, t=t)
                if lost:
                    continue
                for step, median in ((LOGIN, 3.0), (LIST, 1.5), (LOGOUT, 0.8)):
                    recorder.on_request(REQUEST_TYPE, step, rng.lognormvariate(math.log(median), 0.5),
                                        False, phase, instance, t=t)
    recorder.emit_per_second(store)

    # Collector series at 1 Hz.
    overflows = {i: 1200.0 for i in instances}
    for second in range(int(PHASES[-1][2])):
        t = T0 + second + 0.25
        phase = phase_at(second)
        flood = phase == "reconnect-flood"
        for instance in instances:
            if stalled(second):
                store.add("greeting_latency_ms", None, t=t, instance=instance, why="timeout")
            else:
                store.add("greeting_latency_ms", rng.lognormvariate(math.log(2.5), 0.3) *
                          (6 if flood else 1), t=t, instance=instance)
            store.add("connect_latency_ms", rng.lognormvariate(math.log(0.2), 0.3), t=t,
                      instance=instance)
            store.add("login_latency_ms", rng.lognormvariate(math.log(3.0), 0.3), t=t,
                      instance=instance)
            store.add("held_noop_latency_ms", rng.lognormvariate(math.log(0.5), 0.2), t=t,
                      instance=instance)
            in_gap = stall and HEARTBEAT_GAP[0] <= second < HEARTBEAT_GAP[1]
            store.add("heartbeat_age_s", (second - HEARTBEAT_GAP[0] + 0.25) if in_gap
                      else rng.uniform(0.05, 1.0), t=t, instance=instance)
            spawns = 0.0 if stalled(second) else rng.uniform(2, 8) * (5 if flood else 1)
            store.add("spawns_per_s", spawns, t=t, instance=instance)
            store.add("ready_workers", max(0, round(rng.gauss(2 if flood else 5, 1))), t=t,
                      instance=instance, service="imap", family="ipv4")
            store.add("active_children", 20 + (40 if flood else 10), t=t, instance=instance,
                      service="imap", family="ipv4")
            store.add("imapd_processes", 30 + second // 2, t=t, instance=instance)
            store.add("listen_queue", rng.randint(5, 40) if flood else 0, t=t,
                      instance=instance)
            overflows[instance] += rng.randint(0, 3) if flood and stall else 0
            store.add("listen_overflows", overflows[instance], t=t, instance=instance)
            store.add("cyrus_errors", 0.0, t=t, instance=instance)  # a healthy Cyrus logs none
            store.add("canary_data_ms", rng.lognormvariate(math.log(0.08), 0.3), t=t,
                      instance=instance)
            store.add("canary_proc_ms", rng.lognormvariate(math.log(0.05), 0.3), t=t,
                      instance=instance)
        store.add("load1", 0.5 + second / 30, t=t)
        store.add("procs_running", rng.randint(1, 4), t=t)
    return SyntheticRun(recorder, store, start, end)


# A build directory holding master only (as `cyrus-loadtest cyrus build` makes).
SYNTHETIC_CYRUS = {
    "programs": {"master": "/var/cache/cyrus-loadtest/builds/3.6.1-4+deb12u5-konstanz-2016-0a1b2c3d/master",
                 "imapd": "/usr/lib/cyrus/bin/imapd", "ctl_cyrusdb": "/usr/lib/cyrus/bin/ctl_cyrusdb",
                 "idled": "/usr/lib/cyrus/bin/idled"},
    "bin_dir": "/var/cache/cyrus-loadtest/builds/3.6.1-4+deb12u5-konstanz-2016-0a1b2c3d",
    "source": "flag --cyrus-bin-dir", "version": "3.6.1",
    "build": {"variant": "konstanz-2016"},
}


def write_synthetic_run(folder: str | Path, run: SyntheticRun | None = None) -> Path:
    """Write run.json, steps.json, series.jsonl and events.jsonl like a finished run."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    run = run or synthetic_run()
    header = {**run_header(), "start": run.start, "end": run.end,
              "locustfile": "locustfiles/acceptance.py", "synthetic": True,
              "cyrus": SYNTHETIC_CYRUS, "options": {"users": 40, "run_time": "60s", "password": "***"}}
    (folder / RUN_FILE).write_text(json.dumps(header, indent=2) + "\n")
    run.recorder.save(folder)
    run.store.flush(folder)
    return folder
