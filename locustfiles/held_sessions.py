"""Held, logged-in sessions running NOOP/STATUS/IDLE on an interval: what existing users feel.

    locust -f locustfiles/held_sessions.py --headless -u 20 -r 20 -t 60s --imap-held-interval 1
"""

from loadtest.users import HeldSessionUser  # noqa: F401 - Locust runs the User classes it finds here
