"""``migfuzz qemu available`` against the real Debian archive (network; cached indexes)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.qemu, pytest.mark.slow]


def test_available_lists_every_default_suite_with_its_qemu() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "fuzz", "qemu", "available", "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    index = json.loads(r.stdout)
    by_suite = {v["suite"]: v for v in index["versions"]}
    for name, suite in {"5.2": "bullseye", "7.2": "bookworm", "10.0": "trixie"}.items():
        assert by_suite[suite]["name"] == name
        assert by_suite[suite]["qemu"].startswith(name)
    assert by_suite["sid"]["name"] == by_suite["sid"]["qemu"][:4]  # 11.1 until sid moves on
    assert all(v["debian_version"].startswith("1:") for v in index["versions"])
