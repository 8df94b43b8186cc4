"""Console-side device operations (the PL011 UART, the CFI flash banks, fw_cfg), without QEMU.

Their JSON form round-trips; their code assembles with GNU as to exactly the image, alone,
with the MMU on and in drawn guests; the read-back names every register they leave, before
and after the save; the values fixed before the save follow QEMU's models; the strategies
draw them, keep the console working, and shrink them away.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from fuzz.errors import CorpusError, InvalidInput
from strategies.guests import (
    FW_CFG_ITEMS,
    UART_ECHO_BYTES,
    ConfigureFlash,
    ConfigureFwCfg,
    ConfigureUart,
    DropToEl,
    EnableMmu,
    Operation,
    SetGpr,
    flash_settings,
    fw_cfg_settings,
    guest_operations,
    operations_from_json,
    operations_to_json,
    uart_settings,
)
from strategies.image import (
    FW_CFG_BASE,
    PFLASH_BASES,
    UART_BASE,
    after_restore_device_items,
    build_guest,
    expected_values,
    readback_items,
)
from tests.gnu_as import gnu_as

ECHO = "migfuzzechoabcd"
UART = ConfigureUart(
    ibrd=0x1234, fbrd=0x21, lcr_h=0x70, cr=0xF301, ifls=0x12, imsc=0x7F0, icr=0x10, ilpr=3,
    dmacr=4,
)  # fmt: skip
UART_ECHO = ConfigureUart(lcr_h=0x10, cr=0x3F01, imsc=0x50, echo=ECHO)
QUERY = ConfigureFlash(1, "query")
PROGRAM = ConfigureFlash(0, "program", offset=0x8000, data=0xDEAD_BEEF, clear=True)
FW_CFG = ConfigureFwCfg(0x0000, skip=1, dma_high=0x8000_0000)
UART_ITEMS = ["ibrd", "fbrd", "lcr_h", "cr", "ifls", "imsc", "ilpr", "dmacr", "rsr", "fr",
              "ris", "mis"]  # fmt: skip
KINDS = (ConfigureUart, ConfigureFlash, ConfigureFwCfg)


def _has_op(ops: list[Operation]) -> bool:
    return any(isinstance(op, KINDS) for op in ops)


# -- the operations and their JSON -------------------------------------------------------


def test_the_ops_have_their_json_form_and_round_trip() -> None:
    assert UART.to_json() == {
        "op": "pl011", "ibrd": "0x1234", "fbrd": "0x21", "lcr_h": "0x70", "cr": "0xf301",
        "ifls": "0x12", "imsc": "0x7f0", "icr": "0x10", "ilpr": "0x3", "dmacr": "0x4",
        "echo": "",
    }  # fmt: skip
    assert PROGRAM.to_json() == {
        "op": "pflash", "bank": 0, "mode": "program", "offset": "0x8000",
        "data": "0xdeadbeef", "clear": True,
    }  # fmt: skip
    assert FW_CFG.to_json() == {"op": "fw_cfg", "key": "0x0000", "skip": 1,
                                "dma_high": "0x80000000"}  # fmt: skip
    ops: list[Operation] = [UART, UART_ECHO, QUERY, PROGRAM, FW_CFG, ConfigureUart()]
    stored = json.loads(json.dumps(operations_to_json(ops)))
    assert operations_from_json(stored) == ops


@given(st.lists(st.one_of(uart_settings(), flash_settings(), fw_cfg_settings()), max_size=4))
def test_drawn_ops_round_trip_through_json(ops: list[Operation]) -> None:
    assert operations_from_json(json.loads(json.dumps(operations_to_json(ops)))) == ops


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ConfigureUart(ibrd=0x1_0000), r"ibrd=65536 not an integer in 0x0..0xffff"),
        (lambda: ConfigureUart(fbrd=0x40), r"fbrd=64 not an integer in 0x0..0x3f"),
        (lambda: ConfigureUart(cr=0x300), r"cr=0x300 must set UARTEN, TXE and RXE"),
        (lambda: ConfigureUart(cr=0x381), r"cr=0x381 must .* clear LBE"),
        (lambda: ConfigureUart(lcr_h=0x10, echo="abc"), r"is not 15 lower-case letters"),
        (lambda: ConfigureUart(lcr_h=0x10, echo="ABCDEFGHIJKLMNO"), r"lower-case letters"),
        (lambda: ConfigureUart(echo=ECHO), r"lcr_h=0x0 without FEN cannot hold an echo"),
        (lambda: ConfigureFlash(2, "query"), r"bank=2 not an integer in 0x0..0x1"),
        (lambda: ConfigureFlash(1, "buffer"), r"mode='buffer' not one of query, status"),  # type: ignore[arg-type]
        (lambda: ConfigureFlash(1, "program", offset=2), r"offset=0x2 is not a multiple of 4"),
        (lambda: ConfigureFlash(1, "program", offset=0x1_0000), r"offset=65536 not an integer"),
        (lambda: ConfigureFwCfg(0x19), r"key=25 not one of \[0, 1, 2\]"),
        (lambda: ConfigureFwCfg(0, skip=21), r"skip=21 not an integer in 0x0..0x14"),
        (lambda: ConfigureFwCfg(0, dma_high=0x40), r"dma_high=0x40 could address memory"),
    ],
)  # fmt: skip
def test_constructors_refuse_what_would_break_the_console_or_reach_memory(
    make: object, match: str
) -> None:
    with pytest.raises(InvalidInput, match=match):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    "bad",
    [
        {"op": "pl011", "cr": "0x300"},  # the console's bits missing
        {"op": "pflash", "bank": 1},  # no mode
        {"op": "fw_cfg", "key": "0x0019"},  # the file directory differs between versions
    ],
)
def test_malformed_ops_are_a_corpus_error(bad: object) -> None:
    with pytest.raises(CorpusError, match=r"^guest operation 0: "):
        operations_from_json([bad])


# -- the image ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ops",
    [[UART], [UART_ECHO], [QUERY, PROGRAM], [FW_CFG],
     [DropToEl(1), EnableMmu(), UART_ECHO, PROGRAM, QUERY, FW_CFG]],
    ids=["uart", "echo", "flash", "fw_cfg", "mmu"],
)  # fmt: skip
def test_the_ops_assemble_with_gnu_as_to_their_image(ops: list[Operation]) -> None:
    guest = build_guest(ops)
    assert gnu_as(guest.source()) == guest.image


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(guest_operations().filter(_has_op))
def test_drawn_guests_with_the_ops_assemble_with_gnu_as(ops: list[Operation]) -> None:
    guest = build_guest(ops)
    assert gnu_as(guest.source()) == guest.image


def test_the_devices_are_reached_at_the_boards_addresses() -> None:
    # hw/arm/virt.c base_memmap: [VIRT_FLASH] = { 0, 0x08000000 } (two banks),
    # [VIRT_UART0] = { 0x09000000, ... }, [VIRT_FW_CFG] = { 0x09020000, 0x18 }
    assert (UART_BASE, FW_CFG_BASE, PFLASH_BASES) == (0x0900_0000, 0x0902_0000,
                                                       (0, 0x0400_0000))  # fmt: skip
    listing = build_guest([QUERY, FW_CFG]).source()
    assert "#0x400, lsl #16" in listing and "#0x902, lsl #16" in listing
    assert "strh" in listing  # fw_cfg's selector takes 16-bit writes only
    plain = build_guest([SetGpr(0, 1), EnableMmu()]).source()
    assert "#0x400, lsl #16" not in plain and "#0x902, lsl #16" not in plain


def test_only_a_guest_with_an_echo_waits_for_a_full_fifo() -> None:
    assert "poll_full" in build_guest([UART_ECHO]).source()
    assert "poll_full" not in build_guest([UART, QUERY, FW_CFG]).source()


def test_the_read_back_names_every_register_once_and_the_after_restore_lines() -> None:
    ops: list[Operation] = [FW_CFG, QUERY, SetGpr(1, 2), UART, PROGRAM, UART_ECHO]
    assert readback_items(ops) == [
        "el",
        *(f"pl011.{n}" for n in UART_ITEMS),
        "pflash0.at0", "pflash0.at40", "pflash1.at0", "pflash1.at40",
        "fw_cfg.next",
        "x1",
        "nzcv",
        "daif",
    ]  # fmt: skip
    assert after_restore_device_items(ops) == [
        "pl011.rx_count", "pl011.rx_data", "pl011.rx_flags", "pflash0.probe",
        "pflash1.probe", "fw_cfg.dma_control",
    ]  # fmt: skip
    assert after_restore_device_items([SetGpr(1, 2)]) == []


def _values(ops: list[Operation]) -> dict[str, int]:
    return {k: int(v, 16) for k, v in expected_values(ops).items() if "." in k}


def test_expected_values_follow_qemus_models() -> None:
    assert _values([UART, QUERY, FW_CFG]) == {
        "pl011.ibrd": 0x1234, "pl011.fbrd": 0x21, "pl011.lcr_h": 0x70, "pl011.cr": 0xF301,
        "pl011.ifls": 0x12, "pl011.imsc": 0x7F0, "pl011.ilpr": 3, "pl011.dmacr": 4,
        "pl011.rsr": 0,
        # TXFE | RXFE, no interrupt raised (RIS and MIS read without TX).
        "pl011.fr": 0x90, "pl011.ris": 0, "pl011.mis": 0,
        # Two x16 devices answer each 32-bit read: CFI byte 0x00 is 0, 0x10 is 'Q'.
        "pflash1.at0": 0, "pflash1.at40": 0x0051_0051,
        "fw_cfg.next": int.from_bytes(b"EMU\0", "big"),
    }  # fmt: skip
    # With an echo, FR, RIS and MIS depend on the version (loopback since QEMU 9.0).
    echo = _values([UART_ECHO])
    assert "pl011.fr" not in echo and echo["pl011.cr"] == 0x3F01
    # Bank 0 is out of reach below EL3 with secure=on: compared with the source only.
    assert not any(k.startswith("pflash0") for k in _values([PROGRAM]))


@pytest.mark.parametrize(
    ("ops", "at0", "at40"),
    [
        ([ConfigureFlash(1, "status")], 0x0080_0080, 0x0080_0080),  # reset status: ready
        ([ConfigureFlash(1, "status", clear=True)], 0, 0),
        ([ConfigureFlash(1, "erase", clear=True)], 0x0080_0080, 0x0080_0080),
        ([ConfigureFlash(1, "program", data=1, clear=True)], 0x0080_0080, 0x0080_0080),
        ([ConfigureFlash(1, "id")], 0x0089_0089, 0),  # id0 0x89 (virt), no ID at 0x10
        ([ConfigureFlash(1, "erase"), ConfigureFlash(1, "query", clear=True)], 0, 0x0051_0051),
    ],
)
def test_each_flash_mode_answers_as_qemus_pflash_read(
    ops: list[Operation], at0: int, at40: int
) -> None:
    values = _values(ops)
    assert (values["pflash1.at0"], values["pflash1.at40"]) == (at0, at40)


@pytest.mark.parametrize("key", sorted(FW_CFG_ITEMS))
@pytest.mark.parametrize("skip", [0, 3, 15, 20])
def test_fw_cfg_reads_zeros_past_an_items_end(key: int, skip: int) -> None:
    data = FW_CFG_ITEMS[key][skip : skip + 4].ljust(4, b"\0")
    assert _values([ConfigureFwCfg(key, skip)])["fw_cfg.next"] == int.from_bytes(data, "big")


# -- the strategies ----------------------------------------------------------------------


def test_the_strategy_draws_each_op_in_its_simplest_form() -> None:
    for kind, simplest in (
        (ConfigureUart, ConfigureUart()),
        (ConfigureFlash, ConfigureFlash(0, "query")),
        (ConfigureFwCfg, ConfigureFwCfg(0)),
    ):
        found = find(guest_operations(), lambda ops, k=kind: any(isinstance(o, k) for o in ops))
        assert found == [simplest]


def test_an_echo_shrinks_to_the_first_letters_with_a_fifo() -> None:
    op = find(uart_settings(), lambda op: bool(op.echo))
    assert op == ConfigureUart(lcr_h=0x10, echo="a" * UART_ECHO_BYTES)


@given(uart_settings())
def test_drawn_uart_settings_keep_the_console(op: ConfigureUart) -> None:
    assert op.cr & 0x381 == 0x301
    assert not op.echo or op.lcr_h & 0x10


@given(guest_operations(devices=False))
def test_without_devices_none_is_drawn(ops: list[Operation]) -> None:
    assert not _has_op(ops)
