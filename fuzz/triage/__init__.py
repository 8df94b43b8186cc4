"""Triage: what a maintainer does with a finding. Explain it (:mod:`.diagnose`,
:mod:`.describe`, :mod:`.localize`), make it minimal (:mod:`.minimize`, :mod:`.ddmin`),
replay it (:mod:`.replay`, :mod:`.recheck`), find the versions that show it
(:mod:`.bisect`), and write it up for QEMU (:mod:`.bugreport`).

May import: everything below campaigns (:mod:`fuzz.core`, :mod:`fuzz.versions`,
:mod:`fuzz.run`, :mod:`fuzz.judge`, :mod:`fuzz.stream`, :mod:`fuzz.corpus`).
"""
