"""Nothing lost under stress: APPENDs with a unique id and checksum, some cut by RST right
after the literal, read back by UID; the ledger is audited when the run ends.

    locust -f locustfiles/integrity.py --headless -u 10 -t 30s --imap-disconnect reset \
        --gate fixtures/gates/default.toml
    cyrus-loadtest audit artifacts/run-...     # the same audit again, later
"""

from loadtest.integrity_user import IntegrityUser  # noqa: F401 - Locust runs the User classes here
