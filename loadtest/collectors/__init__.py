"""Collectors: probes and server-side signals on a fixed clock, into a SeriesStore.

API for the Locust plugin (call on the master or local runner only, never in workers)::

    from loadtest.collectors import CollectorConfig, CollectorSet, SeriesStore

    store = SeriesStore()
    config = CollectorConfig().updated({"probe_rate": 4, "collectors": "probe,master"},
                                       source="flag --collectors")
    collectors = CollectorSet.from_deployment(deployment, store, config,
                                              artifacts="artifacts/run-1")
    collectors.start()   # in test_start: returns at once; loops run as greenlets (or threads)
    ...
    collectors.stop()    # in test_stop: closes open stalls/gaps, flushes a last time

With ``artifacts`` the set flushes ``series.jsonl`` / ``events.jsonl`` there every second, so a
killed run loses at most a second. Without a deployment, build ``Target``s yourself
(``samplers.make_target``) and pass them to ``CollectorSet(targets, store, config)``.

``cyrus-loadtest watch`` is ``loadtest.collectors.watch.run(args)``, with its options
added by ``add_arguments(parser)``.

Modules: ``parsers`` and ``stall`` are pure (tested on literal data); ``probe`` (sockets),
``samplers`` (/proc, files), ``runtime`` (gevent or threads, the fixed clock) do the I/O;
``series`` is the shared store. Each collector and the signals it records are declared in
``loadtest.core.signals``; ``collectorset`` registers the samplers of each with ``@collector``.
"""

from loadtest.collectors.collectorset import CollectorSet
from loadtest.collectors.config import ALL_COLLECTORS, CollectorConfig
from loadtest.core.series import Event, Sample, SeriesStore

__all__ = ["ALL_COLLECTORS", "CollectorConfig", "CollectorSet", "Event", "Sample", "SeriesStore"]
