"""Devices added with ``-device``: what one is (a plain value), and which ones migfuzz draws.

A :class:`Device` is a driver and its options in command-line order, placed where the guest
knows to find it: a PCI function at ``00:<slot>.0`` on ``virt``'s root bus ``pcie.0``
(``addr=``) or a virtio backend on one of ``virt``'s 32 virtio-mmio transports
(``bus=virtio-mmio-bus.<n>``, the transport at 0x0a000000 + 0x200 * n: ``virt`` names its
transports' buses in creation order, checked with ``info qtree`` on 5.2 to 11.1).

:data:`CATALOGUE` lists the device kinds a case may draw, each with the options it needs
to start without a backend and the first QEMU release that migrates it. A pair draws only
the kinds both versions' probes list (``qom-list-types``) and both migrate. Every kind here
was started and migrated (``migrate exec:``, paused) on Debian's 5.2, 7.2, 10.0, 10.2.2 and
11.1 builds; ``nvme`` is a migration blocker before 11.1 (``State blocked by non-migratable
device``).

Left out: ``e1000e`` (a same-version restore re-saves ``core.rx_desc_buf_size`` as 0x800
where the source saved 0, on 11.1: not yet explained, and a finding on every pair until it
is); ``nvme`` where either side is older than 11.1 (a migration blocker there).

Pure: nothing here starts a process.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from fuzz.core.counts import counts_under
from fuzz.errors import CorpusError

__all__ = [
    "CATALOGUE",
    "DEVICE_COUNT_PREFIX",
    "PCI_SLOTS",
    "VIRTIO_MMIO_BUSES",
    "Device",
    "DeviceKind",
    "device_counts",
    "kinds_offered",
    "pci_drivers",
    "starts_and_migrates",
]

#: The ``virt`` virtio-mmio transports a backend may go on (``NUM_VIRTIO_TRANSPORTS``).
VIRTIO_MMIO_BUSES: Final = 32
#: The device numbers of ``pcie.0`` a drawn PCI device may take: 00:00.0 is the host
#: bridge (``gpex-root``), and a PCI bus has 32 device numbers.
PCI_SLOTS: Final = range(1, 32)

#: How a run's engine counts runs per added device driver: ``device_<driver>`` beside
#: ``devices`` (the runs of configurations with any).
DEVICE_COUNT_PREFIX: Final = "device_"

_MMIO_BUS = re.compile(r"virtio-mmio-bus\.(\d+)")


@dataclass(frozen=True)
class Device:
    """One ``-device DRIVER,NAME=VALUE,...`` option, its options in command-line order."""

    driver: str
    options: tuple[tuple[str, str], ...] = ()

    def argument(self) -> str:
        """The ``-device`` value: ``virtio-rng-pci,addr=0x2``."""
        return ",".join([self.driver, *(f"{k}={v}" for k, v in self.options)])

    def option(self, name: str) -> str | None:
        """The value of option ``name``, or None."""
        return next((v for k, v in self.options if k == name), None)

    @property
    def pci_slot(self) -> int | None:
        """The device number on ``pcie.0`` (from ``addr=``), or None off PCI."""
        addr = self.option("addr")
        return None if addr is None else int(addr, 0)

    @property
    def virtio_mmio_transport(self) -> int | None:
        """The virtio-mmio transport it sits on (from ``bus=virtio-mmio-bus.N``), or None."""
        match = _MMIO_BUS.fullmatch(self.option("bus") or "")
        return None if match is None else int(match.group(1))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"driver": self.driver, "options": [list(p) for p in self.options]}

    @classmethod
    def from_json(cls, data: Any) -> Device:
        """Parse :meth:`to_json` output; :class:`CorpusError` names what is wrong."""
        if not isinstance(data, dict) or not isinstance(data.get("driver"), str):
            raise CorpusError(f"device {data!r}: not an object with a driver")
        options = data.get("options", [])
        if not isinstance(options, list) or not all(
            isinstance(p, list) and len(p) == 2 for p in options
        ):
            raise CorpusError(f"device {data['driver']}: options must be [name, value] pairs")
        return cls(data["driver"], tuple((str(k), str(v)) for k, v in options))


@dataclass(frozen=True)
class DeviceKind:
    """A device migfuzz may add, and how.

    :param driver: the QOM type (``-device`` driver).
    :param bus: ``pci``: a function on ``pcie.0`` at a drawn slot; ``virtio-mmio``: a
        virtio backend on a drawn transport.
    :param options: options it always gets (what it needs to start without a backend or
        a ROM file Debian's packages may lack: ``romfile=`` empty means none).
    :param virtio_legacy: it offers virtio's legacy interface (an I/O BAR0 for a
        transitional virtio-pci device on the root bus, whose ``disable-legacy=auto``
        keeps it; the legacy registers of a virtio-mmio transport), which the guest drives.
    :param migratable_since: the first release whose migration carries it (earlier ones
        block migration with it).
    :param numbered: an option that must be unique per machine (a root port's chassis),
        set to the slot.
    :param one_of: kinds with the same name here may not meet in one machine (QEMU:
        "Only one balloon device is supported"); by default, the driver.
    :param refused_with: ``-machine`` options with which QEMU refuses it.
    """

    driver: str
    bus: Literal["pci", "virtio-mmio"]
    options: tuple[tuple[str, str], ...] = ()
    virtio_legacy: bool = False
    migratable_since: tuple[int, int] = (0, 0)
    numbered: str | None = None
    one_of: str = ""
    refused_with: tuple[tuple[str, str], ...] = ()

    @property
    def exclusive(self) -> str:
        """What at most one device of a machine may be (:attr:`one_of`, else the driver)."""
        return self.one_of or self.driver

    def place(self, where: int) -> Device:
        """The device at slot (PCI) or transport (virtio-mmio) ``where``."""
        if self.bus == "pci":
            placed = (("addr", f"{where:#x}"),)
        else:
            placed = (("bus", f"virtio-mmio-bus.{where}"),)
        numbered = () if self.numbered is None else ((self.numbered, str(where)),)
        return Device(self.driver, (*placed, *self.options, *numbered))


def _virtio_mmio(driver: str, one_of: str = "") -> DeviceKind:
    return DeviceKind(driver, "virtio-mmio", virtio_legacy=True, one_of=one_of)


def _virtio_pci(driver: str, *options: tuple[str, str], one_of: str = "") -> DeviceKind:
    return DeviceKind(driver, "pci", options, virtio_legacy=True, one_of=one_of)


#: Every device kind a case may draw, in shrinking order (simplest first).
CATALOGUE: Final[tuple[DeviceKind, ...]] = (
    _virtio_pci("virtio-rng-pci"),
    _virtio_mmio("virtio-rng-device"),
    DeviceKind("pci-testdev", "pci"),
    _virtio_pci("virtio-balloon-pci", one_of="balloon"),
    _virtio_pci("virtio-serial-pci"),
    _virtio_pci("virtio-keyboard-pci"),
    _virtio_pci("virtio-scsi-pci"),
    _virtio_pci("virtio-net-pci", ("romfile", "")),
    _virtio_mmio("virtio-balloon-device", one_of="balloon"),
    _virtio_mmio("virtio-serial-device"),
    _virtio_mmio("virtio-keyboard-device"),
    _virtio_mmio("virtio-tablet-device"),
    _virtio_mmio("virtio-net-device"),
    DeviceKind("i6300esb", "pci"),
    DeviceKind("qemu-xhci", "pci"),
    DeviceKind("usb-ehci", "pci"),
    DeviceKind("ich9-ahci", "pci"),
    DeviceKind("pcie-root-port", "pci", numbered="chassis"),
    DeviceKind("pci-bridge", "pci", numbered="chassis_nr"),
    # "virt machine does not support multiple IOMMUs" (10.0, 11.1)
    DeviceKind("virtio-iommu-pci", "pci", refused_with=(("iommu", "smmuv3"),)),
    DeviceKind("nvme", "pci", (("serial", "migfuzz"),), migratable_since=(11, 1)),
)


def kinds_offered(
    releases: tuple[tuple[int, int, int], ...], type_lists: tuple[tuple[str, ...] | None, ...]
) -> tuple[DeviceKind, ...]:
    """The catalogue's kinds every version has (its probe's device types) and migrates
    (its release), in catalogue order; none where a probe did not list its types."""
    return tuple(
        kind
        for kind in CATALOGUE
        if all(_runs(kind.driver, r, t) for r, t in zip(releases, type_lists, strict=True))
    )


def _runs(driver: str, release: tuple[int, int, int], types: tuple[str, ...] | None) -> bool:
    """Whether a version (its release, its probe's device types; None: not probed) has
    ``driver`` and, for a kind of :data:`CATALOGUE`, migrates it."""
    since = next((k.migratable_since for k in CATALOGUE if k.driver == driver), (0, 0))
    return types is not None and driver in types and release[:2] >= since


def device_counts(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """The runs per added device driver among an engine's counts, most first:
    ``[("virtio-rng-pci", 12), ...]`` (ties by name)."""
    return counts_under(dict(sorted(counts.items())), DEVICE_COUNT_PREFIX)


def starts_and_migrates(
    release: tuple[int, int, int], device_types: tuple[str, ...] | None, devices: Sequence[Device]
) -> bool:
    """Whether a version (its release, its probe's device types) has every one of
    ``devices`` and migrates those of :data:`CATALOGUE` (a fan-out's destination must: a
    case drawn for another pair may carry a device it lacks)."""
    return all(_runs(d.driver, release, device_types) for d in devices)


def pci_drivers(devices: Sequence[Device]) -> tuple[tuple[int, str], ...]:
    """(slot, driver) of each added PCI device, for signing its read-back by driver."""
    return tuple((d.pci_slot, d.driver) for d in devices if d.pci_slot is not None)
