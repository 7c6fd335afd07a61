"""Stores and slots (FastMail 2007): several independent Cyrus instances on one machine, each
store a master slot replicating to a replica slot, users spread across the masters, load on all
at once; each step carries its instance, so the gate judges every slot on its own, and the
replication collector measures each store's lag (a message appended on the master, seen on the
replica).

    cyrus-loadtest deploy up --topology fixtures/topologies/two-stores.toml
    locust -f locustfiles/stores_and_slots.py --headless --gate fixtures/gates/stores_and_slots.toml
    cyrus-loadtest scenario stores-and-slots                       # own deployment, gate, report

docs/scenarios.md.
"""

from loadtest.scenarios import StoresAndSlotsShape  # noqa: F401 - Locust picks it up
from loadtest.users import ChurnUser, HeldSessionUser  # noqa: F401
