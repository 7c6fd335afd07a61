"""Each fault kind is declared once, on its injector: the grammar and make_injector read it."""

from __future__ import annotations

import pytest

from loadtest.faults import injectors
from loadtest.faults.spec import COMMON, FaultKind, Param, fault_kinds, parse_fault


def test_the_kinds_in_declaration_order() -> None:
    # The order users see in "unknown fault kind ... known: ..." (tests/integration/test_bad_input.py).
    assert list(fault_kinds()) == ["stall-master", "signal-storm", "eintr-inject", "reload-master",
                                   "rotate-binary", "kill-child", "kill-master"]


@pytest.mark.parametrize("name", list(fault_kinds()))
def test_every_kind_has_its_injector_and_parses_with_its_defaults(name: str) -> None:
    cls = injectors.INJECTORS[name]
    assert cls.KIND is fault_kinds()[name] and cls.KIND.name == name
    spec = parse_fault(name, "test")  # the declared defaults keep the declared bounds
    assert spec.kind == name and spec.lasting == cls.KIND.lasting
    assert set(spec.params) == set(cls.KIND.params)
    assert not set(cls.KIND.params) & set(COMMON), "a kind's setting hides a common one"


def test_a_base_without_a_kind_is_no_kind() -> None:
    assert injectors._BoundedProcess.KIND is None
    assert injectors._BoundedProcess not in injectors.INJECTORS.values()


def test_a_kind_declared_twice_is_refused() -> None:
    with pytest.raises(TypeError, match="fault kind 'kill-master' declared twice"):
        class Again(injectors.Injector):
            KIND = FaultKind("kill-master", lasting=False)
    assert injectors.INJECTORS["kill-master"] is injectors.KillMaster


def test_bounds_are_said_as_the_kind_needing_them() -> None:
    assert Param(float, 1.0, above=0.0).complaint("k", "duration", 0.0) == "k needs duration > 0"
    assert Param(int, 5, at_least=2).complaint("k", "copies", 1) == "k needs copies >= 2"
    assert Param(int, 5, at_least=2).complaint("k", "copies", 2) is None
    assert Param(str, "x").complaint("k", "service", "") is None


def test_rotation_repeats_by_itself_and_no_other_kind_does() -> None:
    assert [k.name for k in fault_kinds().values() if k.repeats_itself] == ["rotate-binary"]
