"""Locustfile for the web UI browser test: churn and held-session users. The plugin runs the
collectors, records the steps and installs the Cyrus server tab, as for any locustfile.

    locust -f tests/e2e/webui_locustfile.py --deployment DIR --gate fixtures/gates/default.toml
"""

from loadtest.users import ChurnUser, HeldSessionUser  # noqa: F401 - the users Locust runs
