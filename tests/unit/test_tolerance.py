"""The tolerance oracle, without QEMU: which register is left out, and how a broken promise
is named. The loads are in ``tests/qemu/test_tolerance.py``."""

from __future__ import annotations

import pytest

from fuzz.core.case import MachineConfig
from fuzz.core.outcome import Stage, StepOutcome, TransferOutcome, Verdict
from fuzz.judge.oracles import Agree, Divergence, Evidence
from fuzz.judge.tolerance import ToleranceCheck, judge_tolerance
from fuzz.run.tolerance import at_reset, pick
from fuzz.stream.cpregs import CpReg, to_kvm_id
from fuzz.stream.patch import CpregPatch, PatchAction

DBGWCR0_EL1 = to_kvm_id(CpReg.aa64(2, 0, 0, 0, 7))
DROPPED = CpregPatch(DBGWCR0_EL1, PatchAction.DROP, 0, None)


def _step(stage: Stage, verdict: Verdict, *messages: str, **details: object) -> StepOutcome:
    return StepOutcome(stage, "11.1", verdict, tuple(messages), None, 0.0, dict(details))


def _evidence(edited: StepOutcome, control_says: str = "x=0x1\n") -> Evidence:
    save = _step(Stage.SAVE, Verdict.COMPLETED)
    control = _step(Stage.LOAD, Verdict.COMPLETED, transcript=control_says)
    return Evidence(
        control=TransferOutcome("11.1", "11.1", save, control),
        pair=TransferOutcome("11.1", "11.1", save, edited),
    )


def test_an_edited_load_that_comes_back_as_the_control_keeps_the_promise() -> None:
    edited = _step(Stage.LOAD, Verdict.COMPLETED, transcript="x=0x1\n")
    assert isinstance(judge_tolerance(_evidence(edited), DROPPED, 0), Agree)
    assert isinstance(judge_tolerance(_evidence(edited), DROPPED, None), Agree)


@pytest.mark.parametrize(
    ("edited", "came_back", "said"),
    [
        (
            _step(Stage.LOAD, Verdict.REFUSED, "error while loading state for instance 0x0 of "
                  "device 'cpu'"),
            None, "refused on load when a cpreg is missing from it",
        ),
        (
            _step(Stage.LOAD, Verdict.CRASHED, "Segmentation fault"),
            None, "crashed on load when a cpreg is missing from it",
        ),
        # Heap bytes where the reset value was due (seen on 11.1: 0x3f0 for 0).
        (
            _step(Stage.LOAD, Verdict.COMPLETED, transcript="x=0x1\n"),
            0x3F0, "a cpreg missing from the stream does not keep its reset value",
        ),
        (
            _step(Stage.LOAD, Verdict.COMPLETED, transcript="x=0x2\n"),
            0, "a cpreg missing from the stream changes the guest's read-back: x",
        ),
    ],
)  # fmt: skip
def test_each_broken_promise_is_named_by_what_happened(edited, came_back, said) -> None:
    judged = judge_tolerance(_evidence(edited), DROPPED, came_back)
    assert isinstance(judged, Divergence)
    assert str(judged.signature) == f"tolerance: {said}"
    assert judged.details["dropped"]["name"] == "DBGWCR0_EL1"
    check = ToleranceCheck(DROPPED, _evidence(edited), judged, b"edited")
    assert check.causes == (judged.signature,)
    assert check.to_json()["dropped"]["action"] == "drop"


def test_only_registers_at_their_reset_value_on_every_cpu_are_left_out() -> None:
    reset = ({1: 0, 2: 5, 3: 7}, {1: 0, 2: 5, 3: 8})
    tables = ({1: 0, 2: 6, 3: 7}, {1: 0, 2: 5, 3: 9})  # 2 written on CPU 0, 3 on CPU 1
    assert at_reset(tables, reset) == [1]


def test_the_register_left_out_is_fixed_by_the_configuration() -> None:
    a = MachineConfig("virt-10.0", "cortex-a57")
    b = MachineConfig("virt-10.0", "cortex-a72")
    assert pick(a, 1000) == pick(a, 1000)  # the same while a finding's guest is shrunk
    assert len({pick(MachineConfig("virt-10.0", "cortex-a57", smp=n), 1000) for n in (1, 2, 3)}) > 1
    assert 0 <= pick(b, 7) < 7
