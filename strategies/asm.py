"""A small, table-driven AArch64 encoder for the tiny bare-metal guests migfuzz runs.

Why not call a toolchain: guest programs are generated data, built thousands of times during a
fuzz run, so they are encoded here in pure Python. Why a table: every instruction form is one row
(:class:`Form`) that knows both its 32-bit encoding and its exact GNU ``as`` text, so
:meth:`Assembler.listing` is a source file that GNU as turns into the very bytes
:meth:`Assembler.assemble` returns. ``tests/unit/test_asm.py`` checks that on every row of
:data:`FORMS`; adding a form is one line there plus whatever fields it needs.

Conventions:

* Registers are integers 0..31. What 31 means is the operand's business, as in the architecture:
  SP where the operand is ``Xn|SP`` (ADD/SUB immediate, load/store base), XZR or WZR elsewhere.
  :data:`SP` and :data:`XZR` (both 31) say which one the caller means.
* Immediates are given as the value the instruction uses: byte offsets for loads and stores (the
  encoder scales them and refuses one that is not a multiple of the access size), the shift
  amount for ``lsl #16``.
* Branch and ADR targets are label names (``[A-Za-z_][A-Za-z0-9_]*``), resolved by
  :meth:`Assembler.assemble`; the listing spells them ``L_<name>`` so no name can be mistaken
  for a register.
* Bad operands raise :class:`~fuzz.errors.InvalidInput` naming the offending value, when the
  instruction is emitted; label problems (undefined, duplicate, out of branch range) when they
  can first be known.

Example::

    a = Assembler(0x4008_0000)
    a.mov_imm64(0, 0x0900_0000)
    a.label("loop")
    a.emit(STRB, 1, 0, 0)
    a.emit(B, "loop")
    image = a.assemble()
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, TypeAlias

from fuzz.errors import InvalidInput

__all__ = [
    "ADD",
    "ADD_IMM",
    "ADR",
    "AND",
    "BL",
    "BLR",
    "BR",
    "BRK",
    "B_COND",
    "CBNZ",
    "CBZ",
    "CMP",
    "CMP_IMM",
    "CONDITIONS",
    "DMB_SY",
    "DSB_SY",
    "EOR",
    "ERET",
    "FMOV_D_X",
    "FMOV_V1_X",
    "FMOV_X_D",
    "FMOV_X_V1",
    "FORMS",
    "HVC",
    "INDEX_D",
    "ISB",
    "LDP",
    "LDP_POST",
    "LDP_PRE",
    "LDR",
    "LDRB",
    "LDR_Q",
    "LDR_W",
    "LR",
    "LSL",
    "LSR",
    "MOVK",
    "MOVZ",
    "MRS",
    "MSR",
    "MSR_DAIFCLR",
    "MSR_DAIFSET",
    "MSR_SPSEL",
    "MUL",
    "NOP",
    "ORR",
    "RDVL",
    "RET",
    "SEV",
    "SMC",
    "SP",
    "STP",
    "STP_POST",
    "STP_PRE",
    "STR",
    "STRB",
    "STRH",
    "STR_Q",
    "STR_W",
    "STR_Z",
    "SUB",
    "SUB_IMM",
    "SVC",
    "TBNZ",
    "TBZ",
    "TLBI_ALLE2",
    "TLBI_ALLE3",
    "TLBI_VMALLE1",
    "WFE",
    "WFI",
    "XZR",
    "Assembler",
    "B",
    "Choice",
    "Cond",
    "Field",
    "Form",
    "Imm",
    "Reg",
    "SysReg",
    "SysRegOperand",
    "Target",
    "Value",
]

SP: Final = 31
"""Register number 31 where the operand means the stack pointer."""
XZR: Final = 31
"""Register number 31 where the operand means the zero register."""
LR: Final = 30
"""The link register, x30."""

CONDITIONS: Final = (
    "eq", "ne", "hs", "lo", "mi", "pl", "vs", "vc",
    "hi", "ls", "ge", "lt", "gt", "le", "al",
)  # fmt: skip
"""B.cond condition names, indexed by their 4-bit encoding."""

_NOP_WORD: Final = 0xD503201F
_LABEL_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MASK32: Final = (1 << 32) - 1
_MASK64: Final = (1 << 64) - 1


@dataclass(frozen=True)
class SysReg:
    """A system register by its encoding; printed as GNU as's generic name ``s3_0_c1_c0_0``.

    Generic names let a guest touch any register, named in the architecture or not, and GNU as
    accepts every one of them. Only op0 2 (debug) and 3 (the rest) name registers: op0 0 and 1
    encode hints, PSTATE writes and system instructions, so they are refused.
    """

    op0: int
    op1: int
    crn: int
    crm: int
    op2: int

    def __post_init__(self) -> None:
        """Refuse a field outside its bit width, naming it."""
        if self.op0 not in (2, 3):
            raise InvalidInput(f"op0={self.op0} not in {{2, 3}}")
        for name, value, hi in (
            ("op1", self.op1, 7),
            ("crn", self.crn, 15),
            ("crm", self.crm, 15),
            ("op2", self.op2, 7),
        ):
            if not 0 <= value <= hi:
                raise InvalidInput(f"{name}={value} out of range 0..{hi}")

    @property
    def encoding(self) -> int:
        """The 16-bit ``op0:op1:CRn:CRm:op2`` value (the layout of Linux's ``sys_reg()``)."""
        return self.op0 << 14 | self.op1 << 11 | self.crn << 7 | self.crm << 3 | self.op2

    def __str__(self) -> str:
        """The generic name GNU as reads and objdump prints, e.g. ``s3_0_c1_c0_0``."""
        return f"s{self.op0}_{self.op1}_c{self.crn}_c{self.crm}_{self.op2}"


Value: TypeAlias = int | str | SysReg
"""An operand: a register number or immediate, a label or condition name, or a system register."""

Placer: TypeAlias = int | Callable[[int], int]
"""Where a field's raw bits go: a bit position, or a function for fields split across the word."""


def _place(at: Placer, raw: int) -> int:
    return raw << at if isinstance(at, int) else at(raw)


def _integer(name: str, value: Value) -> int:
    """Return ``value`` if it is a plain int (not a bool), else refuse it naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name}={value!r} is not an integer")
    return value


@dataclass(frozen=True)
class Field(ABC):
    """One operand of a form: how to check it, place it into the word and print it.

    ``default`` lets trailing operands be omitted (``ret`` means ``ret x30``).
    """

    name: str
    default: Value | None = field(default=None, kw_only=True)

    @abstractmethod
    def check(self, value: Value) -> None:
        """Raise InvalidInput unless ``value`` can be encoded; labels are checked by name only."""

    @abstractmethod
    def bits(self, value: Value, pc: int, labels: Mapping[str, int]) -> int:
        """Return ``value`` placed in the instruction word at address ``pc``."""

    @abstractmethod
    def text(self, value: Value) -> str:
        """Return ``value`` as GNU as spells it in this operand."""


_REG_SYNTAX: Final = {
    "x": ("x{}", "xzr"),
    "xsp": ("x{}", "sp"),
    "w": ("w{}", "wzr"),
    "d": ("d{}", "d31"),
    "q": ("q{}", "q31"),
    "vd1": ("v{}.d[1]", "v31.d[1]"),
    "z": ("z{}", "z31"),
    "zd": ("z{}.d", "z31.d"),
}


@dataclass(frozen=True)
class Reg(Field):
    """A 5-bit register number at bit ``at``; ``kind`` (a key of the syntax table) names it."""

    at: int
    kind: str

    def check(self, value: Value) -> None:
        """Refuse anything but 0..31."""
        if not 0 <= _integer(self.name, value) <= 31:
            raise InvalidInput(f"{self.name}={value} out of range 0..31")

    def bits(self, value: Value, pc: int, labels: Mapping[str, int]) -> int:
        """Place the register number."""
        return _integer(self.name, value) << self.at

    def text(self, value: Value) -> str:
        """``x3``, ``sp``, ``xzr``, ``w3``, ``q3``, ``v3.d[1]``..."""
        numbered, thirty_one = _REG_SYNTAX[self.kind]
        return thirty_one if value == 31 else numbered.format(value)


@dataclass(frozen=True)
class Imm(Field):
    """An immediate of ``width`` bits, given in units of 1 and encoded divided by ``scale``."""

    width: int
    at: Placer
    scale: int = 1
    signed: bool = False
    hex: bool = False

    @property
    def lo(self) -> int:
        """The smallest value accepted (already multiplied by ``scale``)."""
        return -(1 << (self.width - 1)) * self.scale if self.signed else 0

    @property
    def hi(self) -> int:
        """The largest value accepted (already multiplied by ``scale``)."""
        top = (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1
        return top * self.scale

    def check(self, value: Value) -> None:
        """Refuse a value off the scale or out of range."""
        number = _integer(self.name, value)
        if number % self.scale:
            raise InvalidInput(f"{self.name}={number} is not a multiple of {self.scale}")
        if not self.lo <= number <= self.hi:
            raise InvalidInput(f"{self.name}={number} out of range {self.lo}..{self.hi}")

    def bits(self, value: Value, pc: int, labels: Mapping[str, int]) -> int:
        """Scale, truncate to ``width`` bits (two's complement if signed) and place."""
        raw = (_integer(self.name, value) // self.scale) & ((1 << self.width) - 1)
        return _place(self.at, raw)

    def text(self, value: Value) -> str:
        """Decimal, or hex for fields that read better that way (imm16)."""
        return f"{value:#x}" if self.hex else str(value)


@dataclass(frozen=True)
class Choice(Field):
    """An operand with a few allowed values, encoded as the value's index (``lsl #16`` -> 1)."""

    at: int
    choices: tuple[int, ...]

    def check(self, value: Value) -> None:
        """Refuse a value not in ``choices``."""
        if _integer(self.name, value) not in self.choices:
            raise InvalidInput(f"{self.name}={value} not in {self.choices}")

    def bits(self, value: Value, pc: int, labels: Mapping[str, int]) -> int:
        """Place the index of ``value``."""
        return self.choices.index(_integer(self.name, value)) << self.at

    def text(self, value: Value) -> str:
        """The value in decimal."""
        return str(value)


@dataclass(frozen=True)
class Cond(Field):
    """A condition name from :data:`CONDITIONS`, encoded as its 4-bit index."""

    at: int

    def check(self, value: Value) -> None:
        """Refuse anything but a name in :data:`CONDITIONS`."""
        if value not in CONDITIONS:
            raise InvalidInput(f"{self.name}={value!r} not one of {', '.join(CONDITIONS)}")

    def bits(self, value: Value, pc: int, labels: Mapping[str, int]) -> int:
        """Place the condition code."""
        return CONDITIONS.index(str(value)) << self.at

    def text(self, value: Value) -> str:
        """The condition name."""
        return str(value)


@dataclass(frozen=True)
class SysRegOperand(Field):
    """A :class:`SysReg`, its 16-bit encoding placed at bit 5 as MRS and MSR want it."""

    def check(self, value: Value) -> None:
        """Refuse anything but a SysReg (which checked its own fields)."""
        if not isinstance(value, SysReg):
            raise InvalidInput(f"{self.name}={value!r} is not a SysReg")

    def bits(self, value: Value, pc: int, labels: Mapping[str, int]) -> int:
        """Place op0:op1:CRn:CRm:op2 at bits 5..20."""
        assert isinstance(value, SysReg)
        return value.encoding << 5

    def text(self, value: Value) -> str:
        """The generic name, ``s3_0_c1_c0_0``."""
        return str(value)


@dataclass(frozen=True)
class Target(Field):
    """A label, encoded as its signed distance from the instruction in ``scale``-byte units."""

    width: int
    at: Placer
    scale: int = 4

    def check(self, value: Value) -> None:
        """Refuse a value that cannot be a label name."""
        if not isinstance(value, str) or not _LABEL_RE.match(value):
            raise InvalidInput(f"{self.name}={value!r} is not a label name")

    def bits(self, value: Value, pc: int, labels: Mapping[str, int]) -> int:
        """Resolve the label and place its distance; refuse one that is undefined or too far."""
        name = str(value)
        if name not in labels:
            raise InvalidInput(f"undefined label {name!r}")
        offset = labels[name] - pc
        lo, hi = -(1 << (self.width - 1)) * self.scale, ((1 << (self.width - 1)) - 1) * self.scale
        if offset % self.scale or not lo <= offset <= hi:
            raise InvalidInput(
                f"label {name!r} is {offset:+#x} bytes away, out of range {lo}..{hi}"
                f" in steps of {self.scale}"
            )
        return _place(self.at, (offset // self.scale) & ((1 << self.width) - 1))

    def text(self, value: Value) -> str:
        """The label as the listing defines it, ``L_<name>``."""
        return f"L_{value}"


Constraint: TypeAlias = Callable[[Sequence[Value]], str | None]
"""A check across operands: returns why the combination is refused, or None."""


#: At most this many memo entries per form: immediates are drawn, so a campaign would
#: otherwise grow them without end.
_MEMO_LIMIT: Final = 4096
_MEMO_TYPES: Final = frozenset({int, str, SysReg})


def _memoizable(operands: tuple[Value, ...]) -> bool:
    """Whether operands may key a memo: exactly ints, strings and SysRegs (a bool equals
    an int as a key, and must still be refused)."""
    return all(map(_MEMO_TYPES.__contains__, map(type, operands)))


@dataclass(frozen=True)
class Form:
    """One instruction form: its name, GNU as syntax, base opcode and operand fields.

    ``syntax`` is a :meth:`str.format` template whose ``{i}`` is the text of operand ``i``;
    ``base`` is the word with every field zero; ``constraint`` refuses operand combinations that
    are encodable but CONSTRAINED UNPREDICTABLE (GNU as warns about those).
    """

    name: str
    syntax: str
    base: int
    fields: tuple[Field, ...]
    constraint: Constraint | None = None
    # Memos: a guest is ~400 instructions, most of them the same from guest to guest, and
    # checking and encoding each anew took ~2.5 ms per guest (~1.4 ms with these).
    _bound: dict[tuple[Value, ...], tuple[Value, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _words: dict[tuple[Value, ...], int] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    #: Whether the word depends on where the instruction is (a label operand): not memoized.
    _relative: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_relative", any(isinstance(f, Target) for f in self.fields))

    def bind(self, operands: Sequence[Value]) -> tuple[Value, ...]:
        """Check ``operands``, fill in omitted trailing defaults and return the full tuple."""
        key = tuple(operands)
        memo = _memoizable(key)
        if memo and (bound := self._bound.get(key)) is not None:
            return bound
        if len(operands) > len(self.fields):
            raise InvalidInput(
                f"{self.name} takes {len(self.fields)} operands, got {len(operands)}"
            )
        values = list(operands)
        for omitted in self.fields[len(operands) :]:
            if omitted.default is None:
                raise InvalidInput(f"{self.name}: missing operand {omitted.name}")
            values.append(omitted.default)
        for operand, value in zip(self.fields, values, strict=True):
            operand.check(value)
        if self.constraint is not None and (problem := self.constraint(values)):
            raise InvalidInput(f"{self.name}: {problem}")
        bound = tuple(values)
        if memo and len(self._bound) < _MEMO_LIMIT:
            self._bound[key] = bound
        return bound

    def encode(self, operands: Sequence[Value], pc: int, labels: Mapping[str, int]) -> int:
        """Return the 32-bit word for bound ``operands`` at address ``pc``."""
        key = tuple(operands)  # bound: only ints, strings and SysRegs, all hashable
        if (word := self._words.get(key)) is not None:
            return word
        word = self.base
        for operand, value in zip(self.fields, operands, strict=True):
            word |= operand.bits(value, pc, labels)
        if not self._relative and len(self._words) < _MEMO_LIMIT and _memoizable(key):
            self._words[key] = word
        return word

    def text(self, operands: Sequence[Value]) -> str:
        """Return the GNU as source text for bound ``operands``."""
        return self.syntax.format(
            *(operand.text(value) for operand, value in zip(self.fields, operands, strict=True))
        )


_FORMS: dict[str, Form] = {}
FORMS: Final[Mapping[str, Form]] = MappingProxyType(_FORMS)
"""Every form the encoder knows, by name; the tests compare each one with GNU as."""


def _form(
    name: str, syntax: str, base: int, *fields: Field, constraint: Constraint | None = None
) -> Form:
    """Define a form and enter it in :data:`FORMS`."""
    if name in _FORMS:
        raise AssertionError(f"form {name!r} defined twice")
    form = Form(name, syntax, base, fields, constraint)
    _FORMS[name] = form
    return form


def _pair_rule(*, load: bool, writeback: bool) -> Constraint:
    """Refuse LDP/STP register choices the architecture leaves unpredictable."""

    def rule(operands: Sequence[Value]) -> str | None:
        rt, rt2, rn = operands[0], operands[1], operands[2]
        if load and rt == rt2:
            return f"rt=rt2={rt} is unpredictable for a load pair"
        if writeback and rn != SP and rn in (rt, rt2):
            return f"rn={rn} is also transferred, unpredictable with writeback"
        return None

    return rule


def _lsl_place(shift: int) -> int:
    """LSL #s is UBFM with immr = -s mod 64 and imms = 63 - s."""
    return ((-shift) % 64) << 16 | (63 - shift) << 10


def _bit_place(bit: int) -> int:
    """TBZ/TBNZ split the bit number into b5 (bit 31) and b40 (bits 19..23)."""
    return (bit >> 5) << 31 | (bit & 31) << 19


def _adr_place(offset: int) -> int:
    """ADR splits its 21-bit offset into immlo (bits 29..30) and immhi (bits 5..23)."""
    return (offset & 3) << 29 | (offset >> 2) << 5


# Operand fields shared by many forms.
_RD = Reg("rd", 0, "x")
_RN = Reg("rn", 5, "x")
_RM = Reg("rm", 16, "x")
_RT = Reg("rt", 0, "x")
_RT2 = Reg("rt2", 10, "x")
_RD_SP = Reg("rd", 0, "xsp")
_RN_SP = Reg("rn", 5, "xsp")
_IMM16 = Imm("imm16", 16, 5, hex=True)
_HW = Choice("shift", 21, (0, 16, 32, 48), default=0)
_IMM12 = Imm("imm12", 12, 10)
_SH12 = Choice("shift", 22, (0, 12), default=0)
_SYSREG = SysRegOperand("sysreg")
_PAIR_OFFSET = Imm("offset", 7, 15, scale=8, signed=True)
_LABEL19 = Target("label", 19, 5)

_MEM = "{0}, [{1}, #{2}]"
_PAIR = "{0}, {1}, [{2}, #{3}]"
_PAIR_PRE = "{0}, {1}, [{2}, #{3}]!"
_PAIR_POST = "{0}, {1}, [{2}], #{3}"

# Moves and arithmetic.
MOVZ = _form("movz", "movz {0}, #{1}, lsl #{2}", 0xD2800000, _RD, _IMM16, _HW)
MOVK = _form("movk", "movk {0}, #{1}, lsl #{2}", 0xF2800000, _RD, _IMM16, _HW)
_ADDSUB_IMM = (_RD_SP, _RN_SP, _IMM12, _SH12)
ADD_IMM = _form("add_imm", "add {0}, {1}, #{2}, lsl #{3}", 0x91000000, *_ADDSUB_IMM)
SUB_IMM = _form("sub_imm", "sub {0}, {1}, #{2}, lsl #{3}", 0xD1000000, *_ADDSUB_IMM)
CMP_IMM = _form("cmp_imm", "cmp {0}, #{1}, lsl #{2}", 0xF100001F, _RN_SP, _IMM12, _SH12)
ADD = _form("add", "add {0}, {1}, {2}", 0x8B000000, _RD, _RN, _RM)
SUB = _form("sub", "sub {0}, {1}, {2}", 0xCB000000, _RD, _RN, _RM)
ORR = _form("orr", "orr {0}, {1}, {2}", 0xAA000000, _RD, _RN, _RM)
AND = _form("and", "and {0}, {1}, {2}", 0x8A000000, _RD, _RN, _RM)
EOR = _form("eor", "eor {0}, {1}, {2}", 0xCA000000, _RD, _RN, _RM)
MUL = _form("mul", "mul {0}, {1}, {2}", 0x9B007C00, _RD, _RN, _RM)
CMP = _form("cmp", "cmp {0}, {1}", 0xEB00001F, _RN, _RM)
LSR = _form("lsr", "lsr {0}, {1}, #{2}", 0xD340FC00, _RD, _RN, Imm("shift", 6, 16))
LSL = _form("lsl", "lsl {0}, {1}, #{2}", 0xD3400000, _RD, _RN, Imm("shift", 6, _lsl_place))

# System registers and PSTATE.
MRS = _form("mrs", "mrs {0}, {1}", 0xD5200000, _RT, _SYSREG)
MSR = _form("msr", "msr {0}, {1}", 0xD5000000, _SYSREG, _RT)
MSR_DAIFSET = _form("msr_daifset", "msr daifset, #{0}", 0xD50340DF, Imm("imm4", 4, 8))
MSR_DAIFCLR = _form("msr_daifclr", "msr daifclr, #{0}", 0xD50340FF, Imm("imm4", 4, 8))
MSR_SPSEL = _form("msr_spsel", "msr spsel, #{0}", 0xD50040BF, Imm("imm", 1, 8))

# Loads and stores, unsigned scaled offset.
LDR = _form("ldr", "ldr " + _MEM, 0xF9400000, _RT, _RN_SP, Imm("offset", 12, 10, scale=8))
STR = _form("str", "str " + _MEM, 0xF9000000, _RT, _RN_SP, Imm("offset", 12, 10, scale=8))
_WT, _QT = Reg("rt", 0, "w"), Reg("rt", 0, "q")
LDR_W = _form("ldr_w", "ldr " + _MEM, 0xB9400000, _WT, _RN_SP, Imm("offset", 12, 10, scale=4))
STR_W = _form("str_w", "str " + _MEM, 0xB9000000, _WT, _RN_SP, Imm("offset", 12, 10, scale=4))
LDRB = _form("ldrb", "ldrb " + _MEM, 0x39400000, _WT, _RN_SP, Imm("offset", 12, 10))
STRB = _form("strb", "strb " + _MEM, 0x39000000, _WT, _RN_SP, Imm("offset", 12, 10))
STRH = _form("strh", "strh " + _MEM, 0x79000000, _WT, _RN_SP, Imm("offset", 12, 10, scale=2))
LDR_Q = _form("ldr_q", "ldr " + _MEM, 0x3DC00000, _QT, _RN_SP, Imm("offset", 12, 10, scale=16))
STR_Q = _form("str_q", "str " + _MEM, 0x3D800000, _QT, _RN_SP, Imm("offset", 12, 10, scale=16))

# Register pairs: signed offset, pre-index and post-index (push and pop).
_LD, _LD_WB = _pair_rule(load=True, writeback=False), _pair_rule(load=True, writeback=True)
_ST_WB = _pair_rule(load=False, writeback=True)
_P = (_RT, _RT2, _RN_SP, _PAIR_OFFSET)
LDP = _form("ldp", "ldp " + _PAIR, 0xA9400000, *_P, constraint=_LD)
STP = _form("stp", "stp " + _PAIR, 0xA9000000, *_P)
LDP_PRE = _form("ldp_pre", "ldp " + _PAIR_PRE, 0xA9C00000, *_P, constraint=_LD_WB)
STP_PRE = _form("stp_pre", "stp " + _PAIR_PRE, 0xA9800000, *_P, constraint=_ST_WB)
LDP_POST = _form("ldp_post", "ldp " + _PAIR_POST, 0xA8C00000, *_P, constraint=_LD_WB)
STP_POST = _form("stp_post", "stp " + _PAIR_POST, 0xA8800000, *_P, constraint=_ST_WB)

# Moves between general and SIMD&FP registers (the low and the high half of Vn).
FMOV_D_X = _form("fmov_d_x", "fmov {0}, {1}", 0x9E670000, Reg("rd", 0, "d"), _RN)
FMOV_X_D = _form("fmov_x_d", "fmov {0}, {1}", 0x9E660000, _RD, Reg("rn", 5, "d"))
FMOV_V1_X = _form("fmov_v1_x", "fmov {0}, {1}", 0x9EAF0000, Reg("rd", 0, "vd1"), _RN)
FMOV_X_V1 = _form("fmov_x_v1", "fmov {0}, {1}", 0x9EAE0000, _RD, Reg("rn", 5, "vd1"))

# Branches.
B = _form("b", "b {0}", 0x14000000, Target("label", 26, 0))
BL = _form("bl", "bl {0}", 0x94000000, Target("label", 26, 0))
B_COND = _form("b_cond", "b.{0} {1}", 0x54000000, Cond("cond", 0), _LABEL19)
CBZ = _form("cbz", "cbz {0}, {1}", 0xB4000000, _RT, _LABEL19)
CBNZ = _form("cbnz", "cbnz {0}, {1}", 0xB5000000, _RT, _LABEL19)
_BIT = Imm("bit", 6, _bit_place)
TBZ = _form("tbz", "tbz {0}, #{1}, {2}", 0x36000000, _RT, _BIT, Target("label", 14, 5))
TBNZ = _form("tbnz", "tbnz {0}, #{1}, {2}", 0x37000000, _RT, _BIT, Target("label", 14, 5))
BR = _form("br", "br {0}", 0xD61F0000, _RN)
BLR = _form("blr", "blr {0}", 0xD63F0000, _RN)
RET = _form("ret", "ret {0}", 0xD65F0000, Reg("rn", 5, "x", default=LR))
ADR = _form("adr", "adr {0}, {1}", 0x10000000, _RD, Target("label", 21, _adr_place, scale=1))

# Hints, barriers, exception generation and return.
NOP = _form("nop", "nop", _NOP_WORD)
WFE = _form("wfe", "wfe", 0xD503205F)
WFI = _form("wfi", "wfi", 0xD503207F)
SEV = _form("sev", "sev", 0xD503209F)
ISB = _form("isb", "isb", 0xD5033FDF)
DSB_SY = _form("dsb_sy", "dsb sy", 0xD5033F9F)
DMB_SY = _form("dmb_sy", "dmb sy", 0xD5033FBF)
ERET = _form("eret", "eret", 0xD69F03E0)
SVC = _form("svc", "svc #{0}", 0xD4000001, _IMM16)
HVC = _form("hvc", "hvc #{0}", 0xD4000002, _IMM16)
SMC = _form("smc", "smc #{0}", 0xD4000003, _IMM16)
BRK = _form("brk", "brk #{0}", 0xD4200000, _IMM16)

# SVE: fill a vector with base + i * step, store a whole vector, read the vector length.
INDEX_D = _form("index_d", "index {0}, {1}, {2}", 0x04E04C00, Reg("zd", 0, "zd"), _RN, _RM)
STR_Z = _form("str_z", "str {0}, [{1}]", 0xE5804000, Reg("zt", 0, "z"), _RN_SP)
RDVL = _form("rdvl", "rdvl {0}, #{1}", 0x04BF5000, _RD, Imm("imm6", 6, 5, signed=True))

# TLB invalidation of the whole current translation regime, one form per exception level.
TLBI_VMALLE1 = _form("tlbi_vmalle1", "tlbi vmalle1", 0xD508871F)
TLBI_ALLE2 = _form("tlbi_alle2", "tlbi alle2", 0xD50C871F)
TLBI_ALLE3 = _form("tlbi_alle3", "tlbi alle3", 0xD50E871F)


@dataclass(frozen=True)
class _Instruction:
    address: int
    form: Form
    operands: tuple[Value, ...]


@dataclass(frozen=True)
class _Label:
    address: int
    name: str


@dataclass(frozen=True)
class _Align:
    address: int
    boundary: int
    padding: int


@dataclass(frozen=True)
class _Data:
    address: int
    size: int
    value: int


_Item: TypeAlias = _Instruction | _Label | _Align | _Data


class Assembler:
    """Collects instructions, labels and data for code placed at ``base_address``.

    Every item's address is known when it is emitted (all sizes are fixed), so operand errors
    surface at the ``emit`` call; labels are resolved by :meth:`assemble` and :meth:`listing`,
    which may be called any number of times.
    """

    def __init__(self, base_address: int) -> None:
        """Start an empty program at ``base_address``, which must be 4-byte aligned."""
        if not 0 <= base_address <= _MASK64 or base_address % 4:
            raise InvalidInput(f"base_address={base_address:#x} is not a 4-aligned 64-bit address")
        self.base_address = base_address
        self._items: list[_Item] = []
        self._labels: dict[str, int] = {}
        self._pc = base_address

    @property
    def address(self) -> int:
        """The address the next item will be placed at."""
        return self._pc

    def address_of(self, name: str) -> int:
        """Return the address of label ``name``; raise InvalidInput if it is not defined yet."""
        if name not in self._labels:
            raise InvalidInput(f"undefined label {name!r}")
        return self._labels[name]

    def emit(self, form: Form, *operands: Value) -> None:
        """Append one instruction of ``form``; raise InvalidInput if an operand is refused."""
        bound = form.bind(operands)
        self._items.append(_Instruction(self._pc, form, bound))
        self._pc += 4

    def mov_imm64(self, reg: int, value: int) -> None:
        """Load the 64-bit ``value`` into X``reg`` with MOVZ and three MOVKs.

        Always four instructions, even for small values: the code's length never depends on the
        value, so labels after it stay put while Hypothesis shrinks the constant. Negative values
        down to -2**63 are taken as two's complement.
        """
        number = _integer("value", value)
        if not -(1 << 63) <= number <= _MASK64:
            raise InvalidInput(f"value={number:#x} does not fit in 64 bits")
        number &= _MASK64
        self.emit(MOVZ, reg, number & 0xFFFF, 0)
        for shift in (16, 32, 48):
            self.emit(MOVK, reg, (number >> shift) & 0xFFFF, shift)

    def label(self, name: str) -> None:
        """Define label ``name`` at the current address; raise InvalidInput if bad or taken."""
        if not isinstance(name, str) or not _LABEL_RE.match(name):
            raise InvalidInput(f"label name {name!r} is not [A-Za-z_][A-Za-z0-9_]*")
        if name in self._labels:
            raise InvalidInput(
                f"label {name!r} defined twice, at {self._labels[name]:#x} and {self._pc:#x}"
            )
        self._labels[name] = self._pc
        self._items.append(_Label(self._pc, name))

    def align(self, boundary: int) -> None:
        """Pad with NOPs (code may run through them) up to a multiple of ``boundary`` bytes.

        ``boundary`` must be a power of two dividing ``base_address``: GNU as aligns relative to
        the section start, so the listing pads the same way only then.
        """
        _integer("boundary", boundary)
        if boundary < 1 or boundary & (boundary - 1):
            raise InvalidInput(f"boundary={boundary} is not a power of two")
        if self.base_address % boundary:
            raise InvalidInput(
                f"boundary={boundary} does not divide base_address={self.base_address:#x}"
            )
        padding = -self._pc % boundary
        self._items.append(_Align(self._pc, boundary, padding))
        self._pc += padding

    def word(self, value: int) -> None:
        """Append a 32-bit little-endian data word."""
        self._data(4, value, _MASK32)

    def quad(self, value: int) -> None:
        """Append a 64-bit little-endian data word (not aligned: call :meth:`align` first)."""
        self._data(8, value, _MASK64)

    def _data(self, size: int, value: int, mask: int) -> None:
        if not 0 <= _integer("value", value) <= mask:
            raise InvalidInput(f"value={value:#x} out of range 0..{mask:#x}")
        self._items.append(_Data(self._pc, size, value))
        self._pc += size

    def _encode(self, item: _Instruction) -> int:
        """Encode one instruction, naming where it is if a label lets it down."""
        try:
            return item.form.encode(item.operands, item.address, self._labels)
        except InvalidInput as error:
            text = item.form.text(item.operands)
            raise InvalidInput(f"{item.address:#x} `{text}`: {error}") from error

    def assemble(self) -> bytes:
        """Return the program as little-endian bytes, labels resolved.

        :raise InvalidInput: a label is undefined, or a target is out of its branch's range.
        """
        out = bytearray()
        for item in self._items:
            match item:
                case _Instruction():
                    out += self._encode(item).to_bytes(4, "little")
                case _Align():
                    out += _NOP_WORD.to_bytes(4, "little") * (item.padding // 4)
                case _Data():
                    out += item.value.to_bytes(item.size, "little")
                case _Label():
                    pass
        return bytes(out)

    def listing(self) -> str:
        """Return GNU as source for the program, each line commented with address and encoding.

        The text assembles (``aarch64-linux-gnu-as`` then ``objcopy -O binary``) to exactly
        :meth:`assemble`'s bytes. It uses labels, ``.balignl`` and data directives, no ``.org``.

        :raise InvalidInput: as :meth:`assemble`.
        """
        lines = [
            f"// migfuzz guest, base address {self.base_address:#x}",
            "\t.arch armv8-a+sve",
            "\t.text",
        ]
        for item in self._items:
            match item:
                case _Instruction():
                    text = item.form.text(item.operands)
                    lines.append(f"\t{text:<40}// {item.address:#x}: {self._encode(item):08x}")
                case _Label():
                    lines.append(f"{'L_' + item.name + ':':<41}// {item.address:#x}")
                case _Align():
                    text = f".balignl {item.boundary}, {_NOP_WORD:#x}"
                    note = f"{item.padding // 4} x nop"
                    lines.append(f"\t{text:<40}// {item.address:#x}: {note}")
                case _Data():
                    directive = ".word" if item.size == 4 else ".quad"
                    text = f"{directive} {item.value:#0{2 + 2 * item.size}x}"
                    lines.append(f"\t{text:<40}// {item.address:#x}")
        return "\n".join(lines) + "\n"
