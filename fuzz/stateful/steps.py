"""The one interpreter of a stateful sequence's steps, on live processes.

A :class:`StepInterpreter` holds what is known of each live process (its phase, the guest
whose code it runs, the one-shot read-back a read-back step next is compared with) and
applies one :class:`~fuzz.stateful.model.Step` at a time -- start, run, save, load, read
back, reset -- returning the finding of a load (or of the read-back after it) that acted
otherwise than the same load on a fresh process (:func:`~fuzz.judge.loads.compare_loads`).

Both the state machine (:mod:`fuzz.stateful.engine`, which draws the steps and records
them) and the replay (:mod:`fuzz.stateful.replay`, which reads them from an entry) drive
it. What differs between the two goes through hooks, as QEMU's ``machine.py`` launches
through ``_pre_launch``/``_post_launch``:

* :meth:`~StepInterpreter.taken` -- a step is taken (before it acts; a save once it has
  saved): the machine checks its budget, records and counts it;
* :meth:`~StepInterpreter.check` -- the process a step acts on: the machine draws steps
  among its live processes, the replay says *unusable* when the process is gone;
* :meth:`~StepInterpreter.exited` -- QEMU exited under a step: by default the process is
  retired and the run goes on (an exit outside a load has no one-shot to compare with; an
  exit in a load is that load's ``crashed`` outcome);
* :meth:`~StepInterpreter.save_failed` -- a save QEMU refused: by default the process is
  retired and the save is no step; the replay says *unusable*;
* :meth:`~StepInterpreter.new_process`, :meth:`~StepInterpreter.fresh_load` -- where live
  processes and one-shot loads come from (tests put fakes there).

A process whose load QEMU refused stays up, as a management layer whose revert failed
keeps its process and reverts to another snapshot: the refusal itself is compared with
the one-shot load, and so is the next load into that process (marked *after a failed
load*: it must load as a fresh process does, or be refused as cleanly). A process whose
QEMU exited is retired. One-shot loads are cached per (snapshot, version, read-back) for
the interpreter's life (one run, or one replay).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from fuzz.core.binary import QemuBinary
from fuzz.core.case import GuestProgram, MachineConfig
from fuzz.core.outcome import LoadOutcome
from fuzz.errors import HarnessError
from fuzz.judge.loads import SANITIZER_REPORT, compare_loads
from fuzz.judge.oracles import Signature
from fuzz.judge.sanitizer import SanitizerReport, find_report
from fuzz.stateful.model import Action, Step
from fuzz.stateful.procs import LiveProcess, one_shot_load

T = TypeVar("T")
#: What a divergent load or read-back gives: signature, one-shot text, history text.
Found = tuple[Signature, str, str]
#: The outcome of a load into a process that exited during it.
CRASHED = LoadOutcome("crashed", "QEMU exited during the load or read-back")
#: How much of a dead process's stderr is searched for a sanitizer report.
REPORT_BYTES = 256 * 1024


def crashed(stderr: str) -> LoadOutcome:
    """The outcome of a load into a process that exited during it: :data:`CRASHED`, or on a
    sanitizer build the report's kind and first QEMU frames (``asan heap-use-after-free in
    vm_state_notify < ...``), which the signature then names."""
    report = find_report(stderr)
    if report is None:
        return CRASHED
    return LoadOutcome("crashed", SANITIZER_REPORT + report.signature_detail())


class Runner(Protocol):
    """Runs one coroutine to its end (:meth:`fuzz.run.session.Session.run`)."""

    def __call__(self, make: Callable[[], Coroutine[Any, Any, T]], /) -> T:
        """Run ``make()``; what it returns."""
        ...


class Live(Protocol):
    """What the interpreter asks of a live process (:class:`~fuzz.stateful.procs.LiveProcess`)."""

    @property
    def alive(self) -> bool:
        """Whether QEMU is still running."""
        ...

    async def start(self) -> None:
        """Launch it, paused."""

    async def close(self) -> None:
        """End it; safe twice."""

    async def run_to_checkpoint(self) -> bool:
        """Run the guest to its checkpoint; whether it got there."""
        ...

    async def save(self, snapshot: int, path: Path, template: Path) -> str | None:
        """Save a snapshot; QEMU's error or None."""

    async def load(self, snapshot: int, path: Path, *, read_back: bool) -> LoadOutcome:
        """Load a snapshot (and read back)."""
        ...

    async def read_back(self) -> str:
        """Resume the guest; what it printed."""
        ...

    async def reset(self) -> bool:
        """``system_reset``."""
        ...

    async def wait_exit(self, timeout: float) -> int | None:
        """Its exit status once it exits within ``timeout``, else None."""

    def stderr_tail(self, limit: int) -> str:
        """The end of what QEMU printed."""
        ...


