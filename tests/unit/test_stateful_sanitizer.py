"""The stateful mode on a sanitizer build (pure logic, fake processes): it draws a second
load into a paused process before ``cont`` and keeps the sanitizer report of the crash
that ``cont`` ends in, stack and all, in the finding's entry.

The fake models QEMU's pflash use-after-free (``scripts/qemu-bugs/loadvm-twice-then-cont-
crashes``): a ``cont`` after two loads with no ``cont`` between them ends the process, and
a sanitizer build prints ASan's report first.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import find
from hypothesis.errors import NoSuchExample

import fuzz.stateful.engine as engine_module
from fuzz.core.binary import QemuBinary
from fuzz.core.capabilities import Capabilities, CpuProperty
from fuzz.core.case import GuestProgram
from fuzz.core.outcome import LoadOutcome
from fuzz.errors import MonitorError
from fuzz.judge.oracles import Signature
from fuzz.run.session import Session
from fuzz.stateful.engine import StatefulEngine, read_backs
from fuzz.stateful.model import Action, Step
from fuzz.stateful.steps import Live
from tests.unit.test_stateful_steps import (
    CRASHED,
    GUESTS,
    FakeLive,
    World,
    _apply_all,
    _FakeMachineSteps,
    _saved,
)

#: ASan's report of the pflash use-after-free on 10.2.2 (its shadow-byte table cut short).
ASAN_REPORT = """\
==15348==WARNING: ASan doesn't fully support makecontext/swapcontext functions and may produce false positives in some cases!
=================================================================
==15348==ERROR: AddressSanitizer: heap-use-after-free on address 0x60600007d920 at pc 0x55c85107ebf4 bp 0x7ffdd2c02490 sp 0x7ffdd2c02488
READ of size 8 at 0x60600007d920 thread T0
    #0 0x55c85107ebf3 in vm_state_notify ../system/runstate.c:368
    #1 0x55c851027af0 in vm_prepare_start ../system/cpus.c:796
    #2 0x55c851027b9a in vm_start ../system/cpus.c:803
    #3 0x55c851108c55 in qmp_cont ../monitor/qmp-cmds.c:112

0x60600007d920 is located 32 bytes inside of 56-byte region [0x60600007d900,0x60600007d938)
freed by thread T0 here:
    #0 0x7f93bb6b76a8 in __interceptor_free ../../../../src/libsanitizer/asan/asan_malloc_linux.cpp:52
    #1 0x55c8509e040d in postload_update_cb ../hw/block/pflash_cfi01.c:1030

SUMMARY: AddressSanitizer: heap-use-after-free ../system/runstate.c:368 in vm_state_notify
Shadow byte legend (one shadow byte represents 8 application bytes):
  Freed heap region:       fd
