"""Every corpus entry is a test: replaying it must give the signature it recorded.

The corpus is ``corpus/`` at the top of the checkout, or ``$MIGFUZZ_CORPUS``. Test ids are
the entry folder names, so a CI log names the entry that changed and how. After a
deliberate change, ``migfuzz regress --update`` re-records.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fuzz.corpus import entry_folders, load_entry
from fuzz.oracles import default_oracles
from fuzz.probe import capabilities
from fuzz.replay import ReplayVerdict, replay

CORPUS = Path(os.environ.get("MIGFUZZ_CORPUS", Path(__file__).parents[2] / "corpus"))
ENTRIES = entry_folders(CORPUS)

pytestmark = pytest.mark.qemu


@pytest.mark.parametrize("folder", ENTRIES, ids=[f.name for f in ENTRIES])
def test_entry_replays_as_recorded(folder: Path, farm) -> None:
    entry = load_entry(folder)
    result = replay(
        entry,
        farm.get(entry.src.name),
        farm.get(entry.dst.name),
        oracles=default_oracles(),
        trace_load=lambda b: capabilities(b, farm.cache_dir).trace_works,
    )
    assert result.verdict is ReplayVerdict.SAME, f"{folder.name}: {result.describe()}"
