"""Delta debugging (fuzz.triage.ddmin): result passes, 1-minimal, a subsequence; memo, budget."""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz.errors import InvalidInput
from fuzz.triage.ddmin import Reduction, ddmin, minimize


class Recorder:
    """A test function that remembers every subset it was asked about."""

    def __init__(self, predicate):
        self.predicate = predicate
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, subset: Sequence[int]) -> bool:
        self.calls.append(tuple(subset))
        return self.predicate(tuple(subset))


def is_subsequence(small: Sequence[int], big: Sequence[int]) -> bool:
    rest = iter(big)
    return all(any(x == y for y in rest) for x in small)


def arbitrary_predicate(full: tuple[int, ...], seed: int, one_in: int):
    """A deterministic, non-monotone test: the whole input passes, other subsets by hash."""

    def predicate(subset: tuple[int, ...]) -> bool:
        return subset == full or zlib.crc32(repr((seed, subset)).encode()) % one_in == 0

    return predicate


# Distinct values, so "subsequence" and "removing one element" are unambiguous.
inputs = st.lists(st.integers(0, 10_000), unique=True, max_size=24)


@given(inputs, st.integers(0, 2**32 - 1), st.integers(1, 4))
def test_result_passes_is_one_minimal_and_a_subsequence(items, seed, one_in):
    predicate = arbitrary_predicate(tuple(items), seed, one_in)
    test = Recorder(predicate)
    report = minimize(items, test)
    result = list(report.items)
    assert report.complete
    assert predicate(tuple(result))
    assert is_subsequence(result, items)
    for i in range(len(result)):
        assert not predicate(tuple(result[:i] + result[i + 1 :]))
    assert ddmin(items, Recorder(predicate)) == result


@given(inputs, st.integers(0, 2**32 - 1), st.integers(1, 4))
def test_no_subset_is_tested_twice_and_tests_are_counted(items, seed, one_in):
    test = Recorder(arbitrary_predicate(tuple(items), seed, one_in))
    report = minimize(items, test)
    assert len(test.calls) == len(set(test.calls)) == report.tests
    assert test.calls[0] == tuple(items)


@given(st.data())
def test_monotone_test_with_known_minimal_set_returns_exactly_it(data):
    items = data.draw(inputs.filter(bool))
    needed = data.draw(st.sets(st.sampled_from(items), max_size=len(items)))
    test = Recorder(lambda subset: needed <= set(subset))
    assert ddmin(items, test) == [x for x in items if x in needed]
    assert len(test.calls) == len(set(test.calls))


@given(st.integers(1, 2048), st.data())
def test_a_single_cause_takes_logarithmically_many_tests(n, data):
    cause = data.draw(st.integers(0, n - 1))
    test = Recorder(lambda subset: cause in subset)
    assert ddmin(range(n), test) == [cause]
    # The whole input, at most two tests per halving, then the empty set.
    assert len(test.calls) <= 2 * math.ceil(math.log2(n)) + 2


@given(inputs, st.integers(0, 2**32 - 1), st.integers(1, 4), st.integers(1, 60))
def test_budget_bounds_the_tests_and_still_returns_a_passing_subset(items, seed, one_in, budget):
    predicate = arbitrary_predicate(tuple(items), seed, one_in)
    test = Recorder(predicate)
    report = minimize(items, test, max_tests=budget)
    assert len(test.calls) == report.tests <= budget
    assert predicate(report.items)
    assert is_subsequence(report.items, items)
    unlimited = minimize(items, Recorder(predicate))
    if report.complete:
        assert report == unlimited
    else:
        assert report.tests == budget < unlimited.tests


def test_budget_of_one_only_checks_the_input():
    report = minimize([1, 2, 3], lambda subset: 2 in subset, max_tests=1)
    assert report == Reduction(items=(1, 2, 3), tests=1, complete=False)


def test_items_need_not_be_hashable():
    items = [[1], [2], [3], [4]]
    assert ddmin(items, lambda subset: [3] in subset) == [[3]]


def test_empty_set_is_found_when_nothing_is_needed():
    assert ddmin([7], lambda subset: True) == []
    assert ddmin([], lambda subset: True) == []


def test_input_that_does_not_pass_is_refused():
    with pytest.raises(InvalidInput, match="fails on the whole input"):
        ddmin([1, 2, 3], lambda subset: False)
    with pytest.raises(ValueError, match="fails on the whole input"):
        ddmin([], lambda subset: False)


@pytest.mark.parametrize("budget", [0, -3])
def test_budget_below_one_is_refused(budget):
    with pytest.raises(InvalidInput, match="max_tests"):
        ddmin([1, 2], lambda subset: True, max_tests=budget)
