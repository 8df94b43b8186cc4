"""The corpus: an entry's format on disk (:mod:`.entry`: ``case.json``, ``outcome.json``,
the stream, ``repro.sh``) and the store every entry is written through, with the claims
that let workers share it (:mod:`.store`). Pure of processes: it reads and writes files.

May import: :mod:`fuzz.core`, :mod:`fuzz.judge`, :mod:`fuzz.stream`, :mod:`fuzz.errors`.
"""
