"""keep_going: what ends a Hypothesis run of findings the driver already recorded; how long
its shrinker may take; when the transport sweep stops starting cases."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from fuzz.campaign.loop import (
    HYPOTHESIS_SHRINK_SECONDS,
    SHRINK_SECONDS_VARIABLE,
    SWEEP_SHARE,
    BudgetExhausted,
    ShrinkTimeUp,
    finding_type,
    hypothesis_shrink_seconds,
    keep_going,
    sweep_cutoff,
)
from fuzz.errors import HarnessError, UsageError
from fuzz.judge.oracles import Signature

FIRST = finding_type(Signature("refused-on-load", "a"))("a")
SECOND = finding_type(Signature("refused-on-load", "b"))("b")


def _raising(error: BaseException) -> Callable[[], None]:
    def test() -> None:
        raise error

    return test


def test_findings_alone_or_together_end_the_run_as_found() -> None:
    assert keep_going(_raising(FIRST))
    assert keep_going(_raising(ExceptionGroup("two", [FIRST, SECOND])))
    assert not keep_going(lambda: None)


def test_a_budget_run_out_among_findings_ends_the_run_as_the_budget() -> None:
    group = BaseExceptionGroup("shrinking", [FIRST, BudgetExhausted()])
    with pytest.raises(BudgetExhausted):
        keep_going(_raising(group))


def test_anything_else_among_findings_is_raised() -> None:
    error = HarnessError("QMP lost")
    with pytest.raises(ExceptionGroup) as raised:
        keep_going(_raising(ExceptionGroup("mixed", [FIRST, error])))
    assert raised.value.exceptions == (error,)
    with pytest.raises(BaseExceptionGroup):
        keep_going(_raising(BaseExceptionGroup("mixed", [FIRST, BudgetExhausted(), error])))


def test_a_shrink_whose_time_is_up_ends_the_run_as_found() -> None:
    assert keep_going(_raising(ShrinkTimeUp()))
    assert keep_going(_raising(BaseExceptionGroup("shrinking", [FIRST, ShrinkTimeUp()])))


def test_shrink_time_up_stops_hypothesis_shrinking_at_once() -> None:
    # A real Hypothesis run: every list of 3 or more fails; once shrinking has taken 5
    # more examples, the body says the time is up, and no further example runs.
    calls: list[list[int]] = []

    @settings(database=None, max_examples=200, phases=[Phase.generate, Phase.shrink])
    @given(st.lists(st.integers(), min_size=10, max_size=30))
    def test(xs: list[int]) -> None:
        calls.append(xs)
        failed = [c for c in calls if len(c) >= 3]
        if len(failed) > 5:
            raise ShrinkTimeUp
        if len(xs) >= 3:
            raise FIRST

    assert keep_going(test)
    assert len([c for c in calls if len(c) >= 3]) == 6


def test_the_shrink_limit_comes_from_the_environment_or_the_default(monkeypatch) -> None:
    monkeypatch.delenv(SHRINK_SECONDS_VARIABLE, raising=False)
    assert hypothesis_shrink_seconds() == HYPOTHESIS_SHRINK_SECONDS
    monkeypatch.setenv(SHRINK_SECONDS_VARIABLE, "2.5")
    assert hypothesis_shrink_seconds() == 2.5
    for bad in ("soon", "-1", "nan", "inf"):
        monkeypatch.setenv(SHRINK_SECONDS_VARIABLE, bad)
        with pytest.raises(UsageError, match=f"MIGFUZZ_SHRINK_SECONDS='{bad}'"):
            hypothesis_shrink_seconds()


def test_the_sweep_stops_starting_cases_after_its_share_of_the_budget() -> None:
    assert sweep_cutoff(1000.0, None) is None  # --max-cases: the whole sweep
    assert sweep_cutoff(1000.0, 1600.0) == pytest.approx(1000.0 + 600.0 * SWEEP_SHARE)
    assert sweep_cutoff(1000.0, 900.0) == 1000.0  # already past the deadline: none
