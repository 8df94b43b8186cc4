"""Built guests on real QEMU: they reach their checkpoint and read back the same after A->A.

For each of the four versions, Hypothesis draws 200 guests (25 examples of 8, run
concurrently, each case in its own temp folder) on ``virt-5.2``, mostly ``cortex-a57`` and
some ``max``, starting at EL1, EL2 or EL3 with a GICv2 or GICv3. Each must reach its
checkpoint; the A->A transcript must equal the pre-save read-back item by item and name
exactly the items the builder promised (after the timer lines a restore adds); GPRs, Q
registers, memory, NZCV, DAIF and SPSel must read back exactly as written (system
registers may be masked by the CPU, so they are compared with the pre-save read-back only).

QEMU 5.2 refuses its own stream of a CPU saved at EL3 (``secure=on``), so on 5.2 the drawn
guests start at EL1 or EL2 only, and the fixed cases below expect that refusal.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case, MachineConfig
from fuzz.core.outcome import TransferOutcome, Verdict
from fuzz.judge.transcript import (
    EXCEPTION_ITEM,
    compare_transcripts,
    parse_transcript,
    pre_save_readback,
)
from strategies.guests import (
    ArmTimer,
    ConfigureGic,
    ConfigurePrivateIrq,
    DropToEl,
    EnableMmu,
    FillMemory,
    Operation,
    SelectStack,
    SetDaif,
    SetFlags,
    SetFpReg,
    SetGpr,
    SetPriorityMask,
    SetSveReg,
    WriteSysReg,
    guest_operations,
)
from strategies.image import (
    TIMER_ABSENT,
    TIMER_FIRED,
    TIMER_MISSED,
    after_restore_device_items,
    after_restore_items,
    build_guest,
    expected_values,
    readback_items,
)
from strategies.sysregs import SYSTEM_REGISTERS
from tests.conftest import VERSIONS
from tests.qemu.conftest import COMMON_MACHINE, transfer

pytestmark = pytest.mark.qemu

EL1_TIMER_ITEMS = frozenset({"timer.physical.fired", "timer.virtual.fired"})

BATCH = 8
EXAMPLES = 15  # x BATCH = 120 guests per version
# sampled_from shrinks toward the first entry: a failure is reported on cortex-a57 if it can be.
CPUS = st.sampled_from(("cortex-a57", "cortex-a57", "cortex-a57", "max"))
Options = tuple[tuple[str, str], ...]
VIRT: Options = (("virtualization", "on"),)
SECURE: Options = (("secure", "on"),)
GICV3: Options = (("gic-version", "3"),)
#: Reset EL1, EL2, EL3, EL3 with EL2, each with the default GICv2 or a GICv3.
OPTION_SETS: tuple[Options, ...] = tuple(
    (*el, *gic) for el in ((), VIRT, SECURE, (*SECURE, *VIRT)) for gic in ((), GICV3)
)


def _option_sets(version: str) -> tuple[Options, ...]:
    """The option sets whose A->A round trip ``version`` can do (5.2: not at EL3)."""
    return tuple(o for o in OPTION_SETS if version != "5.2" or SECURE[0] not in o)


def _run_batch(
    binary: QemuBinary, cases: Sequence[tuple[MachineConfig, list[Operation]]]
) -> list[TransferOutcome]:
    """Save each case on ``binary`` and restore it on ``binary``, all concurrently."""

    async def one(config: MachineConfig, ops: list[Operation]) -> TransferOutcome:
        case = Case(config, build_guest(ops, smp=config.smp))
        with tempfile.TemporaryDirectory(prefix="migfuzz-guest-") as tmp:
            _, result = await transfer(binary, binary, case, Path(tmp))
        return result

    async def all_cases() -> list[TransferOutcome]:
        return list(await asyncio.gather(*(one(config, ops) for config, ops in cases)))

    return asyncio.run(all_cases())


def _check_pre_save(ops: list[Operation], result: TransferOutcome) -> dict[str, str]:
    """Assert the guest reached its checkpoint with the promised read-back; return it."""
    assert result.save.verdict is Verdict.COMPLETED, (ops, result.save.summary())
    guest = build_guest(ops)
    before = parse_transcript(pre_save_readback(result.save.details["console"], guest.checkpoint))
    assert EXCEPTION_ITEM not in before, (ops, before[EXCEPTION_ITEM])
    assert list(before) == readback_items(ops), ops
    expected = expected_values(ops)
    assert {name: before[name] for name in expected} == expected, ops
    return before


def _check_round_trip(ops: list[Operation], result: TransferOutcome) -> dict[str, str]:
    """Assert the guest's A->A contract; return the pre-save read-back items.

    After the restore, a guest with timer deadlines first says whether each fired: an EL1
    timer always does; an EL2 or EL3 timer may not, if its deadline was still pending at
    the save (a QEMU bug, pinned in ``tests/qemu/test_timer_ops.py``), or be absent.
    """
    before = _check_pre_save(ops, result)
    assert result.load is not None and result.load.verdict is Verdict.COMPLETED, result.summary()
    after = parse_transcript(result.load.details["transcript"])
    timers = after_restore_items(ops)
    assert [n for n in after if n.startswith("timer.")] == timers, ops
    for name in timers:
        allowed = {TIMER_FIRED} if name in EL1_TIMER_ITEMS else {TIMER_FIRED, TIMER_MISSED,
                                                                TIMER_ABSENT}  # fmt: skip
        assert int(after[name], 16) in allowed, (name, after[name], ops)
    # The console devices' lines after a restore read state the read-back changes
    # (compared A -> B only); a flash bank's mode is lost by 5.2, 7.2 and 10.0.2
    # (pinned in tests/qemu/test_device_ops_uart_flash.py).
    later = {*timers, *after_restore_device_items(ops)}
    rest = {name: value for name, value in after.items() if name not in later}
    lost = {name for name in before if name.startswith("pflash")}
    kept = {name: value for name, value in before.items() if name not in lost}
    assert compare_transcripts(kept, {n: v for n, v in rest.items() if n not in lost}) == [], ops
    return before


def _within_1024_bit_sve(ops: list[Operation]) -> list[Operation]:
    return [
        replace(op, full_length=False) if isinstance(op, SetSveReg) and op.full_length else op
        for op in ops
    ]


@pytest.mark.slow
@pytest.mark.parametrize("version", VERSIONS)
def test_drawn_guests_read_back_the_same_after_a_same_version_restore(
    binaries: dict[str, QemuBinary], version: str
) -> None:
    binary = binaries[version]
    options = st.sampled_from(_option_sets(version))
    # Full-length (2048-bit) SVE hits QEMU's Z-register truncation on every version, pinned
    # below; the contract checked here is everything else's.
    guests = guest_operations().map(_within_1024_bit_sve)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(st.lists(st.tuples(CPUS, options, guests), min_size=BATCH, max_size=BATCH))
    def check(batch: list[tuple[str, Options, list[Operation]]]) -> None:
        cases = [
            (MachineConfig(COMMON_MACHINE, cpu, machine_options=opts), ops)
            for cpu, opts, ops in batch
        ]
        for (_, ops), result in zip(cases, _run_batch(binary, cases), strict=True):
            _check_round_trip(ops, result)

    check()


def _every_kind(value_of: str) -> list[Operation]:
    """One guest touching every register of the table and every operation kind."""
    ops: list[Operation] = [
        WriteSysReg(r.name, r.fields if value_of == "fields" else r.safe) for r in SYSTEM_REGISTERS
    ]
    ops += [
        SetGpr(0, 0x0123_4567_89AB_CDEF),
        SetGpr(27, (1 << 64) - 1),
        SetFpReg(0, (1 << 128) - 1),
        SetFpReg(31, 0x0011_2233_4455_6677_8899_AABB_CCDD_EEFF),
        FillMemory(0, 8, 0xDEAD_BEEF_0000_0000, 1),
        FillMemory(0xFFC0, 8, (1 << 64) - 1),
        ArmTimer("virtual", (1 << 64) - 1, enable=True),
        ArmTimer("physical", 0, enable=True),
        ConfigureGic(32, 0xFF, enable=True),
        ConfigureGic(127, 0x10),
        SetDaif(0b0101),
        SetFlags(0b1010),
    ]
    return ops


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "options",
    [(), (("virtualization", "on"),), (("secure", "on"),), (("gic-version", "3"),)],
    ids=["el1", "el2", "el3", "gicv3"],
)
def test_every_register_and_kind_works_at_every_reset_el(
    binaries: dict[str, QemuBinary], version: str, options: tuple[tuple[str, str], ...]
) -> None:
    """The register table is valid: each row is writable, on both CPUs, at EL1, EL2 and EL3.

    And the GIC operations work on a GICv3 distributor as on the default GICv2.
    """
    cases = [
        (MachineConfig(COMMON_MACHINE, cpu, machine_options=options), _every_kind(value_of))
        for cpu in ("cortex-a57", "max")
        for value_of in ("fields", "safe")
    ]
    el = 2 if ("virtualization", "on") in options else 3 if ("secure", "on") in options else 1
    for (_, ops), result in zip(cases, _run_batch(binaries[version], cases), strict=True):
        if version == "5.2" and el == 3:
            # QEMU 5.2 refuses its own secure=on stream, even one saved paused at reset.
            before = _check_pre_save(ops, result)
            assert result.verdict is Verdict.REFUSED, result.summary()
        else:
            before = _check_round_trip(ops, result)
        assert before["el"] == f"0x{el:016x}"
        # The timers read back armed and masked, whatever time it is.
        assert before["CNTV_CTL_EL0"] == before["CNTP_CTL_EL0"] == f"0x{3:016x}"


def test_secondary_cpus_park_and_do_not_disturb_the_read_back(
    binaries: dict[str, QemuBinary],
) -> None:
    ops: list[Operation] = [SetGpr(1, 0x42), WriteSysReg("TPIDR_EL0", 0x1234)]
    cases = [(MachineConfig(COMMON_MACHINE, "cortex-a57", smp=4), ops)]
    [result] = _run_batch(binaries["11.1"], cases)
    before = _check_round_trip(ops, result)
    assert before["TPIDR_EL0"] == f"0x{0x1234:016x}"


#: Guests of the control operations: EL drops, SPSel, the MMU, the GIC's private side, SVE.
CONTROL_GUESTS: dict[str, list[Operation]] = {
    "drop-to-el1": [
        SetFlags(0b1010), SetDaif(0b0101), DropToEl(1), WriteSysReg("TPIDR_EL1", 5),
        ArmTimer("physical", 7, enable=True), SetGpr(3, 9),
    ],
    "drop-to-el2": [DropToEl(2), ArmTimer("physical", 7, enable=True), SetFpReg(2, 1 << 99)],
    "drop-to-secure-el1": [DropToEl(1, secure=True), ArmTimer("virtual", 1), SetFpReg(1, 3)],
    "stack": [SelectStack(sp_el0=True), SetGpr(1, 2), DropToEl(1), SelectStack(sp_el0=True)],
    "mmu": [EnableMmu(), FillMemory(0, 2, 5, 1)],
    "mmu-el1-caches": [DropToEl(1), EnableMmu(caches=True), WriteSysReg("TTBR1_EL1", 0x1000)],
    "gic-private": [
        ConfigurePrivateIrq(27, 0xA0, enable=True), ConfigurePrivateIrq(16, 0x10),
        SetPriorityMask(0xF0),
    ],
    "sve": [SetSveReg(3, 0x1111, 0x10), SetFpReg(4, 7), SetSveReg(4, 5, 1)],
    "sve-across-a-drop": [SetSveReg(0, 1, 1), DropToEl(1), SetSveReg(31, 2, 3)],
    "everything": [
        SetFlags(3), ConfigureGic(40, 5, enable=True), DropToEl(2), SelectStack(sp_el0=True),
        ConfigurePrivateIrq(30, 0x80, enable=True), DropToEl(1), SetPriorityMask(0x80),
        EnableMmu(caches=True),
    ],
}  # fmt: skip


def _cpu_for(index: int, ops: Sequence[Operation]) -> str:
    """``max`` for SVE guests (it has SVE), else cortex-a57 and max in turn."""
    if any(isinstance(op, SetSveReg) for op in ops):
        return "max"
    return ("cortex-a57", "max")[index % 2]


def _final_el(ops: Sequence[Operation], options: Options) -> int:
    """Where the guest should end up: its reset EL, lowered by each drop that can happen."""
    has_el2 = VIRT[0] in options
    el = 3 if SECURE[0] in options else 2 if has_el2 else 1
    for op in ops:
        if isinstance(op, DropToEl) and el > op.el and (op.el == 1 or has_el2):
            el = op.el
    return el


@pytest.mark.parametrize("version", VERSIONS)
def test_control_operations_take_effect_and_survive_a_same_version_restore(
    binaries: dict[str, QemuBinary], version: str
) -> None:
    """Each control guest on every reset EL and GIC: the EL it ends at, translation through
    the alias, the GIC's private words and SPSel read back as set, before and after A->A."""
    cases = [
        (MachineConfig(COMMON_MACHINE, _cpu_for(i, ops), machine_options=opts), ops)
        for i, ops in enumerate(CONTROL_GUESTS.values())
        for opts in OPTION_SETS
    ]
    for (config, ops), result in zip(cases, _run_batch(binaries[version], cases), strict=True):
        el = _final_el(ops, config.machine_options)
        where = (config.describe(), ops)
        if version == "5.2" and el == 3:
            before = _check_pre_save(ops, result)
            assert result.verdict is Verdict.REFUSED, result.summary()
        else:
            before = _check_round_trip(ops, result)
        assert before["el"] == f"0x{el:016x}", where
        if any(isinstance(op, EnableMmu) for op in ops):
            first_word = int.from_bytes(build_guest(ops).image[:8], "little")
            assert before["mmu_alias"] == f"0x{first_word:016x}", where
            caches = any(isinstance(op, EnableMmu) and op.caches for op in ops)
            assert int(before["mmu_sctlr"], 16) == (0x1005 if caches else 0x1), where
        if ops is CONTROL_GUESTS["gic-private"] and SECURE[0] not in config.machine_options:
            assert int(before["GIC_PPI_IPRIORITYR6"], 16) >> 24 == 0xA0, where
            assert int(before["GIC_PPI_ISENABLER0"], 16) & (1 << 27), where
            assert int(before["GIC_PMR"], 16) == 0xF0, where
        if any(isinstance(op, SetSveReg) for op in ops):
            assert before["sve_vl"] == f"0x{128:016x}", where  # 1024 bits
            assert all(int(v, 16) for k, v in before.items() if k.startswith("z")), where


