"""Field-by-field comparison of two decoded streams: the state round-trip oracle's core.

Save on A, restore on B, save again on B: every field both streams know must come back
with the same value. cpregs are compared by register, not by array position (the two
lists differ in length across versions); RAM by each block's content digest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fuzz.stream.cpregs import from_kvm_id
from fuzz.stream.model import Scalar, Stream
from fuzz.stream.patch import cpreg_table

_CPREG_ARRAYS = ("cpreg_vmstate_array_len", "cpreg_vmstate_indexes", "cpreg_vmstate_values")


@dataclass(frozen=True)
class FieldChange:
    """A field both streams have, with different values."""

    path: str
    before: str
    after: str


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
    a, b = state_map(before), state_map(after)
    common = [p for p in a if p in b]
    changed = tuple(FieldChange(p, a[p], b[p]) for p in common if a[p] != b[p])
    return StreamDiff(
        changed=changed,
        only_before=tuple(p for p in a if p not in b),
        only_after=tuple(p for p in b if p not in a),
        compared=len(common),
    )
