"""Every knob of a run in one typed place: time-outs and what a case records.

A campaign writes these into its record so that a run can be repeated exactly; commands
build them from their flags. Nothing here starts a process.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Timeouts:
    """Seconds each phase may take before the step is classified as hung."""

    start: float = 20.0
    checkpoint: float = 15.0
    migrate: float = 30.0
    transcript: float = 15.0


DEFAULT_TIMEOUTS = Timeouts()


@dataclass(frozen=True)
class RunSettings:
    """How one case is run.

    :param timeouts: per-phase time-outs.
    :param resave: re-save each completed restore at once (the state round-trip oracle).
    :param trace_versions: the versions whose destination traces its load path
        (``vmstate_load*``): where loading stopped is part of some signatures, so a replay
        must trace exactly where the recording did; the probe says where tracing works.
    :param pair_after_failed_control: restore on B even when A -> A did not complete
        (``run``/``diff`` show both; the fuzz loop skips the pointless restore).
    :param reuse: run cases first on long-lived processes (the fuzz loop); the others run
        every case on fresh processes, the canonical path reproducers record.
    :param fresh_sample_every: with ``reuse``, also run one clean case in this many on
        fresh processes and compare.
    :param past_refusals: load a pair refused on its cpreg list again with the list
        patched, and judge what follows (:mod:`fuzz.run.past_refusal`).
    :param behind_every: with ``past_refusals``, load past the refusal (and judge what lies
        behind it) for one refused pair in this many, chosen by the case and destination
        (the same choice on every replay); every refusal is signed by its causes all the
        same. 1: every one.
    :param tolerance: also load the source's stream with one cpreg left out on the source,
        and judge QEMU's promise that it keeps its reset value (:mod:`fuzz.run.tolerance`).
    :param file_uri_versions: the versions whose ``migrate`` takes a ``file:`` URI (QEMU
        >= 8.2): they write and read streams themselves; the others go through an
        ``exec:cat``, a shell and a ``cat`` per migration (~6 ms of CPU each, measured).
        The stream is the same bytes either way.
    """

    timeouts: Timeouts = field(default_factory=Timeouts)
    resave: bool = True
    trace_versions: frozenset[str] = frozenset()
    pair_after_failed_control: bool = False
    reuse: bool = False
    fresh_sample_every: int = 20
    file_uri_versions: frozenset[str] = frozenset()
    past_refusals: bool = True
    behind_every: int = 4
    tolerance: bool = False

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for a campaign's record)."""
        data = asdict(self)
        data["trace_versions"] = sorted(self.trace_versions)
        data["file_uri_versions"] = sorted(self.file_uri_versions)
        return data
