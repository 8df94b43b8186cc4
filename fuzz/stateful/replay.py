"""Replaying a stateful corpus entry: its steps again, judged by the same invariant.

A stateful entry (:mod:`fuzz.stateful.repro`) records the steps a state machine took on
live QEMU processes and the signature of the load that acted otherwise than on a fresh
process. :func:`replay_sequence` takes the same steps again, in order, on new processes of
the recorded versions, and checks every load the way :mod:`fuzz.stateful.engine` did: with
the same :class:`~fuzz.stateful.steps.StepInterpreter` (against
:func:`~fuzz.stateful.procs.one_shot_load`, with :func:`~fuzz.judge.loads.compare_loads`).
The verdict says whether the recorded signature shows again (*same*), another one shows
first (*different*), or every load now agrees (*fixed*); :class:`SequenceReplay` answers
``regress`` and the corpus tests with the same rule as a one-shot entry
(:func:`~fuzz.triage.replay.regress_kind`): on other binaries than the recorded ones a change is
*changed with the binary*.

The snapshots are saved again by the replay (as ``repro.sh`` does); the ones in the entry
are for a look with the recorded version. Every process is closed when the replay ends,
however it ends.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fuzz.core.binary import QemuBinary
from fuzz.core.case import GuestProgram
from fuzz.corpus.entry import Entry, VersionRef, load_entry
from fuzz.errors import CorpusError, HarnessError, InvalidInput
from fuzz.judge.oracles import Signature
from fuzz.run.session import Session
from fuzz.stateful.model import Action, StatefulSequence, Step
from fuzz.stateful.steps import Process, StepInterpreter
from fuzz.triage.replay import BinaryCheck, ReplayResult, ReplayVerdict, current_ref
from strategies.cases import rebuild_guest

SEQUENCE_FILE = "sequence.json"


def is_sequence_entry(folder: Path) -> bool:
    """Whether ``folder`` holds a stateful entry (a ``sequence.json``)."""
    return (folder / SEQUENCE_FILE).is_file()


@dataclass(frozen=True)
class SequenceEntry:
    """A stateful entry read from disk: the sequence, its guests and the empty qcow2."""

    sequence: StatefulSequence
    guests: dict[int, GuestProgram]
    template: Path
    path: Path

    @property
    def name(self) -> str:
        """The entry's folder name."""
        return self.path.name

    @property
    def versions(self) -> list[str]:
        """The versions its steps start, in order of first use."""
        started = [s.version for s in self.sequence.steps if s.action is Action.START]
        return list(dict.fromkeys(v for v in started if v is not None))

    def recorded_ref(self, version: str) -> VersionRef:
        """``version`` as the entry recorded it (empty hash if it did not)."""
        data = self.sequence.versions.get(version, {})
        return VersionRef(version, str(data.get("sha256", "")), str(data.get("version_line", "")))


def load_sequence_entry(folder: Path) -> SequenceEntry:
    """Read a stateful entry, checking everything; :class:`CorpusError` names the problem.

    The guests are rebuilt from their operations (the encoder is deterministic) and must
    equal the recorded images byte for byte, so a replay runs the code the finding ran.
    """
    try:
        text = (folder / SEQUENCE_FILE).read_text()
    except (OSError, UnicodeError) as err:
        raise CorpusError(f"{folder / SEQUENCE_FILE}: cannot read it ({err})") from err
    sequence = StatefulSequence.loads(text)
    template = folder / "empty.qcow2"
    if not template.is_file():
        raise CorpusError(f"{template}: missing (the empty qcow2 every snapshot is saved into)")
    guests: dict[int, GuestProgram] = {}
    used = {s.guest for s in sequence.steps if s.action is Action.START and s.guest is not None}
    for index in sorted(used):
        image = folder / "guests" / f"g{index}.bin"
        try:
            recorded = image.read_bytes()
        except OSError as err:
            raise CorpusError(f"{image}: cannot read it ({err.strerror or err})") from err
        try:
            guest = rebuild_guest(sequence.guests[index], sequence.config.smp)
        except (KeyError, TypeError, ValueError, InvalidInput) as err:
            raise CorpusError(f"{folder / SEQUENCE_FILE}: guest g{index}: {err}") from err
        if guest.image != recorded:
            raise CorpusError(f"{image}: does not match the guest its operations build")
        guests[index] = guest
    return SequenceEntry(sequence, guests, template, folder)


def load_any_entry(folder: Path) -> Entry | SequenceEntry:
    """A one-shot entry (``case.json``) or a stateful one (``sequence.json``).

    :raise CorpusError: neither, or the one it is does not read.
    """
    return load_sequence_entry(folder) if is_sequence_entry(folder) else load_entry(folder)


@dataclass(frozen=True)
class Divergent:
    """The first step of a replay whose load acted otherwise than on a fresh process."""

    step: int
    signature: Signature
    expected: str
    actual: str


