"""Credential slots across workers (loadtest.users.worker_slot): the master's assignment, then
--processes and Locust's worker index, then a local run."""

from __future__ import annotations

from types import SimpleNamespace

from loadtest.users import WORKER_SLOTS_OPTION, slot_assignment, worker_slot


def env(options: dict | None, **runner) -> SimpleNamespace:
    return SimpleNamespace(runner=SimpleNamespace(**runner) if runner else None,
                           parsed_options=None if options is None else SimpleNamespace(**options))


def test_assignment_is_dense_in_the_given_order() -> None:
    assert slot_assignment(["b", "a", "c"]) == {"count": 3, "slots": {"b": 0, "a": 1, "c": 2}}


def test_master_assignment_wins() -> None:
    assigned = {WORKER_SLOTS_OPTION: slot_assignment(["w-a", "w-b"]), "processes": None}
    assert worker_slot(env(assigned, client_id="w-b", worker_index=7)) == (1, 2)
    assert worker_slot(env(assigned, client_id="w-a", worker_index=3)) == (0, 2)


def test_a_worker_that_joined_later_falls_back() -> None:
    assigned = {WORKER_SLOTS_OPTION: slot_assignment(["w-a"]), "processes": 2}
    assert worker_slot(env(assigned, client_id="w-new", worker_index=1)) == (1, 2)
    assert worker_slot(env({"processes": None}, client_id="w-new", worker_index=4)) == (0, 1)


def test_processes_without_assignment_use_the_worker_index() -> None:
    assert worker_slot(env({"processes": 3}, client_id="x", worker_index=2)) == (2, 3)
    assert worker_slot(env({"processes": 3}, client_id="x", worker_index=-1)) == (0, 1)


def test_local_and_library_mode() -> None:
    assert worker_slot(env(None)) == (0, 1)
    assert worker_slot(env({"processes": None}, client_id="local")) == (0, 1)