@pytest.mark.parametrize("version", VERSIONS)
def test_z_register_bits_beyond_1024_are_lost_by_a_same_version_restore(
    binaries: dict[str, QemuBinary], version: str
) -> None:
    """A QEMU bug, pinned: ``cpu/sve/zreg_hi`` migrates ``ARM_MAX_VQ - 2`` words of each Z
    register, not ``ARM_MAX_VQ * 2 - 2``, so at 2048 bits the top half comes back zero.

    Strategies draw ``full_length`` (1 in 4 SVE writes): the judge reports this as a
    same-version finding (``same-version-state: guest read-back differs: z*``).
    """
    full = [SetSveReg(3, 0x1111, 0x10, full_length=True)]
    cases = [
        (MachineConfig(COMMON_MACHINE, "max"), full),
        (MachineConfig(COMMON_MACHINE, "max", cpu_properties=(("sve-max-vq", "8"),)), full),
        (MachineConfig(COMMON_MACHINE, "max"), [SetSveReg(3, 0x1111, 0x10)]),
    ]
    long_vectors, capped_cpu, capped_guest = _run_batch(binaries[version], cases)
    before = _check_pre_save(full, long_vectors)
    assert before["sve_vl"] == f"0x{256:016x}"
    assert long_vectors.load is not None and long_vectors.load.verdict is Verdict.COMPLETED
    after = parse_transcript(long_vectors.load.details["transcript"])
    assert [d.name for d in compare_transcripts(before, after)] == ["z3"]
    for ops, result in ((full, capped_cpu), (cases[2][1], capped_guest)):
        assert _check_round_trip(ops, result)["sve_vl"] == f"0x{128:016x}"
