"""Console-side device operations on real QEMU: the PL011, the flash banks and fw_cfg.

A guest that programs the console UART (with and without bytes left in its RX FIFO), puts
the flash banks into a command mode and moves fw_cfg's read position reads every register
back before its checkpoint as the operations fix it (:func:`strategies.image.expected_values`),
and the same after an A -> A restore, on 10.0 and 11.1, at EL1, EL2 and EL3, with the MMU on
or off; after the restore it also reads the FIFO, a flash probe and a fw_cfg DMA probe
(:func:`strategies.image.after_restore_device_items`), whose values are fixed too. On the
clean pair 11.1.2 <-> 11.1 such cases judge as agree in both directions, on fresh and on
long-lived processes: what the read-back adds is no false divergence.

What QEMU gets wrong is pinned here as well: a flash bank restored in a command mode
answers reads with its array (``docs/devices.md``).
"""

from __future__ import annotations

import pytest

from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case, MachineConfig
from fuzz.core.outcome import Verdict
from fuzz.core.settings import RunSettings
from fuzz.judge.oracles import Agree
from fuzz.judge.transcript import EXCEPTION_ITEM, parse_transcript, pre_save_readback
from fuzz.run.session import Session
from fuzz.versions.farm import Farm
from fuzz.versions.probe import probed_settings
from strategies.guests import (
    ConfigureFlash,
    ConfigureFwCfg,
    ConfigureUart,
    DropToEl,
    EnableMmu,
    Operation,
    SetGpr,
)
from strategies.image import (
    FLASH_ABSENT,
    after_restore_device_items,
    build_guest,
    expected_values,
    readback_items,
)
from tests.qemu.conftest import COMMON_MACHINE, same_version_transfers

pytestmark = pytest.mark.qemu

ECHO = "migfuzzechoabcd"
UART = ConfigureUart(
    ibrd=0x1234, fbrd=0x21, lcr_h=0x70, cr=0xF301, ifls=0x12, imsc=0x7F0, icr=0x10, ilpr=3,
    dmacr=4,
)  # fmt: skip
#: Loopback with RTS, DTR, OUT1 and OUT2 set: QEMU 9.0 and later raise CTS, DSR, DCD, RI.
UART_ECHO = ConfigureUart(lcr_h=0x70, cr=0x3F01, imsc=0x50, icr=0x1, echo=ECHO)
GUESTS: dict[str, list[Operation]] = {
    "uart": [UART],
    "uart-echo": [UART, UART_ECHO],
    "flash": [
        ConfigureFlash(1, "program", offset=0x40, data=0x1234_5678, clear=True),
        ConfigureFlash(0, "query"), ConfigureFlash(1, "status"),
    ],
    "flash-ns": [
        DropToEl(1), ConfigureFlash(0, "id"), ConfigureFlash(1, "erase", offset=0x100, clear=True),
    ],
    "fw_cfg": [ConfigureFwCfg(0x0001, skip=2, dma_high=0x8000_0000)],
    "mmu": [
        DropToEl(1), EnableMmu(caches=True), UART_ECHO, ConfigureFlash(1, "id", clear=True),
        ConfigureFwCfg(0x0000, skip=1), SetGpr(2, 3),
    ],
}  # fmt: skip
#: Reset EL1, EL2 (with a GICv3) and EL3.
OPTION_SETS: tuple[tuple[tuple[str, str], ...], ...] = (
    (),
    (("virtualization", "on"), ("gic-version", "3")),
    (("secure", "on"),),
)


WRITES = ("program", "erase")


def _after_restore_values(ops: list[Operation]) -> dict[str, int]:
    """What the lines after a restore read on 10.0 and 11.1 (loopback since 9.0)."""
    out: dict[str, int] = {}
    uart = [op for op in ops if isinstance(op, ConfigureUart)]
    if uart:
        left = (uart[-1].echo + "g").encode() if uart[-1].echo else b""
        data = int.from_bytes(left, "big")
        out.update({"pl011.rx_count": len(left), "pl011.rx_data": data, "pl011.rx_flags": 0})
    for bank in sorted({op.bank for op in ops if isinstance(op, ConfigureFlash)}):
        status, mode = 0x80, "query"  # QEMU's reset status
        for op in ops:
            if isinstance(op, ConfigureFlash) and op.bank == bank:
                status = (0 if op.clear else status) | (0x80 if op.mode in WRITES else 0)
                mode = op.mode
        # 0x70 leaves query mode alone (wcycle 1): 'Q' at 0x40; elsewhere the status.
        out[f"pflash{bank}.probe"] = 0x0051_0051 if mode == "query" else status * 0x1_0001
    fw_cfg = [op for op in ops if isinstance(op, ConfigureFwCfg)]
    if fw_cfg:  # a transfer from 2**63 fails untouched; from 0, the skip succeeds: 0
        out["fw_cfg.dma_control"] = 0x0400_0000 if fw_cfg[-1].dma_high else 0
    return out


