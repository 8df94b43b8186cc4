"""One case, one path: save on A, restore on A (the control) and on B (the pair), judge.

Every command that runs a case -- ``fuzz``, ``diff``, ``run``, ``repro``, ``regress`` and the
corpus tests -- calls :func:`execute_case` (through :class:`~fuzz.session.Session`), so a
case is run and judged the same way wherever it comes from: a finding recorded by the fuzz
loop replays under the very same property.

The source is saved once; the control and the pair restore byte-identical input. Each
completed restore is re-saved at once (still paused), and the judge compares the two
re-saves field by field, so the state oracle sees what B restored differently from A.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fuzz.case import Case
from fuzz.events import Event
from fuzz.farm import QemuBinary
from fuzz.machine import private_workdir
from fuzz.oracles import Divergence, Evidence, Judgement, Signature, judge
from fuzz.outcome import Stage, StepOutcome, TransferOutcome, Verdict
from fuzz.runner import FreshDestination, FreshSource, LoadResult
from fuzz.settings import RunSettings


def _noop(_event: Event) -> None:
    return None


@dataclass(frozen=True)
class CaseRun:
    """Everything one run of a case produced: outcomes, artifacts and the judgement."""

    case: Case
    evidence: Evidence
    source_stream: bytes | None
    judgement: Judgement

    @property
    def control(self) -> TransferOutcome:
        """A -> A."""
        return self.evidence.control

    @property
    def pair(self) -> TransferOutcome:
        """A -> B."""
        return self.evidence.pair

    @property
    def signature(self) -> Signature | None:
        """The divergence's signature, or None when the case showed none."""
        return self.judgement.signature if isinstance(self.judgement, Divergence) else None


async def execute_case(
    src: QemuBinary,
    dst: QemuBinary,
    case: Case,
    settings: RunSettings,
    *,
    emit: Callable[[Event], None] = _noop,
) -> CaseRun:
    """Run ``case`` on ``src -> src`` and ``src -> dst`` and judge it.

    Runs in a private temp folder that is gone when this returns.

    :raise HarnessError: the harness failed (never a verdict).
    """
    with private_workdir("migfuzz-case-") as tmp:
        workdir = Path(tmp)
        saved = await FreshSource(src, workdir, timeouts=settings.timeouts, emit=emit).save(case)

        async def restore(binary: QemuBinary) -> LoadResult | None:
            if saved.stream is None:
                return None
            destination = FreshDestination(
                binary, workdir, timeouts=settings.timeouts, emit=emit,
                trace_load=binary.name in settings.trace_versions,
            )  # fmt: skip
            return await destination.load(case, saved.stream, resave=settings.resave)

        control = await restore(src)
        control_done = control is not None and control.outcome.verdict is Verdict.COMPLETED
        if control_done or settings.pair_after_failed_control:
            pair = await restore(dst)
        elif saved.stream is not None:
            pair = LoadResult(StepOutcome(Stage.LOAD, dst.name, Verdict.NOT_RUN))
        else:
            pair = None
    evidence = Evidence(
        control=TransferOutcome(src.name, src.name, saved.outcome, _outcome(control)),
        pair=TransferOutcome(src.name, dst.name, saved.outcome, _outcome(pair)),
        control_resave=None if control is None else control.resave,
        pair_resave=None if pair is None else pair.resave,
    )
    return CaseRun(case, evidence, saved.stream, judge(evidence))


def _outcome(result: LoadResult | None) -> StepOutcome | None:
    return None if result is None else result.outcome
