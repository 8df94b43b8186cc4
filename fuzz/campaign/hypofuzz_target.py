"""The migration property as a plain Hypothesis test, for HypoFuzz and pytest.

``migfuzz fuzz`` drives Hypothesis itself (seeds, budget, workers, a corpus). This module
states the same property as one ``@given`` test function, so that other Hypothesis
runners can drive it: HypoFuzz (``hypothesis fuzz``) runs it for ever on every core,
steering by the behaviours :func:`fuzz.campaign.loop.observe` reports (the outcome, each cause's
kind, where a load stopped, the sections that differ) and the sections a sample of the saves
exercised (:func:`fuzz.campaign.loop.observe_coverage`), and shows its own dashboard::

    .venv/bin/pip install hypofuzz
    MIGFUZZ_PAIRS=10.0:11.1 .venv/bin/hypothesis fuzz --no-dashboard -n 2 -- \
        fuzz/campaign/hypofuzz_target.py

The property: a case saved on A and restored on A (the control) and on B shows no root
cause that the known corpora do not already hold (``$MIGFUZZ_KNOWN``, ``:``-separated
folders; default the repository's ``corpus/``). A new cause fails the test with its
signature; HypoFuzz then shrinks it and keeps the failing example in its database. The
pairs come from ``$MIGFUZZ_PAIRS`` (``A:B,...``; default every ordered pair of installed
versions). Like ``migfuzz fuzz``, it draws fresh cases on every run (Hypothesis's and
HypoFuzz's own random seeds) unless ``$MIGFUZZ_SEED`` pins one. The file is not named
``test_*.py``: the test suite does not collect it.
"""

from __future__ import annotations

import atexit
import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from fuzz.campaign.coverage import CoverageSampler
from fuzz.campaign.loop import default_pairs, observe, observe_coverage, parse_pairs
from fuzz.core.case import Case
from fuzz.corpus.store import known_in
from fuzz.errors import Finding
from fuzz.judge.oracles import Divergence, Signature
from fuzz.run.engine import CaseRun
from fuzz.run.session import Session
from fuzz.versions.farm import Farm
from fuzz.versions.probe import capabilities, probed_settings
from strategies.cases import case_strategy

REPOSITORY_CORPUS = Path(__file__).resolve().parents[2] / "corpus"


@functools.cache
def _setup() -> tuple[Farm, list[tuple[str, str]], Session, frozenset[Signature]]:
    """The farm, the pairs, one session for every example, and the known causes."""
    farm = Farm()
    pairs = parse_pairs(os.environ.get("MIGFUZZ_PAIRS", "")) or default_pairs(list(farm.everyday()))
    binaries = [farm.get(name) for name in {v for pair in pairs for v in pair}]
    session = Session(probed_settings(binaries, farm.cache_dir))
    session.__enter__()
    atexit.register(session.__exit__, None, None, None)  # no QEMU outlives the runner
    known_dirs = os.environ.get("MIGFUZZ_KNOWN", str(REPOSITORY_CORPUS)).split(":")
    known = frozenset(known_in(Path(d) for d in known_dirs if d))
    return farm, pairs, session, known


def _drawn() -> st.SearchStrategy[tuple[tuple[str, str], Case]]:
    """A pair, then a case both its versions accept (one guest per case)."""
    farm, pairs, _session, _known = _setup()
    caps = {name: capabilities(farm.get(name), farm.cache_dir) for p in pairs for name in p}
    cases = case_strategy()

    def one(case: Case | Sequence[Case]) -> Case:
        return case if isinstance(case, Case) else case[0]

    return st.sampled_from(pairs).flatmap(
        lambda p: st.tuples(st.just(p), cases(caps[p[0]], caps[p[1]]).map(one))
    )


#: Cases are slow and draw much: these checks would only complain of it. (HypoFuzz refuses
#: a test that suppresses every health check.)
SLOW_AND_LARGE = [
    HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
    HealthCheck.large_base_example,
]  # fmt: skip


@settings(deadline=None, suppress_health_check=SLOW_AND_LARGE, max_examples=20)
@given(st.deferred(_drawn))
def test_migration_shows_no_unknown_cause(drawn: tuple[tuple[str, str], Case]) -> None:
    """A -> B shows no root cause beyond those already known (see the module docstring)."""
    pair, case = drawn

    def report(run: CaseRun) -> None:
        observe(run)
        observe_coverage(_coverage(), pair[0], case, [run])

    check(pair, case, report=report)


@functools.cache
def _coverage() -> CoverageSampler:
    """The state coverage sampler of this process's examples (its events go nowhere)."""
    farm, pairs, session, _known = _setup()
    binaries = {name: farm.get(name) for pair in pairs for name in pair}
    return CoverageSampler(session, binaries, lambda _event: None)


if _pinned := os.environ.get("MIGFUZZ_SEED"):
    # The same rule as 'migfuzz fuzz --seed': draws are fresh unless a seed is given.
    test_migration_shows_no_unknown_cause = seed(int(_pinned))(
        test_migration_shows_no_unknown_cause
    )


def check(
    pair: tuple[str, str], case: Case, *, report: Callable[[CaseRun], object] = lambda _r: None
) -> None:
    """Run ``case`` on ``pair`` through the one case path and judge it.

    :param report: receives the run first (the test passes :func:`fuzz.campaign.loop.observe`,
        which tells Hypothesis what QEMU did; it works only inside a Hypothesis test).
    :raise Finding: the case shows a root cause no known corpus holds.
    """
    farm, _pairs, session, known = _setup()
    run = session.run_case(farm.get(pair[0]), farm.get(pair[1]), case)
    report(run)
    judgement = run.judgement
    if isinstance(judgement, Divergence):
        new = [str(sig) for sig in judgement.signatures() if sig not in known]
        if new:
            raise Finding(f"{pair[0]} -> {pair[1]}: {'; '.join(new)}")
