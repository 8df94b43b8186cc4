"""Names for Arm coprocessor and system registers as QEMU migrates and reports them.

Why this exists: the Arm ``cpu`` section of a migration stream lists its registers in
``cpreg_vmstate_indexes`` as 64-bit KVM-style ids, while a destination QEMU that refuses a
stream names the offending register by its 32-bit internal hashtable key. Both are opaque
numbers; findings and their signatures need stable, human-readable names.

Two encodings, both from QEMU (``target/arm/cpregs.h``, ``target/arm/kvm-consts.h``) and
the Linux KVM uapi headers (``arch/arm64/include/uapi/asm/kvm.h`` and the former
``arch/arm/include/uapi/asm/kvm.h``):

KVM id (``cpreg_to_kvm_id()``, what the stream carries), 64 bits:

* bits 63..56 architecture: ``0x60`` AArch64 (``KVM_REG_ARM64``), ``0x40`` AArch32
  (``KVM_REG_ARM``); bits 55..52 size: ``0x2`` U32, ``0x3`` U64; bits 51..32 zero.
* AArch64 system register: size U64, bits 27..16 coprocessor ``0x13``
  (``KVM_REG_ARM64_SYSREG``), then ``op0<<14 | op1<<11 | CRn<<7 | CRm<<3 | op2``.
* AArch32 cp14/cp15 register: size U32 (MRC/MCR) or U64 (MRRC/MCRR), bits 27..16 the
  coprocessor number, then ``CRn<<11 | CRm<<7 | opc1<<3 | opc2`` (opc1 has 4 bits for
  MRRC; CRn and opc2 are zero for 64-bit registers). Bit 29 is QEMU's non-secure bank flag
  (``CP_REG_AA32_NS_MASK``), which ``cpreg_to_kvm_id()`` passes through unchanged.

QEMU key (``ENCODE_AA64_CP_REG`` / ``ENCODE_CP_REG``, what error messages print), 32 bits:
the low 32 bits of the KVM id, plus bit 28 (``CP_REG_AA64_MASK``) for AArch64 registers or
bit 15 (``CP_REG_AA32_64BIT_MASK``) for 64-bit AArch32 registers.

Names come from a maintained source, not a table typed here: an AArch64 register is named by
whatever Capstone prints for ``MRS x0, <reg>`` built from its fields (upper-cased, e.g.
``ID_AA64ISAR0_EL1``, or the generic ``S3_0_C0_C7_3`` when Capstone does not know it).
Capstone prints no names for AArch32 ``MRC``/``MRRC``, so AArch32 registers get their
generic name (``P15_0_C1_C0_0``, ``P15_0_C7`` for 64-bit ones), suffixed ``_S`` for the
secure bank as QEMU itself names them. That generic name is what signatures use and it
never changes; for people (bug reports) :attr:`CpReg.architectural_name` also names the
common AArch32 cp15/cp14 registers (``HSCTLR``, ``PAR``, ``DACR``) from a small table of
Arm ARM encodings typed here, since no maintained source we depend on has them.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Literal

import capstone

from fuzz.errors import InvalidInput

__all__ = [
    "CpReg",
    "State",
    "from_kvm_id",
    "from_qemu_key",
    "names_in_message",
    "to_kvm_id",
    "to_qemu_key",
]

State = Literal["aa64", "aa32"]

# KVM register id layout (Linux include/uapi/linux/kvm.h, mirrored by QEMU kvm-consts.h).
_ARCH_MASK = 0xFF00_0000_0000_0000
_ARCH_ARM = 0x4000_0000_0000_0000
_ARCH_ARM64 = 0x6000_0000_0000_0000
_SIZE_MASK = 0x00F0_0000_0000_0000
_SIZE_U32 = 0x0020_0000_0000_0000
_SIZE_U64 = 0x0030_0000_0000_0000
_UNUSED_MASK = 0x000F_FFFF_0000_0000  # bits 51..32: never set in a coprocessor register id
_COPROC_SHIFT = 16
_COPROC_MASK = 0x0FFF_0000
_SYSREG_CP = 0x13  # KVM_REG_ARM64_SYSREG >> KVM_REG_ARM_COPROC_SHIFT

# QEMU's private key bits (target/arm/cpregs.h).
_KEY_AA64 = 1 << 28  # CP_REG_AA64_MASK
_KEY_AA32_NS = 1 << 29  # CP_REG_AA32_NS_MASK
_KEY_AA32_64BIT = 1 << 15  # CP_REG_AA32_64BIT_MASK

# AArch64: op0<<14 | op1<<11 | CRn<<7 | CRm<<3 | op2 (KVM_REG_ARM64_SYSREG_*_SHIFT).
# AArch32: CRn<<11 | CRm<<7 | opc1<<3 | opc2 (KVM_REG_ARM_32_CRN/CRM/OPC1/32_OPC2_SHIFT).
_FIELD_LIMITS: dict[State, dict[str, int]] = {
    "aa64": {"op0": 3, "op1": 7, "crn": 15, "crm": 15, "op2": 7},
    "aa32": {"cp": 15, "op1": 15, "crn": 15, "crm": 15, "op2": 7},
}


@dataclass(frozen=True, order=True)
class CpReg:
    """One Arm coprocessor or system register, identified by its encoding fields.

    Build one with :meth:`aa64` or :meth:`aa32` rather than by hand. The fields are shared
    between the two states so that registers compare, sort and hash uniformly:

    * ``state`` -- ``"aa64"`` for an AArch64 system register, ``"aa32"`` for an AArch32
      cp14/cp15 coprocessor register.
    * ``op0`` -- AArch64 op0 (0..3); always 0 for AArch32.
    * ``op1`` -- AArch64 op1 (0..7) or AArch32 opc1 (0..15, see :attr:`opc1`).
    * ``crn``, ``crm`` -- CRn and CRm (0..15).
    * ``op2`` -- AArch64 op2 or AArch32 opc2 (0..7, see :attr:`opc2`).
    * ``cp`` -- AArch32 coprocessor number (0..15); always 0 for AArch64.
    * ``is64`` -- AArch32: accessed with MRRC/MCRR; AArch64 registers are always 64-bit.
    * ``ns`` -- AArch32: QEMU's non-secure bank (``True``) or the secure bank (``False``);
      always ``False`` for AArch64, which has no such bit.

    :raise InvalidInput: a field is out of range for the state, naming the field and value.
    """

    state: State
    op0: int
    op1: int
    crn: int
    crm: int
    op2: int
    cp: int = 0
    is64: bool = True
    ns: bool = False

    def __post_init__(self) -> None:
        if self.state not in _FIELD_LIMITS:
            raise InvalidInput(f"CpReg state={self.state!r} is not 'aa64' or 'aa32'")
        for field, limit in _FIELD_LIMITS[self.state].items():
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
                raise InvalidInput(f"CpReg {self.state} {field}={value!r} is not in 0..{limit}")
        if self.state == "aa64" and (self.cp != 0 or not self.is64 or self.ns):
            raise InvalidInput(
                f"AArch64 CpReg takes cp=0, is64=True, ns=False, not {self.cp=}, "
                f"{self.is64=}, {self.ns=}"
            )
        if self.state == "aa32" and self.op0 != 0:
            raise InvalidInput(f"AArch32 CpReg has no op0, got {self.op0=}")

    @classmethod
    def aa64(cls, op0: int, op1: int, crn: int, crm: int, op2: int) -> CpReg:
        """Return the AArch64 system register ``S<op0>_<op1>_C<crn>_C<crm>_<op2>``.

        :raise InvalidInput: a field is out of range.
        """
        return cls("aa64", op0, op1, crn, crm, op2)

    @classmethod
    def aa32(
        cls,
        cp: int,
        opc1: int,
        crn: int,
        crm: int,
        opc2: int,
        *,
        is64: bool = False,
        ns: bool = True,
    ) -> CpReg:
        """Return the AArch32 register accessed by ``MRC p<cp>, opc1, Rt, c<crn>, c<crm>, opc2``.

        For a 64-bit register (``MRRC p<cp>, opc1, Rt, Rt2, c<crm>``) pass ``is64=True`` and
        ``crn=opc2=0``. ``ns=False`` selects QEMU's secure-bank copy.

        :raise InvalidInput: a field is out of range.
        """
        return cls("aa32", 0, opc1, crn, crm, opc2, cp=cp, is64=is64, ns=ns)

    @property
    def opc1(self) -> int:
        """AArch32 opc1 (the same storage as AArch64 ``op1``)."""
        return self.op1

    @property
    def opc2(self) -> int:
        """AArch32 opc2 (the same storage as AArch64 ``op2``)."""
        return self.op2

    @property
    def generic_name(self) -> str:
        """The encoding spelled out; unique per register, whatever any tool knows about it.

        ``S3_0_C0_C6_0`` for AArch64 (the assembler's generic syntax); ``P15_0_C1_C0_0`` for
        a 32-bit AArch32 register, ``P15_0_C7`` for a 64-bit one; ``_S`` for the secure bank.
        """
        if self.state == "aa64":
            return f"S{self.op0}_{self.op1}_C{self.crn}_C{self.crm}_{self.op2}"
        if not self.is64:
            base = f"P{self.cp}_{self.opc1}_C{self.crn}_C{self.crm}_{self.opc2}"
        elif self.crn == 0 and self.opc2 == 0:
            base = f"P{self.cp}_{self.opc1}_C{self.crm}"
        else:  # not a real MRRC encoding, but keep names distinct for whatever was sent
            base = f"P{self.cp}_{self.opc1}_C{self.crn}_C{self.crm}_{self.opc2}_64"
        return base if self.ns else f"{base}_S"

    @property
    def architectural_name(self) -> str | None:
        """The register's architectural name, for people; None when unknown.

        AArch64: what Capstone prints (``SCTLR_EL1``). AArch32: from this module's table of
        common cp15/cp14 registers (``HSCTLR``, ``PAR`` for the 64-bit one), suffixed
        ``_S`` for QEMU's secure-bank copy as QEMU names it. Signatures keep using
        :attr:`name`, so adding a name here never changes a signature.
        """
        if self.state == "aa64":
            return _aa64_capstone_name(self.op0, self.op1, self.crn, self.crm, self.op2)
        key = (self.cp, self.opc1, self.crn, self.crm, self.opc2, self.is64)
        known = _AA32_NAMES.get(key) or _AA32_QEMU_ENCODINGS.get(key, (None, ""))[0]
        if known is None:
            return None
        return known if self.ns else f"{known}_S"

    @property
    def encoding_note(self) -> str:
        """A warning when QEMU defines this register at an encoding the Arm ARM does not use.

        E.g. QEMU's DBGDEVID1 sits at ``p14, 0, c7, c0, 1``; the Arm ARM puts it at
        ``c7, c1, 7``. ``""`` for every other register.
        """
        if self.state == "aa64":
            return ""
        key = (self.cp, self.opc1, self.crn, self.crm, self.opc2, self.is64)
        return _AA32_QEMU_ENCODINGS.get(key, ("", ""))[1]

    @property
    def name(self) -> str:
        """The architectural name Capstone knows (``SCTLR_EL1``), else :attr:`generic_name`."""
        if self.state == "aa64":
            known = _aa64_capstone_name(self.op0, self.op1, self.crn, self.crm, self.op2)
            if known is not None:
                return known
        return self.generic_name


# Common AArch32 registers by Arm ARM encoding (DDI 0487, chapter G8): (cp, opc1, CRn, CRm,
# opc2, is64) -> name; a 64-bit (MRRC) register has CRn = opc2 = 0. Kept to the registers
# corpus entries name and the common system registers; anything else keeps its generic name.
_AA32_32BIT: dict[tuple[int, int, int, int, int], str] = {
    # identification (CRn 0)
    (15, 0, 0, 0, 0): "MIDR", (15, 0, 0, 0, 1): "CTR", (15, 0, 0, 0, 2): "TCMTR",
    (15, 0, 0, 0, 3): "TLBTR", (15, 0, 0, 0, 5): "MPIDR", (15, 0, 0, 0, 6): "REVIDR",
    (15, 0, 0, 1, 0): "ID_PFR0", (15, 0, 0, 1, 1): "ID_PFR1", (15, 0, 0, 1, 2): "ID_DFR0",
    (15, 0, 0, 1, 3): "ID_AFR0", (15, 0, 0, 1, 4): "ID_MMFR0", (15, 0, 0, 1, 5): "ID_MMFR1",
    (15, 0, 0, 1, 6): "ID_MMFR2", (15, 0, 0, 1, 7): "ID_MMFR3", (15, 0, 0, 2, 0): "ID_ISAR0",
    (15, 0, 0, 2, 1): "ID_ISAR1", (15, 0, 0, 2, 2): "ID_ISAR2", (15, 0, 0, 2, 3): "ID_ISAR3",
    (15, 0, 0, 2, 4): "ID_ISAR4", (15, 0, 0, 2, 5): "ID_ISAR5", (15, 0, 0, 2, 6): "ID_MMFR4",
    (15, 0, 0, 2, 7): "ID_ISAR6", (15, 0, 0, 3, 4): "ID_PFR2", (15, 0, 0, 3, 5): "ID_DFR1",
    (15, 0, 0, 3, 6): "ID_MMFR5", (15, 1, 0, 0, 0): "CCSIDR", (15, 1, 0, 0, 1): "CLIDR",
    (15, 1, 0, 0, 2): "CCSIDR2", (15, 1, 0, 0, 7): "AIDR", (15, 2, 0, 0, 0): "CSSELR",
    (15, 4, 0, 0, 0): "VPIDR", (15, 4, 0, 0, 5): "VMPIDR",
    # system control (CRn 1)
    (15, 0, 1, 0, 0): "SCTLR", (15, 0, 1, 0, 1): "ACTLR", (15, 0, 1, 0, 2): "CPACR",
    (15, 0, 1, 0, 3): "ACTLR2", (15, 0, 1, 1, 0): "SCR", (15, 0, 1, 1, 1): "SDER",
    (15, 0, 1, 1, 2): "NSACR", (15, 4, 1, 0, 0): "HSCTLR", (15, 4, 1, 0, 1): "HACTLR",
    (15, 4, 1, 0, 3): "HACTLR2", (15, 4, 1, 1, 0): "HCR", (15, 4, 1, 1, 1): "HDCR",
    (15, 4, 1, 1, 2): "HCPTR", (15, 4, 1, 1, 3): "HSTR", (15, 4, 1, 1, 4): "HCR2",
    (15, 4, 1, 1, 7): "HACR",
    # translation, domains, faults (CRn 2, 3, 5, 6), PAR (CRn 7)
    (15, 0, 2, 0, 0): "TTBR0", (15, 0, 2, 0, 1): "TTBR1", (15, 0, 2, 0, 2): "TTBCR",
    (15, 0, 2, 0, 3): "TTBCR2", (15, 4, 2, 0, 2): "HTCR", (15, 4, 2, 1, 2): "VTCR",
    (15, 0, 3, 0, 0): "DACR", (15, 0, 5, 0, 0): "DFSR", (15, 0, 5, 0, 1): "IFSR",
    (15, 0, 5, 1, 0): "ADFSR", (15, 0, 5, 1, 1): "AIFSR", (15, 4, 5, 1, 0): "HADFSR",
    (15, 4, 5, 1, 1): "HAIFSR", (15, 4, 5, 2, 0): "HSR", (15, 0, 6, 0, 0): "DFAR",
    (15, 0, 6, 0, 2): "IFAR", (15, 4, 6, 0, 0): "HDFAR", (15, 4, 6, 0, 2): "HIFAR",
    (15, 4, 6, 0, 4): "HPFAR", (15, 0, 7, 4, 0): "PAR",
    # performance monitors (CRn 9)
    (15, 0, 9, 12, 0): "PMCR", (15, 0, 9, 12, 1): "PMCNTENSET", (15, 0, 9, 12, 2): "PMCNTENCLR",
    (15, 0, 9, 12, 3): "PMOVSR", (15, 0, 9, 12, 5): "PMSELR", (15, 0, 9, 12, 6): "PMCEID0",
    (15, 0, 9, 12, 7): "PMCEID1", (15, 0, 9, 13, 0): "PMCCNTR", (15, 0, 9, 13, 1): "PMXEVTYPER",
    (15, 0, 9, 13, 2): "PMXEVCNTR", (15, 0, 9, 14, 0): "PMUSERENR", (15, 0, 9, 14, 1): "PMINTENSET",
    (15, 0, 9, 14, 2): "PMINTENCLR", (15, 0, 9, 14, 3): "PMOVSSET",
    # memory attributes (CRn 10)
    (15, 0, 10, 2, 0): "PRRR", (15, 0, 10, 2, 1): "NMRR", (15, 0, 10, 3, 0): "AMAIR0",
    (15, 0, 10, 3, 1): "AMAIR1", (15, 4, 10, 2, 0): "HMAIR0", (15, 4, 10, 2, 1): "HMAIR1",
    (15, 4, 10, 3, 0): "HAMAIR0", (15, 4, 10, 3, 1): "HAMAIR1",
    # vectors, process and thread ids (CRn 12, 13)
    (15, 0, 12, 0, 0): "VBAR", (15, 0, 12, 0, 1): "MVBAR", (15, 0, 12, 0, 2): "RMR",
    (15, 0, 12, 1, 0): "ISR", (15, 4, 12, 0, 0): "HVBAR", (15, 4, 12, 0, 2): "HRMR",
    (15, 0, 13, 0, 0): "FCSEIDR", (15, 0, 13, 0, 1): "CONTEXTIDR", (15, 0, 13, 0, 2): "TPIDRURW",
    (15, 0, 13, 0, 3): "TPIDRURO", (15, 0, 13, 0, 4): "TPIDRPRW", (15, 4, 13, 0, 2): "HTPIDR",
    # generic timer (CRn 14)
    (15, 0, 14, 0, 0): "CNTFRQ", (15, 0, 14, 1, 0): "CNTKCTL", (15, 0, 14, 2, 0): "CNTP_TVAL",
    (15, 0, 14, 2, 1): "CNTP_CTL", (15, 0, 14, 3, 0): "CNTV_TVAL", (15, 0, 14, 3, 1): "CNTV_CTL",
    (15, 4, 14, 1, 0): "CNTHCTL", (15, 4, 14, 2, 0): "CNTHP_TVAL", (15, 4, 14, 2, 1): "CNTHP_CTL",
    # debug (cp14)
    (14, 0, 0, 0, 0): "DBGDIDR", (14, 0, 0, 1, 0): "DBGDSCRint", (14, 0, 0, 0, 2): "DBGDTRRXext",
    (14, 0, 0, 2, 2): "DBGDSCRext", (14, 0, 0, 3, 2): "DBGDTRTXext", (14, 0, 0, 6, 0): "DBGWFAR",
    (14, 0, 0, 7, 0): "DBGVCR", (14, 0, 1, 0, 0): "DBGDRAR", (14, 0, 2, 0, 0): "DBGDSAR",
    (14, 0, 1, 0, 4): "DBGOSLAR", (14, 0, 1, 1, 4): "DBGOSLSR", (14, 0, 1, 3, 4): "DBGOSDLR",
    (14, 0, 1, 4, 4): "DBGPRCR", (14, 0, 7, 8, 6): "DBGCLAIMSET", (14, 0, 7, 9, 6): "DBGCLAIMCLR",
    (14, 0, 7, 14, 6): "DBGAUTHSTATUS", (14, 0, 7, 2, 7): "DBGDEVID", (14, 0, 7, 1, 7): "DBGDEVID1",
    (14, 0, 7, 0, 7): "DBGDEVID2",
    **{(14, 0, 0, n, 4): f"DBGBVR{n}" for n in range(16)},
    **{(14, 0, 0, n, 5): f"DBGBCR{n}" for n in range(16)},
    **{(14, 0, 0, n, 6): f"DBGWVR{n}" for n in range(16)},
    **{(14, 0, 0, n, 7): f"DBGWCR{n}" for n in range(16)},
    **{(14, 0, 1, n, 1): f"DBGBXVR{n}" for n in range(16)},
}  # fmt: skip
# MRRC/MCRR registers: (cp, opc1, CRm) -> name.
_AA32_64BIT: dict[tuple[int, int, int], str] = {
    (15, 0, 2): "TTBR0", (15, 1, 2): "TTBR1", (15, 4, 2): "HTTBR", (15, 6, 2): "VTTBR",
    (15, 0, 7): "PAR", (15, 0, 14): "CNTPCT", (15, 1, 14): "CNTVCT", (15, 2, 14): "CNTP_CVAL",
    (15, 3, 14): "CNTV_CVAL", (15, 4, 14): "CNTVOFF", (15, 6, 14): "CNTHP_CVAL",
    (15, 8, 14): "CNTPCTSS", (15, 9, 14): "CNTVCTSS", (15, 0, 12): "ICC_SGI1R",
    (15, 1, 12): "ICC_ASGI1R", (15, 2, 12): "ICC_SGI0R", (14, 0, 1): "DBGDRAR",
    (14, 0, 2): "DBGDSAR",
}  # fmt: skip
_AA32_NAMES: dict[tuple[int, int, int, int, int, bool], str] = {
    **{(*k, False): v for k, v in _AA32_32BIT.items()},
    **{(cp, opc1, 0, crm, 0, True): v for (cp, opc1, crm), v in _AA32_64BIT.items()},
}
# Registers QEMU (target/arm/debug_helper.c, 7.1 and later) defines at an encoding the Arm
# ARM does not use: its DBGDEVID* entries set CRn twice and leave CRm 0, so they sit at
# p14, 0, c7, c0, {2, 1, 0}. Named, with a note, since they do turn up in streams.
_AA32_QEMU_ENCODINGS: dict[tuple[int, int, int, int, int, bool], tuple[str, str]] = {
    (14, 0, 7, 0, 2, False): ("DBGDEVID", "QEMU's encoding; the Arm ARM's is p14, 0, c7, c2, 7"),
    (14, 0, 7, 0, 1, False): ("DBGDEVID1", "QEMU's encoding; the Arm ARM's is p14, 0, c7, c1, 7"),
    (14, 0, 7, 0, 0, False): ("DBGDEVID2", "QEMU's encoding; the Arm ARM's is p14, 0, c7, c0, 7"),
}


def _check_width(value: object, bits: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"{what} {value!r} is not an integer")
    if not 0 <= value < 1 << bits:
        raise InvalidInput(f"{what} {value:#x} does not fit in {bits} unsigned bits")
    return value


def _aa64_fields(low: int) -> CpReg:
    return CpReg.aa64(
        (low >> 14) & 0x3, (low >> 11) & 0x7, (low >> 7) & 0xF, (low >> 3) & 0xF, low & 0x7
    )


def _aa32_fields(low: int, *, is64: bool, ns: bool) -> CpReg:
    return CpReg.aa32(
        (low & _COPROC_MASK) >> _COPROC_SHIFT,
        (low >> 3) & 0xF,
        (low >> 11) & 0xF,
        (low >> 7) & 0xF,
        low & 0x7,
        is64=is64,
        ns=ns,
    )


def from_kvm_id(index: int) -> CpReg:
    """Decode one ``cpreg_vmstate_indexes`` entry (a KVM-style id) into a :class:`CpReg`.

    Every id QEMU's ``cpreg_to_kvm_id()`` can produce decodes, named or not; ids that are not
    coprocessor registers (KVM core, firmware or SVE registers, bits outside the layout) are
    refused rather than guessed at.

    :param index: the 64-bit id as read from the stream.
    :return: the register; ``to_kvm_id()`` of it gives ``index`` back.
    :raise InvalidInput: ``index`` is not a coprocessor register id; the message names it.
    """
    _check_width(index, 64, "KVM register id")
    arch, size = index & _ARCH_MASK, index & _SIZE_MASK
    low = index & 0xFFFF_FFFF
    cp = (low & _COPROC_MASK) >> _COPROC_SHIFT
    if index & _UNUSED_MASK:
        raise InvalidInput(f"KVM register id {index:#018x} has bits set in 51..32")
    if arch == _ARCH_ARM64:
        if size != _SIZE_U64 or cp != _SYSREG_CP or low >> 28:
            raise InvalidInput(
                f"KVM register id {index:#018x} is not an AArch64 system register "
                f"(size {size >> 52:#x}, coprocessor {cp:#x})"
            )
        return _aa64_fields(low)
    if arch == _ARCH_ARM:
        if size not in (_SIZE_U32, _SIZE_U64):
            raise InvalidInput(f"KVM register id {index:#018x} has size {size >> 52:#x}")
        if cp > 15 or low & ~(_KEY_AA32_NS | _COPROC_MASK | 0x7FFF):
            raise InvalidInput(
                f"KVM register id {index:#018x} is not an AArch32 coprocessor register "
                f"(coprocessor {cp:#x})"
            )
        return _aa32_fields(low, is64=size == _SIZE_U64, ns=bool(low & _KEY_AA32_NS))
    raise InvalidInput(f"KVM register id {index:#018x} is not an Arm register id")


def to_kvm_id(reg: CpReg) -> int:
    """Encode ``reg`` as QEMU's ``cpreg_to_kvm_id()`` does: the id a stream carries."""
    if reg.state == "aa64":
        return _ARCH_ARM64 | _SIZE_U64 | (to_qemu_key(reg) & ~_KEY_AA64)
    size = _SIZE_U64 if reg.is64 else _SIZE_U32
    return _ARCH_ARM | size | (to_qemu_key(reg) & ~_KEY_AA32_64BIT)


def from_qemu_key(key: int) -> CpReg:
    """Decode QEMU's internal 32-bit cpreg key (as error messages print it).

    Beware one QEMU quirk: when a message is built from a stream id, QEMU converts it with
    ``kvm_to_cpreg_id()``, which always sets the non-secure bit on AArch32 registers, so a
    secure-bank register is printed under its non-secure key.

    :param key: the key, e.g. ``0x1013c030``.
    :return: the register; ``to_qemu_key()`` of it gives ``key`` back.
    :raise InvalidInput: ``key`` is not a coprocessor register key; the message names it.
    """
    _check_width(key, 32, "QEMU cpreg key")
    cp = (key & _COPROC_MASK) >> _COPROC_SHIFT
    if key & _KEY_AA64:
        if cp != _SYSREG_CP or key >> 29:
            raise InvalidInput(
                f"QEMU cpreg key {key:#010x} is not an AArch64 system register "
                f"(coprocessor {cp:#x})"
            )
        return _aa64_fields(key)
    if cp > 15 or key >> 30:
        raise InvalidInput(
            f"QEMU cpreg key {key:#010x} is not an AArch32 coprocessor register "
            f"(coprocessor {cp:#x})"
        )
    return _aa32_fields(key, is64=bool(key & _KEY_AA32_64BIT), ns=bool(key & _KEY_AA32_NS))


def to_qemu_key(reg: CpReg) -> int:
    """Encode ``reg`` as QEMU's hashtable key (``ENCODE_AA64_CP_REG`` / ``ENCODE_CP_REG``)."""
    if reg.state == "aa64":
        return (
            _KEY_AA64
            | _SYSREG_CP << _COPROC_SHIFT
            | reg.op0 << 14
            | reg.op1 << 11
            | reg.crn << 7
            | reg.crm << 3
            | reg.op2
        )
    return (
        (_KEY_AA32_NS if reg.ns else 0)
        | (_KEY_AA32_64BIT if reg.is64 else 0)
        | reg.cp << _COPROC_SHIFT
        | reg.crn << 11
        | reg.crm << 7
        | reg.opc1 << 3
        | reg.opc2
    )


@functools.lru_cache(maxsize=1)
def _aa64_disassembler() -> Any:
    return capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)


