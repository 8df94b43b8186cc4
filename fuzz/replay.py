"""Replaying a corpus entry: same divergence, a different one, or fixed.

Used by ``migfuzz repro`` (one entry, maybe on other binaries), ``migfuzz regress`` (every
entry, for CI) and the pytest corpus collector. The case is re-run from scratch through the
one case path the fuzz loop recorded it with (:mod:`fuzz.engine`): saved on the source
again, restored and re-saved on the source (control) and the destination, judged by the
same judge -- so a state or read-back finding replays as itself, not as *fixed*.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from enum import StrEnum
from pathlib import Path

from fuzz.corpus import Entry, write_entry
from fuzz.farm import QemuBinary
from fuzz.oracles import AGREE, ControlFailed, Divergence, InvalidCase, Judgement, Signature
from fuzz.outcome import TransferOutcome
from fuzz.session import Session


class ReplayVerdict(StrEnum):
    """How a replay compares with what the entry recorded."""

    SAME = "same divergence"
    DIFFERENT = "different divergence"
    FIXED = "fixed"
    UNUSABLE = "unusable"
    """The control failed or the case no longer starts: the replay says nothing."""


@dataclass(frozen=True)
class Replay:
    """The result of replaying one entry."""

    entry: Entry
    verdict: ReplayVerdict
    recorded: Signature
    now: Signature | None
    judgement: Judgement
    control: TransferOutcome
    pair: TransferOutcome
    binaries_changed: tuple[str, ...]

    def describe(self) -> str:
        """One line for the user: what was recorded, what happens now."""
        changed = (
            f" [binary changed: {', '.join(self.binaries_changed)}]"
            if self.binaries_changed
            else ""
        )
        if self.verdict is ReplayVerdict.SAME:
            return f"same divergence: {self.recorded}{changed}"
        if self.verdict is ReplayVerdict.DIFFERENT:
            return f"different divergence: recorded {self.recorded!s}, now {self.now!s}{changed}"
        if self.verdict is ReplayVerdict.FIXED:
            return f"fixed: control and pair now agree (recorded {self.recorded}){changed}"
        reason = getattr(self.judgement, "reason", "")
        return f"unusable: {reason}{changed}"


def classify(recorded: Signature, judgement: Judgement) -> ReplayVerdict:
    """How a replay's judgement compares with the signature an entry recorded."""
    now = judgement.signature if isinstance(judgement, Divergence) else None
    if isinstance(judgement, ControlFailed | InvalidCase):
        return ReplayVerdict.UNUSABLE
    if (now or AGREE) == recorded:
        return ReplayVerdict.SAME
    if now is None:
        return ReplayVerdict.FIXED
    return ReplayVerdict.DIFFERENT


def replay(session: Session, entry: Entry, src: QemuBinary, dst: QemuBinary) -> Replay:
    """Run ``entry``'s case again on ``src`` -> ``src`` and ``src`` -> ``dst``.

    The session's settings must trace where the recording did (the fuzz loop traces
    wherever the probe says tracing works), since where loading stopped is part of some
    signatures.
    """
    run = session.run_case(src, dst, entry.case)
    judgement, control, pair = run.judgement, run.control, run.pair
    changed = tuple(
        name for name, ref, binary in (("src", entry.src, src), ("dst", entry.dst, dst))
        if ref.sha256 and ref.sha256 != binary.content_hash()
    )  # fmt: skip
    verdict = classify(entry.signature, judgement)
    now = run.signature
    return Replay(entry, verdict, entry.signature, now, judgement, control, pair, changed)


def rerecord(old: Entry, result: Replay, src: QemuBinary, dst: QemuBinary) -> Path:
    """Record ``result`` as ``old``'s new expected outcome (``regress --update``).

    A fixed entry is kept as a guard that it stays fixed: its signature becomes
    :data:`~fuzz.oracles.AGREE`. The new entry is written (atomically) before the old
    folder is removed, so an interruption loses nothing.
    """
    if old.path is None:
        raise ValueError("rerecord needs an entry read from disk")
    judgement = result.judgement
    new = dc_replace(
        old,
        signature=result.now or AGREE,
        control=result.control,
        pair=result.pair,
        findings=judgement.details if isinstance(judgement, Divergence) else {},
        src=dc_replace(old.src, sha256=src.content_hash()),
        dst=dc_replace(old.dst, sha256=dst.content_hash()),
    )
    path, _ = write_entry(old.path.parent, new, src, dst, replace=True)
    if path != old.path:
        shutil.rmtree(old.path, ignore_errors=True)
    return path
