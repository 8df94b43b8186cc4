"""Rewriting the Arm ``cpu`` section's cpreg arrays in a saved stream, or leaving out a
subsection of it the destination does not send.

Written for localization only: to find which system registers make a destination refuse a
stream, migfuzz edits the source's cpreg list toward the destination's and asks the
destination to load the result. Facts measured on QEMU 5.2-11.1 decide what an edit is:

* a register both lists hold, whose value differs: *set* it to the destination's value
  (a constant or ID register that does not read back as written is refused);
* a register only the source holds: *drop* it (the destination's list check fails);
* a register only the destination holds, with a non-zero value there: *insert* it with
  the destination's value (inserting 0 fails like leaving it out).

The three fields ``cpreg_vmstate_array_len`` (be32), ``cpreg_vmstate_indexes`` and
``cpreg_vmstate_values`` (be64 each) are contiguous; the patcher replaces their bytes and
leaves every other byte as it was. A subsection is left out whole, from its
``QEMU_VM_SUBSECTION`` byte to its last field (:func:`drop_subsections`): a section carries
no length, so the bytes around it stay a valid stream, and it is left out of the JSON
description at the end too. A cpreg rewrite leaves that description stale (the destination
reads and discards it).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from fuzz.errors import StreamError
from fuzz.stream.cpregs import from_kvm_id
from fuzz.stream.description import locate_description
from fuzz.stream.format import VMDESCRIPTION
from fuzz.stream.model import Stream

_FIELDS = ("cpreg_vmstate_array_len", "cpreg_vmstate_indexes", "cpreg_vmstate_values")
_MAX_CPREGS = 1 << 16


class PatchAction(StrEnum):
    """What one patch does to the source's cpreg list."""

    SET = "set"
    DROP = "drop"
    INSERT = "insert"


@dataclass(frozen=True, order=True)
class CpregPatch:
    """One edit of the cpreg list: ``kvm_id`` and the values on both sides."""

    kvm_id: int
    action: PatchAction
    src_value: int | None
    dst_value: int | None

    @property
    def register(self) -> str:
        """The register's architectural name (or its generic encoding name)."""
        try:
            return from_kvm_id(self.kvm_id).name
        except ValueError:
            return f"{self.kvm_id:#x}"

    def describe(self) -> str:
        """E.g. ``ID_AA64ISAR0_EL1: only in source (0x11120)``."""
        src, dst = _hex(self.src_value), _hex(self.dst_value)
        if self.action is PatchAction.DROP:
            return f"{self.register}: only in source ({src})"
        if self.action is PatchAction.INSERT:
            return f"{self.register}: only in destination ({dst})"
        return f"{self.register}: source {src}, destination {dst}"

    def to_json(self) -> dict[str, str | None]:
        """A JSON-ready dict: register name, KVM id, action and both values in hex."""
        return {
            "name": self.register,
            "kvm_id": f"{self.kvm_id:#x}",
            "action": str(self.action),
            "src": None if self.src_value is None else f"{self.src_value:#x}",
            "dst": None if self.dst_value is None else f"{self.dst_value:#x}",
        }

    @classmethod
    def from_json(cls, data: object) -> CpregPatch:
        """Parse :meth:`to_json` output.

        :raise StreamError: not such a dict.
        """
        if not isinstance(data, dict) or not isinstance(data.get("kvm_id"), str):
            raise StreamError(f"not a cpreg patch: {data!r}", offset=0)

        def number(key: str) -> int | None:
            value = data.get(key)
            return None if value is None else int(str(value), 16)

        try:
            kvm_id = int(data["kvm_id"], 16)
            return cls(kvm_id, PatchAction(str(data.get("action"))), number("src"), number("dst"))
        except ValueError as err:
            raise StreamError(f"not a cpreg patch: {data!r}", offset=0) from err


def _hex(value: int | None) -> str:
    return "-" if value is None else f"{value:#x}"