@pytest.mark.parametrize("version", ["10.0", "11.1"])
def test_what_a_guest_left_in_the_console_devices_reads_back_after_a_same_version_restore(
    binaries: dict[str, QemuBinary], version: str
) -> None:
    runs = [
        (name, ops, options,
         Case(MachineConfig(COMMON_MACHINE, "cortex-a57", machine_options=options),
              build_guest(ops)))
        for name, ops in GUESTS.items() for options in OPTION_SETS
    ]  # fmt: skip
    results = same_version_transfers(binaries[version], [case for _, _, _, case in runs])
    for (name, ops, options, case), result in zip(runs, results, strict=True):
        where = (name, case.config.describe())
        assert case.guest is not None
        assert result.verdict is Verdict.COMPLETED, (where, result.summary())
        console = result.save.details["console"]
        before = parse_transcript(pre_save_readback(console, case.guest.checkpoint))
        assert EXCEPTION_ITEM not in before, (where, before[EXCEPTION_ITEM])
        assert list(before) == readback_items(ops), where
        expected = expected_values(ops)
        assert {k: before[k] for k in expected} == expected, where
        # Bank 0 is Secure-only with secure=on: out of the guest's reach below EL3.
        absent = options == (("secure", "on"),) and name == "flash-ns"
        if "pflash0.at40" in before:
            assert (int(before["pflash0.at40"], 16) == FLASH_ABSENT) == absent, where
        assert result.load is not None
        after = parse_transcript(result.load.details["transcript"])
        extra = after_restore_device_items(ops)
        assert [n for n in after if n in extra] == extra, where
        values = _after_restore_values(ops)
        if absent:
            values["pflash0.probe"] = FLASH_ABSENT
        assert {n: int(after[n], 16) for n in values} == values, where
        # 10.0 (10.0.13) and 11.1 keep a flash bank's mode too (5.2, 7.2, 10.0.2 do not).
        assert {n: v for n, v in after.items() if n not in extra} == before, where


@pytest.mark.parametrize("version", ["5.2", "7.2", "10.0.2"])
def test_older_versions_restore_a_flash_bank_in_query_mode_answering_with_its_array(
    farm: Farm, version: str
) -> None:
    """QEMU bug: the bank's command state comes back, its ROMD mode does not.

    A write puts a ``cfi.pflash01`` into I/O mode (``memory_region_rom_device_set_romd``)
    so that reads reach ``pflash_read``; the mode is in no vmstate and ``pflash_post_load``
    does not set it from ``wcycle``/``cmd``, so the destination reads the array directly
    until the next command write. 10.0.13 and 11.1 answer 'Q' (the test above).
    """
    if version not in farm.installed():
        pytest.skip(f"{version} is not installed")
    ops: list[Operation] = [ConfigureFlash(1, "program", offset=0x40, data=0x1234_5678),
                            ConfigureFlash(1, "query")]  # fmt: skip
    binary = farm.get(version)
    case = Case(MachineConfig(COMMON_MACHINE, "cortex-a57"), build_guest(ops))
    (result,) = same_version_transfers(binary, [case])
    assert case.guest is not None and result.load is not None, result.summary()
    console = result.save.details["console"]
    before = parse_transcript(pre_save_readback(console, case.guest.checkpoint))
    after = parse_transcript(result.load.details["transcript"])
    assert before["pflash1.at40"] == f"0x{0x0051_0051:016x}"  # CFI 'Q' before the save
    assert after["pflash1.at40"] == f"0x{0x1234_5678:016x}"  # the array after the restore
    # A read-status write in query mode (wcycle 1) changes nothing, ROMD mode included.
    assert after["pflash1.probe"] == f"0x{0x1234_5678:016x}"


@pytest.mark.parametrize(("src", "dst"), [("11.1.2", "11.1"), ("11.1", "11.1.2")])
def test_console_device_cases_agree_on_the_clean_pair(farm: Farm, src: str, dst: str) -> None:
    if "11.1.2" not in farm.installed():
        pytest.skip("11.1.2 is not installed (scripts/setup installs it from qemu.lock)")
    source, destination = farm.get(src), farm.get(dst)
    cases = [
        Case(MachineConfig(COMMON_MACHINE, cpu, machine_options=options), build_guest(ops))
        for ops, cpu, options in (
            ([*GUESTS["uart-echo"], *GUESTS["fw_cfg"]], "cortex-a57", ()),
            (GUESTS["mmu"], "max", (("secure", "on"), ("virtualization", "on"))),
        )
    ]
    with Session(RunSettings(reuse=False)) as session:
        runs = [session.run_case(source, destination, case) for case in cases]
    for run in runs:
        assert isinstance(run.judgement, Agree), run.judgement
        transcript = run.pair.load.details["transcript"] if run.pair.load else ""
        assert "pl011.rx_data=" in transcript and "fw_cfg.dma_control=" in transcript


def test_console_device_guests_agree_one_after_another_on_long_lived_processes(
    farm: Farm,
) -> None:
    if "11.1.2" not in farm.installed():
        pytest.skip("11.1.2 is not installed (scripts/setup installs it from qemu.lock)")
    src, other = farm.get("11.1"), farm.get("11.1.2")
    settings = probed_settings([src, other], farm.cache_dir, reuse=True)
    config = MachineConfig("virt", "cortex-a57")
    # An echo left in the FIFO and a flash left in query mode, then guests without them.
    guests: list[list[Operation]] = [
        GUESTS["uart-echo"], [SetGpr(1, 2)], GUESTS["uart"], GUESTS["fw_cfg"],
        [ConfigureFlash(1, "query")], [ConfigureFlash(1, "status")],
    ]  # fmt: skip
    with Session(settings) as session:
        runs = [
            session.run_cases(
                src, [other], Case(config, build_guest(ops)), more_alike=i + 1 < len(guests)
            )
            for i, ops in enumerate(guests)
        ]
        stats = dict(session.cases.stats)
    assert stats["reused"] > 0, stats
    for pair_runs in runs:
        assert all(isinstance(r.judgement, Agree) for r in pair_runs), [
            r.judgement for r in pair_runs
        ]
    assert stats["disagreed"] == 0, stats
