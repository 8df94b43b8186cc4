"""The judge's verdict table, without QEMU: every control verdict against every pair verdict.

The rules are the README's: a control (A -> A) that is a setup error makes the case invalid;
one that QEMU refused, crashed or hung is a same-version divergence (a QEMU bug, named by
the control's step, ``same-version-`` first), judged before the pair; one that otherwise did
not complete (not run) gives nothing to compare (``ControlFailed``); then a pair that is a
setup error is invalid too; a pair step that did not complete is a divergence named by its
step; only then do the state oracles run, in order. Messages are
QEMU's own, from the committed corpus (``tests/unit/test_signatures.py`` has their sources).
"""

from __future__ import annotations

import itertools

import pytest

from fuzz.core.outcome import Stage, StepOutcome, TransferOutcome, Verdict
from fuzz.errors import InvalidInput
from fuzz.judge.oracles import (
    Agree,
    ControlFailed,
    Divergence,
    Evidence,
    InvalidCase,
    Signature,
    default_oracles,
    guest_transcript_oracle,
    judge,
    state_round_trip_oracle,
)

ASSERTION = (
    "migration/vmstate.c:172: vmstate_load_state: Assertion `first_elem || !n_elems || "
    "!size' failed."
)
MESSAGES = {
    Verdict.COMPLETED: ((), None),
    Verdict.REFUSED: (("Failed to load arm_gicv3:cpu",), 1),
    Verdict.CRASHED: ((ASSERTION,), -6),
    Verdict.HUNG: (("restore did not finish in time",), -9),
    Verdict.SETUP_ERROR: (("unsupported machine type 'virt-11.1'",), 1),
    Verdict.NOT_RUN: ((), None),
}
SIGNATURE_DETAIL = {
    Verdict.REFUSED: "Failed to load arm_gicv3:cpu",
    Verdict.CRASHED: "assertion in vmstate_load_state: first_elem || !n_elems || !size",
    Verdict.HUNG: "",
    Verdict.NOT_RUN: "",
}


def step(stage: Stage, verdict: Verdict, version: str, **details) -> StepOutcome:
    messages, returncode = MESSAGES[verdict]
    return StepOutcome(stage, version, verdict, messages, returncode, details=details)


def transfer(dst: str, verdict: Verdict, stage: Stage, src: str = "7.2") -> TransferOutcome:
    """A transfer whose ``stage`` step ended with ``verdict`` (a failed save has no load)."""
    if stage is Stage.SAVE and verdict is not Verdict.COMPLETED:
        return TransferOutcome(src, dst, step(Stage.SAVE, verdict, src), None)
    return TransferOutcome(
        src, dst, step(Stage.SAVE, Verdict.COMPLETED, src), step(Stage.LOAD, verdict, dst)
    )


CASES = list(itertools.product(Verdict, Stage, Verdict, Stage))


def expected_kind(control: Verdict, pair: Verdict) -> type:
    """The README's order: control setup error, control failure, pair setup error, pair."""
    if control is Verdict.SETUP_ERROR:
        return InvalidCase
    if control in (Verdict.REFUSED, Verdict.CRASHED, Verdict.HUNG):
        return Divergence
    if control is not Verdict.COMPLETED:
        return ControlFailed
    if pair is Verdict.SETUP_ERROR:
        return InvalidCase
    if pair is not Verdict.COMPLETED:
        return Divergence
    return Agree


@pytest.mark.parametrize(
    ("control", "control_stage", "pair", "pair_stage"),
    CASES,
    ids=[f"{c}@{cs}-{p}@{ps}" for c, cs, p, ps in CASES],
)
def test_every_verdict_combination(control, control_stage, pair, pair_stage) -> None:
    evidence = Evidence(transfer("7.2", control, control_stage), transfer("10.0", pair, pair_stage))
    judgement = judge(evidence)
    kind = expected_kind(control, pair)
    assert type(judgement) is kind
    stage = "load" if pair_stage is Stage.LOAD or pair is Verdict.COMPLETED else "save"
    if isinstance(judgement, Divergence) and control is not Verdict.COMPLETED:
        cstage = "save" if control_stage is Stage.SAVE else "load"
        assert judgement.signature == Signature(
            f"same-version-{control}-on-{cstage}", SIGNATURE_DETAIL[control]
        )
        failing = evidence.control.failing_step
        assert failing is not None
        assert judgement.details == {
            "summary": evidence.control.summary(),
            "messages": list(failing.messages),
        }
    elif isinstance(judgement, Divergence):
        assert judgement.signature == Signature(f"{pair}-on-{stage}", SIGNATURE_DETAIL[pair])
        failing = evidence.pair.failing_step
        assert failing is not None
        assert judgement.details == {
            "summary": evidence.pair.summary(),
            "messages": list(failing.messages),
        }
    elif isinstance(judgement, InvalidCase | ControlFailed):
        side = evidence.control if control is not Verdict.COMPLETED else evidence.pair
        assert judgement.reason == side.summary()


