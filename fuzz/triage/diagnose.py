"""A full report on one case: outcome, signature, responsible registers, changed state.

``migfuzz diff`` prints it; the fuzz loop stores its JSON in every reproducer's
``outcome.json``. It runs the case through the one case path (:mod:`fuzz.run.engine`), so its
verdict is the fuzz loop's and the replay's, then explains it: the control's own round trip
(the source's stream against A's re-save), the state the pair restored differently from the
control, and, for a refused ``cpu`` load, the responsible registers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case
from fuzz.core.outcome import Stage, TransferOutcome, Verdict
from fuzz.errors import StreamError
from fuzz.judge.oracles import Judgement, Signature
from fuzz.run.engine import CaseRun
from fuzz.run.machine import private_workdir
from fuzz.run.session import Session
from fuzz.stream.compare import StreamDiff, compare_resaves
from fuzz.triage.localize import Localization, localize_cpreg_refusal


@dataclass(frozen=True)
class Diagnosis:
    """Everything migfuzz can say about one case on one pair.

    ``control_state`` compares the source's stream with A's re-save (a same-version round
    trip); ``pair_state`` compares A's re-save with B's (what the pair restored
    differently, the state oracle's evidence).
    """

    run: CaseRun
    control_state: StreamDiff | None
    pair_state: StreamDiff | None
    localization: Localization | None
    notes: tuple[str, ...] = ()

    @property
    def control(self) -> TransferOutcome:
        """A -> A."""
        return self.run.control

    @property
    def pair(self) -> TransferOutcome:
        """A -> B."""
        return self.run.pair

    @property
    def judgement(self) -> Judgement:
        """The one judge's verdict on the case."""
        return self.run.judgement

    @property
    def signature(self) -> Signature | None:
        """The divergence signature, if the pair diverged."""
        return self.run.signature

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, as stored in ``outcome.json`` under ``findings``."""
        return {
            "signature": None if self.signature is None else str(self.signature),
            "control_state": None if self.control_state is None else self.control_state.to_json(),
            "pair_state": None if self.pair_state is None else self.pair_state.to_json(),
            "localization": None if self.localization is None else self.localization.to_json(),
            "notes": list(self.notes),
        }


def _compared(
    before: bytes | None, after: bytes | None, what: str, notes: list[str]
) -> StreamDiff | None:
    if before is None or after is None:
        return None
    try:
        return compare_resaves(before, after)
    except StreamError as err:
        notes.append(f"{what} not compared: {err}")
        return None


def explain(session: Session, run: CaseRun, dst: QemuBinary, *, localize: bool = True) -> Diagnosis:
    """Explain a case that has already run (see :func:`diagnose`)."""
    notes: list[str] = []
    evidence = run.evidence
    control_state = _compared(
        run.source_stream, evidence.control_resave, "control round trip", notes
    )
    pair_state = _compared(evidence.control_resave, evidence.pair_resave, "pair state", notes)
    localization = None
    step = run.pair.failing_step
    refused_load = step is not None and step.verdict is Verdict.REFUSED and step.stage is Stage.LOAD
    if localize and refused_load and run.source_stream is not None:
        with private_workdir("migfuzz-localize-") as tmp:
            try:
                localization = localize_cpreg_refusal(
                    session, run.source_stream, dst, run.case, Path(tmp)
                )
            except StreamError as err:
                notes.append(f"localization impossible: {err}")
    return Diagnosis(run, control_state, pair_state, localization, tuple(notes))


def diagnose(
    session: Session, src: QemuBinary, dst: QemuBinary, case: Case, *, localize: bool = True
) -> Diagnosis:
    """Run ``case`` on ``src -> src`` and ``src -> dst`` (the one case path); explain it."""
    return explain(session, session.run_case(src, dst, case), dst, localize=localize)
