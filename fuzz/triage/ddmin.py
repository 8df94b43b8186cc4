"""Delta debugging (Zeller and Hildebrandt's ``ddmin``): shrink a passing set to a 1-minimal one.

Why this exists: localization (``fuzz.triage.localize``) asks which of the register patches make a
destination QEMU accept a source's stream. Each question costs a real QEMU run (~50 ms), so
this module is generic and pure -- items in, a subset out, no processes -- and counts every
call of ``test``:

* a memo keyed by the subset (as positions in the input) means no subset is tested twice,
  which also removes ``ddmin``'s own duplicates (at granularity 2 every complement is the
  other half);
* ``max_tests`` bounds the calls; when it runs out the search stops cleanly and returns the
  smallest passing subset found so far (see :func:`minimize` for how to tell).

Here ``test(subset)`` returning ``True`` means "this subset still does it" (the destination
accepts the stream with only these patches), the reverse polarity of Zeller's failure test.

Complexity, for ``n`` input items: ``O(n**2)`` calls of ``test`` in the worst case (Zeller &
Hildebrandt, "Simplifying and Isolating Failure-Inducing Input", TSE 2002); about
``2 * log2(n)`` calls when one item alone suffices, and ``O(k * log(n))`` in practice when a
monotone ``test`` needs ``k`` items together; the first call always checks the whole input.
Apart from the calls, each step costs ``O(n)`` time, and the memo holds one
entry per call made.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from fuzz.errors import InvalidInput

__all__ = ["Reduction", "ddmin", "minimize"]

T = TypeVar("T")


@dataclass(frozen=True)
class Reduction(Generic[T]):
    """What :func:`minimize` found.

    ``items`` passes ``test`` and keeps the input's order. ``complete`` is ``True`` when it
    is proven 1-minimal (removing any one item fails ``test``) and ``False`` when the
    ``max_tests`` budget stopped the search first. ``tests`` is how many times ``test`` ran.
    """

    items: tuple[T, ...]
    tests: int
    complete: bool


class _Budget(Exception):
    """Private: the ``max_tests`` budget is spent (never escapes this module)."""


def minimize(
    items: Sequence[T],
    test: Callable[[Sequence[T]], bool],
    *,
    max_tests: int | None = None,
) -> Reduction[T]:
    """Find a 1-minimal subsequence of ``items`` that passes ``test``, with the search report.

    :param items: the passing input; ``test(items)`` must be ``True``. Items need not be
        hashable: subsets are remembered by position.
    :param test: ``True`` when a subset (a fresh list, in input order) still passes. It should
        be deterministic; each distinct subset is asked at most once.
    :param max_tests: the most calls of ``test`` to make, counting the initial check of the
        whole input; ``None`` for no limit. When reached, the search stops and returns the
        smallest passing subset found so far with ``complete=False``.
    :return: a :class:`Reduction`.
    :raise InvalidInput: ``max_tests`` is below 1, or ``test(items)`` is ``False``.
    """
    if max_tests is not None and max_tests < 1:
        raise InvalidInput(f"{max_tests=} must be at least 1")
    memo: dict[tuple[int, ...], bool] = {}

    def passes(positions: Sequence[int]) -> bool:
        key = tuple(positions)
        if key not in memo:
            if max_tests is not None and len(memo) >= max_tests:
                raise _Budget
            memo[key] = bool(test([items[i] for i in key]))
        return memo[key]

    everything = list(range(len(items)))
    if not passes(everything):
        raise InvalidInput(f"test fails on the whole input ({len(items)} items): nothing to reduce")
    found, complete = _reduce(everything, passes)
    return Reduction(tuple(items[i] for i in found), len(memo), complete)


def _reduce(current: list[int], passes: Callable[[Sequence[int]], bool]) -> tuple[list[int], bool]:
    """The ``ddmin`` loop over positions: (smallest passing subset, whether it is 1-minimal)."""
    granularity = 2
    try:
        while len(current) >= 2:
            chunks = _split(current, granularity)
            # Reduce to a subset, then restart coarse.
            subset = next((chunk for chunk in chunks if passes(chunk)), None)
            if subset is not None:
                current, granularity = subset, 2
                continue
            # Reduce to a complement, keeping the pace.
            complements = (
                [p for j, chunk in enumerate(chunks) if j != i for p in chunk]
                for i in range(len(chunks))
            )
            complement = next((c for c in complements if passes(c)), None)
            if complement is not None:
                current, granularity = complement, max(granularity - 1, 2)
                continue
            if granularity >= len(current):  # every single removal failed: 1-minimal
                return current, True
            granularity = min(2 * granularity, len(current))
        if len(current) == 1 and passes([]):  # ddmin never tries the empty set by itself
            return [], True
    except _Budget:
        return current, False
    return current, True


def _split(positions: list[int], parts: int) -> list[list[int]]:
    """Cut ``positions`` into ``parts`` contiguous chunks whose sizes differ by at most one."""
    size, extra = divmod(len(positions), parts)
    chunks, start = [], 0
    for k in range(parts):
        end = start + size + (1 if k < extra else 0)
        chunks.append(positions[start:end])
        start = end
    return chunks


def ddmin(
    items: Sequence[T],
    test: Callable[[Sequence[T]], bool],
    *,
    max_tests: int | None = None,
) -> list[T]:
    """Return a 1-minimal subsequence of ``items`` for which ``test`` is ``True``.

    The short form of :func:`minimize`: the same search, memo and budget, without the report.
    When ``max_tests`` stops the search early the result still passes ``test`` but may not be
    1-minimal; call :func:`minimize` to know.

    :raise InvalidInput: ``max_tests`` is below 1, or ``test(items)`` is ``False``.
    """
    return list(minimize(items, test, max_tests=max_tests).items)
