"""The 1-minimality pass: whatever it returns, removing any one thing loses the failure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fuzz.case import Case, GuestProgram, MachineConfig
from fuzz.minimize import make_one_minimal, simplifications


def fake_guest(operations: Sequence[dict[str, Any]], smp: int) -> GuestProgram:
    return GuestProgram(image=repr((list(operations), smp)).encode(), operations=tuple(operations))


names = st.sampled_from(["a", "b", "c", "d", "e"])
options = st.lists(st.tuples(names, st.just("on")), unique_by=lambda p: p[0], max_size=5)
ops = st.lists(st.integers(0, 9).map(lambda i: {"op": "gpr", "register": i}), max_size=6)


@given(options, options, ops, st.integers(1, 4), st.data())
def test_result_fails_and_every_single_removal_does_not(
    mopts, cprops, operations, smp, data
) -> None:
    case = Case(
        MachineConfig("virt-7.2", "max", tuple(mopts), tuple(cprops), smp, 256),
        guest=fake_guest(operations, smp),
    )
    # The "bug" needs a random subset of what the case has.
    needed_m = set(data.draw(st.sets(st.sampled_from(mopts)))) if mopts else set()
    chosen = data.draw(st.lists(st.sampled_from(operations))) if operations else []
    needed_o = {o["register"] for o in chosen}

    def fails(c: Case) -> bool:
        assert c.guest is not None
        have = {o["register"] for o in c.guest.operations}
        return needed_m <= set(c.config.machine_options) and needed_o <= have

    minimal, tests = make_one_minimal(case, fails, build_guest=fake_guest)
    assert fails(minimal)
    assert set(minimal.config.machine_options) == needed_m
    assert minimal.config.cpu_properties == ()
    assert minimal.config.smp == 1 and minimal.config.memory_mib == 64
    for simpler in simplifications(minimal, fake_guest):
        assert not fails(simpler)
    assert tests <= 200
