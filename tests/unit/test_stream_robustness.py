"""The stream decoder on untrusted input: it returns a Stream or raises StreamError, nothing else.

A small synthetic stream is built here, byte by byte, with the records QEMU writes (header,
configuration, an iterative RAM section with zero, full and continued pages, a command, device
sections with integers, arrays, structs, per-element arrays and a subsection, footers, EOF, the
JSON description). Every truncation of it, random flips, insertions and deletions, and random
changes to its description must end in ``Stream`` or ``StreamError``. A real sample, when
/tmp/streams has one, is fuzzed the same way, and the Atheris target is run for a few thousand
inputs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.errors import StreamError
from fuzz.stream.decode import SectionKind, Stream, decode_stream

PAGE = 1024
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "fuzz_stream_decoder.py"
#: A real stream (QEMU 11.1, virt-5.2, max, paused at reset) cut by the atheris script's
#: ``--make-seed`` to its device sections and RAM block list: 35 KB, decodes in milliseconds.
SAMPLE = Path(__file__).parent.parent / "data" / "stream-11.1-max-virt-5.2.seed"

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- A tiny encoder ----------------------------------------------------------------------------


def be(value: int, size: int) -> bytes:
    return value.to_bytes(size, "big", signed=value < 0)


def str8(text: bytes) -> bytes:
    return bytes([len(text)]) + text


def field(name: str, kind: str, size: int, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, "size": size, **extra}


def footer(section_id: int) -> bytes:
    return b"\x7e" + be(section_id, 4)


def full_header(section_id: int, name: bytes, instance_id: int, version: int) -> bytes:
    return b"\x04" + be(section_id, 4) + str8(name) + be(instance_id, 4) + be(version, 4)


def build_stream(*, described_config: bool = True) -> bytes:
    """A valid stream in QEMU's layout; ``described_config=False`` omits the configuration's
    description as QEMU before 8.2 did (the decoder then uses its built-in layout)."""
    out = bytearray(b"QEVM" + be(3, 4))

    # Configuration: machine name, target page bits, two capabilities.
    caps = [b"x-ignore-shared", b"events"]
    out += b"\x07" + be(9, 4) + b"virt-test"
    out += b"\x05" + str8(b"configuration/target-page-bits") + be(1, 4) + be(10, 4)
    out += b"\x05" + str8(b"configuration/capabilities") + be(1, 4) + be(len(caps), 4)
    out += b"".join(str8(c) for c in caps)
    config_desc = {
        "vmsd_name": "configuration",
        "version": 1,
        "fields": [field("len", "uint32", 4), field("name", "buffer", 9)],
        "subsections": [
            {
                "vmsd_name": "configuration/target-page-bits",
                "version": 1,
                "fields": [field("target_page_bits", "uint32", 4)],
            },
            {
                "vmsd_name": "configuration/capabilities",
                "version": 1,
                "fields": [
                    field("caps_count", "uint32", 4),
                    field("capabilities", "capability", 1 + len(caps[0]), array_len=len(caps)),
                ],
            },
        ],
    }

    # RAM: START declares two blocks (with addresses: x-ignore-shared is on).
    blocks = [(b"ram0", 4 * PAGE), (b"/rom@etc/x", PAGE)]
    out += b"\x01" + be(1, 4) + str8(b"ram") + be(0, 4) + be(4, 4)
    out += be(sum(length for _, length in blocks) | 0x04, 8)
    for name, length in blocks:
        out += str8(name) + be(length, 8) + be(0x4000_0000, 8)
    out += be(0x200, 8)  # MULTIFD_FLUSH
    out += be(0x10, 8) + footer(1)
    # PART: a named full page, zero pages continuing it, a full page of zeros, an XBZRLE delta
    # resending page 0, a named zero page.
    page = bytes(range(256)) * (PAGE // 256)
    out += b"\x02" + be(1, 4)
    out += be(0x08, 8) + str8(b"ram0") + page
    out += be(PAGE | 0x22, 8) + b"\x00"
    out += be(2 * PAGE | 0x22, 8) + b"\x00"
    out += be(3 * PAGE | 0x28, 8) + bytes(PAGE)
    out += be(0x60, 8) + b"\x01" + be(3, 2) + b"abc"
    out += be(0x02, 8) + str8(b"/rom@etc/x") + b"\x00"
    out += be(0x10, 8) + footer(1)
    out += b"\x08" + be(11, 2) + be(0, 2)  # SWITCHOVER_START
    out += b"\x03" + be(1, 4) + be(0x10, 8) + footer(1)

    # A CPU-like device: the cpreg arrays and a subsection.
    indexes, values = [0x6030_0000_0013_C000, 0x6030_0000_0013_C001, 7], [1, 2**64 - 1, 0]
    out += full_header(2, b"cpu", 0, 22)
    out += be(3, 4) + b"".join(be(i, 8) for i in indexes) + b"".join(be(v, 8) for v in values)
    out += be(-1, 8)  # a timer, not armed
    out += b"\x05" + str8(b"cpu/vfp") + be(3, 4) + be(0x0300_0000, 4)
    out += footer(2)
    cpu_desc = {
        "name": "cpu",
        "instance_id": 0,
        "vmsd_name": "cpu",
        "version": 22,
        "fields": [
            field("cpreg_vmstate_array_len", "int32 le", 4),
            field("cpreg_vmstate_indexes", "uint64", 8, array_len=3),
            field("cpreg_vmstate_values", "uint64", 8, array_len=3),
            field("gt_timer", "timer", 8),
        ],
        "subsections": [
            {"vmsd_name": "cpu/vfp", "version": 3, "fields": [field("fpscr", "fpscr", 4)]}
        ],
    }

    # A device with every other kind of field.
    out += full_header(3, b"0000:00:01.0/dev", 1, 2)
    out += be(-2, 2) + b"\x01" + b"hello"
    out += b"\x01" + be(0x0102, 2) + b"\x00" + be(0x0304, 2)  # two structs
    out += be(10, 4) + be(11, 4)  # an array described element by element
    out += be(0x0506, 2)  # a vstruct
    out += footer(3)
    struct_desc = {
        "vmsd_name": "dev/elem",
        "version": 1,
        "fields": [field("a", "uint8", 1), field("b", "uint16", 2)],
    }
    dev_desc = {
        "name": "0000:00:01.0/dev",
        "instance_id": 1,
        "vmsd_name": "dev",
        "version": 2,
        "fields": [
            field("level", "int16", 2),
            field("enabled", "bool", 1),
            field("id", "buffer", 5),
            field("elems", "struct", 3, array_len=2, struct=struct_desc),
            field("regs", "uint32", 4, index=0),
            field("regs", "uint32", 4, index=1),
            field(
                "vs", "vstruct", 2, vmsd_name="dev/vs", version=1, fields=[field("x", "uint16", 2)]
            ),
        ],
    }

    # A device saved by an old-style handler: one opaque buffer, no version in the description.
    out += full_header(4, b"oldstyle", 0, 1) + b"xyz" + footer(4)
    old_desc = {
        "name": "oldstyle",
        "instance_id": 0,
        "size": 3,
        "fields": [field("data", "buffer", 3)],
    }

    out += b"\x00"
    description: dict[str, Any] = {"page_size": PAGE, "devices": [cpu_desc, dev_desc, old_desc]}
    if described_config:
        description["configuration"] = config_desc
    text = json.dumps(description).encode()
    return bytes(out + b"\x06" + be(len(text), 4) + text)


STREAM = build_stream()
LEGACY_STREAM = build_stream(described_config=False)
BODY_END = decode_stream(STREAM).eof_offset
TRAILER = STREAM[BODY_END:]


def decode_or_refuse(data: bytes) -> Stream | None:
    """Decode ``data``; a StreamError must carry an offset inside the data and an expectation."""
    try:
        return decode_stream(data)
    except StreamError as exc:
        error = exc
    assert 0 <= error.offset <= len(data), error
    assert error.expected, error
    return None


# -- The synthetic stream decodes as built ------------------------------------------------------


@pytest.mark.parametrize("data", [STREAM, LEGACY_STREAM], ids=["described", "legacy-config"])
def test_synthetic_stream_decodes(data: bytes) -> None:
    stream = decode_stream(data)
    assert stream.machine_type == "virt-test"
    assert [s.kind for s in stream.sections] == [
        SectionKind.START,
        SectionKind.PART,
        SectionKind.END,
        SectionKind.FULL,
        SectionKind.FULL,
        SectionKind.FULL,
    ]
    assert [c.command for c in stream.commands] == [11]

    cpu = stream.section("cpu")
    n = cpu.field("cpreg_vmstate_array_len")
    values = cpu.field("cpreg_vmstate_values")
    assert n.value == 3
    assert values.value == (1, 2**64 - 1, 0)
    assert data[values.element_offset(1) : values.element_offset(1) + 8] == b"\xff" * 8
    assert cpu.field("gt_timer").value == -1
    assert cpu.subsection("cpu/vfp").field("fpscr").value == 0x0300_0000
    assert data[cpu.body_end] == 0x7E
    assert cpu.end == stream.section("0000:00:01.0/dev", 1).offset

    flat = dict(stream.flatten())
    assert flat["cpu/0/cpreg_vmstate_indexes[2]"] == 7
    assert flat["cpu/0/cpu/vfp/fpscr"] == 0x0300_0000
    assert flat["0000:00:01.0/dev/1/level"] == -2
    assert flat["0000:00:01.0/dev/1/enabled"] is True
    assert flat["0000:00:01.0/dev/1/id"] == b"hello"
    assert flat["0000:00:01.0/dev/1/elems[1].b"] == 0x0304
    assert flat["0000:00:01.0/dev/1/regs[1]"] == 11
    assert flat["0000:00:01.0/dev/1/vs.x"] == 0x0506
    assert flat["oldstyle/0/data"] == b"xyz"
    assert flat["configuration/configuration/target-page-bits/target_page_bits"] == 10

    ram = stream.ram
    assert (ram.pages, ram.nonzero_pages) == (6, 1)
    ram0 = ram.block("ram0")
    assert (ram0.pages, ram0.xbzrle_pages, ram0.length) == (5, 1, 4 * PAGE)
    assert ram.block("/rom@etc/x").nonzero_pages == 0


def test_ram_digest_depends_on_content_not_on_encoding() -> None:
    """A page of zeros sent in full hashes like a zero page; changing a byte changes the digest."""
    as_zero = STREAM.replace(be(3 * PAGE | 0x28, 8) + bytes(PAGE), be(3 * PAGE | 0x22, 8) + b"\0")
    assert len(as_zero) == len(STREAM) - PAGE + 1
    assert decode_stream(as_zero).ram.digest == decode_stream(STREAM).ram.digest
    flipped = bytearray(STREAM)
    flipped[STREAM.index(bytes(range(256))) + 5] ^= 1
    assert decode_stream(bytes(flipped)).ram.digest != decode_stream(STREAM).ram.digest


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d[:-1], "description"),
        (lambda d: b"QEVN" + d[4:], "magic"),
        (lambda d: d.replace(b'"version": 22', b'"version": 21'), "version"),
        (lambda d: d.replace(b"cpu/vfp", b"cpu/vfq", 1), "subsection"),
        (lambda d: d[:BODY_END] + b"\x00" + TRAILER, "EOF"),
    ],
    ids=["truncated", "magic", "version", "subsection", "trailing"],
)
def test_errors_name_offset_and_expectation(mutate: Any, message: str) -> None:
    data = mutate(STREAM)
    with pytest.raises(StreamError, match=message) as info:
        decode_stream(data)
    assert 0 <= info.value.offset <= len(data)
    assert info.value.expected


# -- Truncation, flips, insertions, deletions ---------------------------------------------------


def test_every_truncation_is_refused() -> None:
    for cut in range(len(STREAM)):
        with pytest.raises(StreamError):
            decode_stream(STREAM[:cut])


def test_every_truncated_body_with_its_description_is_refused() -> None:
    """Cut the records short but keep EOF and the description, as a bad patch would."""
    for cut in range(BODY_END):
        assert decode_or_refuse(STREAM[:cut] + TRAILER) is None, cut


@FAST
@given(st.data())
def test_byte_flips(data: st.DataObject) -> None:
    source = data.draw(st.sampled_from([STREAM, LEGACY_STREAM]))
    flips = data.draw(
        st.lists(
            st.tuples(st.integers(0, len(source) - 1), st.integers(0, 255)), min_size=1, max_size=6
        )
    )
    mutated = bytearray(source)
    for index, value in flips:
        mutated[index] = value
    decode_or_refuse(bytes(mutated))


@FAST
@given(
    st.lists(
        st.tuples(st.integers(0, len(STREAM)), st.binary(min_size=0, max_size=12), st.booleans()),
        min_size=1,
        max_size=4,
    )
)
def test_insertions_and_deletions(edits: list[tuple[int, bytes, bool]]) -> None:
    mutated = bytearray(STREAM)
    for index, blob, delete in edits:
        at = min(index, len(mutated))
        if delete:
            del mutated[at : at + len(blob) + 1]
        else:
            mutated[at:at] = blob
    decode_or_refuse(bytes(mutated))


JSON_VALUES = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, 2, 3, 8, 4096, 2**31 - 1]),
    st.sampled_from(["", "struct", "vstruct", "capability", "uint64", "bool", "cpu/vfp"]),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.just([]),
    st.just({}),
    st.just({"fields": [{"name": "x", "type": "uint8", "size": 0, "array_len": 2**30}]}),
)


def _json_slots(node: Any, slots: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, child in list(items):
        slots.append((node, key))
        if isinstance(child, dict | list):
            _json_slots(child, slots)
    return slots


@FAST
@given(st.data())
def test_description_changes(data: st.DataObject) -> None:
    """A description that disagrees with the bytes (types, sizes, lengths, shapes)."""
    document = json.loads(TRAILER[6:])
    slots = _json_slots(document, [])
    for _ in range(data.draw(st.integers(1, 3))):
        parent, key = data.draw(st.sampled_from(slots))
        parent[key] = data.draw(JSON_VALUES)
    text = json.dumps(document).encode()
    decode_or_refuse(STREAM[: BODY_END + 1] + b"\x06" + be(len(text), 4) + text)


# -- A real sample -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> bytes:
    return SAMPLE.read_bytes()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_sample_byte_flips(sample: bytes, data: st.DataObject) -> None:
    flips = data.draw(
        st.lists(
            st.tuples(st.integers(0, len(sample) - 1), st.integers(0, 255)), min_size=1, max_size=4
        )
    )
    mutated = bytearray(sample)
    for index, value in flips:
        mutated[index] = value
    decode_or_refuse(bytes(mutated))


def test_sample_seed_still_decodes(sample: bytes) -> None:
    stream = decode_stream(sample)
    assert stream.section("cpu").field("cpreg_vmstate_values").count
    assert stream.ram.pages == 0


# -- The Atheris target ------------------------------------------------------------------------


@pytest.mark.slow
def test_atheris_target_runs_clean(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "sample").write_bytes(SAMPLE.read_bytes())
    (corpus / "synthetic").write_bytes(STREAM)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "-runs=3000", "-seed=1", "-timeout=20", str(corpus)],
        capture_output=True,
        check=False,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Done 3000 runs" in result.stderr