def _ints(value: object, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(isinstance(v, int) for v in value):
        raise StreamError(f"{what} is not an array of integers", offset=0)
    return value


def cpreg_table(stream: Stream, instance_id: int = 0) -> dict[int, int]:
    """The ``cpu`` section's cpreg list as {kvm id: value}, in stream order.

    :raise StreamError: the stream has no such cpu section or its arrays are malformed.
    """
    try:
        cpu = stream.section("cpu", instance_id)
        indexes = _ints(cpu.field("cpreg_vmstate_indexes").value, "cpreg_vmstate_indexes")
        values = _ints(cpu.field("cpreg_vmstate_values").value, "cpreg_vmstate_values")
    except KeyError as err:
        raise StreamError(f"no cpu {instance_id} cpreg arrays in the stream", offset=0) from err
    if len(indexes) != len(values):
        raise StreamError("cpreg index and value arrays differ in length", offset=0)
    return dict(zip(indexes, values, strict=True))


def cpreg_differences(
    src: Mapping[int, int], dst: Mapping[int, int], *, zeros: bool = False
) -> list[CpregPatch]:
    """Every edit that turns the source's list into the destination's, by register id.

    Registers only the destination holds with value 0 are left out unless ``zeros``: the
    destination is meant to accept their absence (a missing register keeps its reset
    value). Under TCG it does not always: a missing register takes whatever its slot of
    ``cpreg_values`` held (``docs/qemu-bugs.md``), which on a second CPU was seen to be
    refused where inserting the 0 loads; getting past a refusal needs ``zeros``.
    """
    patches = []
    for kvm_id in sorted(set(src) | set(dst)):
        if kvm_id in src and kvm_id in dst:
            if src[kvm_id] != dst[kvm_id]:
                patches.append(CpregPatch(kvm_id, PatchAction.SET, src[kvm_id], dst[kvm_id]))
        elif kvm_id in src:
            patches.append(CpregPatch(kvm_id, PatchAction.DROP, src[kvm_id], None))
        elif dst[kvm_id] != 0 or zeros:
            patches.append(CpregPatch(kvm_id, PatchAction.INSERT, None, dst[kvm_id]))
    return patches


def apply_patches(table: Mapping[int, int], patches: Iterable[CpregPatch]) -> dict[int, int]:
    """``table`` with ``patches`` applied (a new dict)."""
    result = dict(table)
    for patch in patches:
        if patch.action is PatchAction.DROP:
            result.pop(patch.kvm_id, None)
        else:
            assert patch.dst_value is not None
            result[patch.kvm_id] = patch.dst_value
    return result


def rewrite_cpregs(
    data: bytes, stream: Stream, table: Mapping[int, int], instance_id: int = 0
) -> bytes:
    """``data`` (the bytes ``stream`` was decoded from) with the cpreg list replaced by ``table``.

    Entries are written sorted by id, as QEMU keeps them (its list check walks both sorted
    lists together).

    :raise StreamError: the three fields are not where the patcher expects them.
    """
    if len(table) > _MAX_CPREGS:
        raise StreamError(f"{len(table)} cpregs is more than any QEMU holds", offset=0)
    try:
        cpu = stream.section("cpu", instance_id)
        length, indexes, values = (cpu.field(name) for name in _FIELDS)
    except KeyError as err:
        raise StreamError(f"no cpu {instance_id} cpreg arrays in the stream", offset=0) from err
    if not (length.end == indexes.offset and indexes.end == values.offset and length.length == 4):
        raise StreamError(
            "cpreg fields are not contiguous", offset=length.offset, expected="len, indexes, values"
        )
    if values.end > len(data):
        raise StreamError("cpreg values run past the end of the data", offset=values.offset)
    ids = sorted(table)
    blob = struct.pack(f">i{len(ids)}Q{len(ids)}Q", len(ids), *ids, *(table[i] for i in ids))
    return data[: length.offset] + blob + data[values.end :]


def drop_subsections(data: bytes, stream: Stream, section: str, names: Collection[str]) -> bytes:
    """``data`` (the bytes ``stream`` was decoded from) without the subsections called
    ``names`` (full names, e.g. ``cpu/wfxt-timer``) of every instance of ``section``, in the
    state and in the JSON description at the end (so that migfuzz decodes the result too).

    Only a section's own subsections, not those nested in one: QEMU loads a subsection
    only where its parent's description lists it, and a source-only parent goes whole.

    :raise StreamError: the stream's description cannot be found again in ``data``.
    """
    spans = sorted(
        ((sub.offset, sub.end) for sec in stream.sections if sec.name == section
         for sub in sec.subsections if sub.name in names),
        reverse=True,
    )  # fmt: skip
    if not spans:
        return data
    described = locate_description(data)
    document = described.as_json()
    for device in document.get("devices", []):
        if device.get("name") == section and "subsections" in device:
            kept = [s for s in device["subsections"] if s.get("vmsd_name") not in names]
            device["subsections"] = kept
    text = json.dumps(document).encode("utf-8")
    out = data[: described.offset] + struct.pack(">BI", VMDESCRIPTION, len(text)) + text
    for start, end in spans:
        out = out[:start] + out[end:]
    return out
