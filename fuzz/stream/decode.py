"""Decode a QEMU migration stream file (``QEVM`` version 3) into a :class:`Stream`.

Layout of a precopy stream as QEMU 5.2 to 11.1 write it to a file::

    be32 magic "QEVM", be32 version 3
    0x07 configuration                    (machine type, optional subsections)
    0x01 START  be32 id, idstr, be32 instance, be32 version, payload, [0x7e be32 id]
    0x02 PART / 0x03 END  be32 id, payload, [0x7e be32 id]      (iterative sections: RAM)
    0x04 FULL   be32 id, idstr, be32 instance, be32 version, payload, [0x7e be32 id]
    0x08 command  be16 command, be16 length, payload
    0x00 EOF
    0x06 be32 length, JSON description of every FULL section

Device payloads are read as the JSON description says (:mod:`fuzz.stream.vmstate`), RAM is
summarized (:mod:`fuzz.stream.ram`). The input is untrusted: whatever it holds, decoding ends
with a :class:`Stream` or a :class:`~fuzz.errors.StreamError` naming the offset and what was
expected there, after work and memory bounded by the input's length.
"""

from __future__ import annotations

import os
from pathlib import Path

from fuzz.errors import StreamError
from fuzz.stream import format as fmt
from fuzz.stream.description import Description, DeviceDesc, locate_description
from fuzz.stream.model import (
    Command,
    Configuration,
    Field,
    RamBlock,
    RamSummary,
    Scalar,
    Section,
    SectionKind,
    Stream,
    Struct,
    Subsection,
    Value,
)
from fuzz.stream.ram import RamDecoder
from fuzz.stream.reader import Reader
from fuzz.stream.vmstate import Budget, capability_names, decode_body, decode_configuration

__all__ = [
    "Command",
    "Configuration",
    "Description",
    "Field",
    "RamBlock",
    "RamSummary",
    "Scalar",
    "Section",
    "SectionKind",
    "Stream",
    "StreamError",
    "Struct",
    "Subsection",
    "Value",
    "decode_file",
    "decode_stream",
]

_POSTCOPY_COMMANDS = {
    fmt.CMD_POSTCOPY_ADVISE: "POSTCOPY_ADVISE",
    fmt.CMD_POSTCOPY_LISTEN: "POSTCOPY_LISTEN",
    fmt.CMD_POSTCOPY_RUN: "POSTCOPY_RUN",
    fmt.CMD_POSTCOPY_RAM_DISCARD: "POSTCOPY_RAM_DISCARD",
    fmt.CMD_PACKAGED: "PACKAGED",
    fmt.CMD_ENABLE_COLO: "ENABLE_COLO",
    fmt.CMD_POSTCOPY_RESUME: "POSTCOPY_RESUME",
    fmt.CMD_RECV_BITMAP: "RECV_BITMAP",
}


def decode_stream(data: bytes) -> Stream:
    """Decode the migration stream ``data``.

    :param data: the whole stream file, description included (any bytes-like object).
    :return: the decoded stream, with the offsets of every section and field.
    :raise StreamError: if the stream is truncated, corrupt, uses a feature this decoder does
        not read, or disagrees with its own description (or has none).
    """
    if not isinstance(data, bytes):
        data = bytes(memoryview(data))
    header = Reader(data)
    magic = header.be32("file magic 'QEVM'")
    if magic != fmt.FILE_MAGIC:
        raise StreamError(
            f"not a QEMU migration stream (magic {magic:#010x})",
            offset=0,
            expected="magic 0x5145564d ('QEVM')",
        )
    version = header.be32("file version")
    if version != fmt.FILE_VERSION:
        raise StreamError(
            f"unsupported stream version {version}", offset=4, expected="file version 3"
        )
    description = locate_description(data)
    if description.offset < header.pos:
        raise StreamError(
            "VM description overlaps the file header",
            offset=description.offset,
            expected="sections and QEMU_VM_EOF before the description",
        )
    reader = Reader(data, header.pos, description.offset)
    return _Decoder(reader, description).run(version)


def decode_file(path: str | os.PathLike[str]) -> Stream:
    """Read and decode the migration stream file at ``path``.

    :raise StreamError: as :func:`decode_stream`.
    :raise OSError: if the file cannot be read.
    """
    return decode_stream(Path(path).read_bytes())


