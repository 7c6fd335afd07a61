"""Konstanz 2016, the master loop that never completes: held sessions arriving at 100/s or
faster, churn, storm users dropping with RST and reconnecting at once, then every select() of
master interrupted for 10 s (the scenario's eintr-inject fault, phase "interrupted"), then the
storm users leave and the churn must be served as before. A master that restarts its loop on
EINTR never reaches its message handling and stats report (heartbeat gap) and keeps refusing
new connections after the interruptions end; Cyrus 3.6's retry completes its loop and recovers.

    cyrus-loadtest scenario konstanz-2016                          # own deployment, fault, gate
    cyrus-loadtest scenario --cyrus-bin-dir BUILD konstanz-2016    # e.g. the reverted build
    locust -f locustfiles/konstanz_2016.py --headless --gate fixtures/gates/konstanz_2016.toml \\
        --faults "eintr-inject:phase=interrupted,duration=10"

docs/scenarios.md.
"""

from loadtest.scenarios import Konstanz2016Shape, StormUser  # noqa: F401 - Locust picks them up
from loadtest.users import ChurnUser, HeldSessionUser  # noqa: F401
