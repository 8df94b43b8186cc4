"""Drawn configurations against real QEMU: they start on both versions of every pair.

For each unordered pair of the four Debian versions, a few hundred configurations are drawn,
duplicates dropped, and each is started (paused, ``-S``) on both versions, a few at a time,
each QEMU in its own temp folder. One-sided configurations must start where
:func:`~strategies.configs.accepted_by` says they will, and be refused cleanly (the runner's
``setup-error``: exit status 1 and QEMU's message, never a crash or a hang) everywhere else.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from fuzz.core import command as qemu_command
from fuzz.core.binary import QemuBinary
from fuzz.core.capabilities import Capabilities
from fuzz.core.case import Case, MachineConfig
from fuzz.core.outcome import StepOutcome, Verdict, qemu_error_lines
from fuzz.errors import LaunchError
from fuzz.run.machine import QemuMachine, private_workdir
from fuzz.run.runner import FreshSource
from fuzz.versions.farm import Farm
from fuzz.versions.probe import capabilities
from strategies.configs import accepted_by, configurations
from tests.conftest import VERSIONS

pytestmark = pytest.mark.qemu

#: Distinct configurations started per pair (each on both versions).
EXAMPLES = 120
#: Distinct one-sided configurations per pair.
ONE_SIDED_EXAMPLES = 50
#: QEMUs starting at once.
CONCURRENCY = 4

#: Neighbouring versions, and the two ends: every option one version adds or drops meets a
#: version with it and one without (all 6 pairs of 4 versions, 200 and 80 examples, cost
#: the suite about 2 more minutes; a campaign draws from every pair anyway).
PAIRS = [*itertools.pairwise(VERSIONS), (VERSIONS[0], VERSIONS[-1])]


@pytest.fixture(scope="module")
def probes(farm: Farm, binaries: dict[str, QemuBinary]) -> dict[str, Capabilities]:
    """Version -> probed capabilities (cached by binary hash)."""
    return {v: capabilities(b, farm.cache_dir) for v, b in binaries.items()}


def _draw(strategy: st.SearchStrategy[MachineConfig], count: int) -> list[MachineConfig]:
    """At least ``count`` distinct configurations from ``strategy`` (fewer if it has fewer).

    Each round has its own fixed seed: under a derandomized profile (every run here, and
    Hypothesis's own CI profile) rounds without one would all draw the same examples.
    """
    drawn: dict[MachineConfig, None] = {}
    for round_index in range(5):

        @settings(
            max_examples=count, database=None, deadline=None, phases=[Phase.generate],
            suppress_health_check=[HealthCheck.too_slow],
        )  # fmt: skip
        @seed(round_index)
        @given(strategy)
        def collect(config: MachineConfig) -> None:
            drawn[config] = None

        collect()
        if len(drawn) >= count:
            break
    return list(drawn)


@dataclass(frozen=True)
class Started:
    """How starting one configuration on one version ended."""

    version: str
    config: MachineConfig
    started: bool
    returncode: int | None = None
    messages: tuple[str, ...] = ()

    def describe(self) -> str:
        status = "started" if self.started else f"exit {self.returncode}"
        return f"{self.version}: {self.config.describe()}: {status}: {' / '.join(self.messages)}"


async def _start(binary: QemuBinary, config: MachineConfig, limit: asyncio.Semaphore) -> Started:
    """Start ``config`` paused on ``binary``, then quit it."""
    async with limit:
        with private_workdir("migfuzz-test-config-") as tmp:
            try:
                async with QemuMachine(binary, qemu_command.base(config), Path(tmp)):
                    pass
            except LaunchError as err:
                lines = qemu_error_lines(err.stderr_tail)
                return Started(binary.name, config, False, err.returncode, lines)
    return Started(binary.name, config, True)


async def _save(binary: QemuBinary, config: MachineConfig, limit: asyncio.Semaphore) -> StepOutcome:
    """Save ``config`` through the runner (expected to be refused before any migration)."""
    async with limit:
        with private_workdir("migfuzz-test-config-") as tmp:
            source = FreshSource(binary, Path(tmp))
            return (await source.save(Case(config))).outcome


async def _start_all(jobs: Sequence[tuple[QemuBinary, MachineConfig]]) -> list[Started]:
    limit = asyncio.Semaphore(CONCURRENCY)
    return list(await asyncio.gather(*(_start(b, c, limit) for b, c in jobs)))


async def _save_all(jobs: Sequence[tuple[QemuBinary, MachineConfig]]) -> list[StepOutcome]:
    limit = asyncio.Semaphore(CONCURRENCY)
    return list(await asyncio.gather(*(_save(b, c, limit) for b, c in jobs)))


@pytest.mark.slow
@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_drawn_configurations_start_on_both_versions(
    a: str, b: str, probes: dict[str, Capabilities], binaries: dict[str, QemuBinary]
) -> None:
    configs = _draw(configurations(probes[a], probes[b]), EXAMPLES)
    assert len(configs) >= EXAMPLES
    results = asyncio.run(_start_all([(binaries[v], c) for c in configs for v in (a, b)]))
    failed = [r.describe() for r in results if not r.started]
    assert not failed, f"{len(failed)} of {len(results)} did not start:\n" + "\n".join(failed[:20])
    # the draws exercise more than the plain case
    assert sum(bool(c.cpu_properties or c.machine_options) for c in configs) > EXAMPLES // 2
    assert len({c.cpu for c in configs}) > 1 and len({c.smp for c in configs}) > 1


@pytest.mark.slow
@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_one_sided_configurations_are_refused_cleanly(
    a: str, b: str, probes: dict[str, Capabilities], binaries: dict[str, QemuBinary]
) -> None:
    configs = _draw(configurations(probes[a], probes[b], one_sided=True), ONE_SIDED_EXAMPLES)
    jobs = [(v, c) for c in configs for v in (a, b)]
    accepted = [(binaries[v], c) for v, c in jobs if accepted_by(probes[v], c)]
    refused = [(binaries[v], c) for v, c in jobs if not accepted_by(probes[v], c)]
    assert len(refused) >= ONE_SIDED_EXAMPLES // 2, "one-sided draws should mostly be refused"

    started = asyncio.run(_start_all(accepted))
    failed = [r.describe() for r in started if not r.started]
    assert not failed, "expected to start:\n" + "\n".join(failed[:20])

    outcomes = asyncio.run(_save_all(refused))
    unclean = [
        f"{o.version}: {c.describe()}: {o.summary()}"
        for o, (_, c) in zip(outcomes, refused, strict=True)
        if o.verdict is not Verdict.SETUP_ERROR or o.returncode != 1 or not o.messages
    ]
    assert not unclean, "expected a clean setup-error:\n" + "\n".join(unclean[:20])
