"""Decoding of VMState payloads (device sections, subsections, structs) by their description.

The description says, for each field, its type and the bytes written per element; this module
reads exactly that, turns integer types into ``int`` (signed or not as the type says), booleans
into ``bool`` and everything else into raw ``bytes``, then reads the subsections the
description lists, checking each one's marker, name and version. A stream that disagrees with
its description fails here, at the first byte that does not fit.
"""

from __future__ import annotations

from struct import unpack_from

from fuzz.errors import StreamError
from fuzz.stream import format as fmt
from fuzz.stream.description import FieldDesc, VmsdDesc
from fuzz.stream.model import Configuration, Field, Struct, Subsection, Value
from fuzz.stream.reader import Reader

__all__ = ["Budget", "capability_names", "decode_body", "decode_configuration"]

_STRUCT_CODES = {1: "b", 2: "h", 4: "i", 8: "q"}


class Budget:
    """Counts decoded items that took no bytes, the only ones the stream length does not bound.

    A description may ask for a billion elements of a zero-size type; each element still costs
    memory and time, so past :data:`~fuzz.stream.format.MAX_EMPTY_ITEMS` of them decoding stops.
    """

    __slots__ = ("left",)

    def __init__(self, limit: int = fmt.MAX_EMPTY_ITEMS) -> None:
        self.left = limit

    def charge(self, count: int, offset: int, what: str) -> None:
        """Spend ``count`` items.

        :raise StreamError: once the budget is exhausted.
        """
        self.left -= count
        if self.left < 0:
            raise StreamError(
                f"too many zero-length items in {what} (more than {fmt.MAX_EMPTY_ITEMS})",
                offset=offset,
                expected="a description whose fields take bytes",
            )


def decode_body(
    reader: Reader, vmsd: VmsdDesc, budget: Budget, where: str
) -> tuple[tuple[Field, ...], tuple[Subsection, ...]]:
    """Read the fields, then the subsections, that ``vmsd`` describes.

    ``where`` names the section for error messages (e.g. ``"cpu/0"``).

    :return: the fields and subsections, in stream order.
    :raise StreamError: if the bytes run out or do not match the description.
    """
    fields = tuple(_field(reader, item, budget, where) for item in vmsd.fields)
    subsections = tuple(_subsection(reader, sub, budget, where) for sub in vmsd.subsections)
    return fields, subsections


def _subsection(reader: Reader, vmsd: VmsdDesc, budget: Budget, where: str) -> Subsection:
    start = reader.pos
    marker = reader.u8(f"subsection {vmsd.name} of {where}")
    if marker != fmt.SUBSECTION:
        raise StreamError(
            f"{where}: description lists subsection {vmsd.name!r} but the stream has byte "
            f"{marker:#04x}",
            offset=start,
            expected=f"QEMU_VM_SUBSECTION (0x05) for {vmsd.name}",
        )
    name_offset = reader.pos
    name = reader.str8(f"name of subsection {vmsd.name}")
    if name != vmsd.name.encode("utf-8"):
        raise StreamError(
            f"{where}: subsection {name!r} where the description lists {vmsd.name!r}",
            offset=name_offset,
            expected=f"subsection name {vmsd.name!r}",
        )
    version_offset = reader.pos
    version = reader.be32(f"version of subsection {vmsd.name}")
    if vmsd.version is not None and version != vmsd.version:
        raise StreamError(
            f"{where}: subsection {vmsd.name} has version {version}, its description "
            f"{vmsd.version}",
            offset=version_offset,
            expected=f"version {vmsd.version}",
        )
    body_offset = reader.pos
    fields, subsections = decode_body(reader, vmsd, budget, where)
    return Subsection(
        name=vmsd.name,
        version_id=version,
        offset=start,
        body_offset=body_offset,
        end=reader.pos,
        fields=fields,
        subsections=subsections,
    )


