"""The stream's own JSON description of its device sections (``QEMU_VM_VMDESCRIPTION``).

After ``QEMU_VM_EOF`` QEMU appends one byte ``0x06``, a big-endian 32-bit length and a JSON
document saying, for every device section it wrote, which fields it wrote in which order, with
which type and size, and which subsections followed. The decoder is driven by that document
instead of by device layouts of its own, so one decoder reads every QEMU version.

The JSON is untrusted like the rest of the stream: it is validated here into frozen
dataclasses (the ``qemu.qmp`` ``models.py`` habit) and every problem becomes a
:class:`~fuzz.errors.StreamError` with the offset of the JSON in the stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from struct import unpack_from
from typing import Any

from fuzz.errors import StreamError
from fuzz.stream import format as fmt

__all__ = ["Description", "DeviceDesc", "FieldDesc", "VmsdDesc", "locate_description"]


@dataclass(frozen=True, slots=True)
class FieldDesc:
    """One entry of a ``fields`` list: how one field (or array of fields) was written.

    ``size`` is the number of bytes QEMU wrote for one element; ``array_len`` is set for a
    "compressed" array (all elements alike, described once) and ``index`` for one element of an
    array whose elements are described one by one. ``struct`` is the nested description of a
    ``struct``/``vstruct`` field.
    """

    name: str
    type: str
    size: int
    array_len: int | None = None
    index: int | None = None
    struct: VmsdDesc | None = None


@dataclass(frozen=True, slots=True)
class VmsdDesc:
    """A VMState description as written: its name, version, fields and present subsections."""

    name: str
    version: int | None
    fields: tuple[FieldDesc, ...]
    subsections: tuple[VmsdDesc, ...] = ()


@dataclass(frozen=True, slots=True)
class DeviceDesc:
    """A device section the stream holds: the section's idstr, instance and layout."""

    name: str
    instance_id: int
    vmsd: VmsdDesc


@dataclass(frozen=True, slots=True)
class Description:
    """The validated ``QEMU_VM_VMDESCRIPTION`` trailer.

    ``offset`` is where its ``0x06`` marker sits (the byte after ``QEMU_VM_EOF``) and
    ``json_offset`` where the JSON text starts; ``text`` is that text, kept so that
    :meth:`as_json` can give the document back unchanged.
    """

    offset: int
    json_offset: int
    page_size: int
    devices: tuple[DeviceDesc, ...]
    configuration: VmsdDesc | None
    text: str

    def as_json(self) -> Any:
        """Return the description as the plain JSON value QEMU wrote (a fresh copy)."""
        return json.loads(self.text)


def locate_description(data: bytes) -> Description:
    """Find, parse and validate the description at the end of ``data``.

    The marker is found from the end (see :func:`_find_marker`) and its length must reach
    exactly the end of the data; the JSON must then be UTF-8 and have the shape QEMU writes.

    :raise StreamError: if there is no description, or it is not valid JSON of the expected
        shape.
    """
    marker = _find_marker(data)
    if marker < 0:
        raise StreamError(
            "no VM description at the end of the stream (truncated?)",
            offset=len(data),
            expected="QEMU_VM_VMDESCRIPTION (0x06) and a be32 length reaching the end of the "
            "stream, then JSON",
        )
    json_offset = marker + 5
    raw = data[json_offset:]
    try:
        text = raw.decode("utf-8")
        document = json.loads(text)
    except UnicodeDecodeError as exc:
        raise StreamError(
            f"VM description is not UTF-8: {exc.reason}",
            offset=json_offset + exc.start,
            expected="UTF-8 JSON text",
        ) from None
    except json.JSONDecodeError as exc:
        raise StreamError(
            f"VM description is not valid JSON: {exc.msg}",
            offset=json_offset + len(exc.doc[: exc.pos].encode("utf-8")),
            expected="JSON text",
        ) from None
    except (ValueError, RecursionError) as exc:
        raise StreamError(
            f"VM description is not usable JSON: {type(exc).__name__}",
            offset=json_offset,
            expected="JSON text of bounded size and nesting",
        ) from None
    return _Validator(json_offset).description(document, marker, text)


def _find_marker(data: bytes) -> int:
    """Return the offset of the description's ``0x06`` marker, or -1.

    Valid JSON has no ``0x06`` byte, but the four length bytes after the marker may: so the
    marker is one of the last five ``0x06`` bytes, the one whose length reaches the end.
    """
    window_start = max(0, len(data) - fmt.MAX_DESCRIPTION_BYTES - 5)
    end = len(data)
    for _ in range(5):
        candidate = data.rfind(bytes([fmt.VMDESCRIPTION]), window_start, end)
        if candidate < 0:
            break
        if candidate + 5 <= len(data):
            (length,) = unpack_from(">I", data, candidate + 1)
            if candidate + 5 + length == len(data):
                return candidate
        end = candidate
    return -1


