"""What a decoded migration stream looks like: frozen dataclasses, offsets included.

Every :class:`Field` keeps the byte offset and length it had in the stream, and every
:class:`Section` the offsets of its header, payload and footer, so that a patcher can rewrite a
field in place and so that a divergence can be pointed at in a hex dump. RAM is not kept, only
summarized (:class:`RamSummary`). :meth:`Stream.flatten` gives ``(path, value)`` pairs for
comparing two streams field by field (an array of more than :data:`LARGE_ARRAY` numbers as one
leaf, its digest).
"""

from __future__ import annotations

import enum
import hashlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from fuzz.stream.description import Description

__all__ = [
    "Command",
    "Configuration",
    "Field",
    "RamBlock",
    "RamSummary",
    "Scalar",
    "Section",
    "SectionKind",
    "Stream",
    "Struct",
    "Subsection",
    "Value",
]

Scalar: TypeAlias = int | bool | bytes | str
"""A leaf value: an integer type, a boolean, raw bytes (buffers, unknown types) or text."""

Value: TypeAlias = "int | bool | bytes | Struct | tuple[Value, ...]"
"""A field's value: a scalar, a :class:`Struct`, or a tuple of either for an array."""


class _Container:
    """Lookups shared by everything that holds ``fields`` and ``subsections``."""

    __slots__ = ()
    fields: tuple[Field, ...]
    subsections: tuple[Subsection, ...]

    def field(self, name: str) -> Field:
        """Return the first field called ``name``.

        :raise KeyError: if there is none.
        """
        for item in self.fields:
            if item.name == name:
                return item
        raise KeyError(name)

    def subsection(self, name: str) -> Subsection:
        """Return the subsection called ``name`` (its full name, e.g. ``"cpu/vfp"``).

        :raise KeyError: if the stream did not send it.
        """
        for item in self.subsections:
            if item.name == name:
                return item
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class Field:
    """One field as the description names it, with its place in the stream.

    ``offset``/``length`` cover all of the field's bytes (every element of an array).
    ``count`` is ``None`` for a single value and the number of elements for an array, whose
    ``value`` is then a tuple. ``element_size`` is the description's per-element size: for an
    array of fixed-size scalars element ``i`` starts at ``offset + i * element_size``
    (see :meth:`element_offset`). ``index`` is set when QEMU described an array element by
    element; the field is then that one element.
    """

    name: str
    type: str
    offset: int
    length: int
    value: Value
    element_size: int
    count: int | None = None
    index: int | None = None

    @property
    def end(self) -> int:
        """Offset of the first byte after the field."""
        return self.offset + self.length

    def element_offset(self, i: int) -> int:
        """Return the stream offset of element ``i`` of an array field.

        :raise IndexError: if ``i`` is not an element of this array.
        """
        if self.count is None or not 0 <= i < self.count or not isinstance(self.value, tuple):
            raise IndexError(f"{self.name} has no element {i}")
        element = self.value[i]
        if isinstance(element, Struct):
            return element.offset
        if self.type == "capability":
            raise IndexError(f"{self.name}: capability elements have no fixed size")
        return self.offset + i * self.element_size


@dataclass(frozen=True, slots=True)
class Struct(_Container):
    """The value of a ``struct`` field (or one element of an array of them)."""

    vmsd_name: str
    offset: int
    length: int
    fields: tuple[Field, ...]
    subsections: tuple[Subsection, ...] = ()


@dataclass(frozen=True, slots=True)
class Subsection(_Container):
    """An optional part of a VMState that the source decided to send.

    ``offset`` is that of its ``QEMU_VM_SUBSECTION`` byte, ``body_offset`` that of its first
    field, ``end`` the first byte after it.
    """

    name: str
    version_id: int
    offset: int
    body_offset: int
    end: int
    fields: tuple[Field, ...]
    subsections: tuple[Subsection, ...] = ()


class SectionKind(enum.Enum):
    """The record type that introduced a section."""

    START = "start"
    PART = "part"
    END = "end"
    FULL = "full"


