"""Lock-file churn (a university IMAP farm, 2010): against a deployment whose proc and lock
directories are on the data filesystem (a disk, not tmpfs), sessions paced below CPU saturation
each create Cyrus's own user lock file and remove it again (LockFileSessionUser), while the
filesystem canary times create+fsync+unlink there and the inodes collector counts the files
created and removed per directory.

    cyrus-loadtest deploy up --dir /var/tmp/cyrus-lockfile
    locust -f locustfiles/lockfile_churn.py --headless --gate fixtures/gates/lockfile_churn.toml \
        --deployment /var/tmp/cyrus-lockfile \
        --collectors probe,master,processes,backlog,machine,canary,inodes
    cyrus-loadtest scenario lockfile-churn                         # own deployment, gate, report

docs/scenarios.md.
"""

import logging

from locust import events

from loadtest import plugin
from loadtest.paths import on_tmpfs
from loadtest.scenarios import LockFileChurnShape, LockFileSessionUser  # noqa: F401 - Locust picks them up
from loadtest.users import HeldSessionUser  # noqa: F401


@events.test_start.add_listener
def warn_on_tmpfs(environment, **_kwargs) -> None:
    """On tmpfs the canary cannot see disk effects: say so (the run still goes on)."""
    run = plugin.run_of(environment)
    deployment = run.deployment if run is not None else None
    for info in deployment.instances if deployment is not None else []:
        if on_tmpfs(info.root):
            logging.getLogger(__name__).warning(
                "lock-file churn: instance %s lives on tmpfs (%s); deploy it on a disk path "
                "(deploy up --dir /var/tmp/...) to reproduce filesystem effects", info.name, info.root)
