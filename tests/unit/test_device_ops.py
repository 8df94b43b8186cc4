"""Device operations (the PL031 RTC, the PL061 GPIO), without QEMU.

Their JSON form round-trips; their code assembles with GNU as to exactly the image, alone,
with the MMU on and in drawn guests; their read-back names every register QEMU migrates
that a guest can read; the strategies draw them and shrink them away; and the judge names
a device register that differs, with both values.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from fuzz.core.outcome import Stage, StepOutcome, TransferOutcome, Verdict
from fuzz.errors import CorpusError, InvalidInput
from fuzz.judge.oracles import Divergence, Evidence, Signature, judge
from strategies.guests import (
    RTC_QUIET,
    ConfigureGpio,
    ConfigureRtc,
    DropToEl,
    EnableMmu,
    Operation,
    SetGpr,
    gpio_settings,
    guest_operations,
    operations_from_json,
    operations_to_json,
    rtc_settings,
)
from strategies.image import (
    PL031_BASE,
    PL061_BASE,
    build_guest,
    expected_values,
    readback_items,
)
from tests.gnu_as import gnu_as

RTC = ConfigureRtc(0x1234_5678, 0x1234_5678 + 0x2_0000, mask=True, alarm=True)
GPIO = ConfigureGpio(
    direction=0x0F, data=0xA5, sense=0x30, both_edges=0x40, event=0x81, mask=0xFF, clear=0x01,
    afsel=0x3C,
)  # fmt: skip
RTC_ITEMS = ["dr_near_load", "mr", "lr", "cr", "imsc", "ris", "mis"]
GPIO_ITEMS = ["data", "dir", "is", "ibe", "iev", "ie", "ris", "mis", "afsel"]
U32 = (1 << 32) - 1


def _has_device_op(ops: list[Operation]) -> bool:
    return any(isinstance(op, ConfigureRtc | ConfigureGpio) for op in ops)


# -- the operations and their JSON -------------------------------------------------------


def test_the_device_ops_have_their_json_form_and_round_trip() -> None:
    assert RTC.to_json() == {
        "op": "pl031", "load": "0x12345678", "match": "0x12365678", "mask": True, "alarm": True,
    }  # fmt: skip
    assert GPIO.to_json() == {
        "op": "pl061", "direction": "0x0f", "data": "0xa5", "sense": "0x30",
        "both_edges": "0x40", "event": "0x81", "mask": "0xff", "clear": "0x01", "afsel": "0x3c",
    }  # fmt: skip
    ops: list[Operation] = [RTC, GPIO, ConfigureGpio(), ConfigureRtc(0, RTC_QUIET)]
    stored = json.loads(json.dumps(operations_to_json(ops)))
    assert operations_from_json(stored) == ops


@given(st.lists(st.one_of(rtc_settings(), gpio_settings()), max_size=4))
def test_drawn_device_ops_round_trip_through_json(ops: list[Operation]) -> None:
    assert operations_from_json(json.loads(json.dumps(operations_to_json(ops)))) == ops


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ConfigureRtc(1 << 32, RTC_QUIET), r"load=4294967296 not an integer in 0x0..0xff"),
        (lambda: ConfigureRtc(0, -1), r"match=-1 not an integer"),
        (lambda: ConfigureRtc(0, RTC_QUIET - 1), r"is less than 0x10000 s after load=0x0"),
        (lambda: ConfigureRtc(U32, RTC_QUIET - 2), r"is less than 0x10000 s after load"),
        (lambda: ConfigureRtc(5, 5), r"the alarm would fire at a time"),
        (lambda: ConfigureRtc(0, RTC_QUIET, mask=1), r"mask=1 is not a bool"),  # type: ignore[arg-type]
        (lambda: ConfigureGpio(direction=0x100), r"direction=256 not an integer in 0x0..0xff"),
        (lambda: ConfigureGpio(afsel=-1), r"afsel=-1 not an integer"),
        (lambda: ConfigureGpio(clear=True), r"clear=True not an integer"),
    ],
)  # fmt: skip
def test_constructors_refuse_what_the_device_or_the_timing_would_not_take(
    make: object, match: str
) -> None:
    with pytest.raises(InvalidInput, match=match):
        make()  # type: ignore[operator]


def test_an_alarm_behind_the_load_is_far_away_too() -> None:
    assert ConfigureRtc(RTC_QUIET, 0).match == 0  # 2**32 - RTC_QUIET seconds ahead
    assert ConfigureRtc(U32, RTC_QUIET - 1).load == U32  # wraps: exactly RTC_QUIET ahead


@pytest.mark.parametrize(
    "bad",
    [
        {"op": "pl031", "load": "0x1", "match": "0x2"},  # match too close
        {"op": "pl031", "load": "0x1"},  # no match
        {"op": "pl061", "direction": "0x1ff", "data": 0, "sense": 0, "both_edges": 0,
         "event": 0, "mask": 0, "clear": 0, "afsel": 0},
        {"op": "pl061", "direction": 1},  # the other registers missing
    ],
)  # fmt: skip
def test_malformed_device_ops_are_a_corpus_error(bad: object) -> None:
    with pytest.raises(CorpusError, match=r"^guest operation 0: "):
        operations_from_json([bad])


# -- the image ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ops",
    [
        [RTC], [GPIO], [RTC, GPIO, ConfigureRtc(7, 0, alarm=False)],
        [DropToEl(1), EnableMmu(), GPIO, RTC],
    ],
    ids=["rtc", "gpio", "both", "mmu"],
)  # fmt: skip
def test_device_ops_assemble_with_gnu_as_to_their_image(ops: list[Operation]) -> None:
    guest = build_guest(ops)
    assert gnu_as(guest.source()) == guest.image


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(guest_operations().filter(_has_device_op))
def test_drawn_guests_with_device_ops_assemble_with_gnu_as(ops: list[Operation]) -> None:
    guest = build_guest(ops)
    assert gnu_as(guest.source()) == guest.image


def test_the_devices_are_reached_at_the_boards_addresses() -> None:
    # hw/arm/virt.c base_memmap: [VIRT_RTC] = { 0x09010000, ... }, [VIRT_GPIO] = { 0x09030000, ... }
    assert (PL031_BASE, PL061_BASE) == (0x0901_0000, 0x0903_0000)
    listing = build_guest([RTC, GPIO]).source()
    assert "#0x901, lsl #16" in listing and "#0x903, lsl #16" in listing
    # A guest without device operations never touches them.
    plain = build_guest([SetGpr(0, 1), EnableMmu()]).source()
    assert "#0x901, lsl #16" not in plain and "#0x903, lsl #16" not in plain


def test_the_read_back_names_every_readable_migrated_register_once() -> None:
    assert readback_items([SetGpr(1, 2)]) == ["el", "x1", "nzcv", "daif"]
    names = readback_items([GPIO, SetGpr(1, 2), RTC, ConfigureRtc(0, RTC_QUIET)])
    assert names == [
        "el",
        *(f"pl031.{n}" for n in RTC_ITEMS),
        *(f"pl061.{n}" for n in GPIO_ITEMS),
        "x1",
        "nzcv",
        "daif",
    ]


def test_expected_values_follow_qemus_pl031_and_pl061() -> None:
    # What QEMU 5.2 to 11.1 read back for these two operations (tests/qemu/test_device_ops.py).
    values = expected_values([RTC, GPIO])
    assert {k: int(v, 16) for k, v in values.items() if k.startswith("pl0")} == {
        "pl031.dr_near_load": 1, "pl031.mr": 0x1236_5678, "pl031.cr": 1, "pl031.imsc": 1,
        "pl031.ris": 1, "pl031.mis": 1,
        # Lines 4 and 5 are level-sensitive (IS) and were raised as IS was written (DATA
        # and IEV both 0 then). Lines 4..7 turned back into inputs keep their data bits:
        # line 7 saw a rising edge, which IEV selects; line 6 (IBE) saw none (its bit is 0).
        "pl061.data": 0xA5, "pl061.dir": 0x0F, "pl061.is": 0x30, "pl061.ibe": 0x40,
        "pl061.iev": 0x81, "pl061.ie": 0xFF, "pl061.ris": 0xB0, "pl061.mis": 0xB0,
        "pl061.afsel": 0x3C,
    }  # fmt: skip
    assert "pl031.lr" not in values  # QEMU before 9.0 never set it on a write
    # The last RTC setting decides; a later clear leaves RIS and MIS 0.
    later = expected_values([RTC, ConfigureRtc(0, RTC_QUIET, mask=True)])
    assert (later["pl031.ris"], later["pl031.mis"]) == (f"0x{0:016x}", f"0x{0:016x}")
    assert later["pl031.mr"] == f"0x{RTC_QUIET:016x}"


def test_an_rtc_alarm_retries_and_a_clear_does_not() -> None:
    with_alarm = build_guest([RTC]).source()
    without = build_guest([ConfigureRtc(0x1234_5678, 0x1236_5678, mask=True)]).source()
    assert "L_rtc_alarm_" in with_alarm
    assert "L_rtc_alarm_" not in without


# -- the strategies ----------------------------------------------------------------------


def test_the_strategy_draws_both_device_ops_in_their_simplest_form() -> None:
    rtc = find(guest_operations(), lambda ops: any(isinstance(op, ConfigureRtc) for op in ops))
    gpio = find(guest_operations(), lambda ops: any(isinstance(op, ConfigureGpio) for op in ops))
    assert rtc == [ConfigureRtc(0, RTC_QUIET)]
    assert gpio == [ConfigureGpio()]


def test_guests_shrink_to_no_device_operation() -> None:
    assert find(guest_operations(), lambda ops: True) == []
    # A device operation that is not needed is shrunk away (toward a GPR write).
    needs_one = find(guest_operations(), lambda ops: len(ops) >= 2)
    assert not _has_device_op(needs_one)
    assert find(rtc_settings(), lambda op: op.alarm and op.mask) == ConfigureRtc(
        0, RTC_QUIET, mask=True, alarm=True
    )


@given(guest_operations(devices=False))
def test_without_devices_no_device_op_is_drawn(ops: list[Operation]) -> None:
    assert not _has_device_op(ops)


@given(rtc_settings())
def test_drawn_alarms_stay_out_of_the_quiet_window(op: ConfigureRtc) -> None:
    assert (op.match - op.load) % (1 << 32) >= RTC_QUIET


# -- the judge ---------------------------------------------------------------------------

CHECKPOINT = "@@MIGFUZZ-CHECKPOINT@@"


def _transfer(dst: str, console: str, transcript: str) -> TransferOutcome:
    save = StepOutcome(Stage.SAVE, "11.1", Verdict.COMPLETED, details={"console": console})
    load = StepOutcome(Stage.LOAD, dst, Verdict.COMPLETED, details={"transcript": transcript})
    return TransferOutcome("11.1", dst, save, load)


@pytest.mark.parametrize(
    ("name", "pair_value"),
    [("pl031.lr", "0x0000000000000000"), ("pl061.ris", "0x0000000000000030")],
)
def test_a_device_register_that_differs_is_a_divergence_naming_it_and_both_values(
    name: str, pair_value: str
) -> None:
    values = {**expected_values([RTC, GPIO]), "pl031.lr": "0x0000000012345678"}
    items = [n for n in readback_items([RTC, GPIO]) if n in values]
    text = "".join(f"{n}={values[n]}\n" for n in items)
    control = _transfer("11.1", text + CHECKPOINT + "\n", text)
    pair_text = text.replace(f"{name}={values[name]}", f"{name}={pair_value}")
    assert pair_text != text
    found = judge(Evidence(control, _transfer("10.0", text + CHECKPOINT + "\n", pair_text)))
    assert isinstance(found, Divergence)
    assert found.signatures() == (Signature("state", f"guest read-back differs: {name}"),)
    assert found.details["differences"] == [
        {"name": name, "expected": values[name], "actual": pair_value}
    ]
    # The same read-back on both sides agrees.
    assert not isinstance(judge(Evidence(control, _transfer("10.0", "", text))), Divergence)
