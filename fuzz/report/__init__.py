"""The campaign report: the event log and corpus read into plain data in one streaming
pass (:mod:`.gather`), drawn as HTML (:mod:`.html`) and PNG plots (:mod:`.plots`), and the
regress run's JUnit XML (:mod:`.junit`).

May import: :mod:`fuzz.core`, :mod:`fuzz.corpus`, :mod:`fuzz.campaign.folder` (the log),
:mod:`fuzz.triage.replay` (regress verdicts); never starts QEMU.
"""
