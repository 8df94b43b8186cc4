"""The one step interpreter of the stateful mode, on fake live processes (pure logic).

The fake models the 11.1 bug the mode finds: a process that ran one guest's code and then
loads another guest's checkpoint reads back with the code it ran (stale translations),
where a fresh process reads back what the snapshot holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from fuzz.core.case import GuestProgram, MachineConfig
from fuzz.core.outcome import LoadOutcome
from fuzz.errors import MonitorError
from fuzz.judge.loads import AFTER_FAILED_LOAD
from fuzz.judge.oracles import Signature
from fuzz.judge.promise import Promise, grade_history
from fuzz.run.session import Session
from fuzz.stateful.engine import StatefulEngine, _MachineSteps
from fuzz.stateful.model import Action, StatefulSequence, Step
from fuzz.stateful.replay import SequenceEntry, _Replayer, _Unusable
from fuzz.stateful.steps import Live, Snapshot, StepInterpreter
from strategies.cases import rebuild_guest

T = TypeVar("T")
CONFIG = MachineConfig("virt", "cortex-a57")
OPS = (
    ({"op": "memory", "offset": "0x10", "count": 2, "value": "0x1111", "step": "0x1"},),
    ({"op": "memory", "offset": "0x2000", "count": 3, "value": "0x2222", "step": "0x1"},),
)
GUESTS = {i: rebuild_guest(ops, 1) for i, ops in enumerate(OPS)}
DONE = GuestProgram(image=b"").done.decode("latin-1")
READ_BACK = Signature("history", "read-back after the load")
REFUSED = Signature("history", "load outcome: one-shot completed, after history refused")
CRASHED = "load outcome: one-shot completed, after history crashed"


@dataclass
class World:
    """What the fake processes share: the snapshots' contents, and what goes wrong."""

    stale: bool = True
    #: Loads into a process with a history are refused (a fresh one still loads).
    refuse_after_history: bool = False
    #: Every load is refused, on a fresh process too.
    refuse_all: bool = False
    save_error: str | None = None
    #: A process whose load was refused refuses every load after it (QEMU's -22).
    poisoned: bool = False
    #: What a process printed on stderr (a sanitizer build's report, say).
    stderr: str = ""
    #: The action under which a process's QEMU exits (a fresh one's never does).
    exit_in: Action | None = None
    saved: dict[str, int] = field(default_factory=dict)
    closed: int = 0


class FakeLive:
    """A live process: its memory (the guest's value) and the code it last ran."""

    def __init__(self, world: World, guest: GuestProgram | None, *, fresh: bool = False) -> None:
        self.world = world
        self.own = None if guest is None else int(guest.digest()[:8], 16)
        self.value = self.own
        self.ran: int | None = None
        self.fresh = fresh
        self.dead = False
        self.refused = False

    @property
    def alive(self) -> bool:
        return not self.dead

    def _maybe_exit(self, action: Action) -> None:
        if self.world.exit_in is action and not self.fresh:
            self.dead = True
            raise MonitorError("QEMU went away")

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self.world.closed += 1

    async def run_to_checkpoint(self) -> bool:
        self._maybe_exit(Action.RUN)
        self.ran = self.value
        return self.value is not None

    async def save(self, snapshot: int, path: Path, template: Path) -> str | None:
        assert self.value is not None
        self.world.saved[str(path)] = self.value
        return self.world.save_error

    async def load(self, snapshot: int, path: Path, *, read_back: bool) -> LoadOutcome:
        self._maybe_exit(Action.LOAD)
        if (
            self.world.refuse_all
            or (self.world.refuse_after_history and not self.fresh)
            or (self.world.poisoned and self.refused)
        ):
            self.refused = True
            return LoadOutcome("refused", "loadvm: no")
        self.value = self.world.saved[str(path)]
        if not read_back:
            return LoadOutcome("completed")
        return LoadOutcome("completed", "", await self.read_back())

    async def read_back(self) -> str:
        self._maybe_exit(Action.READ_BACK)
        shown = self.ran if self.world.stale and self.ran is not None else self.value
        return f"x0=0x{shown or 0:x}\n{DONE}"

    async def reset(self) -> bool:
        self.value = self.own
        return True

    async def wait_exit(self, timeout: float) -> int | None:
        return -11 if self.dead else None

    def stderr_tail(self, limit: int) -> str:
        return self.world.stderr[-limit:]


