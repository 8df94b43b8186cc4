"""A campaign: one or many workers running the fuzz loop, and the summary of what they met.

The driver never runs a case itself. It hands each worker a picklable
:class:`WorkerSpec` through a ``concurrent.futures.Executor``-shaped interface (a local
process pool here; any executor with ``submit`` and futures fits), gathers the workers'
events from a queue, and adds them up in a :class:`Summary`. Workers share nothing but
the corpus folder, whose claims keep them from shrinking or writing the same signature
twice.

A worker process that dies (SIGKILL, out of memory) breaks a stdlib process pool and
fails every pending future with ``BrokenProcessPool``: the driver then builds a new pool
and starts fresh workers with new seeds for the time that is left. What the dead worker
had announced is already on disk, and its QEMU processes died with it (they are started
with a parent-death signal).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import queue
import resource
import signal
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from fuzz.campaign.folder import CampaignFolder
from fuzz.campaign.loop import Accepts, CaseStrategy, FuzzLoop
from fuzz.core.binary import QemuBinary
from fuzz.core.capabilities import Capabilities, settings_for
from fuzz.core.case import Case, Pair
from fuzz.core.counts import count_each
from fuzz.core.live import headline_offers
from fuzz.core.settings import RunSettings
from fuzz.corpus.entry import read_promise
from fuzz.corpus.store import CorpusStore, known_in
from fuzz.errors import CorpusError, UsageError
from fuzz.events import (
    CampaignEvent,
    CaseJudged,
    CoverageMeasured,
    FindingFlaky,
    FindingSeen,
    Progress,
    ReproducerUnstable,
    ReproducerWritten,
    WorkerFinished,
    WorkerLost,
    WorkerStarted,
)
from fuzz.judge.coverage import Coverage
from fuzz.judge.oracles import Signature
from fuzz.judge.promise import Grade, Promise
from fuzz.run.session import Session
from fuzz.triage.minimize import GuestBuilder
from fuzz.versions.farm import Farm
from fuzz.versions.probe import capabilities


@dataclass(frozen=True)
class WorkerSpec:
    """Everything one worker needs; pickled to its process."""

    binaries: Mapping[str, QemuBinary]
    caps: Mapping[str, Capabilities]
    pairs: tuple[Pair, ...]
    case_strategy: CaseStrategy
    corpus_dir: Path
    settings: RunSettings
    seed: int
    worker: int
    deadline: float | None
    max_cases: int | None
    build_guest: GuestBuilder | None
    known_dirs: tuple[Path, ...] = ()
    """Other corpora whose signatures count as known (never recorded again)."""
    hypothesis_dir: Path | None = None
    """Hypothesis's example database folder, or None."""
    first_runs: Mapping[int, int] = field(default_factory=dict)
    """Worker slot -> its first Hypothesis run index (a resumed campaign goes on)."""
    replay: Mapping[int, frozenset[str]] = field(default_factory=dict)
    """Worker slot -> signatures it recorded in the run it resumes (see FuzzLoop)."""
    fan_out: Accepts | None = None
    """Restore each save on every destination of its source that starts the configuration
    (see :class:`~fuzz.campaign.loop.FuzzLoop`); None: the drawn pair's only."""
    coverage: bool = True
    """Measure a sample of the saves' state coverage (:mod:`fuzz.campaign.coverage`)."""
    sweep: tuple[tuple[Pair, Sequence[Case]], ...] = ()
    """The campaign's transport sweep (:mod:`strategies.sweep`), run before the drawn cases;
    worker slot ``i`` of ``n`` runs every ``n``-th from the ``i``-th (:func:`sweep_share`)."""


_Item = TypeVar("_Item")


def sweep_share(sweep: Sequence[_Item], slot: int, jobs: int) -> tuple[_Item, ...]:
    """Slot ``slot``'s share of the sweep among ``jobs`` first slots; a slot that replaces
    a lost one (numbered from ``jobs`` on) has none (the lost one ran it, or part of it)."""
    return tuple(sweep[slot::jobs]) if slot < jobs else ()


