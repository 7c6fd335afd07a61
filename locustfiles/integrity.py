"""Nothing lost under stress: integrity users write mail (APPENDs with a unique id and a
checksum, some cut by RST right after the literal) and read it back by UID while held sessions
stay, a churn ramp and a reconnect flood run, phases as in the acceptance scenario. The ledger
is audited when the run ends (integrity.* gate metrics).

    locust -f locustfiles/integrity.py --headless -u 10 -t 30s --imap-disconnect reset \\
        --gate fixtures/gates/default.toml
    cyrus-loadtest audit artifacts/run-...     # the same audit again, later

-u is the number of integrity users and -t the whole scenario (default --acceptance-duration);
churn and flood users from --acceptance-users, held sessions from --acceptance-held. Without the
shape (IntegrityUser alone, or inside another locustfile) the integrity users behave the same.
"""

from loadtest.integrity_user import IntegrityShape, IntegrityUser  # noqa: F401 - Locust runs these
from loadtest.users import ChurnUser, HeldSessionUser, ReconnectFloodUser  # noqa: F401
