"""The migration property as a plain Hypothesis test (``fuzz/campaign/hypofuzz_target.py``), the
one HypoFuzz runs: its check of one case with a known cause passes, the same case with no
known corpus fails naming its cause. Each call runs in a process of its own (the module reads
its settings from the environment once)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.qemu

ONE_CASE = """
from fuzz.core.case import Case, MachineConfig
from fuzz.campaign.hypofuzz_target import check
check(("10.0", "11.1"), Case(MachineConfig("virt-10.0", "cortex-a57")))
"""


def _run(known: Path | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MIGFUZZ_PAIRS": "10.0:11.1"}
    if known is not None:
        env["MIGFUZZ_KNOWN"] = str(known)
    return subprocess.run([sys.executable, "-c", ONE_CASE], capture_output=True, text=True,
                          timeout=120, env=env, check=False)  # fmt: skip


def test_a_known_cause_passes_and_an_unknown_one_fails_with_its_signature(
    farm, tmp_path: Path
) -> None:
    r = _run(None)  # the repository's corpus knows 10.0 -> 11.1 refusing ID_AA64ISAR0_EL1
    assert r.returncode == 0, r.stderr
    r = _run(tmp_path)  # an empty corpus knows nothing
    assert r.returncode == 1, r.stderr
    assert (
        "Finding: 10.0 -> 11.1: refused-on-load: cpreg only in incoming stream: "
        "ID_AA64ISAR0_EL1" in r.stderr
    )
