"""Abrupt disconnect-reconnect flood (connect, greeting, optional LOGIN, RST or FIN, again).

    locust -f locustfiles/reconnect_flood.py --headless -u 50 -r 50 -t 20s --imap-disconnect reset
"""

from loadtest.users import ReconnectFloodUser  # noqa: F401 - Locust runs the User classes it finds here