def worker_spec(
    farm: Farm,
    pairs: Sequence[Pair],
    case_strategy: CaseStrategy,
    corpus_dir: Path,
    *,
    budget_seconds: float | None = None,
    max_cases: int | None = None,
    seed: int = 0,
    build_guest: GuestBuilder | None = None,
    reuse: bool = False,
    known_dirs: Sequence[Path] = (),
    hypothesis_dir: Path | None = None,
    first_runs: Mapping[int, int] | None = None,
    replay: Mapping[int, frozenset[str]] | None = None,
    fan_out: Accepts | None = None,
    past_refusals: bool = True,
    coverage: bool = True,
    tolerance: bool = False,
    sweep: Sequence[tuple[Pair, Sequence[Case]]] = (),
) -> WorkerSpec:
    """The spec every worker of a campaign gets (``worker`` is set per worker).

    :param reuse: run cases on long-lived processes first (on pairs that load; see
        :mod:`fuzz.run.engine`).
    :param fan_out: restore each save on every destination of its source that this says
        starts the configuration (see :class:`~fuzz.campaign.loop.FuzzLoop`).
    :param past_refusals: load pairs refused on their cpreg list again, patched, and judge
        what follows (:mod:`fuzz.run.past_refusal`).
    :param coverage: measure a sample of the saves' state coverage.
    :param tolerance: check that each case's source loads its stream with one cpreg left
        out as QEMU promises (:mod:`fuzz.run.tolerance`).
    :param sweep: fixed cases every worker slot runs its share of first (the transport
        sweep, :mod:`strategies.sweep`).

    :raise UsageError: an unknown version, or neither a budget nor a case count.
    """
    if budget_seconds is None and max_cases is None:
        raise UsageError("give a budget (--budget) or a number of cases (--max-cases)")
    binaries = {name: farm.get(name) for pair in pairs for name in pair}
    caps = {name: capabilities(b, farm.cache_dir) for name, b in binaries.items()}
    return WorkerSpec(
        binaries=binaries, caps=caps, pairs=tuple(pairs), case_strategy=case_strategy,
        corpus_dir=corpus_dir, seed=seed, worker=0,
        settings=settings_for(
            caps, reuse=reuse, past_refusals=past_refusals, tolerance=tolerance
        ),
        deadline=None if budget_seconds is None else time.time() + budget_seconds,
        max_cases=max_cases, build_guest=build_guest, known_dirs=tuple(known_dirs),
        hypothesis_dir=hypothesis_dir, first_runs=dict(first_runs or {}),
        replay=dict(replay or {}), fan_out=fan_out, coverage=coverage, sweep=tuple(sweep),
    )  # fmt: skip


@dataclass
class FindingStats:
    """What the campaign knows about one signature."""

    signature: Signature
    count: int = 0
    pairs: set[Pair] = field(default_factory=set)
    path: Path | None = None
    new: bool = False

    def promise(self) -> Grade | None:
        """The promise grade of its reproducer (the entry's pair and configuration, computed
        from the entry); None: no readable one-shot entry."""
        return None if self.path is None else read_promise(self.path)


