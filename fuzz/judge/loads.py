"""The judge of a load into a process with a history (``fuzz --stateful``).

A stateful run loads a snapshot into a live process that has done other things first,
and the same snapshot once into a fresh process (the one-shot load). QEMU promises the
two are the same: :func:`compare_loads` says where they are not, as a ``history``
signature, like every other oracle of :mod:`fuzz.judge.oracles`.
"""

from __future__ import annotations

from fuzz.core.case import GuestProgram
from fuzz.core.outcome import LoadOutcome
from fuzz.judge.oracles import Signature
from fuzz.judge.transcript import parse_transcript

#: The signature kind of every finding of a load after a history.
KIND = "history"

#: How the error of a crashed load begins when a sanitizer build reported the crash; the
#: report's kind and frames follow, and the signature names them.
SANITIZER_REPORT = "sanitizer report: "

#: How the signature of a load into a process whose previous load was refused begins.
AFTER_FAILED_LOAD = "after a failed load: "

#: What every guest prints when its read-back is complete.
_DONE = GuestProgram(image=b"").done.decode("latin-1")


def compare_loads(
    expected: LoadOutcome, actual: LoadOutcome, *, after_failed_load: bool = False
) -> tuple[Signature, str, str] | None:
    """The finding of a load that acted otherwise than the one-shot load, or None.

    :param after_failed_load: the process's previous load was refused (it stayed up): the
        signature says so (:data:`AFTER_FAILED_LOAD`), for it is a history of its own.
    :return: the signature, and what the one-shot load and the process with a history
        gave (as text) on the first step that differs: load outcome, then read-back.
    """
    where = AFTER_FAILED_LOAD if after_failed_load else ""
    if expected.verdict != actual.verdict:
        # A sanitizer build's crash says where (fuzz.stateful.steps.crashed): name it.
        report = actual.error.removeprefix(SANITIZER_REPORT)
        how = f": {report}" if actual.verdict == "crashed" and report != actual.error else ""
        return (
            Signature(KIND, f"{where}load outcome: one-shot {expected.verdict}, after history "
                            f"{actual.verdict}{how}"),
            f"{expected.verdict} {expected.error}".strip(),
            f"{actual.verdict} {actual.error}".strip(),
        )  # fmt: skip
    if expected.transcript is None or actual.transcript is None:
        return None
    done = _DONE
    same = parse_transcript(expected.transcript) == parse_transcript(actual.transcript) and (
        done in expected.transcript
    ) == (done in actual.transcript)
    if same:
        return None
    return (
        Signature(KIND, f"{where}read-back after the load"),
        expected.transcript,
        actual.transcript,
    )
