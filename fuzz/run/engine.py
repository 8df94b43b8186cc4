"""One case, one path: save on A, restore on A (the control) and on B (the pair), judge.

Every command that runs a case -- ``fuzz``, ``diff``, ``run``, ``repro``, ``regress`` and the
corpus tests -- goes through :class:`CaseRunner` (owned by a :class:`~fuzz.run.session.Session`),
so a case is run and judged the same way wherever it comes from: a finding recorded by the
fuzz loop replays under the very same property.

The source is saved once; the control and the pair restore identical input (a same-version
pair restores once: its control is the pair). One save and one control may serve several
destinations at once (the fuzz loop's fan-out), each pair judged on its own. Each completed
restore is re-saved at once (still paused), and the judge compares the two re-saves field by
field, so the state oracle sees what B restored differently from A.

A pair refused on the CPU's register list is loaded once more with the list patched
(:mod:`fuzz.run.past_refusal`, ``RunSettings.past_refusals``): the refusal is signed by the
registers the patch changed, and whatever the patched load shows is judged like any case.
It runs on fresh processes only, inside this path, so a replay meets it as the campaign did.

Where the steps run is the runner's choice, not the caller's. :func:`execute_cases` starts a
fresh QEMU per step: the canonical path, whose outcomes and streams reproducers record, and
the one every command but ``fuzz`` uses. With ``RunSettings.reuse`` (``migfuzz fuzz``'s
default; ``--no-reuse`` turns it off), cases of a configuration that more cases share
first run on long-lived processes (:mod:`fuzz.run.persistent`); a case they do not pass cleanly
is run again on fresh processes, whose result is the one reported, and one in
``fresh_sample_every`` of those they pass is too (a guest that reports its own exception
before its checkpoint passes: that is the guest's doing, whichever process ran it). Where
the two disagree although the long-lived source saved the case, that is a finding of its
own kind (``reuse``). Long-lived processes serve a pair only once its recent cases all
loaded cleanly: a pair that refuses would retire its destination after every case, so
there they only add work. Such disagreements led to a
QEMU bug (11.1 runs stale translated code after a snapshot load), which the long-lived
destinations now work around (:func:`~fuzz.run.persistent.drop_stale_translations`).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case, MachineConfig
from fuzz.core.counts import count_each
from fuzz.core.devices import DEVICE_COUNT_PREFIX, pci_drivers
from fuzz.core.live import FEATURE_COUNT_PREFIX
from fuzz.core.outcome import Stage, StepOutcome, TransferOutcome, Verdict
from fuzz.core.settings import RunSettings
from fuzz.events import Event
from fuzz.judge.oracles import (
    Agree,
    Divergence,
    Evidence,
    InvalidCase,
    Judgement,
    Signature,
    judge,
    normalize_message,
)
from fuzz.judge.past_refusal import PastRefusal, unnamed_refusal
from fuzz.judge.tolerance import ToleranceCheck
from fuzz.run.live_case import execute_live, live_load_failed, live_signed, signed_as_paused
from fuzz.run.machine import private_workdir
from fuzz.run.past_refusal import RefusalPatcher
from fuzz.run.persistent import ProcessPool
from fuzz.run.runner import Destination, FreshDestination, FreshSource, LoadResult, SaveResult
from fuzz.run.tolerance import ToleranceChecker

#: Long-lived processes serve a pair once both restores of its last this-many cases completed
#: (whichever processes ran them). Where a pair refuses, a long-lived destination is
#: retired after every case and its first look is work done twice.
PAIR_MEMORY = 4


def _noop(_event: Event) -> None:
    return None


@dataclass(frozen=True)
class CaseRun:
    """Everything one run of a case produced: outcomes, artifacts and the judgement.

    ``source_stream`` is the source's migration stream when the case ran on fresh
    processes (what reproducers store); None when it ran on long-lived ones.
    """

    case: Case
    evidence: Evidence
    source_stream: bytes | None
    judgement: Judgement
    reused: bool = False
    past: PastRefusal | None = None
    """The pair's second load past its cpreg refusal (:mod:`fuzz.run.past_refusal`), if
    one was made: ``judgement`` then joins both loads' causes."""
    tolerance: ToleranceCheck | None = None
    """The source's load of its own stream with one cpreg left out (:mod:`fuzz.run.tolerance`),
    if one was made: its broken promises are among ``judgement``'s causes."""

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

    @property
    def causes(self) -> tuple[Signature, ...]:
        """Every root cause of the divergence (none when the case showed none)."""
        judgement = self.judgement
        return judgement.signatures() if isinstance(judgement, Divergence) else ()


