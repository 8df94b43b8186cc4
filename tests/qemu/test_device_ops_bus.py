"""Bus-device operations on real QEMU: virtio-mmio, the GICv2m, the ITS and PCIe read back.

A guest that writes a virtio-mmio transport, raises a GICv2m MSI, maps an ITS event and
writes the PCIe host bridge reads every item back before its checkpoint as the operations
(:func:`strategies.image.expected_values`) and the machine's MSI controller
(:func:`strategies.image.msi_values`) fix it, and the same after an A -> A restore, on 10.0
and 11.1: with a GICv2 (GICv2m, high ECAM), a GICv3 with an ITS, a GICv3 without one and
the low ECAM (``its=off``, ``highmem=off``), at EL1, EL2 and EL3, with the MMU on or off.
On the clean pair 11.1.2 <-> 11.1 such cases judge as agree in both directions, and so do
they one after another on long-lived processes (guest RAM, where the ITS tables live, and
the host bridge's device-specific config words survive ``system_reset``).
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
    ConfigurePcieHost,
    ConfigureVirtioMmio,
    DropToEl,
    EnableMmu,
    MapItsEvent,
    Operation,
    RaiseV2mMsi,
    SetGpr,
)
from strategies.image import build_guest, expected_values, msi_values, readback_items
from tests.qemu.conftest import same_version_transfers

pytestmark = pytest.mark.qemu

#: A machine type 10.0 and 11.1 both have, new enough for a TCG ITS (virt-6.2 and later).
MACHINE = "virt-10.0"
ITS = MapItsEvent(device=7, event=3, lpi=100, collection=9)
PCIE = ConfigurePcieHost(0xFFFF, 0x10, 0x20, 0x33, 5, 0x1234_5678)
GUESTS: dict[str, list[Operation]] = {
    "all": [
        ConfigureVirtioMmio(31, 0x0B, 0xDEAD_BEEF, 1, 2, 256, 16), RaiseV2mMsi(5), ITS, PCIE,
        RaiseV2mMsi(20), SetGpr(3, 7),
    ],
    "twice-el1": [
        DropToEl(1), ITS, PCIE, MapItsEvent(511, 31, 8191, 511), RaiseV2mMsi(63),
        ConfigurePcieHost(0x0402, 0xFF, 0, 0xFF, 47, 0xFFFF_FFFF), ConfigureVirtioMmio(),
    ],
    "mmu": [
        DropToEl(1), EnableMmu(caches=True), ITS, RaiseV2mMsi(0),
        ConfigureVirtioMmio(4, 0xFF, 1, 0, 0xFFFF, 0xFFFF, 12),
    ],
}  # fmt: skip
#: Options -> the MSI controller ``virt`` makes: GICv2 (reset EL1), a GICv3 with an ITS,
#: a GICv3 without one and the low ECAM, EL3 with a GICv2, EL2 with an ITS.
OPTION_SETS: dict[tuple[tuple[str, str], ...], str] = {
    (): "gicv2m",
    (("gic-version", "3"),): "its",
    (("gic-version", "3"), ("its", "off"), ("highmem", "off")): "none",
    (("secure", "on"),): "gicv2m",
    (("virtualization", "on"), ("gic-version", "3")): "its",
}


def _its_written(ops: list[Operation], items: dict[str, str]) -> None:
    """With an ITS, the registers hold what the last ITS operation wrote, and the tables
    the entries its commands made (valid, in QEMU's formats)."""
    assert int(items["its.ctlr"], 16) & 1 == 1  # Enabled
    assert int(items["its.cwriter"], 16) == int(items["its.creadr"], 16) == 0x80
    assert int(items["its.cbaser"], 16) == 1 << 63 | 0x4040_0000
    assert int(items["its.baser0"], 16) & (1 << 63 | 0xFFFF_FFFF_F000) == 1 << 63 | 0x4040_1000
    assert int(items["its.baser1"], 16) & (1 << 63 | 0xFFFF_FFFF_F000) == 1 << 63 | 0x4040_2000
    last = [op for op in ops if isinstance(op, MapItsEvent)][-1]
    for entry in ("dte", "cte", "ite"):
        assert int(items[f"its.{entry}"], 16) & 1 == 1, entry  # valid
    # gicv3_internal.h: DTE Size at bits 1..5, ITT address >> 8 from bit 6; ITE INTID at
    # bits 2..25, ICID at 32..47; the ITE's high word is the doorbell, 1023 (none).
    dte, ite = int(items["its.dte"], 16), int(items["its.ite"], 16)
    assert (dte >> 1 & 0x1F, (dte >> 6) << 8) == (4, 0x4040_3000)
    assert (ite >> 2 & 0xFF_FFFF, ite >> 32 & 0xFFFF) == (8192 + last.lpi, last.collection)
    assert int(items["its.ite_doorbell"], 16) == 1023


@pytest.mark.parametrize("version", ["10.0", "11.1"])
def test_what_a_guest_wrote_to_the_bus_devices_reads_back_after_a_same_version_restore(
    binaries: dict[str, QemuBinary], version: str
) -> None:
    runs = [
        (name, ops, controller,
         Case(MachineConfig(MACHINE, "cortex-a57", machine_options=options), build_guest(ops)))
        for name, ops in GUESTS.items() for options, controller in OPTION_SETS.items()
    ]  # fmt: skip
    results = same_version_transfers(binaries[version], [case for *_, case in runs])
    for (name, ops, controller, case), result in zip(runs, results, strict=True):
        where = (name, case.config.describe())
        assert case.guest is not None
        assert result.verdict is Verdict.COMPLETED, (where, result.summary())
        console = result.save.details["console"]
        before = parse_transcript(pre_save_readback(console, case.guest.checkpoint))
        assert EXCEPTION_ITEM not in before, (where, before[EXCEPTION_ITEM])
        assert list(before) == readback_items(ops), where
        msi = controller
        if ("secure", "on") in case.config.machine_options and ops[0] == DropToEl(1):
            msi = "gicv2m-nonsecure"  # GICv2 Group 0 registers: RAZ/WI from there
        expected = {**expected_values(ops), **msi_values(ops, controller=msi)}
        assert {k: before[k] for k in expected} == expected, where
        if controller == "its":
            _its_written(ops, before)
        assert result.load is not None
        after = parse_transcript(result.load.details["transcript"])
        assert after == before, where


@pytest.mark.parametrize(("src", "dst"), [("11.1.2", "11.1"), ("11.1", "11.1.2")])
def test_bus_device_cases_agree_on_the_clean_pair(farm: Farm, src: str, dst: str) -> None:
    if "11.1.2" not in farm.installed():
        pytest.skip("11.1.2 is not installed (scripts/setup installs it from qemu.lock)")
    source, destination = farm.get(src), farm.get(dst)
    cases = [
        Case(MachineConfig(MACHINE, cpu, machine_options=options), build_guest(ops))
        for ops, cpu, options in (
            (GUESTS["all"], "cortex-a57", ()),
            (GUESTS["twice-el1"], "max", (("gic-version", "3"), ("secure", "on"))),
        )
    ]
    with Session(RunSettings(reuse=False)) as session:
        runs = [session.run_case(source, destination, case) for case in cases]
    for run in runs:
        assert isinstance(run.judgement, Agree), run.judgement
        transcript = run.pair.load.details["transcript"] if run.pair.load else ""
        assert "virtio_mmio.magic=0x0000000074726976" in transcript
        assert "pcie.id=0x0000000000081b36" in transcript


def test_bus_device_guests_agree_one_after_another_on_long_lived_processes(farm: Farm) -> None:
    if "11.1.2" not in farm.installed():
        pytest.skip("11.1.2 is not installed (scripts/setup installs it from qemu.lock)")
    src, other = farm.get("11.1"), farm.get("11.1.2")
    settings = probed_settings([src, other], farm.cache_dir, reuse=True)
    config = MachineConfig(MACHINE, "cortex-a57", machine_options=(("gic-version", "3"),))
    guests: list[list[Operation]] = [
        *GUESTS.values(), [PCIE, ConfigurePcieHost(word=5)], [SetGpr(1, 2)], [ITS],
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
