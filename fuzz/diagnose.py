"""A full report on one case: outcome, signature, responsible registers, changed state.

``migfuzz diff`` prints it; the fuzz loop stores its JSON in every reproducer's
``outcome.json``. It runs the case with re-saves (A -> A -> A and A -> B -> B), compares each
re-save with A's stream field by field, and localizes a ``cpu`` refusal to registers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fuzz.case import Case
from fuzz.errors import StreamError
from fuzz.farm import QemuBinary
from fuzz.localize import Localization, localize_cpreg_refusal
from fuzz.oracles import Agree, Divergence, Judgement, Signature, StateOracle, judge
from fuzz.outcome import TransferOutcome, Verdict
from fuzz.runner import save_and_restore
from fuzz.stream.compare import StreamDiff, compare_streams
from fuzz.stream.decode import decode_file


@dataclass(frozen=True)
class Diagnosis:
    """Everything migfuzz can say about one case on one pair."""

    control: TransferOutcome
    pair: TransferOutcome
    judgement: Judgement
    control_state: StreamDiff | None
    pair_state: StreamDiff | None
    localization: Localization | None
    notes: tuple[str, ...] = ()

    @property
    def signature(self) -> Signature | None:
        """The divergence signature, if the pair diverged."""
        return self.judgement.signature if isinstance(self.judgement, Divergence) else None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, as stored in ``outcome.json`` under ``findings``."""
        return {
            "signature": None if self.signature is None else str(self.signature),
            "control_state": None if self.control_state is None else self.control_state.to_json(),
            "pair_state": None if self.pair_state is None else self.pair_state.to_json(),
            "localization": None if self.localization is None else self.localization.to_json(),
            "notes": list(self.notes),
        }


def state_divergence(diff: StreamDiff) -> Divergence | None:
    """A completed restore that changed state is a divergence named by what changed."""
    if diff.identical:
        return None
    sections = sorted({c.path.split("/")[0] for c in diff.changed})
    return Divergence(
        Signature("state", f"round trip changed {', '.join(sections)}"),
        {"changed": [vars(c) for c in diff.changed[:50]]},
    )


def judge_with_state(
    control: TransferOutcome,
    pair: TransferOutcome,
    workdir: Path,
    oracles: Sequence[StateOracle] = (),
) -> Judgement:
    """:func:`~fuzz.oracles.judge`, then the state round-trip oracle on a completed pair.

    Needs the transfers to have been run with ``resave=True`` in ``workdir``.
    """
    judgement = judge(control, pair, oracles)
    if isinstance(judgement, Agree) and pair.verdict is Verdict.COMPLETED:
        diff = _round_trip(workdir, pair.dst, [])
        if diff is not None:
            return state_divergence(diff) or judgement
    return judgement


def _round_trip(workdir: Path, dst: str, notes: list[str]) -> StreamDiff | None:
    resaved = workdir / f"resave-{dst}.stream"
    if not resaved.exists():
        return None
    try:
        return compare_streams(decode_file(workdir / "src.stream"), decode_file(resaved))
    except StreamError as err:
        notes.append(f"round trip on {dst} not compared: {err}")
        return None


def diagnose(
    src: QemuBinary,
    dst: QemuBinary,
    case: Case,
    workdir: Path,
    *,
    oracles: Sequence[StateOracle] = (),
    trace_load: Callable[[QemuBinary], bool] = lambda _b: False,
    localize: bool = True,
) -> Diagnosis:
    """Run ``case`` on ``src -> src`` and ``src -> dst`` with re-saves and explain the result."""
    control, pair = asyncio.run(
        save_and_restore(src, [src, dst], case, workdir, resave=True, trace_load=trace_load)
    )
    notes: list[str] = []
    control_state = (
        _round_trip(workdir, src.name, notes) if control.verdict == "completed" else None
    )
    pair_state = _round_trip(workdir, dst.name, notes) if pair.verdict == "completed" else None
    judgement = judge_with_state(control, pair, workdir, oracles)
    localization = None
    step = pair.failing_step
    if localize and step is not None and step.verdict is Verdict.REFUSED and step.stage == "load":
        try:
            stream = (workdir / "src.stream").read_bytes()
            localization = localize_cpreg_refusal(stream, dst, case, workdir)
        except StreamError as err:
            notes.append(f"localization impossible: {err}")
    return Diagnosis(
        control, pair, judgement, control_state, pair_state, localization, tuple(notes)
    )
