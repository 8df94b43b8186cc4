"""Bisect's pure parts (fuzz.triage.bisect): version order, axes, statuses, conclusion."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz.core.capabilities import Capabilities, CpuProperty
from fuzz.corpus.entry import load_entry
from fuzz.errors import UsageError
from fuzz.triage.bisect import (
    Axis,
    Point,
    Status,
    axis_versions,
    conclusion,
    order_versions,
    qemu_release,
    status_of,
    unusable_reason,
)
from fuzz.triage.replay import ReplayVerdict

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
P15_4 = CORPUS / "refused-on-load-cpreg-only-in-incoming-stream-p15-4-3cfabc70"

#: The installed farm as named, with the releases its binaries report.
RELEASES = {
    "5.2": "5.2.0",
    "7.2": "7.2.22",
    "10.0": "10.0.13",
    "10.0.2": "10.0.2",
    "11.1": "11.1.3",
    "11.1.2": "11.1.2",
}


def test_release_from_version_line() -> None:
    line = "QEMU emulator version 10.0.13 Debian 1:10.0.13+ds-0+deb13u1"
    assert qemu_release(line) == "10.0.13"
    assert qemu_release("QEMU emulator version 11.2.50 (v11.2.0-123-gabcdef)") == "11.2.50"
    assert qemu_release("") == ""
    assert qemu_release("something else") == ""


def test_order_by_release_not_by_name() -> None:
    # By name 10.0 < 10.0.2, but the binary called 10.0 is QEMU 10.0.13.
    releases = {**RELEASES, "dev": ""}
    assert order_versions(releases) == ["5.2", "7.2", "10.0.2", "10.0", "11.1.2", "11.1", "dev"]


def test_unknown_release_falls_back_on_the_name() -> None:
    assert order_versions({"9.1": "", "8.0": "8.0.5", "10.1": ""}) == ["8.0", "9.1", "10.1"]


def test_destination_axis_of_a_forward_entry_takes_versions_from_the_source_on() -> None:
    assert axis_versions(RELEASES, "10.0", "11.1", "destination") == ["10.0", "11.1.2", "11.1"]


def test_source_axis_of_a_forward_entry_takes_versions_up_to_the_destination() -> None:
    assert axis_versions(RELEASES, "11.1", "10.0", "source") == [
        "5.2", "7.2", "10.0.2", "10.0", "11.1.2", "11.1",
    ]  # fmt: skip


def test_axes_of_a_backward_entry_are_mirrored() -> None:
    # 11.1 -> 10.0: destinations older than 11.1, sources newer than 10.0.
    assert axis_versions(RELEASES, "11.1", "10.0", "destination") == [
        "5.2", "7.2", "10.0.2", "10.0", "11.1.2", "11.1",
    ]  # fmt: skip
    assert axis_versions(RELEASES, "10.0", "11.1", "source") == ["10.0", "11.1.2", "11.1"]


def test_axis_needs_the_entry_versions() -> None:
    with pytest.raises(UsageError, match=r"'9\.0'"):
        axis_versions(RELEASES, "9.0", "11.1", "destination")


def test_status_of_every_verdict() -> None:
    assert [status_of(v) for v in ReplayVerdict] == [
        Status.SAME, Status.OTHER, Status.AGREE, Status.UNUSABLE,
    ]  # fmt: skip


def points(*pairs: tuple[str, Status]) -> tuple[Point, ...]:
    return tuple(Point(name, RELEASES.get(name, ""), status) for name, status in pairs)


def test_conclusion_not_fixed() -> None:
    line = conclusion(
        "destination",
        points(("10.0", Status.AGREE), ("11.1.2", Status.SAME), ("11.1", Status.SAME)),
    )
    assert line == (
        "appears in 11.1.2 (first bad destination), absent in 10.0 (10.0.13) and earlier; "
        "not fixed in any installed version"
    )


def test_conclusion_fixed_and_unusable_versions_skipped() -> None:
    line = conclusion(
        "destination",
        points(
            ("5.2", Status.AGREE),
            ("7.2", Status.UNUSABLE),
            ("10.0.2", Status.SAME),
            ("10.0", Status.UNUSABLE),
            ("11.1.2", Status.OTHER),
            ("11.1", Status.AGREE),
        ),
    )
    # 7.2 cannot run the configuration: neither bad nor the last good; 10.0 is not a fix.
    assert line == (
        "appears in 10.0.2 (first bad destination), absent in 5.2 (5.2.0) and earlier "
        "(7.2 (7.2.22) cannot run it); replaced by another divergence in 11.1.2 (not clearly a fix)"
    )


def test_conclusion_when_it_comes_back() -> None:
    line = conclusion(
        "destination",
        points(("7.2", Status.SAME), ("10.0", Status.AGREE), ("11.1", Status.SAME)),
    )
    assert line == (
        "appears in 7.2 (7.2.22) (first bad destination), already in the oldest usable "
        "destination tried; fixed in 10.0 (10.0.13) (agree), but back in 11.1 (11.1.3)"
    )


def test_conclusion_on_the_source_axis_is_no_fix() -> None:
    line = conclusion("source", points(("10.0", Status.SAME), ("11.1", Status.AGREE)))
    assert line.endswith("; no longer with source 11.1 (11.1.3) (agree)")
    assert "first bad source" in line


def test_conclusion_without_the_cause_or_without_usable_versions() -> None:
    assert conclusion("destination", points(("10.0", Status.AGREE), ("11.1", Status.OTHER))) == (
        "the entry's cause appears with no destination tried (10.0 (10.0.13), 11.1 (11.1.3))"
    )
    assert conclusion("destination", points(("5.2", Status.UNUSABLE))) == (
        "no destination tried can run this configuration: nothing to conclude"
    )


def test_axis_json_names_first_bad_and_first_fixed() -> None:
    axis = Axis(
        "destination",
        "10.0",
        points(("10.0", Status.AGREE), ("11.1.2", Status.SAME), ("11.1", Status.AGREE)),
    )
    data = axis.to_json()
    assert (data["first_bad"], data["first_fixed"]) == ("11.1.2", "11.1")
    assert data["conclusion"] == axis.conclusion()
    assert data["points"][1] == {
        "name": "11.1.2", "release": "11.1.2", "status": "same cause", "detail": "",
    }  # fmt: skip


def capabilities_with(machines: tuple[str, ...], cpus: tuple[str, ...]) -> Capabilities:
    return Capabilities(
        binary_hash="0" * 64, version="7.2.22", version_line="QEMU emulator version 7.2.22",
        machine_types=machines, default_virt="virt-7.2", cpu_models=cpus,
        aarch64_cpu_models=cpus, cpu_properties={"max": (CpuProperty("sve", "bool"),)},
        cpu_expansion={}, virt_options=(), migration_transports=("exec",), trace_works=True,
        has_snapshot_load=False,
    )  # fmt: skip


def test_a_version_without_the_machine_type_is_unusable() -> None:
    entry = load_entry(P15_4)  # virt-10.0, cortex-a57
    old = capabilities_with(("virt", "virt-5.2", "virt-7.2"), ("cortex-a57", "max"))
    assert unusable_reason(old, entry) == "no machine type 'virt-10.0'"
    no_cpu = capabilities_with(("virt-10.0",), ("max",))
    assert unusable_reason(no_cpu, entry) == "no CPU model 'cortex-a57'"
    fine = capabilities_with(("virt-10.0",), ("cortex-a57",))
    assert unusable_reason(fine, entry) is None