@dataclass
class Process:
    """A live process and what is known of it."""

    number: int
    version: str
    #: Its own guest (an index in the sequence's guests), or None.
    guest: int | None
    live: Live
    #: ``reset`` (paused where its guest starts), ``checkpoint`` (waiting for the resume
    #: byte), ``done`` (read back), ``unknown`` (a guest that did not reach its checkpoint).
    phase: str = "reset"
    #: The guest whose code the CPU starts in, in phase ``reset`` (None: nothing to run).
    code: int | None = None
    #: The one-shot outcome (with read-back) while the last step was a load that did not
    #: read back: a read-back next is compared with it.
    pending: LoadOutcome | None = None
    #: Whether the last step on it was a load without a read-back (a second load then
    #: crashes every version on the next ``cont``: the machine draws one on sanitizer
    #: builds only).
    just_loaded: bool = False
    #: Its last step (the machine skips a save after a save, a reset after a start).
    last: Action = Action.START
    #: Whether its last load was refused (it stayed up): the next load is judged as one
    #: *after a failed load*.
    failed_load: bool = False


@dataclass(frozen=True)
class Snapshot:
    """A snapshot saved by a step: who saved it, in which phase, running which code."""

    number: int
    version: str
    phase: str
    code: int | None
    path: Path


class _Gone(Exception):
    """QEMU exited under a step (the process is retired)."""


