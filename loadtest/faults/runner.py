"""Run a fault schedule during a load run and always undo it.

Every occurrence is an event of kind "fault" in the SeriesStore (start, end, instance, the spec
and what the injector reports), shown by the report and the web UI. `stop()` undoes whatever is
still active, and an atexit hook and SIGTERM handling make sure a stopped master gets SIGCONT
even when the run is interrupted. A lasting fault is also armed in a guardian process
(`loadtest.faults.guardian`) that undoes it when its deadline passes or the generator dies.
even when the run is interrupted. A fault with ``phase=NAME`` waits for that phase (the run
tells the runner its phase through ``current_phase``); its ``at`` counts from the phase start.
Injectors may record series of their own (``Injector.store``), e.g. the rotation's re-points.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from loadtest.collectors.runtime import Runtime
from loadtest.core.series import Event, SeriesStore
from loadtest.deploy.deployment import Deployment
from loadtest.faults.guardian import GRACE_S, Guardian
from loadtest.faults.injectors import Injector, make_injector
from loadtest.faults.spec import FaultSpec

TICK_S = 0.01  # signal storms pace themselves on this


@dataclass
class _Occurrence:
    start: float  # offset from the run's start
    injector: Injector
    event: Event | None = None
    ends_at: float | None = None  # monotonic


class FaultRunner:
    def __init__(self, specs: Sequence[FaultSpec], deployment: Deployment, store: SeriesStore,
                 run_time: float | None = None) -> None:
        self.store = store
        self.deployment = deployment
        self.occurrences: list[_Occurrence] = []
        for spec in specs:
            info = deployment.instance(spec.instance) if spec.instance else deployment.instances[0]
            for offset in spec.times(run_time if run_time else 3600.0):
                injector = make_injector(spec, info)
                injector.check()  # refuse before any load starts
                injector.store = store
                self.occurrences.append(_Occurrence(offset, injector))
        self.occurrences.sort(key=lambda o: o.start)
        self._stop = threading.Event()
        self._runtime = Runtime()
        self._lock = threading.Lock()
        self._started = False
        self.guardian: Guardian | None = None
        self._guardian_error = ""
        # The run's phase now (set by the plugin); faults with phase=NAME wait for it.
        self.current_phase: Callable[[], str | None] | None = None
        self._phase_starts: dict[str, float] = {}  # phase -> monotonic time first seen

    def start(self) -> None:
        if not self.occurrences or self._started:
            return
        self._started = True
        atexit.register(self.stop)
        if any(o.injector.spec.lasting for o in self.occurrences):
            try:
                self.guardian = Guardian.start()
            except OSError as exc:  # then lasting faults are not applied: see _begin
                self._guardian_error = f"no fault guardian, fault not applied: {exc}"
        self._t0 = time.monotonic()
        self._runtime.spawn(self._loop)

    def _loop(self) -> None:
        pending = list(self.occurrences)
        while not self._stop.is_set():
            now = time.monotonic()
            phase = self.current_phase() if self.current_phase is not None else None
            if phase is not None:
                self._phase_starts.setdefault(phase, now)
            for occ in [o for o in pending if self._due(o, now)]:
                pending.remove(occ)
                self._begin(occ)
            with self._lock:
                active = [o for o in self.occurrences if o.event and o.event.end is None]
            for occ in active:
                if occ.ends_at is not None and now >= occ.ends_at:
                    self._end(occ)
                elif occ.injector.active:
                    occ.injector.tick(now)
            if not pending and not active:
                return
            self._runtime.sleep(TICK_S)

    def _due(self, occ: _Occurrence, now: float) -> bool:
        wanted = occ.injector.spec.phase
        origin = self._t0 if wanted is None else self._phase_starts.get(wanted)
        return origin is not None and now - origin >= occ.start

    def _begin(self, occ: _Occurrence) -> None:
        spec = occ.injector.spec
        with self._lock:
            if self._stop.is_set():
                return
            detail: dict[str, Any]
            error: str | None
            injector = occ.injector
            injector.guardian = self.guardian
            injector.guard_key = self.guardian.new_key() if self.guardian else ""
            injector.guard_in_s = spec.duration + GRACE_S if spec.duration else None
            try:
                if spec.lasting and self.guardian is None:
                    raise OSError(self._guardian_error or "no fault guardian")
                detail = injector.apply()
                error = None
            except (OSError, ProcessLookupError) as exc:  # a fault that cannot apply is a result
                detail, error = {}, str(exc)
            if error:
                detail = {**detail, "error": error}
                self._disarm(injector)
            now = time.time()
            occ.event = self.store.event("fault", t=now, instance=occ.injector.info.name,
                                         fault=spec.kind, spec=spec.text, **detail)
            if error or not spec.lasting:
                self.store.close_event(occ.event, end=now)
            elif spec.duration:
                occ.ends_at = time.monotonic() + spec.duration

    def _end(self, occ: _Occurrence) -> None:
        with self._lock:
            if occ.event is None or occ.event.end is not None:
                return
            try:
                detail = occ.injector.undo()
            except Exception as exc:  # still close the event; say why
                detail = {"undo_error": str(exc)}
            else:
                self._disarm(occ.injector)
            self.store.close_event(occ.event, **detail)

    def _disarm(self, injector: Injector) -> None:
        if self.guardian is not None and injector.guard_key:
            self.guardian.disarm(injector.guard_key)

    def stop(self) -> None:
        """End the schedule and undo every fault still active (idempotent)."""
        self._stop.set()
        for occ in self.occurrences:
            if occ.event is not None and occ.event.end is None:
                self._end(occ)
            elif occ.injector.active:  # an instant fault with lasting effects (killed master)
                try:
                    detail = occ.injector.undo()
                except Exception as exc:  # say why, go on undoing the others
                    detail = {"undo_error": str(exc)}
                self.store.event("fault", end=time.time(), instance=occ.injector.info.name,
                                 fault=f"undo {occ.injector.spec.kind}", **detail)
                if detail.get("restarted"):
                    # The restarted master has a new pid: later runs and faults must see it.
                    self.deployment.save()
        if self.guardian is not None:
            self.guardian.close()  # undoes whatever an undo above could not
        atexit.unregister(self.stop)
