"""The iterative ``ram`` section, read and summarized rather than kept.

A precopy stream sends RAM in records of a big-endian 64-bit word (page offset in its block,
flags in the bits below the page size) followed by what the flags announce:

* ``MEM_SIZE``: total RAM; then each block's name (length byte + bytes) and length, and with
  ``x-ignore-shared`` its guest address;
* ``ZERO``/``PAGE``/``XBZRLE``: a page of the block named after the word, or of the previous
  page's block when ``CONTINUE`` is set; then one fill byte, a whole page, or an encoding byte,
  a 16-bit length and an XBZRLE delta;
* ``MULTIFD_FLUSH``: nothing; ``EOS``: end of this section record.

The samples saved by QEMU 5.2 to 11.1 use ``MEM_SIZE``, ``ZERO``, ``PAGE``, ``CONTINUE`` and
``EOS``. Compressed pages, RDMA hooks, postcopy and ``mapped-ram`` are refused with a
:class:`~fuzz.errors.StreamError` saying so.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from struct import Struct, pack

from fuzz.errors import StreamError
from fuzz.stream import format as fmt
from fuzz.stream.model import RamBlock, RamSummary
from fuzz.stream.reader import Reader

__all__ = ["RamDecoder"]

_ZERO_CONTINUE = fmt.RAM_FLAG_ZERO | fmt.RAM_FLAG_CONTINUE
_BE64 = Struct(">Q")
_ZERO_RECORD = Struct(">QB")
_PAGE_KINDS = frozenset({fmt.RAM_FLAG_ZERO, fmt.RAM_FLAG_PAGE, fmt.RAM_FLAG_XBZRLE})
#: The low byte of a ``ZERO | CONTINUE`` record's word (the flags live in the low bits).
_ZERO_CONTINUE_LOW = bytes([_ZERO_CONTINUE & 0xFF])
#: Records :meth:`RamDecoder._zero_run` looks at in one go (bounds its work per call).
_ZERO_RUN_WINDOW = 4096


def _hasher() -> hashlib.blake2b:
    return hashlib.blake2b(digest_size=16)


@dataclass(slots=True)
class _Block:
    """Running totals for one declared RAM block."""

    name: str
    length: int
    pages: int = 0
    nonzero: int = 0
    xbzrle: int = 0
    hasher: hashlib.blake2b = field(default_factory=_hasher)


class RamDecoder:
    """Reads the ``START``, ``PART`` and ``END`` records of the ``ram`` section in turn.

    The decoder keeps the declared blocks and the block of the last page between records, as
    QEMU's loader does, and adds every page to its block's totals.
    """

    def __init__(self, page_size: int, capabilities: frozenset[bytes]) -> None:
        self.page_size = page_size
        self.ignore_shared = fmt.CAP_IGNORE_SHARED in capabilities
        self.mapped_ram = fmt.CAP_MAPPED_RAM in capabilities
        self.total_bytes = 0
        self.declared = False
        self.blocks: dict[bytes, _Block] = {}
        self.last: _Block | None = None
        self.zero_page = bytes(page_size)
        # Byte 6 of a record's word: 1 where it holds a flag bit (set), else 0.
        high_mask = ((page_size - 1) >> 8) & 0xFF
        self._flag_bits_of_byte_6 = bytes(int(b & high_mask != 0) for b in range(256))

    def read_record(self, reader: Reader) -> None:
        """Read one section record's worth of RAM, up to and including its ``EOS``.

        :raise StreamError: on truncation, unknown blocks or flags, pages outside their block,
            or a feature this decoder does not read.
        """
        flag_mask = self.page_size - 1
        while True:
            self._zero_run(reader)
            word_offset = reader.pos
            word = reader.be64("RAM record header (be64 offset | flags)")
            flags = word & flag_mask
            kind = flags & ~fmt.RAM_FLAG_CONTINUE
            if kind in _PAGE_KINDS:
                self._page(reader, word ^ flags, flags, word_offset)
            elif kind == fmt.RAM_FLAG_EOS:
                return
            elif kind == fmt.RAM_FLAG_MEM_SIZE:
                self._mem_size(reader, word ^ flags, word_offset)
            elif kind != fmt.RAM_FLAG_MULTIFD_FLUSH:
                raise StreamError(
                    f"RAM record flags {flags:#x} are {self._why_not(kind)}",
                    offset=word_offset,
                    expected="one of ZERO, PAGE, XBZRLE, MEM_SIZE, MULTIFD_FLUSH or EOS "
                    "(with CONTINUE)",
                )

    def _page(self, reader: Reader, addr: int, flags: int, word_offset: int) -> None:
        """Read the body of a ``ZERO``, ``PAGE`` or ``XBZRLE`` record and add it to its block."""
        block = self._page_block(reader, flags, word_offset)
        if addr >= block.length:
            raise StreamError(
                f"RAM page at offset {addr:#x} is outside block {block.name!r} "
                f"of {block.length:#x} bytes",
                offset=word_offset,
                expected=f"a page offset below {block.length:#x}",
            )
        block.pages += 1
        kind = flags & ~fmt.RAM_FLAG_CONTINUE
        if kind == fmt.RAM_FLAG_ZERO:
            fill = reader.u8("fill byte of a zero page")
            page = bytes([fill]) * self.page_size if fill else self.zero_page
        elif kind == fmt.RAM_FLAG_PAGE:
            page = reader.take(self.page_size, f"{self.page_size}-byte page of {block.name!r}")
        else:
            block.xbzrle += 1
            block.hasher.update(_ZERO_RECORD.pack(addr, 2) + self._xbzrle(reader))
            return
        if page == self.zero_page:
            block.hasher.update(_ZERO_RECORD.pack(addr, 0))
        else:
            block.nonzero += 1
            block.hasher.update(_ZERO_RECORD.pack(addr, 1) + page)

    def _zero_run(self, reader: Reader) -> None:
        """Consume a run of ``ZERO | CONTINUE`` records with fill byte 0, if one starts here.

        A fresh guest's RAM is mostly such records (16,384 for 64 MiB). They are taken a
        window at a time with byte-string operations instead of one record at a time: a
        record is the be64 word ``offset | flags`` and a fill byte, so the run is where the
        word's low byte is the flags (and the byte above holds no flag bit) and the fill
        byte is 0, and each record hashes as its offset and fill, which is the record with
        its flags byte cleared. Same totals as :meth:`_page`, several times faster; a
        page size whose flag bits reach past the word's two low bytes takes the slow path.
        """
        block = self.last
        if block is None:
            return
        if self.page_size > 1 << 16:
            self._zero_run_slowly(reader, block)
            return
        data, pos, end = reader.data, reader.pos, reader.end
        while True:
            count = min((end - pos) // 9, _ZERO_RUN_WINDOW)
            window = data[pos : pos + 9 * count]
            flags_low = window[7::9]
            fills = window[8::9]
            flags_high = window[6::9].translate(self._flag_bits_of_byte_6)
            run = min(
                count - len(flags_low.lstrip(_ZERO_CONTINUE_LOW)),
                count - len(fills.lstrip(b"\0")),
                count - len(flags_high.lstrip(b"\0")),
            )
            if run == 0:
                break
            words = bytearray(window[: 9 * run])
            del words[8::9]
            offsets = Struct(f">{run}Q").unpack(words)
            if max(offsets) ^ _ZERO_CONTINUE >= block.length:  # stop before a stray page
                run = next(i for i, w in enumerate(offsets) if w ^ _ZERO_CONTINUE >= block.length)
                if run == 0:
                    break
            records = bytearray(window[: 9 * run])
            records[7::9] = bytes(run)
            block.hasher.update(records)
            block.pages += run
            pos += 9 * run
            if run < count or count < _ZERO_RUN_WINDOW:
                break
        reader.pos = pos

    def _zero_run_slowly(self, reader: Reader, block: _Block) -> None:
        """:meth:`_zero_run` one record at a time (page sizes above 64 KiB)."""
        data, pos, end = reader.data, reader.pos, reader.end
        flag_mask = self.page_size - 1
        first = pos
        while pos + 9 <= end:
            (word,) = _BE64.unpack_from(data, pos)
            if word & flag_mask != _ZERO_CONTINUE or data[pos + 8]:
                break
            addr = word ^ _ZERO_CONTINUE
            if addr >= block.length:
                break
            block.hasher.update(_ZERO_RECORD.pack(addr, 0))
            pos += 9
        block.pages += (pos - first) // 9
        reader.pos = pos

    @staticmethod
    def _why_not(kind: int) -> str:
        if kind == fmt.RAM_FLAG_COMPRESS_PAGE:
            return "a compressed page, which this decoder does not read"
        if kind == fmt.RAM_FLAG_HOOK:
            return "an RDMA hook, which has no meaning in a file"
        return "not a combination QEMU accepts"

    def _page_block(self, reader: Reader, flags: int, word_offset: int) -> _Block:
        if flags & fmt.RAM_FLAG_CONTINUE:
            if self.last is None:
                raise StreamError(
                    "RAM page continues a block but no block was named before",
                    offset=word_offset,
                    expected="a first page header without CONTINUE, naming its block",
                )
            return self.last
        name_offset = reader.pos
        name = reader.str8("RAM block name")
        block = self.blocks.get(name)
        if block is None:
            raise StreamError(
                f"RAM page names block {name!r}, which the stream did not declare",
                offset=name_offset,
                expected="a declared block: " + ", ".join(repr(b) for b in list(self.blocks)[:8]),
            )
        self.last = block
        return block

    def _xbzrle(self, reader: Reader) -> bytes:
        start = reader.pos
        encoding = reader.u8("XBZRLE encoding byte")
        if encoding != fmt.XBZRLE_ENCODING:
            raise StreamError(
                f"XBZRLE page has encoding byte {encoding:#04x}",
                offset=start,
                expected=f"encoding byte {fmt.XBZRLE_ENCODING:#04x}",
            )
        length_offset = reader.pos
        length = reader.be16("XBZRLE delta length")
        if length > self.page_size:
            raise StreamError(
                f"XBZRLE delta of {length} bytes is longer than a page",
                offset=length_offset,
                expected=f"at most {self.page_size} bytes",
            )
        return reader.take(length, "XBZRLE delta")

    def _mem_size(self, reader: Reader, total: int, word_offset: int) -> None:
        if self.mapped_ram:
            raise StreamError(
                "stream uses mapped-ram, whose pages this decoder does not read",
                offset=word_offset,
                expected="a precopy stream without mapped-ram",
            )
        if self.declared:
            raise StreamError(
                "RAM blocks are declared a second time",
                offset=word_offset,
                expected="one MEM_SIZE record per stream",
            )
        self.declared = True
        self.total_bytes = total
        remaining = total
        while remaining > 0:
            if len(self.blocks) >= fmt.MAX_RAM_BLOCKS:
                raise StreamError(
                    f"more than {fmt.MAX_RAM_BLOCKS} RAM blocks",
                    offset=reader.pos,
                    expected="fewer RAM blocks",
                )
            name_offset = reader.pos
            name = reader.str8("RAM block name")
            length = reader.be64(f"length of RAM block {name!r}")
            if self.ignore_shared:
                reader.be64(f"guest address of RAM block {name!r} (x-ignore-shared)")
            if length > remaining:
                raise StreamError(
                    f"RAM block {name!r} of {length:#x} bytes overruns the declared total "
                    f"({remaining:#x} left of {total:#x})",
                    offset=name_offset,
                    expected="block lengths adding up to the MEM_SIZE total",
                )
            if name in self.blocks:
                raise StreamError(
                    f"RAM block {name!r} is declared twice",
                    offset=name_offset,
                    expected="distinct block names",
                )
            self.blocks[name] = _Block(name.decode("utf-8", "backslashreplace"), length)
            remaining -= length

    def summary(self) -> RamSummary:
        """Return the totals of every record read so far."""
        blocks = tuple(
            RamBlock(
                name=b.name,
                length=b.length,
                pages=b.pages,
                nonzero_pages=b.nonzero,
                xbzrle_pages=b.xbzrle,
                digest=b.hasher.hexdigest(),
            )
            for b in self.blocks.values()
        )
        overall = _hasher()
        for raw_name, block in zip(self.blocks, blocks, strict=True):
            overall.update(pack(">B", len(raw_name)) + raw_name)
            overall.update(pack(">Q", block.length) + bytes.fromhex(block.digest))
        return RamSummary(
            page_size=self.page_size,
            total_bytes=self.total_bytes,
            blocks=blocks,
            pages=sum(b.pages for b in blocks),
            nonzero_pages=sum(b.nonzero_pages for b in blocks),
            digest=overall.hexdigest(),
        )
