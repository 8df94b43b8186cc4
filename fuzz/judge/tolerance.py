"""The tolerance oracle: what QEMU's load path promises to accept, checked on one version.

``cpu_post_load`` (target/arm/machine.c) promises: "anything we know about but the incoming
data doesn't specify retains its current (reset) value". So a version A, given its own
stream of a case with one system register left out of the cpreg list, must load it and
come back exactly as from the whole stream -- provided the register held its reset value
in that stream (then "keeps its reset value" and "comes back as saved" are the same). The
edit is made by :mod:`fuzz.run.tolerance`; here it is judged, with the one judge
(:func:`~fuzz.judge.oracles.judge`) against the case's own control, and every divergence
is re-signed as a broken promise of its own kind (``tolerance``), naming what happened,
not the register (one cause, many registers; the register and both values are in the
details):

* ``tolerance: refused on load when a cpreg is missing from it`` (or crashed, hung);
* ``tolerance: a cpreg missing from the stream does not keep its reset value``;
* ``tolerance: a cpreg missing from the stream changes other state: <fields>``;
* ``tolerance: a cpreg missing from the stream changes the guest's read-back: <items>``.

Found this way under TCG: on 11.1 a register missing from the stream comes back as
whatever the heap held (``cpreg_values`` is allocated with ``g_new`` and only a save fills
it; the code is the same in 5.2-11.1), and 7.2, 10.0 and 11.1 refuse the load where the
register does not read back; ``docs/qemu-bugs.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fuzz.core.outcome import Verdict
from fuzz.judge.oracles import Agree, Divergence, Evidence, Judgement, Signature, judge
from fuzz.stream.patch import CpregPatch

KIND = "tolerance"
_MISSING = "a cpreg missing from the stream"
_FAILED = frozenset({Verdict.REFUSED, Verdict.CRASHED, Verdict.HUNG})


def _resigned(judgement: Divergence, dropped: CpregPatch, came_back: int | None) -> Divergence:
    """``judgement`` (of the edited load against the control) as broken promises."""
    details = {
        **judgement.details,
        "dropped": dropped.to_json(),
        "came_back": None if came_back is None else f"{came_back:#x}",
    }
    causes = []
    for cause in judgement.signatures():
        verdict = cause.kind.split("-on-")[0]
        if verdict in _FAILED:
            causes.append(Signature(KIND, f"{verdict} on load when a cpreg is missing from it"))
        elif came_back is not None and came_back != dropped.src_value:
            causes.append(Signature(KIND, f"{_MISSING} does not keep its reset value"))
        elif "read-back" in cause.detail:
            items = cause.detail.split(": ", 1)[-1]
            causes.append(Signature(KIND, f"{_MISSING} changes the guest's read-back: {items}"))
        else:
            fields = cause.detail.split(": ", 1)[-1]
            causes.append(Signature(KIND, f"{_MISSING} changes other state: {fields}"))
    unique = tuple(dict.fromkeys(causes))
    return Divergence(unique[0], details, unique if len(unique) > 1 else ())


def judge_tolerance(evidence: Evidence, dropped: CpregPatch, came_back: int | None) -> Judgement:
    """Judge the edited load (``evidence.pair``: A loading its stream without ``dropped``)
    against the case's control.

    :param dropped: the register left out; ``src_value`` is its value in the stream, which
        is its reset value (only such registers are left out).
    :param came_back: its value in the edited load's re-save (None: no re-save).
    """
    judgement = judge(evidence)
    if isinstance(judgement, Divergence):
        return _resigned(judgement, dropped, came_back)
    if came_back is not None and came_back != dropped.src_value and isinstance(judgement, Agree):
        # The state oracle compared nothing that differs (e.g. a register its list
        # comparison left out); the register itself still broke the promise.
        return Divergence(
            Signature(KIND, f"{_MISSING} does not keep its reset value"),
            {"dropped": dropped.to_json(), "came_back": f"{came_back:#x}"},
        )
    return judgement


@dataclass(frozen=True)
class ToleranceCheck:
    """One tolerance check of a case: the register left out, the edited load, the verdict."""

    dropped: CpregPatch
    evidence: Evidence
    judgement: Judgement
    stream: bytes = field(repr=False)

    @property
    def causes(self) -> tuple[Signature, ...]:
        """The broken promises (none if the edited load came back as the control)."""
        judgement = self.judgement
        return judgement.signatures() if isinstance(judgement, Divergence) else ()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: what was left out, how the edited load ended, what it showed."""
        judgement = self.judgement
        return {
            "dropped": self.dropped.to_json(),
            "pair": self.evidence.pair.to_json(),
            "causes": [str(c) for c in self.causes],
            "details": judgement.details if isinstance(judgement, Divergence) else {},
        }
