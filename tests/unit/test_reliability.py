"""How reliably a new signature's case shows it again: the rule, on scripted re-runs."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fuzz.campaign.loop import RELIABILITY_RUNS, is_flaky, measure_reliability


def script(outcomes: str) -> tuple[Callable[[], bool], list[int]]:
    """Re-run outcomes from a string ('1' shows the signature); counts the calls."""
    calls: list[int] = []
    it = iter(outcomes)

    def shows() -> bool:
        calls.append(1)
        return next(it) == "1"

    return shows, calls


@pytest.mark.parametrize(
    ("outcomes", "expected", "flaky"),
    [
        ("11", (3, 3), False),  # reliable: two re-runs confirm, then stop
        ("0111", (4, 5), False),  # one miss, then a streak of three
        ("000000000", (1, 10), True),  # never again
        ("010101010", (5, 10), False),  # half the time: reported, with its figure
        ("001001001", (4, 10), True),  # under half
    ],
)
def test_reliability_stops_early_when_clear_and_flags_the_flaky(outcomes, expected, flaky) -> None:
    shows, calls = script(outcomes)
    hits, runs = measure_reliability(shows)
    assert (hits, runs) == expected
    assert len(calls) == runs - 1  # the first meeting is not run again
    assert runs <= RELIABILITY_RUNS
    assert is_flaky(hits, runs) is flaky
