"""Stateful entries go through the corpus store: claimed while written, atomic, released."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from fuzz.core.case import MachineConfig
from fuzz.corpus.store import CorpusStore
from fuzz.errors import StorageError
from fuzz.judge.oracles import Signature
from fuzz.stateful.model import Action, StatefulSequence, Step
from fuzz.stateful.replay import load_sequence_entry
from fuzz.stateful.repro import repro_script, write_entry
from strategies.cases import rebuild_guest

SIG = Signature("history", "read-back after the load")
OPS = ({"op": "memory", "offset": "0x10", "count": 2, "value": "0x1111", "step": "0x1"},)
SEQUENCE = StatefulSequence(
    signature=SIG, config=MachineConfig("virt-11.1", "cortex-a57"), guests=(OPS,),
    steps=(
        Step(Action.START, 0, version="11.1", guest=0), Step(Action.RUN, 0),
        Step(Action.SAVE, 0, snapshot=0), Step(Action.START, 1, version="11.1"),
        Step(Action.LOAD, 1, snapshot=0, read_back=True),
    ),
    failing_step=4,
)  # fmt: skip


def _files(tmp_path: Path) -> tuple[Path, Path]:
    template = tmp_path / "empty.qcow2"
    template.write_bytes(b"QFI\xfb")
    snapshot = tmp_path / "s0.qcow2"
    snapshot.write_bytes(b"QFI\xfbs0")
    return template, snapshot


def test_a_stateful_entry_written_through_the_store_reads_back_as_written(
    tmp_path: Path,
) -> None:
    template, snapshot = _files(tmp_path)
    corpus = tmp_path / "corpus"
    guests = {0: rebuild_guest(OPS, 1)}
    path = write_entry(CorpusStore(corpus), SEQUENCE, guests, template, {0: snapshot})
    assert path == corpus / "history-read-back-after-the-load-b70bac23"
    assert sorted(p.name for p in corpus.iterdir()) == [path.name]  # no claim, no dot-folder
    entry = load_sequence_entry(path)
    assert entry.sequence == SEQUENCE
    assert (path / "repro.sh").read_text() == repro_script(SEQUENCE, guests)
    assert (path / "repro.sh").stat().st_mode & 0o111
    assert (path / "snapshots" / "s0.qcow2").read_bytes() == b"QFI\xfbs0"
    assert (path / "guests" / "g0.s").is_file()


def _hold_claim(root: str, held: Any, done: Any) -> None:
    assert CorpusStore(Path(root)).claim_again(SIG)
    held.set()
    done.wait(30)


def test_a_claim_held_by_another_live_process_refuses_the_second_writer(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    held, done = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold_claim, args=(str(tmp_path), held, done))
    child.start()
    try:
        assert held.wait(30)
        written: list[Path] = []
        assert CorpusStore(tmp_path).save_folder(SIG, written.append) is None
        assert written == []  # the writer never ran
        assert [p.name for p in tmp_path.iterdir()] == [".claims"]  # the holder's, kept
    finally:
        done.set()
        child.join(30)
    # Its holder gone, the claim is stale: the next writer takes it over.
    assert CorpusStore(tmp_path).save_folder(SIG, lambda f: (f / "x").write_text("x"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [CorpusStore(tmp_path).path_for(SIG).name]


@pytest.mark.parametrize("existing", [False, True])
@pytest.mark.parametrize("crash", [OSError("disk full"), KeyboardInterrupt()], ids=repr)
def test_a_crash_mid_write_leaves_no_half_entry(
    tmp_path: Path, existing: bool, crash: BaseException
) -> None:
    store = CorpusStore(tmp_path)
    if existing:
        store.save_folder(SIG, lambda f: (f / "sequence.json").write_text("old"))
    before = {p.name: p.read_bytes() for p in store.path_for(SIG).glob("*")}

    def half(folder: Path) -> None:
        (folder / "sequence.json").write_text("new")
        (folder / "guests").mkdir()
        # Mid-write, the entry is a dot-folder beside the others, never under its name.
        assert folder.parent == tmp_path and folder.name.startswith(".")
        raise crash

    expected = StorageError if isinstance(crash, OSError) else KeyboardInterrupt
    with pytest.raises(expected):
        store.save_folder(SIG, half)
    names = [store.path_for(SIG).name] if existing else []
    assert sorted(p.name for p in tmp_path.iterdir()) == names  # claim released too
    assert {p.name: p.read_bytes() for p in store.path_for(SIG).glob("*")} == before


def test_a_rewrite_replaces_the_entry_whole(tmp_path: Path) -> None:
    store = CorpusStore(tmp_path)
    store.save_folder(SIG, lambda f: (f / "old-only").write_text("1"))
    path = store.save_folder(SIG, lambda f: (f / "sequence.json").write_text("2"))
    assert path is not None
    assert sorted(p.name for p in path.iterdir()) == ["sequence.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_a_claim_this_process_held_before_is_kept(tmp_path: Path) -> None:
    store = CorpusStore(tmp_path)
    assert store.claim_again(SIG)
    assert store.save_folder(SIG, lambda f: (f / "x").write_text("x")) is not None
    assert (tmp_path / ".claims" / store.path_for(SIG).name).is_file()