_SYSREG_NAME = re.compile(r"[a-z][a-z0-9_]*")


@functools.lru_cache(maxsize=4096)  # a CPU migrates a few hundred registers
def _aa64_capstone_name(op0: int, op1: int, crn: int, crm: int, op2: int) -> str | None:
    """What Capstone prints for ``MRS x0, S<op0>_<op1>_C<crn>_C<crm>_<op2>``, upper-cased.

    Only op0 2 and 3 are MRS-accessible registers; op0 0 and 1 are instructions (hints,
    SYS), so those get ``None`` and the caller falls back to the generic name.
    """
    if op0 not in (2, 3):
        return None
    # MRS <Xt>, <reg>: 1101 0101 0011 o0 op1 CRn CRm op2 Rt, where op0 = 2 + o0.
    word = 0xD530_0000 | (op0 - 2) << 19 | op1 << 16 | crn << 12 | crm << 8 | op2 << 5
    prefix = "x0, "
    for insn in _aa64_disassembler().disasm(word.to_bytes(4, "little"), 0):
        mnemonic, operands = str(insn.mnemonic), str(insn.op_str)
        register = operands.removeprefix(prefix)
        if mnemonic == "mrs" and operands.startswith(prefix) and _SYSREG_NAME.fullmatch(register):
            return register.upper()
    return None


