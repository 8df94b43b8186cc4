"""The floor: plain values every layer stands on, and the QEMU command model.

A case (:mod:`.case`), its outcome (:mod:`.outcome`), the run settings (:mod:`.settings`),
a QEMU binary as a value (:mod:`.binary`), what a binary can do (:mod:`.capabilities`), and
the one place a QEMU command line is spelled (:mod:`.command`). Nothing here starts a
process, opens a socket or talks to QEMU.

May import: the standard library, :mod:`fuzz.errors`, and itself.
"""
