"""A bounded reader over the bytes of a migration stream.

Every read checks the remaining length first and raises :class:`~fuzz.errors.StreamError`
naming the offset and what was being read, so that no caller indexes past the end, slices a
short buffer without noticing, or allocates a length read from the stream before knowing that
many bytes are there.
"""

from __future__ import annotations

from struct import unpack_from

from fuzz.errors import StreamError


class Reader:
    """Reads big-endian integers and byte strings from ``data[pos:end]``.

    ``end`` lets the caller fence off a trailer (the JSON description) that the section
    decoder must never run into.
    """

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    @property
    def remaining(self) -> int:
        """How many bytes are left before ``end``."""
        return self.end - self.pos

    def need(self, count: int, expected: str) -> None:
        """Raise unless ``count`` more bytes are available.

        :raise StreamError: if fewer bytes remain (or ``count`` is negative).
        """
        if count < 0 or count > self.end - self.pos:
            raise StreamError(
                f"out of data: {expected} needs {count} bytes, {self.remaining} left",
                offset=self.pos,
                expected=expected,
            )

    def peek_u8(self) -> int | None:
        """Return the next byte without consuming it, or ``None`` at the end."""
        if self.pos >= self.end:
            return None
        return self.data[self.pos]

    def u8(self, expected: str) -> int:
        """Read one byte."""
        self.need(1, expected)
        value = self.data[self.pos]
        self.pos += 1
        return value

    def be16(self, expected: str) -> int:
        """Read a big-endian unsigned 16-bit integer."""
        self.need(2, expected)
        (value,) = unpack_from(">H", self.data, self.pos)
        self.pos += 2
        return int(value)

    def be32(self, expected: str) -> int:
        """Read a big-endian unsigned 32-bit integer."""
        self.need(4, expected)
        (value,) = unpack_from(">I", self.data, self.pos)
        self.pos += 4
        return int(value)

    def be64(self, expected: str) -> int:
        """Read a big-endian unsigned 64-bit integer."""
        self.need(8, expected)
        (value,) = unpack_from(">Q", self.data, self.pos)
        self.pos += 8
        return int(value)

    def take(self, count: int, expected: str) -> bytes:
        """Read ``count`` bytes; the length is checked before anything is copied."""
        self.need(count, expected)
        start = self.pos
        self.pos += count
        return self.data[start : self.pos]

    def str8(self, expected: str) -> bytes:
        """Read a length byte and that many bytes (QEMU's idstr encoding)."""
        length = self.u8(f"length byte of {expected}")
        return self.take(length, expected)