# "system register 0x1013c030" (QEMU 11 post-load) and the like. Deliberately not a bare
# "register 0x..": device models print MMIO offsets that way.
_HEX_AFTER_WORD = re.compile(
    r"\b(?:system\s+register|coprocessor\s+register|cp\s+register|cpreg|sysreg|regidx)"
    r"\s*[:=]?\s*(0x[0-9a-f]+)\b",
    re.IGNORECASE,
)
# "access to unsupported AArch64 system register op0:3 op1:0 crn:0 crm:6 op2:0"
_AA64_FIELDS = re.compile(
    r"op0:\s*(\d+)\s+op1:\s*(\d+)\s+crn:\s*(\d+)\s+crm:\s*(\d+)\s+op2:\s*(\d+)"
)
# "... AArch32 system register cp:15 opc1:0 crn:1 crm:0 opc2:0 (secure)"
_AA32_FIELDS = re.compile(
    r"cp:\s*(\d+)\s+opc1:\s*(\d+)\s+crn:\s*(\d+)\s+crm:\s*(\d+)\s+opc2:\s*(\d+)"
)
# "... AArch32 64 bit system register cp:15 opc1: 0 crm:2 (non-secure)"
_AA32_64_FIELDS = re.compile(r"cp:\s*(\d+)\s+opc1:\s*(\d+)\s+crm:\s*(\d+)")


