"""``migfuzz describe`` on real QEMUs: the differences it reports were checked by hand.

Checked on the raw streams, without the decoder: QEMU 10.0 saving ``virt-10.0 cortex-a57``
paused at reset writes the KVM id of ID_AA64ISAR0_EL1 (``0x603000000013c030``) once in its
cpreg list and 11.1 does not write it at all; 11.1's ``cpu`` description lists the
subsection ``cpu/wfxt-timer`` and 10.0's does not. Both send ``cpu`` at version 22.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from fuzz.cli import EXIT_OK, EXIT_USAGE, main
from fuzz.versions.farm import Farm

pytestmark = pytest.mark.qemu

CONFIG = ["--machine", "virt-10.0", "--cpu", "cortex-a57"]


def describe(farm: Farm, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["--cache-dir", str(farm.cache_dir), "describe", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def as_json(out: str) -> dict[str, Any]:
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def test_10_0_to_11_1_cortex_a57(farm: Farm, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = describe(farm, capsys, "--src", "10.0", "--dst", "11.1", *CONFIG, "--json")
    assert status == EXIT_OK
    data = as_json(out)
    assert (data["a"], data["b"], data["identical"]) == ("10.0", "11.1", False)
    assert data["only_a"] == data["only_b"] == []
    [cpregs] = data["cpregs"]
    assert (cpregs["only_a"], cpregs["only_b"]) == (["ID_AA64ISAR0_EL1"], [])
    assert cpregs["a_count"] == cpregs["b_count"] + 1
    cpu = next(s for s in data["sections"] if s["name"] == "cpu")
    assert (cpu["a_version"], cpu["b_version"]) == (22, 22)
    assert {"name": "cpu/wfxt-timer", "only_in": "b", "a_version": None, "b_version": 1} in cpu[
        "subsections"
    ]


def test_same_version_shows_no_difference(farm: Farm, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = describe(farm, capsys, "--src", "11.1", "--dst", "11.1", *CONFIG)
    assert status == EXIT_OK
    lines = out.splitlines()
    assert lines[1].startswith("no differences: ")
    assert len(lines) == 2


def test_refused_configuration_is_one_line(farm: Farm, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = describe(
        farm, capsys, "--src", "10.0", "--dst", "11.1", *CONFIG, "--cpu-props", "sve=on"
    )
    assert status == EXIT_USAGE
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("migfuzz: error: QEMU 10.0 refuses virt-10.0 cortex-a57,sve=on")
