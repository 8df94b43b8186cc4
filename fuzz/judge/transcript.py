"""Guest read-back transcripts: parse them, cut them out of a console, compare them.

A guest built by :mod:`strategies.image` prints one ``name=0x<hex>`` line per item it set,
once before its checkpoint (the pre-save read-back, in the source's console) and once after
each restore (the transcript, in the load outcome's details). The guest-visible oracle:

* control: the A->A transcript must equal the pre-save read-back, item by item, and hold
  nothing the guest itself reports wrong (:func:`guest_reported_differences`: a timer due
  but not fired);
* pair: every item where the A->B transcript differs from the A->A one is a divergence,
  whose :attr:`TranscriptDifference.signature` names the item.

Console text is untrusted: parsing skips what it does not recognise and never raises.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fuzz.errors import CorpusError, InvalidInput

__all__ = [
    "EXCEPTION_ITEM",
    "TIMERS_LOST_BY_QEMU",
    "TIMER_FIRED",
    "TIMER_ITEM",
    "TIMER_MISSED",
    "TranscriptDifference",
    "compare_transcripts",
    "guest_reported_differences",
    "parse_transcript",
    "pre_save_readback",
]

EXCEPTION_ITEM = "exception"
"""The item name under which a guest's ``EXC ...`` exception report is kept."""

#: A guest's verdict on a timer it set a deadline on before the save, printed after a
#: restore only (``strategies.image``: ``after_restore_items``). Before the save there is
#: nothing to compare it with, so it is judged on its own: :func:`guest_reported_differences`.
TIMER_ITEM = re.compile(r"^timer\.\w+\.fired$")
TIMER_FIRED = 1
"""The value of :data:`TIMER_ITEM` for a timer whose CTL.ISTATUS rose."""
TIMER_MISSED = 0
"""The value of :data:`TIMER_ITEM` for a timer that was due, long enough, and never fired."""
#: The timers whose deadline still pending at a save every QEMU from 5.2 to 11.1 loses: the
#: CPU's vmstate carries the QEMU timers of the EL1 ones only (``docs/devices.md``,
#: "Timers"; ``tests/qemu/test_timer_ops.py`` pins it). Whether a drawn deadline was still
#: pending when the harness stopped the VM depends on the host, so a miss of theirs comes and
#: goes between runs of one case: it is not judged on its own. A -> B, which restores the
#: same stream as A -> A, is still compared with it. Empty this once QEMU keeps them.
TIMERS_LOST_BY_QEMU = frozenset({"hyp_physical", "hyp_virtual", "secure_physical"})

_ITEM_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_.+\[\]]*)=(0x[0-9A-Fa-f]+)")
_EXCEPTION_PREFIX = "EXC "


def parse_transcript(text: str) -> dict[str, str]:
    """The ``name -> value`` items of a read-back, in the order they were printed.

    A line is an item if it is exactly ``name=0x<hex digits>`` (surrounding blanks and
    ``\\r`` ignored); the value is kept lower-case. A line ``EXC <report>`` (the guest took
    an exception) becomes the item :data:`EXCEPTION_ITEM` with the report as its value.
    Every other line (markers, junk) is skipped. If a name repeats, the first value wins.
    """
    items: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(_EXCEPTION_PREFIX):
            items.setdefault(EXCEPTION_ITEM, line[len(_EXCEPTION_PREFIX) :].strip())
            continue
        match = _ITEM_LINE.fullmatch(line)
        if match is not None:
            items.setdefault(match[1], match[2].lower())
    return items


def pre_save_readback(console_text: str, checkpoint: bytes | str) -> str:
    """The part of the source's console before the first ``checkpoint`` marker.

    :param console_text: the save outcome's ``details["console"]`` (latin-1 text).
    :param checkpoint: the guest's :attr:`~fuzz.core.case.GuestProgram.checkpoint`.
    :raise InvalidInput: the marker is empty or not in the console (the guest never
        reached its checkpoint, so there is no pre-save read-back).
    """
    marker = checkpoint.decode("latin-1") if isinstance(checkpoint, bytes) else checkpoint
    if not marker:
        raise InvalidInput("checkpoint marker is empty")
    at = console_text.find(marker)
    if at < 0:
        raise InvalidInput(f"checkpoint marker {marker!r} not in the console")
    return console_text[:at]


