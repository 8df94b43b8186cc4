"""How a save or a restore ended, as plain data.

Every way a step can end is one :class:`Verdict`. A step's messages are QEMU's own error
lines with the program-name prefix removed, so they read the same whatever path the
binary was started from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fuzz.errors import CorpusError

#: Linux's signal names by number, as ``signal.Signals`` names them (the number a QEMU
#: died by is named in an outcome's summary). A table, not the ``signal`` module, so that
#: the floor of plain values imports no process-control code; a unit test holds it to
#: ``signal.Signals`` on the machine that runs the tests.
SIGNAL_NAMES: dict[int, str] = {
    1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT",
    7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2",
    13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD",
    18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG",
    24: "SIGXCPU", 25: "SIGXFSZ", 26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH",
    29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS", 34: "SIGRTMIN", 64: "SIGRTMAX",
}  # fmt: skip


class Verdict(StrEnum):
    """The ways a step ends."""

    COMPLETED = "completed"
    """The save or restore finished and QEMU reported success."""
    REFUSED = "refused"
    """QEMU rejected the stream cleanly (an error message, a non-zero exit)."""
    CRASHED = "crashed"
    """QEMU died by a signal or aborted (an assertion, a segfault)."""
    HUNG = "hung"
    """QEMU did not finish in time and was killed."""
    SETUP_ERROR = "setup-error"
    """The case is invalid for this version (it would not even start): not a divergence."""
    NOT_RUN = "not-run"
    """The step was not run: the control had already failed, so it could tell nothing."""


class Stage(StrEnum):
    """Which step of a case an outcome belongs to."""

    SAVE = "save"
    LOAD = "load"


_PREFIX = re.compile(r"^(?:\S*/)?qemu-system-\w+:\s*")


def qemu_error_lines(text: str, limit: int = 40) -> tuple[str, ...]:
    """QEMU's error lines from a stderr text, without the ``qemu-system-aarch64:`` prefix.

    At most ``limit`` lines, in their order. Errors are kept before warnings: a refusal
    that follows a page of deprecation warnings must not lose the line that names its
    cause (5.2 -> 11.1 printed 39 warnings before it).
    """
    lines = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        lines.append(_PREFIX.sub("", line))
    if len(lines) <= limit:
        return tuple(lines)
    errors = [i for i, line in enumerate(lines) if not line.lower().startswith("warning:")]
    keep = set(errors[-limit:])
    for i in reversed(range(len(lines))):
        if len(keep) >= limit:
            break
        keep.add(i)
    return tuple(lines[i] for i in sorted(keep))


@dataclass(frozen=True)
class StepOutcome:
    """The end of one save or one restore on one QEMU version."""

    stage: Stage
    version: str
    verdict: Verdict
    messages: tuple[str, ...] = ()
    returncode: int | None = None
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def headline(self) -> str:
        """The message that says most: the first error line, else the first line, else ''."""
        errors = [m for m in self.messages if not m.lower().startswith("warning:")]
        return (errors or list(self.messages) or [""])[0]

    @property
    def last_field_loaded(self) -> str:
        """The last field a traced load started (``details["load_path"]``, e.g.
        ``cpu/wfxt-timer:wfxt_timer``), or "" where the load was not traced or loaded none."""
        path = self.details.get("load_path")
        return str(path.get("last_field") or "") if isinstance(path, dict) else ""

    def summary(self) -> str:
        """One line: verdict, and the first QEMU error message or the signal."""
        text = f"{self.stage} on {self.version}: {self.verdict}"
        if self.returncode is not None and self.returncode < 0:
            number = -self.returncode
            text += f" ({SIGNAL_NAMES.get(number, f'signal {number}')})"
        if self.headline:
            text += f": {self.headline}"
        return text

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "stage": str(self.stage),
            "version": self.version,
            "verdict": str(self.verdict),
            "messages": list(self.messages),
            "returncode": self.returncode,
            "seconds": round(self.seconds, 4),
            "details": self.details,
        }

    @classmethod
    def from_json(cls, data: Any) -> StepOutcome:
        """Parse :meth:`to_json` output; :class:`CorpusError` names what is wrong."""
        try:
            return cls(
                stage=Stage(data["stage"]),
                version=str(data["version"]),
                verdict=Verdict(data["verdict"]),
                messages=tuple(str(m) for m in data.get("messages", [])),
                returncode=None if data.get("returncode") is None else int(data["returncode"]),
                seconds=float(data.get("seconds", 0.0)),
                details=dict(data.get("details", {})),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CorpusError(f"step outcome: {err!r}") from err


@dataclass(frozen=True)
class TransferOutcome:
    """A stream saved on ``src`` and restored on ``dst`` (``load`` is None if the save failed)."""

    src: str
    dst: str
    save: StepOutcome
    load: StepOutcome | None

    @property
    def verdict(self) -> Verdict:
        """The verdict of the first step that did not complete, else completed."""
        if self.save.verdict is not Verdict.COMPLETED or self.load is None:
            return self.save.verdict
        return self.load.verdict

    @property
    def failing_step(self) -> StepOutcome | None:
        """The step that decided a non-completed verdict."""
        if self.save.verdict is not Verdict.COMPLETED:
            return self.save
        if self.load is not None and self.load.verdict is not Verdict.COMPLETED:
            return self.load
        return None

    def summary(self) -> str:
        """One line: the pair, its verdict and the deciding message."""
        step = self.failing_step
        tail = "" if step is None or not step.headline else f": {step.headline}"
        return f"{self.src} -> {self.dst}: {self.verdict}{tail}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "src": self.src,
            "dst": self.dst,
            "verdict": str(self.verdict),
            "save": self.save.to_json(),
            "load": None if self.load is None else self.load.to_json(),
        }

    @classmethod
    def from_json(cls, data: Any) -> TransferOutcome:
        """Parse :meth:`to_json` output; :class:`CorpusError` names what is wrong."""
        try:
            return cls(
                src=str(data["src"]),
                dst=str(data["dst"]),
                save=StepOutcome.from_json(data["save"]),
                load=None if data.get("load") is None else StepOutcome.from_json(data["load"]),
            )
        except (KeyError, TypeError) as err:
            raise CorpusError(f"transfer outcome: {err!r}") from err


@dataclass(frozen=True)
class LoadOutcome:
    """How a load ended and what the guest printed after it.

    :param verdict: ``completed``, ``refused`` (QEMU said no and stayed up) or ``crashed``
        (QEMU exited during the load).
    :param error: QEMU's answer to a refused load.
    :param transcript: the read-back printed after ``resume`` (None: not asked for).
    """

    verdict: str
    error: str = ""
    transcript: str | None = None
