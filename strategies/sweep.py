"""The transport sweep: a campaign opens with one live case per headline feature and source.

A campaign migrates one configuration in ``--live-every`` live, with settings drawn at
random (:func:`strategies.transports.live_migrations`): over a night that reaches every
feature on every pair many times, but in a 10-minute campaign a feature such as mapped-ram
(a file transport, then a coin) came up a few times or not at all, and on which pairs was
luck. The question a user asks first ("can my fleet migrate live from 10.0 to 11.1 over
multifd? over postcopy?") deserves an answer every night, so a time-budgeted campaign
begins with a *sweep*: for each source version and each feature of
:data:`~fuzz.core.live.HEADLINE_MIGRATIONS` that a destination offers with it, one live
case, fanned out to every destination that offers the same feature (or, without a
fan-out, one per pair).

The sweep's cases are fixed, not drawn: the simplest configuration the pair's strategy has
(the one a configuration shrinks to) and a small guest of a few kinds of operation, found
with :func:`hypothesis.find` (Hypothesis's own "simplest value satisfying this"), so a
finding is already nearly minimal and every night's sweep is the same matrix. The drawn
cases that follow are Hypothesis's as before.

Pure: nothing here starts a process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import astuple

from hypothesis import HealthCheck, Phase, find, settings

from fuzz.core.capabilities import Capabilities
from fuzz.core.case import Pair
from fuzz.core.live import HEADLINE_MIGRATIONS, unsupported
from strategies.cases import CaseGroup
from strategies.configs import configurations
from strategies.guests import Operation, guest_operations

__all__ = ["SWEEP_GUEST_KINDS", "SweepItem", "sweep_plan"]

#: The sweep's guest has operations of at least this many kinds.
SWEEP_GUEST_KINDS = 3

#: A sweep case: the pair it is drawn for (the fan-out takes it further) and its group.
SweepItem = tuple[Pair, CaseGroup]

_FIND = settings(
    database=None, phases=[Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck), max_examples=200,
)  # fmt: skip


def _sets_state(ops: Sequence[Operation]) -> bool:
    """Operations of :data:`SWEEP_GUEST_KINDS` kinds that each set a number other than 0
    (the simplest guest of that many kinds would write zeros, which reset has already)."""
    kinds = {type(op) for op in ops}
    return len(kinds) >= SWEEP_GUEST_KINDS and all(map(_sets_nonzero, ops))


def _sets_nonzero(op: Operation) -> bool:
    numbers = [v for v in astuple(op) if isinstance(v, int) and not isinstance(v, bool)]
    return not numbers or any(numbers)


def sweep_plan(
    pairs: Sequence[Pair], caps: Mapping[str, Capabilities], *, fan_out: bool = True
) -> list[SweepItem]:
    """The sweep's cases for ``pairs``, in order: by source, then by feature.

    :param fan_out: the campaign restores each save on every destination of its source
        (one case per source and feature reaches them all); without, one case per pair.
    """
    guest = find(guest_operations(max_ops=8), _sets_state, settings=_FIND)
    plan: list[SweepItem] = []
    covered: set[tuple[str, str]] = set()  # (source, feature) already swept, with a fan-out
    for src, dst in pairs:
        features = [
            (name, live) for name, live in HEADLINE_MIGRATIONS.items()
            if not (fan_out and (src, name) in covered)
            and not unsupported(live, (caps[src], caps[dst]))
        ]  # fmt: skip
        if not features:
            continue
        simplest = find(configurations(caps[src], caps[dst]), lambda _c: True, settings=_FIND)
        for name, live in features:
            plan.append(((src, dst), CaseGroup(simplest, [guest], live)))
            covered.add((src, name))
    return plan