@dataclass(frozen=True, slots=True)
class Section(_Container):
    """One section record of the stream.

    Device state comes in ``FULL`` sections, whose ``fields``/``subsections`` are decoded by
    the description. The iterative ``ram`` section comes as ``START``, ``PART``... ``END``
    records whose pages are only summarized (:attr:`Stream.ram`), so their ``fields`` are empty;
    ``PART`` and ``END`` records repeat the name, instance and version of their ``START``.

    Offsets: ``offset`` is the section-type byte, ``body_offset`` the first payload byte,
    ``body_end`` the first byte after the payload (where the footer starts), ``end`` the first
    byte after the footer (equal to ``body_end`` when the stream has no footers).
    """

    kind: SectionKind
    name: str
    instance_id: int
    version_id: int
    section_id: int
    offset: int
    body_offset: int
    body_end: int
    end: int
    fields: tuple[Field, ...] = ()
    subsections: tuple[Subsection, ...] = ()


@dataclass(frozen=True, slots=True)
class Configuration(_Container):
    """The ``QEMU_VM_CONFIGURATION`` record: machine type and its subsections.

    ``described`` says whether its layout came from the stream's description (QEMU 8.2 and
    later write one) or from the fixed layout of ``vmstate_configuration``, which older QEMUs
    wrote without describing it.
    """

    machine_type: str
    offset: int
    end: int
    described: bool
    fields: tuple[Field, ...]
    subsections: tuple[Subsection, ...] = ()


@dataclass(frozen=True, slots=True)
class Command:
    """A ``QEMU_VM_COMMAND`` record (e.g. ``SWITCHOVER_START``) and its payload."""

    offset: int
    command: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class RamBlock:
    """What the stream sent for one RAM block.

    ``length`` is the block size the stream declared; ``pages`` counts page records (a page
    sent twice counts twice); ``nonzero_pages`` those whose content is not all zero bytes,
    however they were encoded; ``xbzrle_pages`` delta-encoded pages, whose content depends on
    the receiver's cache. ``digest`` is a BLAKE2b hex digest over the pages in stream order,
    each as its offset in the block and its content (zero pages hash alike whether sent as
    ``ZERO`` or as a full page of zeros).
    """

    name: str
    length: int
    pages: int
    nonzero_pages: int
    xbzrle_pages: int
    digest: str


@dataclass(frozen=True, slots=True)
class RamSummary:
    """The RAM of the stream, summarized per block and in total.

    ``digest`` combines the blocks' names, lengths and digests in declaration order.
    """

    page_size: int
    total_bytes: int
    blocks: tuple[RamBlock, ...]
    pages: int
    nonzero_pages: int
    digest: str

    def block(self, name: str) -> RamBlock:
        """Return the block called ``name`` (e.g. ``"mach-virt.ram"``).

        :raise KeyError: if the stream declared no such block.
        """
        for block in self.blocks:
            if block.name == name:
                return block
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class Stream:
    """A decoded migration stream.

    ``sections`` are in stream order; ``eof_offset`` is where ``QEMU_VM_EOF`` sits, directly
    followed by the description (``description.offset``).
    """

    file_version: int
    configuration: Configuration | None
    sections: tuple[Section, ...]
    commands: tuple[Command, ...]
    ram: RamSummary
    description: Description
    eof_offset: int

    @property
    def machine_type(self) -> str | None:
        """The machine type the source ran (e.g. ``"virt-5.2"``), if it sent its configuration."""
        return None if self.configuration is None else self.configuration.machine_type

    def section(self, name: str, instance_id: int = 0) -> Section:
        """Return the device (``FULL``) or iterative (``START``) section ``name``/``instance_id``.

        :raise KeyError: if the stream has no such section.
        """
        for section in self.sections:
            if (
                section.name == name
                and section.instance_id == instance_id
                and section.kind in (SectionKind.FULL, SectionKind.START)
            ):
                return section
        raise KeyError(f"{name}/{instance_id}")

    def flatten(self) -> Iterator[tuple[str, Scalar]]:
        """Yield ``(path, value)`` for every leaf value, in stream order.

        Paths read ``"cpu/0/cpreg_vmstate_values[3]"``: section name and instance, then for
        each subsection level its full name (``"cpu/0/cpu/vfp/fpscr"``), then the field name
        with ``[i]`` for array elements and ``.name`` for struct members. The configuration comes
        first under ``"configuration/"``, the RAM summary last under ``"ram/<block>/"``.

        Paths are unique: QEMU may describe a field literally named ``"x[0]"`` next to an array
        ``"x"`` (Arm's ``env.vfp.xregs``), and a path seen before gets ``#2``, ``#3``... appended
        in stream order, the same way in every stream with that layout.
        """
        emitted: set[str] = set()
        for path, value in self._leaves():
            unique, n = path, 1
            while unique in emitted:
                n += 1
                unique = f"{path}#{n}"
            emitted.add(unique)
            yield unique, value

    def _leaves(self) -> Iterator[tuple[str, Scalar]]:
        if self.configuration is not None:
            yield from _flatten_container(self.configuration, "configuration/")
        for section in self.sections:
            if section.kind is SectionKind.FULL:
                yield from _flatten_container(section, f"{section.name}/{section.instance_id}/")
        for block in self.ram.blocks:
            prefix = f"ram/{block.name}/"
            yield prefix + "length", block.length
            yield prefix + "pages", block.pages
            yield prefix + "nonzero_pages", block.nonzero_pages
            yield prefix + "xbzrle_pages", block.xbzrle_pages
            yield prefix + "digest", block.digest


