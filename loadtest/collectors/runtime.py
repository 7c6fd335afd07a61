"""How collectors run concurrently, with or without gevent, on a fixed clock.

Under Locust the process is gevent-monkey-patched: tasks are greenlets, sockets cooperate, and
blocking file calls (fsync on a choking filesystem, /proc of a process stuck in the kernel) go to
gevent's OS thread pool so they cannot freeze the hub. Without gevent (`cyrus-loadtest watch`)
tasks are daemon threads and blocking calls go to a thread pool. Either way a call that hangs
is abandoned at its deadline and the clock goes on.
"""

from __future__ import annotations

import concurrent.futures
import math
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
BLOCKING_POOL_SIZE = 8


def gevent_patched() -> bool:
    """True when gevent has monkey-patched sockets (as Locust does on import)."""
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey and monkey.is_module_patched("socket"))


def native_lock() -> Any:
    """A lock between OS threads, also under gevent's patching (a patched Lock serialises
    greenlets of one thread, not a thread-pool thread and the hub)."""
    if "gevent.monkey" in sys.modules:
        from gevent.monkey import get_original

        return get_original("_thread", "allocate_lock")()
    return threading.Lock()


class Stopped(Exception):
    """The collectors were stopped: work still in flight is dropped quietly."""


class Runtime:
    """spawn / sleep / run_blocking, picked once for the process's concurrency model."""

    def __init__(self) -> None:
        self.gevent = gevent_patched()
        self._pool: Any = None
        self._lock = threading.Lock()
        self.closed = False

    def spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        if self.gevent:
            import gevent

            gevent.spawn(fn, *args)
        else:
            threading.Thread(target=fn, args=args, daemon=True,
                             name=f"collector-{getattr(fn, '__name__', 'task')}").start()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)  # gevent.sleep when patched

    def run_blocking(self, fn: Callable[[], T], timeout: float) -> T:
        """Run ``fn`` in an OS thread, wait at most ``timeout``; TimeoutError if it hangs
        (the thread is left to finish on its own; callers keep at most one per target)."""
        with self._lock:
            if self.closed:
                raise Stopped
            if self._pool is None:
                if self.gevent:
                    from gevent.threadpool import ThreadPool

                    self._pool = ThreadPool(BLOCKING_POOL_SIZE)
                else:
                    self._pool = concurrent.futures.ThreadPoolExecutor(
                        BLOCKING_POOL_SIZE, thread_name_prefix="collector-io")
        if self.gevent:
            import gevent

            # gevent's pool prints every exception raised in its threads, even ones the caller
            # receives; a collector fault is a result, so carry it back as a value.
            result = self._pool.spawn(_outcome, fn)
            try:
                ok, value = result.get(timeout=timeout)
            except gevent.Timeout:
                raise TimeoutError(f"no answer within {timeout:g} s") from None
            if not ok:
                raise value
            return value
        future = self._pool.submit(fn)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"no answer within {timeout:g} s") from None

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            self.closed = True
        # Reads still running finish on their own (their results are dropped): cancelling them
        # would only turn a clean stop into errors.
        if pool is not None and not self.gevent:
            pool.shutdown(wait=False)


def _outcome(fn: Callable[[], T]) -> tuple[bool, Any]:
    try:
        return True, fn()
    except Exception as exc:
        return False, exc


class Clock:
    """Wall-clock times of a fixed grid of deadlines: t0 + k * interval, measured on the
    monotonic clock so that a wall-clock step cannot bunch or skip samples."""

    def __init__(self) -> None:
        self.mono0 = time.monotonic()
        self.wall0 = time.time()

    def wall(self, mono: float) -> float:
        return self.wall0 + (mono - self.mono0)

    def now(self) -> float:
        return self.wall(time.monotonic())


def run_ticker(clock: Clock, interval: float, stop: threading.Event,
               tick: Callable[[float, float], None]) -> int:
    """Call ``tick(scheduled_wall_time, scheduled_mono)`` at every deadline until ``stop``.

    ``tick`` must return at once (it spawns the real work). Open loop: if the loop itself was
    late by more than one interval (a starved process), the missed deadlines are skipped, not
    bunched, and counted in the return value.
    """
    missed = 0
    k = max(0, math.ceil((time.monotonic() - clock.mono0) / interval))
    while not stop.is_set():
        deadline = clock.mono0 + k * interval
        now = time.monotonic()
        if now < deadline:
            # Asleep until the deadline; stop() wakes it at once. (It used to wake every 0.2 s
            # to look at the flag: a wake-up of an idle Python process costs 100-200 us of
            # CPU here, more than most samplers' reads; see benchmarks.md.)
            stop.wait(deadline - now)
            continue
        if now - deadline > interval:
            skip = int((now - deadline) // interval)
            missed += skip
            k += skip
            continue
        tick(clock.wall(deadline), deadline)
        k += 1
    return missed