@dataclass(frozen=True)
class SequenceReplay(ReplayResult):
    """The result of replaying a stateful entry (the shape ``regress`` reads)."""

    entry: SequenceEntry
    verdict: ReplayVerdict
    now: Divergent | None
    binaries: tuple[BinaryCheck, ...]
    reason: str = ""
    """Why the replay is unusable (a step that no longer runs), else empty."""

    @property
    def recorded(self) -> Signature:
        """The signature the entry recorded."""
        return self.entry.sequence.signature

    def verdict_line(self) -> str:
        """The verdict alone, with the recorded and current signatures and steps."""
        recorded = f"{self.recorded} (step {self.entry.sequence.failing_step})"
        if self.verdict is ReplayVerdict.UNUSABLE:
            return f"unusable: {self.reason}"
        if self.now is None:
            return f"fixed: every load agrees with a fresh process (recorded {recorded})"
        now = f"{self.now.signature} (step {self.now.step})"
        if self.verdict is ReplayVerdict.SAME:
            return f"same divergence: {now}"
        return f"different divergence: recorded {recorded}, now {now}"

    def describe(self) -> str:
        """One line: the verdict, and which versions ran on other binaries."""
        changed = "; ".join(f"{b.recorded.name} {b.match}" for b in self.binaries_changed)
        return self.verdict_line() + (f" [{changed}]" if changed else "")

    def describe_binary_change(self) -> str:
        """For *changed with the binary*: which binaries moved, and both outcomes."""
        sides = "; ".join(b.describe() for b in self.binaries_changed) or "binaries as recorded"
        return f"{sides}; recorded signature: {self.recorded}, now: {self.verdict_line()}"


def classify_sequence(recorded: Signature, now: Divergent | None) -> ReplayVerdict:
    """*same* if the first divergent step has the recorded signature, *fixed* if none."""
    if now is None:
        return ReplayVerdict.FIXED
    return ReplayVerdict.SAME if now.signature == recorded else ReplayVerdict.DIFFERENT


class _Unusable(Exception):
    """A step that cannot run at all (a start or a save that failed): no verdict."""


class _Replayer(StepInterpreter):
    """Takes an entry's steps on live processes; stops at the first divergent load.

    A step whose process is gone, or a save QEMU refuses, makes the replay unusable; QEMU
    exiting under a step other than a load is a :class:`HarnessError`, as it was.
    """

    def __init__(
        self, session: Session, entry: SequenceEntry, binaries: Mapping[str, QemuBinary],
        workdir: Path,
    ) -> None:  # fmt: skip
        super().__init__(
            session.run, binaries, entry.sequence.config, workdir, guests=entry.guests,
            template=lambda: entry.template,
        )  # fmt: skip
        self.entry = entry
        self.index = 0

    def replay(self) -> Divergent | None:
        """Every step in order; the first divergent one, or None."""
        try:
            for index, step in enumerate(self.entry.sequence.steps):
                self.index = index
                if (found := self.apply(step)) is not None:
                    return Divergent(index, *found)
            return None
        finally:
            self.close()

    def _where(self, step: Step) -> str:
        return f"step {self.index} ({step.describe()})"

    def check(self, step: Step, proc: Process | None) -> Process:
        """The step's process, which must still be up."""
        if proc is None or not proc.live.alive:
            raise _Unusable(f"{self._where(step)}: its process is no longer up")
        return proc

    def exited(self, proc: Process, step: Step, error: HarnessError) -> None:
        """A load's exit is its ``crashed`` outcome; any other is the harness's error."""
        if step.action is not Action.LOAD:
            raise error

    def save_failed(self, proc: Process, step: Step, error: str) -> None:
        """No verdict without the snapshot."""
        raise _Unusable(f"{self._where(step)}: {error}")


def replay_sequence(
    session: Session, entry: SequenceEntry, binaries: Mapping[str, QemuBinary],
    *, cache_dir: Path | None = None,
) -> SequenceReplay:  # fmt: skip
    """Take ``entry``'s steps again on ``binaries`` (version name -> binary) and judge them.

    :raise HarnessError: a QEMU could not be started or stopped answering outside a load.
    :raise KeyError: ``binaries`` lacks a version the steps start.
    """
    checks = tuple(
        BinaryCheck("version", entry.recorded_ref(name), current_ref(binaries[name], cache_dir))
        for name in entry.versions
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="migfuzz-sequence-") as tmp:
        replayer = _Replayer(session, entry, binaries, Path(tmp))
        try:
            now = replayer.replay()
        except _Unusable as unusable:
            return SequenceReplay(entry, ReplayVerdict.UNUSABLE, None, checks, str(unusable))
    verdict = classify_sequence(entry.sequence.signature, now)
    return SequenceReplay(entry, verdict, now, checks)
