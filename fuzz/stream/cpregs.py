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
secure bank as QEMU itself names them.
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
    def name(self) -> str:
        """The architectural name Capstone knows (``SCTLR_EL1``), else :attr:`generic_name`."""
        if self.state == "aa64":
            known = _aa64_capstone_name(self.op0, self.op1, self.crn, self.crm, self.op2)
            if known is not None:
                return known
        return self.generic_name


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
