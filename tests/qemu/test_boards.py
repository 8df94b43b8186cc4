"""Boards besides virt on real QEMU: the guest runs on raspi4b and xlnx-versal-virt, reads
back after a same-version restore what it read before its checkpoint, and the clean pair
11.1.2 <-> 11.1 agrees on both boards. 5.2's xlnx-versal-virt refuses its own state (a QEMU
bug, pinned)."""

from __future__ import annotations

import pytest

from fuzz.core.binary import QemuBinary
from fuzz.core.boards import BOARDS, Board, board_of
from fuzz.core.case import Case, MachineConfig
from fuzz.core.outcome import Verdict
from fuzz.core.settings import RunSettings
from fuzz.judge.oracles import Agree
from fuzz.judge.transcript import EXCEPTION_ITEM, parse_transcript, pre_save_readback
from fuzz.run.session import Session
from fuzz.versions.farm import Farm
from strategies.guests import ArmTimer, DropToEl, FillMemory, Operation, SetFpReg, SetGpr
from strategies.image import build_guest, readback_items
from tests.qemu.conftest import same_version_transfers

pytestmark = pytest.mark.qemu

OPS: list[Operation] = [
    SetGpr(3, 0x1234_5678_9ABC), SetFpReg(2, 1 << 100 | 77), FillMemory(0x40, 2, 0xDEAD, 1),
    ArmTimer("virtual", 0xFFFF_0000, True), DropToEl(1),
]  # fmt: skip


def _case(board: Board, smp: int, ops: list[Operation] | None = OPS) -> Case:
    config = MachineConfig(board.machine, board.cpu, smp=smp, memory_mib=board.memory_mib)
    guest = None if ops is None else build_guest(ops, smp=smp, uart=board.uart)
    return Case(config, guest)


@pytest.mark.parametrize("machine", [b.machine for b in BOARDS])
@pytest.mark.parametrize("version", ["10.0", "11.1"])
def test_a_boards_guest_reads_back_after_a_same_version_restore(
    binaries: dict[str, QemuBinary], version: str, machine: str
) -> None:
    board = board_of(machine)
    assert board is not None
    case = _case(board, 4)
    result = same_version_transfers(binaries[version], [case])[0]
    assert case.guest is not None
    assert result.verdict is Verdict.COMPLETED, result.summary()
    before = parse_transcript(
        pre_save_readback(result.save.details["console"], case.guest.checkpoint)
    )
    assert EXCEPTION_ITEM not in before
    assert list(before) == readback_items(OPS)
    assert before["x3"] == f"{0x1234_5678_9ABC:#018x}"
    assert before["el"] == f"{1:#018x}"
    assert result.load is not None
    after = parse_transcript(result.load.details["transcript"])
    assert {k: after[k] for k in before} == before


@pytest.mark.parametrize(
    ("src", "dst", "machine"),
    [("11.1.2", "11.1", "raspi4b"), ("11.1", "11.1.2", "xlnx-versal-virt")],
)
def test_board_cases_agree_on_the_clean_pair(farm: Farm, src: str, dst: str, machine: str) -> None:
    """One direction per board (each run saves and loads 1 or 2 GiB of RAM, twice)."""
    if "11.1.2" not in farm.installed():
        pytest.skip("11.1.2 is not installed (scripts/setup installs it from qemu.lock)")
    board = board_of(machine)
    assert board is not None
    with Session(RunSettings(reuse=False)) as session:
        run = session.run_case(farm.get(src), farm.get(dst), _case(board, 4))
    assert isinstance(run.judgement, Agree), run.judgement


def test_versal_on_5_2_refuses_its_own_state(binaries: dict[str, QemuBinary]) -> None:
    """QEMU 5.2's xlnx-versal-virt (2 CPUs) cannot load what it saved, even at reset with
    no guest: "error while loading state for instance 0x0 of device 'cpu'" (7.2 and later,
    with 4 CPUs, can). A campaign never draws it: no other version has 2 CPUs there."""
    board = board_of("xlnx-versal-virt")
    assert board is not None
    result = same_version_transfers(binaries["5.2"], [_case(board, 2, None)])[0]
    assert result.verdict is Verdict.REFUSED
    assert result.load is not None
    assert any("device 'cpu'" in m for m in result.load.messages), result.load.messages
