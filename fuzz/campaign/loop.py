"""One worker's Hypothesis-driven differential fuzz loop: keeps going past findings.

Hypothesis stops a test at its first failure and shrinks it. migfuzz wants the opposite
of stopping, so the loop runs Hypothesis repeatedly:

* Within one Hypothesis run, a case whose root causes (signatures) are all known is only
  counted; a case with a *new* one raises a :class:`~fuzz.errors.Finding` subclass made
  for that signature, once the case has shown it again reliably. Hypothesis tells bugs
  apart by exception type, so its shrinker keeps the signature stable: a smaller case
  with another signature is a different bug, not a shrink. Several new signatures in one
  run are shrunk side by side.
* A new signature is first *claimed* in the shared :class:`~fuzz.corpus.store.CorpusStore` (so
  no other worker shrinks it) and its unshrunk case is written at once: a finding that
  was announced survives whatever happens to this worker. The minimal case then replaces
  that entry in place.
* The last case that raised a signature is the minimal one (Hypothesis replays the minimal
  example last). A deterministic pass then makes it 1-minimal.
* Then the next Hypothesis run starts, with a derived seed, until the budget is spent.

Hypothesis draws a pair and a configuration with its guests. With a fan-out, each guest's
save is also restored on every other destination of that source that starts the
configuration: one save and one control then judge several pairs, each counted as a case
of its own. Process starts dominate a case that refuses, and most pairs of a default
campaign refuse most configurations, so that is where a campaign's time goes; it also tells
at once which destinations a bug spans.

Every case goes through the one case path (:meth:`~fuzz.run.session.Session.run_case`) and
the one judge. The loop reports what it does as events; :mod:`fuzz.campaign.driver` adds them up.

The keep-going core is shared with the other Hypothesis driver, the stateful engine
(:mod:`fuzz.stateful.engine`): :class:`BudgetExhausted`, :class:`Carried` (an error out
of a Hypothesis run, unshrunk), :func:`finding_type` (one exception class per signature)
and :func:`keep_going` (a run that ends on findings, several at once included).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from hypothesis import (
    HealthCheck,
    Phase,
    currently_in_test_context,
    event,
    given,
    reject,
    seed,
    settings,
)
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.errors import Flaky, UnsatisfiedAssumption

from fuzz.campaign.coverage import CoverageSampler
from fuzz.core.binary import QemuBinary
from fuzz.core.capabilities import Capabilities
from fuzz.core.case import Case, MachineConfig, Pair
from fuzz.core.live import LiveMigration, unsupported
from fuzz.core.outcome import Stage, TransferOutcome
from fuzz.corpus.entry import Entry, VersionRef
from fuzz.corpus.store import CorpusStore
from fuzz.errors import Finding, HarnessError, MigfuzzError, StorageError, UsageError
from fuzz.events import (
    CaseJudged,
    FindingFlaky,
    FindingSeen,
    LoopEvent,
    ReproducerUnstable,
    ReproducerWritten,
    RunStarted,
)
from fuzz.judge.coverage import section_of
from fuzz.judge.oracles import ControlFailed, Divergence, InvalidCase, Signature
from fuzz.run.engine import CaseRun
from fuzz.run.session import Session
from fuzz.triage.diagnose import explain
from fuzz.triage.minimize import GuestBuilder, make_one_minimal

#: Draws a case for a pair from both versions' capabilities -- or a group of cases that
#: share one configuration (several guests on it). Must pickle (a module-level function or
#: a frozen dataclass instance) so that worker processes can receive it.
CaseStrategy = Callable[
    [Capabilities, Capabilities], st.SearchStrategy[Case] | st.SearchStrategy[Sequence[Case]]
]

#: Whether the version with these capabilities starts this configuration (the loop's
#: fan-out: :func:`strategies.configs.accepted_by`). Must pickle, as a case strategy.
Accepts = Callable[[Capabilities, MachineConfig], bool]

CASES_PER_RUN = 40

#: How many (pair, case) keys a worker keeps to skip cases it already ran (~10 MB).
RAN_CASES_KEPT = 100_000

SHRINK_GRACE = 300.0
#: Hypothesis's shrinker has this long per run, from the run's first new signature; then
#: the run ends and each finding's best case so far goes to the 1-minimal pass
#: (:func:`~fuzz.triage.minimize.make_one_minimal`). Uncapped, it took 35 to 312 s per
#: finding of a 10-minute default campaign, most of the campaign's time (833 cases, where
#: one that meets nothing new draws 15-20 a second), while the 1-minimal pass after it
#: needed 0 to 18 runs.
HYPOTHESIS_SHRINK_SECONDS = 45.0
#: The environment variable that sets another limit (seconds, >= 0): a quick campaign, or a
#: test of what a campaign survives rather than of what it shrinks.
SHRINK_SECONDS_VARIABLE = "MIGFUZZ_SHRINK_SECONDS"
#: Signature kinds recorded as first met, not shrunk: a ``reuse`` divergence depends on what
#: a long-lived process did before, which a shrinker replaying one case cannot hold still.
UNSHRINKABLE_KINDS = frozenset({"reuse"})


def hypothesis_shrink_seconds() -> float:
    """How long Hypothesis's shrinker has per run: :data:`SHRINK_SECONDS_VARIABLE` if set,
    else :data:`HYPOTHESIS_SHRINK_SECONDS`.

    :raise UsageError: the variable is not a number of seconds.
    """
    raw = os.environ.get(SHRINK_SECONDS_VARIABLE)
    if raw is None:
        return HYPOTHESIS_SHRINK_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise UsageError(f"{SHRINK_SECONDS_VARIABLE}={raw!r}: not a number of seconds (>= 0)")
    return seconds


#: The share of a budgeted campaign's time after which the transport sweep starts no more
#: cases (:mod:`strategies.sweep`). Its 26 cases over the 7 installed versions took ~3
#: minutes of a 10-minute campaign, which they keep; a 60-second one was all sweep
#: (``scripts/bench.py`` (d) measured live cases only) and now draws for 36 s of it.
SWEEP_SHARE = 0.4


def sweep_cutoff(now: float, deadline: float | None) -> float | None:
    """When the sweep, starting at ``now``, starts its last case: :data:`SWEEP_SHARE` of
    the time to ``deadline`` (None: no deadline, a ``--max-cases`` campaign, no cut-off)."""
    if deadline is None:
        return None
    return now + SWEEP_SHARE * max(0.0, deadline - now)


# -- the keep-going core of both Hypothesis drivers (this loop, the stateful engine) -------


class BudgetExhausted(BaseException):
    """Raised inside a Hypothesis run to end it at once (a BaseException: not a failure)."""


class ShrinkTimeUp(BaseException):
    """Raised inside a Hypothesis run whose shrinking had its time
    (:func:`hypothesis_shrink_seconds`): ends the run as its findings would have."""


class Carried(BaseException):
    """Carries ``error`` out of a Hypothesis run unshrunk (a BaseException: Hypothesis
    neither shrinks nor reports it); the driver raises ``error`` again outside the run."""

    def __init__(self, error: MigfuzzError) -> None:
        super().__init__(str(error))
        self.error = error


_finding_types: dict[tuple[str, Signature], type[Finding]] = {}


def finding_type(signature: Signature, prefix: str = "Finding") -> type[Finding]:
    """One exception class per signature (``<prefix>_<hash>``), so Hypothesis treats each
    as its own bug: its shrinker keeps the signature, and several are shrunk side by side."""
    key = (prefix, signature)
    if key not in _finding_types:
        name = f"{prefix}_" + hashlib.sha256(str(signature).encode()).hexdigest()[:10]
        _finding_types[key] = type(name, (Finding,), {"__doc__": str(signature)})
    return _finding_types[key]


def keep_going(test: Callable[[], None]) -> bool:
    """Run a Hypothesis test whose failures are findings the driver has recorded already.

    :return: whether findings ended it (a :class:`Finding`, a ``Flaky``, a
        :class:`ShrinkTimeUp`, or an ``ExceptionGroup`` of them: several shrunk side by
        side); False if it ran out.
    :raise BudgetExhausted: the budget ran out while findings were being shrunk side by
        side (Hypothesis then reports them with it in a ``BaseExceptionGroup``, which
        escaped here and, unpicklable, killed a 10-minute campaign at its end).
    :raise BaseException: anything else, a group's other members included (a harness
        error or a bug of ours is never swallowed with the findings).
    """
    try:
        test()
    except (Finding, Flaky, ShrinkTimeUp):
        return True
    except BaseExceptionGroup as group:
        _findings, rest = group.split((Finding, Flaky, ShrinkTimeUp))
        if rest is None:
            return True
        _budget, other = rest.split(BudgetExhausted)
        if other is not None:
            raise other from None
        raise BudgetExhausted from None
    return False


class _StorageFailed(Carried):
    """Carries a :class:`StorageError` out of a Hypothesis run unshrunk."""


#: A new signature's case is run again up to this many times before it is reported...
RELIABILITY_RUNS = 10
#: ...stopping early once it showed the signature this many times in a row...
RELIABLE_STREAK = 3
#: ...and is flaky (recorded apart, not shrunk) if it showed it in less than this share.
FLAKY_BELOW = 0.5


def measure_reliability(shows: Callable[[], bool]) -> tuple[int, int]:
    """Re-run a case that showed a signature once (``shows()`` runs it again) until it
    shows it :data:`RELIABLE_STREAK` times in a row or :data:`RELIABILITY_RUNS` times in
    all: (hits, runs), the first meeting included. Reliable cases cost two re-runs."""
    hits = runs = streak = 1
    while runs < RELIABILITY_RUNS and streak < RELIABLE_STREAK:
        runs += 1
        if shows():
            hits, streak = hits + 1, streak + 1
        else:
            streak = 0
    return hits, runs


def is_flaky(hits: int, runs: int) -> bool:
    """Whether a signature shown ``hits`` times in ``runs`` is too unreliable to report."""
    return hits < FLAKY_BELOW * runs


def parse_pairs(text: str) -> list[Pair]:
    """``"7.2:10.0,10.0:11.1"`` -> [("7.2", "10.0"), ("10.0", "11.1")]."""
    pairs = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        src, sep, dst = item.partition(":")
        if not sep or not src or not dst:
            raise UsageError(f"--pairs {item!r}: expected SRC:DST, e.g. 10.0:11.1")
        pairs.append((src, dst))
    return pairs


#: How many bits a fresh campaign seed has: small enough to read aloud and type back.
SEED_BITS = 32


def campaign_seed(given: int | None) -> int:
    """The seed a campaign draws its cases from: ``given`` (``--seed``), else a fresh one.

    A fuzzer run every night must explore new ground every night, so unless the user pins
    a seed (to draw the same cases again) each campaign draws a new one; the campaign
    prints and records it, and a resume reuses the recorded one.

    :raise UsageError: ``given`` is negative.
    """
    if given is None:
        return secrets.randbits(SEED_BITS)
    if given < 0:
        raise UsageError(f"--seed {given}: must be 0 or more")
    return given


def default_pairs(versions: Sequence[str]) -> list[Pair]:
    """Every ordered pair of distinct versions: both directions."""
    return [(a, b) for a in versions for b in versions if a != b]


def _kind(run: CaseRun) -> tuple[str, str]:
    judgement = run.judgement
    if isinstance(judgement, InvalidCase):
        return "invalid", judgement.reason
    if isinstance(judgement, ControlFailed):
        return "control-failed", judgement.reason
    if isinstance(judgement, Divergence):
        return "divergence", str(judgement.signature)
    return "agree", ""


def _tell(behaviour: str) -> None:
    """Record ``behaviour`` as a Hypothesis ``event`` of the running test; outside one (the
    transport sweep's fixed cases, a resumed shrink), nobody is listening."""
    if currently_in_test_context():
        event(behaviour)


def observe(run: CaseRun) -> None:
    """Tell Hypothesis what QEMU did (``event``): the outcome class, where a load stopped,
    the kind of each cause, the sections whose state differs, what a live case ran over,
    which devices the configuration added.
    So its statistics (``--hypothesis-show-statistics``) and HypoFuzz, which steers by such
    behaviours, see QEMU's side."""
    kind, _reason = _kind(run)
    _tell(f"outcome: {kind}")
    if run.case.live is not None:
        for feature in run.case.live.features():
            _tell(f"live over: {feature}")
    for device in run.case.config.devices:
        _tell(f"device: {device.driver}")
    judgement = run.judgement
    if not isinstance(judgement, Divergence):
        return
    for cause in judgement.signatures():
        _tell(f"cause kind: {cause.kind}")
    step = run.pair.failing_step or run.control.failing_step
    if step is not None and step.last_field_loaded:
        _tell(f"load stopped after: {step.last_field_loaded.split(':')[0]}")
    state = judgement.details.get("state")
    changed = state.get("changed", []) if isinstance(state, dict) else []
    for change in changed:
        if isinstance(change, dict) and isinstance(change.get("path"), str):
            _tell(f"differing section: {change['path'].split('/')[0]}")


def observe_coverage(
    sampler: CoverageSampler, version: str, case: Case, runs: Sequence[CaseRun | None]
) -> None:
    """Measure the state coverage of ``case``'s save on ``version`` if its time share allows
    (:mod:`fuzz.campaign.coverage`), and tell Hypothesis which sections it exercised
    (``event``): HypoFuzz steers by them, toward guests that reach more devices."""
    for section in sorted({section_of(f) for f in sampler.measure(version, case, runs)}):
        _tell(f"section exercised: {section}")


def version_ref(binary: QemuBinary, caps: Capabilities) -> VersionRef:
    """How an entry records a version: name, binary hash, version line."""
    return VersionRef(binary.name, binary.content_hash(), caps.version_line)


class FuzzLoop:
    """Runs cases from a case strategy over pairs of versions until the budget is spent.

    :param deadline: ``time.time()`` after which no new case starts (shrinking a finding
        may go on for :data:`SHRINK_GRACE` seconds more); None: no time limit.
    :param max_cases: stop after this many drawn cases; None: no limit.
    :param seed_value: the campaign's seed; ``worker`` makes each worker's draws distinct.
    :param first_run: the first Hypothesis run index (a resumed worker goes on from where
        it stopped rather than redrawing the same cases).
    :param database: a folder for Hypothesis's example database (the failing examples it
        shrank), or None for none.
    :param replaying: signatures this worker recorded in the run it is resuming: met again
        in that run, they are shrunk again as the first time instead of only counted, so
        that Hypothesis takes the very path it took then (and draws the same cases).
    :param should_stop: polled before each case: True ends the loop (a driver's stop).
    :param fan_out: with it, each case's save is restored on every destination of its
        source that this says starts the configuration, not only on the drawn pair's (one
        save, one control, many pairs judged); None: the drawn pair only.
    :param coverage: measure a sample of the saves' state coverage
        (:mod:`fuzz.campaign.coverage`), emitted as events and told to Hypothesis.
    :param sweep: fixed cases run before the first Hypothesis run, each as a drawn one
        (counted, fanned out, a new signature recorded and made minimal): this worker's
        share of the transport sweep (:mod:`strategies.sweep`).
    """

    def __init__(
        self,
        session: Session,
        binaries: Mapping[str, QemuBinary],
        caps: Mapping[str, Capabilities],
        pairs: Sequence[Pair],
        case_strategy: CaseStrategy,
        *,
        store: CorpusStore,
        deadline: float | None = None,
        max_cases: int | None = None,
        seed_value: int = 0,
        worker: int = 0,
        first_run: int = 0,
        database: Path | None = None,
        replaying: frozenset[str] = frozenset(),
        build_guest: GuestBuilder | None = None,
        emit: Callable[[LoopEvent], None] = lambda _e: None,
        should_stop: Callable[[], bool] = lambda: False,
        fan_out: Accepts | None = None,
        coverage: bool = False,
        sweep: Sequence[tuple[Pair, Sequence[Case]]] = (),
    ) -> None:
        if deadline is None and max_cases is None:
            raise UsageError("give a budget (--budget) or a number of cases (--max-cases)")
        self.session = session
        self.binaries = binaries
        self.caps = caps
        self.pairs = list(pairs)
        self.case_strategy = case_strategy
        self.store = store
        self.deadline = deadline
        self.max_cases = max_cases
        self.seed = seed_value
        self.worker = worker
        self.first_run = first_run
        self._replaying = set(replaying)
        self.database = None if database is None else DirectoryBasedExampleDatabase(database)
        self.build_guest = build_guest
        self.emit = emit
        self.should_stop = should_stop
        self.fan_out = fan_out
        self.coverage = (
            CoverageSampler(session, binaries, emit, worker=worker) if coverage else None
        )
        self.sweep = list(sweep)
        self.cases = 0
        self._shrinking = False
        self._shrink_began: float | None = None  # this Hypothesis run's first new finding
        self._shrink_seconds = hypothesis_shrink_seconds()
        self._minimal: dict[Signature, tuple[Pair, Case]] = {}
        self._claimed: dict[Signature, Path] = {}
        self._reliability: dict[Signature, str] = {}
        self._strategies: dict[Pair, st.SearchStrategy[tuple[Pair, Case | Sequence[Case]]]] = {}
        self._ran: dict[tuple[Pair, str], None] = {}  # insertion-ordered: oldest first

    # -- running one case ------------------------------------------------------------

    def run_case(self, pair: Pair, case: Case, *, more_alike: bool = False) -> CaseRun:
        """The one case path: save on the pair's source, restore on source and destination.

        A harness failure (QMP lost, a QEMU that would not answer) is retried once.

        :param more_alike: more cases of this configuration follow.
        :raise HarnessError: it failed twice: the case tells nothing.
        """
        (run,) = self.run_cases(pair[0], [pair[1]], case, more_alike=more_alike)
        return run

    def run_cases(
        self, src: str, dsts: Sequence[str], case: Case, *, more_alike: bool = False
    ) -> list[CaseRun]:
        """One save of ``case`` on ``src``, judged on every destination in ``dsts`` (the
        fan-out): one run per destination, in order. A harness failure (QMP lost, a QEMU
        that would not answer) is retried once.

        :raise HarnessError: it failed twice: the case tells nothing.
        """
        binary = self.binaries[src]
        targets = [self.binaries[d] for d in dsts]
        try:
            return self.session.run_cases(binary, targets, case, more_alike=more_alike)
        except HarnessError:
            return self.session.run_cases(binary, targets, case, more_alike=more_alike)

    def destinations(
        self, pair: Pair, config: MachineConfig, live: LiveMigration | None = None
    ) -> list[str]:
        """Where a case drawn for ``pair`` is restored: the pair's destination, then (with
        a fan-out) every other destination of the source that starts ``config`` and, for a
        live case, offers its migration's settings with the source (:func:`unsupported`).

        While a finding is being shrunk, only destinations whose pair showed a signature
        being shrunk: a candidate case only has to show that one again.
        """
        src, dst = pair
        found = [dst]
        if self.fan_out is not None:
            found += [
                b for a, b in self.pairs
                if a == src and b not in found and self.fan_out(self.caps[b], config)
                and (live is None or not unsupported(live, (self.caps[src], self.caps[b])))
            ]  # fmt: skip
        if self._shrinking:
            hunted = {p for p, _case in self._minimal.values()}
            found = [d for d in found if (src, d) in hunted]
        return found

    def causes_of(self, pair: Pair, case: Case) -> tuple[Signature, ...]:
        """The root causes a case shows (none if it shows none, or the harness failed)."""
        try:
            return self.run_case(pair, case).causes
        except HarnessError:
            return ()

    def reliability(self, pair: Pair, case: Case, sig: Signature) -> tuple[int, int]:
        """How reliably ``case`` shows ``sig`` (see :func:`measure_reliability`).

        :raise BudgetExhausted: the driver said stop meanwhile.
        """

        def shows() -> bool:
            if self.should_stop():
                raise BudgetExhausted
            return sig in self.causes_of(pair, case)

        return measure_reliability(shows)

    # -- the loop ----------------------------------------------------------------------

    def _out_of_budget(self) -> bool:
        if self.should_stop():
            return True
        if self.max_cases is not None and self.cases >= self.max_cases:
            return not self._shrinking
        if self.deadline is None:
            return False
        return time.time() >= self.deadline + (SHRINK_GRACE if self._shrinking else 0.0)

    def _body(self, drawn: tuple[Pair, Case | Sequence[Case]]) -> None:
        """Run a drawn configuration's guests in turn (one case, or a group sharing it),
        each saved once and restored on every destination of the fan-out.

        Guests on one configuration share long-lived processes. A destination leaves the
        group once it refuses or crashes on loading the configuration (the load fails
        before any guest state matters), or once two guests in a row showed it the same
        divergence (the configuration shows it whatever the guest; a new one would have
        ended the group already, so it is a known one, and every further guest would be
        run again on fresh processes only to count it). The group ends when none is left.
        """
        pair, cases = drawn
        group = (cases,) if isinstance(cases, Case) else cases
        dsts = self.destinations(pair, group[0].config, group[0].live)
        last: dict[str, tuple[Signature, ...]] = {}
        valid = 0
        for index, case in enumerate(group):
            if not dsts:
                break
            if self._out_of_budget():
                raise BudgetExhausted
            if self._shrink_time_up():
                raise ShrinkTimeUp
            if not self._shrinking and self._ran_before(pair, case):
                continue
            if self.max_cases is not None and not self._shrinking:
                # --max-cases N runs N cases, not one fan-out more; the drawn pair first.
                dsts = dsts[: self.max_cases - self.cases]
            runs = self._one(pair[0], dsts, case, more_alike=index + 1 < len(group))
            if self.coverage is not None and not self._shrinking:
                observe_coverage(self.coverage, pair[0], case, runs)
            done = set()
            for dst, run in zip(dsts, runs, strict=True):
                if run is None:
                    continue
                observe(run)
                kind = _kind(run)[0]
                valid += kind not in ("invalid", "control-failed")
                step = run.pair.failing_step
                refused = step is not None and step.stage is Stage.LOAD and kind == "divergence"
                if refused or (run.causes and last.get(dst) == run.causes):
                    done.add(dst)
                last[dst] = run.causes
            dsts = [d for d in dsts if d not in done]
        # No ``target()``: the campaign runs no targeting phase, so its only effect was
        # Hypothesis's Pareto front, which cost a tenth of migfuzz's CPU time per case.
        if not valid:
            reject()

    def _shrink_time_up(self) -> bool:
        """Whether Hypothesis has been shrinking this run's findings for longer than it may
        (:func:`hypothesis_shrink_seconds`)."""
        began = self._shrink_began
        return began is not None and time.monotonic() - began > self._shrink_seconds

    def _ran_before(self, pair: Pair, case: Case) -> bool:
        """Whether this worker already ran ``case`` on ``pair`` (and remember it if not).

        Hypothesis begins every run with its simplest examples, and its mutations meet
        the same case again: measured on 11.1:11.1 before this check, 300 drawn cases
        were 111 distinct ones, and each run's first 80 were one empty guest 16 times
        over on each of five configurations. Running a case again only measures noise
        (every finding's reliability is measured anyway), so a drawn case already run is
        skipped, uncounted. The memory is bounded: the oldest keys are forgotten first.
        """
        key = (pair, case.key())
        if key in self._ran:
            return True
        self._ran[key] = None
        if len(self._ran) > RAN_CASES_KEPT:
            del self._ran[next(iter(self._ran))]
        return False

    def _one(
        self, src: str, dsts: Sequence[str], case: Case, *, more_alike: bool = False
    ) -> list[CaseRun | None]:
        """Run one case on every destination, count each pair's run as a case, and raise
        the :class:`Finding` of a new signature.

        :param more_alike: more cases of this configuration follow in the group.
        :return: each destination's run, or None where the harness failed it (twice):
            counted in its bucket.
        """
        started = time.monotonic()
        bucket = ""
        try:
            runs: list[CaseRun | None] = list(
                self.run_cases(src, dsts, case, more_alike=more_alike)
            )
        except HarnessError as err:
            runs = [None] * len(dsts)
            bucket = f"{type(err).__name__}: {str(err)[:120]}"
        # One save served every destination: each pair's case is charged an equal share.
        seconds = (time.monotonic() - started) / len(dsts)
        if not self._shrinking:
            key = case.key()  # one case, judged on every destination
            live = () if case.live is None else tuple(case.live.features())
            for dst, run in zip(dsts, runs, strict=True):
                self.cases += 1
                if run is None:
                    judged = CaseJudged((src, dst), "harness", None, bucket, seconds,
                                        self.worker, case=key, live=live)  # fmt: skip
                else:
                    kind, reason = _kind(run)
                    judged = CaseJudged((src, dst), kind, run.signature, reason, seconds,
                                        self.worker, run.causes, key, live)  # fmt: skip
                self.emit(judged)
        # Each root cause is recorded on its own; the case is the first example of every
        # new one. Hypothesis shrinks toward the first cause being recorded here; the
        # others are made minimal by the 1-minimal pass after the run.
        shrinking: dict[Signature, Pair] = {}  # each at the first pair that showed it
        for dst, run in zip(dsts, runs, strict=True):
            if run is None or not isinstance(run.judgement, Divergence):
                continue
            for sig in run.judgement.signatures():
                if sig not in shrinking and self._take(sig, (src, dst), run):
                    shrinking[sig] = (src, dst)
                    # At once: a stop while the next cause is taken must still find this
                    # one claimed and release it (it leaked a claim when it was set after).
                    self._minimal[sig] = ((src, dst), case)
        if not shrinking:
            return runs
        self._shrinking = True
        if self._shrink_began is None:
            self._shrink_began = time.monotonic()
        first = next(iter(shrinking))
        raise finding_type(first)(str(first))

    def _take(self, sig: Signature, pair: Pair, run: CaseRun) -> bool:
        """Whether this worker shrinks ``sig`` in this run (claiming and first recording
        it if it is new); False if it is known, another worker's, or never shrunk."""
        if sig in self._claimed:
            return True
        if str(sig) in self._replaying:
            self._replaying.discard(str(sig))
            if not self.store.claim_again(sig):
                return False
            self._claimed[sig] = self.store.path_for(sig)
            return True
        if not self.store.claim(sig):
            return False  # known, or another worker is recording it: counted, not shrunk
        judgement = run.judgement
        assert isinstance(judgement, Divergence)
        shrinking, self._shrinking = self._shrinking, True  # the re-runs are not cases
        try:
            hits, runs = self.reliability(pair, run.case, sig)
        except BaseException:
            self.store.release(sig)  # stopped before anything was written: nothing to keep
            raise
        finally:
            self._shrinking = shrinking
        self._reliability[sig] = f"{hits}/{runs}"
        findings = {**judgement.details, "reliability": f"{hits}/{runs}"}
        if is_flaky(hits, runs):
            path = self._write(pair, run, sig, findings, flaky=True)
            self.store.release(sig)
            self.emit(FindingFlaky(sig, pair, path, f"{hits}/{runs}"))
            return False
        path = self._write(pair, run, sig, findings=findings)
        behind = run.past.first_causes if run.past and sig in run.past.behind else ()
        self.emit(FindingSeen(sig, pair, path, self.worker, tuple(str(c) for c in behind)))
        if sig.kind in UNSHRINKABLE_KINDS:
            self.store.release(sig)
            return False
        self._claimed[sig] = path  # being shrunk in this Hypothesis run
        return True

    def _write(
        self, pair: Pair, run: CaseRun, signature: Signature, findings: dict[str, object],
        *, flaky: bool = False,
    ) -> Path:  # fmt: skip
        src, dst = self.binaries[pair[0]], self.binaries[pair[1]]
        pair_outcome, patched, findings = self._edited_load(run, signature, findings)
        if run.tolerance is not None and signature in run.tolerance.causes:
            dst = src  # the source loaded its own stream, one cpreg left out
        entry = Entry(
            signature=signature,
            src=version_ref(src, self.caps[src.name]),
            dst=version_ref(dst, self.caps[dst.name]),
            case=run.case, control=run.control, pair=pair_outcome,
            findings=findings, stream=run.source_stream, patched_stream=patched,
        )  # fmt: skip
        try:
            return self.store.save(entry, src, dst, flaky=flaky)
        except StorageError as err:
            raise _StorageFailed(err) from None

    @staticmethod
    def _edited_load(
        run: CaseRun, signature: Signature, findings: dict[str, object]
    ) -> tuple[TransferOutcome, bytes | None, dict[str, object]]:
        """For a cause of a load of an edited stream (past a refusal, or with a cpreg left
        out by the tolerance check): that load as the entry's pair, the stream it loaded,
        and what the entry says about it. Any other cause: the run's pair, as it is."""
        past, check = run.past, run.tolerance
        if past is not None and past.evidence is not None and signature in past.behind:
            behind = [str(c) for c in past.first_causes]
            return past.evidence.pair, past.stream, {**findings, "behind": behind}
        if check is not None and signature in check.causes:
            return check.evidence.pair, check.stream, findings
        return run.pair, None, findings

    def _run_sweep(self) -> None:
        """Run the sweep's fixed cases (``sweep``) as drawn ones, each finding made minimal
        by the 1-minimal pass as a Hypothesis run's are (Hypothesis has no part in them);
        none starts after the sweep's share of the budget (:func:`sweep_cutoff`)."""
        cutoff = sweep_cutoff(time.time(), self.deadline)
        for drawn in self.sweep:
            if cutoff is not None and time.time() >= cutoff:
                break
            # A new signature (in self._minimal), or no destination judged it.
            with self._recording(), contextlib.suppress(Finding, UnsatisfiedAssumption):
                self._body(drawn)

    @contextlib.contextmanager
    def _recording(self) -> Iterator[None]:
        """One run's findings (a Hypothesis run's, or a sweep case's): it starts with none
        and, however it ends, makes each new one it met minimal and records it."""
        self._shrinking = False
        self._shrink_began = None
        self._minimal = {}
        try:
            yield
        finally:
            self._shrinking = True
            try:
                self._record_minimal()
            finally:
                self._shrinking = False

    def _hypothesis_run(self, run_index: int) -> None:
        if not self._strategies:  # built once: a config plan is worked out from two probes
            self._strategies = {
                p: st.tuples(st.just(p), self.case_strategy(self.caps[p[0]], self.caps[p[1]]))
                for p in self.pairs
            }
        strategy = st.sampled_from(self.pairs).flatmap(self._strategies.__getitem__)

        @settings(
            max_examples=CASES_PER_RUN,
            database=self.database,
            deadline=None,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=True,
            print_blob=False,
        )
        @seed((self.seed * 1_000_003 + run_index) * 1_009 + self.worker)
        @given(strategy)
        def property_(drawn: tuple[Pair, Case | Sequence[Case]]) -> None:
            self._body(drawn)

        with self._recording():
            self.emit(RunStarted(self.worker, run_index))
            keep_going(property_)  # the minimal examples are in self._minimal

    def finish_shrink(self, signature: Signature, pair: Pair, case: Case) -> None:
        """Shrink a finding whose first case was written but whose shrink was cut short
        (a resumed campaign): claim it, make ``case`` minimal, replace its entry.

        Does nothing if another live worker holds the claim.
        """
        path = self.store.path_for(signature)
        if not self.store.claim_again(signature):
            return
        self._claimed[signature] = path
        self._minimal = {signature: (pair, case)}
        self._shrinking = True
        try:
            self._record_minimal()
        finally:
            self._shrinking = False

    def _record_minimal(self) -> None:
        for sig, (pair, case) in list(self._minimal.items()):
            # Recorded from here on: a later meeting only counts it (the store knows it).
            path = self._claimed.pop(sig)
            if self.should_stop():
                # Stopping (Ctrl-C, SIGTERM): the first case stays the entry; a resumed
                # campaign finishes the shrink.
                self.store.release(sig)
                continue

            def still_fails(candidate: Case, pair: Pair = pair, sig: Signature = sig) -> bool:
                if self._out_of_budget():
                    raise BudgetExhausted
                return sig in self.causes_of(pair, candidate)

            try:
                minimal, tests = make_one_minimal(case, still_fails, build_guest=self.build_guest)
            except BudgetExhausted:
                minimal, tests = case, 0
            report = explain(self.session, self.run_case(pair, minimal), self.binaries[pair[1]])
            judgement = report.judgement
            if not isinstance(judgement, Divergence) or sig not in judgement.signatures():
                self.store.release(sig)
                self.emit(ReproducerUnstable(sig, path, str(report.signature)))
                continue  # the first case stays the entry
            # The entry stands for ``sig``, one of the case's causes, all listed.
            findings = {
                **judgement.details, **report.to_json(), "signature": str(sig),
                "causes": [str(c) for c in judgement.signatures()],
            }  # fmt: skip
            if sig in self._reliability:
                findings["reliability"] = self._reliability[sig]
            self._write(pair, report.run, sig, findings)
            self.store.release(sig)
            self.emit(ReproducerWritten(sig, path, tests))
        self._minimal = {}

    def run(self) -> int:
        """Fuzz until the budget or case count is spent, or the driver says stop.

        :return: the number of cases drawn.
        :raise KeyboardInterrupt: Ctrl-C or SIGTERM; entries already written stay whole.
        :raise HarnessError: the harness failed in a way that makes going on pointless.
        :raise StorageError: an entry could not be written (a full disk): the loop stops.
        """
        run_index = self.first_run
        try:
            self._run_sweep()
        except BudgetExhausted:
            return self.cases
        except _StorageFailed as failed:
            raise failed.error from None
        while not self._out_of_budget():
            try:
                self._hypothesis_run(run_index)
            except BudgetExhausted:
                break
            except _StorageFailed as failed:
                raise failed.error from None
            run_index += 1
            self._replaying.clear()  # only the resumed run is replayed
        return self.cases
