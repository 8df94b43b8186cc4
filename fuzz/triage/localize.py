"""Which system registers make a destination refuse a source's stream.

Versions 5.2-10.0 refuse a foreign ``cpu`` section with "error while loading state for
instance 0x0 of device 'cpu'", naming no register. Localization names them:

1. the destination saves the same case itself, so we know its own cpreg list;
2. every difference between the two lists becomes a patch (set / drop / insert, see
   :mod:`fuzz.stream.patch`);
3. if the source's stream with *all* patches loads on the destination, delta debugging
   over the patches finds a 1-minimal set that still makes it load: those registers are
   responsible, reported with both values.

Each test is one real restore (about 50-80 ms), so the search is bounded by ``max_tests``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case
from fuzz.core.outcome import Verdict
from fuzz.errors import InvalidInput
from fuzz.run.runner import FreshDestination, FreshSource
from fuzz.run.session import Session
from fuzz.stream.decode import decode_stream
from fuzz.stream.patch import (
    CpregPatch,
    apply_patches,
    cpreg_differences,
    cpreg_table,
    rewrite_cpregs,
)
from fuzz.triage.ddmin import minimize


@dataclass(frozen=True)
class Localization:
    """The registers responsible for a refusal, and how sure we are."""

    responsible: tuple[CpregPatch, ...]
    candidates: int
    tests: int
    explained: bool
    complete: bool
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (register names and hex values)."""
        return {
            "explained": self.explained,
            "complete": self.complete,
            "candidates": self.candidates,
            "tests": self.tests,
            "note": self.note,
            "registers": [p.to_json() for p in self.responsible],
        }


def loads(session: Session, dst: QemuBinary, case: Case, data: bytes, workdir: Path) -> bool:
    """Whether ``dst`` completes a restore of the stream ``data``."""
    destination = FreshDestination(dst, workdir, timeouts=session.settings.timeouts)
    result = session.run(lambda: destination.load(case, data))
    return result.outcome.verdict is Verdict.COMPLETED


def localize_cpreg_refusal(
    session: Session,
    src_stream: bytes,
    dst: QemuBinary,
    case: Case,
    workdir: Path,
    *,
    max_tests: int = 300,
) -> Localization:
    """Find the cpregs of ``src_stream`` that make ``dst`` refuse it.

    :param session: runs the destination's restores.
    :param src_stream: the source's saved stream (which ``dst`` refuses).
    :param workdir: a private folder for the destination's own stream and patched streams.
    :raise StreamError: a stream cannot be decoded or patched.
    :raise HarnessError: the destination cannot save the case itself.
    """
    source = FreshSource(dst, workdir, timeouts=session.settings.timeouts)
    saved = session.run(lambda: source.save(case))
    if saved.stream is None:
        return Localization(
            (), 0, 0, False, False,
            f"the destination cannot save this case: {saved.outcome.summary()}",
        )  # fmt: skip
    src_decoded = decode_stream(src_stream)
    dst_decoded = decode_stream(saved.stream)
    src_table, dst_table = cpreg_table(src_decoded), cpreg_table(dst_decoded)
    patches = cpreg_differences(src_table, dst_table)

    def accepted(subset: Sequence[CpregPatch]) -> bool:
        data = rewrite_cpregs(src_stream, src_decoded, apply_patches(src_table, subset))
        return loads(session, dst, case, data, workdir)

    if not patches:
        return Localization((), 0, 0, False, True, "the cpreg lists are identical")
    if accepted([]):
        return Localization(
            (), len(patches), 1, False, True, "the unpatched stream loads: no refusal"
        )
    try:
        reduction = minimize(patches, accepted, max_tests=max_tests)
    except InvalidInput:  # minimize's first check: all patches together are refused too
        return Localization(
            (), len(patches), 2, False, True,
            "even the destination's own cpreg list is refused: the cause is outside the cpregs",
        )  # fmt: skip
    return Localization(
        responsible=tuple(reduction.items),
        candidates=len(patches),
        tests=reduction.tests + 1,
        explained=True,
        complete=reduction.complete,
    )


def patched_stream(src_stream: bytes, patches: tuple[CpregPatch, ...]) -> bytes:
    """``src_stream`` with exactly ``patches`` applied to its cpreg list."""
    decoded = decode_stream(src_stream)
    return rewrite_cpregs(src_stream, decoded, apply_patches(cpreg_table(decoded), patches))
