"""Boards besides virt: their facts, when a pair draws one, what its configuration and guest
are (pure logic; on real QEMU: tests/qemu/test_boards.py)."""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, find, given, settings

from fuzz.core.boards import BOARDS, board_of
from fuzz.core.case import MachineConfig
from strategies.cases import case_strategy, rebuild_guest
from strategies.configs import accepted_by, configurations
from strategies.guests import ConfigureGic, EnableMmu, SetGpr, operations_to_json
from strategies.image import UART_BASE
from tests.unit.test_configs import NEW, OLD

QUIET = settings(database=None, suppress_health_check=list(HealthCheck), max_examples=80)
VERSAL = board_of("xlnx-versal-virt")
RASPI = board_of("raspi4b")


def _with_boards(caps: object, version: str) -> object:
    machines = (*caps.machine_types, *(b.machine for b in BOARDS))  # type: ignore[attr-defined]
    models = (*caps.aarch64_cpu_models, "cortex-a72")  # type: ignore[attr-defined]
    return dataclasses.replace(
        caps,
        version=version,
        machine_types=machines,
        aarch64_cpu_models=models,  # type: ignore[type-var]
    )


def test_a_boards_cpu_count_follows_the_release() -> None:
    assert VERSAL is not None and RASPI is not None
    assert (VERSAL.smp((5, 2, 0)), VERSAL.smp((7, 2, 22)), VERSAL.smp((11, 1, 3))) == (2, 4, 4)
    assert (RASPI.smp((7, 2, 22)), RASPI.smp((10, 0, 13))) == (None, 4)
    assert board_of("virt-10.0") is None


def test_a_pair_draws_the_boards_both_have_at_one_cpu_count() -> None:
    new, newer = _with_boards(NEW, "10.0.13"), _with_boards(NEW, "11.1.3")
    drawn = find(
        configurations(new, newer, boards=True),  # type: ignore[arg-type]
        lambda c: board_of(c.machine) is not None,
        settings=QUIET,
    )
    board = board_of(drawn.machine)
    assert board is not None
    assert drawn == MachineConfig(board.machine, board.cpu, smp=4, memory_mib=board.memory_mib)
    old = _with_boards(OLD, "5.2.0")
    # 5.2's versal has 2 CPUs, 10.0's 4; 5.2 has no raspi4b: nothing to draw.
    none = configurations(old, newer, boards=True)  # type: ignore[arg-type]

    @QUIET
    @given(none)
    def never(config: MachineConfig) -> None:
        assert board_of(config.machine) is None

    never()


@QUIET
@given(configurations(NEW, NEW))
def test_without_boards_only_virt_is_drawn(config: MachineConfig) -> None:
    assert board_of(config.machine) is None


def test_a_board_configuration_is_accepted_only_plain_and_at_its_cpu_count() -> None:
    assert RASPI is not None
    newer = _with_boards(NEW, "11.1.3")
    plain = MachineConfig("raspi4b", "cortex-a72", smp=4, memory_mib=2048)
    assert accepted_by(newer, plain)  # type: ignore[arg-type]
    assert not accepted_by(newer, dataclasses.replace(plain, smp=2))  # type: ignore[arg-type]
    assert not accepted_by(_with_boards(NEW, "7.2.22"), plain)  # type: ignore[arg-type]
    with_option = dataclasses.replace(plain, machine_options=(("gic-version", "3"),))
    assert not accepted_by(newer, with_option)  # type: ignore[arg-type]


def test_a_boards_guest_prints_on_its_uart_and_draws_no_virt_device_or_mmu() -> None:
    assert RASPI is not None
    ops = operations_to_json([SetGpr(1, 2)])
    on_board = rebuild_guest(ops, 4, machine="raspi4b")
    on_virt = rebuild_guest(ops, 4)
    assert on_board.image != on_virt.image
    high = f"movk x9, #{RASPI.uart >> 16:#x}, lsl #16"  # the console's address, high half
    assert high in on_board.source()
    assert f"movk x9, #{UART_BASE >> 16:#x}, lsl #16" in on_virt.source()
    assert high not in on_virt.source()
    new, newer = _with_boards(NEW, "10.0.13"), _with_boards(NEW, "11.1.3")
    cases = case_strategy()(new, newer)  # type: ignore[arg-type]

    @QUIET
    @given(cases)
    def board_guests(group: list[object]) -> None:
        case = group[0]
        if board_of(case.config.machine) is None:  # type: ignore[attr-defined]
            return
        kinds = {op["op"] for op in case.guest.operations}  # type: ignore[attr-defined]
        assert not kinds & {ConfigureGic.kind, EnableMmu.kind, "pcie", "pl011", "pl061"}
        assert case.live is None  # type: ignore[attr-defined]

    board_guests()
