"""Binary rotation under churn (the UC Davis workaround's own stress test): login/logout churn,
then, from the phase "rotation" on, the rotate-binary fault re-points the imapd symlink over 24
copies as fast as the fault runner ticks while held sessions join; every connection must
succeed and the live imapds must spread over the copies.

    cyrus-loadtest deploy up --rotating-binary --imapd-reuse 5
    locust -f locustfiles/binary_rotation.py --headless --gate fixtures/gates/binary_rotation.toml \
        --faults "rotate-binary:phase=rotation,every=0,copies=24"
    cyrus-loadtest scenario binary-rotation                        # own deployment, gate, report

docs/scenarios.md.
"""

from loadtest.scenarios import BinaryRotationShape  # noqa: F401 - Locust picks it up
from loadtest.users import ChurnUser, HeldSessionUser  # noqa: F401
