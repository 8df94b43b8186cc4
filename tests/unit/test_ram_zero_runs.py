"""The RAM decoder's fast path over runs of zero pages gives the slow path's totals exactly.

A fresh guest's RAM is sent as thousands of ``ZERO | CONTINUE`` records, which the decoder
takes a window at a time with byte-string operations (:meth:`RamDecoder._zero_run`). The
per-record loop (:meth:`RamDecoder._zero_run_slowly`) is the reference: every block's page
count and digest must match it, whatever breaks a run (a full page, a non-zero fill, a page
of another block, an offset past the block's end) and wherever a window ends.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz.errors import StreamError
from fuzz.stream import format as fmt
from fuzz.stream.ram import RamDecoder
from fuzz.stream.reader import Reader

BLOCKS = ((b"mach-virt.ram", 1 << 26), (b"virt.flash0", 1 << 16))


def _word(offset: int, flags: int) -> bytes:
    return (offset | flags).to_bytes(8, "big")


def _records(pages: list[tuple[int, int, str, int]], page_size: int) -> bytes:
    """MEM_SIZE, then ``(block, page index, kind, fill)`` pages, then EOS."""
    total = sum(length for _name, length in BLOCKS)
    out = [_word(total, fmt.RAM_FLAG_MEM_SIZE)]
    out += [bytes([len(n)]) + n + length.to_bytes(8, "big") for n, length in BLOCKS]
    last = None
    for block, index, kind, fill in pages:
        name = BLOCKS[block][0]
        flags = fmt.RAM_FLAG_PAGE if kind == "page" else fmt.RAM_FLAG_ZERO
        head = b""
        if last == block:
            flags |= fmt.RAM_FLAG_CONTINUE
        else:
            head = bytes([len(name)]) + name
        body = bytes([fill]) * page_size if kind == "page" else bytes([fill])
        out.append(_word(index * page_size, flags) + head + body)
        last = block
    out.append(_word(0, fmt.RAM_FLAG_EOS))
    return b"".join(out)


def _totals(data: bytes, page_size: int, *, slowly: bool) -> dict[bytes, Any] | str:
    decoder = RamDecoder(page_size, frozenset())
    if slowly:
        decoder._zero_run = lambda reader: (  # type: ignore[method-assign]
            decoder._zero_run_slowly(reader, decoder.last) if decoder.last else None
        )
    try:
        decoder.read_record(Reader(data))
    except StreamError as err:
        return str(err)
    return {n: (b.pages, b.nonzero, b.hasher.hexdigest()) for n, b in decoder.blocks.items()}


pages = st.lists(
    st.tuples(
        st.integers(0, 1),
        st.integers(0, 40),
        st.sampled_from(["zero", "zero", "zero", "page"]),
        st.sampled_from([0, 0, 0, 7]),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(pages, st.sampled_from([1 << 10, 1 << 12, 1 << 16]))
def test_the_fast_path_gives_the_slow_path_s_totals(pages, page_size) -> None:
    data = _records(pages, page_size)
    assert _totals(data, page_size, slowly=False) == _totals(data, page_size, slowly=True)


@pytest.mark.parametrize("count", [4095, 4096, 4097, 9000])
def test_runs_across_window_ends(count) -> None:
    data = _records([(0, i, "zero", 0) for i in range(count)], 1 << 12)
    fast = _totals(data, 1 << 12, slowly=False)
    assert fast == _totals(data, 1 << 12, slowly=True)
    assert isinstance(fast, dict) and fast[b"mach-virt.ram"][0] == count


def test_an_offset_past_the_block_stops_the_run_and_is_refused() -> None:
    inside = [(1, i, "zero", 0) for i in range(8)]
    data = _records([*inside, (1, 99, "zero", 0)], 1 << 12)  # virt.flash0 holds 16 pages
    fast = _totals(data, 1 << 12, slowly=False)
    assert fast == _totals(data, 1 << 12, slowly=True)
    assert isinstance(fast, str) and "outside block" in fast
