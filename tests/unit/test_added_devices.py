"""Devices added with ``-device``: the value, its JSON and command line, what a pair may
draw, and the guest operations that drive them.

Pure logic; on real QEMU: tests/qemu/test_added_devices.py.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.core import command
from fuzz.core.case import Case, MachineConfig
from fuzz.core.devices import CATALOGUE, PCI_SLOTS, Device, kinds_offered
from fuzz.errors import CorpusError, InvalidInput
from strategies.configs import MAX_DEVICES, configurations
from strategies.guests import (
    ConfigurePciDevice,
    ConfigureVirtioMmio,
    ConfigureVirtioPci,
    DeviceTargets,
    EnableMmu,
    check_operations,
    guest_operations,
    operations_from_json,
    operations_to_json,
)
from strategies.image import build_guest, readback_items
from tests.unit.test_configs import NEW, OLD

QUIET = settings(database=None, suppress_health_check=[HealthCheck.too_slow], max_examples=60)
ALL_TYPES = tuple(kind.driver for kind in CATALOGUE)
RNG = Device("virtio-rng-pci", (("addr", "0x2"),))
MMIO = Device("virtio-rng-device", (("bus", "virtio-mmio-bus.7"),))


def test_a_device_round_trips_through_json_and_names_its_place() -> None:
    for device in (RNG, MMIO, Device("virtio-net-pci", (("addr", "0x1f"), ("romfile", "")))):
        assert Device.from_json(device.to_json()) == device
    assert RNG.argument() == "virtio-rng-pci,addr=0x2"
    assert (RNG.pci_slot, RNG.virtio_mmio_transport) == (2, None)
    assert (MMIO.pci_slot, MMIO.virtio_mmio_transport) == (None, 7)
    for bad in ({"options": []}, {"driver": "x", "options": [["a"]]}, ["x"]):
        with pytest.raises(CorpusError):
            Device.from_json(bad)


def test_a_configuration_without_devices_keeps_its_json_and_case_key() -> None:
    plain = MachineConfig("virt-10.0", "cortex-a57")
    assert "devices" not in plain.to_json()
    with_devices = dataclasses.replace(plain, devices=(RNG, MMIO))
    assert MachineConfig.from_json(with_devices.to_json()) == with_devices
    assert Case(plain).key() != Case(with_devices).key()
    assert with_devices.describe().endswith(
        "+virtio-rng-pci,addr=0x2 +virtio-rng-device,bus=virtio-mmio-bus.7"
    )
    with pytest.raises(CorpusError):
        MachineConfig.from_json({**plain.to_json(), "devices": {"driver": "x"}})


def test_every_process_of_a_case_adds_the_devices_in_order() -> None:
    config = MachineConfig("virt-10.0", "cortex-a57", devices=(RNG, MMIO))
    case = Case(config)
    for cmd in (command.source(case, None), command.destination(case), command.base(config)):
        argv = cmd.argv()
        at = [i for i, word in enumerate(argv) if word == "-device"]
        assert [argv[i + 1] for i in at[:2]] == [RNG.argument(), MMIO.argument()]
    assert "-device virtio-rng-pci,addr=0x2 -device" in command.base(config).shell()


def test_a_pair_is_offered_the_kinds_both_have_and_both_migrate() -> None:
    kinds = kinds_offered(((10, 0, 13), (11, 1, 3)), (ALL_TYPES, ALL_TYPES))
    assert "nvme" not in {k.driver for k in kinds}  # a migration blocker before 11.1
    newest = kinds_offered(((11, 1, 2), (11, 1, 3)), (ALL_TYPES, ALL_TYPES))
    assert {k.driver for k in newest} == set(ALL_TYPES)
    fewer = kinds_offered(((11, 1, 2), (11, 1, 3)), (ALL_TYPES, ("virtio-rng-pci",)))
    assert [k.driver for k in fewer] == ["virtio-rng-pci"]
    assert kinds_offered(((11, 1, 2), (11, 1, 3)), (ALL_TYPES, None)) == ()


def test_placing_a_kind_fills_in_its_place_and_numbered_option() -> None:
    port = next(k for k in CATALOGUE if k.driver == "pcie-root-port")
    assert port.place(9).argument() == "pcie-root-port,addr=0x9,chassis=9"
    mmio = next(k for k in CATALOGUE if k.bus == "virtio-mmio")
    assert mmio.place(3).virtio_mmio_transport == 3


_DEVICE_OLD = dataclasses.replace(OLD, device_types=ALL_TYPES)
_DEVICE_NEW = dataclasses.replace(NEW, device_types=ALL_TYPES[:5])


@QUIET
@given(configurations(_DEVICE_OLD, _DEVICE_NEW))
def test_drawn_devices_are_offered_by_both_at_places_of_their_own(config: MachineConfig) -> None:
    assert len(config.devices) <= MAX_DEVICES
    assert {d.driver for d in config.devices} <= set(ALL_TYPES[:5])
    places = [(d.pci_slot, d.virtio_mmio_transport) for d in config.devices]
    assert len(set(places)) == len(places)
    exclusive = [
        next(k.exclusive for k in CATALOGUE if k.driver == d.driver) for d in config.devices
    ]
    assert len(set(exclusive)) == len(exclusive)
    assert all(d.pci_slot in PCI_SLOTS for d in config.devices if d.pci_slot is not None)


@QUIET
@given(configurations(OLD, NEW))
def test_a_probe_that_lists_no_device_types_draws_no_devices(config: MachineConfig) -> None:
    assert config.devices == ()


def test_device_targets_split_pci_virtio_and_mmio() -> None:
    scsi = Device("virtio-scsi-pci", (("addr", "0x4"),))
    dog = Device("i6300esb", (("addr", "0x9"),))
    targets = DeviceTargets.of((RNG, MMIO, scsi, dog))
    assert targets == DeviceTargets((2, 4, 9), (2, 4), (7,))


@QUIET
@given(guest_operations(max_ops=6, targets=DeviceTargets((2, 4), (4,), (7,))))
def test_device_operations_target_the_added_devices(ops: list[object]) -> None:
    for op in ops:
        if isinstance(op, ConfigurePciDevice):
            assert op.slot in (2, 4)
        if isinstance(op, ConfigureVirtioPci):
            assert op.slot == 4


def test_no_device_operation_is_drawn_without_devices() -> None:
    @QUIET
    @given(st.lists(guest_operations(max_ops=8), max_size=4))
    def draw(lists: list[list[object]]) -> None:
        for ops in lists:
            assert not any(isinstance(op, ConfigurePciDevice | ConfigureVirtioPci) for op in ops)
            assert not any(isinstance(op, ConfigureVirtioMmio) and op.ring for op in ops)

    draw()


def test_device_operations_round_trip_and_read_back_per_slot() -> None:
    ops = [
        ConfigurePciDevice(4, 0x0106, 2, 0x1234_0000, 0x10, 0x20, 0x2A),
        ConfigureVirtioPci(2, 0x0F, 0x20, 1, ring=True),
        ConfigureVirtioMmio(7, 0x07, 1, 0, 0, 8, 12, ring=True),
        ConfigurePciDevice(2),
    ]
    assert operations_from_json(operations_to_json(ops)) == ops
    assert "ring" not in ConfigureVirtioMmio().to_json()  # committed entries keep their JSON
    items = readback_items(ops)
    assert [i for i in items if i.startswith("pci2.")][:2] == ["pci2.id", "pci2.command"]
    assert "pci4.bar5" in items and "pci4.interrupt" in items
    assert [i for i in items if i.startswith("virtio_pci")] == [
        "virtio_pci2.host_features", "virtio_pci2.guest_features", "virtio_pci2.queue_pfn",
        "virtio_pci2.queue_num", "virtio_pci2.status",
    ]  # fmt: skip
    assert build_guest(ops).image != build_guest(ops[:-1]).image


def test_device_operations_refuse_the_host_bridge_slot_and_the_mmu() -> None:
    with pytest.raises(InvalidInput):
        ConfigurePciDevice(0)
    with pytest.raises(InvalidInput):
        ConfigureVirtioPci(32)
    with pytest.raises(InvalidInput):
        check_operations([EnableMmu(), ConfigureVirtioPci(2)])
    with pytest.raises(InvalidInput):
        check_operations([ConfigurePciDevice(2), EnableMmu()])


def test_an_added_devices_read_back_is_one_cause_named_by_its_driver() -> None:
    from fuzz.judge.transcript import TranscriptDifference, readback_causes

    def differs(name: str) -> TranscriptDifference:
        return TranscriptDifference(name, "0x1", "0x0")

    diffs = [differs(n) for n in ("pci2.command", "pci2.bar0", "virtio_pci2.status", "pci7.id")]
    diffs.append(differs("pcie.command"))  # the host bridge: its own item
    named = readback_causes(diffs, {2: "pci-testdev", 7: "i6300esb"})
    assert named == ("i6300esb config", "pci-testdev config", "pci-testdev virtio", "pcie.command")
    assert readback_causes(diffs[:2]) == ("pci2 config",)


def test_a_device_the_machine_options_refuse_is_not_drawn() -> None:
    """virt refuses virtio-iommu-pci beside iommu=smmuv3 ("does not support multiple
    IOMMUs")."""
    from hypothesis import find

    iommu = next(k for k in CATALOGUE if k.driver == "virtio-iommu-pci")
    assert ("iommu", "smmuv3") in iommu.refused_with
    both = dataclasses.replace(NEW, device_types=("virtio-iommu-pci",))

    @QUIET
    @given(configurations(both, both))
    def never(config: MachineConfig) -> None:
        if ("iommu", "smmuv3") in config.machine_options:
            assert not config.devices

    never()
    find(configurations(both, both), lambda c: bool(c.devices), settings=QUIET)


def test_a_pci_devices_interrupt_status_is_not_compared_its_configuration_is() -> None:
    # 10.0 A -> A: a virtio-net that negotiated GUEST_ANNOUNCE raises a config interrupt
    # after the restore (QEMU announces a migrated NIC): Status bit 3 is its INTx line.
    from fuzz.judge.transcript import compare_transcripts

    before = {"pci2.command": "0x0000000000100005", "pci2.bar0": "0x0000000000001001"}
    announced = {**before, "pci2.command": "0x0000000000180005"}
    assert compare_transcripts(before, announced) == []
    reset = {**before, "pci2.command": "0x0000000000100000"}  # I/O and bus mastering lost
    [difference] = compare_transcripts(before, reset)
    assert difference.name == "pci2.command"
    moved = {**announced, "pci2.bar0": "0x0000000000000001"}
    assert [d.name for d in compare_transcripts(before, moved)] == ["pci2.bar0"]
