"""Fixtures for tests that run real QEMU: streams saved through the runner."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from fuzz.case import Case, MachineConfig
from fuzz.farm import QemuBinary
from fuzz.outcome import Verdict
from fuzz.runner import FreshSource

#: The one machine type all four Debian versions have (11.1 dropped everything older).
COMMON_MACHINE = "virt-5.2"


@pytest.fixture(scope="session")
def stream_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session folder for saved streams."""
    return tmp_path_factory.mktemp("streams")


@pytest.fixture(scope="session")
def stream_of(binaries: dict[str, QemuBinary], stream_dir: Path) -> Callable[[str, str], Path]:
    """A function ``(version, cpu) -> Path``: a stream saved paused at reset on virt-5.2.

    Saved once per (version, cpu) through the real runner and reused by every test.
    """
    saved: dict[tuple[str, str], Path] = {}

    def get(version: str, cpu: str) -> Path:
        if (version, cpu) not in saved:
            path = stream_dir / f"s{version}-{cpu}.stream"
            case = Case(MachineConfig(COMMON_MACHINE, cpu))
            outcome = asyncio.run(FreshSource(binaries[version], stream_dir).save(case, path))
            assert outcome.verdict is Verdict.COMPLETED, outcome.summary()
            saved[version, cpu] = path
        return saved[version, cpu]

    return get