def _field(reader: Reader, desc: FieldDesc, budget: Budget, where: str) -> Field:
    start = reader.pos
    what = f"{where} field {desc.name}"
    count = desc.array_len
    n = 1 if count is None else count
    value: Value
    if desc.struct is not None:
        elements = tuple(
            _struct(reader, desc, desc.struct, budget, f"{what}[{i}]", first=i == 0)
            for i in range(n)
        )
        value = elements if count is not None else elements[0]
    elif desc.type == fmt.CAPABILITY_TYPE:
        names = tuple(_capability(reader, desc, what, first=i == 0) for i in range(n))
        value = names if count is not None else names[0]
    else:
        value = _scalars(reader, desc, n, budget, what)
        if count is None and isinstance(value, tuple):
            value = value[0]
    if reader.pos == start:
        budget.charge(1, start, what)
    return Field(
        name=desc.name,
        type=desc.type,
        offset=start,
        length=reader.pos - start,
        value=value,
        element_size=desc.size,
        count=count,
        index=desc.index,
    )


def _scalars(
    reader: Reader, desc: FieldDesc, n: int, budget: Budget, what: str
) -> tuple[int, ...] | tuple[bool, ...] | tuple[bytes, ...]:
    size = desc.size
    width, signed = fmt.INT_TYPES.get(
        desc.type, (1 if desc.type in fmt.BOOL_TYPES else size, False)
    )
    if size != width:
        raise StreamError(
            f"{what}: description gives {desc.type} a size of {size}",
            offset=reader.pos,
            expected=f"size {width} for {desc.type}",
        )
    if size == 0:
        budget.charge(n, reader.pos, what)
    raw = reader.take(n * size, f"{what}: {n} x {size} bytes ({desc.type})")
    if desc.type in fmt.INT_TYPES:
        code = _STRUCT_CODES[width] if signed else _STRUCT_CODES[width].upper()
        return tuple(int(v) for v in unpack_from(f">{n}{code}", raw))
    if desc.type in fmt.BOOL_TYPES:
        return tuple(byte != 0 for byte in raw)
    return tuple(raw[i * size : (i + 1) * size] for i in range(n))


def _capability(reader: Reader, desc: FieldDesc, what: str, *, first: bool) -> bytes:
    start = reader.pos
    name = reader.str8(f"{what}: capability name")
    if first and reader.pos - start != desc.size:
        raise StreamError(
            f"{what}: capability takes {reader.pos - start} bytes, description says {desc.size}",
            offset=start,
            expected=f"a capability of {desc.size} bytes",
        )
    return name


def _struct(
    reader: Reader, field: FieldDesc, vmsd: VmsdDesc, budget: Budget, what: str, *, first: bool
) -> Struct:
    start = reader.pos
    fields, subsections = decode_body(reader, vmsd, budget, what)
    length = reader.pos - start
    if first and length != field.size:
        raise StreamError(
            f"{what}: struct {vmsd.name} took {length} bytes, description says {field.size}",
            offset=start,
            expected=f"a {vmsd.name} of {field.size} bytes",
        )
    if length == 0:
        budget.charge(1, start, what)
    return Struct(
        vmsd_name=vmsd.name, offset=start, length=length, fields=fields, subsections=subsections
    )


# -- The configuration record ------------------------------------------------------------------

_BUILTIN_CONFIG_SUBSECTIONS = {
    fmt.CONFIG_TARGET_PAGE_BITS: VmsdDesc(
        name=fmt.CONFIG_TARGET_PAGE_BITS,
        version=1,
        fields=(FieldDesc(name="target_page_bits", type="uint32", size=4),),
    ),
    fmt.CONFIG_UUID: VmsdDesc(
        name=fmt.CONFIG_UUID,
        version=1,
        fields=(FieldDesc(name="uuid.data", type="uint8", size=1, array_len=fmt.UUID_SIZE),),
    ),
}
"""Fixed layouts of configuration subsections for streams that do not describe them."""


