"""Every event migfuzz emits, in one place: the engine's, the fuzz loop's, the campaign's.

Nothing below the CLI prints: each layer calls an ``emit(event)`` function it was given,
and the CLI turns events into its display (:mod:`fuzz.status_panel`). The campaign also
logs them to its folder's ``events.jsonl`` (:func:`fuzz.campaign.driver.event_record`), which the
report and a resume read back. Events are frozen dataclasses of plain values; this module
imports only value modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fuzz.core.case import Pair
from fuzz.core.outcome import Stage, StepOutcome
from fuzz.judge.oracles import Signature


@dataclass(frozen=True)
class StepStarted:
    """A save or restore is starting on one version."""

    stage: Stage
    version: str


@dataclass(frozen=True)
class StepFinished:
    """A save or restore ended."""

    outcome: StepOutcome


#: What one case's steps emit (the engine, the runner, the long-lived pool).
Event = StepStarted | StepFinished


# -- the fuzz loop (one worker) ----------------------------------------------------------


@dataclass(frozen=True)
class CaseJudged:
    """One drawn case ran (shrinking steps are not counted)."""

    pair: Pair
    kind: str
    """``agree``, ``invalid``, ``control-failed`` or ``divergence``."""
    signature: Signature | None
    reason: str
    seconds: float
    worker: int = -1
    causes: tuple[Signature, ...] = ()
    """Every root cause the case showed (the headline ``signature`` first)."""
    case: str = ""
    """:meth:`Case.key <fuzz.core.case.Case.key>` of the drawn case: which case it was, so two
    campaigns' logs tell whether they drew the same cases."""
    live: tuple[str, ...] = ()
    """A live case's transport and features (:meth:`LiveMigration.features
    <fuzz.core.live.LiveMigration.features>`); empty for a paused one."""


@dataclass(frozen=True)
class FindingSeen:
    """A new signature was claimed by this worker and its first case written to ``path``."""

    signature: Signature
    pair: Pair
    path: Path
    worker: int = -1
    behind: tuple[str, ...] = ()
    """The refusal it was found behind (its causes), for one found past a refusal."""


@dataclass(frozen=True)
class ReproducerWritten:
    """The minimal reproducer of ``signature`` replaced its first case in ``path``."""

    signature: Signature
    path: Path
    minimize_tests: int


@dataclass(frozen=True)
class ReproducerUnstable:
    """The minimal case no longer showed ``signature``: the first case is kept as it is."""

    signature: Signature
    path: Path
    now: str


@dataclass(frozen=True)
class FindingFlaky:
    """A new signature that its own case did not show again reliably: recorded apart (in
    ``path``), never shrunk. ``reliability`` is "hits/runs", the first meeting included."""

    signature: Signature
    pair: Pair
    path: Path
    reliability: str


@dataclass(frozen=True)
class RunStarted:
    """Worker ``worker`` started Hypothesis run ``run_index`` (its seed is derived from it).

    A resumed campaign starts each worker again at the last run it started (see
    :class:`fuzz.campaign.folder.ResumeState`).
    """

    worker: int
    run_index: int


@dataclass(frozen=True)
class CoverageMeasured:
    """One save's state coverage was measured (a sample of the saves: see
    :mod:`fuzz.campaign.coverage`): the fields it carried with a value other than at reset.

    Not logged to ``events.jsonl`` (a measured save names hundreds of fields): the driver
    adds them up into the campaign folder's ``coverage.json``.
    """

    version: str
    """The version that saved it."""
    exercised: tuple[str, ...]
    """Its fields (rule paths, :func:`fuzz.stream.compare.rule_path`) that differ from reset."""
    known: tuple[str, ...] = ()
    """Fields of the reset reference this worker has not reported for ``version`` yet: with
    the earlier events', every field the version's references held."""
    worker: int = -1
    seconds: float = 0.0
    """What measuring it cost (a reset reference's save included, if one was made)."""


LoopEvent = (
    CaseJudged | FindingSeen | FindingFlaky | ReproducerWritten | ReproducerUnstable | RunStarted
    | CoverageMeasured
)  # fmt: skip


# -- the campaign (the driver and its workers) -------------------------------------------


@dataclass(frozen=True)
class WorkerStarted:
    """A worker (by its seed slot) started."""

    worker: int


@dataclass(frozen=True)
class WorkerFinished:
    """A worker ended normally: how its cases ran, and the CPU time it and its QEMUs used."""

    worker: int
    engine: dict[str, int]
    python_seconds: float
    qemu_seconds: float
    complete: bool = True
    """False when the driver stopped it before its share of the work was done."""


@dataclass(frozen=True)
class WorkerLost:
    """A worker died; ``replaced`` says whether a new one took its place."""

    worker: int
    reason: str
    replaced: bool


@dataclass(frozen=True)
class Progress:
    """Periodic: cases run so far, seconds elapsed, distinct signatures, workers alive.

    ``since_new`` is the time since the last new signature (None: none yet);
    ``control_failures`` counts cases whose A -> A control did not complete;
    ``shrinking`` names the signatures being shrunk now.
    """

    cases: int
    seconds: float
    signatures: int
    workers: int
    new: int = 0
    since_new: float | None = None
    control_failures: int = 0
    shrinking: tuple[str, ...] = ()
    fields_exercised: int = 0
    """State coverage so far: fields some measured save exercised, summed over versions
    (earlier sessions included; see :class:`CoverageMeasured`)."""


CampaignEvent = LoopEvent | WorkerStarted | WorkerFinished | WorkerLost | Progress


# -- a campaign session (around the campaign) -------------------------------------------


@dataclass(frozen=True)
class SessionBegins:
    """A campaign session begins: its seed, pairs, workers, where its findings go, and
    what it has to spend (the rest of the budget on a resume)."""

    seed: int
    pairs: tuple[Pair, ...]
    jobs: int
    where: str
    """``campaign folder DIR`` or ``corpus DIR``."""
    session: int
    """1 for a new campaign; more for a resumed one."""
    budget_seconds: float | None
    max_cases: int | None
    deadline: float | None
    """The wall-clock time (``time.time()``) the budget runs out, if it has one."""


@dataclass(frozen=True)
class RecheckSkipped:
    """An entry the re-check could not replay (a version this farm lacks, a corrupt one)."""

    line: str


@dataclass(frozen=True)
class RecheckBegins:
    """``count`` open findings are on binaries they were not recorded on: replayed first.
    Each one's result follows as a :class:`fuzz.triage.recheck.Rechecked`."""

    count: int


@dataclass(frozen=True)
class RecheckEnded:
    """The re-check is done: the signatures it found fixed, of ``total`` replayed."""

    fixed: tuple[str, ...]
    total: int
