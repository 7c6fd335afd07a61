"""The fault schedule grammar and the kinds declared on their injectors: pure, no Cyrus needed."""

from __future__ import annotations

import pytest

from loadtest.errors import UsageError
from loadtest.faults import injectors
from loadtest.faults.spec import COMMON, FaultKind, Param, fault_kinds, parse_fault, parse_faults


def test_stall_spec() -> None:
    spec = parse_fault("stall-master@slot2:at=10,duration=3.5", "flag --fault")
    assert (spec.kind, spec.instance, spec.at, spec.duration) == ("stall-master", "slot2", 10.0, 3.5)
    assert spec.lasting and spec.times() == [10.0]


def test_repeats() -> None:
    spec = parse_fault("kill-child:at=5,every=1,count=3", "x")
    assert spec.times() == [5.0, 6.0, 7.0]
    endless = parse_fault("reload-master:at=2,every=4", "x")
    assert endless.times(run_time=11) == [2.0, 6.0, 10.0]
    with pytest.raises(ValueError):
        endless.times()


def test_rotation_repeats_by_itself() -> None:
    spec = parse_fault("rotate-binary:every=2,copies=5", "x")
    assert spec.times(run_time=60) == [0.0] and spec.params["copies"] == 5
    assert spec.phase is None


def test_a_fault_can_wait_for_a_phase() -> None:
    spec = parse_fault("rotate-binary:phase=rotation,at=1,every=0,copies=24", "x")
    assert (spec.phase, spec.at, spec.every, spec.params["copies"]) == ("rotation", 1.0, 0.0, 24)


def test_env_list_separated_by_semicolons() -> None:
    specs = parse_faults("signal-storm:rate=500,duration=2; reload-master:at=3", "env LOADTEST_FAULTS")
    assert [s.kind for s in specs] == ["signal-storm", "reload-master"]
    assert specs[0].params == {"duration": 2.0, "rate": 500.0, "signal": "CHLD"}