@dataclass
class Summary:
    """The end of a campaign, built only from the workers' events."""

    cases: int = 0
    invalid: int = 0
    control_failures: dict[str, int] = field(default_factory=dict)
    per_pair: dict[Pair, int] = field(default_factory=dict)
    seconds: float = 0.0
    findings: dict[Signature, FindingStats] = field(default_factory=dict)
    workers_lost: int = 0
    interrupted: bool = False
    engine: dict[str, int] = field(default_factory=dict)
    python_seconds: float = 0.0
    qemu_seconds: float = 0.0
    harness: dict[str, int] = field(default_factory=dict)
    """Cases the harness failed twice, by bucket (never findings)."""
    flaky: dict[Signature, FindingFlaky] = field(default_factory=dict)
    """New signatures their own case did not show again reliably."""
    coverage: Coverage = field(default_factory=Coverage)
    """State coverage of the measured saves: the whole campaign's (a resumed campaign's
    starts from what its folder's ``coverage.json`` held)."""
    live_per_pair: dict[Pair, dict[str, int]] = field(default_factory=dict)
    """Each pair's judged live cases, per transport and feature (drawn and swept)."""
    live_offered: dict[str, list[Pair]] = field(default_factory=dict)
    """Each headline live feature -> the campaign's pairs that both offer it
    (:func:`~fuzz.core.live.headline_offers`)."""

    @property
    def cases_per_second(self) -> float:
        """Throughput over the whole run."""
        return self.cases / self.seconds if self.seconds > 0 else 0.0

    @property
    def control_failure_count(self) -> int:
        """How many cases had a control that did not complete."""
        return sum(self.control_failures.values())

    def add(self, event: CampaignEvent) -> None:
        """Account for one event."""
        if isinstance(event, CaseJudged):
            self._judged(event)
        elif isinstance(event, FindingSeen):
            stats = self._stats(event.signature)
            stats.new, stats.path = True, event.path
            stats.pairs.add(event.pair)
            stats.count = max(stats.count, 1)
        elif isinstance(event, ReproducerWritten | ReproducerUnstable):
            self._stats(event.signature).path = event.path
        elif isinstance(event, FindingFlaky):
            self.flaky[event.signature] = event
        elif isinstance(event, CoverageMeasured):
            self.coverage.add(event.version, event.exercised, event.known)
        elif isinstance(event, WorkerLost):
            self.workers_lost += 1
        elif isinstance(event, WorkerFinished):
            for key, count in event.engine.items():
                self.engine[key] = self.engine.get(key, 0) + count
            self.python_seconds += event.python_seconds
            self.qemu_seconds += event.qemu_seconds

    def _judged(self, event: CaseJudged) -> None:
        self.cases += 1
        self.per_pair[event.pair] = self.per_pair.get(event.pair, 0) + 1
        if event.live:
            count_each(self.live_per_pair.setdefault(event.pair, {}), "", event.live, 1)
        if event.kind == "invalid":
            self.invalid += 1
        elif event.kind == "control-failed":
            self.control_failures[event.reason] = self.control_failures.get(event.reason, 0) + 1
        elif event.kind == "harness":
            self.harness[event.reason] = self.harness.get(event.reason, 0) + 1
        elif event.signature is not None:
            for signature in event.causes or (event.signature,):
                stats = self._stats(signature)
                stats.count += 1
                stats.pairs.add(event.pair)

    def live_pairs(self) -> list[tuple[str, int, int]]:
        """Each headline live feature: on how many pairs a live case ran over it, of how
        many pairs offer it (``[("multifd", 42, 42), ("mapped-ram", 19, 20), ...]``)."""
        return [
            (name, sum(1 for p in offered if self.live_per_pair.get(p, {}).get(name)),
             len(offered))
            for name, offered in self.live_offered.items()
        ]  # fmt: skip

    def by_promise(self) -> dict[str, int]:
        """The findings met, counted by the promise grade of their reproducers:
        ``promised``, ``not promised`` and, if any, ``ungraded`` (no readable entry)."""
        counts = {str(p): 0 for p in Promise}
        for stats in self.findings.values():
            if stats.count:
                grade = stats.promise()
                key = "ungraded" if grade is None else str(grade.promise)
                counts[key] = counts.get(key, 0) + 1
        return counts

    def _stats(self, signature: Signature) -> FindingStats:
        if signature not in self.findings:
            self.findings[signature] = FindingStats(signature)
        return self.findings[signature]


# -- the worker side --------------------------------------------------------------------

_events: Any = None
_stop: Any = None
_driver_pid = 0


