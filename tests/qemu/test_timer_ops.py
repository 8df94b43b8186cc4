"""Timer deadlines on real QEMU: which timers fire after a restore, and how that is judged.

A guest sets a deadline on a generic timer before its checkpoint; after an A -> A restore
on 10.0 and 11.1 it waits for the timer and reads back whether it fired. The EL1 physical
and virtual timers always do, at EL1 and below EL2, at 62.5 MHz (``virt-5.2``) and at
1 GHz (``max`` on the newest ``virt``); a timer the EL or the CPU does not have reads back
absent; and such guests are judged clean, on fresh and on long-lived processes.

The EL2 and EL3 timers pin a QEMU bug (every version from 5.2 to 11.1): the CPU's
vmstate carries the QEMU timers of the EL1 physical and virtual timers only
(``VMSTATE_TIMER_PTR(gt_timer[GTIMER_PHYS])`` and ``[GTIMER_VIRT]`` in
``target/arm/machine.c``), and loading CNTHP/CNTHV/CNTPS_CTL and CVAL through their raw
writers does not re-arm them, so a deadline still pending at the save never fires after
the restore. Whether a drawn deadline is still pending at the save depends on the host, so
the judge compares their lines A -> B against A -> A only (``TIMERS_LOST_BY_QEMU``): every
timer armed on the clean pair 11.1 <-> 11.1.2 judges as agree.
"""

from __future__ import annotations

import pytest

from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case, MachineConfig
from fuzz.core.outcome import TransferOutcome, Verdict
from fuzz.core.settings import RunSettings
from fuzz.judge.oracles import Agree
from fuzz.judge.transcript import (
    EXCEPTION_ITEM,
    compare_transcripts,
    parse_transcript,
    pre_save_readback,
)
from fuzz.run.session import Session
from fuzz.versions.farm import Farm
from fuzz.versions.probe import probed_settings
from strategies import guests
from strategies.guests import (
    DEADLINE_TIMERS,
    MAX_TIMER_MICROS,
    MIN_TIMER_MICROS,
    ArmDeadline,
    DeadlineTimer,
    DropToEl,
    EnableMmu,
    Operation,
    SetGpr,
)
from strategies.image import (
    TIMER_ABSENT,
    TIMER_FIRED,
    TIMER_MISSED,
    after_restore_items,
    build_guest,
    readback_items,
)
from tests.qemu.conftest import COMMON_MACHINE, same_version_transfers

pytestmark = pytest.mark.qemu

Options = tuple[tuple[str, str], ...]
VIRT: Options = (("virtualization", "on"),)
SECURE: Options = (("secure", "on"),)
BOTH: Options = (("secure", "on"), ("virtualization", "on"))
EL1_TIMERS: list[Operation] = [
    ArmDeadline("physical", MIN_TIMER_MICROS),
    ArmDeadline("virtual", MAX_TIMER_MICROS, tval=True, mask=True),
    SetGpr(1, 2),
]
EVERY_TIMER: list[Operation] = [
    ArmDeadline(timer, MAX_TIMER_MICROS, tval=i % 2 == 0, mask=i % 3 == 0)
    for i, timer in enumerate(DEADLINE_TIMERS)
]


def _verdicts(ops: list[Operation], result: TransferOutcome) -> dict[str, int]:
    """Check the A -> A contract but for the timer lines; return timer -> its verdict."""
    assert result.verdict is Verdict.COMPLETED, result.summary()
    guest = build_guest(ops)
    before = parse_transcript(pre_save_readback(result.save.details["console"], guest.checkpoint))
    assert EXCEPTION_ITEM not in before, before[EXCEPTION_ITEM]
    assert list(before) == readback_items(ops)
    assert result.load is not None
    after = parse_transcript(result.load.details["transcript"])
    names = after_restore_items(ops)
    assert [n for n in after if n.startswith("timer.")] == names
    assert compare_transcripts(before, {k: v for k, v in after.items() if k not in names}) == []
    return {n.split(".")[1]: int(after[n], 16) for n in names}


F, A = TIMER_FIRED, TIMER_ABSENT
#: (machine, CPU, options, operations, expected verdicts): EL1 timers that fire, and
#: timers the EL or the CPU does not have.
EL1_CASES: list[tuple[str, str, Options, list[Operation], dict[str, int]]] = [
    (COMMON_MACHINE, "cortex-a57", (), EL1_TIMERS, {"physical": F, "virtual": F}),
    ("virt", "max", (), EL1_TIMERS, {"physical": F, "virtual": F}),  # a 1 GHz counter
    (COMMON_MACHINE, "cortex-a57", VIRT, [DropToEl(1), EnableMmu(), *EL1_TIMERS],
     {"physical": F, "virtual": F}),
    (COMMON_MACHINE, "max", SECURE, [DropToEl(1, secure=True), *EL1_TIMERS],
     {"physical": F, "virtual": F}),
    (COMMON_MACHINE, "cortex-a57", (), EVERY_TIMER,  # EL1: no EL2 or EL3 timer
     {"physical": F, "virtual": F, "hyp_physical": A, "hyp_virtual": A, "secure_physical": A}),
    (COMMON_MACHINE, "cortex-a57", VIRT, [ArmDeadline("hyp_virtual", MIN_TIMER_MICROS),
     ArmDeadline("secure_physical", MIN_TIMER_MICROS)],  # no FEAT_VHE on a57, no EL3
     {"hyp_virtual": A, "secure_physical": A}),
]  # fmt: skip