@pytest.mark.parametrize("text, fragment", [
    ("freeze-master:at=1", "unknown fault kind 'freeze-master'"),
    ("stall-master:at=soon", "at='soon' is not a float"),
    ("stall-master:lenght=3", "unknown setting 'lenght=3'"),
    ("stall-master:duration=0", "needs duration > 0"),
    ("signal-storm:signal=TERM", "signal 'TERM' is not harmless"),
    ("signal-storm:rate=60000", "rate=60000 must be > 0 and at most 50,000 signals/s"),
    ("signal-storm:rate=0", "rate=0 must be > 0"),
    ("signal-storm:duration=0", "signal-storm needs duration > 0"),
    ("eintr-inject:duration=0", "eintr-inject needs duration > 0"),
    ("eintr-inject:rate=5", "unknown setting 'rate=5'"),
    ("rotate-binary:copies=1,every=1", "copies >= 2"),
    ("kill-child:at=-1", "at=-1 must be >= 0"),
    ("kill-master:at=nan", "at=nan is not a finite number"),
    ("stall-master:at=inf", "at=inf is not a finite number"),
    ("stall-master:duration=-inf", "duration=-inf is not a finite number"),
    ("stall-master:at=1,duration=2,at=5", "at= given twice"),
    ("signal-storm:duration=10,rate=1e9", "rate=1e+09 must be > 0 and at most 50,000"),
    ("signal-storm:rate=0", "must be > 0"),
])
def test_bad_specs_name_value_and_source(text: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_fault(text, "flag --fault")
    assert fragment in str(info.value) and "flag --fault" in str(info.value)


# -- each kind declared once, on its injector: the grammar and make_injector read it --------


def test_the_kinds_in_declaration_order() -> None:
    # The order users see in "unknown fault kind ... known: ..." (test_bad_input.py).
    assert list(fault_kinds()) == ["stall-master", "signal-storm", "eintr-inject", "reload-master",
                                   "rotate-binary", "kill-child", "kill-master"]


@pytest.mark.parametrize("name", list(fault_kinds()))
def test_every_kind_has_its_injector_and_parses_with_its_defaults(name: str) -> None:
    cls = injectors.INJECTORS[name]
    assert cls.KIND is fault_kinds()[name] and cls.KIND.name == name
    spec = parse_fault(name, "test")  # the declared defaults keep the declared bounds
    assert spec.kind == name and spec.lasting == cls.KIND.lasting
    assert set(spec.params) == set(cls.KIND.params)
    assert not set(cls.KIND.params) & set(COMMON), "a kind's setting hides a common one"


def test_a_base_without_a_kind_is_no_kind() -> None:
    assert injectors._BoundedProcess.KIND is None
    assert injectors._BoundedProcess not in injectors.INJECTORS.values()


def test_a_kind_declared_twice_is_refused() -> None:
    with pytest.raises(TypeError, match="fault kind 'kill-master' declared twice"):
        class Again(injectors.Injector):
            KIND = FaultKind("kill-master", lasting=False)
    assert injectors.INJECTORS["kill-master"] is injectors.KillMaster


def test_bounds_are_said_as_the_kind_needing_them() -> None:
    assert Param(float, 1.0, above=0.0).complaint("k", "duration", 0.0) == "k needs duration > 0"
    assert Param(int, 5, at_least=2).complaint("k", "copies", 1) == "k needs copies >= 2"
    assert Param(int, 5, at_least=2).complaint("k", "copies", 2) is None
    assert Param(str, "x").complaint("k", "service", "") is None


def test_rotation_repeats_by_itself_and_no_other_kind_does() -> None:
    assert [k.name for k in fault_kinds().values() if k.repeats_itself] == ["rotate-binary"]


STRACE_SUMMARY = """% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
100.00    0.130706           3     37345     37345 pselect6
  0.00    0.000010           1        10           read
------ ----------- ----------- --------- --------- ----------------
100.00    0.130716           3     37355     37345 total
"""


def test_strace_summary_counts_calls_and_injected_errors() -> None:
    from loadtest.faults.eintr import parse_strace_summary

    assert parse_strace_summary(STRACE_SUMMARY) == {"pselect6": (37345, 37345), "read": (10, 0)}
    assert parse_strace_summary("") == {}


# /proc/PID/status of a master under strace: running, then with SIGSTOP pending, then parked.
STATUS_RUNNING = "Name:\tmaster\nState:\tS (sleeping)\nTracerPid:\t4242\nShdPnd:\t0000000000000000\nSigPnd:\t0000000000000000\n"
STATUS_PENDING = STATUS_RUNNING.replace("ShdPnd:\t0000000000000000", "ShdPnd:\t0000000000040000")
STATUS_PARKED = STATUS_RUNNING.replace("S (sleeping)", "t (tracing stop)")


def test_master_counts_as_parked_only_when_stopped_with_no_sigstop_pending() -> None:
    from loadtest.faults.eintr import parked, parse_status

    assert parse_status(STATUS_RUNNING)["TracerPid"] == "4242"
    assert not parked(parse_status(STATUS_RUNNING))
    assert not parked(parse_status(STATUS_PENDING.replace("S (sleeping)", "t (tracing stop)")))
    assert parked(parse_status(STATUS_PARKED))
    assert parked(parse_status(STATUS_PARKED.replace("t (tracing stop)", "T (stopped)")))
    assert not parked({})


def test_storm_paces_evenly_and_stops_at_its_deadline() -> None:
    """The storm process's loop against a process of our own that ignores the signal."""
    import signal
    import subprocess
    import sys

    from loadtest.faults.storm import storm

    target = subprocess.Popen([sys.executable, "-c", "import signal, time; "
                               "signal.signal(signal.SIGURG, signal.SIG_IGN); time.sleep(30)"])
    try:
        import os

        result = storm(target.pid, signal.SIGURG, 1000.0, 0.5, os.getppid())
    finally:
        target.kill()
        target.wait()
    assert result["ended"] == "deadline"
    assert 400 <= result["signals_delivered"] <= 510, result
    assert result["signals_delivered"] + result["signals_missed"] <= 502