def _die_with_driver() -> None:
    """Ask the kernel to SIGTERM this worker when the driver dies (even by SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)


def _init_worker(events: Any, stop: Any) -> None:
    """Set up a worker process: the driver's event queue and stop flag, signals."""
    global _events, _stop, _driver_pid
    _events, _stop, _driver_pid = events, stop, os.getppid()
    _die_with_driver()
    # Ctrl-C in a terminal reaches the whole process group: the driver decides, via _stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _cpu() -> tuple[float, float]:
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, children.ru_utime + children.ru_stime


def worker_store(spec: WorkerSpec) -> CorpusStore:
    """The corpus store a worker records into, knowing the other corpora's signatures."""
    known = frozenset(known_in(spec.known_dirs))
    return CorpusStore(spec.corpus_dir, known_elsewhere=known)


def run_worker(
    spec: WorkerSpec, emit: Callable[[CampaignEvent], None], stop: Callable[[], bool]
) -> int:
    """Run one worker's loop to its end in this process; returns the cases it drew.

    Ends with a :class:`WorkerFinished` event (after every QEMU of the worker is reaped,
    so their CPU time is counted).
    """
    python_before, qemu_before = _cpu()
    with Session(spec.settings) as session:
        loop = FuzzLoop(
            session, spec.binaries, spec.caps, spec.pairs, spec.case_strategy,
            store=worker_store(spec), deadline=spec.deadline, max_cases=spec.max_cases,
            seed_value=spec.seed, worker=spec.worker, build_guest=spec.build_guest,
            first_run=spec.first_runs.get(spec.worker, 0), database=spec.hypothesis_dir,
            replaying=spec.replay.get(spec.worker, frozenset()),
            emit=emit, should_stop=stop, fan_out=spec.fan_out, coverage=spec.coverage,
            sweep=spec.sweep,
        )  # fmt: skip
        try:
            cases = loop.run()
        finally:
            engine = dict(session.cases.stats)
    python_after, qemu_after = _cpu()
    python, qemu = python_after - python_before, qemu_after - qemu_before
    emit(WorkerFinished(spec.worker, engine, python, qemu, complete=not stop()))
    return cases


def _worker_main(spec: WorkerSpec) -> int:
    """The body of a worker process (see :func:`_init_worker`)."""
    events, stop = _events, _stop
    events.put(WorkerStarted(spec.worker))
    try:
        return run_worker(spec, events.put, stop.is_set)
    except KeyboardInterrupt:
        return 0
    finally:
        # The driver died (its SIGTERM got us here, its QEMUs are reaped): a pool worker
        # would otherwise wait for its next task for ever, holding its corpus claims.
        if os.getppid() != _driver_pid:
            os._exit(0)


def _worker_body(
    spec: WorkerSpec, emit: Callable[[CampaignEvent], None], stop: Callable[[], bool]
) -> int:
    """A worker on an executor that hands it its event sink and stop flag (a cluster)."""
    emit(WorkerStarted(spec.worker))
    return run_worker(spec, emit, stop)


class _LocalPool:
    """Worker processes on this machine: a spawned process pool per generation, one
    event queue and stop flag for all (see :class:`fuzz.campaign.cluster.ClusterPool`, the same
    shape on a Dask cluster)."""

    body = staticmethod(_worker_main)
    replaces_at_once = False
    """A broken pool fails all its futures: replacements wait for the next generation."""

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self.events, self.stop = self._ctx.Queue(), self._ctx.Event()

    def executor(self, workers: int) -> ProcessPoolExecutor:
        """A pool of ``workers`` processes (a broken pool cannot be reused)."""
        return ProcessPoolExecutor(
            workers, mp_context=self._ctx, initializer=_init_worker,
            initargs=(self.events, self.stop),
        )  # fmt: skip

    @staticmethod
    def lost(future: Any) -> str | None:
        """Why ``future``'s worker was lost (None: it ended normally)."""
        try:
            future.result()
        except BrokenProcessPool:
            return "worker process died"
        return None

    @staticmethod
    def vanished(_futures: Iterable[Any]) -> dict[Any, str]:
        """None: a dead local worker breaks the pool, which fails its futures."""
        return {}

    def can_replace(self) -> bool:
        """A local pool can always start new processes."""
        return True

    def close(self) -> None:
        """Nothing outlives a local pool's generations."""


