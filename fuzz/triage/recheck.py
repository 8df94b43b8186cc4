"""Re-checking open findings on binaries they were not recorded on (``fuzz --recheck``).

A maintainer rebuilds a development branch (or Debian rebuilds a suite) under the same
version name and asks which of the open findings it fixes. An entry records the SHA-256 of
each side's binary; an entry whose binary on either side is now another one is *open on a
new binary*. :func:`recheck` replays each such entry through the one case path (as
``repro`` does, traced where the probe says tracing works) and says, per entry, whether its
signature still shows (*same*), another one shows (*different*), or control and pair agree
now (*fixed*). Entries on their recorded binaries are not replayed: nothing changed for
them (``regress`` checks those).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fuzz.core.binary import QemuBinary
from fuzz.corpus.entry import Entry, iter_entries
from fuzz.errors import CorpusError, InvalidInput
from fuzz.run.session import Session
from fuzz.triage.replay import BinaryMatch, ReplayVerdict, replay, side_match
from fuzz.versions.farm import Farm
from fuzz.versions.probe import probed_settings


@dataclass(frozen=True)
class Rechecked:
    """What one open finding does on the binaries that run now."""

    entry: Path
    signature: str
    verdict: ReplayVerdict
    line: str
    """The replay's one-line description (verdict and which binaries moved)."""

    @property
    def fixed(self) -> bool:
        """Whether control and pair now agree."""
        return self.verdict is ReplayVerdict.FIXED


def on_new_binaries(
    corpora: Iterable[Path], farm: Farm, *, skipped: Callable[[str], None] = lambda _m: None
) -> list[tuple[Entry, QemuBinary, QemuBinary]]:
    """Every one-shot entry of ``corpora`` whose source or destination binary differs
    from the one it recorded (:func:`~fuzz.triage.replay.side_match`; an entry recorded without
    a hash has nothing to differ from), with the binaries that run now.

    An entry naming a version this farm does not have, or a corrupt one, is passed to
    ``skipped`` (one line) and left out.
    """
    found = []
    for corpus in corpora:
        for item in iter_entries(corpus):
            if isinstance(item, CorpusError):
                skipped(str(item))
                continue
            try:
                src, dst = farm.get(item.src.name), farm.get(item.dst.name)
            except InvalidInput as err:
                skipped(f"{item.path}: {err}")
                continue
            sides = ((item.src, src), (item.dst, dst))
            if any(side_match(ref.sha256, b.content_hash()) is BinaryMatch.DIFFERENT
                   for ref, b in sides):  # fmt: skip
                found.append((item, src, dst))
    return found


def recheck(
    entries: Sequence[tuple[Entry, QemuBinary, QemuBinary]], farm: Farm,
    *, progress: Callable[[Rechecked], None] = lambda _r: None,
) -> list[Rechecked]:  # fmt: skip
    """Replay each of ``entries`` on its binaries; one :class:`Rechecked` per entry.

    :raise HarnessError: a QEMU could not be started.
    """
    results = []
    for entry, src, dst in entries:
        settings = probed_settings([src, dst], farm.cache_dir)
        with Session(settings) as session:
            result = replay(session, entry, src, dst, cache_dir=farm.cache_dir)
        done = Rechecked(
            entry.path or Path(entry.name), str(entry.signature), result.verdict, result.describe()
        )
        progress(done)
        results.append(done)
    return results