#: What a live guest prints of its memory pattern after the migration: the pages it found
#: different from what it last wrote (``strategies.image.LIVE_ITEMS``); 0 when intact.
LIVE_BAD_PAGES = "live.pattern_bad_pages"


def guest_reported_differences(items: Mapping[str, str]) -> list[TranscriptDifference]:
    """What a guest itself reports wrong after a restore, as differences from what it should
    read: each :data:`TIMER_ITEM` that says :data:`TIMER_MISSED` (expected
    :data:`TIMER_FIRED`), in the order printed, but for :data:`TIMERS_LOST_BY_QEMU`. Its
    signature names the timer (``guest read-back differs: timer.physical.fired``). And a
    live guest's :data:`LIVE_BAD_PAGES` other than 0: memory lost while it migrated.
    """
    fired, out = f"0x{TIMER_FIRED:016x}", []
    for name, value in items.items():
        if name == LIVE_BAD_PAGES and int(value, 16) != 0:
            # A live guest's pattern came back broken: memory it wrote while it migrated
            # was lost (whatever version restored it, the guest expected it intact).
            out.append(TranscriptDifference(name, f"0x{0:016x}", value))
            continue
        if not TIMER_ITEM.match(name) or name.split(".")[1] in TIMERS_LOST_BY_QEMU:
            continue
        if int(value, 16) == TIMER_MISSED:
            out.append(TranscriptDifference(name, fired, value))
    return out


DifferenceKind = Literal["differs", "missing", "extra"]


@dataclass(frozen=True)
class TranscriptDifference:
    """One item (by ``name``) on which two read-backs disagree.

    ``expected`` is None for an item only the actual read-back has (``extra``); ``actual``
    is None for one it lacks (``missing``, e.g. the guest stopped or took an exception).
    """

    name: str
    expected: str | None
    actual: str | None

    def __post_init__(self) -> None:
        """Refuse a difference with neither side."""
        if self.expected is None and self.actual is None:
            raise InvalidInput(f"name={self.name!r}: a difference needs at least one side")

    @property
    def kind(self) -> DifferenceKind:
        """``differs``, ``missing`` or ``extra``."""
        if self.actual is None:
            return "missing"
        if self.expected is None:
            return "extra"
        return "differs"

    @property
    def signature(self) -> str:
        """A stable one-line key, e.g. ``guest read-back differs: CNTKCTL_EL1``."""
        return f"guest read-back {self.kind}: {self.name}"

    def __str__(self) -> str:
        """E.g. ``CNTKCTL_EL1: expected 0x..03, got 0x..00``."""
        expected, actual = self.expected or "(nothing)", self.actual or "(nothing)"
        return f"{self.name}: expected {expected}, got {actual}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"name": self.name, "expected": self.expected, "actual": self.actual}

    @classmethod
    def from_json(cls, data: Any) -> TranscriptDifference:
        """Parse :meth:`to_json` output; :class:`CorpusError` says what is wrong."""
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise CorpusError("transcript difference must be an object with a 'name' string")
        sides = [data.get("expected"), data.get("actual")]
        if any(side is not None and not isinstance(side, str) for side in sides):
            raise CorpusError(f"transcript difference {data['name']!r}: sides must be strings")
        try:
            return cls(data["name"], sides[0], sides[1])
        except InvalidInput as err:
            raise CorpusError(str(err)) from err


#: An added PCI device's Command/Status dword (``pci<slot>.command``) and the Status
#: register's Interrupt Status bit in it (bit 3 of Status, bit 19 of the dword).
_PCI_COMMAND_ITEM = re.compile(r"^pci\d+\.command$")
_PCI_INTERRUPT_STATUS = 1 << 19