# -- the driver side --------------------------------------------------------------------


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def even_share(index: int, of: int, total: int | None) -> int | None:
    """Slot ``index``'s part of ``total`` cases split over ``of`` slots (None: no limit)."""
    if total is None:
        return None
    return total // of + (1 if index < total % of else 0)


def event_record(event: object) -> tuple[str, dict[str, Any]]:
    """An event as the campaign's log keeps it: its class name and plain JSON fields."""
    if not is_dataclass(event) or isinstance(event, type):
        return type(event).__name__, {"value": str(event)}
    return type(event).__name__, {f.name: _plain(getattr(event, f.name)) for f in fields(event)}


def _plain(value: object) -> object:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Signature | Path):
        return str(value)
    if isinstance(value, tuple | list | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


class Campaign:
    """Runs workers until the budget is spent and adds up their events.

    :param jobs: worker processes; 1 runs the loop in this process (no pool).
    :param emit: receives every event, for display; the summary is built here.
    :param folder: the campaign folder: every event goes to its log (but the measured
        saves' coverage, added up into its ``coverage.json`` instead), and a progress
        sample to its time series every few seconds.
    :param scheduler: a Dask scheduler's address: run the workers on its cluster
        (:mod:`fuzz.campaign.cluster`) instead of a local process pool, even with one job.
    :param shares: worker slot -> the cases it runs (None: until the deadline); by
        default ``spec.max_cases`` split evenly over ``jobs`` slots. A resumed campaign
        gives each slot what it had left, so that it draws what it would have drawn.
    """

    def __init__(
        self,
        spec: WorkerSpec,
        *,
        jobs: int = 1,
        known: Sequence[Signature] = (),
        known_paths: Mapping[Signature, Path] | None = None,
        emit: Callable[[CampaignEvent], None] = lambda _e: None,
        folder: CampaignFolder | None = None,
        shares: Mapping[int, int | None] | None = None,
        scheduler: str | None = None,
    ) -> None:
        self.spec = spec
        self.scheduler = scheduler
        self.jobs = max(1, jobs)
        total = spec.max_cases
        self.shares = dict(shares) if shares is not None else {
            i: even_share(i, self.jobs, total) for i in range(self.jobs)
        }  # fmt: skip
        self.emit = emit
        self.folder = folder
        self.summary = Summary(live_offered=headline_offers(spec.pairs, spec.caps))
        if folder is not None:  # a resumed campaign's coverage goes on from its folder's
            self.summary.coverage = folder.read_coverage()
        self._coverage_changed = False
        self._last_new: float | None = None
        self._shrinking: dict[Signature, Pair] = {}
        for sig, path in (known_paths or {}).items():
            self.summary.findings[sig] = FindingStats(sig, path=path)
        for sig in known:
            self.summary.findings.setdefault(sig, FindingStats(sig))
        self._started = 0.0
        self._last_progress = 0.0
        self._alive = 0
        self._next_slot = 0
        self._slot_shares: dict[int, int | None] = {}
        self._slot_cases: dict[int, int] = {}

    def _event(self, event: CampaignEvent) -> None:
        self.summary.add(event)
        if isinstance(event, FindingSeen):
            self._last_new = time.monotonic()
            self._shrinking[event.signature] = event.pair
        elif isinstance(event, ReproducerWritten | ReproducerUnstable):
            self._shrinking.pop(event.signature, None)
        if isinstance(event, CoverageMeasured):
            self._coverage_changed = True  # not logged: coverage.json adds them up
        elif self.folder is not None:
            kind, data = event_record(event)
            self.folder.log_event(kind, **data)
        self.emit(event)
        now = time.monotonic()
        if now - self._last_progress >= 5.0:
            self._last_progress = now
            self._progress(now)

    def _progress(self, now: float) -> None:
        summary = self.summary
        progress = Progress(
            cases=summary.cases, seconds=now - self._started,
            signatures=sum(1 for f in summary.findings.values() if f.count), workers=self._alive,
            new=sum(1 for f in summary.findings.values() if f.new),
            since_new=None if self._last_new is None else now - self._last_new,
            control_failures=summary.control_failure_count,
            shrinking=tuple(str(s) for s in self._shrinking),
            fields_exercised=summary.coverage.fields_exercised(),
        )  # fmt: skip
        if self.folder is not None:
            self._save_coverage()
            _kind, data = event_record(progress)
            rate = progress.cases / progress.seconds if progress.seconds > 0 else 0.0
            self.folder.log_sample(**data, cases_per_second=round(rate, 3))
        self.emit(progress)

    def _save_coverage(self) -> None:
        """Write ``coverage.json`` if a measured save came since it was last written.

        :raise StorageError: it cannot be written.
        """
        if self.folder is not None and self._coverage_changed:
            self._coverage_changed = False
            self.folder.write_coverage(self.summary.coverage)

    def finish_shrinks(self, entries: Sequence[Path]) -> None:
        """Shrink, in this process, findings whose first case was written but whose shrink
        was cut short (a resumed campaign). Entries that no longer load are skipped."""
        if not entries:
            return
        from fuzz.corpus.entry import load_entry  # noqa: PLC0415 (only a resume needs it)

        with Session(self.spec.settings) as session:
            loop = FuzzLoop(
                session, self.spec.binaries, self.spec.caps, self.spec.pairs,
                self.spec.case_strategy, store=worker_store(self.spec), max_cases=0,
                build_guest=self.spec.build_guest, emit=self._event,
            )  # fmt: skip
            for path in entries:
                try:
                    entry = load_entry(path)
                except CorpusError as err:
                    self._event(WorkerLost(-1, f"cannot finish shrinking {path}: {err}", False))
                    continue
                pair = (entry.src.name, entry.dst.name)
                if pair[0] not in self.spec.binaries or pair[1] not in self.spec.binaries:
                    continue
                self._event(FindingSeen(entry.signature, pair, path))
                loop.finish_shrink(entry.signature, pair, entry.case)

    def run(self, *, finish: Sequence[Path] = ()) -> Summary:
        """Run the campaign; Ctrl-C or SIGTERM ends it cleanly (``summary.interrupted``).

        :param finish: entries whose shrink an earlier session left unfinished; shrunk
            first (see :meth:`finish_shrinks`).
        """
        self._started = time.monotonic()
        try:
            self.finish_shrinks(finish)
            pending = {slot: n for slot, n in self.shares.items() if n != 0}
            if len(pending) == 1 and self.jobs == 1 and self.scheduler is None:
                ((slot, share),) = pending.items()
                self._alive = 1
                run_worker(self._slot_spec(slot, share), self._event, lambda: False)
            elif pending:
                self._run_pool(pending)
        except KeyboardInterrupt:
            self.summary.interrupted = True
        finally:
            self.summary.seconds = time.monotonic() - self._started
        self._save_coverage()
        return self.summary

    def _slot_spec(self, slot: int, share: int | None) -> WorkerSpec:
        """What worker slot ``slot`` runs: its case share and its share of the sweep."""
        sweep = sweep_share(self.spec.sweep, slot, self.jobs)
        return replace(self.spec, worker=slot, max_cases=share, sweep=sweep)

    def _pool(self) -> Any:
        """Where the workers run: a local process pool, or the cluster at ``scheduler``."""
        if self.scheduler is None:
            return _LocalPool()
        from fuzz.campaign import cluster  # noqa: PLC0415 (Dask is optional)

        # Every folder a worker uses must exist on its node too (the same shared folder).
        self.spec.corpus_dir.mkdir(parents=True, exist_ok=True)
        folders = [self.spec.corpus_dir, *self.spec.known_dirs]
        if self.spec.hypothesis_dir is not None:
            folders.append(self.spec.hypothesis_dir.parent)
        required = cluster.requirements(self.spec.binaries, folders)
        return cluster.ClusterPool(self.scheduler, _worker_body, required)

    def _run_pool(self, pending: dict[int, int | None]) -> None:
        """Workers in a pool; slots whose worker was lost are replaced by fresh ones."""
        pool = self._pool()
        events, stop = pool.events, pool.stop
        old_term = signal.signal(signal.SIGTERM, _interrupt)
        self._next_slot = max(self.shares, default=-1) + 1
        try:
            while pending:
                pending = self._run_generation(pool, pending)
        except KeyboardInterrupt:
            stop.set()
            raise
        finally:
            signal.signal(signal.SIGTERM, old_term)
            with contextlib.suppress(KeyboardInterrupt):
                self._drain(events, timeout=0.0)
            pool.close()

    def _run_generation(self, pool: Any, slots: Mapping[int, int | None]) -> dict[int, int | None]:
        """One generation running ``slots`` to their end; returns the fresh slots that take
        over from lost ones. A pool that takes new work while a slot is lost (a cluster)
        gets their replacements at once; a broken local pool only after its generation."""
        lost: dict[int, str] = {}
        events, stop = pool.events, pool.stop
        with pool.executor(len(slots)) as executor:
            futures: dict[Any, int] = {}

            def start(new: Mapping[int, int | None]) -> None:
                for slot, share in new.items():
                    self._slot_shares[slot] = share
                    futures[executor.submit(pool.body, self._slot_spec(slot, share))] = slot

            start(slots)
            self._alive = len(futures)
            try:
                while futures:
                    self._drain(events, timeout=0.2)
                    for future in [f for f in futures if f.done()]:
                        slot = futures.pop(future)
                        if (reason := pool.lost(future)) is not None:
                            lost[slot] = reason
                    for future, reason in pool.vanished(futures).items():
                        lost[futures.pop(future)] = reason
                    if lost and pool.replaces_at_once:
                        self._drain(events, timeout=0.0)  # count what the lost ones did
                        start(self._replacements(pool, lost))
                        lost = {}
                    self._alive = len(futures)
            except BaseException:
                # Ctrl-C, or a worker that failed for good (a full disk): workers see the
                # stop flag before their next case and reap their QEMU; leaving the
                # 'with' waits for them.
                stop.set()
                with contextlib.suppress(KeyboardInterrupt):
                    while any(not f.done() for f in futures):
                        self._drain(events, timeout=0.2)
                raise
        return self._replacements(pool, lost)

    def _replacements(self, pool: Any, lost: Mapping[int, str]) -> dict[int, int | None]:
        """Log the ``lost`` slots; return the fresh slots (new seeds) that run what the
        lost ones left undone, if there is time and cases left and the pool can."""
        if not lost:
            return {}
        shares = [self._slot_shares.get(slot) for slot in lost]
        ran = sum(self._slot_cases.get(slot, 0) for slot in lost)
        left = None if None in shares else max(0, sum(n or 0 for n in shares) - ran)
        renew = not self._past_deadline() and left != 0 and pool.can_replace()
        for slot, reason in lost.items():
            self._event(WorkerLost(slot, reason, renew))
        fresh: dict[int, int | None] = {}
        if renew:
            for i in range(len(lost)):
                fresh[self._next_slot] = even_share(i, len(lost), left)
                self._next_slot += 1
        return fresh

    def _past_deadline(self) -> bool:
        return self.spec.deadline is not None and time.time() >= self.spec.deadline

    def _drain(self, events: Any, *, timeout: float) -> None:
        try:
            event = events.get(timeout=timeout) if timeout > 0 else events.get_nowait()
        except queue.Empty:
            return
        while True:
            if isinstance(event, CaseJudged):  # what a lost slot did (see _replacements)
                self._slot_cases[event.worker] = self._slot_cases.get(event.worker, 0) + 1
            self._event(event)
            try:
                event = events.get_nowait()
            except queue.Empty:
                return
