"""Process churn soak (UC Davis 2007): against a deployment with imapd_reuse=1 (one imapd per
connection), held sessions fill up to the machine's process budget (each is a live imapd),
then connect/LOGIN/LIST/logout churn forks and exits processes for the rest of the run.

    cyrus-loadtest deploy up --imapd-reuse 1 --maxchild 600
    locust -f locustfiles/process_churn.py --headless --gate fixtures/gates/process_churn.toml
    cyrus-loadtest scenario process-churn                          # own deployment, gate, report

docs/scenarios.md.
"""

from loadtest.scenarios import ProcessChurnShape  # noqa: F401 - Locust picks it up
from loadtest.users import ChurnUser, HeldSessionUser  # noqa: F401
