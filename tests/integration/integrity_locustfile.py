"""Locustfile for the integrity tests: integrity users only (locustfiles/integrity.py adds the
acceptance phases around them)."""

from loadtest.integrity_user import IntegrityUser  # noqa: F401 - the users Locust runs
