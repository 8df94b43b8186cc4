"""The judge: how a case's outcomes and state compare with its control (:mod:`.oracles`),
and the guest's read-back transcript (:mod:`.transcript`). Pure: it reads outcomes and
streams, it runs nothing.

May import: :mod:`fuzz.core`, :mod:`fuzz.stream`, :mod:`fuzz.errors`.
"""
