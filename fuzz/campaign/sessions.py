"""One session of a campaign: new, resumed, or writing straight into a corpus.

The CLI parses ``migfuzz fuzz``'s arguments into :class:`FuzzOptions` and shows what this
module emits; everything between is here: the campaign record (``campaign.json``, written
once, when the folder is made), what a resume reads back from the folder (the record,
its event log, the stale claims of killed workers), what is left of the budget and of
each worker slot's cases, the re-check of open findings, and the :class:`Campaign` run.

Nothing here prints. Lines for the user are events (:mod:`fuzz.events`) passed to
``emit``; the campaign's own events go to the display the caller opens for the session
(:data:`DisplayFactory`), which learns the session's plan from :class:`SessionBegins`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fuzz import __version__
from fuzz.campaign.driver import Campaign, Summary, WorkerSpec, even_share, worker_spec
from fuzz.campaign.folder import CampaignFolder, ResumeState
from fuzz.campaign.loop import parse_pairs
from fuzz.core.case import Pair
from fuzz.corpus.entry import load_entry
from fuzz.corpus.store import CorpusStore, known_in
from fuzz.errors import CampaignError, CorpusError
from fuzz.events import RecheckBegins, RecheckEnded, RecheckSkipped, SessionBegins
from fuzz.triage.recheck import Rechecked, on_new_binaries, recheck
from fuzz.versions.farm import Farm

#: Opens the display of a session's campaign events, once the session's plan is known.
DisplayFactory = Callable[[SessionBegins], AbstractContextManager[Callable[[object], None]]]


#: A campaign migrates one configuration in this many live (``migfuzz fuzz --live-every``).
#: A live run (one migration between fresh processes, ~1.6 s) costs some five fresh paused
#: runs and twenty reused ones: at one in 8, a 10-minute default campaign made 336 live runs
#: of 2,594 and spent about half its CPU on them (docs/live-migration.md).
LIVE_EVERY = 32


@dataclass(frozen=True)
class FuzzOptions:
    """What a campaign is asked to do: from the command line, or from a campaign record."""

    pairs: tuple[Pair, ...]
    seed: int
    budget_seconds: float | None
    max_cases: int | None
    guests: bool
    one_sided: bool
    reuse: bool
    known: tuple[Path, ...]
    fan_out: bool = True
    past_refusals: bool = True
    tolerance: bool = False
    #: One configuration in this many migrates live (0: none; ``--live-every``).
    live_every: int = 0
    #: Open a fresh time-budgeted campaign with live cases with the transport sweep
    #: (:mod:`strategies.sweep`; ``--no-sweep``).
    sweep: bool = True

    def to_json(self) -> dict[str, Any]:
        """The record's part that a resume reads back."""
        return {
            "pairs": [f"{a}:{b}" for a, b in self.pairs], "seed": self.seed,
            "budget_seconds": self.budget_seconds, "max_cases": self.max_cases,
            "guests": self.guests, "one_sided": self.one_sided, "reuse": self.reuse,
            "known": [str(k) for k in self.known], "fan_out": self.fan_out,
            "past_refusals": self.past_refusals, "tolerance": self.tolerance,
            "live_every": self.live_every, "sweep": self.sweep,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any], where: Path) -> FuzzOptions:
        """Parse :meth:`to_json` output from ``where``'s record.

        :raise CampaignError: a field is missing or has the wrong type.
        """
        try:
            return cls(
                pairs=tuple(parse_pairs(",".join(data["pairs"]))), seed=int(data["seed"]),
                budget_seconds=_optional_float(data["budget_seconds"]),
                max_cases=None if data["max_cases"] is None else int(data["max_cases"]),
                guests=bool(data["guests"]), one_sided=bool(data["one_sided"]),
                reuse=bool(data["reuse"]), known=tuple(Path(k) for k in data["known"]),
                # A record from before the fan-out ran without it: resumed the same way.
                fan_out=bool(data.get("fan_out", False)),
                past_refusals=bool(data.get("past_refusals", False)),
                tolerance=bool(data.get("tolerance", False)),
                # A record from before live cases drew none: resumed the same way.
                live_every=int(data.get("live_every", 0)),
                sweep=bool(data.get("sweep", False)),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as err:
            raise CampaignError(f"{where}: campaign record lacks or garbles {err}") from None


def _optional_float(value: object) -> float | None:
    return None if value is None else float(str(value))


def campaign_record(
    options: FuzzOptions, spec: WorkerSpec, jobs: int, scheduler: str | None
) -> dict[str, Any]:
    """``campaign.json``: the options, the exact binaries, the run settings, when."""
    versions = {
        name: {**b.to_json(), "sha256": b.content_hash(),
               "version_line": spec.caps[name].version_line}
        for name, b in spec.binaries.items()
    }  # fmt: skip
    return {
        **options.to_json(), "jobs": jobs, "scheduler": scheduler, "versions": versions,
        "settings": spec.settings.to_json(), "migfuzz": __version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip


@dataclass(frozen=True)
class SessionResult:
    """How a session ended: its campaign's summary, or None when nothing was left to do."""

    summary: Summary | None
    cases_before: int = 0
    """Cases the earlier sessions ran (a resume)."""
    seconds_before: float = 0.0
    unshrunk: int = 0
    """Findings an earlier session left unshrunk, finished by this one."""


def run_new(
    farm: Farm, jobs: int, options: FuzzOptions, root: Path, *,
    emit: Callable[[object], None], display: DisplayFactory,
    scheduler: str | None = None, recheck: bool = False,
) -> SessionResult:  # fmt: skip
    """Start a campaign in the new folder ``root``, its record written once, and run it.

    :param emit: told what the session does around its campaign (it begins; the re-check).
    :param display: opens the display of the campaign's own events.
    :raise CampaignError: ``root`` is in use or not empty (nothing in it is touched).
    """
    session = _Session(
        farm, jobs, options, ResumeState(), corpus_dir=CampaignFolder.corpus_of(root),
        hypothesis_dir=CampaignFolder.hypothesis_of(root), where=f"campaign folder {root}",
        scheduler=scheduler, recheck=recheck,
    )  # fmt: skip
    plan = session.plan()
    assert plan is not None, "a new campaign has its whole budget left"
    spec = session.spec(plan)
    with CampaignFolder.create(root, campaign_record(options, spec, jobs, scheduler)) as folder:
        return session.run(folder, plan, spec, emit=emit, display=display)


def run_resumed(
    farm: Farm, root: Path, *, jobs: int | None, default_jobs: int,
    emit: Callable[[object], None], display: DisplayFactory,
    scheduler: str | None = None, recheck: bool = False,
) -> SessionResult:  # fmt: skip
    """Go on with the campaign in ``root`` where it stopped, with its recorded options
    (its seed included) and, unless ``jobs`` is given, its recorded number of workers.

    :raise CampaignError: no campaign there, a garbled record, or one in use.
    """
    with CampaignFolder.reopen(root) as folder:
        record = folder.record()
        options = FuzzOptions.from_json(record, folder.record_path)
        recorded = record.get("jobs")
        if jobs is None:
            jobs = max(1, recorded) if isinstance(recorded, int) else default_jobs
        state = folder.resume_state()
        # Entries a killed worker had written but never got to announce, or to shrink.
        for path in CorpusStore(folder.corpus_dir).recover_stale_claims():
            if path not in state.unshrunk:
                state.unshrunk.append(path)
        session = _Session(
            farm, jobs, options, state, corpus_dir=folder.corpus_dir,
            hypothesis_dir=folder.hypothesis_dir, where=f"campaign folder {folder.root}",
            scheduler=scheduler, recheck=recheck, recorded_jobs=recorded,
        )  # fmt: skip
        plan = session.plan()
        if plan is None:
            return SessionResult(None, state.cases, state.seconds)
        return session.run(folder, plan, session.spec(plan), emit=emit, display=display)


def run_into_corpus(
    farm: Farm, jobs: int, options: FuzzOptions, corpus: Path, *,
    emit: Callable[[object], None], display: DisplayFactory,
    scheduler: str | None = None, recheck: bool = False,
) -> SessionResult:  # fmt: skip
    """A campaign with no folder: reproducers go straight into ``corpus`` (scripts, CI),
    whose signatures count as known too."""
    session = _Session(farm, jobs, options, ResumeState(), corpus_dir=corpus,
                       hypothesis_dir=None, where=f"corpus {corpus}", scheduler=scheduler,
                       recheck=recheck)  # fmt: skip
    session.known_dirs.append(corpus)
    plan = session.plan()
    assert plan is not None, "a new campaign has its whole budget left"
    return session.run(None, plan, session.spec(plan), emit=emit, display=display)


@dataclass(frozen=True)
class _Plan:
    """A session's budget, case count and worker slot shares (None: split evenly)."""

    budget_seconds: float | None
    max_cases: int | None
    shares: dict[int, int | None] | None


class _Session:
    """The work of one session, whichever its kind."""

    def __init__(
        self, farm: Farm, jobs: int, options: FuzzOptions, state: ResumeState, *,
        corpus_dir: Path, hypothesis_dir: Path | None, where: str,
        scheduler: str | None = None, recheck: bool = False, recorded_jobs: object = None,
    ) -> None:  # fmt: skip
        self.farm, self.jobs, self.options, self.state = farm, jobs, options, state
        self.corpus_dir, self.hypothesis_dir, self.where = corpus_dir, hypothesis_dir, where
        self.scheduler, self.recheck, self.recorded_jobs = scheduler, recheck, recorded_jobs
        self.known_dirs = list(options.known)

    # -- planning -----------------------------------------------------------------------

    def _remaining(self) -> tuple[float | None, int | None]:
        """The budget and case count left after the earlier sessions."""
        budget, cases = self.options.budget_seconds, self.options.max_cases
        if budget is not None:
            budget -= self.state.seconds
        if cases is not None:
            cases -= self.state.cases
        return budget, cases

    def _shares(self) -> dict[int, int | None] | None:
        """Each worker slot's cases on a resume with the campaign's own job count: what
        it had left when its interrupted run began (None: split what is left evenly)."""
        if not self.state.sessions or self.recorded_jobs != self.jobs:
            return None
        total = self.options.max_cases
        shares: dict[int, int | None] = {}
        for slot in range(self.jobs):
            if slot in self.state.finished:
                continue
            share = even_share(slot, self.jobs, total)
            shares[slot] = None if share is None else share - self.state.slot_cases.get(slot, 0)
        return shares

    def plan(self) -> _Plan | None:
        """This session's budget, case count and slot shares; None if nothing is left."""
        shares = self._shares()
        budget, max_cases = self._remaining()
        if shares is not None and max_cases is not None:
            max_cases = sum(n or 0 for n in shares.values())
        if (budget is not None and budget <= 0) or (max_cases is not None and max_cases <= 0):
            return None
        return _Plan(budget, max_cases, shares)

    def spec(self, plan: _Plan) -> WorkerSpec:
        """What every worker of this session gets."""
        from strategies import (  # noqa: PLC0415 (Hypothesis: heavy)
            accepted_by,
            case_strategy,
            rebuild_guest,
            sweep_plan,
        )

        o = self.options
        cases = case_strategy(guests=o.guests, one_sided=o.one_sided, live_every=o.live_every)
        spec = worker_spec(
            self.farm, o.pairs, cases,
            self.corpus_dir, budget_seconds=plan.budget_seconds, max_cases=plan.max_cases,
            seed=o.seed,
            build_guest=rebuild_guest if o.guests else None, reuse=o.reuse,
            known_dirs=self.known_dirs, first_runs=self.state.next_run,
            replay={slot: frozenset(sigs) for slot, sigs in self.state.replay.items()},
            hypothesis_dir=self.hypothesis_dir, fan_out=accepted_by if o.fan_out else None,
            past_refusals=o.past_refusals, tolerance=o.tolerance,
        )  # fmt: skip
        if not self._sweeps(plan):
            return spec
        return replace(spec, sweep=tuple(sweep_plan(o.pairs, spec.caps, fan_out=o.fan_out)))

    def _sweeps(self, plan: _Plan) -> bool:
        """Whether this session opens with the transport sweep: a fresh campaign (a resume
        does not run it again), with live cases, on a time budget alone (``--max-cases N``
        asks for N drawn cases: a sample of a fixed size, as tests and CI smoke runs take)."""
        o = self.options
        fresh = not self.state.sessions
        return o.sweep and fresh and o.live_every > 0 and o.guests and plan.max_cases is None

    # -- running ------------------------------------------------------------------------

    def run(
        self, folder: CampaignFolder | None, plan: _Plan, spec: WorkerSpec, *,
        emit: Callable[[object], None], display: DisplayFactory,
    ) -> SessionResult:  # fmt: skip
        """Say it begins, re-check where asked, run the campaign, log its start and stop."""
        begins = SessionBegins(
            seed=self.options.seed, pairs=self.options.pairs, jobs=self.jobs, where=self.where,
            session=self.state.sessions + 1, budget_seconds=plan.budget_seconds,
            max_cases=plan.max_cases, deadline=spec.deadline,
        )  # fmt: skip
        emit(begins)
        if self.recheck or self.state.sessions:
            # A resume always re-checks its own entries on binaries that changed under it.
            corpora = [*(self.known_dirs if self.recheck else []), spec.corpus_dir]
            self._recheck(corpora, folder, emit)
        known = known_in([*self.known_dirs, spec.corpus_dir])
        with display(begins) as show:
            campaign = Campaign(spec, jobs=self.jobs, known_paths=known, emit=show,
                                folder=folder, shares=plan.shares,
                                scheduler=self.scheduler)  # fmt: skip
            if folder is not None:
                folder.log_event("CampaignStarted", jobs=self.jobs,
                                 resumed=bool(self.state.sessions))  # fmt: skip
            summary = campaign.run(finish=self._unshrunk_not_replayed())
        if folder is not None:
            folder.log_event("CampaignStopped", interrupted=summary.interrupted,
                             cases=summary.cases, seconds=round(summary.seconds, 3))  # fmt: skip
        return SessionResult(summary, self.state.cases, self.state.seconds,
                             len(self.state.unshrunk))  # fmt: skip

    def _recheck(
        self, corpora: Sequence[Path], folder: CampaignFolder | None,
        emit: Callable[[object], None],
    ) -> None:  # fmt: skip
        """Replay the open findings of ``corpora`` whose binaries changed; emit and log each."""
        entries = on_new_binaries(corpora, self.farm,
                                  skipped=lambda line: emit(RecheckSkipped(line)))  # fmt: skip
        if not entries:
            return
        emit(RecheckBegins(len(entries)))

        def done(result: Rechecked) -> None:
            emit(result)
            if folder is not None:
                folder.log_event("Rechecked", entry=str(result.entry),
                                 signature=result.signature, verdict=str(result.verdict),
                                 line=result.line)  # fmt: skip

        fixed = [r.signature for r in recheck(entries, self.farm, progress=done) if r.fixed]
        emit(RecheckEnded(tuple(fixed), len(entries)))

    def _unshrunk_not_replayed(self) -> list[Path]:
        """Unfinished shrinks that no resumed worker will redo by replaying its run."""
        replayed = set().union(*self.state.replay.values()) if self.state.replay else set()
        unshrunk = []
        for path in self.state.unshrunk:
            try:
                signature = str(load_entry(path).signature)
            except CorpusError:
                signature = ""
            if signature not in replayed:
                unshrunk.append(path)
        return unshrunk
