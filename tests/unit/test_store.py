"""The shared corpus store: one claim per signature across processes, stale claims, release."""

from __future__ import annotations

import multiprocessing
import os
import socket
from pathlib import Path

from fuzz.corpus.store import CorpusStore
from fuzz.judge.oracles import Signature

SIG = Signature("refused-on-load", "cpreg only in incoming stream: ID_AA64ISAR0_EL1")


def _claim_in_child(root: str, results) -> None:  # type: ignore[no-untyped-def]
    results.put(CorpusStore(Path(root)).claim(SIG))


def test_only_one_process_wins_a_claim(tmp_path) -> None:
    store = CorpusStore(tmp_path)
    assert store.claim(SIG)
    assert store.claim(SIG)  # the holder may ask again
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=_claim_in_child, args=(str(tmp_path), results))
    child.start()
    child.join(30)
    assert results.get(timeout=5) is False


def test_a_dead_owners_claim_is_taken_over(tmp_path) -> None:
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=_claim_in_child, args=(str(tmp_path), results))
    child.start()
    child.join(30)
    assert results.get(timeout=5) is True  # the child won, then died holding it
    assert CorpusStore(tmp_path).claim(SIG)


def test_another_hosts_claim_is_never_taken_over(tmp_path) -> None:
    store = CorpusStore(tmp_path)
    path = tmp_path / ".claims" / store.path_for(SIG).name
    path.parent.mkdir()
    path.write_text(f"not-{socket.gethostname()} {os.getpid() + 10**6}")
    assert not store.claim(SIG)


def test_release_leaves_nothing_but_entries(tmp_path) -> None:
    store = CorpusStore(tmp_path)
    assert store.claim(SIG)
    store.release(SIG)
    assert list(tmp_path.iterdir()) == []


def test_a_signature_with_an_entry_is_not_claimed(tmp_path) -> None:
    store = CorpusStore(tmp_path)
    entry = store.path_for(SIG)
    entry.mkdir()
    (entry / "outcome.json").write_text("{}")
    assert store.has(SIG)
    assert not store.claim(SIG)
