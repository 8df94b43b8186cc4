"""Replaying a corpus entry: same divergence, a different one, or fixed.

Used by ``migfuzz repro`` (one entry, maybe on other binaries), ``migfuzz regress`` (every
entry, for CI) and the pytest corpus collector. The case is re-run from scratch through the
one case path the fuzz loop recorded it with (:mod:`fuzz.run.engine`): saved on the source
again, restored and re-saved on the source (control) and the destination, judged by the
same judge -- so a state or read-back finding replays as itself, not as *fixed*.

Which binaries a replay ran on matters as much as what it found. Debian rebuilds a suite
under the same version name, so ``11.1`` today may not be the ``11.1`` an entry was
recorded on. The rule (:func:`regress_kind`, :func:`is_failure`): on the exact binaries
recorded (both SHA-256s equal) a changed outcome is a regression; on another binary of the
same name, or one the entry did not record, it is *changed with the binary* -- reported,
and a failure only when the caller is strict.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from enum import StrEnum
from pathlib import Path

from fuzz.core.binary import QemuBinary
from fuzz.core.outcome import TransferOutcome
from fuzz.corpus.entry import Entry, VersionRef, write_entry
from fuzz.judge.oracles import AGREE, ControlFailed, Divergence, InvalidCase, Judgement, Signature
from fuzz.run.session import Session
from fuzz.versions.probe import capabilities

#: Hex digits of a SHA-256 shown to people (as git shows commits).
SHORT_HASH = 12


class ReplayVerdict(StrEnum):
    """How a replay compares with what the entry recorded."""

    SAME = "same divergence"
    DIFFERENT = "different divergence"
    FIXED = "fixed"
    UNUSABLE = "unusable"
    """The control failed or the case no longer starts: the replay says nothing."""


class BinaryMatch(StrEnum):
    """Whether a replay ran on the binaries an entry was recorded on."""

    RECORDED = "recorded binary"
    """Every side's SHA-256 equals the recorded one: a change is a regression."""
    DIFFERENT = "different binary"
    """Some side's binary differs from the recorded one (same version name, new build)."""
    UNKNOWN = "binary unknown"
    """Some side was recorded without a SHA-256; treated as :attr:`DIFFERENT`."""


def side_match(recorded_sha256: str, current_sha256: str) -> BinaryMatch:
    """How one side's current binary compares with the one recorded (hashes, any case)."""
    if not recorded_sha256:
        return BinaryMatch.UNKNOWN
    if recorded_sha256.lower() == current_sha256.lower():
        return BinaryMatch.RECORDED
    return BinaryMatch.DIFFERENT


def combined_match(sides: tuple[BinaryMatch, ...]) -> BinaryMatch:
    """One answer for several sides: any different binary wins, then any unknown one."""
    for kind in (BinaryMatch.DIFFERENT, BinaryMatch.UNKNOWN):
        if kind in sides:
            return kind
    return BinaryMatch.RECORDED


class RegressKind(StrEnum):
    """What a replay means for ``regress`` and the corpus tier; each is counted apart."""

    SAME = "same"
    CHANGED_WITH_BINARY = "changed with the binary"
    """The outcome changed, but so did a binary: Debian moved, not necessarily our code."""
    CHANGED = "changed on the recorded binary"
    """Fixed or a different divergence on the very binaries recorded: a regression."""
    UNUSABLE = "unusable"
    """The replay said nothing (control failed, case no longer starts) on the recorded
    binaries."""


def regress_kind(verdict: ReplayVerdict, match: BinaryMatch) -> RegressKind:
    """Classify a replay by its verdict and by whether its binaries are the recorded ones.

    Any outcome other than the recorded one -- unusable included -- on another binary
    (or an unrecorded one) is :attr:`RegressKind.CHANGED_WITH_BINARY`: the entry cannot
    tell a regression from a rebuilt package there.
    """
    if verdict is ReplayVerdict.SAME:
        return RegressKind.SAME
    if match is not BinaryMatch.RECORDED:
        return RegressKind.CHANGED_WITH_BINARY
    if verdict is ReplayVerdict.UNUSABLE:
        return RegressKind.UNUSABLE
    return RegressKind.CHANGED


