"""The version-aware replay rule, without QEMU (issue 14 item 2).

A changed outcome fails only on the exact binaries an entry recorded; on another build of
the same version name, or when the entry recorded no SHA-256, it is *changed with the
binary*, a failure only when strict. The entries are the committed ones; the judgements
and current binaries are made up, which is the point: the rule is pure logic.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from fuzz.corpus.entry import Entry, VersionRef, load_entry
from fuzz.judge.oracles import AGREE, Agree, ControlFailed, Divergence, Judgement, Signature
from fuzz.triage.replay import (
    BinaryCheck,
    BinaryMatch,
    RegressKind,
    Replay,
    ReplayVerdict,
    classify,
    combined_match,
    is_failure,
    regress_kind,
    side_match,
)

ENTRY = (
    Path(__file__).parents[2]
    / "corpus"
    / "refused-on-load-cpreg-only-in-incoming-stream-p15-6-880406ec"
)
A = "a" * 64
B = "b" * 64


@pytest.mark.parametrize(
    ("recorded", "current", "expected"),
    [
        (A, A, BinaryMatch.RECORDED),
        (A.upper(), A, BinaryMatch.RECORDED),
        (A, B, BinaryMatch.DIFFERENT),
        ("", A, BinaryMatch.UNKNOWN),
    ],
)
def test_one_side_is_matched_by_its_sha256(
    recorded: str, current: str, expected: BinaryMatch
) -> None:
    assert side_match(recorded, current) is expected


@pytest.mark.parametrize(
    ("sides", "expected"),
    [
        ((BinaryMatch.RECORDED, BinaryMatch.RECORDED), BinaryMatch.RECORDED),
        ((BinaryMatch.RECORDED, BinaryMatch.DIFFERENT), BinaryMatch.DIFFERENT),
        ((BinaryMatch.DIFFERENT, BinaryMatch.RECORDED), BinaryMatch.DIFFERENT),
        ((BinaryMatch.UNKNOWN, BinaryMatch.RECORDED), BinaryMatch.UNKNOWN),
        ((BinaryMatch.UNKNOWN, BinaryMatch.DIFFERENT), BinaryMatch.DIFFERENT),
    ],
)
def test_both_sides_must_be_the_recorded_binaries(
    sides: tuple[BinaryMatch, BinaryMatch], expected: BinaryMatch
) -> None:
    assert combined_match(sides) is expected


V, M = ReplayVerdict, BinaryMatch
K = RegressKind


# verdict, binaries -> kind; failure without and with strict
@pytest.mark.parametrize(
    ("verdict", "match", "kind", "fails", "fails_strict"),
    [
        (V.SAME, M.RECORDED, K.SAME, False, False),
        (V.SAME, M.DIFFERENT, K.SAME, False, False),
        (V.SAME, M.UNKNOWN, K.SAME, False, False),
        (V.DIFFERENT, M.RECORDED, K.CHANGED, True, True),
        (V.FIXED, M.RECORDED, K.CHANGED, True, True),
        (V.UNUSABLE, M.RECORDED, K.UNUSABLE, True, True),
        (V.DIFFERENT, M.DIFFERENT, K.CHANGED_WITH_BINARY, False, True),
        (V.FIXED, M.DIFFERENT, K.CHANGED_WITH_BINARY, False, True),
        (V.UNUSABLE, M.DIFFERENT, K.CHANGED_WITH_BINARY, False, True),
        (V.DIFFERENT, M.UNKNOWN, K.CHANGED_WITH_BINARY, False, True),
        (V.FIXED, M.UNKNOWN, K.CHANGED_WITH_BINARY, False, True),
    ],
)  # fmt: skip
def test_a_change_fails_only_on_the_recorded_binaries_unless_strict(
    verdict: ReplayVerdict, match: BinaryMatch, kind: RegressKind, fails: bool, fails_strict: bool
) -> None:
    assert regress_kind(verdict, match) is kind
    assert is_failure(kind) is fails
    assert is_failure(kind, strict=True) is fails_strict


def _replay(entry: Entry, judgement: Judgement, dst_now: VersionRef) -> Replay:
    """A replay of ``entry`` as if it ran on the recorded source and on ``dst_now``."""
    now = judgement.signature if isinstance(judgement, Divergence) else None
    return Replay(
        entry=entry,
        verdict=classify(entry.signature, judgement),
        recorded=entry.signature,
        now=now,
        judgement=judgement,
        control=entry.control,
        pair=entry.pair,
        binaries=(BinaryCheck("src", entry.src, entry.src), BinaryCheck("dst", entry.dst, dst_now)),
    )


def test_a_replay_classifies_itself_and_names_both_binaries_and_both_outcomes() -> None:
    entry = load_entry(ENTRY)
    other = Signature("refused-on-load", "cpreg only in incoming stream: SCTLR_EL1")
    new_build = VersionRef(entry.dst.name, B, "QEMU emulator version 11.1.4 Debian 1:11.1.4+ds-1")

    same_binary = _replay(entry, Divergence(other, {}), entry.dst)
    assert same_binary.binary_match is BinaryMatch.RECORDED
    assert same_binary.kind is RegressKind.CHANGED
    assert same_binary.binaries_changed == ()

    moved = _replay(entry, Divergence(other, {}), new_build)
    assert moved.kind is RegressKind.CHANGED_WITH_BINARY
    line = moved.describe_binary_change()
    assert (
        f"dst {entry.dst.name}: recorded {entry.dst.sha256[:12]} ({entry.dst.version_line})" in line
    )
    assert f"now {B[:12]} ({new_build.version_line})" in line
    assert f"recorded signature: {entry.signature}" in line
    assert line.endswith(f"now: different divergence: {other}")
    assert "src " not in line  # the source ran on its recorded binary
    assert moved.describe().endswith("[dst different binary]")

    fixed = _replay(entry, Agree(), new_build)
    assert fixed.kind is RegressKind.CHANGED_WITH_BINARY
    assert fixed.describe_binary_change().endswith("now: fixed (control and pair agree)")

    unrecorded = replace(entry, dst=replace(entry.dst, sha256=""))
    unknown = _replay(unrecorded, ControlFailed("control refused"), entry.dst)
    assert unknown.binary_match is BinaryMatch.UNKNOWN
    assert unknown.kind is RegressKind.CHANGED_WITH_BINARY
    assert f"dst {entry.dst.name}: recorded no sha256" in unknown.describe_binary_change()
    assert "now: unusable: control refused" in unknown.describe_binary_change()


def test_an_entry_recorded_as_fixed_that_stays_fixed_is_the_same() -> None:
    entry = replace(load_entry(ENTRY), signature=AGREE)
    assert _replay(entry, Agree(), entry.dst).kind is RegressKind.SAME
