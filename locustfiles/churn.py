"""Login/LIST/logout churn against the test deployment (or --imap-host).

    locust -f locustfiles/churn.py                                  # web UI
    locust -f locustfiles/churn.py --headless -u 10 -r 10 -t 30s    # headless
"""

from loadtest.users import ChurnUser  # noqa: F401 - Locust runs the User classes it finds here