async def _steps(
    src: QemuBinary,
    dsts: Sequence[QemuBinary],
    case: Case,
    settings: RunSettings,
    *,
    save: Callable[[], Awaitable[SaveResult]],
    destination: Callable[[QemuBinary], Awaitable[Destination]],
    resave: bool,
) -> tuple[SaveResult, list[Evidence]]:
    """Save once, restore on the control and (if it completed) on every destination; the
    evidence of each pair ``src -> dst``, in the order of ``dsts``.

    One save serves every destination, and one control serves every pair: they all load
    byte-identical input, so each pair is judged against the same A -> A.

    A same-version pair restores once: its control *is* the pair, so a second restore
    could only tell run-to-run noise, which :func:`~fuzz.campaign.loop.measure_reliability`
    measures for every finding anyway.
    """
    saved = await save()

    async def restore(binary: QemuBinary) -> LoadResult | None:
        state = saved.state
        if state is None:
            return None
        return await (await destination(binary)).load(case, state, resave=resave)

    control = await restore(src)
    control_done = control is not None and control.outcome.verdict is Verdict.COMPLETED
    evidence = []
    for dst in dsts:
        if dst.name == src.name:
            pair = control  # A -> A is its own control: a second restore only measures noise
        elif control_done or settings.pair_after_failed_control:
            pair = await restore(dst)
        elif saved.state is not None:
            pair = LoadResult(StepOutcome(Stage.LOAD, dst.name, Verdict.NOT_RUN))
        else:
            pair = None
        evidence.append(
            Evidence(
                control=TransferOutcome(src.name, src.name, saved.outcome, _outcome(control)),
                pair=TransferOutcome(src.name, dst.name, saved.outcome, _outcome(pair)),
                control_resave=None if control is None else control.resave,
                pair_resave=None if pair is None else pair.resave,
                source_stream=saved.stream,
                pci_devices=pci_drivers(case.config.devices),
            )
        )
    return saved, evidence


def _outcome(result: LoadResult | None) -> StepOutcome | None:
    return None if result is None else result.outcome


async def execute_cases(
    src: QemuBinary,
    dsts: Sequence[QemuBinary],
    case: Case,
    settings: RunSettings,
    *,
    emit: Callable[[Event], None] = _noop,
    patcher: RefusalPatcher | None = None,
    checker: ToleranceChecker | None = None,
) -> list[CaseRun]:
    """Run ``case`` on fresh processes: one save on ``src``, one control, a restore on
    every destination; one judged run per destination, in order.

    With a ``patcher``, a pair refused on its cpreg list is loaded again past the refusal
    and judged there too (:mod:`fuzz.run.past_refusal`). With a ``checker``, the source
    loads its own stream with one cpreg left out (:mod:`fuzz.run.tolerance`), once per
    case; its broken promises join the first destination's run.

    Runs in a private temp folder that is gone when this returns.

    A live case (``case.live``) migrates its running guest once per transfer instead
    (:mod:`fuzz.run.live_case`), judged by the same judge; nothing is looked past or
    checked for tolerance there (both edit a stream, and a live case keeps none).

    :raise HarnessError: the harness failed (never a verdict).
    """
    if case.live is not None:
        evidence = await execute_live(src, dsts, case, settings)
        return [CaseRun(case, each, None, live_signed(judge(each), each)) for each in evidence]
    with private_workdir("migfuzz-case-") as tmp:
        workdir = Path(tmp)
        files = settings.file_uri_versions
        source = FreshSource(
            src, workdir, timeouts=settings.timeouts, emit=emit, file_uri=src.name in files
        )

        async def destination(binary: QemuBinary) -> Destination:
            return FreshDestination(
                binary, workdir, timeouts=settings.timeouts, emit=emit,
                trace_load=binary.name in settings.trace_versions,
                file_uri=binary.name in files,
            )  # fmt: skip

        saved, evidence = await _steps(
            src, dsts, case, settings, save=lambda: source.save(case), destination=destination,
            resave=settings.resave,
        )  # fmt: skip

        async def own_save(binary: QemuBinary, case: Case) -> SaveResult:
            return await FreshSource(
                binary, workdir, timeouts=settings.timeouts, emit=emit,
                file_uri=binary.name in files,
            ).save(case)  # fmt: skip

        runs = []
        for dst, each in zip(dsts, evidence, strict=True):
            judgement, past = judge(each), None
            load = looks_behind(case, dst, settings.behind_every)
            # A refusal QEMU named needs no edits to be signed: looked past only if sampled.
            worth = isinstance(judgement, Divergence) and (load or unnamed_refusal(judgement))
            if patcher is not None and isinstance(judgement, Divergence) and worth:
                past = await patcher.look_past(
                    src, dst, case, each, judgement, save=own_save, destination=destination,
                    resave=settings.resave, load=load,
                )  # fmt: skip
            if past is not None:
                judgement = past.joined()
            runs.append(CaseRun(case, each, saved.stream, judgement, past=past))
        if checker is not None and runs and _control_clean(runs[0].judgement):
            check = await checker.check(
                src, case, runs[0].evidence, save=own_save, destination=destination,
                resave=settings.resave,
            )  # fmt: skip
            if check is not None:
                runs[0] = _with_tolerance(runs[0], check)
    return runs


