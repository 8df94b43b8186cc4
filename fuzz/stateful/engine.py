"""Stateful fuzzing: random step sequences on live QEMU processes (``fuzz --stateful``).

The differential loop (:mod:`fuzz.campaign.loop`) judges one save and one load on fresh processes.
Bugs that need a *history* -- a process that ran, saved or loaded something before the
load under test -- never show there. Here a Hypothesis
:class:`~hypothesis.stateful.RuleBasedStateMachine` drives a few live processes
(:class:`~fuzz.stateful.procs.LiveProcess`) of the versions in the pairs through random
steps: start (with a drawn guest, or none), run to the checkpoint, save a snapshot, load
one (saved by the same process, by another one, by another version), read back, reset;
and, drawn most often, two composite actions that build in a few actions what single steps
seldom reach: save a pool guest's checkpoint in a process of its own, and load a snapshot
into a process with no guest image (mostly one that loaded another guest's before).

The invariant, checked at every load: the load's outcome and the read-back after it must
be what the same load gives on a *fresh* process of that version (the one-shot case:
``-S``, no guest image of its own, only that load; :func:`~fuzz.stateful.procs.one_shot_load`).
A difference is a finding with a :class:`~fuzz.judge.oracles.Signature` of kind ``history``.
Hypothesis shrinks the failing sequence; the shortest failing sequence seen is written as
a corpus entry of the ``stateful`` kind (:mod:`fuzz.stateful.repro`).

The machine draws the steps and records them; one
:class:`~fuzz.stateful.steps.StepInterpreter` (shared with the replay,
:mod:`fuzz.stateful.replay`) applies them to the processes and judges every load. A
process whose QEMU exited under a load is retired; one whose load QEMU refused stays up,
and its next load is judged as one *after a failed load* (graded by
:func:`~fuzz.judge.promise.grade_history`).
Every process of a run is closed in the run's teardown; :func:`run_stateful` closes any
left (Ctrl-C, SIGTERM) before it returns or raises.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    rule,
    run_state_machine_as_test,
)

from fuzz.campaign.loop import BudgetExhausted, Carried, finding_type, keep_going
from fuzz.core import command as qemu_command
from fuzz.core.binary import QemuBinary, version_sort_key
from fuzz.core.capabilities import Capabilities
from fuzz.core.case import GuestProgram, MachineConfig
from fuzz.corpus.store import CorpusStore
from fuzz.errors import HarnessError, UsageError
from fuzz.judge.oracles import Signature
from fuzz.judge.promise import grade_history
from fuzz.judge.sanitizer import find_report
from fuzz.run.machine import QemuMachine
from fuzz.run.persistent import make_empty_qcow2
from fuzz.run.session import Session
from fuzz.stateful.model import Action, StatefulSequence, Step
from fuzz.stateful.repro import write_entry
from fuzz.stateful.steps import REPORT_BYTES, Found, Live, Process, Snapshot, StepInterpreter
from strategies.cases import rebuild_guest
from strategies.configs import configurations
from strategies.guests import guest_operations
from strategies.image import build_guest

T = TypeVar("T")
Pair = tuple[str, str]

#: Actions in one state-machine run (Hypothesis's ``stateful_step_count``); an action
#: is one to four logged steps.
STEPS_PER_RUN = 10
#: How often each action is drawn, relative to the others, when it can act. The two
#: composite ones build in two or three actions the history where a process with no guest
#: image loads one guest's state after another's: what a loader-backed process cannot
#: show (its load's reset rewrites its own image) and single steps seldom reach.
ACTION_WEIGHTS = (
    ("load_guestless", 4), ("save_guest", 3),
    ("start", 1), ("run", 1), ("save", 1), ("load", 1), ("read_back", 1), ("reset", 1),
)  # fmt: skip
#: Live processes a run may have at once.
MAX_PROCESSES = 4
#: Guest operations per started guest (small: the history matters here, not the guest).
MAX_GUEST_OPS = 3
#: Seconds a shrink may go on past the budget.
SHRINK_GRACE = 120.0
#: Seconds a shrink goes on without making the failing sequence shorter.
SHRINK_STALL = 30.0
#: Two guests whose code differs at the same addresses: they fill a run's pool when its
#: drawn guests are empty or alike (a history needs two guests that differ).
FALLBACK_GUESTS = (
    ({"op": "memory", "offset": "0x10", "count": 2, "value": "0x1111", "step": "0x1"},),
    ({"op": "memory", "offset": "0x2000", "count": 3, "value": "0x2222", "step": "0x1"},),
)
# A known QEMU crash the machine steps around so that it does not hide everything else:
# two loads into one process with no run in between, then ``cont``, end QEMU with
# SIGSEGV in 5.2, 7.2, 10.0 and 11.1 alike (found by this engine; docs/qemu-bugs.md).
# On sanitizer builds it is drawn on purpose (:func:`read_backs`): there it is a finding
# with the report's stack, not a lost process.
#: On a sanitizer build, one load in this many keeps the VM paused (no read-back, so no
#: ``cont``): the next load into that process is then a second load before ``cont``.
HELD_LOAD_ODDS = 4


def read_backs(sanitized: bool) -> st.SearchStrategy[bool]:
    """Whether a load of a checkpoint's snapshot reads back at once (``cont``).

    Always on plain builds. On sanitizer builds (``sanitized``), one load in
    :data:`HELD_LOAD_ODDS` does not: the process stays paused with the state loaded, so
    that a second load can follow before any ``cont`` -- the history of the pflash
    use-after-free that ASan reports at that ``cont``. Every snapshot is saved at a
    guest's checkpoint, so without this draw every load was followed by its ``cont`` and
    that history was never reached. Shrinks towards reading back.
    """
    if not sanitized:
        return st.just(True)
    return st.sampled_from((True,) * (HELD_LOAD_ODDS - 1) + (False,))


class _Again(BaseException):
    """Ends a Hypothesis run on a finding already shrunk in an earlier one (counted only)."""


class _HarnessFailed(Carried):
    """Carries a :class:`HarnessError` out of Hypothesis without it being shrunk."""


@dataclass
class StatefulFinding:
    """The shortest failing sequence seen for one signature, and where it was written."""

    sequence: StatefulSequence
    guests: dict[int, GuestProgram]
    snapshots: dict[int, Path]
    count: int = 1
    path: Path | None = None
    #: The whole sanitizer report of a crash (the entry's ``sanitizer.txt``), or "".
    report: str = ""


@dataclass
class StatefulSummary:
    """What a stateful campaign did: runs, steps, loads compared, findings."""

    runs: int = 0
    steps: int = 0
    loads: int = 0
    findings: dict[Signature, StatefulFinding] = field(default_factory=dict)


class StatefulEngine:
    """Runs state machines over live processes until the budget is spent.

    :param session: owns the event loop and the SIGTERM bridge.
    :param binaries: version name -> binary, for every version in ``pairs``.
    :param caps: version name -> capabilities (for drawing configurations).
    :param pairs: ordered version pairs; a run draws one, starts processes of both
        versions, and draws a configuration both accept.
    :param corpus: where entries are written.
    :param workdir: a private folder for the runs' processes and snapshots.
    :param shrink_grace: seconds a shrink may go on past the budget (or past its start).
    :param shrink_stall: seconds a shrink may go on without a shorter failing sequence.
    """

    def __init__(
        self, session: Session, binaries: Mapping[str, QemuBinary],
        caps: Mapping[str, Capabilities], pairs: Sequence[Pair], *, corpus: Path, workdir: Path,
        max_cases: int | None = None, deadline: float | None = None, seed_value: int = 0,
        steps_per_run: int = STEPS_PER_RUN, shrink_grace: float = SHRINK_GRACE,
        shrink_stall: float = SHRINK_STALL,
        emit: Callable[[str], None] = lambda _m: None,
    ) -> None:  # fmt: skip
        if max_cases is None and deadline is None:
            raise UsageError("give a budget (--budget) or a number of cases (--max-cases)")
        self.session = session
        self.binaries = binaries
        self.caps = caps
        self.pairs = list(pairs)
        self.corpus = corpus
        self.workdir = workdir
        self.max_cases = max_cases
        self.deadline = deadline
        self.seed = seed_value
        self.steps_per_run = steps_per_run
        self.shrink_grace = shrink_grace
        self.shrink_stall = shrink_stall
        self.emit = emit
        self.summary = StatefulSummary()
        self.shrinking = False
        self.shrink_started = 0.0
        #: When the shrink last made a failing sequence shorter (or started).
        self.shrink_progress = 0.0
        self.processes: set[Live] = set()
        self._template: Path | None = None
        self._run_number = 0
        #: Signatures whose failing run Hypothesis has shrunk already.
        self.shrunk: set[Signature] = set()

    # -- the event loop and the budget -------------------------------------------------

    def run_async(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run a coroutine on the session's loop; a harness error leaves Hypothesis whole."""
        try:
            return self.session.run(make)
        except HarnessError as err:
            raise _HarnessFailed(err) from err

    def out_of_budget(self) -> bool:
        """Whether no new run (or, while shrinking, no new step) may start."""
        now = time.time()
        if self.shrinking:
            limit = self.shrink_started + self.shrink_grace
            if self.deadline is not None:
                limit = max(limit, self.deadline + self.shrink_grace)
            limit = min(limit, self.shrink_progress + self.shrink_stall)
            return now >= limit
        if self.max_cases is not None and self.summary.runs >= self.max_cases:
            return True
        return self.deadline is not None and now >= self.deadline

    def template(self) -> Path:
        """The empty qcow2 every snapshot starts from (made once, by the oldest version)."""
        if self._template is None:
            oldest = min(self.binaries, key=version_sort_key)
            path = self.workdir / "empty.qcow2"

            async def make() -> None:
                async with QemuMachine(
                    self.binaries[oldest], qemu_command.bare("virt"), self.workdir
                ) as vm:
                    await make_empty_qcow2(vm, path)

            self.run_async(make)
            self._template = path
        return self._template

    def new_run(self) -> Path:
        """A fresh folder for one state-machine run."""
        self._run_number += 1
        folder = self.workdir / f"run-{self._run_number}"
        folder.mkdir()
        return folder

    # -- findings ------------------------------------------------------------------------

    def record(self, finding: StatefulFinding, stage: Path) -> bool:
        """Keep ``finding`` if it is the first or the shortest of its signature; whether
        it is new to this command (the caller then shrinks it)."""
        sig = finding.sequence.signature
        old = self.summary.findings.get(sig)
        if old is not None:
            old.count += 1
            if len(finding.sequence.steps) > len(old.sequence.steps):
                return False
            finding.count = old.count
        keep = stage / sig.short_hash()
        shutil.rmtree(keep, ignore_errors=True)
        keep.mkdir(parents=True)
        for number, path in list(finding.snapshots.items()):
            copy = keep / f"s{number}.qcow2"
            shutil.copyfile(path, copy)
            finding.snapshots[number] = copy
        self.summary.findings[sig] = finding
        return old is None

    def write_findings(self) -> None:
        """Write each finding's shortest sequence as a corpus entry, through the store.

        :raise StorageError: the corpus folder cannot be written.
        """
        store = CorpusStore(self.corpus)
        for sig, finding in self.summary.findings.items():
            if finding.path is None:
                finding.path = write_entry(
                    store, finding.sequence, finding.guests, self.template(), finding.snapshots,
                    report=finding.report,
                )  # fmt: skip
                if finding.path is None:
                    self.emit(f"entry of {sig} not written: another process is writing it")

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> StatefulSummary:
        """Run state machines until the budget or case count is spent.

        :raise KeyboardInterrupt: Ctrl-C or SIGTERM (every process is closed first).
        :raise HarnessError: QEMU or the harness failed in a way no step explains.
        """
        machine = _machine_class(self)
        stage = self.workdir / "findings"
        stage.mkdir(exist_ok=True)
        machine.stage = stage
        hypothesis_run = 0
        try:
            while not self.out_of_budget():
                remaining = 10**6
                if self.max_cases is not None:
                    remaining = self.max_cases - self.summary.runs
                runs_before = self.summary.runs
                factory = seed(self.seed * 1_000_003 + hypothesis_run)(machine)
                self.shrinking = False
                options = settings(
                    max_examples=remaining, stateful_step_count=self.steps_per_run,
                    deadline=None, database=None, print_blob=False,
                    phases=[Phase.generate, Phase.shrink],
                    suppress_health_check=list(HealthCheck), report_multiple_bugs=True,
                )  # fmt: skip
                try:
                    test = partial(run_state_machine_as_test, factory, settings=options)
                    found = keep_going(test)
                    if not found and not self.shrinking and self.summary.runs == runs_before:
                        break  # Hypothesis ran all it would: nothing more to draw
                except BudgetExhausted:
                    if not self.shrinking:
                        break
                except _Again:
                    pass
                self.shrunk |= set(self.summary.findings)
                self.shrinking = False
                hypothesis_run += 1
        except _HarnessFailed as failed:
            raise failed.error from None
        finally:
            self.close_all()
            self.write_findings()
        return self.summary

    def close_all(self) -> None:
        """Close every process still up (after an interrupt, a teardown may not have run)."""
        left, self.processes = list(self.processes), set()
        if left:

            async def close() -> None:
                for process in left:
                    await process.close()

            try:
                self.session.run(close)
            except KeyboardInterrupt:
                self.session.run(close)


