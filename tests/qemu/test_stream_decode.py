"""Streams saved by real QEMUs (5.2 to 11.1, virt-5.2, paused at reset) decode, exactly.

For each version and CPU: the ``cpu`` section has cpreg index and value arrays of one non-zero
length, the offsets the decoder reports hold those very bytes (a patcher will rewrite them in
place), RAM adds up to the guest's 64 MiB, and decoding the same file twice gives the same
flattened fields.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from fuzz.stream.decode import SectionKind, decode_file, decode_stream

pytestmark = pytest.mark.qemu

VERSIONS = ["5.2", "7.2", "10.0", "11.1"]
CPUS = ["cortex-a57", "max"]
GUEST_RAM = 64 * 1024 * 1024

StreamOf = Callable[[str, str], Path]


@pytest.mark.parametrize("cpu", CPUS)
@pytest.mark.parametrize("version", VERSIONS)
def test_cpreg_arrays_and_their_offsets(stream_of: StreamOf, version: str, cpu: str) -> None:
    data = stream_of(version, cpu).read_bytes()
    stream = decode_stream(data)
    assert stream.machine_type == "virt-5.2"

    section = stream.section("cpu")
    length = section.field("cpreg_vmstate_array_len")
    indexes = section.field("cpreg_vmstate_indexes")
    values = section.field("cpreg_vmstate_values")
    n = length.value
    assert isinstance(n, int)
    assert n > 0
    assert indexes.count == values.count == n

    # The offsets hold exactly the bytes that decoded to these values.
    assert (length.length, indexes.length, values.length) == (4, 8 * n, 8 * n)
    assert struct.unpack_from(">i", data, length.offset) == (n,)
    assert struct.unpack_from(f">{n}Q", data, indexes.offset) == indexes.value
    assert struct.unpack_from(f">{n}Q", data, values.offset) == values.value
    assert length.end == indexes.offset
    assert indexes.end == values.offset
    last = values.element_offset(n - 1)
    assert last == values.end - 8
    assert isinstance(values.value, tuple)
    assert int.from_bytes(data[last : last + 8], "big") == values.value[-1]

    # The section's own bounds: type byte, header, payload, footer, next record.
    assert data[section.offset] == 0x04
    assert section.offset < section.body_offset <= length.offset
    assert values.end <= section.body_end < section.end
    assert data[section.body_end] == 0x7E
    footer_id = int.from_bytes(data[section.body_end + 1 : section.end], "big")
    assert footer_id == section.section_id
    following = stream.sections[stream.sections.index(section) + 1]
    assert following.offset == section.end


@pytest.mark.parametrize("cpu", CPUS)
@pytest.mark.parametrize("version", VERSIONS)
def test_ram_summary_counts_guest_ram(stream_of: StreamOf, version: str, cpu: str) -> None:
    stream = decode_file(stream_of(version, cpu))
    ram = stream.ram
    main = ram.block("mach-virt.ram")
    assert main.length == GUEST_RAM
    assert main.pages * ram.page_size == GUEST_RAM
    assert ram.pages == sum(b.pages for b in ram.blocks)
    assert ram.total_bytes == sum(b.length for b in ram.blocks)
    assert 0 < ram.nonzero_pages < ram.pages
    assert [s.kind for s in stream.sections if s.name == "ram"] == [
        SectionKind.START,
        SectionKind.PART,
        SectionKind.END,
    ]


@pytest.mark.parametrize("cpu", CPUS)
@pytest.mark.parametrize("version", VERSIONS)
def test_decoding_is_deterministic(stream_of: StreamOf, version: str, cpu: str) -> None:
    path = stream_of(version, cpu)
    first, second = decode_file(path), decode_file(path)
    assert first == second
    flat = list(first.flatten())
    assert flat == list(second.flatten())
    paths = [p for p, _ in flat]
    assert len(paths) == len(set(paths))
    assert "cpu/0/cpreg_vmstate_values[0]" in paths