def looks_behind(case: Case, dst: QemuBinary, every: int) -> bool:
    """Whether a refused pair of ``case`` on ``dst`` is loaded past its refusal: one in
    ``every``, by the case's key and the destination, so that a replay, a reliability
    check or a shrink of the same case decides the same. Measured: loading every refused
    pair past its refusal halved a default campaign's cases per second (5.25 -> 2.56)."""
    if every <= 1:
        return True
    digest = hashlib.sha256(f"{case.key()}/{dst.name}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % every == 0


def _control_clean(judgement: Judgement) -> bool:
    """Whether A -> A came back clean (whatever the pair did): a tolerance check compares
    with the control, so only then."""
    if isinstance(judgement, Agree):
        return True
    return isinstance(judgement, Divergence) and not any(
        c.same_version for c in judgement.signatures()
    )


def _with_tolerance(run: CaseRun, check: ToleranceCheck) -> CaseRun:
    """``run`` with the tolerance check's broken promises among its causes."""
    if not check.causes:
        return replace(run, tolerance=check)
    judgement = run.judgement
    own = judgement.signatures() if isinstance(judgement, Divergence) else ()
    causes = own + tuple(c for c in check.causes if c not in own)
    details = judgement.details if isinstance(judgement, Divergence) else {}
    joined = Divergence(
        causes[0], {**details, "tolerance": check.to_json()}, causes if len(causes) > 1 else ()
    )
    return replace(run, judgement=joined, tolerance=check)


async def execute_cases_reused(
    src: QemuBinary,
    dsts: Sequence[QemuBinary],
    case: Case,
    settings: RunSettings,
    pool: ProcessPool,
) -> list[CaseRun]:
    """Run ``case`` on the pool's long-lived processes, one save for every destination,
    and judge each pair (a first look)."""
    with private_workdir("migfuzz-reused-") as tmp:
        snapshot = Path(tmp) / "state.qcow2"

        async def save() -> SaveResult:
            return await (await pool.source(src, case)).save(case, snapshot)

        async def destination(binary: QemuBinary) -> Destination:
            return await pool.destination(binary, case)

        # A long-lived source keeps no stream for the control's re-save to be compared
        # with, so re-saves pay only where some destination is another version.
        resave = settings.resave and any(d.name != src.name for d in dsts)
        _saved, evidence = await _steps(
            src, dsts, case, settings, save=save, destination=destination, resave=resave
        )
    return [CaseRun(case, e, None, judge(e), reused=True) for e in evidence]


def _said(judgement: Judgement) -> str:
    """A judgement in a few words, without version names (it goes into a signature)."""
    if isinstance(judgement, Divergence):
        return str(judgement.signature)
    reason = getattr(judgement, "reason", "")
    reason = reason.split(": ", 1)[1] if ": " in reason else reason
    kind = {"ControlFailed": "control failed", "InvalidCase": "invalid case"}.get(
        type(judgement).__name__, type(judgement).__name__
    )
    return f"{kind}: {normalize_message(reason)}" if reason else kind


def reuse_divergence(reused: CaseRun, fresh: CaseRun) -> Divergence | None:
    """A finding when long-lived processes judged a case otherwise than fresh ones.

    Only when the long-lived source saved the case: a guest that did not reach its
    checkpoint on a reused source says nothing about QEMU's loading.
    """
    if reused.control.save.verdict is not Verdict.COMPLETED:
        return None
    if type(reused.judgement) is type(fresh.judgement) and reused.signature == fresh.signature:
        return None
    if not isinstance(fresh.judgement, Agree):
        return None  # the fresh result is reported as it is
    said = _said(reused.judgement)
    return Divergence(
        Signature("reuse", f"long-lived processes: {said}; fresh processes agree"),
        {
            "reused_control": reused.control.to_json(),
            "reused_pair": reused.pair.to_json(),
            "reused_judgement": said,
        },
    )


def _guest_refused_itself(run: CaseRun) -> bool:
    """Whether the case is invalid because its guest took an exception before its
    checkpoint and said so: the guest's doing, whichever process ran it."""
    details = run.control.save.details
    return isinstance(run.judgement, InvalidCase) and details.get("guest_ended") is True


def _loaded(run: CaseRun) -> bool:
    """Whether both restores of the case completed, whatever the oracles then said.

    A restore that completed but restored something else (a state or read-back
    divergence) leaves its long-lived process serving; one that did not retires it.
    """
    return run.control.verdict is Verdict.COMPLETED and run.pair.verdict is Verdict.COMPLETED


def _remember(recent: deque[bool], run: CaseRun) -> None:
    """Record whether the case loaded (:func:`_loaded`; an invalid case says nothing)."""
    if not isinstance(run.judgement, InvalidCase):
        recent.append(_loaded(run))


def _loads_cleanly(recent: deque[bool]) -> bool:
    """Whether a pair's last :data:`PAIR_MEMORY` cases all loaded: only then do long-lived
    processes pay (a pair that refuses gets fresh processes directly)."""
    return len(recent) == recent.maxlen and all(recent)


class CaseRunner:
    """Runs cases for one session: on long-lived processes where that pays, fresh otherwise.

    :param workdir: where long-lived processes keep their files (the session's folder).
    """

    def __init__(
        self,
        settings: RunSettings,
        workdir: Path,
        *,
        emit: Callable[[Event], None] = _noop,
    ) -> None:
        self.settings = settings
        self.emit = emit
        self.pool = ProcessPool(workdir, settings, emit=emit) if settings.reuse else None
        self.patcher = RefusalPatcher() if settings.past_refusals else None
        self.checker = ToleranceChecker() if settings.tolerance else None
        self._fresh_only: set[tuple[str, str, MachineConfig]] = set()
        self._pair_clean: dict[tuple[str, str], deque[bool]] = {}
        self._reused = 0
        self.counts = {
            "reused": 0, "confirmed": 0, "sampled": 0, "fresh": 0, "disagreed": 0, "live": 0,
            "devices": 0,
        }  # fmt: skip

    @property
    def stats(self) -> dict[str, int]:
        """Where runs ran (long-lived or fresh processes, how often they disagreed) and,
        with a patcher, how often pairs were looked past their refusal (``past_*``)."""
        past = {} if self.patcher is None else self.patcher.stats
        tolerance = {} if self.checker is None else self.checker.stats
        return {
            **self.counts,
            **{f"past_{key}": n for key, n in past.items()},
            **{f"tolerance_{key}": n for key, n in tolerance.items()},
        }

    async def run_cases(
        self,
        src: QemuBinary,
        dsts: Sequence[QemuBinary],
        case: Case,
        *,
        more_alike: bool = False,
    ) -> list[CaseRun]:
        """The case's judgement on every pair ``src -> dst``, from one save and one control;
        from fresh processes wherever a pair is not cleanly agreed.

        Long-lived processes serve the case only if every destination's pair loaded its
        recent cases (:func:`_loads_cleanly`; one save cannot be both a stream for fresh
        destinations and a snapshot for long-lived ones). A pair they do not pass cleanly
        is run again on fresh processes, on its own; one case in ``fresh_sample_every`` is,
        on every pair.

        :param more_alike: more cases of this configuration follow. Long-lived processes
            are started only then (a configuration run once costs less on fresh ones, which
            need no snapshot file); ones already running for it are used either way.
        :return: one run per destination, in the order of ``dsts``.
        """
        config = case.config
        recent = [
            self._pair_clean.setdefault((src.name, d.name), deque(maxlen=PAIR_MEMORY)) for d in dsts
        ]
        worth_it = more_alike or (self.pool is not None and self.pool.has_source(src, case))
        if config.devices:
            self.counts["devices"] += len(dsts)
            drivers = (d.driver for d in config.devices)
            count_each(self.counts, DEVICE_COUNT_PREFIX, drivers, len(dsts))
        if case.live is not None:
            # A running guest migrates between fresh processes: there is no snapshot
            # a long-lived one could load.
            self.counts["live"] += len(dsts)
            count_each(self.counts, FEATURE_COUNT_PREFIX, case.live.features(), len(dsts))
            runs = await execute_cases(src, dsts, case, self.settings, emit=self.emit)
            return await self._live_signed_as_paused(src, dsts, runs)
        if (
            self.pool is None
            or not worth_it
            or any((src.name, d.name, config) in self._fresh_only for d in dsts)
            or not all(_loads_cleanly(r) for r in recent)
        ):
            self.counts["fresh"] += len(dsts)
            only = await execute_cases(
                src, dsts, case, self.settings, emit=self.emit, patcher=self.patcher,
                checker=self.checker,
            )  # fmt: skip
            for memory, run in zip(recent, only, strict=True):
                _remember(memory, run)
            return only
        runs = await execute_cases_reused(src, dsts, case, self.settings, self.pool)
        self._reused += 1
        self.counts["reused"] += len(dsts)
        sample = self._reused % max(1, self.settings.fresh_sample_every) == 0
        settled = [isinstance(r.judgement, Agree) or _guest_refused_itself(r) for r in runs]
        again = [i for i, ok in enumerate(settled) if sample or not ok]
        for i, run in enumerate(runs):
            if i not in again:
                _remember(recent[i], run)
        if not again:
            return runs
        fresh_runs = await execute_cases(
            src, [dsts[i] for i in again], case, self.settings, emit=self.emit,
            patcher=self.patcher, checker=self.checker,
        )  # fmt: skip
        for i, fresh in zip(again, fresh_runs, strict=True):
            self.counts["sampled" if settled[i] else "confirmed"] += 1
            runs[i] = self._settle(recent[i], config, runs[i], fresh)
        return runs

    async def _live_signed_as_paused(
        self, src: QemuBinary, dsts: Sequence[QemuBinary], runs: list[CaseRun]
    ) -> list[CaseRun]:
        """A live case's runs; where its load failed, the paused twin's run instead (one
        paused run of the same case, on fresh processes and looked past as any, per such
        destination), signed as :func:`~fuzz.run.live_case.signed_as_paused` says, if the
        paused load failed too: its stream, cpreg list and patch make the better
        reproducer, and a campaign counts the cause once."""
        failed = [i for i, r in enumerate(runs) if live_load_failed(r.judgement, r.evidence.pair)]
        if not failed:
            return runs
        case = runs[failed[0]].case
        paused = await execute_cases(
            src, [dsts[i] for i in failed], replace(case, live=None), self.settings,
            emit=self.emit, patcher=self.patcher,
        )  # fmt: skip
        self.counts["paused_twins"] = self.counts.get("paused_twins", 0) + len(failed)
        for i, again in zip(failed, paused, strict=True):
            run, named = runs[i], again.judgement
            if again.past is not None:
                causes = again.past.first_causes
            else:
                causes = named.signatures() if isinstance(named, Divergence) else ()
            details = named.details if isinstance(named, Divergence) else None
            judgement = signed_as_paused(run.judgement, causes, again.evidence.pair, details)
            if judgement is not run.judgement:
                runs[i] = CaseRun(again.case, again.evidence, again.source_stream, judgement)
        return runs

    def _settle(
        self, recent: deque[bool], config: MachineConfig, reused: CaseRun, fresh: CaseRun
    ) -> CaseRun:
        """The reported run of a pair run on long-lived and then on fresh processes."""
        _remember(recent, fresh)
        pair = fresh.evidence.pair
        if not isinstance(fresh.judgement, InvalidCase) and not _loaded(fresh):
            # This pair does not load this configuration: a long-lived destination would be
            # retired after every load, so fresh processes are as cheap. (A divergence after
            # a completed load, often the guest's doing, leaves the destination serving.)
            self._fresh_only.add((pair.src, pair.dst, config))
        finding = reuse_divergence(reused, fresh)
        if finding is None:
            return fresh
        self.counts["disagreed"] += 1
        return CaseRun(fresh.case, fresh.evidence, fresh.source_stream, finding)

    async def close(self) -> None:
        """End every long-lived process."""
        if self.pool is not None:
            await self.pool.close()