def _name_of_number(value: int) -> str:
    try:
        reg = from_qemu_key(value) if value < 1 << 32 else from_kvm_id(value)
    except InvalidInput:
        return f"{value:#x}"
    return reg.name


def _name_of_fields(match: re.Match[str]) -> str:
    fields = [int(group) for group in match.groups()]
    try:
        if match.re is _AA64_FIELDS:
            reg = CpReg.aa64(*fields)
        elif match.re is _AA32_FIELDS:
            reg = CpReg.aa32(*fields)
        else:
            cp, opc1, crm = fields
            reg = CpReg.aa32(cp, opc1, 0, crm, 0, is64=True)
    except InvalidInput:
        return match.group(0)
    return reg.name


def names_in_message(text: str) -> list[str]:
    """Name every register a QEMU message refers to, in order of appearance.

    Used to turn a destination's refusal into a stable signature. Recognised forms:

    * a hex number after "system register" (also "coprocessor register", "cpreg", "sysreg",
      "regidx"; not a bare "register", which device models use for MMIO offsets): a
      32-bit number is read as a QEMU key (what ``handle_cpreg_only_in_incoming_stream`` and
      ``handle_cpreg_missing_in_incoming_stream`` print in QEMU 11.1 under TCG, e.g.
      ``system register 0x1013c030`` -> ``ID_AA64ISAR0_EL1``), a wider one as a KVM id;
    * the field lists of QEMU's "access to unsupported ... system register" guest log lines.

    QEMU 10.0 and older fail ``cpu_post_load`` without naming any register, so their
    messages give an empty list. A number that does not decode is kept as lower-case hex
    and an undecodable field list verbatim, so the output stays stable without guessing.
    """
    found: list[tuple[int, str]] = [
        (m.start(), _name_of_number(int(m.group(1), 16))) for m in _HEX_AFTER_WORD.finditer(text)
    ]
    for pattern in (_AA64_FIELDS, _AA32_FIELDS, _AA32_64_FIELDS):
        found.extend((m.start(), _name_of_fields(m)) for m in pattern.finditer(text))
    return [name for _, name in sorted(found)]