def decode_configuration(
    reader: Reader, described: VmsdDesc | None, budget: Budget
) -> Configuration:
    """Read the ``QEMU_VM_CONFIGURATION`` record that starts at ``reader.pos``.

    QEMU 8.2 and later describe this record in the stream (``described``); for older streams
    the fixed layout of QEMU's ``vmstate_configuration`` is used: a 32-bit length, the machine
    name, then whichever of its subsections follow.

    :raise StreamError: if the record is truncated or does not match its layout.
    """
    start = reader.pos
    reader.u8("QEMU_VM_CONFIGURATION")
    if described is not None:
        fields, subsections = decode_body(reader, described, budget, "configuration")
    else:
        fields, subsections = _builtin_configuration(reader, budget)
    try:
        name = next(f.value for f in fields if f.name == "name")
    except StopIteration:
        raise StreamError(
            "configuration has no machine name field",
            offset=start,
            expected="a 'name' field in the configuration",
        ) from None
    if not isinstance(name, bytes):
        raise StreamError(
            "configuration machine name is not a buffer",
            offset=start,
            expected="'name' of type buffer",
        )
    return Configuration(
        machine_type=name.decode("utf-8", "backslashreplace"),
        offset=start,
        end=reader.pos,
        described=described is not None,
        fields=fields,
        subsections=subsections,
    )


def _builtin_configuration(
    reader: Reader, budget: Budget
) -> tuple[tuple[Field, ...], tuple[Subsection, ...]]:
    len_offset = reader.pos
    length = reader.be32("configuration: machine name length")
    name_offset = reader.pos
    name = reader.take(length, "configuration: machine name")
    fields = (
        Field("len", "uint32", len_offset, 4, length, 4),
        Field("name", "buffer", name_offset, length, name, length),
    )
    subsections: list[Subsection] = []
    while reader.peek_u8() == fmt.SUBSECTION:
        start = reader.pos
        reader.pos += 1
        raw_name = reader.str8("configuration subsection name")
        sub_name = raw_name.decode("utf-8", "backslashreplace")
        version = reader.be32(f"version of {sub_name}")
        body_offset = reader.pos
        if sub_name == fmt.CONFIG_CAPABILITIES:
            sub_fields = _builtin_capabilities(reader)
            nested: tuple[Subsection, ...] = ()
        elif sub_name in _BUILTIN_CONFIG_SUBSECTIONS:
            sub_fields, nested = decode_body(
                reader, _BUILTIN_CONFIG_SUBSECTIONS[sub_name], budget, "configuration"
            )
        else:
            raise StreamError(
                f"configuration subsection {sub_name!r} is not described",
                offset=start,
                expected="one of "
                + ", ".join(sorted([fmt.CONFIG_CAPABILITIES, *_BUILTIN_CONFIG_SUBSECTIONS])),
            )
        if any(s.name == sub_name for s in subsections):
            raise StreamError(
                f"configuration subsection {sub_name!r} appears twice",
                offset=start,
                expected="each subsection once",
            )
        subsections.append(
            Subsection(sub_name, version, start, body_offset, reader.pos, sub_fields, nested)
        )
    return fields, tuple(subsections)


def _builtin_capabilities(reader: Reader) -> tuple[Field, ...]:
    count_offset = reader.pos
    count = reader.be32("configuration capability count")
    # Every capability takes at least its length byte: bound the count before looping.
    reader.need(count, f"{count} capability names")
    names_offset = reader.pos
    names = tuple(reader.str8("capability name") for _ in range(count))
    return (
        Field("caps_count", "uint32", count_offset, 4, count, 4),
        Field(
            "capabilities",
            fmt.CAPABILITY_TYPE,
            names_offset,
            reader.pos - names_offset,
            names,
            0,
            count=count,
        ),
    )


def capability_names(configuration: Configuration | None) -> frozenset[bytes]:
    """Return the migration capabilities the source listed in its configuration (maybe none)."""
    if configuration is None:
        return frozenset()
    try:
        field = configuration.subsection(fmt.CONFIG_CAPABILITIES).field("capabilities")
    except KeyError:
        return frozenset()
    value = field.value
    items = value if isinstance(value, tuple) else (value,)
    return frozenset(item for item in items if isinstance(item, bytes))