def _run(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(make())


class _Fakes(StepInterpreter):
    """Fake processes and one-shot loads for any interpreter (mixed in first)."""

    world: World
    fresh_loads: int = 0

    def new_process(self, version: str, guest: GuestProgram | None) -> Live:
        return FakeLive(self.world, guest)

    def fresh_load(self, snap: Snapshot, version: str, read_back: bool) -> LoadOutcome:
        self.fresh_loads += 1
        return self.run(lambda: FakeLive(self.world, None, fresh=True).load(
            snap.number, snap.path, read_back=read_back))  # fmt: skip


class FakeSteps(_Fakes):
    def __init__(self, world: World, workdir: Path) -> None:
        super().__init__(
            _run, {}, CONFIG, workdir, guests=GUESTS, template=lambda: workdir / "empty.qcow2"
        )
        self.world = world
        self.taken_steps: list[Step] = []

    def taken(self, step: Step) -> None:
        self.taken_steps.append(step)


def _saved(n: int, guest: int) -> list[Step]:
    """Process ``n`` starts guest ``guest``, runs to its checkpoint, saves snapshot ``guest``."""
    return [
        Step(Action.START, n, version="11.1", guest=guest),
        Step(Action.RUN, n),
        Step(Action.SAVE, n, snapshot=guest),
    ]


#: Two guests saved; a third process with no guest loads one, then the other.
HISTORY = (
    *_saved(0, 0), *_saved(1, 1),
    Step(Action.START, 2, version="11.1"),
    Step(Action.LOAD, 2, snapshot=0, read_back=True),
    Step(Action.LOAD, 2, snapshot=1, read_back=True),
)  # fmt: skip

#: A guest runs to its checkpoint, then loads another guest's checkpoint without reading
#: back, and reads back in a step of its own.
PENDING = (
    *_saved(0, 0),
    Step(Action.START, 1, version="11.1", guest=1),
    Step(Action.RUN, 1),
    Step(Action.LOAD, 1, snapshot=0),
    Step(Action.READ_BACK, 1),
)


def _apply_all(interp: StepInterpreter, steps: tuple[Step, ...]) -> list[Any]:
    return [interp.apply(step) for step in steps]


@pytest.mark.parametrize("stale", [True, False])
def test_a_load_without_read_back_then_a_read_back_unlike_the_one_shot_one_is_a_finding(
    tmp_path: Path, stale: bool
) -> None:
    steps = FakeSteps(World(stale=stale), tmp_path)
    found = _apply_all(steps, PENDING[:-1])
    assert found == [None] * (len(PENDING) - 1)  # the load's outcome agrees
    proc = steps.procs[1]
    assert proc.phase == "checkpoint" and proc.code == 0  # the snapshot's phase and code
    assert proc.just_loaded and proc.pending is not None  # the one-shot read-back, kept
    last = steps.apply(PENDING[-1])
    assert proc.pending is None and proc.phase == "done"
    if stale:
        assert last is not None and last[0] == READ_BACK
        assert last[1] != last[2]
    else:
        assert last is None
    assert steps.fresh_loads == 2  # the load as it was (no read-back), and with one


def test_a_load_that_reads_back_is_compared_at_once_and_one_shots_are_cached(
    tmp_path: Path,
) -> None:
    steps = FakeSteps(World(), tmp_path)
    found = _apply_all(steps, HISTORY)
    assert found[:-1] == [None] * (len(HISTORY) - 1)  # nothing ran in p2 before the first load
    # The first load does not run p2's code (ran stays None in the fake), so the second
    # one agrees too: a guest-less process needs to *run* between loads for stale code.
    assert found[-1] is None
    steps.apply(Step(Action.LOAD, 2, snapshot=0, read_back=True))
    assert steps.fresh_loads == 2  # s0 and s1 once each, with read-back


def test_a_refused_load_keeps_the_process_and_the_refusal_is_compared(tmp_path: Path) -> None:
    world = World(refuse_after_history=True)
    steps = FakeSteps(world, tmp_path)
    found = _apply_all(steps, HISTORY[:-1])
    assert found[-1] is not None and found[-1][0] == REFUSED
    proc = steps.procs[2]  # kept, as a management layer keeps a process whose revert failed
    assert proc.failed_load and proc.phase == "unknown" and not proc.just_loaded
    assert world.closed == 0


@pytest.mark.parametrize("poisoned", [True, False])
def test_the_load_after_a_failed_load_is_judged_as_such(tmp_path: Path, poisoned: bool) -> None:
    """A refusal that a fresh process gives too is no finding; the next load into the
    process that refused must then load as a fresh process does."""
    world = World(refuse_all=True)
    steps = FakeSteps(world, tmp_path)
    assert _apply_all(steps, HISTORY[:-1]) == [None] * (len(HISTORY) - 1)
    world.refuse_all, world.poisoned = False, poisoned
    found = steps.apply(HISTORY[-1])
    proc = steps.procs[2]
    assert proc.failed_load is poisoned  # refused again: still a process after a failed load
    if poisoned:
        assert found is not None
        assert found[0] == Signature("history", AFTER_FAILED_LOAD + REFUSED.detail)
        assert grade_history(found[0]).promise is Promise.NOT_PROMISED
    else:
        assert found is None and proc.phase == "done"


def test_an_exit_under_a_step_retires_the_process_and_a_load_exit_is_a_crash(
    tmp_path: Path,
) -> None:
    world = World(exit_in=Action.RUN)
    steps = FakeSteps(world, tmp_path)
    assert _apply_all(steps, PENDING[:2]) == [None, None]
    assert steps.procs == {} and world.closed == 1
    assert steps.taken_steps == list(PENDING[:2])  # taken, then the process went
    world = World()
    steps = FakeSteps(world, tmp_path)
    _apply_all(steps, HISTORY[:-2])
    world.exit_in = Action.LOAD
    found = steps.apply(HISTORY[-2])
    assert found is not None
    assert found[0] == Signature("history", CRASHED)
    assert 2 not in steps.procs


def test_a_refused_save_retires_the_process_and_is_no_step(tmp_path: Path) -> None:
    steps = FakeSteps(World(save_error="savevm: no space"), tmp_path)
    assert _apply_all(steps, PENDING[:3]) == [None] * 3
    assert steps.snaps == {} and steps.procs == {}
    assert steps.taken_steps == list(PENDING[:2])


# -- the machine's interpreter and the replay's, on the same steps ------------------------


class _FakeMachineSteps(_Fakes, _MachineSteps):
    pass


class _FakeReplayer(_Fakes, _Replayer):
    pass


def _entry(steps: tuple[Step, ...], failing: int, tmp_path: Path) -> SequenceEntry:
    sequence = StatefulSequence(
        signature=READ_BACK, config=CONFIG, guests=OPS, steps=steps, failing_step=failing
    )
    return SequenceEntry(sequence, dict(GUESTS), tmp_path / "empty.qcow2", tmp_path)


RECORDED: list[Step] = []


def _machine(session: Session, world: World, tmp_path: Path) -> _FakeMachineSteps:
    work = tmp_path / "engine"
    work.mkdir(exist_ok=True)
    engine = StatefulEngine(
        session, {}, {}, [("11.1", "11.1")], corpus=tmp_path / "corpus", workdir=work,
        max_cases=1,
    )  # fmt: skip
    machine = _FakeMachineSteps(engine, work, GUESTS, RECORDED.append)
    machine.world = world
    machine.template = lambda: work / "empty.qcow2"  # no QEMU to make it
    return machine


def _replayer(session: Session, world: World, entry: SequenceEntry, tmp: Path) -> _FakeReplayer:
    replayer = _FakeReplayer(session, entry, {}, tmp)
    replayer.world = world
    return replayer


@pytest.mark.parametrize(
    ("steps", "world", "failing"),
    [
        (PENDING, World(), len(PENDING) - 1),
        (HISTORY[:-1], World(refuse_after_history=True), len(HISTORY) - 2),
        (HISTORY, World(), None),
    ],
    ids=["stale-read-back", "refused-load", "agrees"],
)
def test_the_machine_and_the_replay_give_the_same_finding_for_the_same_steps(
    tmp_path: Path, steps: tuple[Step, ...], world: World, failing: int | None
) -> None:
    RECORDED.clear()
    with Session() as session:
        machine = _machine(session, world, tmp_path)
        by_machine = next(
            ((i, f) for i, s in enumerate(steps) if (f := machine.apply(s)) is not None), None
        )
        machine.close()
        assert list(steps[: None if failing is None else failing + 1]) == RECORDED
        assert machine.engine.summary.loads == sum(s.action is Action.LOAD for s in steps)
        assert machine.engine.processes == set()
        entry = _entry(steps, failing or 0, tmp_path)
        replay_dir = tmp_path / "replay"
        replay_dir.mkdir()
        again = World(**{**world.__dict__, "saved": {}})
        now = _replayer(session, again, entry, replay_dir).replay()
    if failing is None:
        assert by_machine is None and now is None
    else:
        assert by_machine is not None and now is not None
        assert by_machine[0] == now.step == failing
        assert by_machine[1] == (now.signature, now.expected, now.actual)


def test_the_replay_is_unusable_where_the_machine_goes_on(tmp_path: Path) -> None:
    """A refused save: the machine retires the process and draws on; a replay cannot."""
    with Session() as session:
        entry = _entry(PENDING, len(PENDING) - 1, tmp_path)
        replayer = _replayer(session, World(save_error="savevm: no space"), entry, tmp_path)
        with pytest.raises(_Unusable, match=r"step 2 \(s0 = save p0\): savevm: no space"):
            replayer.replay()
        assert replayer.procs == {}  # closed, however it ended
        # A step on a process whose load was refused, as a fresh process refuses it too: the
        # process stayed up, so the step is taken, and nothing diverges.
        steps = (*HISTORY[:-2], HISTORY[-2], Step(Action.READ_BACK, 2))
        entry = _entry(steps, len(steps) - 2, tmp_path)
        replayer = _replayer(session, World(refuse_all=True), entry, tmp_path)
        assert replayer.replay() is None


ASAN_REPORT = Path(__file__).parents[1] / "data" / "sanitizer" / "asan-heap-use-after-free.txt"


@pytest.mark.parametrize("report", [True, False])
def test_a_crash_in_the_read_back_after_a_load_is_that_loads_and_a_sanitizer_says_where(
    tmp_path: Path, report: bool
) -> None:
    """The load without a read-back agreed; the read-back step after it crashes QEMU (on a
    sanitizer build, with a report): a finding of that load, named by the report."""
    stderr = ASAN_REPORT.read_text() if report else "Segmentation fault\n"
    steps = FakeSteps(World(exit_in=Action.READ_BACK, stderr=stderr), tmp_path)
    assert _apply_all(steps, PENDING[:-1]) == [None] * (len(PENDING) - 1)
    found = steps.apply(PENDING[-1])
    assert found is not None and 1 not in steps.procs  # retired
    crashed = "load outcome: one-shot completed, after history crashed"
    if report:
        detail = f"{crashed}: asan heap-use-after-free in vmstate_load_state < cpu_post_load"
        assert found[0] == Signature("history", detail)
        assert grade_history(found[0]).promise is Promise.PROMISED
    else:
        assert found[0] == Signature("history", crashed)
