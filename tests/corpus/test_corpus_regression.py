"""Every corpus entry is a test: replaying it must give the signature it recorded.

The corpus is ``corpus/`` at the top of the checkout, or ``$MIGFUZZ_CORPUS``; finding no
entry there fails the tier (a wrong path must not pass as nothing to check). Test ids are
the entry folder names, so a CI log names the entry that changed and how. After a
deliberate change, ``migfuzz regress --update`` re-records.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fuzz.corpus import entry_folders, load_entry
from fuzz.probe import traced_versions
from fuzz.replay import ReplayVerdict, replay
from fuzz.session import Session
from fuzz.settings import RunSettings

CORPUS = Path(os.environ.get("MIGFUZZ_CORPUS", Path(__file__).parents[2] / "corpus"))
ENTRIES = entry_folders(CORPUS)

pytestmark = pytest.mark.qemu


def test_the_corpus_has_entries() -> None:
    """An empty or mistyped ``$MIGFUZZ_CORPUS`` must fail the tier, not pass it as a skip."""
    if not ENTRIES:
        where = "$MIGFUZZ_CORPUS" if "MIGFUZZ_CORPUS" in os.environ else "the default corpus"
        state = "is not a folder" if not CORPUS.is_dir() else "has no entry folder"
        pytest.fail(f"no corpus entry to replay: {where} {CORPUS} {state}", pytrace=False)


@pytest.mark.parametrize("folder", ENTRIES, ids=[f.name for f in ENTRIES])
def test_entry_replays_as_recorded(folder: Path, farm) -> None:
    entry = load_entry(folder)
    src, dst = farm.get(entry.src.name), farm.get(entry.dst.name)
    settings = RunSettings(trace_versions=traced_versions([src, dst], farm.cache_dir))
    with Session(settings) as session:
        result = replay(session, entry, src, dst)
    assert result.verdict is ReplayVerdict.SAME, f"{folder.name}: {result.describe()}"
