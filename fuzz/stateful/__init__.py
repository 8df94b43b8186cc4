"""The stateful mode (``fuzz --stateful``): sequences of steps on live processes
(:mod:`.engine`, :mod:`.model`, :mod:`.procs`), the one interpreter of those steps that the
engine and the replay share (:mod:`.steps`), their replay (:mod:`.replay`) and plain-QEMU
``repro.sh`` (:mod:`.repro`), and the command's own part of the CLI (:mod:`.command`).

May import: every layer below campaigns, and :mod:`fuzz.campaign.loop` for its helpers.
"""
