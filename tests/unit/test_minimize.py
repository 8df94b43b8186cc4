"""The 1-minimality pass: whatever it returns, removing any one thing loses the failure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fuzz.core.case import Case, GuestProgram, MachineConfig
from fuzz.triage.minimize import make_one_minimal, simplifications


def fake_guest(
    operations: Sequence[dict[str, Any]], smp: int, *, live: bool = False, machine: str = "virt"
) -> GuestProgram:
    return GuestProgram(
        image=repr((list(operations), smp, live)).encode(), operations=tuple(operations), live=live
    )


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

    calls: list[Case] = []

    def counted(c: Case) -> bool:
        calls.append(c)
        return fails(c)

    minimal, tests = make_one_minimal(case, counted, build_guest=fake_guest)
    assert tests == len(calls)
    assert fails(minimal)
    assert set(minimal.config.machine_options) == needed_m
    assert minimal.config.cpu_properties == ()
    assert minimal.config.smp == 1 and minimal.config.memory_mib == 64
    final_pass = list(simplifications(minimal, fake_guest))
    for simpler in final_pass:
        assert not fails(simpler)
    # Each accepted step removes one thing; each pass tries at most every simplification of
    # the case (never more than the first case has) and ends at its first success; the last
    # pass tries every simplification of the result and none succeeds.
    assert minimal.guest is not None
    dropped_operations = len(operations) - len(minimal.guest.operations)
    dropped_options = len(mopts) - len(minimal.config.machine_options)
    accepted = dropped_operations + dropped_options + len(cprops) + (smp != 1) + 1  # 256 -> 64
    assert accepted + len(final_pass) <= tests
    assert tests <= (accepted + 1) * len(list(simplifications(case, fake_guest)))
    assert calls[len(calls) - len(final_pass) :] == final_pass


def test_counts_every_test_of_a_known_case() -> None:
    """The greedy passes on a known case, test by test (a bug needs operation r1 and option b).

    1: drop r0, kept. 2: drop r1, lost; 3: drop r2, kept. 4: drop r1, lost; 5: drop a, kept.
    6-7: r1, b lost; 8: drop c, kept. 9-10 lost; 11: smp 1, kept. 12-13 lost; 14: 64 MiB,
    kept. 15-16: the last pass, r1 and b, both lost: 16 tests.
    """
    operations = [{"op": "gpr", "register": r} for r in (0, 1, 2)]
    case = Case(
        MachineConfig("virt-7.2", "max", (("a", "on"), ("b", "on")), (("c", "on"),), 2, 256),
        guest=fake_guest(operations, 2),
    )

    def fails(c: Case) -> bool:
        assert c.guest is not None
        have = {o["register"] for o in c.guest.operations}
        return 1 in have and ("b", "on") in c.config.machine_options

    minimal, tests = make_one_minimal(case, fails, build_guest=fake_guest)
    assert minimal.config == MachineConfig("virt-7.2", "max", (("b", "on"),), (), 1, 64)
    assert minimal.guest == fake_guest([{"op": "gpr", "register": 1}], 1)
    assert tests == 16


def test_a_spent_budget_stops_at_the_simplest_case_so_far() -> None:
    case = Case(MachineConfig("virt-7.2", "max", (("a", "on"), ("b", "on")), (), 1, 256))
    minimal, tests = make_one_minimal(case, lambda c: True, max_tests=2)
    assert tests == 2
    assert minimal.config.machine_options == () and minimal.config.memory_mib == 256


def test_devices_go_one_at_a_time_and_a_boards_cpus_and_ram_stay() -> None:
    from fuzz.core.devices import Device

    rng, dog = Device("virtio-rng-pci", (("addr", "0x2"),)), Device("i6300esb", (("addr", "0x3"),))
    virt = Case(MachineConfig("virt-10.0", "cortex-a57", smp=2, memory_mib=128, devices=(rng, dog)))
    configs = [c.config for c in simplifications(virt, fake_guest)]
    assert [c.devices for c in configs if len(c.devices) == 1] == [(dog,), (rng,)]
    board = Case(MachineConfig("raspi4b", "cortex-a72", smp=4, memory_mib=2048))
    assert list(simplifications(board, fake_guest)) == []
