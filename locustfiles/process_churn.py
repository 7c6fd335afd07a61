"""Process churn soak (UC Davis 2007): against a deployment with imapd_reuse=1 (one imapd per
connection), held sessions fill up to the machine's process budget (each is a live imapd),
connect/LOGIN/LIST/logout churn joins, then a quarter of the budget logs out and in again all
together in waves: processes coming and going in bulk among thousands sharing one executable.

    cyrus-loadtest deploy up --imapd-reuse 1 --maxchild 12100
    locust -f locustfiles/process_churn.py --headless --gate fixtures/gates/process_churn.toml
    cyrus-loadtest scenario process-churn                          # own deployment, gate, report

docs/scenarios.md.
"""

from loadtest.scenarios import BulkWaveUser, ProcessChurnShape  # noqa: F401 - Locust picks them up
from loadtest.users import ChurnUser, HeldSessionUser  # noqa: F401