def test_reasons_read_as_the_transfer_summary() -> None:
    setup = judge(
        Evidence(
            transfer("7.2", Verdict.SETUP_ERROR, Stage.LOAD),
            transfer("10.0", Verdict.COMPLETED, Stage.LOAD),
        )
    )
    assert setup == InvalidCase("7.2 -> 7.2: setup-error: unsupported machine type 'virt-11.1'")
    crashed = judge(
        Evidence(
            transfer("7.2", Verdict.CRASHED, Stage.LOAD),
            transfer("10.0", Verdict.NOT_RUN, Stage.LOAD),
        )
    )
    assert isinstance(crashed, Divergence)  # a QEMU bug on one version: same-version
    assert crashed.signature == Signature("same-version-crashed-on-load", SIGNATURE_DETAIL[
        Verdict.CRASHED])  # fmt: skip
    not_run = judge(
        Evidence(
            transfer("7.2", Verdict.NOT_RUN, Stage.LOAD),
            transfer("10.0", Verdict.NOT_RUN, Stage.LOAD),
        )
    )
    assert not_run == ControlFailed("7.2 -> 7.2: not-run")
    pair_setup = judge(
        Evidence(
            transfer("7.2", Verdict.COMPLETED, Stage.LOAD),
            transfer("10.0", Verdict.SETUP_ERROR, Stage.LOAD),
        )
    )
    assert pair_setup == InvalidCase(
        "7.2 -> 10.0: setup-error: unsupported machine type 'virt-11.1'"
    )


def loaded(version: str, **details) -> StepOutcome:
    return step(Stage.LOAD, Verdict.COMPLETED, version, **details)


def completed(dst: str, **details) -> TransferOutcome:
    return TransferOutcome(
        "7.2", dst, step(Stage.SAVE, Verdict.COMPLETED, "7.2"), loaded(dst, **details)
    )


def test_a_control_that_did_not_finish_its_read_back_failed() -> None:
    # Two silent guests would otherwise agree.
    control = completed("7.2", transcript="el=0x1\n", transcript_complete=False)
    pair = completed("10.0", transcript="el=0x1\n", transcript_complete=True)
    assert judge(Evidence(control, pair)) == ControlFailed("7.2 -> 7.2: guest read-back incomplete")
    # It is judged before the pair: even a pair that refused is no finding then.
    refused = transfer("10.0", Verdict.REFUSED, Stage.LOAD)
    assert isinstance(judge(Evidence(control, refused)), ControlFailed)
    # A complete (or unrecorded) control read-back lets the pair be judged.
    for flag in ({"transcript_complete": True}, {}):
        assert isinstance(judge(Evidence(completed("7.2", **flag), refused)), Divergence)
    # The pair's own flag is not the control's.
    assert (
        judge(Evidence(completed("7.2"), completed("10.0", transcript_complete=False))) == Agree()
    )


def test_a_completed_transfer_without_a_load_is_judged_by_its_oracles() -> None:
    saved_only = TransferOutcome("7.2", "7.2", step(Stage.SAVE, Verdict.COMPLETED, "7.2"), None)
    assert judge(Evidence(saved_only, completed("10.0"))) == Agree()


@pytest.mark.parametrize(
    ("control", "pair"),
    [
        (("7.2", "7.2"), ("10.0", "11.1")),  # not the same source
        (("7.2", "10.0"), ("7.2", "11.1")),  # the control is not A -> A
        (("10.0", "7.2"), ("7.2", "10.0")),
    ],
)
def test_a_control_must_be_a_to_a_from_the_pair_source(control, pair) -> None:
    save = step(Stage.SAVE, Verdict.COMPLETED, control[0])
    with pytest.raises(
        InvalidInput,
        match=rf"control {control[0]}->{control[1]} does not "
        rf"match pair {pair[0]}->{pair[1]}",
    ):
        judge(
            Evidence(
                TransferOutcome(*control, save, loaded(control[1])),
                TransferOutcome(*pair, save, loaded(pair[1])),
            )
        )


# -- the state oracles, in order ---------------------------------------------------------

FOUND_A = Divergence(Signature("state", "a"), {})
FOUND_B = Divergence(Signature("state", "b"), {})


def test_oracles_run_in_order_and_the_first_finding_wins() -> None:
    evidence = Evidence(completed("7.2"), completed("10.0"))
    calls: list[str] = []

    def oracle(name: str, found: Divergence | None):
        def run(seen: Evidence) -> Divergence | None:
            assert seen is evidence
            calls.append(name)
            return found

        return run

    assert (
        judge(evidence, [oracle("1", None), oracle("2", FOUND_A), oracle("3", FOUND_B)]) is FOUND_A
    )
    assert calls == ["1", "2"]
    assert judge(evidence, [oracle("4", None)]) == Agree()
    assert judge(evidence, []) == Agree()


def test_oracles_run_only_when_both_sides_completed() -> None:
    def never(_evidence: Evidence) -> Divergence | None:
        raise AssertionError("an oracle ran on a transfer that did not complete")

    refused = transfer("10.0", Verdict.REFUSED, Stage.LOAD)
    assert isinstance(judge(Evidence(completed("7.2"), refused), [never]), Divergence)
    crashed = transfer("7.2", Verdict.CRASHED, Stage.LOAD)
    judgement = judge(Evidence(crashed, completed("10.0")), [never])
    assert isinstance(judgement, Divergence) and judgement.signature.kind.startswith("same-")


def test_the_default_oracles() -> None:
    assert default_oracles() == [guest_transcript_oracle, state_round_trip_oracle]
    # Without oracles given, the defaults judge: the read-back first.
    control = completed("7.2", transcript="el=0x1\nnzcv=0x60000000\n")
    pair = completed("10.0", transcript="el=0x1\nnzcv=0x80000000\n")
    judgement = judge(Evidence(control, pair, b"same", b"other"))
    assert isinstance(judgement, Divergence)
    assert judgement.signature == Signature("state", "guest read-back differs: nzcv")
    # An explicit empty list of oracles is honoured: nothing is compared.
    assert judge(Evidence(control, pair), []) == Agree()