def _comparable(name: str, value: str | None) -> str | None:
    """``value`` as the read-backs are compared: a PCI device's Interrupt Status bit left
    out. It is the device's INTx line, not configuration the guest set: a virtio-net that
    negotiated GUEST_ANNOUNCE raises a config interrupt after every restore (QEMU announces
    a migrated NIC by design), which made 10.0 A -> A a false finding (``virtio-net-pci
    config``: Command/Status 0x00100005 before, 0x00180005 after)."""
    if value is None or not _PCI_COMMAND_ITEM.match(name):
        return value
    try:
        return f"0x{int(value, 16) & ~_PCI_INTERRUPT_STATUS:016x}"
    except ValueError:
        return value


def compare_transcripts(
    expected: Mapping[str, str], actual: Mapping[str, str]
) -> list[TranscriptDifference]:
    """Every item on which ``actual`` disagrees with ``expected`` (see :func:`_comparable`).

    Items of ``expected`` come first, in its order (differing or missing), then items only
    ``actual`` has, in its order. An empty list means the read-backs agree.
    """
    out = [
        TranscriptDifference(name, value, actual.get(name))
        for name, value in expected.items()
        if _comparable(name, actual.get(name)) != _comparable(name, value)
    ]
    out += [
        TranscriptDifference(name, None, value)
        for name, value in actual.items()
        if name not in expected
    ]
    return out


#: Read-back items that are one element of a register file or a register array: the
#: file is migrated as one field (``env.xregs``, ``env.vfp.zregs``, one GIC register
#: array), so one of its elements is no cause of its own. So are a flash bank's reads
#: (``pflash0.at40``): every one shows the mode the bank's command state left it in, and
#: both banks are the same device model, so a mode lost on restore is one cause, not four.
_ITEM_FAMILY = re.compile(
    r"^(x|q|z|GICD_ISENABLER|GICD_IPRIORITYR|GIC_PPI_IPRIORITYR)\d+$|^(mem)\[.*\]$"
    r"|^(pflash)\d\.\w+$"
)
#: An added PCI device's read-back item: ``pci<slot>.<register>`` (its config space) or
#: ``virtio_pci<slot>.<register>`` (its legacy virtio registers).
_PCI_DEVICE_ITEM = re.compile(r"^(virtio_)?pci(\d+)\.\w+$")
#: The cause of read-back items the guest did not print, when it reported no exception.
INCOMPLETE_CAUSE = "incomplete"


def item_family(name: str) -> str:
    """The cause a read-back item stands for: ``z7`` -> ``z*``, ``GICD_IPRIORITYR3`` ->
    ``GICD_IPRIORITYR*``, ``mem[...]`` -> ``mem*``, ``pflash1.at0`` -> ``pflash*``; a system
    register, its own name."""
    match = _ITEM_FAMILY.match(name)
    if match is None:
        return name
    return f"{match.group(1) or match.group(2) or match.group(3)}*"


def readback_causes(
    differences: Sequence[TranscriptDifference], pci_devices: Mapping[int, str] | None = None
) -> tuple[str, ...]:
    """The root causes of read-back differences, sorted, each once (at least one).

    An element of a register file counts for its file (:func:`item_family`): the
    Z-register truncation shows in every ``zN`` a guest wrote and is one bug. So does an
    added PCI device's config space (``pci3.bar0``) and its virtio registers
    (``virtio_pci3.status``): one cause each per device, named by its driver from
    ``pci_devices`` (slot -> driver), wherever it was put: ``pci-testdev config``. An
    exception report is a cause of its own, and the items a guest did not print after it
    are its consequence; items missing with no exception are one cause,
    :data:`INCOMPLETE_CAUSE`.
    """
    exception = any(d.name == EXCEPTION_ITEM for d in differences)
    causes = set()
    for d in differences:
        if d.name == EXCEPTION_ITEM:
            causes.add(EXCEPTION_ITEM)
        elif d.kind == "missing":
            if not exception:
                causes.add(INCOMPLETE_CAUSE)
        elif match := _PCI_DEVICE_ITEM.match(d.name):
            slot = int(match.group(2))
            device = (pci_devices or {}).get(slot, f"pci{slot}")
            causes.add(f"{device} {'virtio' if match.group(1) else 'config'}")
        else:
            causes.add(item_family(d.name))
    return tuple(sorted(causes)) or (INCOMPLETE_CAUSE,)