def is_failure(kind: RegressKind, *, strict: bool = False) -> bool:
    """Whether ``kind`` fails ``regress``/the corpus tier; ``strict`` fails binary changes too."""
    if kind is RegressKind.CHANGED_WITH_BINARY:
        return strict
    return kind is not RegressKind.SAME


@dataclass(frozen=True)
class BinaryCheck:
    """One side of a replay: the binary an entry recorded and the one that ran now."""

    side: str
    """``"src"`` or ``"dst"``."""
    recorded: VersionRef
    current: VersionRef

    @property
    def match(self) -> BinaryMatch:
        """Whether this side ran on the recorded binary."""
        return side_match(self.recorded.sha256, self.current.sha256)

    def describe(self) -> str:
        """``dst 11.1: recorded 67288b1c1db3 (QEMU ... 11.1.3 ...), now 0123abcd4567 (...)``."""

        def one(ref: VersionRef) -> str:
            digest = ref.sha256[:SHORT_HASH] or "no sha256"
            return f"{digest} ({ref.version_line or 'no version line'})"

        name = self.recorded.name
        if self.current.name != name:
            name += f" (now {self.current.name})"
        return f"{self.side} {name}: recorded {one(self.recorded)}, now {one(self.current)}"


class ReplayResult:
    """What every replay result shares: its verdict, the binaries it ran on, and from
    those two the regress classification (:class:`Replay`, and the stateful one in
    :mod:`fuzz.stateful.replay`)."""

    verdict: ReplayVerdict
    binaries: tuple[BinaryCheck, ...]

    @property
    def binary_match(self) -> BinaryMatch:
        """Whether the replay ran on the recorded binaries (every side or version)."""
        return combined_match(tuple(b.match for b in self.binaries))

    @property
    def kind(self) -> RegressKind:
        """The regress classification of this replay (see :func:`regress_kind`)."""
        return regress_kind(self.verdict, self.binary_match)

    @property
    def binaries_changed(self) -> tuple[BinaryCheck, ...]:
        """The sides (or versions) that did not run on their recorded binary, or recorded
        none."""
        return tuple(b for b in self.binaries if b.match is not BinaryMatch.RECORDED)


@dataclass(frozen=True)
class Replay(ReplayResult):
    """The result of replaying one entry."""

    entry: Entry
    verdict: ReplayVerdict
    recorded: Signature
    now: Signature | None
    judgement: Judgement
    control: TransferOutcome
    pair: TransferOutcome
    binaries: tuple[BinaryCheck, BinaryCheck]

    def describe(self) -> str:
        """One line for the user: what was recorded, what happens now."""
        changed = "; ".join(f"{b.side} {b.match}" for b in self.binaries_changed)
        return self.verdict_line() + (f" [{changed}]" if changed else "")

    def verdict_line(self) -> str:
        """The verdict alone: *same*, *different*, *fixed* or *unusable*, with signatures."""
        if self.verdict is ReplayVerdict.SAME:
            return f"same divergence: {self.recorded}"
        if self.verdict is ReplayVerdict.DIFFERENT:
            return f"different divergence: recorded {self.recorded!s}, now {self.now!s}"
        if self.verdict is ReplayVerdict.FIXED:
            return f"fixed: control and pair now agree (recorded {self.recorded})"
        reason = getattr(self.judgement, "reason", "")
        return f"unusable: {reason}"

    def describe_binary_change(self) -> str:
        """For *changed with the binary*: which binaries moved, and both outcomes.

        E.g. ``dst 11.1: recorded 67288b1c1db3 (QEMU emulator version 11.1.3 ...), now
        0123456789ab (...); recorded signature: refused-on-load: ..., now: fixed (...)``.
        """
        sides = "; ".join(b.describe() for b in self.binaries_changed) or "binaries as recorded"
        return f"{sides}; recorded signature: {self.recorded}, now: {self.current_outcome()}"

    def current_outcome(self) -> str:
        """What the replay gave, without the recorded signature: the verdict and its detail."""
        if self.verdict is ReplayVerdict.DIFFERENT:
            return f"different divergence: {self.now!s}"
        if self.verdict is ReplayVerdict.FIXED:
            return "fixed (control and pair agree)"
        return self.verdict_line()


