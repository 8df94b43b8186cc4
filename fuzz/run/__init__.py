"""The run: one QEMU process (:mod:`.machine`), a save or a restore (:mod:`.runner`), the
long-lived process pool (:mod:`.persistent`), the owned event loop (:mod:`.session`),
and the one case path every command runs a case through (:mod:`.engine`).

May import: :mod:`fuzz.core` (a binary is a value there: the run never installs or
probes one), :mod:`fuzz.judge`, :mod:`fuzz.stream`, :mod:`fuzz.events`,
:mod:`fuzz.errors`.
"""
