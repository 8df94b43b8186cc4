"""Long-lived processes: a destination that loads state after state must act like a fresh one.

The engine's reuse path is only a first look, but a first look that lies on every version
sends every case to a fresh re-run (or worse, reports ``reuse`` findings that are the
harness's). These run guests one after another on the same long-lived source and
destinations and check each destination prints the read-back of the guest it just loaded.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case, MachineConfig
from fuzz.core.settings import RunSettings
from fuzz.judge.oracles import Agree
from fuzz.run.engine import execute_cases_reused
from fuzz.run.persistent import ProcessPool
from fuzz.versions.farm import Farm
from fuzz.versions.probe import probed_settings
from strategies.cases import rebuild_guest

pytestmark = pytest.mark.qemu

#: Two guests whose code differs at the same addresses: each reads back its own memory.
GUEST_A = [{"op": "memory", "offset": "0x10", "count": 2, "value": "0x1111", "step": "0x1"}]
GUEST_B = [{"op": "memory", "offset": "0x2000", "count": 3, "value": "0x2222", "step": "0x1"}]


async def _alternate(
    binary: QemuBinary, workdir: Path, settings: RunSettings
) -> list[tuple[str, str]]:
    """Run A, B, A, B on one pool; each case's judgement and control read-back."""
    config = MachineConfig("virt", "cortex-a57")
    pool = ProcessPool(workdir, settings)
    seen = []
    try:
        for ops in (GUEST_A, GUEST_B, GUEST_A, GUEST_B):
            case = Case(config, rebuild_guest(ops, 1))
            (run,) = await execute_cases_reused(binary, [binary], case, settings, pool)
            load = run.evidence.control.load
            transcript = "" if load is None else str(load.details.get("transcript", ""))
            seen.append((type(run.judgement).__name__, transcript))
    finally:
        await pool.close()
    return seen


@pytest.mark.parametrize("version", ["5.2", "7.2", "10.0", "11.1"])
def test_a_long_lived_destination_runs_the_guest_it_loaded(
    farm: Farm, binaries: dict[str, QemuBinary], tmp_path: Path, version: str
) -> None:
    # 11.1 kept running the previous guest's translated code after a snapshot load until
    # the destination rewrote the image (fuzz.run.persistent.drop_stale_translations); 7.2
    # aborted on the qtest channel as it was first passed. Either breaks this.
    binary = binaries[version]
    settings = probed_settings([binary], farm.cache_dir)
    seen = asyncio.run(_alternate(binary, tmp_path, settings))
    for (verdict, transcript), ops in zip(seen, (GUEST_A, GUEST_B, GUEST_A, GUEST_B), strict=True):
        assert verdict == Agree.__name__, transcript[-300:]
        first = int(ops[0]["offset"], 16)
        assert f"mem[0x40200000+{first:#x}]={int(ops[0]['value'], 16):016x}" in transcript.replace(
            "=0x", "="
        ), transcript[-300:]
        assert "@@MIGFUZZ-DONE@@" in transcript
