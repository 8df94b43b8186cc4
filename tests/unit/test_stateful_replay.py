"""Stateful entries on disk and the verdict of their replay (pure parts; QEMU runs are in
``tests/qemu/test_stateful.py`` and the corpus tier)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from fuzz.core.case import MachineConfig
from fuzz.corpus.entry import VersionRef, entry_folders
from fuzz.errors import CorpusError
from fuzz.judge.oracles import Signature
from fuzz.stateful.model import Action, StatefulSequence, Step
from fuzz.stateful.replay import (
    Divergent,
    SequenceReplay,
    classify_sequence,
    load_any_entry,
    load_sequence_entry,
)
from fuzz.stateful.repro import repro_script
from fuzz.triage.replay import BinaryCheck, RegressKind, ReplayVerdict
from strategies.cases import rebuild_guest

OPS = ({"op": "memory", "offset": "0x10", "count": 2, "value": "0x1111", "step": "0x1"},)
RECORDED = Signature("history", "read-back after the load")
STEPS = (
    Step(Action.START, 0, version="11.1", guest=0),
    Step(Action.RUN, 0),
    Step(Action.SAVE, 0, snapshot=0),
    Step(Action.START, 1, version="11.1"),
    Step(Action.LOAD, 1, snapshot=0, read_back=True),
)


def _write_entry(folder: Path) -> Path:
    sequence = StatefulSequence(
        signature=RECORDED, config=MachineConfig("virt-11.1", "cortex-a57"), guests=(OPS,),
        steps=STEPS, failing_step=4,
        versions={"11.1": {"sha256": "ab" * 32, "version_line": "QEMU emulator version 11.1.3"}},
    )  # fmt: skip
    (folder / "guests").mkdir(parents=True)
    (folder / "sequence.json").write_text(sequence.dumps())
    (folder / "guests" / "g0.bin").write_bytes(rebuild_guest(OPS, 1).image)
    (folder / "empty.qcow2").write_bytes(b"QFI\xfb")
    return folder


def test_a_written_entry_reads_back_with_its_guests(tmp_path: Path) -> None:
    entry = load_sequence_entry(_write_entry(tmp_path / "e"))
    assert entry.versions == ["11.1"]
    assert entry.guests[0].image == rebuild_guest(OPS, 1).image
    assert entry.recorded_ref("11.1").sha256 == "ab" * 32
    assert entry.recorded_ref("7.2") == VersionRef("7.2", "", "")


def test_load_any_entry_and_entry_folders_see_stateful_entries(tmp_path: Path) -> None:
    folder = _write_entry(tmp_path / "corpus" / "history-x")
    assert entry_folders(tmp_path / "corpus") == [folder]
    assert entry_folders(folder) == [folder]  # an entry folder named on its own
    assert load_any_entry(folder).sequence.signature == RECORDED  # type: ignore[union-attr]


def test_a_guest_image_that_its_operations_do_not_build_is_refused(tmp_path: Path) -> None:
    folder = _write_entry(tmp_path / "e")
    (folder / "guests" / "g0.bin").write_bytes(b"\0" * 64)
    with pytest.raises(CorpusError, match=r"g0\.bin: does not match"):
        load_sequence_entry(folder)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / "sequence.json").write_text("{not json"), "sequence.json"),
        (lambda f: (f / "empty.qcow2").unlink(), "empty.qcow2: missing"),
        (lambda f: (f / "guests" / "g0.bin").unlink(), "g0.bin: cannot read"),
        (
            lambda f: (f / "sequence.json").write_text(
                json.dumps({**json.loads((f / "sequence.json").read_text()), "format": 9})
            ),
            "format 9",
        ),
    ],
    ids=["bad-json", "no-template", "no-guest", "format"],
)
def test_a_damaged_entry_is_one_corpus_error(
    tmp_path: Path, damage: Callable[[Path], object], message: str
) -> None:
    folder = _write_entry(tmp_path / "e")
    damage(folder)
    with pytest.raises(CorpusError, match=message):
        load_sequence_entry(folder)


def test_the_verdict_compares_the_first_divergent_step_with_the_recorded_signature() -> None:
    other = Signature("history", "load outcome: one-shot completed, after history refused")
    assert classify_sequence(RECORDED, None) is ReplayVerdict.FIXED
    assert classify_sequence(RECORDED, Divergent(4, RECORDED, "a", "b")) is ReplayVerdict.SAME
    assert classify_sequence(RECORDED, Divergent(4, other, "a", "b")) is ReplayVerdict.DIFFERENT


def test_a_fixed_sequence_on_another_binary_is_changed_with_the_binary(tmp_path: Path) -> None:
    entry = load_sequence_entry(_write_entry(tmp_path / "e"))
    recorded = entry.recorded_ref("11.1")
    same = BinaryCheck("version", recorded, recorded)
    moved = BinaryCheck("version", recorded, VersionRef("11.1", "cd" * 32, "QEMU 11.1.4"))
    fixed_here = SequenceReplay(entry, ReplayVerdict.FIXED, None, (same,))
    assert fixed_here.kind is RegressKind.CHANGED
    assert "fixed" in fixed_here.describe()
    fixed_elsewhere = SequenceReplay(entry, ReplayVerdict.FIXED, None, (moved,))
    assert fixed_elsewhere.kind is RegressKind.CHANGED_WITH_BINARY
    assert "cdcdcdcdcdcd" in fixed_elsewhere.describe_binary_change()
    same_again = SequenceReplay(
        entry, ReplayVerdict.SAME, Divergent(4, RECORDED, "a", "b"), (same,)
    )
    assert same_again.kind is RegressKind.SAME
    assert "(step 4)" in same_again.describe()


def test_the_committed_sequence_entry_reads_and_its_repro_script_is_the_one_generated() -> None:
    folder = Path(__file__).parents[2] / "corpus" / "history-read-back-after-the-load-b70bac23"
    entry = load_sequence_entry(folder)
    assert entry.sequence.steps[entry.sequence.failing_step].action is Action.LOAD
    assert repro_script(entry.sequence, entry.guests) == (folder / "repro.sh").read_text()
