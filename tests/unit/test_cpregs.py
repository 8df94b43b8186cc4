"""Arm cpreg ids, keys and names (fuzz.stream.cpregs): known registers and round-trip properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from fuzz.errors import InvalidInput
from fuzz.stream.cpregs import (
    CpReg,
    from_kvm_id,
    from_qemu_key,
    names_in_message,
    to_kvm_id,
    to_qemu_key,
)

aa64_regs = st.builds(
    CpReg.aa64,
    op0=st.integers(0, 3),
    op1=st.integers(0, 7),
    crn=st.integers(0, 15),
    crm=st.integers(0, 15),
    op2=st.integers(0, 7),
)
aa32_regs = st.builds(
    CpReg.aa32,
    cp=st.integers(0, 15),
    opc1=st.integers(0, 15),
    crn=st.integers(0, 15),
    crm=st.integers(0, 15),
    opc2=st.integers(0, 7),
    is64=st.booleans(),
    ns=st.booleans(),
)
regs = st.one_of(aa64_regs, aa32_regs)

# (name Capstone gives, KVM id as in a stream, QEMU key as in an error message, fields)
KNOWN_AA64 = [
    ("MIDR_EL1", 0x6030_0000_0013_C000, 0x1013_C000, (3, 0, 0, 0, 0)),
    ("ID_AA64ISAR0_EL1", 0x6030_0000_0013_C030, 0x1013_C030, (3, 0, 0, 6, 0)),
    ("SCTLR_EL1", 0x6030_0000_0013_C080, 0x1013_C080, (3, 0, 1, 0, 0)),
    ("TCR_EL1", 0x6030_0000_0013_C102, 0x1013_C102, (3, 0, 2, 0, 2)),
    ("MAIR_EL1", 0x6030_0000_0013_C510, 0x1013_C510, (3, 0, 10, 2, 0)),
    ("VBAR_EL1", 0x6030_0000_0013_C600, 0x1013_C600, (3, 0, 12, 0, 0)),
    ("CNTKCTL_EL1", 0x6030_0000_0013_C708, 0x1013_C708, (3, 0, 14, 1, 0)),
    ("MDSCR_EL1", 0x6030_0000_0013_8012, 0x1013_8012, (2, 0, 0, 2, 2)),
]

# Taken from cpreg_vmstate_indexes of real QEMU 5.2..11.1 streams (cortex-a57 and max).
KNOWN_AA32 = [
    # ID_PFR0: MRC p15, 0, Rt, c0, c1, 0 (non-secure bank flag set by QEMU)
    ("P15_0_C0_C1_0", 0x4020_0000_200F_0080, 0x200F_0080, CpReg.aa32(15, 0, 0, 1, 0)),
    # CONTEXTIDR, secure bank: MRC p15, 0, Rt, c13, c0, 1 with the NS bit clear
    (
        "P15_0_C13_C0_1_S",
        0x4020_0000_000F_6801,
        0x000F_6801,
        CpReg.aa32(15, 0, 13, 0, 1, ns=False),
    ),
    # DBGDIDR: MRC p14, 0, Rt, c0, c0, 0
    ("P14_0_C0_C0_0", 0x4020_0000_200E_0000, 0x200E_0000, CpReg.aa32(14, 0, 0, 0, 0)),
    # PAR (64-bit): MRRC p15, 0, Rt, Rt2, c7 -- the key carries the 64-bit flag (bit 15)
    ("P15_0_C7", 0x4030_0000_200F_0380, 0x200F_8380, CpReg.aa32(15, 0, 0, 7, 0, is64=True)),
]


@pytest.mark.parametrize(("name", "kvm_id", "key", "fields"), KNOWN_AA64)
def test_known_aa64_registers_round_trip_and_are_named_by_capstone(name, kvm_id, key, fields):
    reg = CpReg.aa64(*fields)
    assert from_kvm_id(kvm_id) == reg
    assert from_qemu_key(key) == reg
    assert to_kvm_id(reg) == kvm_id
    assert to_qemu_key(reg) == key
    assert reg.name == name


@pytest.mark.parametrize(("name", "kvm_id", "key", "reg"), KNOWN_AA32)
def test_known_aa32_registers_round_trip_with_generic_names(name, kvm_id, key, reg):
    assert from_kvm_id(kvm_id) == reg
    assert from_qemu_key(key) == reg
    assert to_kvm_id(reg) == kvm_id
    assert to_qemu_key(reg) == key
    assert reg.name == reg.generic_name == name


def test_the_qemu_11_refusal_example_names_id_aa64isar0():
    reg = from_qemu_key(0x1013C030)
    assert (reg.op0, reg.op1, reg.crn, reg.crm, reg.op2) == (3, 0, 0, 6, 0)
    assert reg.name == "ID_AA64ISAR0_EL1"
    assert reg.generic_name == "S3_0_C0_C6_0"


def test_unknown_aa64_register_gets_its_generic_name():
    # S3_0_C0_C7_7 is an unallocated ID register slot: no tool has a name for it.
    assert CpReg.aa64(3, 0, 0, 7, 7).name == "S3_0_C0_C7_7"


def test_op0_below_2_is_not_an_mrs_register_and_stays_generic():
    assert CpReg.aa64(1, 0, 7, 5, 0).name == "S1_0_C7_C5_0"
    assert CpReg.aa64(0, 0, 4, 0, 0).name == "S0_0_C4_C0_0"


@pytest.mark.parametrize(
    "kvm_id",
    [
        0x6030_0000_0010_0000,  # AArch64 core register (coprocessor 0x10), not a sysreg
        0x6020_0000_0013_C080,  # AArch64 sysreg with a 32-bit size
        0x6030_0001_0013_C080,  # a bit set in 51..32
        0x6030_0000_1013_C080,  # QEMU's private AArch64 key bit leaked into an id
        0x4020_0000_0012_0000,  # AArch32 VFP (coprocessor 0x12) is not a cpreg
        0x4020_0000_100F_0080,  # bit 28 on an AArch32 id
        0x4020_0000_200F_8080,  # the key's 64-bit flag on an id
        0x4040_0000_200F_0080,  # AArch32 with a 128-bit size
        0x5030_0000_0013_C080,  # not an Arm architecture
        1 << 64,
        -1,
    ],
)
def test_malformed_kvm_ids_are_refused_naming_the_value(kvm_id):
    with pytest.raises(InvalidInput) as info:
        from_kvm_id(kvm_id)
    assert f"{abs(kvm_id):x}" in str(info.value)


@pytest.mark.parametrize(
    "key",
    [0x1012_C080, 0x3013_C080, 0x0010_0000, 0x400F_0080, 1 << 32, -5],
)
def test_malformed_qemu_keys_are_refused_naming_the_value(key):
    with pytest.raises(InvalidInput) as info:
        from_qemu_key(key)
    assert f"{abs(key):x}" in str(info.value)


def test_a_non_integer_id_is_refused():
    with pytest.raises(InvalidInput, match="not an integer"):
        from_kvm_id("0x1013c030")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make",
    [
        lambda: CpReg.aa64(4, 0, 0, 0, 0),
        lambda: CpReg.aa64(3, 8, 0, 0, 0),
        lambda: CpReg.aa64(3, 0, 16, 0, 0),
        lambda: CpReg.aa32(16, 0, 0, 0, 0),
        lambda: CpReg.aa32(15, 0, 0, 0, 8),
        lambda: CpReg("aa64", 3, 0, 0, 0, 0, cp=15),
        lambda: CpReg("aa32", 1, 0, 0, 0, 0, cp=15),
    ],
)
def test_out_of_range_fields_are_refused(make):
    with pytest.raises(InvalidInput, match="="):
        make()


@given(regs)
def test_kvm_id_round_trip(reg):
    assert from_kvm_id(to_kvm_id(reg)) == reg


@given(regs)
def test_qemu_key_round_trip(reg):
    assert from_qemu_key(to_qemu_key(reg)) == reg


@given(regs)
def test_key_is_the_id_low_word_plus_qemu_private_bits(reg):
    kvm_id, key = to_kvm_id(reg), to_qemu_key(reg)
    private = (1 << 28) if reg.state == "aa64" else (1 << 15) if reg.is64 else 0
    assert key == (kvm_id & 0xFFFF_FFFF) | private


def near(valid: st.SearchStrategy[int], bits: int) -> st.SearchStrategy[int]:
    """A valid number with up to three of its ``bits`` bits flipped: some decode, some not.

    Uniform numbers almost never decode (no 64-bit one in 100,000 does), which would leave
    the decoded branch of the properties below untested.
    """
    flips = st.sets(st.integers(0, bits - 1), max_size=3).map(lambda bs: sum(1 << b for b in bs))
    return st.builds(lambda v, mask: v ^ mask, valid, flips)


kvm_ids = st.one_of(near(regs.map(to_kvm_id), 64), st.integers(0, (1 << 64) - 1))
qemu_keys = st.one_of(near(regs.map(to_qemu_key), 32), st.integers(0, (1 << 32) - 1))


def decodes_exactly_or_is_refused(number: int, decode, encode) -> bool:
    """Whether ``number`` decoded; if it did, it must encode back to itself."""
    try:
        reg = decode(number)
    except InvalidInput:
        return False
    assert encode(reg) == number
    return True


@given(kvm_ids)
def test_any_64_bit_id_either_decodes_exactly_or_is_refused(kvm_id):
    decoded = decodes_exactly_or_is_refused(kvm_id, from_kvm_id, to_kvm_id)
    event("decoded" if decoded else "refused")


@given(qemu_keys)
def test_any_32_bit_key_either_decodes_exactly_or_is_refused(key):
    decoded = decodes_exactly_or_is_refused(key, from_qemu_key, to_qemu_key)
    event("decoded" if decoded else "refused")


@pytest.mark.parametrize(
    ("decode", "encode", "bits"), [(from_kvm_id, to_kvm_id, 64), (from_qemu_key, to_qemu_key, 32)]
)
def test_single_bit_flips_of_known_registers_decode_exactly_or_are_refused(decode, encode, bits):
    """Deterministic: every one-bit change of a few real registers, and both branches run."""
    known = [
        CpReg.aa64(3, 0, 1, 0, 0),  # SCTLR_EL1
        CpReg.aa64(3, 0, 0, 6, 0),  # ID_AA64ISAR0_EL1
        CpReg.aa32(15, 0, 7, 4, 0),  # P15_0_C7_C4_0 (PAR)
        CpReg.aa32(15, 0, 0, 2, 0, is64=True),
    ]
    outcomes = [
        decodes_exactly_or_is_refused(encode(reg) ^ (1 << b), decode, encode)
        for reg in known
        for b in range(bits)
    ]
    assert sum(outcomes) >= len(known) * 8  # flips inside the field bits decode
    assert outcomes.count(False) >= len(known) * 8  # flips of layout bits are refused


@given(regs, regs)
def test_generic_names_are_unique(a, b):
    assert (a.generic_name == b.generic_name) == (a == b)


@given(regs)
def test_names_are_upper_case_identifiers(reg):
    assert re.fullmatch(r"[A-Z][A-Z0-9_]*", reg.name)
    if reg.state == "aa32":
        assert reg.name == reg.generic_name


def test_names_in_the_qemu_11_refusal_line():
    line = (
        "qemu-system-aarch64: handle_cpreg_only_in_incoming_stream: system register "
        "0x1013c030 in the incoming stream but unknown on the destination: fail migration"
    )
    assert names_in_message(line) == ["ID_AA64ISAR0_EL1"]


def test_names_in_message_keeps_order_and_reads_wide_numbers_as_kvm_ids():
    text = (
        "handle_cpreg_missing_in_incoming_stream: system register 0x1013c080 expected by the "
        "destination but not in the incoming stream: skip it\n"
        "cpreg 0x603000000013c030; system register 0x200f8380"
    )
    assert names_in_message(text) == ["SCTLR_EL1", "ID_AA64ISAR0_EL1", "P15_0_C7"]


def test_names_in_unsupported_access_log_lines():
    text = (
        "read access to unsupported AArch64 system register op0:3 op1:0 crn:2 crm:0 op2:2\n"
        "write access to unsupported AArch32 system register cp:15 opc1:0 crn:1 crm:0 opc2:0 "
        "(non-secure)\n"
        "read access to unsupported AArch32 64 bit system register cp:15 opc1: 0 crm:2 (secure)"
    )
    assert names_in_message(text) == ["TCR_EL1", "P15_0_C1_C0_0", "P15_0_C2"]


def test_names_in_message_keeps_undecodable_numbers_and_ignores_unrelated_hex():
    text = (
        "system register 0xFFFFFFFF is odd; pl011_read: Bad offset 0x18; "
        "invalid register 0x0004; error while loading state for instance 0x0 of device 'cpu'"
    )
    assert names_in_message(text) == ["0xffffffff"]
    assert names_in_message("load of migration failed: Operation not permitted") == []