class StepInterpreter:
    """Applies a sequence's steps to live processes, one at a time.

    :param run: runs one coroutine (a :class:`~fuzz.run.session.Session`'s ``run``); a
        :class:`HarnessError` it raises outside a QEMU exit leaves :meth:`apply` as is.
    :param binaries: version name -> binary, for every version a start names.
    :param config: the machine configuration of every process.
    :param workdir: where the processes, the snapshots and the one-shot loads go.
    :param guests: guest index -> program, for the starts (read at each start).
    :param template: gives the empty qcow2 every snapshot is saved into.
    :param processes: a set every live process is added to while it is up (for a caller
        that closes what is left after an interrupt).
    """

    def __init__(
        self, run: Runner, binaries: Mapping[str, QemuBinary], config: MachineConfig,
        workdir: Path, *, guests: Mapping[int, GuestProgram], template: Callable[[], Path],
        processes: set[Live] | None = None,
    ) -> None:  # fmt: skip
        self.run = run
        self.binaries = binaries
        self.config = config
        self.workdir = workdir
        self.guests = guests
        self.template = template
        self.processes: set[Live] = set() if processes is None else processes
        #: The live processes, in order of their start.
        self.procs: dict[int, Process] = {}
        #: The snapshots saved, in order.
        self.snaps: dict[int, Snapshot] = {}
        self._one_shots: dict[tuple[int, str, bool], LoadOutcome] = {}
        #: The sanitizer report of a QEMU that exited under the last step, if it printed
        #: one: the signature names only its kind and two frames, the entry keeps it whole.
        self.report: SanitizerReport | None = None

    # -- hooks ----------------------------------------------------------------------------

    def taken(self, step: Step) -> None:
        """``step`` is taken: called before it acts (a save: once it saved)."""

    def check(self, step: Step, proc: Process | None) -> Process:
        """The process ``step`` acts on (None: not started, or retired).

        :raise LookupError: by default, on None (the machine draws among live processes).
        """
        if proc is None:
            raise LookupError(f"{step.describe()}: no such live process")
        return proc

    def exited(self, proc: Process, step: Step, error: HarnessError) -> None:
        """QEMU exited under ``step`` (it is retired next; in a load, ``crashed``)."""

    def save_failed(self, proc: Process, step: Step, error: str) -> None:
        """QEMU refused the save ``step`` (the process is retired next; no step taken)."""

    def new_process(self, version: str, guest: GuestProgram | None) -> Live:
        """A live process of ``version`` with ``guest`` (not started yet)."""
        return LiveProcess(self.binaries[version], self.config, self.workdir, guest)

    def fresh_load(self, snap: Snapshot, version: str, read_back: bool) -> LoadOutcome:
        """The load of ``snap`` on a fresh process of ``version`` (uncached)."""
        return self.run(
            lambda: one_shot_load(
                self.binaries[version], self.config, self.workdir, snap.number, snap.path,
                read_back=read_back,
            )
        )  # fmt: skip

    # -- the steps ------------------------------------------------------------------------

    def apply(self, step: Step) -> Found | None:
        """Take ``step``; the finding if it is a load or a read-back that diverged.

        :raise HarnessError: a QEMU did not start, or failed without exiting.
        """
        self.report = None
        if step.action is Action.START:
            self._start(step)
            return None
        proc = self.check(step, self.procs.get(step.process))
        try:
            match step.action:
                case Action.RUN:
                    self._taken(step, proc)
                    proc.pending = None
                    reached = self._on(proc, step, proc.live.run_to_checkpoint)
                    proc.phase = "checkpoint" if reached else "unknown"
                case Action.SAVE:
                    self._save(step, proc)
                case Action.LOAD:
                    return self._load(step, proc)
                case Action.READ_BACK:
                    self._taken(step, proc)
                    pending, proc.pending = proc.pending, None
                    try:
                        transcript = self._on(proc, step, proc.live.read_back)
                    except _Gone:
                        # After a load without a read-back, a crash here is that load's.
                        if pending is None:
                            raise
                        return compare_loads(pending, self._crashed(proc))
                    proc.phase = "done"
                    if pending is not None:
                        return compare_loads(pending, LoadOutcome("completed", "", transcript))
                case Action.RESET:
                    self._taken(step, proc)
                    self._on(proc, step, proc.live.reset)
                    proc.pending = None
                    proc.phase = "reset"
                    proc.code = proc.guest
        except _Gone:
            pass
        return None

    def one_shot(self, snap: Snapshot, version: str, read_back: bool) -> LoadOutcome:
        """:meth:`fresh_load`, once per (snapshot, version, read-back)."""
        key = (snap.number, version, read_back)
        if key not in self._one_shots:
            self._one_shots[key] = self.fresh_load(snap, version, read_back)
        return self._one_shots[key]

    def retire(self, proc: Process) -> None:
        """Close ``proc`` and forget it."""
        self.procs.pop(proc.number, None)
        self.processes.discard(proc.live)
        self.run(proc.live.close)

    def close(self) -> None:
        """Close every process left (a second Ctrl-C during the close: close again)."""
        left = list(self.procs.values())
        self.procs = {}

        async def close() -> None:
            for proc in left:
                await proc.live.close()

        try:
            try:
                self.run(close)
            except KeyboardInterrupt:
                with contextlib.suppress(KeyboardInterrupt):
                    self.run(close)
                raise
        finally:
            for proc in left:
                self.processes.discard(proc.live)

    def _crashed(self, proc: Process) -> LoadOutcome:
        """:func:`crashed` of ``proc``'s stderr, whose QEMU exited; keeps its sanitizer
        report, if any, in :attr:`report` (its stack goes into the entry)."""
        stderr = proc.live.stderr_tail(REPORT_BYTES)
        self.report = find_report(stderr)
        return crashed(stderr)

    def _taken(self, step: Step, proc: Process | None) -> None:
        self.taken(step)
        if proc is not None:
            proc.just_loaded = False
            proc.last = step.action

    def _on(self, proc: Process, step: Step, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run a step of ``proc``.

        :raise _Gone: QEMU exited under it (after :meth:`exited`; the process is retired).
        """
        try:
            return self.run(make)
        except HarnessError as err:
            if self.run(lambda: proc.live.wait_exit(2.0)) is None:
                raise
            self.exited(proc, step, err)
            self.retire(proc)
            raise _Gone from err

    def _start(self, step: Step) -> None:
        assert step.version is not None  # checked when the sequence was made or read
        self._taken(step, None)
        guest = None if step.guest is None else self.guests[step.guest]
        live = self.new_process(step.version, guest)
        self.processes.add(live)
        proc = Process(step.process, step.version, step.guest, live, code=step.guest)
        self.procs[step.process] = proc
        self.run(live.start)

    def _save(self, step: Step, proc: Process) -> None:
        assert step.snapshot is not None
        number = step.snapshot
        path = self.workdir / f"s{number}.qcow2"
        proc.pending = None
        template = self.template()
        error = self._on(proc, step, lambda: proc.live.save(number, path, template))
        if error is not None:
            self.save_failed(proc, step, error)
            self.retire(proc)
            return
        self._taken(step, proc)
        self.snaps[number] = Snapshot(number, proc.version, proc.phase, proc.code, path)

    def _load(self, step: Step, proc: Process) -> Found | None:
        assert step.snapshot is not None
        snap = self.snaps[step.snapshot]
        read_back = step.read_back
        self._taken(step, proc)
        try:
            actual = self._on(
                proc, step, lambda: proc.live.load(snap.number, snap.path, read_back=read_back)
            )
        except _Gone:
            actual = self._crashed(proc)
        expected = self.one_shot(snap, proc.version, read_back)
        after_failed, proc.failed_load = proc.failed_load, False
        proc.pending = None
        proc.just_loaded = not read_back
        if actual.verdict == "refused" and proc.live.alive:
            # Kept, state unknown: its next load is one after a failed load.
            proc.failed_load, proc.just_loaded = True, False
            proc.phase, proc.code = "unknown", None
        elif actual.verdict != "completed":
            if self.procs.get(proc.number) is proc:
                self.retire(proc)
        else:
            proc.phase = "done" if read_back else snap.phase
            proc.code = snap.code
            if snap.phase == "checkpoint" and not read_back:
                proc.pending = self.one_shot(snap, proc.version, True)
        return compare_loads(expected, actual, after_failed_load=after_failed)
