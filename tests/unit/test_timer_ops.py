"""Timer deadlines (:class:`~strategies.guests.ArmDeadline`), without QEMU.

Their JSON form round-trips; what the exception level allows is checked where it can be
(no drop after an EL2 or EL3 timer's deadline) and guarded at run time where it cannot
(the EL, EL2, FEAT_VHE); their code assembles with GNU as to exactly the image; the
read-back after a restore names each timer whose last arming set a deadline; the
strategies draw them and shrink them away; and the judge reports a timer the guest saw due
but not fired, on A -> A too, naming the timer.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from fuzz.core.outcome import Stage, StepOutcome, TransferOutcome, Verdict
from fuzz.errors import CorpusError, InvalidInput
from fuzz.judge import transcript
from fuzz.judge.oracles import Agree, Divergence, Evidence, Signature, judge
from strategies import image
from strategies.guests import (
    DEADLINE_TIMERS,
    MAX_TIMER_MICROS,
    MIN_TIMER_MICROS,
    ArmDeadline,
    ArmTimer,
    DropToEl,
    EnableMmu,
    Operation,
    SetGpr,
    check_operations,
    guest_operations,
    operations_from_json,
    operations_to_json,
    timer_deadlines,
)
from strategies.image import after_restore_items, build_guest, readback_items
from tests.gnu_as import gnu_as

EVERY_TIMER: list[Operation] = [
    ArmDeadline(timer, MIN_TIMER_MICROS + 1000 * i, tval=i % 2 == 1, mask=i % 3 == 0)
    for i, timer in enumerate(DEADLINE_TIMERS)
]
HIGH = ("hyp_physical", "hyp_virtual", "secure_physical")


def _has_deadline(ops: list[Operation]) -> bool:
    return any(isinstance(op, ArmDeadline) for op in ops)


# -- the operation and its JSON ----------------------------------------------------------


def test_a_deadline_has_its_json_form_and_round_trips() -> None:
    op = ArmDeadline("hyp_virtual", 2500, tval=True, mask=True)
    assert op.to_json() == {
        "op": "deadline", "timer": "hyp_virtual", "micros": 2500, "tval": True, "mask": True,
    }  # fmt: skip
    stored = json.loads(json.dumps(operations_to_json(EVERY_TIMER)))
    assert operations_from_json(stored) == EVERY_TIMER


@given(st.lists(timer_deadlines(), max_size=5))
def test_drawn_deadlines_round_trip_through_json(ops: list[Operation]) -> None:
    assert operations_from_json(json.loads(json.dumps(operations_to_json(ops)))) == ops


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ArmDeadline("cntp", 3000), r"timer='cntp' not one of physical, virtual"),  # type: ignore[arg-type]
        (lambda: ArmDeadline("physical", MIN_TIMER_MICROS - 1), r"micros=1999 not an integer"),
        (lambda: ArmDeadline("virtual", MAX_TIMER_MICROS + 1), r"micros=20001 not an integer"),
        (lambda: ArmDeadline("virtual", True), r"micros=True not an integer"),
        (lambda: ArmDeadline("physical", 3000, tval=1), r"tval=1 is not a bool"),  # type: ignore[arg-type]
        (lambda: ArmDeadline("physical", 3000, mask="no"), r"mask='no' is not a bool"),  # type: ignore[arg-type]
    ],
)  # fmt: skip
def test_the_constructor_refuses_unknown_timers_and_far_or_odd_deadlines(
    make: object, match: str
) -> None:
    with pytest.raises(InvalidInput, match=match):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    "bad",
    [
        {"op": "deadline", "timer": "hyp_physical"},  # no micros
        {"op": "deadline", "timer": "secure", "micros": 3000},
        {"op": "deadline", "timer": "virtual", "micros": "0x10"},  # too near
        {"op": "deadline", "timer": "virtual", "micros": 3000, "tval": "yes"},
    ],
)
def test_malformed_deadlines_are_a_corpus_error(bad: object) -> None:
    with pytest.raises(CorpusError, match=r"^guest operation 0: "):
        operations_from_json([bad])


# -- what the exception level allows -----------------------------------------------------


@pytest.mark.parametrize("timer", HIGH)
def test_no_drop_may_follow_a_deadline_on_an_el2_or_el3_timer(timer: str) -> None:
    ops: list[Operation] = [ArmDeadline(timer, 3000), DropToEl(1)]  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"operation 1: an exception-level drop after a dead"):
        check_operations(ops)
    with pytest.raises(CorpusError, match=r"operation 1: an exception-level drop after a dead"):
        operations_from_json(operations_to_json(ops))
    # Before the deadline, or after one on an EL1 timer, a drop is fine.
    check_operations([DropToEl(2), ArmDeadline(timer, 3000)])  # type: ignore[arg-type]
    check_operations([ArmDeadline("physical", 3000), ArmDeadline("virtual", 3000), DropToEl(1)])


@settings(max_examples=50)
@given(guest_operations())
def test_drawn_guests_never_drop_below_an_el2_or_el3_timer(ops: list[Operation]) -> None:
    check_operations(ops)


def _guard_of(timer: str) -> str:
    """The listing of the operation's run-time guard, up to the timer's first access."""
    text = build_guest([ArmDeadline(timer, 3000)]).source()  # type: ignore[arg-type]
    start = text.index("str x1, [x2, #8]")  # the prologue's last store (ticks per us)
    return text[start : text.index("L_deadline_skip_1:")]


def test_each_timer_is_set_only_where_the_el_and_the_cpu_have_it() -> None:
    current_el, pfr0, mmfr1 = "s3_0_c4_c2_2", "s3_0_c0_c4_0", "s3_0_c0_c7_1"
    for timer in ("physical", "virtual"):  # every EL has them
        assert current_el not in _guard_of(timer)
    hyp = _guard_of("hyp_physical")  # EL2 or EL3, on a CPU with EL2
    assert current_el in hyp and "#3, L_deadline_skip_1" in hyp and pfr0 in hyp
    assert mmfr1 not in hyp
    assert mmfr1 in _guard_of("hyp_virtual")  # and FEAT_VHE
    secure = _guard_of("secure_physical")  # EL3 only
    assert "#3, L_deadline_skip_1" in secure and "#2, L_deadline_skip_1" in secure
    assert pfr0 not in secure


def test_each_timer_uses_its_own_registers() -> None:
    # (CTL, CVAL) as GNU as spells them: CNTP, CNTV, CNTHP, CNTHV, CNTPS.
    registers = {
        "physical": ("s3_3_c14_c2_1", "s3_3_c14_c2_2"),
        "virtual": ("s3_3_c14_c3_1", "s3_3_c14_c3_2"),
        "hyp_physical": ("s3_4_c14_c2_1", "s3_4_c14_c2_2"),
        "hyp_virtual": ("s3_4_c14_c3_1", "s3_4_c14_c3_2"),
        "secure_physical": ("s3_7_c14_c2_1", "s3_7_c14_c2_2"),
    }
    for timer, (ctl, cval) in registers.items():
        text = build_guest([ArmDeadline(timer, 3000)]).source()  # type: ignore[arg-type]
        assert f"msr {ctl}, x28" in text and f"msr {cval}, x28" in text, timer
        tval = cval[:-1] + "0"
        assert f"msr {tval}, x28" in text, timer  # re-armed through TVAL at the checkpoint


# -- the image and its read-back ---------------------------------------------------------


@pytest.mark.parametrize(
    "ops",
    [
        EVERY_TIMER,
        [ArmDeadline("virtual", MAX_TIMER_MICROS, tval=True), DropToEl(1), EnableMmu()],
        [DropToEl(2), EnableMmu(caches=True), ArmDeadline("hyp_physical", 4000, mask=True)],
    ],
    ids=["every-timer", "el1-mmu", "el2-mmu"],
)
def test_deadlines_assemble_with_gnu_as_to_their_image(ops: list[Operation]) -> None:
    guest = build_guest(ops)
    assert gnu_as(guest.source()) == guest.image


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(guest_operations().filter(_has_deadline))
def test_drawn_guests_with_deadlines_assemble_with_gnu_as(ops: list[Operation]) -> None:
    guest = build_guest(ops)
    assert gnu_as(guest.source()) == guest.image


def test_the_last_arming_of_a_timer_decides_what_is_read_back() -> None:
    assert after_restore_items(EVERY_TIMER) == [f"timer.{t}.fired" for t in DEADLINE_TIMERS]
    assert readback_items(EVERY_TIMER) == ["el", "nzcv", "daif"]  # nothing before the save
    # A deadline after ArmTimer replaces its CVAL and CTL items (CVAL now moves) ...
    ops: list[Operation] = [ArmTimer("physical", 5, enable=True), ArmDeadline("physical", 3000)]
    assert (readback_items(ops), after_restore_items(ops)) == (
        ["el", "nzcv", "daif"], ["timer.physical.fired"],
    )  # fmt: skip
    # ... and ArmTimer after a deadline brings them back, with nothing to wait for.
    ops = [ArmDeadline("virtual", 3000), ArmTimer("virtual", 5), SetGpr(1, 2)]
    assert readback_items(ops) == ["el", "CNTV_CVAL_EL0", "CNTV_CTL_EL0", "x1", "nzcv", "daif"]
    assert after_restore_items(ops) == []


def test_a_guest_without_deadlines_has_no_timer_wait() -> None:
    for ops in ([], [ArmTimer("virtual", 7, enable=True)], [ArmDeadline("virtual", 3000)]):
        text = build_guest(ops).source()
        waits = _has_deadline(ops)  # type: ignore[arg-type]
        assert ("L_wait_timers_done" in text) is waits
        assert ("L_rearm_next_" in text) is waits
        assert ("s3_3_c14_c0_0" in text) is waits  # CNTFRQ_EL0, read once at reset


def test_the_guest_and_the_judge_agree_on_the_timer_lines() -> None:
    assert (image.TIMER_FIRED, image.TIMER_MISSED) == (
        transcript.TIMER_FIRED, transcript.TIMER_MISSED,
    )  # fmt: skip
    assert all(transcript.TIMER_ITEM.match(n) for n in after_restore_items(EVERY_TIMER))
    assert len({image.TIMER_FIRED, image.TIMER_MISSED, image.TIMER_ABSENT,
                image.TIMER_NOT_DUE}) == 4  # fmt: skip
    # The informative line after each verdict is no item: how late QEMU was is not compared.
    assert transcript.parse_transcript("timer.virtual seen 0x12 ticks past its deadline") == {}


# -- the strategies ----------------------------------------------------------------------


def test_the_strategy_draws_deadlines_in_their_simplest_form() -> None:
    found = find(guest_operations(), _has_deadline)
    assert found == [ArmDeadline("physical", MIN_TIMER_MICROS)]
    for timer in DEADLINE_TIMERS:
        op = find(timer_deadlines(), lambda op, t=timer: op.timer == t)  # type: ignore[misc]
        assert op == ArmDeadline(timer, MIN_TIMER_MICROS)


def test_guests_shrink_to_no_deadline() -> None:
    needs_two = find(guest_operations(), lambda ops: len(ops) >= 2)
    assert not _has_deadline(needs_two)


@given(guest_operations(deadlines=False))
def test_without_deadlines_none_is_drawn(ops: list[Operation]) -> None:
    assert not _has_deadline(ops)


# -- the judge ---------------------------------------------------------------------------

CHECKPOINT = "@@MIGFUZZ-CHECKPOINT@@"
BEFORE = "el=0x0000000000000002\nnzcv=0x0000000000000000\n"


def _transfer(dst: str, transcript_text: str) -> TransferOutcome:
    save = StepOutcome(
        Stage.SAVE, "11.1", Verdict.COMPLETED, details={"console": BEFORE + CHECKPOINT + "\n"}
    )
    load = StepOutcome(Stage.LOAD, dst, Verdict.COMPLETED, details={"transcript": transcript_text})
    return TransferOutcome("11.1", dst, save, load)


def _after(**verdicts: int) -> str:
    lines = [f"timer.{t}.fired=0x{v:016x}\ntimer.{t} seen 0x{v + 5:016x} ticks past its deadline"
             for t, v in verdicts.items()]  # fmt: skip
    return "\n".join(lines) + "\n" + BEFORE


def test_a_timer_due_but_not_fired_on_a_to_a_is_a_same_version_finding_naming_it() -> None:
    text = _after(physical=0, virtual=0, hyp_physical=1, hyp_virtual=2)
    found = judge(Evidence(_transfer("11.1", text), _transfer("11.1.2", text)))
    assert isinstance(found, Divergence)
    assert found.signatures() == (
        Signature("same-version-state", "guest read-back differs: timer.physical.fired"),
        Signature("same-version-state", "guest read-back differs: timer.virtual.fired"),
    )
    fired, missed = f"0x{1:016x}", f"0x{0:016x}"
    assert found.details["differences"][0] == {
        "name": "timer.physical.fired", "expected": fired, "actual": missed,
    }  # fmt: skip


def test_a_miss_of_a_timer_qemu_is_known_to_lose_is_compared_only_with_the_control() -> None:
    assert set(HIGH) == transcript.TIMERS_LOST_BY_QEMU
    text = _after(physical=1, hyp_physical=0, hyp_virtual=0, secure_physical=0)
    assert isinstance(judge(Evidence(_transfer("11.1", text), _transfer("11.1.2", text))), Agree)
    fixed = _after(physical=1, hyp_physical=1, hyp_virtual=0, secure_physical=0)
    found = judge(Evidence(_transfer("11.1", text), _transfer("12.0", fixed)))
    assert isinstance(found, Divergence)
    assert found.signatures() == (
        Signature("state", "guest read-back differs: timer.hyp_physical.fired"),
    )


def test_fired_absent_and_alike_timers_are_no_finding() -> None:
    text = _after(physical=1, virtual=1, hyp_physical=2, hyp_virtual=2, secure_physical=1)
    judged = judge(Evidence(_transfer("11.1", text), _transfer("11.1.2", text)))
    assert isinstance(judged, Agree), judged
    # The distances differ (host timing): no item, no finding.
    later = text.replace("seen 0x", "seen 0x1")
    assert isinstance(judge(Evidence(_transfer("11.1", text), _transfer("11.1.2", later))), Agree)


def test_a_timer_that_fires_on_a_to_a_but_not_on_a_to_b_is_a_divergence_of_the_pair() -> None:
    control, pair = _after(virtual=1, hyp_physical=1), _after(virtual=1, hyp_physical=0)
    found = judge(Evidence(_transfer("11.1", control), _transfer("10.0", pair)))
    assert isinstance(found, Divergence)
    assert found.signatures() == (
        Signature("state", "guest read-back differs: timer.hyp_physical.fired"),
    )
