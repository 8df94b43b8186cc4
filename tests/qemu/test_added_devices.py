"""Devices added with ``-device`` on real QEMU: they start, the guest drives them, the state
it set reads back after a restore.

A configuration with transitional virtio-pci devices, a virtio backend on a virtio-mmio
transport, the ``i6300esb`` watchdog and a PCIe root port starts on 5.2, 10.0 and 11.1; the guest
enumerates the PCI devices (BARs, command, interrupt line through ECAM), sets up virtio
(status, features, a queue with its ring) over the legacy I/O BAR and the transport, and
reads it all back before its checkpoint as written (the device's writable bits) and the
same after an A -> A restore. On the clean pair 11.1.2 <-> 11.1 such cases judge as agree
both ways, on fresh and on long-lived processes; and every catalogue kind the probes offer
starts and migrates on the newest version.
"""

from __future__ import annotations

import pytest

from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case, MachineConfig
from fuzz.core.devices import CATALOGUE, Device, DeviceKind, kinds_offered
from fuzz.core.outcome import Verdict
from fuzz.core.settings import RunSettings
from fuzz.judge.oracles import Agree
from fuzz.judge.transcript import EXCEPTION_ITEM, parse_transcript, pre_save_readback
from fuzz.run.session import Session
from fuzz.versions.farm import Farm
from fuzz.versions.probe import capabilities, probed_settings
from strategies.guests import (
    ConfigurePciDevice,
    ConfigureVirtioMmio,
    ConfigureVirtioPci,
    Operation,
    SetGpr,
)
from strategies.image import build_guest, readback_items, virtio_pci_io, virtio_ring
from tests.qemu.conftest import same_version_transfers

pytestmark = pytest.mark.qemu

MACHINE = "virt-5.2"  # every installed version has it
DEVICES = (
    Device("virtio-rng-pci", (("addr", "0x2"),)),
    Device("virtio-net-pci", (("addr", "0x3"), ("romfile", ""))),
    Device("i6300esb", (("addr", "0x4"),)),
    Device("virtio-rng-device", (("bus", "virtio-mmio-bus.5"),)),
    Device("pcie-root-port", (("addr", "0x6"), ("chassis", "6"))),
)
#: Not bit 30 (VIRTIO_F_BAD_FEATURE: QEMU then takes the device's "bad" features, none).
#: The watchdog's BAR0 (16 bytes of memory) at 0x10040000; the root port's bus numbers
#: (primary 0, secondary 1, subordinate 1) at its BAR2 offset 0x18.
OPS: list[Operation] = [
    ConfigureVirtioPci(2, status=0x07, features=0xBFFF_FFFF, queue=0, ring=True),
    ConfigureVirtioPci(3, status=0x0F, features=0x0000_0020, queue=1, ring=True),
    ConfigurePciDevice(4, command=0x0106, bar=0, bar_value=0x1004_0000, cache_line=0x10,
                       latency=0x20, interrupt_line=0x2A),
    ConfigureVirtioMmio(5, status=0x07, features=0x1, queue=0, queue_num=8, ring=True),
    ConfigurePciDevice(6, command=0x0004, bar=2, bar_value=0x0001_0100),
    SetGpr(5, 9),
]  # fmt: skip


def _number(items: dict[str, str], name: str) -> int:
    return int(items[name], 16)


def _as_set(items: dict[str, str]) -> None:
    """What the guest set reads back: the writable bits of each device's registers."""
    for slot, features in ((2, 0xBFFF_FFFF), (3, 0x20)):
        status = {2: 0x07, 3: 0x0F}[slot]
        assert _number(items, f"virtio_pci{slot}.status") == status, slot
        host = _number(items, f"virtio_pci{slot}.host_features")
        assert host != 0, slot
        assert _number(items, f"virtio_pci{slot}.guest_features") == features & host, slot
        assert _number(items, f"virtio_pci{slot}.queue_pfn") == virtio_ring(slot) >> 12, slot
        assert _number(items, f"virtio_pci{slot}.queue_num") > 0, slot
        assert _number(items, f"pci{slot}.bar0") == virtio_pci_io(slot) | 1, slot
        assert _number(items, f"pci{slot}.command") & 0x7 == 0x5, slot
    assert _number(items, "pci4.id") == 0x25AB_8086  # Intel's 6300ESB watchdog
    assert _number(items, "pci4.bar0") == 0x1004_0000
    assert _number(items, "pci4.command") & 0x7 == 0x6
    assert _number(items, "pci4.interrupt") & 0xFF == 0x2A
    assert _number(items, "pci4.header") & 0xFF == 0x10  # latency: read-only 0 on PCIe
    assert _number(items, "pci6.bar2") & 0xFF_FFFF == 0x01_0100  # the port's bus numbers
    assert _number(items, "virtio_mmio.device_id") == 4  # entropy source
    assert _number(items, "virtio_mmio.status") == 0x07
    assert _number(items, "virtio_mmio.queue_pfn") == virtio_ring(32 + 5) >> 12


@pytest.mark.parametrize("version", ["5.2", "10.0", "11.1"])
def test_added_devices_start_and_read_back_what_the_guest_set_after_a_same_version_restore(
    binaries: dict[str, QemuBinary], version: str
) -> None:
    cases = [
        Case(MachineConfig(MACHINE, "cortex-a57", devices=DEVICES), build_guest(OPS)),
        Case(MachineConfig(MACHINE, "cortex-a57", devices=DEVICES[::-1]), build_guest(OPS)),
    ]
    for case, result in zip(cases, same_version_transfers(binaries[version], cases), strict=True):
        assert case.guest is not None
        assert result.verdict is Verdict.COMPLETED, result.summary()
        before = parse_transcript(
            pre_save_readback(result.save.details["console"], case.guest.checkpoint)
        )
        assert EXCEPTION_ITEM not in before, before[EXCEPTION_ITEM]
        assert list(before) == readback_items(OPS)
        _as_set(before)
        assert result.load is not None
        assert parse_transcript(result.load.details["transcript"]) == before