class _Validator:
    """Turns the parsed JSON into description dataclasses, checking every value's type."""

    def __init__(self, json_offset: int) -> None:
        self.json_offset = json_offset

    def fail(self, path: str, what: str) -> StreamError:
        return StreamError(
            f"VM description: {path} {what}", offset=self.json_offset, expected=f"{path} {what}"
        )

    def obj(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, "must be an object")
        return value

    def text(self, obj: dict[str, Any], key: str, path: str, default: str | None = None) -> str:
        value = obj.get(key, default)
        if not isinstance(value, str):
            raise self.fail(f"{path}.{key}", "must be a string")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape
            raise self.fail(f"{path}.{key}", "must be valid Unicode") from None
        return value

    def integer(self, obj: dict[str, Any], key: str, path: str, *, limit: int) -> int:
        value = obj.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < limit:
            raise self.fail(f"{path}.{key}", f"must be an integer in [0, {limit})")
        return value

    def maybe_integer(self, obj: dict[str, Any], key: str, path: str, *, limit: int) -> int | None:
        if obj.get(key) is None:
            return None
        return self.integer(obj, key, path, limit=limit)

    def array(self, obj: dict[str, Any], key: str, path: str) -> list[Any]:
        value = obj.get(key, [])
        if not isinstance(value, list):
            raise self.fail(f"{path}.{key}", "must be an array")
        return value

    def description(self, document: Any, marker: int, text: str) -> Description:
        top = self.obj(document, "description")
        page_size = self.integer(top, "page_size", "description", limit=fmt.MAX_PAGE_SIZE + 1)
        if page_size < fmt.MIN_PAGE_SIZE or page_size & (page_size - 1):
            raise self.fail(
                "description.page_size",
                f"must be a power of two in [{fmt.MIN_PAGE_SIZE}, {fmt.MAX_PAGE_SIZE}]",
            )
        raw_devices = self.array(top, "devices", "description")
        if len(raw_devices) > fmt.MAX_DESCRIPTION_DEVICES:
            raise self.fail("description.devices", f"lists more than {fmt.MAX_DESCRIPTION_DEVICES}")
        devices = tuple(self.device(raw, f"devices[{i}]") for i, raw in enumerate(raw_devices))
        configuration = None
        if top.get("configuration") is not None:
            configuration = self.vmsd(
                self.obj(top["configuration"], "configuration"), "configuration", 1
            )
        return Description(
            offset=marker,
            json_offset=self.json_offset,
            page_size=page_size,
            devices=devices,
            configuration=configuration,
            text=text,
        )

    def device(self, raw: Any, path: str) -> DeviceDesc:
        obj = self.obj(raw, path)
        name = self.text(obj, "name", path)
        instance_id = self.integer(obj, "instance_id", path, limit=1 << 32)
        if "fields" not in obj:
            raise self.fail(f"{path}.fields", "is missing")
        return DeviceDesc(name=name, instance_id=instance_id, vmsd=self.vmsd(obj, path, 1))

    def vmsd(self, obj: dict[str, Any], path: str, depth: int) -> VmsdDesc:
        if depth > fmt.MAX_DESCRIPTION_DEPTH:
            raise self.fail(path, f"nests deeper than {fmt.MAX_DESCRIPTION_DEPTH}")
        name = self.text(obj, "vmsd_name", path, default="")
        version = self.maybe_integer(obj, "version", path, limit=1 << 32)
        fields = tuple(
            self.field(self.obj(raw, f"{path}.fields[{i}]"), f"{path}.fields[{i}]", depth)
            for i, raw in enumerate(self.array(obj, "fields", path))
        )
        subsections = tuple(
            self.vmsd(
                self.obj(raw, f"{path}.subsections[{i}]"), f"{path}.subsections[{i}]", depth + 1
            )
            for i, raw in enumerate(self.array(obj, "subsections", path))
        )
        if any(not sub.name for sub in subsections):
            raise self.fail(f"{path}.subsections", "must each have a vmsd_name")
        return VmsdDesc(name=name, version=version, fields=fields, subsections=subsections)

    def field(self, obj: dict[str, Any], path: str, depth: int) -> FieldDesc:
        name = self.text(obj, "name", path)
        kind = self.text(obj, "type", path)
        size = self.integer(obj, "size", path, limit=fmt.MAX_FIELD_SIZE)
        array_len = self.maybe_integer(obj, "array_len", path, limit=fmt.MAX_FIELD_SIZE)
        index = self.maybe_integer(obj, "index", path, limit=fmt.MAX_FIELD_SIZE)
        struct = None
        if kind in fmt.STRUCT_TYPES:
            # A "struct" nests its layout under "struct"; QEMU writes a "vstruct" layout
            # straight into the field object.
            nested = obj.get("struct", obj if kind == "vstruct" else None)
            if nested is None:
                raise self.fail(f"{path}.struct", "is missing")
            struct = self.vmsd(self.obj(nested, f"{path}.struct"), f"{path}.struct", depth + 1)
        return FieldDesc(
            name=name, type=kind, size=size, array_len=array_len, index=index, struct=struct
        )