#: An array of more scalars than this is one leaf, its elements' digest: raspi4b's USB
#: controller (``dwc2``) migrates a 2 MiB FIFO as 524,288 words, which made a million
#: leaves per stream and 5 s of Python per state comparison.
LARGE_ARRAY = 4096


def _flatten_container(
    container: Section | Subsection | Struct | Configuration, prefix: str
) -> Iterator[tuple[str, Scalar]]:
    for item, name in zip(container.fields, _element_names(container.fields), strict=True):
        if _large_scalars(item.value):
            assert isinstance(item.value, tuple)
            yield prefix + name, hashlib.sha256(repr(item.value).encode()).digest()
        elif item.count is not None and isinstance(item.value, tuple):
            for i, element in enumerate(item.value):
                yield from _flatten_value(element, f"{prefix}{name}[{i}]")
        else:
            yield from _flatten_value(item.value, prefix + name)
    for sub in container.subsections:
        yield from _flatten_container(sub, f"{prefix}{sub.name}/")


def _element_names(fields: Sequence[Field]) -> list[str]:
    """Each field's name in a path: an array QEMU described element by element is one
    field per element under the same name, each ``name[k]`` by its place among them.

    Not by the ``index`` QEMU wrote: versions write it differently for the same array
    (the GICv3's ``cpu`` array of 4: 10.0 wrote indices 0, 1, 2 and none for the last; 11.1
    none at all), and names taken from it made 10.0's ``cpu[0]`` 11.1's ``cpu``, so every
    GIC comparison across those versions compared one CPU's registers with another's.
    """
    repeats = Counter(f.name for f in fields if f.count is None)
    seen: Counter[str] = Counter()
    names = []
    for f in fields:
        if f.count is None and repeats[f.name] > 1:
            names.append(f"{f.name}[{seen[f.name]}]")
            seen[f.name] += 1
        else:
            names.append(f.name if f.index is None else f"{f.name}[{f.index}]")
    return names


def _large_scalars(value: Value) -> bool:
    """Whether ``value`` is an array of more than :data:`LARGE_ARRAY` plain numbers."""
    return (
        isinstance(value, tuple) and len(value) > LARGE_ARRAY and all(type(v) is int for v in value)
    )


def _flatten_value(value: Value, path: str) -> Iterator[tuple[str, Scalar]]:
    if isinstance(value, Struct):
        yield from _flatten_container(value, path + ".")
    elif isinstance(value, tuple):
        for i, element in enumerate(value):
            yield from _flatten_value(element, f"{path}[{i}]")
    else:
        yield path, value
