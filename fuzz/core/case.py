"""The data of one case: a machine configuration and, optionally, a guest program.

A case is a pure value. Together with the two QEMU versions it fully determines what the
runner does, so a case can be run in any process or on any machine, and stored as JSON in a
reproducer. Nothing here starts a process or reads a file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fuzz.core.devices import Device
from fuzz.core.live import LiveMigration
from fuzz.errors import CorpusError, UsageError

#: An ordered pair of version names: the source that saves, the destination that restores.
Pair = tuple[str, str]

#: The guest's RAM base on the ``virt`` machine (where ``-m`` memory starts).
VIRT_RAM_BASE = 0x4000_0000
#: Where a guest image goes: without a kernel QEMU puts a 1 MiB device tree at the start
#: of RAM and refuses an image that overlaps it ("Some ROM regions are overlapping").
GUEST_BASE = VIRT_RAM_BASE + 0x10_0000


def _pairs(value: Any, what: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list | tuple):
        raise CorpusError(f"{what} must be a list of [name, value] pairs")
    out = []
    for item in value:
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise CorpusError(f"{what}: {item!r} is not a [name, value] pair")
        out.append((str(item[0]), str(item[1])))
    return tuple(out)


def _devices(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise CorpusError("devices must be a list of {driver, options} objects")
    return value


@dataclass(frozen=True)
class MachineConfig:
    """What QEMU is told about the machine: type, options, CPU model and properties, size.

    ``machine_options`` and ``cpu_properties`` are ordered (name, value) pairs: the order
    is the order on the command line (:func:`fuzz.core.command.base`), so a reproducer's
    command line is exactly the same. ``devices`` are added with ``-device``, in order
    (:mod:`fuzz.core.devices`); a configuration without any keeps the JSON (and so the
    :meth:`Case.key`) it had before devices were drawn.
    """

    machine: str
    cpu: str
    machine_options: tuple[tuple[str, str], ...] = ()
    cpu_properties: tuple[tuple[str, str], ...] = ()
    smp: int = 1
    memory_mib: int = 64
    devices: tuple[Device, ...] = ()

    def __post_init__(self) -> None:
        if self.smp < 1 or self.memory_mib < 16:
            raise UsageError(
                f"smp={self.smp} memory_mib={self.memory_mib}: need >= 1 CPU, >= 16 MiB"
            )

    def describe(self) -> str:
        """A one-line human summary, e.g. ``virt-10.0 cortex-a57,pmu=off smp=1 64M``."""
        m = ",".join([self.machine, *(f"{k}={v}" for k, v in self.machine_options)])
        c = ",".join([self.cpu, *(f"{k}={v}" for k, v in self.cpu_properties)])
        devices = "".join(f" +{d.argument()}" for d in self.devices)
        return f"{m} {c} smp={self.smp} {self.memory_mib}M{devices}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "machine": self.machine,
            "cpu": self.cpu,
            "machine_options": [list(p) for p in self.machine_options],
            "cpu_properties": [list(p) for p in self.cpu_properties],
            "smp": self.smp,
            "memory_mib": self.memory_mib,
            **({"devices": [d.to_json() for d in self.devices]} if self.devices else {}),
        }

    @classmethod
    def from_json(cls, data: Any) -> MachineConfig:
        """Parse :meth:`to_json` output; :class:`CorpusError` names what is wrong."""
        if not isinstance(data, dict):
            raise CorpusError("machine configuration must be an object")
        try:
            return cls(
                machine=str(data["machine"]),
                cpu=str(data["cpu"]),
                machine_options=_pairs(data.get("machine_options", []), "machine_options"),
                cpu_properties=_pairs(data.get("cpu_properties", []), "cpu_properties"),
                smp=int(data.get("smp", 1)),
                memory_mib=int(data.get("memory_mib", 64)),
                devices=tuple(Device.from_json(d) for d in _devices(data.get("devices", []))),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CorpusError(f"machine configuration: {err!r}") from err


@dataclass(frozen=True)
class GuestProgram:
    """A built bare-metal guest: the image QEMU loads and how the runner talks to it.

    The guest runs from ``entry``; when it has set its state it prints ``checkpoint`` on
    the first UART and waits for ``resume`` on that UART. The runner saves after the
    checkpoint; after a restore it sends ``resume`` and the guest prints its read-back
    transcript, ending with ``done``.
    """

    image: bytes = field(repr=False)
    load_address: int = GUEST_BASE
    entry: int = GUEST_BASE
    checkpoint: bytes = b"@@MIGFUZZ-CHECKPOINT@@"
    resume: bytes = b"g"
    done: bytes = b"@@MIGFUZZ-DONE@@"
    operations: tuple[dict[str, Any], ...] = ()
    #: A guest for a live migration: after its checkpoint it keeps writing a pattern to
    #: memory until the resume byte comes, then checks it (``strategies.image``'s
    #: ``build_live_guest``); False: it only polls the UART, and a save finds it still.
    live: bool = False
    #: The GNU as listing, or what makes it: a reproducer needs it, a case mostly does not,
    #: and making it costs more than assembling the image. Read it with :meth:`source`.
    listing: str | Callable[[], str] = field(default="", repr=False, compare=False)

    def __repr__(self) -> str:
        ops = self.operations
        live = ", live=True" if self.live else ""
        return f"GuestProgram(<{len(self.image)} bytes {self.digest()}>, operations={ops!r}{live})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """For Hypothesis's example printer, which walks dataclass fields otherwise."""
        printer.text(repr(self))

    def __getstate__(self) -> dict[str, Any]:
        """Pickled with its listing made (what makes it need not pickle)."""
        return {**self.__dict__, "listing": self.source()}

    def source(self) -> str:
        """The GNU as listing of the image ("" if there is none)."""
        return self.listing() if callable(self.listing) else self.listing

    def digest(self) -> str:
        """A short content hash of the image (names image files in reproducers)."""
        return hashlib.sha256(self.image).hexdigest()[:16]


@dataclass(frozen=True)
class Case:
    """One configuration and one guest (or none: the machine is saved paused at reset).

    With ``live``, the guest (a live one, ``GuestProgram.live``) is migrated while it runs,
    over that migration's transport and settings, instead of saved paused into a file.
    """

    config: MachineConfig
    guest: GuestProgram | None = None
    seed: int | None = None
    labels: tuple[str, ...] = field(default=())
    live: LiveMigration | None = None

    def key(self) -> str:
        """A stable hash of everything that defines the case (not the seed or labels)."""
        blob = json.dumps(
            {
                "config": self.config.to_json(),
                "guest": None if self.guest is None else self.guest.digest(),
                **({} if self.live is None else {"live": self.live.to_json()}),
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]
