"""Binary rotation under churn (the UC Davis workaround's own stress test): login/logout churn
while the rotate-binary fault re-points the imapd symlink every few seconds; every connection
must succeed.

    cyrus-loadtest deploy up --rotating-binary --imapd-reuse 5
    locust -f locustfiles/binary_rotation.py --headless --gate fixtures/gates/binary_rotation.toml \
        --faults "rotate-binary:every=3,copies=5"
    cyrus-loadtest scenario binary-rotation                        # own deployment, gate, report

docs/scenarios.md.
"""

from loadtest.scenarios import BinaryRotationShape  # noqa: F401 - Locust picks it up
from loadtest.users import ChurnUser, HeldSessionUser  # noqa: F401