_FRESH = (Action.START, Action.RESET)


class _MachineSteps(StepInterpreter):
    """The machine's interpreter: a step is recorded (and the budget checked) as it is
    taken; a QEMU that exits under a step or refuses a save is said on the engine's
    ``emit`` and retired, and the run goes on."""

    def __init__(
        self, engine: StatefulEngine, folder: Path, guests: Mapping[int, GuestProgram],
        record: Callable[[Step], None],
    ) -> None:  # fmt: skip
        super().__init__(
            engine.session.run, engine.binaries, MachineConfig("virt", "cortex-a57"), folder,
            guests=guests, template=engine.template, processes=engine.processes,
        )  # fmt: skip
        self.engine = engine
        self.record = record

    def taken(self, step: Step) -> None:
        """Record ``step`` (:class:`BudgetExhausted` when the budget is spent); count a load."""
        self.record(step)
        if step.action is Action.LOAD and not self.engine.shrinking:
            self.engine.summary.loads += 1

    def exited(self, proc: Process, step: Step, error: HarnessError) -> None:
        """Say it (an exit outside a load has no one-shot to compare with): a sanitizer
        report's kind and frames, else the end of QEMU's stderr (a report's end is only
        its legend of shadow bytes)."""
        report = find_report(proc.live.stderr_tail(REPORT_BYTES))
        tail = report.signature_detail() if report else proc.live.stderr_tail(400).strip()
        self.engine.emit(f"p{proc.number} ({proc.version}) exited: {tail or error}")

    def save_failed(self, proc: Process, step: Step, error: str) -> None:
        """Say it."""
        self.engine.emit(f"save on {proc.version} failed: {error}")


