"""The data of a stateful sequence and the monitor commands of each of its steps.

A stateful sequence is what :mod:`fuzz.stateful.engine` found: a machine configuration, the guest
programs (as operation lists), and the steps done on live QEMU processes -- start, run to
the checkpoint, save a snapshot, load one, read back, reset. It is a pure value: it
starts nothing and reads no file, so the engine, ``sequence.json`` and the generated
``repro.sh`` (:mod:`fuzz.stateful.repro`) all describe the same steps.

The snapshot steps are HMP commands (``drive_add`` a qcow2 file, ``savevm``/``loadvm``,
``drive_del``) in every version: the engine sends them through QMP's
``human-monitor-command`` and ``repro.sh`` types them on the monitor, so a reproducer runs
exactly what the engine ran.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fuzz.core import command as qemu_command
from fuzz.core.case import MachineConfig
from fuzz.errors import CorpusError
from fuzz.judge.oracles import Signature

#: Version of the ``sequence.json`` layout.
FORMAT = 1
#: The kind of a corpus entry holding a stateful sequence (``corpus.py`` entries have none).
ENTRY_KIND = "stateful"


class Action(StrEnum):
    """What one step does to one process."""

    START = "start"
    RUN = "run"
    SAVE = "save"
    LOAD = "load"
    READ_BACK = "read_back"
    RESET = "reset"


@dataclass(frozen=True)
class Step:
    """One step of a sequence.

    :param action: what the step does.
    :param process: the process it acts on (numbered in order of their start).
    :param version: ``start`` only: the QEMU version of the new process.
    :param guest: ``start`` only: the index of its guest in the sequence's guests, or None
        for a process with no guest image of its own.
    :param snapshot: ``save``: the number of the new snapshot; ``load``: the one loaded.
    :param read_back: ``load`` only: resume the guest right after the load and keep what
        it prints (the read-back compared with the one-shot load's).
    """

    action: Action
    process: int
    version: str | None = None
    guest: int | None = None
    snapshot: int | None = None
    read_back: bool = False

    def describe(self) -> str:
        """A one-line human form, e.g. ``p2 = start 11.1 (no guest)``, ``load s0 into p2``."""
        p = f"p{self.process}"
        match self.action:
            case Action.START:
                what = "no guest" if self.guest is None else f"guest g{self.guest}"
                return f"{p} = start {self.version} ({what})"
            case Action.SAVE:
                return f"s{self.snapshot} = save {p}"
            case Action.LOAD:
                then = ", read back" if self.read_back else ""
                return f"load s{self.snapshot} into {p}{then}"
            case _:
                return f"{self.action.value} {p}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (only the fields the action uses)."""
        out: dict[str, Any] = {"action": self.action.value, "process": self.process}
        if self.action is Action.START:
            out |= {"version": self.version, "guest": self.guest}
        if self.action in (Action.SAVE, Action.LOAD):
            out["snapshot"] = self.snapshot
        if self.action is Action.LOAD:
            out["read_back"] = self.read_back
        return out

    @classmethod
    def from_json(cls, data: Any) -> Step:
        """Parse :meth:`to_json` output; :class:`CorpusError` names what is wrong."""
        if not isinstance(data, dict):
            raise CorpusError(f"a step must be an object, not {data!r}")
        try:
            action = Action(data["action"])
            step = cls(
                action=action,
                process=int(data["process"]),
                version=None if data.get("version") is None else str(data["version"]),
                guest=None if data.get("guest") is None else int(data["guest"]),
                snapshot=None if data.get("snapshot") is None else int(data["snapshot"]),
                read_back=bool(data.get("read_back", False)),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CorpusError(f"step {data!r}: {err!r}") from err
        if action is Action.START and step.version is None:
            raise CorpusError(f"step {data!r}: a start needs a version")
        if action in (Action.SAVE, Action.LOAD) and step.snapshot is None:
            raise CorpusError(f"step {data!r}: a {action.value} needs a snapshot")
        return step


@dataclass(frozen=True)
class StatefulSequence:
    """A whole stateful finding: configuration, guests, steps and what differed.

    :param failing_step: the index in ``steps`` of the load whose result differed from the
        one-shot load of the same snapshot on a fresh process.
    :param expected: what the one-shot load gave (outcome or read-back), as text.
    :param actual: what the process with a history gave.
    """

    signature: Signature
    config: MachineConfig
    guests: tuple[tuple[dict[str, Any], ...], ...]
    steps: tuple[Step, ...]
    failing_step: int
    expected: str = ""
    actual: str = ""
    versions: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_steps(self.steps, len(self.guests))
        if not 0 <= self.failing_step < len(self.steps):
            raise CorpusError(f"failing_step {self.failing_step} is not a step index")

    def describe(self) -> list[str]:
        """One line per step, the failing one marked."""
        return [
            f"{i:2d}. {s.describe()}" + ("   <-- differs" if i == self.failing_step else "")
            for i, s in enumerate(self.steps)
        ]

    def to_json(self) -> dict[str, Any]:
        """The ``sequence.json`` content."""
        return {
            "format": FORMAT,
            "kind": ENTRY_KIND,
            "signature": self.signature.to_json(),
            "config": self.config.to_json(),
            "guests": [list(ops) for ops in self.guests],
            "steps": [s.to_json() for s in self.steps],
            "failing_step": self.failing_step,
            "expected": self.expected,
            "actual": self.actual,
            "versions": self.versions,
        }

    def dumps(self) -> str:
        """``sequence.json`` as text."""
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, data: Any) -> StatefulSequence:
        """Parse :meth:`to_json` output.

        :raise CorpusError: wrong format or kind, a missing field, or steps that do not fit
            together (a process used before its start, a snapshot loaded before its save).
        """
        if not isinstance(data, dict):
            raise CorpusError("sequence.json must hold an object")
        if data.get("format") != FORMAT or data.get("kind") != ENTRY_KIND:
            raise CorpusError(
                f"sequence.json: format {data.get('format')!r} kind {data.get('kind')!r}, "
                f"expected {FORMAT} {ENTRY_KIND!r}"
            )
        try:
            guests = tuple(tuple(dict(op) for op in ops) for ops in data["guests"])
            versions = {str(k): dict(v) for k, v in dict(data.get("versions", {})).items()}
            return cls(
                signature=Signature.from_json(data["signature"]),
                config=MachineConfig.from_json(data["config"]),
                guests=guests,
                steps=tuple(Step.from_json(s) for s in data["steps"]),
                failing_step=int(data["failing_step"]),
                expected=str(data.get("expected", "")),
                actual=str(data.get("actual", "")),
                versions=versions,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CorpusError(f"sequence.json: {err!r}") from err

    @classmethod
    def loads(cls, text: str) -> StatefulSequence:
        """Parse ``sequence.json`` text; :class:`CorpusError` if it is not valid JSON."""
        try:
            return cls.from_json(json.loads(text))
        except json.JSONDecodeError as err:
            raise CorpusError(f"sequence.json: {err}") from err


def check_steps(steps: tuple[Step, ...], guests: int) -> None:
    """Check that ``steps`` fit together: what a step uses was made by an earlier one.

    :raise CorpusError: a process used before its start or started twice, a snapshot
        loaded before it was saved or saved twice, or a guest index out of range.
    """
    started: set[int] = set()
    saved: set[int] = set()
    for i, step in enumerate(steps):
        where = f"step {i} ({step.action.value})"
        if step.action is Action.START:
            if step.process in started:
                raise CorpusError(f"{where}: process p{step.process} started twice")
            if step.guest is not None and not 0 <= step.guest < guests:
                raise CorpusError(f"{where}: no guest g{step.guest}")
            started.add(step.process)
            continue
        if step.process not in started:
            raise CorpusError(f"{where}: process p{step.process} was not started")
        if step.action is Action.SAVE:
            if step.snapshot in saved:
                raise CorpusError(f"{where}: snapshot s{step.snapshot} saved twice")
            saved.add(step.snapshot or 0)
        elif step.action is Action.LOAD and step.snapshot not in saved:
            raise CorpusError(f"{where}: snapshot s{step.snapshot} was not saved before")


# -- the monitor commands of the snapshot steps (one command model for engine and repro) --


def snapshot_tag(snapshot: int) -> str:
    """The internal snapshot name of snapshot ``snapshot``."""
    return f"s{snapshot}"


def save_commands(snapshot: int, qcow2: str) -> list[str]:
    """HMP lines that save the (paused) VM as snapshot ``snapshot`` into the file ``qcow2``
    (:func:`fuzz.core.command.snapshot_save_lines`, as every long-lived process saves)."""
    tag = snapshot_tag(snapshot)
    return qemu_command.snapshot_save_lines(tag, qcow2, f"d{tag}")


def load_commands(snapshot: int, qcow2: str, use: int) -> list[str]:
    """HMP lines that load snapshot ``snapshot`` from ``qcow2`` (a private copy: a load
    writes the file); ``use`` numbers the load so drive names never repeat."""
    return qemu_command.snapshot_load_lines(snapshot_tag(snapshot), qcow2, f"l{use}")
