"""Past the first refusal, without QEMU: the reduction, the causes, the joined judgement.

The real loads are in ``tests/qemu/test_past_refusal.py``; here the pieces that decide what
a finding behind a refusal is called, and what it is compared on.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz.core.outcome import Stage, StepOutcome, TransferOutcome, Verdict
from fuzz.errors import StreamError
from fuzz.judge.oracles import Agree, Divergence, Evidence, Signature
from fuzz.judge.past_refusal import (
    PastRefusal,
    judge_patched,
    refusal_causes,
    set_registers,
    unnamed_refusal,
)
from fuzz.run.past_refusal import (
    _Learned,
    _unique,
    foreign_cpu_subsection,
    past_cpu,
    reduce_needed,
    refused_on_cpu,
)
from fuzz.stream.cpregs import CpReg, to_kvm_id
from fuzz.stream.patch import CpregPatch, PatchAction

ID_DFR0_EL1 = to_kvm_id(CpReg.aa64(3, 0, 0, 1, 2))
SCTLR_EL1 = to_kvm_id(CpReg.aa64(3, 0, 1, 0, 0))
AA32_DCC = to_kvm_id(CpReg.aa32(14, 3, 0, 5, 0))

SET_ID = CpregPatch(ID_DFR0_EL1, PatchAction.SET, 0x3010006, 0x3000006)
DROP_DCC = CpregPatch(AA32_DCC, PatchAction.DROP, 0, None)
INSERT_SCTLR = CpregPatch(SCTLR_EL1, PatchAction.INSERT, None, 0x30D0198D)


def _step(stage: Stage, verdict: Verdict, *messages: str, **details: object) -> StepOutcome:
    return StepOutcome(stage, "v", verdict, tuple(messages), None, 0.0, dict(details))


def _evidence(pair_load: StepOutcome, transcript: str = "x=0x1\n") -> Evidence:
    save = _step(Stage.SAVE, Verdict.COMPLETED)
    control = _step(Stage.LOAD, Verdict.COMPLETED, transcript=transcript)
    return Evidence(
        control=TransferOutcome("a", "a", save, control),
        pair=TransferOutcome("a", "b", save, pair_load),
    )


# -- the reduction -----------------------------------------------------------------------


def _reduce(items: list[int], needed: set[int], budget: int = 100) -> tuple[list[int], int]:
    calls = []

    async def accepted(subset: list[int]) -> bool:
        calls.append(subset)
        return needed <= set(subset)

    return asyncio.run(reduce_needed(items, accepted, budget)), len(calls)


@given(st.sets(st.integers(0, 60), min_size=1, max_size=40), st.data())
def test_the_reduction_keeps_exactly_what_is_needed(items, data) -> None:
    needed = data.draw(st.sets(st.sampled_from(sorted(items)), max_size=4))
    found, _calls = _reduce(sorted(items), needed)
    assert set(found) == needed


def test_one_needed_item_among_forty_costs_few_restores() -> None:
    found, calls = _reduce(list(range(40)), {17})
    assert found == [17]
    assert calls <= 45  # each restore is ~60 ms: a new cause costs seconds at most


def test_a_spent_budget_leaves_a_set_that_still_passes() -> None:
    found, calls = _reduce(list(range(40)), {3, 29}, budget=3)
    assert calls == 3
    assert {3, 29} <= set(found)


# -- which refusals it looks past --------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        # 5.2-10.0: the post-load check, no register named.
        (_step(Stage.LOAD, Verdict.REFUSED, "error while loading state for instance 0x0 "
               "of device 'cpu'", load_path={"last_field": "cpu/irq-line-state:x"}), True),
        # 11.1 names the registers.
        (_step(Stage.LOAD, Verdict.REFUSED, "handle_cpreg_only_in_incoming_stream: system "
               "register 0x1013e710 in the incoming stream but unknown"), True),
        (_step(Stage.LOAD, Verdict.REFUSED, "Failed to load cpu:cpreg_vmstate_array_len"), True),
        # Another section, a crash, a save: left as they are.
        (_step(Stage.LOAD, Verdict.REFUSED, "Failed to load arm_gicv3:cpu",
               load_path={"last_field": "arm_gicv3_cpu/sre_el1:icc_sre_el1"}), False),
        (_step(Stage.LOAD, Verdict.CRASHED, "error while loading state for instance 0x0 of "
               "device 'cpu'"), False),
        (_step(Stage.SAVE, Verdict.REFUSED, "device 'cpu'"), False),
        (None, False),
    ],
)  # fmt: skip
def test_only_a_refusal_in_the_cpu_section_is_looked_past(step, expected) -> None:
    assert refused_on_cpu(step) is expected


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (_step(Stage.LOAD, Verdict.COMPLETED), True),
        # Refused or crashed later in the stream: the patch got past the CPU.
        (_step(Stage.LOAD, Verdict.REFUSED, "Missing section footer for usb-dwc3",
               load_path={"last_field": "usb-dwc3:cfg.dwc_usb3_user"}), True),
        (_step(Stage.LOAD, Verdict.CRASHED, "assertion failed",
               load_path={"last_field": "xhci-ring:ccs"}), True),
        # Still in the CPU's section, or nowhere known: not past.
        (_step(Stage.LOAD, Verdict.REFUSED, "error while loading state for instance 0x0 "
               "of device 'cpu'", load_path={"last_field": "cpu/irq-line-state:x"}), False),
        (_step(Stage.LOAD, Verdict.REFUSED, "Failed to load cpu:cpreg_vmstate_array_len",
               load_path={"last_field": "arm_gicv3:x"}), False),
        (_step(Stage.LOAD, Verdict.REFUSED, "load of migration failed"), False),
        (_step(Stage.LOAD, Verdict.HUNG, load_path={"last_field": "pl011:x"}), False),
    ],
)  # fmt: skip
def test_a_patch_got_past_the_cpu_if_the_load_stopped_later(step, expected) -> None:
    assert past_cpu(step) is expected


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (_step(Stage.LOAD, Verdict.CRASHED, "assertion failed",
               load_path={"last_field": "cpu/wfxt-timer:wfxt_timer"}), "cpu/wfxt-timer"),
        (_step(Stage.LOAD, Verdict.REFUSED, "load of migration failed: No such file or "
               "directory: error while loading state for instance 0x0 of device 'cpu': VM "
               "subsection 'cpu/fpmr' in 'cpu' does not exist"), "cpu/fpmr"),
        # A refusal's last field says nothing of the subsection; a crash elsewhere neither.
        (_step(Stage.LOAD, Verdict.REFUSED, "error while loading state for instance 0x0 of "
               "device 'cpu'", load_path={"last_field": "cpu/wfxt-timer:wfxt_timer"}), None),
        (_step(Stage.LOAD, Verdict.CRASHED, "x", load_path={"last_field": "cpu:env.pc"}), None),
        (_step(Stage.LOAD, Verdict.CRASHED, "x", load_path={"last_field": "xhci:x"}), None),
        (None, None),
    ],
)  # fmt: skip
def test_the_subsection_a_load_stopped_on(step, expected) -> None:
    assert foreign_cpu_subsection(step) == expected


def test_a_learned_patch_is_reused_only_on_the_same_source_values() -> None:
    src = {ID_DFR0_EL1: 0x3010006, AA32_DCC: 0}
    dst = {ID_DFR0_EL1: 0x3000006, SCTLR_EL1: 0x30D0198D}
    keys = frozenset({
        (ID_DFR0_EL1, PatchAction.SET), (AA32_DCC, PatchAction.DROP),
        (SCTLR_EL1, PatchAction.INSERT),
    })  # fmt: skip
    learned = _Learned.of(keys, [src, src], [dst, dst])
    assert learned.applies([src, src])
    assert learned.patches([src, src]) == (tuple(sorted((SET_ID, DROP_DCC, INSERT_SCTLR))),) * 2
    # The guest wrote another value where a value is set, or the case has another number
    # of CPUs: the edits learned elsewhere are not this case's.
    assert not learned.applies([src, {**src, ID_DFR0_EL1: 0x3010007}])
    assert not learned.applies([src])
    # A drop or an insertion is the same edit whatever the source held there.
    assert learned.applies([{ID_DFR0_EL1: 0x3010006, AA32_DCC: 0x55}, src])


def test_every_cpu_s_edits_are_recorded_once() -> None:
    other_cpu = CpregPatch(ID_DFR0_EL1, PatchAction.SET, 0x3010006, 0x3000007)
    unique = _unique(((SET_ID, DROP_DCC), (other_cpu, INSERT_SCTLR)))
    assert unique == tuple(sorted((SET_ID, DROP_DCC, INSERT_SCTLR)))


# -- how the causes are named ------------------------------------------------------------


def test_a_refusal_is_signed_by_the_registers_the_patch_changed() -> None:
    causes = refusal_causes("refused-on-load", (SET_ID, DROP_DCC, INSERT_SCTLR))
    assert [str(c) for c in causes] == [
        "refused-on-load: cpreg missing from incoming stream: not kept at its reset value",
        # A dropped AArch32 register goes by its family, as QEMU 11.1's own causes.
        "refused-on-load: cpreg only in incoming stream: P14_3_*",
        "refused-on-load: cpreg value not accepted: ID_DFR0_EL1",
    ]


AA32_ID_DFR0 = to_kvm_id(CpReg.aa32(15, 0, 0, 1, 2))
CTR_EL0 = to_kvm_id(CpReg.aa64(3, 3, 0, 0, 1))


def test_an_id_register_refused_in_both_views_counts_once_under_its_aarch64_name() -> None:
    aa32 = CpregPatch(AA32_ID_DFR0, PatchAction.SET, 0x3010006, 0x3000006)
    assert [c.detail for c in refusal_causes("r", (SET_ID, aa32))] == [
        "cpreg value not accepted: ID_DFR0_EL1"
    ]
    # Alone, the AArch32 view is a cause of its own.
    assert [c.detail for c in refusal_causes("r", (aa32,))] == [
        "cpreg value not accepted: P15_0_C0_C1_2"
    ]


def test_the_id_registers_of_max_are_one_cause() -> None:
    ctr = CpregPatch(CTR_EL0, PatchAction.SET, 0x8444C004, 0x84448004)
    patches = (SET_ID, ctr, DROP_DCC, INSERT_SCTLR)
    assert [c.detail for c in refusal_causes("r", patches, "max")] == [
        "cpreg missing from incoming stream: not kept at its reset value",
        "cpreg only in incoming stream: P14_3_*",
        "cpreg value not accepted: ID registers of CPU model max",
    ]
    named = [c.detail for c in refusal_causes("r", patches, "cortex-a57")]
    assert "cpreg value not accepted: CTR_EL0" in named
    assert "cpreg value not accepted: ID_DFR0_EL1" in named


def _first(detail: str) -> Divergence:
    return Divergence(Signature("refused-on-load", detail), {"messages": ["m"]})


def _past(first: Divergence, judgement: Agree | Divergence) -> PastRefusal:
    evidence = _evidence(_step(Stage.LOAD, Verdict.COMPLETED, transcript="x=0x1\n"))
    return PastRefusal(first, (SET_ID, DROP_DCC), evidence, judgement, b"stream")


def test_an_unnamed_refusal_takes_the_patch_s_causes_and_a_named_one_keeps_its_own() -> None:
    unnamed = _past(_first("error loading device 'cpu' after cpu/irq-line-state:x"), Agree())
    assert [c.detail for c in unnamed.first_causes] == [
        "cpreg only in incoming stream: P14_3_*",
        "cpreg value not accepted: ID_DFR0_EL1",
    ]
    named = _past(_first("cpreg only in incoming stream: ID_AA64ISAR0_EL1"), Agree())
    assert [c.detail for c in named.first_causes] == [
        "cpreg only in incoming stream: ID_AA64ISAR0_EL1"
    ]
    length = _past(_first("Failed to load cpu:cpreg_vmstate_array_len"), Agree())
    assert [c.detail for c in length.first_causes] == ["Failed to load cpu:cpreg_vmstate_array_len"]
    # 10.2's words name no register either; a subsection it names is a cause of its own.
    hook = "error loading device 'cpu': post load hook failed for: cpu, version_id: N"
    assert unnamed_refusal(_first(hook)) and not unnamed_refusal(
        _first("error loading device 'cpu': VM subsection 'cpu/fpmr' in 'cpu' does not exist")
    )


def test_causes_behind_the_refusal_are_findings_of_their_own() -> None:
    gic = Signature("state", "restored state differs: arm_gicv3/x")
    first = _first("cpreg only in incoming stream: ID_AA64ISAR0_EL1")
    past = _past(first, Divergence(gic, {"state": {}}, (gic, first.signature)))
    assert past.behind == (gic,)  # the refusal itself is not "behind" itself
    joined = past.joined()
    assert joined.signatures() == (first.signature, gic)
    record = joined.details["past_refusal"]
    assert record["first"] == [str(first.signature)]
    assert record["causes"] == [str(gic)]
    assert [p["action"] for p in record["patches"]] == ["set", "drop"]
    # An agreeing second load adds no cause.
    assert _past(first, Agree()).joined().signatures() == (first.signature,)


def test_a_refusal_signed_without_a_load_has_nothing_behind_and_round_trips() -> None:
    first = _first("error loading device 'cpu' after cpu/irq-line-state:x")
    signed = PastRefusal(first, (SET_ID, INSERT_SCTLR), None, None, b"", "cortex-a57", (SET_ID,))
    assert [c.detail for c in signed.first_causes] == ["cpreg value not accepted: ID_DFR0_EL1"]
    assert signed.behind == ()
    record = signed.to_json()
    assert record["verdict"] == "not loaded" and record["pair"] is None
    control = _evidence(_step(Stage.LOAD, Verdict.COMPLETED)).control
    again = PastRefusal.from_record(first, record, control)
    assert again.first_causes == signed.first_causes and again.judgement is None


def test_past_a_subsection_left_out_the_cpreg_refusal_is_behind_the_crash() -> None:
    """11.1 -> 10.0: the crash in ``cpu/wfxt-timer`` is the first stop and keeps its own
    words; the register the patch then inserted is a cause found behind it."""
    crash = Divergence(
        Signature("crashed-on-load", "assertion in vmstate_load_state after cpu/wfxt-timer:x"),
        {"messages": ["m"]},
    )
    evidence = _evidence(_step(Stage.LOAD, Verdict.COMPLETED, transcript="x=0x1\n"))
    past = PastRefusal(
        crash, (INSERT_SCTLR,), evidence, Agree(), b"s", "cortex-a57", None, ("cpu/wfxt-timer",)
    )
    assert past.first_causes == crash.signatures()
    assert [str(c) for c in past.behind] == [
        "refused-on-load: cpreg missing from incoming stream: not kept at its reset value"
    ]
    assert past.joined().signatures() == (crash.signature, *past.behind)
    record = past.to_json()
    assert record["left_out"] == ["cpu/wfxt-timer"]
    again = PastRefusal.from_record(crash, record, evidence.control)
    assert again.left_out == past.left_out and again.behind == past.behind
    # Without a subsection left out, the same patch signs the first stop instead.
    plain = PastRefusal(crash, (INSERT_SCTLR,), evidence, Agree(), b"s", "cortex-a57")
    assert plain.behind == ()


def test_one_refused_pair_in_every_is_loaded_past_the_same_way_every_time() -> None:
    from fuzz.core.binary import QemuBinary
    from fuzz.core.case import Case, MachineConfig
    from fuzz.run.engine import looks_behind

    dst = QemuBinary("10.0", Path("/nonexistent/qemu-system-aarch64"), "user")
    cases = [Case(MachineConfig("virt-10.0", "cortex-a57", smp=n, memory_mib=m))
             for n in (1, 2) for m in range(32, 232)]  # fmt: skip
    chosen = [c for c in cases if looks_behind(c, dst, 4)]
    assert 60 <= len(chosen) <= 140  # about one in four
    assert chosen == [c for c in cases if looks_behind(c, dst, 4)]
    assert all(looks_behind(c, dst, 1) for c in cases)


def test_patched_registers_are_left_out_of_the_comparison() -> None:
    assert set_registers((SET_ID, DROP_DCC, INSERT_SCTLR)) == {"ID_DFR0_EL1"}
    control_says, pair_says = "ID_DFR0_EL1=0x3010006\nx=0x1\n", "ID_DFR0_EL1=0x3000006\nx=0x1\n"
    pair_load = _step(Stage.LOAD, Verdict.COMPLETED, transcript=pair_says)
    assert isinstance(judge_patched(_evidence(pair_load, control_says), (SET_ID,)), Agree)
    # Anything else still counts: the comparison is not blind.
    other = _step(Stage.LOAD, Verdict.COMPLETED, transcript="ID_DFR0_EL1=0x3000006\nx=0x2\n")
    judged = judge_patched(_evidence(other, control_says), (SET_ID,))
    assert isinstance(judged, Divergence)
    assert str(judged.signature) == "state: guest read-back differs: x"


def test_a_patch_round_trips_through_json_and_bad_json_is_named() -> None:
    for patch in (SET_ID, DROP_DCC, INSERT_SCTLR):
        assert CpregPatch.from_json(patch.to_json()) == patch
    for bad in (None, {}, {"kvm_id": "zz", "action": "set"}, {"kvm_id": "0x1", "action": "x"}):
        with pytest.raises(StreamError, match="not a cpreg patch"):
            CpregPatch.from_json(bad)
