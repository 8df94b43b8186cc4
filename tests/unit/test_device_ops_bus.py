"""Bus-device operations (virtio-mmio, the GICv2m, the GICv3 ITS, PCIe), without QEMU.

Their JSON form round-trips; their code assembles with GNU as to exactly the image, alone
and in drawn guests; they reach the board's addresses; their read-back names what they
program; the values they fix are what QEMU's models say; the strategies draw them, shrink
them away, and never pair a PCIe operation with the MMU.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from fuzz.errors import CorpusError, InvalidInput
from strategies.guests import (
    ConfigurePcieHost,
    ConfigureVirtioMmio,
    DropToEl,
    EnableMmu,
    MapItsEvent,
    Operation,
    RaiseV2mMsi,
    SetGpr,
    check_operations,
    guest_operations,
    its_events,
    operations,
    operations_from_json,
    operations_to_json,
    pcie_settings,
    v2m_msis,
    virtio_mmio_settings,
)
from strategies.image import (
    GICV2M_BASE,
    GITS_BASE,
    VIRTIO_MMIO_BASE,
    VIRTIO_MMIO_STRIDE,
    build_guest,
    expected_values,
    msi_values,
    readback_items,
)
from tests.gnu_as import gnu_as

VIRTIO = ConfigureVirtioMmio(
    transport=31, status=0x0B, features=0xDEAD_BEEF, features_sel=1, queue=2, queue_num=256,
    page_shift=16,
)  # fmt: skip
V2M = RaiseV2mMsi(spi=5)
ITS = MapItsEvent(device=7, event=3, lpi=100, collection=9)
PCIE = ConfigurePcieHost(
    command=0xFFFF, cache_line=0x10, latency=0x20, interrupt_line=0x33, word=5, value=0x1234_5678
)
BUS_OPS = (ConfigureVirtioMmio, RaiseV2mMsi, MapItsEvent, ConfigurePcieHost)
VIRTIO_ITEMS = ["magic", "version", "device_id", "vendor_id", "device_features",
                "queue_num_max", "queue_pfn", "interrupt_status", "status",
                "config_generation"]  # fmt: skip
ITS_ITEMS = ["ctlr", "cbaser", "cwriter", "creadr", "baser0", "baser1", "dte", "cte", "ite",
             "ite_doorbell"]  # fmt: skip
PCIE_ITEMS = ["id", "command", "class", "cache_line", "bar0", "interrupt", "scratch", "absent_fn"]


def _has_bus_op(ops: list[Operation]) -> bool:
    return any(isinstance(op, BUS_OPS) for op in ops)


def _bus_ops() -> st.SearchStrategy[Operation]:
    return st.one_of(virtio_mmio_settings(), v2m_msis(), its_events(), pcie_settings())


# -- the operations and their JSON -------------------------------------------------------


def test_the_bus_ops_have_their_json_form_and_round_trip() -> None:
    assert VIRTIO.to_json() == {
        "op": "virtio_mmio", "transport": 31, "status": "0x0b", "features": "0xdeadbeef",
        "features_sel": 1, "queue": 2, "queue_num": 256, "page_shift": 16,
    }  # fmt: skip
    assert V2M.to_json() == {"op": "gicv2m", "spi": 5}
    assert ITS.to_json() == {"op": "its", "device": 7, "event": 3, "lpi": 100, "collection": 9}
    assert PCIE.to_json() == {
        "op": "pcie", "command": "0xffff", "cache_line": "0x10", "latency": "0x20",
        "interrupt_line": "0x33", "word": 5, "value": "0x12345678",
    }  # fmt: skip
    ops: list[Operation] = [VIRTIO, V2M, ITS, PCIE, ConfigureVirtioMmio(), MapItsEvent()]
    assert operations_from_json(json.loads(json.dumps(operations_to_json(ops)))) == ops


@given(st.lists(_bus_ops(), max_size=4))
def test_drawn_bus_ops_round_trip_through_json(ops: list[Operation]) -> None:
    assert operations_from_json(json.loads(json.dumps(operations_to_json(ops)))) == ops


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ConfigureVirtioMmio(transport=32), r"transport=32 not an integer in 0x0..0x1f"),
        (lambda: ConfigureVirtioMmio(page_shift=11), r"page_shift=11 not an integer"),
        (lambda: ConfigureVirtioMmio(features=1 << 32), r"features=4294967296"),
        (lambda: ConfigureVirtioMmio(features_sel=2), r"features_sel=2"),
        (lambda: RaiseV2mMsi(spi=64), r"spi=64 not an integer in 0x0..0x3f"),
        (lambda: MapItsEvent(device=512), r"device=512 not an integer in 0x0..0x1ff"),
        (lambda: MapItsEvent(event=32), r"event=32"),
        (lambda: MapItsEvent(lpi=8192), r"lpi=8192"),
        (lambda: MapItsEvent(collection=-1), r"collection=-1"),
        (lambda: ConfigurePcieHost(command=0x10000), r"command=65536"),
        (lambda: ConfigurePcieHost(word=48), r"word=48 not an integer in 0x0..0x2f"),
        (lambda: ConfigurePcieHost(latency=True), r"latency=True not an integer"),
    ],
)  # fmt: skip
def test_constructors_refuse_what_the_devices_do_not_have(make: object, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    "bad",
    [
        {"op": "virtio_mmio", "transport": 40, "status": 0, "features": 0, "features_sel": 0,
         "queue": 0, "queue_num": 0, "page_shift": 12},
        {"op": "gicv2m"},
        {"op": "its", "device": 1, "event": 1, "lpi": 1},
        {"op": "pcie", "command": "0x1", "cache_line": 0, "latency": 0, "interrupt_line": 0,
         "word": 0, "value": True},
    ],
)  # fmt: skip
def test_malformed_bus_ops_are_a_corpus_error(bad: object) -> None:
    with pytest.raises(CorpusError, match=r"^guest operation 0: "):
        operations_from_json([bad])


def test_a_pcie_operation_never_meets_the_mmu() -> None:
    for ops in ([EnableMmu(), PCIE], [PCIE, EnableMmu()]):
        with pytest.raises(InvalidInput, match=r"guest operation 1: .*(PCIe|EnableMmu)"):
            check_operations(ops)
    with pytest.raises(CorpusError, match="high ECAM"):
        operations_from_json(operations_to_json([PCIE, SetGpr(0, 1), EnableMmu()]))
    check_operations([DropToEl(1), PCIE, VIRTIO, V2M, ITS])  # the others compose freely
    check_operations([EnableMmu(), VIRTIO, V2M, ITS])


# -- the image ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ops",
    [[VIRTIO], [V2M, RaiseV2mMsi(20), RaiseV2mMsi(6)], [ITS], [PCIE],
     [DropToEl(1), VIRTIO, V2M, ITS, PCIE, ITS], [EnableMmu(), ITS, V2M, VIRTIO]],
    ids=["virtio", "v2m", "its", "pcie", "all", "mmu"],
)  # fmt: skip
def test_bus_ops_assemble_with_gnu_as_to_their_image(ops: list[Operation]) -> None:
    guest = build_guest(ops)
    assert gnu_as(guest.source()) == guest.image


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(guest_operations().filter(_has_bus_op))
def test_drawn_guests_with_bus_ops_assemble_with_gnu_as(ops: list[Operation]) -> None:
    guest = build_guest(ops)
    assert gnu_as(guest.source()) == guest.image


def test_the_devices_are_reached_at_the_boards_addresses() -> None:
    # hw/arm/virt.c base_memmap: [VIRT_MMIO] = { 0x0a000000, 0x00000200 } (32 of them),
    # [VIRT_GIC_V2M] = { 0x08020000, ... }, [VIRT_GIC_ITS] = { 0x08080000, ... }.
    assert (VIRTIO_MMIO_BASE, VIRTIO_MMIO_STRIDE) == (0x0A00_0000, 0x200)
    assert (GICV2M_BASE, GITS_BASE) == (0x0802_0000, 0x0808_0000)
    listing = build_guest([VIRTIO, V2M, ITS]).source()
    assert "#0x3e00, lsl #0" in listing  # transport 31: 0x0a003e00
    assert "#0x802, lsl #16" in listing and "#0x808, lsl #16" in listing
    plain = build_guest([SetGpr(0, 1)]).source()
    assert "#0xa00, lsl #16" not in plain and "#0x808, lsl #16" not in plain
    # The ECAM is looked up in the device tree, by a routine only PCIe guests carry.
    assert "L_ecam_base" in build_guest([PCIE]).source()
    assert "ecam_base" not in build_guest([VIRTIO, V2M, ITS]).source()
    # The ITS is looked for there too (its=off leaves GICD_TYPER.LPIS set on virt-6.2+).
    assert "L_its_base" in build_guest([ITS]).source()
    assert "its_base" not in build_guest([VIRTIO, V2M, PCIE]).source()


def test_the_read_back_names_what_each_bus_op_programs() -> None:
    names = readback_items([PCIE, SetGpr(1, 2), ITS, V2M, VIRTIO])
    assert names == [
        "el",
        *(f"virtio_mmio.{n}" for n in VIRTIO_ITEMS),
        "gicv2m.typer", "gicv2m.icfgr", "gicv2m.ispendr",
        *(f"its.{n}" for n in ITS_ITEMS),
        *(f"pcie.{n}" for n in PCIE_ITEMS),
        "x1", "nzcv", "daif",
    ]  # fmt: skip


def test_expected_values_follow_qemus_models() -> None:
    values = expected_values([VIRTIO, PCIE, V2M, ITS])
    # An empty transport: 'virt', legacy version 1, 'QEMU', and zeros (writes ignored).
    assert {k: int(v, 16) for k, v in values.items() if k.startswith("virtio")} == {
        **{f"virtio_mmio.{n}": 0 for n in VIRTIO_ITEMS},
        "virtio_mmio.magic": 0x7472_6976, "virtio_mmio.version": 1,
        "virtio_mmio.vendor_id": 0x554D_4551,
    }  # fmt: skip
    # gpex-root: Red Hat 1b36:0008, a host bridge; Command keeps only I/O, memory, master,
    # SERR# and INTx disable; no latency timer, no BAR; 00:01.0 is absent.
    assert {k: int(v, 16) for k, v in values.items() if k.startswith("pcie")} == {
        "pcie.id": 0x0008_1B36, "pcie.command": 0x0507, "pcie.class": 0x0600_0000,
        "pcie.cache_line": 0x10, "pcie.bar0": 0, "pcie.interrupt": 0x33,
        "pcie.scratch": 0x1234_5678, "pcie.absent_fn": 0xFFFF_FFFF,
    }  # fmt: skip
    # The MSI controllers depend on the GIC: not in expected_values, in msi_values.
    assert not any(k.startswith(("gicv2m", "its")) for k in values)


def test_msi_values_follow_the_machines_controller() -> None:
    ops: list[Operation] = [RaiseV2mMsi(20), V2M, RaiseV2mMsi(6), ITS]  # INTIDs 100, 85, 86
    v2m = {k: int(v, 16) for k, v in msi_values(ops, controller="gicv2m").items()}
    assert {k: v for k, v in v2m.items() if k.startswith("gicv2m")} == {
        "gicv2m.typer": 80 << 16 | 64,  # SPIs from INTID 80, 64 of them
        "gicv2m.icfgr": 2 << 2 * 5 | 2 << 2 * 6,  # INTIDs 85, 86 edge-triggered (word 5)
        "gicv2m.ispendr": 1 << 21 | 1 << 22,  # and pending (word 2); 100 is in word 3
    }
    assert all(v == 0 for k, v in v2m.items() if k.startswith("its."))
    nonsecure = {k: int(v, 16) for k, v in msi_values(ops, controller="gicv2m-nonsecure").items()}
    assert {k: v for k, v in nonsecure.items() if k.startswith("gicv2m")} == {
        "gicv2m.typer": 80 << 16 | 64, "gicv2m.icfgr": 0, "gicv2m.ispendr": 0,
    }  # fmt: skip
    its = msi_values(ops, controller="its")
    assert all(int(v, 16) == 0 for v in its.values()) and "its.ctlr" not in its
    none = msi_values(ops, controller="none")
    assert all(int(v, 16) == 0 for v in none.values()) and len(none) == 3 + len(ITS_ITEMS)
    with pytest.raises(InvalidInput, match="controller='v3'"):
        msi_values(ops, controller="v3")


def test_each_v2m_msi_keeps_the_edges_of_the_earlier_ones() -> None:
    listing = build_guest([RaiseV2mMsi(5), RaiseV2mMsi(6)]).source()
    # GICD_ICFGR5 (0x08000c14) takes INTID 85's edge bit, then 85's and 86's.
    assert "#0x800, lsl #0" in listing and "#0x2800, lsl #0" in listing


# -- the strategies ----------------------------------------------------------------------


def test_the_strategy_draws_every_bus_op_in_its_simplest_form() -> None:
    for cls in BUS_OPS:
        found = find(operations(), lambda op, c=cls: isinstance(op, c))  # type: ignore[misc]
        assert found == cls()


def test_guests_shrink_to_no_bus_operation() -> None:
    needs_two = find(guest_operations(), lambda ops: len(ops) >= 2)
    assert not _has_bus_op(needs_two)


@given(guest_operations(devices=False))
def test_without_devices_no_bus_op_is_drawn(ops: list[Operation]) -> None:
    assert not _has_bus_op(ops)


@settings(max_examples=50)
@given(guest_operations())
def test_drawn_lists_never_pair_pcie_with_the_mmu(ops: list[Operation]) -> None:
    kinds = {type(op) for op in ops}
    assert not {ConfigurePcieHost, EnableMmu} <= kinds
