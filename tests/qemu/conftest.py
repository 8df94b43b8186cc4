"""Fixtures for tests that run real QEMU: streams saved through the runner."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case, MachineConfig
from fuzz.core.outcome import TransferOutcome
from fuzz.core.settings import DEFAULT_TIMEOUTS, Timeouts
from fuzz.run.runner import FreshDestination, FreshSource, SaveResult

#: The one machine type all four Debian versions have (11.1 dropped everything older).
COMMON_MACHINE = "virt-5.2"


async def transfer(
    src: QemuBinary,
    dst: QemuBinary,
    case: Case,
    workdir: Path,
    *,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> tuple[SaveResult, TransferOutcome]:
    """One save on ``src`` and one restore on ``dst``: the runner's steps, without a judge.

    For tests of the steps themselves (verdicts, guests); a whole case goes through
    :func:`fuzz.run.engine.execute_cases`.
    """
    saved = await FreshSource(src, workdir, timeouts=timeouts).save(case)
    if saved.stream is None:
        return saved, TransferOutcome(src.name, dst.name, saved.outcome, None)
    loaded = await FreshDestination(dst, workdir, timeouts=timeouts).load(case, saved.stream)
    return saved, TransferOutcome(src.name, dst.name, saved.outcome, loaded.outcome)


def same_version_transfers(binary: QemuBinary, cases: list[Case]) -> list[TransferOutcome]:
    """Each case saved on ``binary`` and restored on ``binary``, all at once (fresh
    processes, a temporary folder each), in the order of ``cases``."""

    async def one(case: Case) -> TransferOutcome:
        with tempfile.TemporaryDirectory(prefix="migfuzz-same-") as tmp:
            _, result = await transfer(binary, binary, case, Path(tmp))
        return result

    async def all_cases() -> list[TransferOutcome]:
        return list(await asyncio.gather(*(one(case) for case in cases)))

    return asyncio.run(all_cases())


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
            result = asyncio.run(FreshSource(binaries[version], stream_dir).save(case))
            assert result.stream is not None, result.outcome.summary()
            path.write_bytes(result.stream)
            saved[version, cpu] = path
        return saved[version, cpu]

    return get
