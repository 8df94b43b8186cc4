#!/usr/bin/env python3
"""Coverage-guided fuzzing of the migration stream decoder with Atheris (libFuzzer).

The decoder reads untrusted files, so on any input it must return a ``Stream`` or raise
``StreamError``; any other exception (and a hang or a memory blow-up, which libFuzzer reports
through ``-timeout`` and ``-rss_limit_mb``) is a crash.

Usage::

    # a seed: a real stream with its RAM pages dropped (keeps every other record; decodes fast)
    python scripts/fuzz_stream_decoder.py --make-seed saved.stream seeds/s.bin
    # fuzz, with the usual libFuzzer options and corpus directories
    python scripts/fuzz_stream_decoder.py -max_total_time=60 -timeout=10 work-corpus/ seeds/

Byte corpora are tied to this decoder and to libFuzzer: keep them out of ``corpus/``.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["fuzz.stream"]):
    from fuzz.errors import StreamError
    from fuzz.stream.decode import SectionKind, decode_stream

_EOS_RECORD = (0x10).to_bytes(8, "big")
"""A RAM record with only the end-of-section flag: the smallest valid RAM payload."""


def TestOneInput(data: bytes) -> None:
    """Decode ``data``; a ``StreamError`` is the expected way to refuse it."""
    with contextlib.suppress(StreamError):
        decode_stream(data)


def make_seed(data: bytes) -> bytes:
    """Return the stream ``data`` with the payload of each later RAM record cut to a bare EOS.

    The RAM block list (in the ``START`` record) and every device section stay, so the seed
    still covers the whole grammar while decoding in a few milliseconds.

    :raise StreamError: if ``data`` is not a stream the decoder reads.
    """
    stream = decode_stream(data)
    out = bytearray()
    position = 0
    for section in stream.sections:
        if section.kind in (SectionKind.PART, SectionKind.END):
            out += data[position : section.body_offset] + _EOS_RECORD
            position = section.body_end
    out += data[position:]
    return bytes(out)


def main(argv: list[str]) -> None:
    """Write a seed (``--make-seed SRC DST``) or run libFuzzer with ``argv``."""
    if len(argv) == 4 and argv[1] == "--make-seed":
        Path(argv[3]).write_bytes(make_seed(Path(argv[2]).read_bytes()))
        return
    atheris.Setup(argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
