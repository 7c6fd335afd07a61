"""Reconnect storm (Konstanz DDoS): held sessions throughout and login/logout churn; for the
storm phase as many storm users join, each logging in, dropping with RST and reconnecting at
once; then they leave and the churn must be served as before.

    locust -f locustfiles/reconnect_storm.py                       # web UI
    locust -f locustfiles/reconnect_storm.py --headless --gate fixtures/gates/reconnect_storm.toml
    cyrus-loadtest scenario reconnect-storm                        # own deployment, gate, report

docs/scenarios.md.
"""

from loadtest.scenarios import ReconnectStormShape, StormUser  # noqa: F401 - Locust picks them up
from loadtest.users import ChurnUser, HeldSessionUser  # noqa: F401
