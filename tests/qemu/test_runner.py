"""The runner against real QEMU: every verdict, on every version."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from fuzz.core import command as qemu_command
from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case, MachineConfig
from fuzz.core.outcome import TransferOutcome, Verdict
from fuzz.core.settings import RunSettings, Timeouts
from fuzz.judge.oracles import Agree, Divergence, Evidence, judge
from fuzz.run.engine import execute_cases
from fuzz.run.machine import QemuMachine
from fuzz.run.runner import FreshDestination, FreshSource, save_to
from fuzz.stream.compare import compare_resaves, same_saved_state
from fuzz.stream.cpregs import from_kvm_id
from fuzz.stream.decode import decode_stream
from fuzz.stream.patch import cpreg_table, rewrite_cpregs
from fuzz.versions.probe import capabilities, probed_settings
from strategies.cases import rebuild_guest
from tests.conftest import VERSIONS
from tests.qemu.conftest import transfer

pytestmark = pytest.mark.qemu


def _run(src: QemuBinary, dst: QemuBinary, case: Case, tmp: Path):  # type: ignore[no-untyped-def]
    return asyncio.run(transfer(src, dst, case, tmp))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("cpu", ["cortex-a57", "max"])
def test_same_version_round_trip_completes(binaries, farm, version, cpu, tmp_path) -> None:
    machine = capabilities(binaries[version], farm.cache_dir).default_virt
    saved, result = _run(
        binaries[version], binaries[version], Case(MachineConfig(machine, cpu)), tmp_path
    )
    assert result.verdict is Verdict.COMPLETED, result.summary()
    assert saved.stream is not None and len(saved.stream) > 1000


def test_10_0_to_11_1_is_refused_with_the_destination_message(binaries, tmp_path) -> None:
    case = Case(MachineConfig("virt-10.0", "cortex-a57"))
    (run,) = asyncio.run(execute_cases(binaries["10.0"], [binaries["11.1"]], case, RunSettings()))
    control, pair = run.control, run.pair
    assert control.verdict is Verdict.COMPLETED
    assert pair.verdict is Verdict.REFUSED
    assert pair.load is not None and pair.load.returncode == 1
    text = "\n".join(pair.load.messages)
    assert "0x1013c030" in text and "device 'cpu'" in text


def test_11_1_to_10_0_crash_is_classified_as_crashed(binaries, tmp_path) -> None:
    case = Case(MachineConfig("virt-10.0", "cortex-a57"))
    _, pair = _run(binaries["11.1"], binaries["10.0"], case, tmp_path)
    assert pair.verdict is Verdict.CRASHED
    assert pair.load is not None and pair.load.returncode is not None and pair.load.returncode < 0
    assert any("Assertion" in m for m in pair.load.messages)


def test_a_case_the_version_cannot_start_is_a_setup_error(binaries, tmp_path) -> None:
    case = Case(MachineConfig("virt-7.2", "cortex-a57", cpu_properties=(("sve", "on"),)))
    _, result = _run(binaries["7.2"], binaries["7.2"], case, tmp_path)
    assert result.verdict is Verdict.SETUP_ERROR and result.load is None
    assert any("sve" in m for m in result.save.messages)


def test_truncated_stream_is_refused_not_crashed(binaries, stream_of, tmp_path) -> None:
    data = stream_of("10.0", "cortex-a57").read_bytes()
    case = Case(MachineConfig("virt-5.2", "cortex-a57"))
    destination = FreshDestination(binaries["10.0"], tmp_path)
    outcome = asyncio.run(destination.load(case, data[: len(data) // 2])).outcome
    assert outcome.verdict is Verdict.REFUSED, outcome.summary()


def test_a_stream_that_never_ends_is_hung_and_killed(binaries, tmp_path) -> None:
    fifo = tmp_path / "never.stream"
    os.mkfifo(fifo)
    case = Case(MachineConfig("virt-5.2", "cortex-a57"))
    dest = FreshDestination(binaries["7.2"], tmp_path, timeouts=Timeouts(migrate=1.0))
    # Keep the fifo open for writing so the reader blocks instead of seeing end-of-file.
    fd = os.open(fifo, os.O_RDWR)
    try:
        outcome = asyncio.run(dest.load(case, fifo)).outcome
    finally:
        os.close(fd)
    assert outcome.verdict is Verdict.HUNG
    assert outcome.returncode is not None  # killed and reaped


def test_a_register_only_the_pair_restored_differently_is_a_state_divergence(
    binaries, tmp_path
) -> None:
    """The state oracle on real QEMU: the pair restores a stream whose TPIDR_EL0 differs."""
    binary = binaries["11.1"]
    case = Case(MachineConfig("virt-11.1", "cortex-a57"))

    async def go():  # type: ignore[no-untyped-def]
        saved = await FreshSource(binary, tmp_path).save(case)
        assert saved.stream is not None
        stream = decode_stream(saved.stream)
        table = cpreg_table(stream)
        tpidr = next(k for k in table if from_kvm_id(k).name == "TPIDR_EL0")
        patched = rewrite_cpregs(saved.stream, stream, {**table, tpidr: 0x1234})
        control = await FreshDestination(binary, tmp_path).load(case, saved.stream, resave=True)
        pair = await FreshDestination(binary, tmp_path).load(case, patched, resave=True)
        return saved, control, pair

    saved, control, pair = asyncio.run(go())
    evidence = Evidence(
        TransferOutcome("11.1", "11.1", saved.outcome, control.outcome),
        TransferOutcome("11.1", "11.1", saved.outcome, pair.outcome),
        control.resave,
        pair.resave,
    )
    judgement = judge(evidence)
    assert isinstance(judgement, Divergence), judgement
    # TPIDR_EL0 and its AArch32 view (TPIDRURW, P15_0_C13_C0_2) are one register in QEMU:
    # restoring the patched value changes both, and nothing else.
    assert str(judgement.signature) == (
        "state: restored state differs: cpu/cpreg/P15_0_C13_C0_2, cpu/cpreg/TPIDR_EL0"
    )
    changes = judgement.details["state"]["changed"]
    assert {(c["before"], c["after"]) for c in changes} == {("0x0", "0x1234")}
    # And the control against itself: the same stream restored twice agrees.
    assert isinstance(judge(Evidence(evidence.control, evidence.control, control.resave,
                                     control.resave)), Agree)  # fmt: skip


def test_a_file_uri_saves_and_loads_what_exec_cat_does(binaries, farm, tmp_path) -> None:
    """Where a version has ``file:`` URIs, its migrations skip the shell and ``cat``. The
    same state saves to the same bytes both ways; one stream loads to the same state both
    ways; and cases are judged the same, on a pair that agrees and on one that refuses."""
    src, other = binaries["10.0"], binaries["11.1"]
    with_files = probed_settings([src, other], farm.cache_dir)
    assert with_files.file_uri_versions == {"10.0", "11.1"}

    # Without the device tree's random seeds, two fresh paused QEMUs save equal bytes.
    case = Case(
        MachineConfig("virt-10.0", "cortex-a57", machine_options=(("dtb-randomness", "off"),))
    )

    async def save(file_uri: bool) -> bytes:
        stream = tmp_path / f"{file_uri}.stream"
        async with QemuMachine(src, qemu_command.base(case.config), tmp_path) as vm:
            status, _ = await save_to(vm, stream, 30.0, file_uri=file_uri)
        assert status == "completed"
        return stream.read_bytes()

    by_cat, by_file = asyncio.run(save(False)), asyncio.run(save(True))
    assert same_saved_state(by_cat, by_file)

    resaves = [
        asyncio.run(
            FreshDestination(src, tmp_path, file_uri=file_uri).load(case, by_cat, resave=True)
        ).resave
        for file_uri in (False, True)
    ]
    assert resaves[0] is not None and resaves[1] is not None
    assert not compare_resaves(resaves[0], resaves[1]).changed

    write = [{"op": "memory", "offset": "0x10", "count": 2, "value": "0x1111", "step": "0x1"}]
    case = Case(MachineConfig("virt-10.0", "cortex-a57"), rebuild_guest(write, 1))
    with_cat = RunSettings(trace_versions=with_files.trace_versions)
    said = [
        [(type(r.judgement).__name__, str(r.signature)) for r in runs]
        for runs in (
            asyncio.run(execute_cases(src, [src, other], case, settings))
            for settings in (with_files, with_cat)
        )
    ]
    assert said[0] == said[1]
    assert said[0][0] == ("Agree", "None") and said[0][1][0] == "Divergence", said
