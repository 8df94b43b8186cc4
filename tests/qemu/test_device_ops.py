"""Device operations on real QEMU: the PL031 and PL061 keep what a guest wrote.

A guest that programs the RTC and the GPIO reads every register back before its
checkpoint as the operations fix it (:func:`strategies.image.expected_values`), and the
same after an A -> A restore, on 10.0 and 11.1, at EL1, EL2 and EL3, with the MMU on or
off. On the clean pair 11.1.2 <-> 11.1 (the two load each other), such a case judges as
agree in both directions: what the device read-back adds is no false divergence. So does a
group of them on long-lived processes, where QEMU's PL031, which has no reset, keeps the
previous guest's RTC across ``system_reset``.
"""

from __future__ import annotations

import pytest

from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case, MachineConfig
from fuzz.core.outcome import Verdict
from fuzz.core.settings import RunSettings
from fuzz.judge.oracles import Agree
from fuzz.judge.transcript import EXCEPTION_ITEM, parse_transcript, pre_save_readback
from fuzz.run.session import Session
from fuzz.versions.farm import Farm
from fuzz.versions.probe import probed_settings
from strategies.guests import (
    RTC_QUIET,
    ConfigureGpio,
    ConfigureRtc,
    DropToEl,
    EnableMmu,
    Operation,
    SetGpr,
)
from strategies.image import build_guest, expected_values, readback_items
from tests.qemu.conftest import COMMON_MACHINE, same_version_transfers

pytestmark = pytest.mark.qemu

U32 = (1 << 32) - 1
GUESTS: dict[str, list[Operation]] = {
    "rtc-alarm": [ConfigureRtc(0x1234_5678, 0x1236_5678, mask=True, alarm=True)],
    "rtc-clear-wrapping": [ConfigureRtc(U32 - 3, RTC_QUIET, mask=False)],
    "gpio": [ConfigureGpio(0x0F, 0xA5, 0x30, 0x40, 0x81, 0xFF, 0x01, 0x3C)],
    "both-twice": [
        ConfigureRtc(5, 3, alarm=True), ConfigureGpio(0xFF, 0x5A, 0x0F, 0, 0xF0, 0x33),
        SetGpr(3, 7), ConfigureRtc(0x8000_0000, 0x7000_0000, mask=True),
        ConfigureGpio(0x08, 0x08, 0, 0xF7, 0, 0x0F, 0x80, 0xFF),
    ],
    "mmu": [
        DropToEl(1), EnableMmu(caches=True), ConfigureGpio(0xC3, 0xFF, 0x01, 0x02, 0x04, 0x08),
        ConfigureRtc(0xDEAD_BEEF, 0, mask=True, alarm=True),
    ],
}  # fmt: skip
#: Reset EL1, EL2 (with a GICv3) and EL3.
OPTION_SETS: tuple[tuple[tuple[str, str], ...], ...] = (
    (),
    (("virtualization", "on"), ("gic-version", "3")),
    (("secure", "on"),),
)


@pytest.mark.parametrize("version", ["10.0", "11.1"])
def test_what_a_guest_wrote_to_the_devices_reads_back_after_a_same_version_restore(
    binaries: dict[str, QemuBinary], version: str
) -> None:
    runs = [
        (name, ops, Case(MachineConfig(COMMON_MACHINE, "cortex-a57", machine_options=options),
                         build_guest(ops)))
        for name, ops in GUESTS.items() for options in OPTION_SETS
    ]  # fmt: skip
    results = same_version_transfers(binaries[version], [case for _, _, case in runs])
    for (name, ops, case), result in zip(runs, results, strict=True):
        where = (name, case.config.describe())
        assert case.guest is not None
        assert result.verdict is Verdict.COMPLETED, (where, result.summary())
        console = result.save.details["console"]
        before = parse_transcript(pre_save_readback(console, case.guest.checkpoint))
        assert EXCEPTION_ITEM not in before, (where, before[EXCEPTION_ITEM])
        assert list(before) == readback_items(ops), where
        # Written before the save: every register reads back as the operations set it ...
        expected = expected_values(ops)
        assert {k: before[k] for k in expected} == expected, where
        last_rtc = [op for op in ops if isinstance(op, ConfigureRtc)][-1:]
        for op in last_rtc:  # 10.0 and 11.1 set RTCLR on a write (QEMU 9.0 and later)
            assert before["pl031.lr"] == f"0x{op.load:016x}", where
        # ... and after the restore, item by item.
        assert result.load is not None
        after = parse_transcript(result.load.details["transcript"])
        assert after == before, where


@pytest.mark.parametrize(("src", "dst"), [("11.1.2", "11.1"), ("11.1", "11.1.2")])
def test_device_cases_agree_on_the_clean_pair(farm: Farm, src: str, dst: str) -> None:
    if "11.1.2" not in farm.installed():
        pytest.skip("11.1.2 is not installed (scripts/setup installs it from qemu.lock)")
    source, destination = farm.get(src), farm.get(dst)
    cases = [
        Case(MachineConfig(COMMON_MACHINE, cpu, machine_options=options), build_guest(ops))
        for ops, cpu, options in (
            (GUESTS["both-twice"], "cortex-a57", ()),
            (GUESTS["mmu"], "max", (("secure", "on"), ("virtualization", "on"))),
        )
    ]
    with Session(RunSettings(reuse=False)) as session:
        runs = [session.run_case(source, destination, case) for case in cases]
    for run in runs:
        assert isinstance(run.judgement, Agree), run.judgement
        transcript = run.pair.load.details["transcript"] if run.pair.load else ""
        assert "pl031.ris=" in transcript and "pl061.ris=" in transcript


def test_device_guests_agree_one_after_another_on_long_lived_processes(farm: Farm) -> None:
    if "11.1.2" not in farm.installed():
        pytest.skip("11.1.2 is not installed (scripts/setup installs it from qemu.lock)")
    src, other = farm.get("11.1"), farm.get("11.1.2")
    settings = probed_settings([src, other], farm.cache_dir, reuse=True)
    config = MachineConfig("virt", "cortex-a57")
    # An RTC left raised and unmasked, then guests that clear it, or do not touch it.
    guests: list[list[Operation]] = [
        *GUESTS.values(), GUESTS["rtc-clear-wrapping"], [SetGpr(1, 2)], GUESTS["gpio"],
    ]  # fmt: skip
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
