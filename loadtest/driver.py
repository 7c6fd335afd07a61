"""One :class:`loadtest.imap.multiplex.Multiplexer` per Locust environment, run by one greenlet
on the gevent hub (``--imap-multiplex``).

Each multiplexed Locust user adds its connection when it starts and removes it when it stops;
its own greenlet then only sleeps. The driver greenlet blocks in the real epoll (gevent's monkey
patching hides ``select.epoll``; ``gevent.monkey.get_original`` has it) for at most
:data:`YIELD_EVERY` seconds, handles every ready connection, and passes through the hub
(``gevent.sleep(0)``) every :data:`YIELD_EVERY` seconds, or at once when the hub's own epoll
descriptor (registered in ours) shows I/O ready for other greenlets. So other greenlets' I/O is
served at once, but their timers (sleeps, think times) may fire up to :data:`YIELD_EVERY` late
while the loop has connections: better not mix multiplexed and greenlet users that pace
themselves in one process.

Successes go to the environment's :class:`loadtest.batch.StepBatcher`; failures fire Locust's
request event at once, each with its failure class (as the greenlet-per-user path does).
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

import gevent
from gevent.hub import get_hub
from gevent.monkey import get_original

from loadtest.batch import batcher_of
from loadtest.core.steps import REQUEST_TYPE
from loadtest.imap.multiplex import Connection, Multiplexer

YIELD_EVERY = 0.005  # seconds of work between two passes through the hub when busy


class HubDriver:
    """The environment's multiplexer and the greenlet that runs it while it has connections."""

    def __init__(self, environment: Any, connect_timeout: float, timeout: float,
                 pacing: tuple[str, str]) -> None:
        self.epoll = get_original("select", "epoll")()
        self.hub = get_hub()
        self._last_yield = perf_counter()
        fire = environment.events.request.fire

        def report_failure(step: str, response_time_ms: float, failure: Any, instance: str | None) -> None:
            fire(request_type=REQUEST_TYPE, name=step, response_time=response_time_ms,
                 response_length=0, exception=failure,
                 context={"instance": instance, "failure_class": failure.failure_class})

        # The hub's own epoll descriptor in ours: ready I/O of other greenlets wakes the loop.
        self.mux = Multiplexer(self.epoll, self._pause, batcher_of(environment).success,
                               report_failure, connect_timeout, timeout, *pacing,
                               max_block=YIELD_EVERY, wake_fd=self.hub.loop.fileno())
        self.greenlet: gevent.Greenlet | None = None

    def join(self, conn: Connection) -> None:
        self.mux.add(conn)
        if self.greenlet is None or self.greenlet.dead:
            self.greenlet = gevent.spawn(self.mux.run)

    def leave(self, conn: Connection) -> None:
        self.mux.remove(conn)

    def _pause(self, woken: bool) -> None:
        """Through the hub when it has I/O ready for other greenlets, else every YIELD_EVERY."""
        now = perf_counter()
        if woken or now - self._last_yield >= YIELD_EVERY:
            gevent.sleep(0)
            self._last_yield = perf_counter()


def driver_of(environment: Any, connect_timeout: float, timeout: float,
              pacing: tuple[str, str]) -> HubDriver:
    driver = getattr(environment, "_cyrus_loadtest_driver", None)
    if driver is None:
        driver = HubDriver(environment, connect_timeout, timeout, pacing)
        environment._cyrus_loadtest_driver = driver
    return driver