def _saveable(proc: Process) -> bool:
    """Whether a save of ``proc`` is worth a step: its guest waits at its checkpoint (it
    ran there, or loaded such a state) and it changed since its last save. Only such
    states are saved: every load is then followed by a read-back to compare."""
    return proc.phase == "checkpoint" and proc.last is not Action.SAVE


def _plain(src: Capabilities, dst: Capabilities) -> MachineConfig:
    """The plainest configuration both start: the newest common ``virt-X.Y``, cortex-a57.

    Drawn for half the runs: option-laden configurations (EL3, EL2, several CPUs) make
    every step slower and hide nothing the plain one would show.
    """
    common = set(src.virt_machine_types()) & set(dst.virt_machine_types())
    newest = max(common, key=lambda m: version_sort_key(m.removeprefix("virt-")), default="virt")
    return MachineConfig(newest, "cortex-a57")


def _runs_aarch64(config: MachineConfig) -> bool:
    return ("aarch64", "off") not in config.cpu_properties


def _or(plain: MachineConfig) -> Callable[[MachineConfig], MachineConfig]:
    """A drawn configuration, or ``plain`` where an AArch64 guest cannot run."""
    return lambda config: config if _runs_aarch64(config) else plain


def _machine_class(engine: StatefulEngine) -> Any:
    """The state machine class of ``engine`` (strategies depend on its pairs' probes)."""
    per_pair = {}
    for pair in engine.pairs:
        plain = _plain(engine.caps[pair[0]], engine.caps[pair[1]])
        # A mapped (not filtered) strategy: a filter that rejects makes the whole run invalid.
        drawn = configurations(engine.caps[pair[0]], engine.caps[pair[1]]).map(_or(plain))
        per_pair[pair] = st.one_of(st.just(plain), drawn)
    drawn_configs = st.sampled_from(engine.pairs).flatmap(
        lambda pair: st.tuples(st.just(pair), per_pair[pair])
    )
    # Two or three guests per run, started by any process: a history needs code that
    # differs between the states it loads. Drawn lists that are empty or repeat one
    # another are replaced by FALLBACK_GUESTS in ``configure`` (never rejected).
    guest_pool = st.lists(guest_operations(max_ops=MAX_GUEST_OPS), min_size=2, max_size=3)
    actions = [name for name, weight in ACTION_WEIGHTS for _ in range(weight)]
    sanitized = all(b.sanitizers for b in engine.binaries.values())

    read_back = read_backs(sanitized)

    def loadable(proc: Process) -> bool:
        """Whether a load into ``proc`` may be drawn: not right after a load without a
        read-back (a second load then crashes every version on the next ``cont``, found
        long ago), unless every version is a sanitizer build, where that crash is a finding
        with a stack (:mod:`fuzz.judge.sanitizer`) rather than a lost process; only there
        are loads without a read-back drawn (:func:`read_backs`)."""
        return sanitized or not proc.just_loaded

    class HistoryMachine(RuleBasedStateMachine):
        """Live processes of one configuration, stepped at random; loads checked.

        One rule, :meth:`step`, draws the action itself among those that can act now.
        With one ``@rule`` per action, Hypothesis's swarm testing switches rules off per
        run, and a run whose enabled rules all have false preconditions is dropped as
        invalid: measured, 12 of 16 generated runs ended that way with 0 steps.
        """

        stage: Path

        def __init__(self) -> None:
            super().__init__()
            if engine.out_of_budget():
                raise BudgetExhausted
            self.folder = engine.new_run()
            self.steps: list[Step] = []
            self.guest_ops: list[tuple[dict[str, Any], ...]] = []
            self.guests: dict[int, GuestProgram] = {}
            self.pair: Pair = engine.pairs[0]
            self.config = MachineConfig("virt", "cortex-a57")
            self.next_process = 0
            self.pool: list[GuestProgram] = []
            self.saved: set[int] = set()
            self.interp = _MachineSteps(engine, self.folder, self.guests, self._step)

        @property
        def procs(self) -> list[Process]:
            """The live processes, in order of their start."""
            return list(self.interp.procs.values())

        @property
        def snaps(self) -> list[Snapshot]:
            """The snapshots saved in this run, in order."""
            return list(self.interp.snaps.values())

        # -- bookkeeping ---------------------------------------------------------------

        def _step(self, step: Step) -> None:
            if engine.out_of_budget():
                raise BudgetExhausted
            self.steps.append(step)
            if not engine.shrinking:
                engine.summary.steps += 1

        def _pick(self, data: st.DataObject, procs: list[Process]) -> Process:
            return data.draw(st.sampled_from(procs), label="process")

        def _version(self, data: st.DataObject) -> str:
            return data.draw(st.sampled_from(sorted(set(self.pair))), label="version")

        def _apply(self, step: Step) -> None:
            """Take ``step`` (the interpreter records it); a divergence is a finding."""
            try:
                found = self.interp.apply(step)
            except HarnessError as err:
                raise _HarnessFailed(err) from err
            if found is not None:
                self._fail(found)

        def _retire(self, proc: Process) -> None:
            try:
                self.interp.retire(proc)
            except HarnessError as err:
                raise _HarnessFailed(err) from err

        def _fail(self, found: Found) -> None:
            sig, expected, actual = found
            names = [engine.binaries[v] for v in sorted(set(self.pair))]
            sequence = StatefulSequence(
                signature=sig, config=self.config, guests=tuple(self.guest_ops),
                steps=tuple(self.steps), failing_step=len(self.steps) - 1,
                expected=expected, actual=actual,
                versions={b.name: {"sha256": b.content_hash(),
                                   "version_line": engine.caps[b.name].version_line}
                          for b in names},
            )  # fmt: skip
            used = {s.snapshot for s in self.steps if s.action is Action.LOAD}
            snapshots = {s.number: s.path for s in self.snaps if s.number in used}
            report = self.interp.report
            finding = StatefulFinding(
                sequence, dict(self.guests), snapshots, report="" if report is None else report.text
            )
            old = engine.summary.findings.get(sig)
            new = engine.record(finding, self.stage)
            if sig in engine.shrunk and not engine.shrinking:
                raise _Again  # shrunk in an earlier Hypothesis run: counted, not shrunk again
            if new:
                engine.emit(f"finding: {sig} ({len(self.steps)} steps); shrinking")
            elif old is not None and len(self.steps) < len(old.sequence.steps):
                engine.shrink_progress = time.time()
                engine.emit(f"  shrunk to {len(self.steps)} steps")
            if not engine.shrinking:
                engine.shrinking = True
                engine.shrink_started = engine.shrink_progress = time.time()
            raise finding_type(sig, "History")(f"{sig}: {' / '.join(sequence.describe())}")

        # -- what can act now ----------------------------------------------------------

        def _free(self) -> bool:
            return len(self.procs) < MAX_PROCESSES

        def _guestless(self) -> list[Process]:
            return [p for p in self.procs if p.guest is None and loadable(p)]

        def _runnable(self) -> list[Process]:
            return [p for p in self.procs if p.phase == "reset" and p.code is not None]

        def _ready(self, action: str) -> bool:
            match action:
                case "save_guest":
                    return True
                case "load_guestless":
                    return bool(self.snaps) and (self._free() or bool(self._guestless()))
                case "start":
                    return self._free()
                case "run":
                    return bool(self._runnable())
                case "save":
                    return any(_saveable(p) for p in self.procs)
                case "load":
                    return bool(self.snaps) and any(loadable(p) for p in self.procs)
                case "read_back":
                    return any(p.phase == "checkpoint" for p in self.procs)
                case "reset":
                    return any(p.last not in _FRESH for p in self.procs)
            raise AssertionError(action)

        # -- steps on one process (each logs one Step) -----------------------------------

        def _start(self, version: str, pick: int | None) -> Process:
            guest_index = None
            guest = None if pick is None else self.pool[pick]
            if guest is not None:
                if guest.operations not in self.guest_ops:
                    self.guest_ops.append(guest.operations)
                guest_index = self.guest_ops.index(guest.operations)
                self.guests[guest_index] = guest
            number = self.next_process
            self.next_process += 1
            self._apply(Step(Action.START, number, version=version, guest=guest_index))
            return self.interp.procs[number]

        def _run(self, proc: Process) -> None:
            self._apply(Step(Action.RUN, proc.number))

        def _save(self, proc: Process) -> Snapshot | None:
            number = len(self.interp.snaps)
            self._apply(Step(Action.SAVE, proc.number, snapshot=number))
            return self.interp.snaps.get(number)

        def _load(self, data: st.DataObject, proc: Process, snap: Snapshot) -> None:
            back = snap.phase == "checkpoint" and data.draw(read_back, label="read back")
            self._apply(Step(Action.LOAD, proc.number, snapshot=snap.number, read_back=back))

        # -- the rules -------------------------------------------------------------------

        @initialize(drawn=drawn_configs, pool=guest_pool)
        def configure(self, drawn: tuple[Pair, MachineConfig], pool: list[list[Any]]) -> None:
            """The run's pair, configuration and guests (one each per run)."""
            self.pair, self.config = drawn
            self.interp.config = self.config
            guests = [build_guest(ops, smp=self.config.smp) for ops in pool if ops]
            for ops in FALLBACK_GUESTS:
                guests.append(rebuild_guest(ops, self.config.smp))
            for guest in guests:
                if len(self.pool) < len(pool) and guest.image not in {g.image for g in self.pool}:
                    self.pool.append(guest)

        @rule(data=st.data())
        def step(self, data: st.DataObject) -> None:
            """One action, drawn (weighted by :data:`ACTION_WEIGHTS`) among those that
            can act now; ``save_guest`` always can."""
            action = data.draw(st.sampled_from(actions).filter(self._ready), label="action")
            if not self.steps and not engine.shrinking:
                # A run counts from its first action: Hypothesis ends some runs right
                # after ``configure`` (measured: 8 of 30 on 10.0), which test nothing.
                engine.summary.runs += 1
            getattr(self, f"do_{action}")(data)

        def do_save_guest(self, data: st.DataObject) -> None:
            """Start a process with a guest of the pool (one not saved yet, mostly), run it
            to its checkpoint, save it, close it: four steps in one."""
            version = self._version(data)
            unsaved = [i for i in range(len(self.pool)) if i not in self.saved]
            pick = data.draw(st.sampled_from(unsaved + list(range(len(self.pool)))), label="guest")
            proc = self._start(version, pick)
            self._run(proc)
            if proc in self.procs and proc.phase == "checkpoint" and self._save(proc):
                self.saved.add(pick)
            if proc in self.procs:
                self._retire(proc)

        def do_load_guestless(self, data: st.DataObject) -> None:
            """Load a snapshot into a process with no guest of its own (one that loaded
            before, mostly, else a new one) and read back (:func:`read_backs`): the
            history a guest-less process builds is one snapshot after another, so mostly
            one of another guest."""
            reuse = self._guestless()
            options: list[Process | None] = [*reuse, *reuse, *([None] if self._free() else [])]
            proc = data.draw(st.sampled_from(options), label="process")
            if proc is None:
                proc = self._start(self._version(data), None)
            other = [s for s in self.snaps if s.code != proc.code]
            snap = data.draw(st.sampled_from(other + other + self.snaps), label="snapshot")
            self._load(data, proc, snap)

        def do_start(self, data: st.DataObject) -> None:
            """Start a process of one of the pair's versions, with a guest or none."""
            version = self._version(data)
            choices: list[int | None] = [None, *range(len(self.pool))]
            self._start(version, data.draw(st.sampled_from(choices), label="guest"))

        def do_run(self, data: st.DataObject) -> None:
            """Run a process's guest to its checkpoint."""
            self._run(self._pick(data, self._runnable()))

        def do_save(self, data: st.DataObject) -> None:
            """Save a process whose guest waits at its checkpoint as a new snapshot."""
            self._save(self._pick(data, [p for p in self.procs if _saveable(p)]))

        def do_load(self, data: st.DataObject) -> None:
            """Load any snapshot into any process; compare with the one-shot load (and,
            for a snapshot taken at a guest's checkpoint, the read-back right after it,
            unless :func:`read_backs` keeps the VM paused)."""
            proc = self._pick(data, [p for p in self.procs if loadable(p)])
            self._load(data, proc, data.draw(st.sampled_from(self.snaps), label="snapshot"))

        def do_read_back(self, data: st.DataObject) -> None:
            """Resume a guest waiting at its checkpoint and collect its read-back."""
            proc = self._pick(data, [p for p in self.procs if p.phase == "checkpoint"])
            self._apply(Step(Action.READ_BACK, proc.number))

        def do_reset(self, data: st.DataObject) -> None:
            """``system_reset`` a process: its own guest (if any) starts again."""
            proc = self._pick(data, [p for p in self.procs if p.last not in _FRESH])
            self._apply(Step(Action.RESET, proc.number))

        def teardown(self) -> None:
            """Close every process of the run and drop its snapshots."""
            try:
                self.interp.close()
            finally:
                shutil.rmtree(self.folder, ignore_errors=True)

    return HistoryMachine


def run_stateful(
    session: Session, binaries: Mapping[str, QemuBinary], caps: Mapping[str, Capabilities],
    pairs: Sequence[Pair], *, corpus: Path, workdir: Path, **options: Any,
) -> StatefulSummary:  # fmt: skip
    """Run :class:`StatefulEngine` (its keyword options) and write the entries it found.

    :raise KeyboardInterrupt: Ctrl-C or SIGTERM; every process is closed and what was
        found so far is written first.
    :raise HarnessError: the harness failed.
    """
    return StatefulEngine(
        session, binaries, caps, pairs, corpus=corpus, workdir=workdir, **options
    ).run()


def describe_summary(summary: StatefulSummary) -> list[str]:
    """Human lines for the CLI: counts, then each finding with its steps and entry."""
    lines = [
        f"stateful runs: {summary.runs}, steps: {summary.steps}, loads compared: {summary.loads}",
        f"distinct divergences: {len(summary.findings)}",
    ]
    for sig, finding in sorted(summary.findings.items()):
        lines.append(f"  {finding.count:4d}x {sig} [{grade_history(sig).promise}]")
        lines += [f"         {line}" for line in finding.sequence.describe()]
        lines.append(f"         entry: {finding.path or '(not written)'}")
    return lines
