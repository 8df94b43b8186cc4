"""Every corpus entry is a test: replayed on the binaries it recorded, it gives its signature.

One-shot entries (``case.json``) replay through the one case path; stateful entries
(``sequence.json``) take their steps again on live processes (:mod:`fuzz.stateful.replay`).

The corpus is ``corpus/`` at the top of the checkout, or ``$MIGFUZZ_CORPUS``; finding no
entry there fails the tier (a wrong path must not pass as nothing to check). Test ids are
the entry folder names, so a CI log names the entry that changed and how. After a
deliberate change, ``migfuzz regress --update`` re-records.

The rule is ``migfuzz regress``'s (:func:`fuzz.triage.replay.is_failure`): a changed outcome on
the exact binaries an entry recorded fails; on another build of the same version name (or
an entry that recorded no SHA-256) it is *changed with the binary* -- a warning in the
summary and a ``binary_changed`` property in the JUnit XML, not a failure -- unless
``MIGFUZZ_STRICT=1``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from fuzz.corpus.entry import entry_folders
from fuzz.run.session import Session
from fuzz.stateful.replay import SequenceEntry, SequenceReplay, load_any_entry, replay_sequence
from fuzz.triage.replay import RegressKind, Replay, is_failure, replay
from fuzz.versions.farm import Farm
from fuzz.versions.probe import probed_settings

CORPUS = Path(os.environ.get("MIGFUZZ_CORPUS", Path(__file__).parents[2] / "corpus"))
ENTRIES = entry_folders(CORPUS)
STRICT = os.environ.get("MIGFUZZ_STRICT", "") == "1"

pytestmark = pytest.mark.qemu


def test_the_corpus_has_entries() -> None:
    """An empty or mistyped ``$MIGFUZZ_CORPUS`` must fail the tier, not pass it as a skip."""
    if not ENTRIES:
        where = "$MIGFUZZ_CORPUS" if "MIGFUZZ_CORPUS" in os.environ else "the default corpus"
        state = "is not a folder" if not CORPUS.is_dir() else "has no entry folder"
        pytest.fail(f"no corpus entry to replay: {where} {CORPUS} {state}", pytrace=False)


class BinaryChangedWarning(UserWarning):
    """An entry's outcome changed, but on another binary than the one it recorded."""


# pyproject turns warnings into errors; this one is a report, so it is shown, not raised.
@pytest.mark.filterwarnings("always::tests.corpus.test_corpus_regression.BinaryChangedWarning")
@pytest.mark.parametrize("folder", ENTRIES, ids=[f.name for f in ENTRIES])
def test_entry_replays_as_recorded(
    folder: Path, farm: Farm, record_property: Callable[[str, object], None]
) -> None:
    entry = load_any_entry(folder)
    names = entry.versions if isinstance(entry, SequenceEntry) else [entry.src.name, entry.dst.name]
    binaries = {name: farm.get(name) for name in names}
    settings = probed_settings(list(binaries.values()), farm.cache_dir)
    result: Replay | SequenceReplay
    with Session(settings) as session:
        if isinstance(entry, SequenceEntry):
            result = replay_sequence(session, entry, binaries, cache_dir=farm.cache_dir)
        else:
            src, dst = binaries[entry.src.name], binaries[entry.dst.name]
            result = replay(session, entry, src, dst, cache_dir=farm.cache_dir)
    kind = result.kind
    if kind is RegressKind.CHANGED_WITH_BINARY:
        line = f"{folder.name}: changed with the binary: {result.describe_binary_change()}"
        record_property("binary_changed", line)
        assert not is_failure(kind, strict=STRICT), f"{line} (MIGFUZZ_STRICT=1)"
        warnings.warn(line, BinaryChangedWarning, stacklevel=1)
        return
    assert not is_failure(kind), f"{folder.name}: {kind}: {result.describe()}"
