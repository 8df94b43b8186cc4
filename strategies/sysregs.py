"""The system registers a fuzzed guest may write, with the bits it may set in each.

Pure data. A register is listed only if writing it (with any value the row allows) cannot
change the guest's control flow at EL1, EL2 or EL3 with the MMU off: no SCTLR, VBAR, CPACR,
HCR, no breakpoint or watchpoint enable bit, no single-step bit. Every row exists, is
writable and reads back without trapping at EL1, EL2 and EL3 on ``cortex-a57`` and ``max``
in QEMU 5.2, 7.2, 10.0 and 11.1 (``tests/qemu/test_guests.py`` writes each of them on each
version), and at EL1 on every other model ``virt`` accepts in those versions (a35, a53, a55,
a72, a76, a710, a64fx, neoverse-n1/n2/v1; checked once by hand, not in the tests).

The PMU rows stay accessible with ``-cpu ...,pmu=off`` too, on all four versions (checked by
hand on ``cortex-a57``): a configuration's CPU properties do not shrink the table.

``fields`` are the architecture's defined, writable fields (Arm ARM, Armv8.0 unless noted):
strategies draw mostly values inside them. ``safe`` are the bits that may be set at all:
a value outside ``fields`` but inside ``safe`` is an "arbitrary" value, which the register
may store, mask or ignore (the read-back shows which; compare it with the source's).

Left out because they are missing on 5.2 and 7.2 (UNDEFINED there, present on 10.0 and
11.1): DBGCLAIMSET_EL1, OSDTRRX_EL1, OSDTRTX_EL1, OSECCR_EL1. Left out as RAZ/WI on every
version (nothing to migrate): ACTLR_EL1, MDCCINT_EL1.

The generic timer's control and compare registers are not here: the timer operation writes
them together, always with the interrupt masked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from strategies.asm import SysReg

__all__ = ["ALL_BITS", "SYSTEM_REGISTERS", "SystemRegister", "by_name"]

ALL_BITS: Final = (1 << 64) - 1
"""A 64-bit mask with every bit set."""


@dataclass(frozen=True)
class SystemRegister:
    """One writable system register: its name, encoding and the bits a guest may set.

    :param fields: the bits of the architecture's writable fields.
    :param safe: the bits that may be set without changing control flow (a superset of
        ``fields``); values are always ``value & safe``.
    """

    name: str
    encoding: SysReg
    fields: int = ALL_BITS
    safe: int = ALL_BITS

    def __post_init__(self) -> None:
        """Check that ``fields`` is inside ``safe`` (a table typo would be a guest crash)."""
        if self.fields & ~self.safe:
            raise AssertionError(
                f"{self.name}: fields {self.fields:#x} outside safe {self.safe:#x}"
            )


def _r(
    name: str,
    encoding: tuple[int, int, int, int, int],
    *,
    fields: int = ALL_BITS,
    safe: int = ALL_BITS,
) -> SystemRegister:
    return SystemRegister(name, SysReg(*encoding), fields, safe)


_LOW32 = 0xFFFF_FFFF
# TCR_EL1, Armv8.0: T0SZ, EPD0, IRGN0, ORGN0, SH0, TG0, T1SZ, A1, EPD1, IRGN1, ORGN1, SH1,
# TG1, IPS, AS, TBI0, TBI1 (bits 6 and 35 are RES0).
_TCR_FIELDS = 0x77_FFFF_FFBF
# DBGBCR<n>_EL1: PMC, BAS, HMC, SSC, LBN, BT -- never E (bit 0), which arms the breakpoint.
_DBGBCR_FIELDS = 0x00FF_E1E6
# DBGWCR<n>_EL1: PAC, LSC, BAS, HMC, SSC, LBN, WT, MASK -- never E (bit 0).
_DBGWCR_FIELDS = 0x1FFF_FFFE
_NOT_ENABLE = ALL_BITS & ~1
# MDSCR_EL1: TDCC, KDE, MDE are writable and harmless with no breakpoint armed; SS (bit 0)
# and the read-only DCC status bits are left alone.
_MDSCR_FIELDS = (1 << 12) | (1 << 13) | (1 << 15)

SYSTEM_REGISTERS: Final[tuple[SystemRegister, ...]] = (
    # Thread ID registers: plain 64-bit storage.
    _r("TPIDR_EL0", (3, 3, 13, 0, 2)),
    _r("TPIDRRO_EL0", (3, 3, 13, 0, 3)),
    _r("TPIDR_EL1", (3, 0, 13, 0, 4)),
    _r("CONTEXTIDR_EL1", (3, 0, 13, 0, 1), fields=_LOW32),
    # Translation controls: inert while the MMU is off (the guest never turns it on).
    _r("MAIR_EL1", (3, 0, 10, 2, 0)),
    _r("AMAIR_EL1", (3, 0, 10, 3, 0)),
    _r("TCR_EL1", (3, 0, 2, 0, 2), fields=_TCR_FIELDS),
    _r("TTBR0_EL1", (3, 0, 2, 0, 0)),
    _r("TTBR1_EL1", (3, 0, 2, 0, 1)),
    # Fault and exception-return state: only read by an exception taken to or from EL1.
    _r("FAR_EL1", (3, 0, 6, 0, 0)),
    _r("ESR_EL1", (3, 0, 5, 2, 0), fields=_LOW32),
    _r("AFSR0_EL1", (3, 0, 5, 1, 0), fields=_LOW32),
    _r("AFSR1_EL1", (3, 0, 5, 1, 1), fields=_LOW32),
    _r("PAR_EL1", (3, 0, 7, 4, 0)),
    _r("ELR_EL1", (3, 0, 4, 0, 1)),
    _r("SPSR_EL1", (3, 0, 4, 0, 0), fields=_LOW32),
    _r("SP_EL0", (3, 0, 4, 1, 0)),
    # Timer and cache-selection controls.
    _r("CNTKCTL_EL1", (3, 0, 14, 1, 0), fields=0x3FF),
    _r("CSSELR_EL1", (3, 2, 0, 0, 0), fields=0xF),
    # The frequency the guest is told (storage only: QEMU's counter rate does not change).
    _r("CNTFRQ_EL0", (3, 3, 14, 0, 0), fields=_LOW32),
    # Floating point: FPCR's Armv8.0 fields; FPSR's flags.
    _r("FPCR", (3, 3, 4, 4, 0), fields=0x07FF_9F00),
    _r("FPSR", (3, 3, 4, 4, 1), fields=0xF800_009F),
    # Self-hosted debug: values and controls, never an enable bit.
    _r("MDSCR_EL1", (2, 0, 0, 2, 2), fields=_MDSCR_FIELDS, safe=_MDSCR_FIELDS),
    _r("DBGBVR0_EL1", (2, 0, 0, 0, 4)),
    _r("DBGBCR0_EL1", (2, 0, 0, 0, 5), fields=_DBGBCR_FIELDS, safe=_NOT_ENABLE),
    _r("DBGWVR0_EL1", (2, 0, 0, 0, 6)),
    _r("DBGWCR0_EL1", (2, 0, 0, 0, 7), fields=_DBGWCR_FIELDS, safe=_NOT_ENABLE),
    _r("DBGBVR1_EL1", (2, 0, 0, 1, 4)),
    _r("DBGWVR1_EL1", (2, 0, 0, 1, 6)),
    # Performance monitors, counters stopped (PMCR_EL0.E stays 0): selectors and filters.
    _r("PMUSERENR_EL0", (3, 3, 9, 14, 0), fields=0xF),
    _r("PMSELR_EL0", (3, 3, 9, 12, 5), fields=0x1F),
    _r("PMCCFILTR_EL0", (3, 3, 14, 15, 7), fields=0xFC00_0000),
    _r("PMEVTYPER0_EL0", (3, 3, 14, 12, 0), fields=0xFC00_03FF),
    # Overflow interrupt enables: harmless while no counter runs (nothing can overflow).
    _r("PMINTENSET_EL1", (3, 0, 9, 14, 1), fields=0x8000_003F),
)
"""Every register a guest may write, in read-back order."""

_BY_NAME: Final[Mapping[str, SystemRegister]] = MappingProxyType(
    {r.name: r for r in SYSTEM_REGISTERS}
)


def by_name(name: str) -> SystemRegister | None:
    """Return the row named ``name``, or None if the table has none."""
    return _BY_NAME.get(name)
