"""Morning login rush (Konstanz 2016): held sessions of the users already at work, then logins
ramping to a peak rate, paced open loop so the offered load does not bend to a slow server.

    locust -f locustfiles/morning_rush.py                          # web UI (start with any user count)
    locust -f locustfiles/morning_rush.py --headless --gate fixtures/gates/morning_rush.toml
    cyrus-loadtest scenario morning-rush                           # own deployment, gate, report

Peak offered logins/s = --scenario-users x --imap-rate (default 2 per user). docs/scenarios.md.
"""

from loadtest.scenarios import MorningRushShape, RushLoginUser  # noqa: F401 - Locust picks them up
from loadtest.users import HeldSessionUser  # noqa: F401
