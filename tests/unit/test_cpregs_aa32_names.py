"""Architectural names of AArch32 coprocessor registers (fuzz.stream.cpregs), per the Arm ARM."""

from __future__ import annotations

import pytest

from fuzz.stream.cpregs import CpReg, from_kvm_id, from_qemu_key

# (name, cp, opc1, CRn, CRm, opc2) as the Arm ARM (DDI 0487, G8) gives MRC/MCR encodings.
ARM_ARM_32 = [
    ("MIDR", 15, 0, 0, 0, 0),
    ("MPIDR", 15, 0, 0, 0, 5),
    ("ID_PFR0", 15, 0, 0, 1, 0),
    ("ID_DFR0", 15, 0, 0, 1, 2),
    ("ID_ISAR0", 15, 0, 0, 2, 0),
    ("CSSELR", 15, 2, 0, 0, 0),
    ("SCTLR", 15, 0, 1, 0, 0),
    ("CPACR", 15, 0, 1, 0, 2),
    ("SCR", 15, 0, 1, 1, 0),
    ("NSACR", 15, 0, 1, 1, 2),
    ("HSCTLR", 15, 4, 1, 0, 0),
    ("HCR", 15, 4, 1, 1, 0),
    ("HCR2", 15, 4, 1, 1, 4),
    ("HCPTR", 15, 4, 1, 1, 2),
    ("TTBCR", 15, 0, 2, 0, 2),
    ("HTCR", 15, 4, 2, 0, 2),
    ("VTCR", 15, 4, 2, 1, 2),
    ("DACR", 15, 0, 3, 0, 0),
    ("DFSR", 15, 0, 5, 0, 0),
    ("IFSR", 15, 0, 5, 0, 1),
    ("HSR", 15, 4, 5, 2, 0),
    ("DFAR", 15, 0, 6, 0, 0),
    ("IFAR", 15, 0, 6, 0, 2),
    ("HPFAR", 15, 4, 6, 0, 4),
    ("PAR", 15, 0, 7, 4, 0),
    ("PMCR", 15, 0, 9, 12, 0),
    ("PRRR", 15, 0, 10, 2, 0),
    ("HMAIR0", 15, 4, 10, 2, 0),
    ("VBAR", 15, 0, 12, 0, 0),
    ("MVBAR", 15, 0, 12, 0, 1),
    ("HVBAR", 15, 4, 12, 0, 0),
    ("CONTEXTIDR", 15, 0, 13, 0, 1),
    ("TPIDRURW", 15, 0, 13, 0, 2),
    ("HTPIDR", 15, 4, 13, 0, 2),
    ("CNTFRQ", 15, 0, 14, 0, 0),
    ("CNTKCTL", 15, 0, 14, 1, 0),
    ("CNTV_CTL", 15, 0, 14, 3, 1),
    ("CNTHCTL", 15, 4, 14, 1, 0),
    ("CNTHP_CTL", 15, 4, 14, 2, 1),
    ("DBGDIDR", 14, 0, 0, 0, 0),
    ("DBGDSCRext", 14, 0, 0, 2, 2),
    ("DBGBVR0", 14, 0, 0, 0, 4),
    ("DBGWCR3", 14, 0, 0, 3, 7),
    ("DBGOSLSR", 14, 0, 1, 1, 4),
    ("DBGDEVID", 14, 0, 7, 2, 7),
]
# (name, cp, opc1, CRm) of MRRC/MCRR registers.
ARM_ARM_64 = [
    ("TTBR0", 15, 0, 2),
    ("TTBR1", 15, 1, 2),
    ("HTTBR", 15, 4, 2),
    ("VTTBR", 15, 6, 2),
    ("PAR", 15, 0, 7),
    ("CNTPCT", 15, 0, 14),
    ("CNTVCT", 15, 1, 14),
    ("CNTV_CVAL", 15, 3, 14),
    ("CNTVOFF", 15, 4, 14),
    ("CNTHP_CVAL", 15, 6, 14),
]


@pytest.mark.parametrize(("name", "cp", "opc1", "crn", "crm", "opc2"), ARM_ARM_32)
def test_32bit_register_names(name: str, cp: int, opc1: int, crn: int, crm: int, opc2: int) -> None:
    reg = CpReg.aa32(cp, opc1, crn, crm, opc2)
    assert reg.architectural_name == name
    assert CpReg.aa32(cp, opc1, crn, crm, opc2, ns=False).architectural_name == f"{name}_S"
    assert CpReg.aa32(cp, opc1, crn, crm, opc2, is64=True).architectural_name != name


@pytest.mark.parametrize(("name", "cp", "opc1", "crm"), ARM_ARM_64)
def test_64bit_register_names(name: str, cp: int, opc1: int, crm: int) -> None:
    assert CpReg.aa32(cp, opc1, 0, crm, 0, is64=True).architectural_name == name


def test_names_from_stream_ids_and_qemu_keys() -> None:
    # ids of the p15-4 corpus entry (10.0 -> 11.1, virt-10.0,secure=on, cortex-a57)
    assert from_kvm_id(0x4020_0000_000F_0820).architectural_name == "HSCTLR_S"
    assert from_kvm_id(0x4030_0000_000F_0730).architectural_name == "CNTHP_CVAL_S"
    assert from_qemu_key(0x200F_08A1).architectural_name == "HDCR"
    assert from_kvm_id(0x4030_0000_200F_0380).architectural_name == "PAR"  # MRRC p15, 0, c7


def test_generic_names_and_signatures_do_not_change() -> None:
    reg = from_kvm_id(0x4020_0000_000F_0820)
    assert reg.name == reg.generic_name == "P15_4_C1_C0_0_S"


def test_qemu_only_encodings_are_named_with_a_note() -> None:
    # QEMU's DBGDEVID* sit at p14, 0, c7, c0, {2,1,0} (CRm left 0 in debug_helper.c).
    reg = from_kvm_id(0x4020_0000_200E_3801)
    assert reg.architectural_name == "DBGDEVID1"
    assert reg.encoding_note == "QEMU's encoding; the Arm ARM's is p14, 0, c7, c1, 7"
    assert CpReg.aa32(15, 4, 1, 0, 0).encoding_note == ""


def test_unknown_and_aarch64_registers() -> None:
    assert CpReg.aa32(15, 7, 15, 15, 7).architectural_name is None
    assert CpReg.aa64(3, 0, 1, 0, 0).architectural_name == "SCTLR_EL1"
    assert CpReg.aa64(3, 0, 1, 0, 0).encoding_note == ""