==15348==ABORTING
"""  # noqa: E501
UAF = f"{CRASHED}: asan heap-use-after-free in vm_state_notify < vm_prepare_start"


class PflashLive(FakeLive):
    """A process with the pflash bug: a ``cont`` (run or read-back) after two loads with
    no ``cont`` between them ends QEMU (its stderr: the world's). Saves write their file."""

    def __init__(self, world: World, guest: GuestProgram | None, *, fresh: bool = False) -> None:
        super().__init__(world, guest, fresh=fresh)
        self.loads = 0

    def _cont(self) -> None:
        if self.loads >= 2 and not self.fresh:
            self.dead = True
            raise MonitorError("QEMU went away")
        self.loads = 0

    async def save(self, snapshot: int, path: Path, template: Path) -> str | None:
        path.write_bytes(b"QFI\xfb")
        return await super().save(snapshot, path, template)

    async def load(self, snapshot: int, path: Path, *, read_back: bool) -> LoadOutcome:
        self.loads += 1
        return await super().load(snapshot, path, read_back=read_back)

    async def run_to_checkpoint(self) -> bool:
        self._cont()
        return await super().run_to_checkpoint()

    async def read_back(self) -> str:
        self._cont()
        return await super().read_back()


class _PflashSteps(_FakeMachineSteps):
    def new_process(self, version: str, guest: GuestProgram | None) -> Live:
        return PflashLive(self.world, guest)


#: A guest saved; a process with none loads it without reading back, then again with.
TWICE = (
    *_saved(0, 0),
    Step(Action.START, 1, version="11.1"),
    Step(Action.LOAD, 1, snapshot=0),
    Step(Action.LOAD, 1, snapshot=0, read_back=True),
)


def test_only_a_sanitizer_build_draws_loads_that_keep_the_vm_paused() -> None:
    """Every snapshot is saved at a checkpoint: a load that always read back (``cont``)
    never let a second load come before the ``cont``."""
    assert find(read_backs(True), lambda back: not back) is False
    with pytest.raises(NoSuchExample):
        find(read_backs(False), lambda back: not back)


@pytest.mark.parametrize("held", [True, False])
def test_the_crash_at_cont_after_two_loads_keeps_the_whole_report(
    tmp_path: Path, held: bool
) -> None:
    """The second load's read-back (``cont``) crashes: a finding named by the report,
    whose whole text the interpreter keeps for the entry; with a ``cont`` between the
    loads, nothing."""
    steps = TWICE if held else (*TWICE[:-2], TWICE[-1], TWICE[-1])
    work = tmp_path / "engine"
    work.mkdir()
    with Session() as session:
        engine = StatefulEngine(
            session, {}, {}, [("11.1", "11.1")], corpus=tmp_path / "corpus", workdir=work,
            max_cases=1,
        )  # fmt: skip
        machine = _PflashSteps(engine, work, GUESTS, lambda _step: None)
        machine.world = World(stale=False, stderr=ASAN_REPORT)
        machine.template = lambda: work / "empty.qcow2"  # no QEMU to make it
        found = _apply_all(machine, steps)
        machine.close()
    assert found[:-1] == [None] * (len(steps) - 1)
    if not held:
        assert found[-1] is None and machine.report is None
        return
    assert found[-1] is not None and found[-1][0] == Signature("history", UAF)
    assert 1 not in machine.procs  # retired
    assert machine.report is not None and "#0 0x55c85107ebf3 in vm_state_notify" in (
        machine.report.text
    )
    assert "postload_update_cb" in machine.report.text  # the free's stack too


def _caps(version: str) -> Capabilities:
    return Capabilities(
        binary_hash=f"hash-{version}", version=version,
        version_line=f"QEMU emulator version {version}",
        machine_types=("none", "virt", "virt-10.2"),
        default_virt="virt-10.2", cpu_models=("cortex-a57",), aarch64_cpu_models=("cortex-a57",),
        cpu_properties={"cortex-a57": (CpuProperty("aarch64", "bool"),)},
        cpu_expansion={"cortex-a57": {"aarch64": True}}, virt_options=(),
        migration_transports=("exec",), trace_works=True, has_snapshot_load=True,
    )  # fmt: skip


@pytest.mark.parametrize("sanitizers", [("address",), ()], ids=["asan", "plain"])
def test_the_machine_finds_the_crash_on_a_sanitizer_build_and_writes_its_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sanitizers: tuple[str, ...]
) -> None:
    """The whole state machine on fake processes: on a sanitizer build it draws the two
    loads before ``cont`` and writes the report into the entry's ``sanitizer.txt``; on a
    plain build it never does (that crash would only lose the process)."""
    world = World(stale=False, stderr=ASAN_REPORT)
    monkeypatch.setattr(_PflashSteps, "world", world, raising=False)
    monkeypatch.setattr(engine_module, "_MachineSteps", _PflashSteps)
    program = tmp_path / "qemu-system-aarch64"
    program.write_bytes(b"not a QEMU")
    binary = QemuBinary("10.2.2-asan", program, "test", sanitizers=sanitizers)
    work = tmp_path / "work"
    work.mkdir()
    with Session() as session:
        engine = StatefulEngine(
            session, {binary.name: binary}, {binary.name: _caps("10.2.2")},
            [(binary.name, binary.name)], corpus=tmp_path / "corpus", workdir=work,
            max_cases=60, seed_value=1, shrink_grace=20.0, shrink_stall=2.0,
        )  # fmt: skip
        engine._template = work / "empty.qcow2"
        engine._template.write_bytes(b"QFI\xfb")
        summary = engine.run()
    assert summary.loads > 0 and engine.processes == set()
    if not sanitizers:
        assert summary.findings == {}
        return
    assert list(summary.findings) == [Signature("history", UAF)]
    finding = summary.findings[Signature("history", UAF)]
    assert finding.path is not None
    report = (finding.path / "sanitizer.txt").read_text()
    assert "ERROR: AddressSanitizer: heap-use-after-free" in report
    assert "#1 0x55c851027af0 in vm_prepare_start" in report
    steps = finding.sequence.steps
    held = [i for i, s in enumerate(steps) if s.action is Action.LOAD and not s.read_back]
    assert held and any(
        s.action is Action.LOAD and s.process == steps[held[0]].process
        for s in steps[held[0] + 1 :]
    )
