"""Issue-5 checks on real QEMU: state round trips, register naming, localization by patching."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fuzz.core.case import Case, MachineConfig
from fuzz.core.outcome import Verdict
from fuzz.run.session import Session
from fuzz.stream.compare import compare_streams
from fuzz.stream.decode import decode_file, decode_stream
from fuzz.stream.patch import cpreg_table, rewrite_cpregs
from fuzz.triage.diagnose import diagnose
from fuzz.triage.localize import loads, patched_stream
from fuzz.versions.probe import capabilities
from tests.conftest import VERSIONS

pytestmark = pytest.mark.qemu


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("cpu", ["cortex-a57", "max"])
def test_same_version_round_trip_changes_no_field(binaries, farm, version, cpu, tmp_path) -> None:
    binary = binaries[version]
    case = Case(MachineConfig(capabilities(binary, farm.cache_dir).default_virt, cpu))
    with Session() as session:
        report = diagnose(session, binary, binary, case, localize=False)
    assert report.control.verdict is Verdict.COMPLETED
    state = report.control_state
    assert state is not None and state.compared > 5000
    assert state.changed == () and state.only_before == () and state.only_after == ()
    assert report.signature is None


def test_a_changed_field_is_seen(binaries, stream_of, tmp_path) -> None:
    """The comparison is not blind: a patched cpreg value shows up as a changed field."""
    data = stream_of("7.2", "cortex-a57").read_bytes()
    stream = decode_stream(data)
    table = cpreg_table(stream)
    key = next(k for k, v in table.items() if v != 0)
    changed = rewrite_cpregs(data, stream, {**table, key: table[key] ^ 1})
    diff = compare_streams(stream, decode_stream(changed))
    [change] = diff.changed
    assert "/cpreg/" in change.path and change.before != change.after


def test_10_0_to_11_1_names_id_aa64isar0_only_in_incoming_stream(binaries, tmp_path) -> None:
    case = Case(MachineConfig("virt-10.0", "cortex-a57"))
    with Session() as session:
        report = diagnose(session, binaries["10.0"], binaries["11.1"], case)
    assert (
        str(report.signature) == "refused-on-load: cpreg only in incoming stream: ID_AA64ISAR0_EL1"
    )
    assert report.localization is not None
    [patch] = report.localization.responsible
    assert patch.describe() == "ID_AA64ISAR0_EL1: only in source (0x11120)"


def test_7_2_to_10_0_registers_found_by_patching_are_exactly_what_is_needed(
    binaries, tmp_path
) -> None:
    case = Case(MachineConfig("virt-7.2", "cortex-a57"))
    with Session() as session:
        report = diagnose(session, binaries["7.2"], binaries["10.0"], case)
        assert report.pair.verdict is Verdict.REFUSED
        loc = report.localization
        assert loc is not None and loc.explained and loc.complete
        names = {p.register for p in loc.responsible}
        assert "ID_DFR0_EL1" in names
        source = report.run.source_stream
        assert source is not None
        dst = binaries["10.0"]
        assert not loads(session, dst, case, source, tmp_path)
        assert loads(session, dst, case, patched_stream(source, loc.responsible), tmp_path)
        for i, patch in enumerate(loc.responsible):
            fewer = loc.responsible[:i] + loc.responsible[i + 1 :]
            assert not loads(session, dst, case, patched_stream(source, fewer), tmp_path), (
                f"{patch.register} is not needed"
            )


@pytest.mark.parametrize("version", VERSIONS)
def test_streams_of_every_version_decode_with_cpu_and_ram(stream_of, version) -> None:
    for cpu in ("cortex-a57", "max"):
        stream = decode_file(stream_of(version, cpu))
        assert len(cpreg_table(stream)) > 100
        assert stream.ram.block("mach-virt.ram").pages == 64 * 256


def test_diff_command_reports_registers(farm) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "fuzz", "diff", "--src", "7.2", "--dst", "10.0",
         "--machine", "virt-7.2", "--cpu", "cortex-a57"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert "responsible registers, found by patching 7.2's stream until 10.0 loads it" in r.stdout
    assert "ID_DFR0_EL1: source 0x3010006, destination 0x3000006" in r.stdout
    assert "round trip: " in r.stdout and " 0 changed" in r.stdout
