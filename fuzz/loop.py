"""The Hypothesis-driven differential fuzz loop: keeps going past findings.

Hypothesis stops a test at its first failure and shrinks it. migfuzz wants the opposite
of stopping, so the loop runs Hypothesis repeatedly:

* Within one Hypothesis run, a case whose signature is already known is only counted; a
  case with a *new* signature raises a :class:`~fuzz.errors.Finding` subclass made for
  that signature. Hypothesis tells bugs apart by exception type, so its shrinker keeps the
  signature stable: a smaller case with another signature is a different bug, not a
  shrink. Several new signatures in one run are shrunk side by side.
* The last case that raised a signature is the minimal one (Hypothesis replays the minimal
  example last). A deterministic pass then makes it 1-minimal, and it is written to the
  corpus atomically.
* Then the next Hypothesis run starts, with a derived seed, until the budget is spent.

Every case is a pure function of (pair, configuration, guest) and runs in its own temp
folder, so the same loop can later run in several processes sharing one corpus folder.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, reject, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky

from fuzz.case import Case
from fuzz.corpus import Entry, VersionRef, iter_entries, write_entry
from fuzz.diagnose import diagnose, judge_with_state
from fuzz.errors import Finding, HarnessError, UsageError
from fuzz.events import CaseFinished, Event
from fuzz.farm import Farm, QemuBinary
from fuzz.minimize import GuestBuilder, make_one_minimal
from fuzz.oracles import ControlFailed, Divergence, InvalidCase, Signature, StateOracle
from fuzz.outcome import TransferOutcome
from fuzz.probe import Capabilities, capabilities
from fuzz.runner import save_and_restore

Pair = tuple[str, str]
#: Draws a case for a pair from both versions' capabilities.
CaseStrategy = Callable[[Capabilities, Capabilities], st.SearchStrategy[Case]]

_CASES_PER_RUN = 40
_SHRINK_GRACE = 300.0


class BudgetExhausted(BaseException):
    """Raised inside a Hypothesis run to end it at once (a BaseException: not a failure)."""


@dataclass(frozen=True)
class FindingSeen:
    """A divergence was met: ``new`` if its signature was not known before."""

    signature: Signature
    pair: Pair
    new: bool


@dataclass(frozen=True)
class ReproducerWritten:
    """A minimal reproducer of ``signature`` is in ``path``."""

    signature: Signature
    path: Path
    minimize_tests: int


@dataclass(frozen=True)
class ControlFailure:
    """A -> A did not complete: a harness or QEMU problem, not a finding."""

    pair: Pair
    reason: str


@dataclass(frozen=True)
class Progress:
    """Periodic: cases run so far, seconds elapsed, distinct signatures."""

    cases: int
    seconds: float
    signatures: int


LoopEvent = FindingSeen | ReproducerWritten | ControlFailure | Progress


@dataclass
class FindingStats:
    """What the loop knows about one signature."""

    signature: Signature
    count: int = 0
    pairs: set[Pair] = field(default_factory=set)
    path: Path | None = None
    new: bool = False


@dataclass
class Summary:
    """The end of a fuzz run."""

    cases: int = 0
    invalid: int = 0
    control_failures: int = 0
    seconds: float = 0.0
    findings: dict[Signature, FindingStats] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def cases_per_second(self) -> float:
        """Throughput over the whole run."""
        return self.cases / self.seconds if self.seconds > 0 else 0.0


def parse_pairs(text: str) -> list[Pair]:
    """``"7.2:10.0,10.0:11.1"`` -> [("7.2", "10.0"), ("10.0", "11.1")]."""
    pairs = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        src, sep, dst = item.partition(":")
        if not sep or not src or not dst:
            raise UsageError(f"--pairs {item!r}: expected SRC:DST, e.g. 10.0:11.1")
        pairs.append((src, dst))
    return pairs


def default_pairs(versions: Sequence[str]) -> list[Pair]:
    """Every ordered pair of distinct versions: both directions."""
    return [(a, b) for a in versions for b in versions if a != b]


_finding_types: dict[Signature, type[Finding]] = {}


def _finding_type(signature: Signature) -> type[Finding]:
    """One exception class per signature, so Hypothesis treats each as its own bug."""
    if signature not in _finding_types:
        name = "Finding_" + hashlib.sha256(str(signature).encode()).hexdigest()[:10]
        _finding_types[signature] = type(name, (Finding,), {"__doc__": str(signature)})
    return _finding_types[signature]


class FuzzLoop:
    """Runs cases from a case strategy over pairs of versions until the budget is spent."""

    def __init__(
        self,
        farm: Farm,
        pairs: Sequence[Pair],
        case_strategy: CaseStrategy,
        corpus_dir: Path,
        *,
        budget_seconds: float | None = None,
        max_cases: int | None = None,
        seed_value: int = 0,
        oracles: Sequence[StateOracle] = (),
        build_guest: GuestBuilder | None = None,
        emit: Callable[[Event | LoopEvent], None] = lambda _e: None,
    ) -> None:
        if budget_seconds is None and max_cases is None:
            raise UsageError("give a budget (--budget) or a number of cases (--max-cases)")
        self.binaries: dict[str, QemuBinary] = {}
        for src, dst in pairs:
            self.binaries[src] = farm.get(src)
            self.binaries[dst] = farm.get(dst)
        self.caps = {name: capabilities(b, farm.cache_dir) for name, b in self.binaries.items()}
        self.pairs = list(pairs)
        self.case_strategy = case_strategy
        self.corpus_dir = corpus_dir
        self.budget = budget_seconds
        self.max_cases = max_cases
        self.seed = seed_value
        self.oracles = oracles
        self.build_guest = build_guest
        self.emit = emit
        self.summary = Summary()
        self._started = 0.0
        self._last_progress = 0.0
        self._shrinking = False
        self._minimal: dict[Signature, tuple[Pair, Case]] = {}
        self._strategies: dict[Pair, st.SearchStrategy[tuple[Pair, Case]]] = {}
        for item in iter_entries(corpus_dir):
            if not isinstance(item, Exception):
                self.summary.findings[item.signature] = FindingStats(item.signature, path=item.path)

    # -- running one case ------------------------------------------------------------

    def run_case(
        self, pair: Pair, case: Case
    ) -> tuple[Any, TransferOutcome, TransferOutcome, bytes | None]:
        """Save on the pair's source, restore on source and destination, judge.

        :return: (judgement, control, pair outcome, the source stream if it diverged).
        """
        src, dst = self.binaries[pair[0]], self.binaries[pair[1]]
        with tempfile.TemporaryDirectory(prefix="migfuzz-case-") as tmp:
            workdir = Path(tmp)
            control, result = asyncio.run(
                save_and_restore(
                    src, [src, dst], case, workdir, trace_load=self._traces, resave=True
                )
            )
            judgement = judge_with_state(control, result, workdir, self.oracles)
            stream = None
            if isinstance(judgement, Divergence) and (workdir / "src.stream").exists():
                stream = (workdir / "src.stream").read_bytes()
        return judgement, control, result, stream

    def _traces(self, binary: QemuBinary) -> bool:
        return self.caps[binary.name].trace_works

    def signature_of(self, pair: Pair, case: Case) -> Signature | None:
        """The divergence signature of a case, or None if it shows none."""
        judgement = self.run_case(pair, case)[0]
        return judgement.signature if isinstance(judgement, Divergence) else None

    # -- the loop ----------------------------------------------------------------------

    def _out_of_budget(self) -> bool:
        elapsed = time.monotonic() - self._started
        if self.max_cases is not None and self.summary.cases >= self.max_cases:
            return not self._shrinking
        if self.budget is None:
            return False
        limit = self.budget + (_SHRINK_GRACE if self._shrinking else 0.0)
        return elapsed >= limit

    def _progress(self) -> None:
        now = time.monotonic()
        if now - self._last_progress >= 5.0:
            self._last_progress = now
            self.emit(Progress(self.summary.cases, now - self._started, len(self.summary.findings)))

    def _body(self, drawn: tuple[Pair, Case]) -> None:
        if self._out_of_budget():
            raise BudgetExhausted
        pair, case = drawn
        started = time.monotonic()
        judgement, control, result, _stream = self.run_case(pair, case)
        if not self._shrinking:
            self.summary.cases += 1
            self.emit(CaseFinished(case.key(), (control, result), time.monotonic() - started))
            self._progress()
        if isinstance(judgement, InvalidCase):
            if not self._shrinking:
                self.summary.invalid += 1
            reject()
        if isinstance(judgement, ControlFailed):
            if not self._shrinking:
                self.summary.control_failures += 1
                self.emit(ControlFailure(pair, judgement.reason))
            reject()
        if not isinstance(judgement, Divergence):
            return
        sig = judgement.signature
        stats = self.summary.findings.get(sig)
        if not self._shrinking:
            is_new = stats is None
            if stats is None:
                stats = self.summary.findings[sig] = FindingStats(sig, new=True)
            stats.count += 1
            stats.pairs.add(pair)
            self.emit(FindingSeen(sig, pair, is_new and stats.path is None))
        if stats is not None and stats.path is not None:
            return  # already has a reproducer: counted, not shrunk again
        self._minimal[sig] = (pair, case)
        self._shrinking = True
        raise _finding_type(sig)(str(sig))

    def _hypothesis_run(self, run_index: int) -> None:
        if not self._strategies:  # built once: a config plan is worked out from two probes
            self._strategies = {
                p: st.tuples(st.just(p), self.case_strategy(self.caps[p[0]], self.caps[p[1]]))
                for p in self.pairs
            }
        strategy = st.sampled_from(self.pairs).flatmap(self._strategies.__getitem__)

        @settings(
            max_examples=_CASES_PER_RUN,
            database=None,
            deadline=None,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=True,
            print_blob=False,
        )
        @seed(self.seed * 1_000_003 + run_index)
        @given(strategy)
        def property_(drawn: tuple[Pair, Case]) -> None:
            self._body(drawn)

        self._shrinking = False
        self._minimal = {}
        try:
            property_()
        except (Finding, ExceptionGroup, Flaky):
            pass  # the minimal examples are in self._minimal
        finally:
            self._shrinking = True
            self._record_minimal()
            self._shrinking = False

    def _record_minimal(self) -> None:
        for sig, (pair, case) in list(self._minimal.items()):
            stats = self.summary.findings.setdefault(sig, FindingStats(sig, new=True))
            if stats.path is not None:
                continue
            if stats.count == 0:  # first met while shrinking another signature
                stats.count = 1
                stats.pairs.add(pair)

            def still_fails(candidate: Case, pair: Pair = pair, sig: Signature = sig) -> bool:
                return self.signature_of(pair, candidate) == sig

            minimal, tests = make_one_minimal(case, still_fails, build_guest=self.build_guest)
            src, dst = self.binaries[pair[0]], self.binaries[pair[1]]
            with tempfile.TemporaryDirectory(prefix="migfuzz-record-") as tmp:
                report = diagnose(
                    src, dst, minimal, Path(tmp), oracles=self.oracles, trace_load=self._traces
                )
                stream_path = Path(tmp) / "src.stream"
                stream = stream_path.read_bytes() if stream_path.exists() else None
            judgement, control, result = report.judgement, report.control, report.pair
            if not isinstance(judgement, Divergence) or judgement.signature != sig:
                continue  # not reproducible any more: flaky, do not record
            entry = Entry(
                signature=sig,
                src=VersionRef(src.name, src.content_hash(), self.caps[src.name].version_line),
                dst=VersionRef(dst.name, dst.content_hash(), self.caps[dst.name].version_line),
                case=minimal, control=control, pair=result,
                findings={**judgement.details, **report.to_json()}, stream=stream,
            )  # fmt: skip
            path, _written = write_entry(self.corpus_dir, entry, src, dst)
            stats.path = path
            self.emit(ReproducerWritten(sig, path, tests))
        self._minimal = {}

    def run(self) -> Summary:
        """Fuzz until the budget or case count is spent (or Ctrl-C); return the summary.

        :raise HarnessError: the harness failed in a way that makes going on pointless.
        """
        self._started = time.monotonic()
        run_index = 0
        try:
            while not self._out_of_budget():
                try:
                    self._hypothesis_run(run_index)
                except BudgetExhausted:
                    break
                run_index += 1
        except KeyboardInterrupt:
            self.summary.interrupted = True
        except HarnessError:
            raise
        finally:
            self.summary.seconds = time.monotonic() - self._started
        return self.summary
