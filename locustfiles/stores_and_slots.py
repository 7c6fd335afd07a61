"""Stores and slots (FastMail 2007): several independent Cyrus instances on one machine, users
spread across them, load on all at once; each step carries its instance, so the gate judges
every slot on its own.

    cyrus-loadtest deploy up --topology fixtures/topologies/four-slots.toml
    locust -f locustfiles/stores_and_slots.py --headless --gate fixtures/gates/stores_and_slots.toml
    cyrus-loadtest scenario stores-and-slots                       # own deployment, gate, report

docs/scenarios.md.
"""

from loadtest.scenarios import StoresAndSlotsShape  # noqa: F401 - Locust picks it up
from loadtest.users import ChurnUser, HeldSessionUser  # noqa: F401