@pytest.mark.parametrize("version", ["10.0", "11.1"])
def test_el1_timers_fire_after_a_same_version_restore_and_missing_ones_read_absent(
    binaries: dict[str, QemuBinary], version: str
) -> None:
    cases = [
        Case(MachineConfig(machine, cpu, machine_options=opts), build_guest(ops))
        for machine, cpu, opts, ops, _ in EL1_CASES
    ]
    results = same_version_transfers(binaries[version], cases)
    for (_, cpu, opts, ops, expected), result in zip(EL1_CASES, results, strict=True):
        assert _verdicts(ops, result) == expected, (cpu, opts)


#: (CPU, options) where each EL2 or EL3 timer exists, and each EL1 timer for comparison.
HIGH_EL_CASES: list[tuple[DeadlineTimer, str, Options]] = [
    ("hyp_physical", "cortex-a57", VIRT),
    ("hyp_virtual", "max", VIRT),
    ("secure_physical", "cortex-a57", SECURE),
    ("physical", "cortex-a57", BOTH),
    ("virtual", "max", BOTH),
]
#: A deadline no save comes after (the harness stops a VM within milliseconds of its
#: checkpoint); campaigns draw nearer ones, which the save mostly but not always precedes.
FAR_MICROS = 200_000


@pytest.mark.parametrize("version", ["10.0", "11.1"])
def test_el2_and_el3_timers_lose_a_deadline_pending_at_the_save(
    binaries: dict[str, QemuBinary], version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The QEMU bug, pinned: with a deadline still pending at the save, the EL1 timers
    fire after the restore and the EL2 and EL3 timers never do."""
    monkeypatch.setattr(guests, "MAX_TIMER_MICROS", FAR_MICROS)
    runs: list[tuple[str, list[Operation], MachineConfig]] = [
        (timer, [ArmDeadline(timer, FAR_MICROS)],
         MachineConfig(COMMON_MACHINE, cpu, machine_options=opts))
        for timer, cpu, opts in HIGH_EL_CASES
    ]  # fmt: skip
    results = same_version_transfers(
        binaries[version], [Case(c, build_guest(ops)) for _, ops, c in runs]
    )
    verdicts = {
        timer: _verdicts(ops, result)[timer]
        for (timer, ops, _), result in zip(runs, results, strict=True)
    }
    assert verdicts == {
        "hyp_physical": TIMER_MISSED, "hyp_virtual": TIMER_MISSED,
        "secure_physical": TIMER_MISSED, "physical": TIMER_FIRED, "virtual": TIMER_FIRED,
    }  # fmt: skip


def test_due_deadlines_on_el1_timers_are_judged_clean_a_to_a(farm: Farm) -> None:
    binary = farm.get("11.1")
    cases = [
        Case(MachineConfig(COMMON_MACHINE, "cortex-a57"), build_guest(EL1_TIMERS)),
        Case(MachineConfig("virt", "max", machine_options=VIRT),
             build_guest([DropToEl(1), *EL1_TIMERS])),
    ]  # fmt: skip
    with Session(RunSettings(reuse=False)) as session:
        runs = [session.run_case(binary, binary, case) for case in cases]
    for run in runs:
        assert isinstance(run.judgement, Agree), run.judgement
        transcript = run.pair.load.details["transcript"] if run.pair.load else ""
        assert "timer.physical.fired=0x0000000000000001" in transcript


def test_el1_deadlines_agree_one_after_another_on_long_lived_processes(farm: Farm) -> None:
    if "11.1.2" not in farm.installed():
        pytest.skip("11.1.2 is not installed (scripts/setup installs it from qemu.lock)")
    src, other = farm.get("11.1"), farm.get("11.1.2")
    settings = probed_settings([src, other], farm.cache_dir, reuse=True)
    config = MachineConfig("virt", "cortex-a57")
    guests: list[list[Operation]] = [EL1_TIMERS, [SetGpr(3, 4)], EL1_TIMERS[::-1]] * 3
    with Session(settings) as session:
        runs = [
            session.run_cases(
                src, [other, src], Case(config, build_guest(ops)), more_alike=i + 1 < len(guests)
            )
            for i, ops in enumerate(guests)
        ]
        stats = dict(session.cases.stats)
    assert stats["reused"] > 0, stats
    for pair_runs in runs:
        assert all(isinstance(r.judgement, Agree) for r in pair_runs), [
            r.judgement for r in pair_runs
        ]
    assert stats["disagreed"] == 0, stats


@pytest.mark.parametrize(("src", "dst"), [("11.1", "11.1.2"), ("11.1.2", "11.1")])
def test_every_timer_armed_agrees_on_the_clean_pair(farm: Farm, src: str, dst: str) -> None:
    if "11.1.2" not in farm.installed():
        pytest.skip("11.1.2 is not installed (scripts/setup installs it from qemu.lock)")
    source, destination = farm.get(src), farm.get(dst)
    cases = [
        Case(MachineConfig("virt", "max", machine_options=BOTH), build_guest(EVERY_TIMER)),
        Case(MachineConfig(COMMON_MACHINE, "cortex-a57", machine_options=BOTH),
             build_guest(EVERY_TIMER)),
        Case(MachineConfig("virt", "max", machine_options=VIRT),
             build_guest([DropToEl(1), *EL1_TIMERS])),
    ]  # fmt: skip
    with Session(RunSettings(reuse=False)) as session:
        runs = [session.run_case(source, destination, case) for case in cases]
    for run in runs:
        assert isinstance(run.judgement, Agree), run.judgement
        transcript = run.pair.load.details["transcript"] if run.pair.load else ""
        assert "timer.physical.fired=0x0000000000000001" in transcript
