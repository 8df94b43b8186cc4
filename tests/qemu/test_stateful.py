"""The stateful engine on real QEMU: its invariant catches the 11.1 stale-code load, a
short random campaign finds and shrinks it by itself, the same campaign on 10.0 reports
nothing (no false positive), and the committed sequence entry replays as itself on 11.1
and as fixed on a version without the bug."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fuzz.core import command as qemu_command
from fuzz.core.binary import QemuBinary
from fuzz.core.case import MachineConfig
from fuzz.judge.loads import compare_loads
from fuzz.judge.oracles import Signature
from fuzz.run.machine import QemuMachine
from fuzz.run.persistent import make_empty_qcow2
from fuzz.run.session import Session
from fuzz.stateful.engine import run_stateful
from fuzz.stateful.model import Action
from fuzz.stateful.procs import LiveProcess, one_shot_load
from fuzz.stateful.replay import load_sequence_entry, replay_sequence
from fuzz.triage.replay import RegressKind, ReplayVerdict
from fuzz.versions.farm import Farm
from fuzz.versions.probe import capabilities
from strategies.cases import rebuild_guest

pytestmark = pytest.mark.qemu

GUEST_A = [{"op": "memory", "offset": "0x10", "count": 2, "value": "0x1111", "step": "0x1"}]
GUEST_B = [{"op": "memory", "offset": "0x2000", "count": 3, "value": "0x2222", "step": "0x1"}]


async def _history(binary: QemuBinary, workdir: Path) -> tuple[Signature, str, str] | None:
    """A and B saved; a process with no guest loads A (read back), then B (read back)."""
    config = MachineConfig("virt", "cortex-a57")
    template = workdir / "empty.qcow2"
    async with QemuMachine(binary, qemu_command.bare("virt"), workdir) as vm:
        await make_empty_qcow2(vm, template)
    procs = [
        LiveProcess(binary, config, workdir, rebuild_guest(GUEST_A, 1)),
        LiveProcess(binary, config, workdir, rebuild_guest(GUEST_B, 1)),
        LiveProcess(binary, config, workdir, None),
    ]
    try:
        for p in procs:
            await p.start()
        for n, p in enumerate(procs[:2]):
            assert await p.run_to_checkpoint()
            assert await p.save(n, workdir / f"s{n}.qcow2", template) is None
        await procs[2].load(0, workdir / "s0.qcow2", read_back=True)
        actual = await procs[2].load(1, workdir / "s1.qcow2", read_back=True)
    finally:
        for p in procs:
            await p.close()
    expected = await one_shot_load(binary, config, workdir, 1, workdir / "s1.qcow2", read_back=True)
    return compare_loads(expected, actual)


@pytest.mark.parametrize(("version", "diverges"), [("11.1", True), ("10.0", False)])
def test_the_invariant_catches_stale_code_on_11_1_only(
    binaries: dict[str, QemuBinary], tmp_path: Path, version: str, diverges: bool
) -> None:
    found = asyncio.run(_history(binaries[version], tmp_path))
    assert (found is not None) == diverges, found
    if found is not None:
        assert found[0].kind == "history"
        assert found[0].detail == "read-back after the load"


@pytest.mark.parametrize(("version", "finds"), [("11.1", True), ("10.0", False)])
def test_a_short_campaign_finds_stale_code_on_11_1_only(
    farm: Farm, binaries: dict[str, QemuBinary], tmp_path: Path, version: str, finds: bool
) -> None:
    """The random search itself (seed 1, 10 runs) builds the history the 11.1 bug needs
    and shrinks it; the same budget on 10.0 reports nothing (no false positive)."""
    caps = {version: capabilities(binaries[version], farm.cache_dir)}
    work = tmp_path / "work"
    work.mkdir()
    with Session() as session:
        summary = run_stateful(
            session, {version: binaries[version]}, caps, [(version, version)],
            corpus=tmp_path / "corpus", workdir=work, max_cases=10, seed_value=1,
            shrink_grace=20.0, shrink_stall=5.0,
        )  # fmt: skip
    assert summary.runs == 10
    assert bool(summary.findings) == finds, [str(s) for s in summary.findings]
    for sig, finding in summary.findings.items():
        assert sig.detail == "read-back after the load"
        steps = finding.sequence.steps
        failing = steps[finding.sequence.failing_step]
        assert failing.action is Action.LOAD
        start = next(s for s in steps if s.process == failing.process)
        assert start.action is Action.START and start.guest is None, finding.sequence.describe()
        assert finding.path is not None and (finding.path / "repro.sh").exists()


ENTRY = Path(__file__).parents[2] / "corpus" / "history-read-back-after-the-load-b70bac23"


@pytest.mark.parametrize(
    ("runs_as_11_1", "verdict", "kind"),
    [
        ("11.1", ReplayVerdict.SAME, RegressKind.SAME),
        ("10.0", ReplayVerdict.FIXED, RegressKind.CHANGED_WITH_BINARY),
    ],
)
def test_the_committed_sequence_replays_as_itself_and_as_fixed_without_the_bug(
    farm: Farm, binaries: dict[str, QemuBinary], runs_as_11_1: str, verdict: ReplayVerdict,
    kind: RegressKind,
) -> None:  # fmt: skip
    """The sequence's steps, taken again, show the recorded divergence at the recorded
    step on 11.1; with 10.0 (no stale-code bug) standing in for 11.1, every load agrees,
    which a replay on another binary reports as changed with the binary."""
    entry = load_sequence_entry(ENTRY)
    with Session() as session:
        result = replay_sequence(
            session, entry, {"11.1": binaries[runs_as_11_1]}, cache_dir=farm.cache_dir
        )
    assert result.verdict is verdict, result.describe()
    assert result.kind is kind
    if verdict is ReplayVerdict.SAME:
        assert result.now is not None and result.now.step == entry.sequence.failing_step