class _Decoder:
    """Walks the records between the header and ``QEMU_VM_EOF``."""

    def __init__(self, reader: Reader, description: Description) -> None:
        self.reader = reader
        self.description = description
        self.budget = Budget()
        self.devices: dict[tuple[str, int], DeviceDesc] = {}
        for device in description.devices:
            key = (device.name, device.instance_id)
            if key in self.devices:
                raise StreamError(
                    f"VM description lists {device.name}/{device.instance_id} twice",
                    offset=description.json_offset,
                    expected="each device once",
                )
            self.devices[key] = device
        self.seen: set[tuple[str, int]] = set()
        self.section_ids: set[int] = set()
        self.open: dict[int, tuple[str, int, int]] = {}
        self.sections: list[Section] = []
        self.commands: list[Command] = []
        self.configuration: Configuration | None = None
        self.ram: RamDecoder | None = None
        self.footers: bool | None = None

    def run(self, version: int) -> Stream:
        reader = self.reader
        while True:
            if len(self.sections) + len(self.commands) > fmt.MAX_SECTIONS:
                raise StreamError(
                    f"more than {fmt.MAX_SECTIONS} sections",
                    offset=reader.pos,
                    expected="QEMU_VM_EOF",
                )
            start = reader.pos
            kind = reader.u8("section type or QEMU_VM_EOF (0x00)")
            if kind == fmt.VM_EOF:
                break
            if kind == fmt.CONFIGURATION:
                self._configuration(start)
            elif kind in (fmt.SECTION_START, fmt.SECTION_FULL):
                self._new_section(start, kind)
            elif kind in (fmt.SECTION_PART, fmt.SECTION_END):
                self._continued_section(start, kind)
            elif kind == fmt.COMMAND:
                self._command(start)
            else:
                raise StreamError(
                    f"unexpected record type {kind:#04x}{_record_hint(kind)}",
                    offset=start,
                    expected="a section (0x01-0x04), configuration (0x07), command (0x08) "
                    "or QEMU_VM_EOF (0x00)",
                )
        eof = reader.pos - 1
        if reader.pos != reader.end:
            raise StreamError(
                f"QEMU_VM_EOF is followed by {reader.end - reader.pos} bytes before the "
                "VM description",
                offset=reader.pos,
                expected="QEMU_VM_VMDESCRIPTION (0x06) right after QEMU_VM_EOF",
            )
        if self.open:
            section_id, (name, instance_id, _) = next(iter(self.open.items()))
            raise StreamError(
                f"iterative section {name}/{instance_id} (id {section_id}) never ended",
                offset=eof,
                expected=f"QEMU_VM_SECTION_END for section id {section_id}",
            )
        missing = [key for key in self.devices if key not in self.seen]
        if missing:
            name, instance_id = missing[0]
            raise StreamError(
                f"VM description lists {name}/{instance_id} but the stream has no such section"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                offset=eof,
                expected=f"a section {name}/{instance_id} before QEMU_VM_EOF",
            )
        ram = self.ram or RamDecoder(self.description.page_size, frozenset())
        return Stream(
            file_version=version,
            configuration=self.configuration,
            sections=tuple(self.sections),
            commands=tuple(self.commands),
            ram=ram.summary(),
            description=self.description,
            eof_offset=eof,
        )

    def _configuration(self, start: int) -> None:
        if self.configuration is not None or self.sections or self.commands:
            raise StreamError(
                "configuration record after other records",
                offset=start,
                expected="the configuration only as the first record",
            )
        self.reader.pos = start
        config = decode_configuration(self.reader, self.description.configuration, self.budget)
        try:
            bits_field = config.subsection(fmt.CONFIG_TARGET_PAGE_BITS).field("target_page_bits")
        except KeyError:
            bits_field = None
        if bits_field is not None:
            bits = bits_field.value
            if (
                not isinstance(bits, int)
                or not 0 <= bits < 32
                or (1 << bits != self.description.page_size)
            ):
                raise StreamError(
                    f"configuration says target page bits {bits!r}, VM description says page "
                    f"size {self.description.page_size}",
                    offset=bits_field.offset,
                    expected=f"target page bits matching page size {self.description.page_size}",
                )
        self.configuration = config

    def _new_section(self, start: int, kind: int) -> None:
        reader = self.reader
        id_offset = reader.pos
        section_id = reader.be32("section id")
        raw_name = reader.str8("section name (idstr)")
        name = raw_name.decode("utf-8", "backslashreplace")
        instance_id = reader.be32(f"instance id of section {name}")
        version_offset = reader.pos
        version_id = reader.be32(f"version id of section {name}")
        where = f"{name}/{instance_id}"
        if section_id in self.section_ids:
            raise StreamError(
                f"section id {section_id} of {where} is already in use",
                offset=id_offset,
                expected="a new section id",
            )
        self.section_ids.add(section_id)
        body_offset = reader.pos
        fields: tuple[Field, ...] = ()
        subsections: tuple[Subsection, ...] = ()
        if kind == fmt.SECTION_START:
            section_kind = SectionKind.START
            self._start_ram(start, name, version_id, version_offset)
            self.open[section_id] = (name, instance_id, version_id)
        else:
            section_kind = SectionKind.FULL
            fields, subsections = self._device(start, name, instance_id, version_id, version_offset)
        body_end = reader.pos
        self.sections.append(
            Section(
                kind=section_kind,
                name=name,
                instance_id=instance_id,
                version_id=version_id,
                section_id=section_id,
                offset=start,
                body_offset=body_offset,
                body_end=body_end,
                end=self._footer(section_id, where),
                fields=fields,
                subsections=subsections,
            )
        )

    def _start_ram(self, start: int, name: str, version_id: int, version_offset: int) -> None:
        if name != fmt.RAM_SECTION:
            raise StreamError(
                f"iterative section {name!r} is not supported",
                offset=start,
                expected="only the 'ram' section as an iterative (START/PART/END) section",
            )
        if version_id != fmt.RAM_VERSION:
            raise StreamError(
                f"ram section version {version_id}",
                offset=version_offset,
                expected=f"ram section version {fmt.RAM_VERSION}",
            )
        if self.ram is not None:
            raise StreamError("ram section started twice", offset=start, expected="one ram section")
        self.ram = RamDecoder(self.description.page_size, capability_names(self.configuration))
        self.ram.read_record(self.reader)

    def _device(
        self, start: int, name: str, instance_id: int, version_id: int, version_offset: int
    ) -> tuple[tuple[Field, ...], tuple[Subsection, ...]]:
        key = (name, instance_id)
        where = f"{name}/{instance_id}"
        device = self.devices.get(key)
        if device is None:
            raise StreamError(
                f"section {where} is not in the VM description",
                offset=start,
                expected="a device section the VM description lists",
            )
        if key in self.seen:
            raise StreamError(
                f"section {where} appears twice", offset=start, expected="each device once"
            )
        self.seen.add(key)
        if device.vmsd.version is not None and device.vmsd.version != version_id:
            raise StreamError(
                f"section {where} has version {version_id}, its description {device.vmsd.version}",
                offset=version_offset,
                expected=f"version {device.vmsd.version}",
            )
        return decode_body(self.reader, device.vmsd, self.budget, where)

    def _continued_section(self, start: int, kind: int) -> None:
        reader = self.reader
        section_id = reader.be32("section id")
        opened = self.open.get(section_id)
        if opened is None:
            raise StreamError(
                f"section id {section_id} continues no open iterative section",
                offset=start + 1,
                expected="the id of a started, not yet ended section",
            )
        name, instance_id, version_id = opened
        body_offset = reader.pos
        if self.ram is None:  # pragma: no cover - only the ram section is ever opened
            raise StreamError("ram section state lost", offset=start, expected="ram section")
        self.ram.read_record(reader)
        body_end = reader.pos
        if kind == fmt.SECTION_END:
            del self.open[section_id]
        self.sections.append(
            Section(
                kind=SectionKind.END if kind == fmt.SECTION_END else SectionKind.PART,
                name=name,
                instance_id=instance_id,
                version_id=version_id,
                section_id=section_id,
                offset=start,
                body_offset=body_offset,
                body_end=body_end,
                end=self._footer(section_id, f"{name}/{instance_id}"),
            )
        )

    def _footer(self, section_id: int, where: str) -> int:
        reader = self.reader
        start = reader.pos
        has_footer = reader.peek_u8() == fmt.SECTION_FOOTER
        if reader.peek_u8() == fmt.SUBSECTION:
            probe = Reader(reader.data, start + 1, reader.end)
            try:
                sub = probe.str8("subsection name").decode("utf-8", "backslashreplace")
            except StreamError:
                sub = "?"
            raise StreamError(
                f"{where}: the stream has subsection {sub!r}, which the VM description does "
                "not list",
                offset=start,
                expected="end of section (footer 0x7e or next record)",
            )
        if self.footers is None:
            self.footers = has_footer
        elif self.footers != has_footer:
            raise StreamError(
                f"{where}: section "
                + ("has a footer though earlier ones had none" if has_footer else "lacks a footer"),
                offset=start,
                expected="QEMU_VM_SECTION_FOOTER (0x7e)" if self.footers else "the next record",
            )
        if has_footer:
            reader.pos += 1
            footer_id = reader.be32(f"footer section id of {where}")
            if footer_id != section_id:
                raise StreamError(
                    f"{where}: footer names section id {footer_id}",
                    offset=start + 1,
                    expected=f"section id {section_id}",
                )
        return reader.pos

    def _command(self, start: int) -> None:
        reader = self.reader
        command = reader.be16("command number")
        length = reader.be16("command length")
        payload = reader.take(length, f"payload of command {command}")
        if command in fmt.PLAIN_COMMAND_LENGTHS:
            if length != fmt.PLAIN_COMMAND_LENGTHS[command]:
                raise StreamError(
                    f"command {command} has a {length}-byte payload",
                    offset=start + 3,
                    expected=f"{fmt.PLAIN_COMMAND_LENGTHS[command]} bytes",
                )
        elif command in _POSTCOPY_COMMANDS:
            raise StreamError(
                f"command {_POSTCOPY_COMMANDS[command]}: postcopy and COLO streams are not "
                "supported",
                offset=start,
                expected="a precopy stream",
            )
        else:
            raise StreamError(
                f"unknown command {command}",
                offset=start + 1,
                expected="OPEN_RETURN_PATH, PING or SWITCHOVER_START",
            )
        self.commands.append(Command(offset=start, command=command, payload=payload))


def _record_hint(kind: int) -> str:
    return {
        fmt.SUBSECTION: " (a subsection outside any section)",
        fmt.VMDESCRIPTION: " (a VM description before QEMU_VM_EOF)",
        fmt.SECTION_FOOTER: " (a section footer outside any section)",
    }.get(kind, "")
