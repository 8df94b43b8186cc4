"""Field-by-field comparison of two decoded streams: the state round-trip oracle's core.

Save on A, restore on B, save again on B: every field both streams know must come back
with the same value. cpregs are compared by register, not by array position (the two
lists differ in length across versions); RAM by each block's content digest.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from fuzz.stream.cpregs import from_kvm_id
from fuzz.stream.model import Scalar, Stream
from fuzz.stream.patch import cpreg_table

_CPREG_ARRAYS = ("cpreg_vmstate_array_len", "cpreg_vmstate_indexes", "cpreg_vmstate_values")


#: A section's idstr and instance id at the start of a path: a device on a bus has its
#: device path before its vmstate's name (``0000:00:12.0/virtio-console``,
#: ``virtio-mmio@000000000a003c00/virtio-rng``), which is dropped with the instance.
_INSTANCE = re.compile(r"^(?:[^/]+/)*?([^/]+)/\d+(/|$)")
_INDEX = re.compile(r"\[\d+\]")


def rule_path(path: str) -> str:
    """A field's path without instance numbers and array indices: the field, not the slot.

    ``cpu/0/env.xregs[2]`` -> ``cpu/env.xregs``; ``cpu/1/cpreg/SCTLR_EL1`` ->
    ``cpu/cpreg/SCTLR_EL1``; ``0000:00:12.0/virtio-console/0/virtio`` ->
    ``virtio-console/virtio``. Signatures and the volatile-field rules use this form, so one
    cause shows as one name whichever CPU, array slot or bus address it hit.
    """
    return _INDEX.sub("", _INSTANCE.sub(r"\1\2", path))


#: Fields whose value legitimately differs between two restores of one stream, by rule
#: (never by case): each is matched against :func:`rule_path` and says why.
VOLATILE_FIELDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"^timer/cpu_(ticks|clock)_offset$"),
        "host-clock offsets of the VM clock, taken when each process paused",
    ),
    (
        re.compile(r"^globalstate/"),
        "the run state of the process that re-saved (prelaunch, paused, postmigrate), which "
        "says what that process did before, not what it restored; the buffer's tail after "
        "the NUL is stale bytes",
    ),
)


def is_volatile(path: str) -> bool:
    """Whether ``path`` (a :func:`state_map` key) may differ between two faithful restores."""
    key = rule_path(path)
    return any(pattern.search(key) for pattern, _why in VOLATILE_FIELDS)


@dataclass(frozen=True)
class FieldChange:
    """A field both streams have, with different values."""

    path: str
    before: str
    after: str

    @property
    def rule_path(self) -> str:
        """The field without instance and index (see :func:`rule_path`)."""
        return rule_path(self.path)


@dataclass(frozen=True)
class StreamDiff:
    """What differs between a stream and its round-tripped copy."""

    changed: tuple[FieldChange, ...] = ()
    only_before: tuple[str, ...] = ()
    only_after: tuple[str, ...] = ()
    compared: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def identical(self) -> bool:
        """No field both know changed (fields only one side has do not count)."""
        return not self.changed

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "compared": self.compared,
            "changed": [vars(c) for c in self.changed],
            "only_before": list(self.only_before),
            "only_after": list(self.only_after),
        }


def _show(value: Scalar) -> str:
    if isinstance(value, bytes):
        return value.hex() if len(value) <= 32 else f"{len(value)} bytes {value[:16].hex()}..."
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:#x}"
    return str(value)


def _register_name(kvm_id: int) -> str:
    try:
        return from_kvm_id(kvm_id).name
    except ValueError:
        return f"{kvm_id:#x}"


def state_map(stream: Stream) -> dict[str, str]:
    """Every comparable leaf of ``stream`` as {path: shown value}.

    Positional cpreg arrays become ``<cpu>/cpreg/<NAME>`` entries; RAM becomes one digest
    per block (``ram/<block>``); the description and section ids are left out.
    """
    leaves: dict[str, str] = {}
    cpu_prefixes = set()
    for path, value in stream.flatten():
        parts = path.split("/")
        if parts[0] == "ram":
            continue
        if any(p.split("[")[0] in _CPREG_ARRAYS for p in parts):
            cpu_prefixes.add("/".join(parts[:2]))
            continue
        leaves[path] = _show(value)
    for prefix in sorted(cpu_prefixes):
        instance = int(prefix.split("/")[1]) if prefix.split("/")[1].isdigit() else 0
        for kvm_id, value in cpreg_table(stream, instance).items():
            leaves[f"{prefix}/cpreg/{_register_name(kvm_id)}"] = f"{value:#x}"
    for block in stream.ram.blocks:
        leaves[f"ram/{block.name}"] = block.digest
    return leaves


def compare_streams(before: Stream, after: Stream) -> StreamDiff:
    """Compare ``after`` (a round trip's re-save) with ``before`` (the original save)."""
    return _compare_maps(state_map(before), state_map(after))


def _compare_maps(
    a: dict[str, str], b: dict[str, str], *, formats_differ: bool = False
) -> StreamDiff:
    """Compare two :func:`state_map` results (``b`` the round trip's).

    With ``formats_differ`` (the two were written by different QEMU versions), bytes of
    different lengths are not compared: such a value is what a device's own code writes
    (``VMSTATE_VIRTIO_DEVICE``'s ``virtio_save``, a buffer whose size changed), in a layout
    only that code reads, and a version that adds a subsection there lengthens it. A note
    names each one left out.
    """
    common = [p for p in a if p in b]
    changed, notes = [], []
    for p in common:
        if a[p] == b[p]:
            continue
        lengths = (_byte_length(a[p]), _byte_length(b[p]))
        if formats_differ and None not in lengths and lengths[0] != lengths[1]:
            notes.append(f"{p}: {lengths[0]} vs {lengths[1]} bytes in two versions' layouts")
            continue
        changed.append(FieldChange(p, a[p], b[p]))
    return StreamDiff(
        changed=tuple(changed),
        only_before=tuple(p for p in a if p not in b),
        only_after=tuple(p for p in b if p not in a),
        compared=len(common),
        notes=tuple(notes),
    )


_LONG_BYTES = re.compile(r"(\d+) bytes [0-9a-f]+\.\.\.")
_SHORT_BYTES = re.compile(r"(?:[0-9a-f]{2})*")


def _byte_length(shown: str) -> int | None:
    """How many bytes a :func:`_show`-n bytes value holds; None for any other value."""
    if match := _LONG_BYTES.fullmatch(shown):
        return int(match.group(1))
    return len(shown) // 2 if _SHORT_BYTES.fullmatch(shown) else None


#: Where QEMU ends one pass over RAM and starts the next: the RAM ``EOS`` word, the section
#: footer and a ``PART`` header of the same section. Where it does so depends on timing.
#: Spelled out byte by byte: a literal prefix lets ``re`` skip ahead, while ``\x00{7}``
#: made it try every zero byte of RAM (5 times slower on a whole stream).
_RAM_PASS_BREAK = re.compile(rb"\x00\x00\x00\x00\x00\x00\x00\x10\x7e(.{4})\x02\1", re.DOTALL)


#: The ``globalstate`` section's idstr as it appears in a section header (length byte first);
#: its payload starts 8 bytes later (instance and version ids): a be32 size and the run-state
#: string in a 100-byte buffer.
_GLOBALSTATE = b"\x0bglobalstate"
_GLOBALSTATE_PAYLOAD = 4 + 100


def _without_volatile_bytes(data: bytes) -> bytes:
    """``data`` with its RAM pass breaks removed and the ``globalstate`` payload blanked."""
    data = _RAM_PASS_BREAK.sub(b"", data)
    at = data.rfind(_GLOBALSTATE)
    if at >= 0:
        start = at + len(_GLOBALSTATE) + 8
        data = data[:start] + bytes(_GLOBALSTATE_PAYLOAD) + data[start + _GLOBALSTATE_PAYLOAD :]
    return data


def same_saved_state(a: bytes, b: bytes) -> bool:
    """Whether two saves are the same bytes but for what :data:`VOLATILE_FIELDS` allows.

    A cheap test that needs no decoding: two saves of one state by one version usually
    pass it. It ignores where QEMU split RAM into passes (timing) and the ``globalstate``
    run state (the re-saving process's history). False says nothing (the saves may still
    hold the same state in another layout); True is exact but for those bytes.
    """
    if a == b:
        return True
    if abs(len(a) - len(b)) % 18:
        return False
    return _without_volatile_bytes(a) == _without_volatile_bytes(b)


def compare_resaves(control: bytes, pair: bytes, *, formats_differ: bool = False) -> StreamDiff:
    """Compare the pair's re-save with the control's (both are re-saves of one stream).

    ``before`` is the control's value and ``after`` the pair's; fields that
    :func:`is_volatile` names are left out, and with ``formats_differ`` (two versions
    re-saved) so are bytes of different lengths (:func:`_compare_maps`).

    :raise StreamError: a re-save does not decode.
    """
    diff = _compare_maps(_state_map_of(control), _state_map_of(pair), formats_differ=formats_differ)
    kept = tuple(c for c in diff.changed if not is_volatile(c.path))
    return StreamDiff(kept, diff.only_before, diff.only_after, diff.compared, diff.notes)


@functools.lru_cache(maxsize=8)
def _state_map_of(data: bytes) -> dict[str, str]:
    """:func:`state_map` of the stream ``data``, decoded once: one case's control re-save
    is compared with the re-save of every destination of its fan-out (and again past a
    refusal), ~70 ms each time otherwise. Callers must not change the dict.

    :raise StreamError: ``data`` does not decode.
    """
    from fuzz.stream.decode import decode_stream  # noqa: PLC0415

    return state_map(decode_stream(data))
