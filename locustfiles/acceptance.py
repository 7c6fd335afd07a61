"""The acceptance scenario: held sessions throughout, a login/logout churn ramp, then a
reconnect flood, each a phase the gate can address.

    locust -f locustfiles/acceptance.py --headless --gate fixtures/gates/default.toml
    cyrus-loadtest acceptance          # the same, with its own deployment, report and verdict

Durations and sizes come from --acceptance-duration (total seconds), --acceptance-users (peak
churn users; flood users as many), --acceptance-held (held sessions).
"""

from loadtest.shapes import AcceptanceShape  # noqa: F401 - Locust picks up the shape
from loadtest.users import ChurnUser, HeldSessionUser, ReconnectFloodUser  # noqa: F401