@pytest.mark.parametrize(("src", "dst"), [("11.1.2", "11.1"), ("11.1", "11.1.2")])
def test_added_device_cases_agree_on_the_clean_pair(farm: Farm, src: str, dst: str) -> None:
    if "11.1.2" not in farm.installed():
        pytest.skip("11.1.2 is not installed (scripts/setup installs it from qemu.lock)")
    source, destination = farm.get(src), farm.get(dst)
    settings = probed_settings([source, destination], farm.cache_dir, reuse=True)
    config = MachineConfig(MACHINE, "cortex-a57", devices=DEVICES)
    guests: list[list[Operation]] = [OPS, OPS[:2], [SetGpr(1, 2)], OPS[2:]]
    with Session(settings) as session:
        runs = [
            session.run_cases(
                source,
                [destination],
                Case(config, build_guest(ops)),
                more_alike=i + 1 < len(guests),
            )
            for i, ops in enumerate(guests)
        ]
    for pair_runs in runs:
        assert all(isinstance(r.judgement, Agree) for r in pair_runs), [
            r.judgement for r in pair_runs
        ]


def test_every_offered_kind_starts_and_migrates_on_the_newest_version(farm: Farm) -> None:
    """Each kind the catalogue offers 11.1 with 10.0 (a pair's draw) at a slot and a
    transport of its own, in two machines (kinds of which one is allowed apart), saved
    paused and restored on 11.1."""
    newest, older = farm.get("11.1"), farm.get("10.0")
    caps = [capabilities(b, farm.cache_dir) for b in (newest, older)]
    kinds = kinds_offered(tuple(c.release() for c in caps), tuple(c.device_types for c in caps))
    assert {k.driver for k in kinds} >= {k.driver for k in CATALOGUE if k.driver != "nvme"}
    machines: list[list[DeviceKind]] = [[], []]  # a second one for a kind already there
    for kind in kinds:
        first = all(k.exclusive != kind.exclusive for k in machines[0])
        machines[0 if first else 1].append(kind)
    cases = [
        Case(MachineConfig(MACHINE, "cortex-a57", devices=tuple(
            kind.place(slot) for slot, kind in enumerate(machine, start=1)
        )))
        for machine in machines
    ]  # fmt: skip
    with Session(RunSettings(reuse=False)) as session:
        runs = [session.run_case(newest, newest, case) for case in cases]
    for run in runs:
        assert isinstance(run.judgement, Agree), run.judgement


#: QEMU crashes on loading its own state that a drawn configuration may meet (found by
#: this test: scripts/qemu-bugs/xhci-msix-load-aborts).
KNOWN_LOAD_CRASHES = ("msix_vector_unuse: Assertion",)


def test_drawn_device_configurations_start_on_both_versions_and_read_back_their_state(
    farm: Farm,
) -> None:
    """Configurations as a 10.0 -> 11.1 campaign draws them (the probes' device types),
    kept where they add devices, each with a guest that drives them: each starts on both
    versions and an A -> A restore on each reads back the added devices' items as the
    guest read them before its checkpoint."""
    from hypothesis import HealthCheck, find, given, seed, settings

    from strategies.configs import configurations
    from strategies.guests import DeviceTargets, guest_operations

    versions = [farm.get("10.0"), farm.get("11.1")]
    caps = [capabilities(b, farm.cache_dir) for b in versions]
    configs: list[MachineConfig] = []

    @seed(26)  # one configuration in DEVICES_ONE_IN adds devices
    @settings(max_examples=100, database=None, suppress_health_check=list(HealthCheck))
    @given(configurations(caps[0], caps[1]))
    def draw(config: MachineConfig) -> None:
        lossy = any(d.driver == "pci-testdev" for d in config.devices)  # no vmstate
        if config.devices and not lossy and ("aarch64", "off") not in config.cpu_properties:
            configs.append(config)

    draw()
    assert len(configs) >= 3, "the strategy drew too few device configurations to test"
    drives = {"pci_device", "virtio_pci", "virtio_mmio"}
    cases = []
    for config in configs[:4]:
        ops = find(
            guest_operations(max_ops=4, targets=DeviceTargets.of(config.devices)),
            lambda ops: any(op.kind in drives for op in ops),
            settings=settings(database=None, max_examples=500),
        )
        cases.append(Case(config, build_guest(ops, smp=config.smp)))
    read_back = 0
    for binary in versions:
        for case, result in zip(cases, same_version_transfers(binary, cases), strict=True):
            where = (binary.name, case.config.describe())
            assert case.guest is not None
            if result.load is not None and any(
                bug in m for m in result.load.messages for bug in KNOWN_LOAD_CRASHES
            ):
                continue  # a QEMU bug this test has met before (docs/qemu-bugs.md)
            assert result.verdict is Verdict.COMPLETED, (where, result.summary())
            read_back += 1
            console = result.save.details["console"]
            before = parse_transcript(pre_save_readback(console, case.guest.checkpoint))
            assert EXCEPTION_ITEM not in before, where
            assert result.load is not None
            after = parse_transcript(result.load.details["transcript"])
            devices = [k for k in before if k.startswith(("pci", "virtio_pci", "virtio_mmio."))]
            assert devices, where
            assert {k: after.get(k) for k in devices} == {k: before[k] for k in devices}, where
    assert read_back >= 6, read_back