def classify(recorded: Signature, judgement: Judgement) -> ReplayVerdict:
    """How a replay's judgement compares with the signature an entry recorded."""
    now = judgement.signature if isinstance(judgement, Divergence) else None
    if isinstance(judgement, ControlFailed | InvalidCase):
        return ReplayVerdict.UNUSABLE
    causes = judgement.signatures() if isinstance(judgement, Divergence) else (AGREE,)
    if recorded in causes:  # the recorded root cause is still one of the case's causes
        return ReplayVerdict.SAME
    if now is None:
        return ReplayVerdict.FIXED
    return ReplayVerdict.DIFFERENT


def current_ref(binary: QemuBinary, cache_dir: Path | None = None) -> VersionRef:
    """``binary`` as an entry would record it now: name, SHA-256 and version line.

    The version line comes from the (cached) capability probe when ``cache_dir`` is
    given, and is left empty otherwise.

    :raise HarnessError: the binary could not be probed.
    """
    line = capabilities(binary, cache_dir).version_line if cache_dir is not None else ""
    return VersionRef(binary.name, binary.content_hash(), line)


def replay(
    session: Session,
    entry: Entry,
    src: QemuBinary,
    dst: QemuBinary,
    *,
    cache_dir: Path | None = None,
) -> Replay:
    """Run ``entry``'s case again on ``src`` -> ``src`` and ``src`` -> ``dst``.

    The session's settings must trace where the recording did (the fuzz loop traces
    wherever the probe says tracing works), since where loading stopped is part of some
    signatures. ``cache_dir`` (the farm's) lets the result name the current binaries'
    version lines, from their cached probes.

    :raise HarnessError: a QEMU could not be started or probed.
    """
    run = session.run_case(src, dst, entry.case)
    judgement, control, pair = run.judgement, run.control, run.pair
    binaries = (
        BinaryCheck("src", entry.src, current_ref(src, cache_dir)),
        BinaryCheck("dst", entry.dst, current_ref(dst, cache_dir)),
    )
    verdict = classify(entry.signature, judgement)
    now = run.signature
    return Replay(entry, verdict, entry.signature, now, judgement, control, pair, binaries)


def rerecord(old: Entry, result: Replay, src: QemuBinary, dst: QemuBinary) -> Path:
    """Record ``result`` as ``old``'s new expected outcome (``regress --update``).

    A fixed entry is kept as a guard that it stays fixed: its signature becomes
    :data:`~fuzz.judge.oracles.AGREE`. The new entry is written (atomically) before the old
    folder is removed, so an interruption loses nothing. The versions are recorded as
    the binaries that ran (SHA-256 and, when the replay knew it, version line).
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
        src=_rerecorded_ref(old.src, result.binaries[0].current, src),
        dst=_rerecorded_ref(old.dst, result.binaries[1].current, dst),
    )
    path, _ = write_entry(old.path.parent, new, src, dst, replace=True)
    if path != old.path:
        shutil.rmtree(old.path, ignore_errors=True)
    return path


def _rerecorded_ref(old: VersionRef, current: VersionRef, binary: QemuBinary) -> VersionRef:
    """``old`` moved to ``binary``: its hash and version line (unknown stays empty)."""
    digest = binary.content_hash()
    line = current.version_line or (old.version_line if digest == old.sha256 else "")
    return dc_replace(old, sha256=digest, version_line=line)
