"""Guest operations -> a bare-metal AArch64 image for the ``virt`` machine.

What the image does, in order (every CPU starts at ``entry`` at its reset EL):

1. Prologue: park every CPU whose MPIDR_EL1 affinity is not 0.0.0 (``wfe`` loop); set SP
   to :data:`STACK_TOP`; enable the PL011; install exception vectors in VBAR of the
   current EL (1, 2 or 3) that print ``EXC el=.. vec=.. esr=.. elr=.. far=..`` and the done
   marker, then park; enable FP/SIMD (CPACR_EL1.FPEN, and CPTR_EL2/EL3.TFP at EL2/EL3).
2. The operations, in list order, using only x28 and x29 as scratch.
3. The read-back (``name=0x<hex>`` lines, see :func:`readback_items`), then the
   checkpoint marker; then it polls the UART for the resume byte using only x28/x29.
4. After resume: the same read-back (the transcript), the done marker, and it parks.

Reserved registers: x28 (operation scratch, read-back marker pointer, polling), x29
(operation scratch, UART base while polling), x30 (link register of the read-back call).
x0..x27, q0..q31, NZCV, DAIF and every written system register are live across the save.
The read-back routine saves x0..x27 and NZCV on the stack first, prints without any
flag-setting instruction, and restores them, so the state it reads is left as it was.

The image is loaded at :data:`IMAGE_BASE`, 1 MiB into RAM: with no kernel, QEMU puts
the device tree blob at the start of RAM (0x40000000..0x40100000) and refuses an
overlapping image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from fuzz.case import GUEST_BASE, GuestProgram
from fuzz.errors import InvalidInput
from strategies.asm import (
    ADD,
    ADD_IMM,
    ADR,
    AND,
    B_COND,
    BL,
    CBNZ,
    CBZ,
    CMP_IMM,
    DSB_SY,
    FMOV_D_X,
    FMOV_V1_X,
    FMOV_X_D,
    FMOV_X_V1,
    ISB,
    LDP,
    LDR,
    LDR_W,
    LDRB,
    LSL,
    LSR,
    MOVZ,
    MRS,
    MSR,
    MSR_DAIFCLR,
    MSR_DAIFSET,
    RET,
    SP,
    STP,
    STR,
    STR_W,
    STRB,
    SUB_IMM,
    TBNZ,
    WFE,
    Assembler,
    B,
    SysReg,
)
from strategies.guests import (
    DATA_BASE,
    ArmTimer,
    ConfigureGic,
    FillMemory,
    Operation,
    SetDaif,
    SetFlags,
    SetFpReg,
    SetGpr,
    WriteSysReg,
    operations_from_json,
    operations_to_json,
)
from strategies.sysregs import SYSTEM_REGISTERS, by_name

__all__ = [
    "GICD_BASE",
    "IMAGE_BASE",
    "STACK_TOP",
    "UART_BASE",
    "build_guest",
    "expected_values",
    "operations_from_json",
    "readback_items",
]

IMAGE_BASE: Final = GUEST_BASE
"""Where the image is loaded and every CPU starts (after QEMU's 1 MiB device tree blob)."""
STACK_TOP: Final = DATA_BASE
"""Initial SP of CPU 0; the stack grows down toward the image."""
UART_BASE: Final = 0x0900_0000
"""The first PL011 on ``virt``."""
GICD_BASE: Final = 0x0800_0000
"""The GIC distributor on ``virt`` (v2 and v3 alike)."""

CHECKPOINT: Final = b"@@MIGFUZZ-CHECKPOINT@@"
DONE: Final = b"@@MIGFUZZ-DONE@@"
RESUME: Final = b"g"

_UART_FR: Final = 0x18
_UART_CR: Final = 0x30
_FR_TXFF: Final = 5
_FR_RXFE: Final = 4
_GICD_ISENABLER: Final = 0x100
_GICD_ICENABLER: Final = 0x180
_GICD_IPRIORITYR: Final = 0x400
_STACK_GUARD: Final = 0x1000
_FRAME: Final = 256  # x0..x27, then NZCV at 224, x30 at 232
_NZCV_SLOT: Final = 224
_LR_SLOT: Final = 232
_U64: Final = (1 << 64) - 1

# Registers the image itself uses, by encoding.
_MPIDR = SysReg(3, 0, 0, 0, 5)
_CURRENT_EL = SysReg(3, 0, 4, 2, 2)
_NZCV = SysReg(3, 3, 4, 2, 0)
_DAIF = SysReg(3, 3, 4, 2, 1)
_CPACR_EL1 = SysReg(3, 0, 1, 0, 2)
_VBAR = {1: SysReg(3, 0, 12, 0, 0), 2: SysReg(3, 4, 12, 0, 0), 3: SysReg(3, 6, 12, 0, 0)}
_CPTR = {2: SysReg(3, 4, 1, 1, 2), 3: SysReg(3, 6, 1, 1, 2)}
_ESR = {1: SysReg(3, 0, 5, 2, 0), 2: SysReg(3, 4, 5, 2, 0), 3: SysReg(3, 6, 5, 2, 0)}
_ELR = {1: SysReg(3, 0, 4, 0, 1), 2: SysReg(3, 4, 4, 0, 1), 3: SysReg(3, 6, 4, 0, 1)}
_FAR = {1: SysReg(3, 0, 6, 0, 0), 2: SysReg(3, 4, 6, 0, 0), 3: SysReg(3, 6, 6, 0, 0)}
_TIMERS: Final = {
    # timer -> (CVAL name, CVAL, CTL name, CTL)
    "virtual": ("CNTV_CVAL_EL0", SysReg(3, 3, 14, 3, 2), "CNTV_CTL_EL0", SysReg(3, 3, 14, 3, 1)),
    "physical": ("CNTP_CVAL_EL0", SysReg(3, 3, 14, 2, 2), "CNTP_CTL_EL0", SysReg(3, 3, 14, 2, 1)),
}
_CTL_IMASK: Final = 2
_CTL_READ_MASK: Final = 3  # ENABLE | IMASK: ISTATUS depends on the time of the read

_Emit = Callable[[Assembler], None]


@dataclass(frozen=True)
class _Item:
    """One read-back line: its name and the code that leaves each 64-bit half in x1."""

    name: str
    halves: tuple[_Emit, ...]


def _hex(value: int, digits: int = 16) -> str:
    return f"0x{value:0{digits}x}"


def _memory_name(address: int) -> str:
    return f"mem[{DATA_BASE:#x}+{address - DATA_BASE:#x}]"


def _final_memory(operations: Sequence[Operation]) -> dict[int, int]:
    memory: dict[int, int] = {}
    for op in operations:
        if isinstance(op, FillMemory):
            memory.update(op.words())
    return memory


def _mrs(reg: SysReg) -> _Emit:
    return lambda a: a.emit(MRS, 1, reg)


def _masked_mrs(reg: SysReg, mask: int) -> _Emit:
    def emit(a: Assembler) -> None:
        a.emit(MRS, 1, reg)
        a.emit(MOVZ, 2, mask)
        a.emit(AND, 1, 1, 2)

    return emit


def _load(address: int, *, word: bool) -> _Emit:
    def emit(a: Assembler) -> None:
        a.mov_imm64(2, address)
        a.emit(LDR_W if word else LDR, 1, 2, 0)

    return emit


def _frame_slot(offset: int) -> _Emit:
    return lambda a: a.emit(LDR, 1, SP, offset)


def _q_high(n: int) -> _Emit:
    return lambda a: a.emit(FMOV_X_V1, 1, n)


def _q_low(n: int) -> _Emit:
    return lambda a: a.emit(FMOV_X_D, 1, n)


def _el(a: Assembler) -> None:
    a.emit(MRS, 1, _CURRENT_EL)
    a.emit(LSR, 1, 1, 2)


def _items(operations: Sequence[Operation]) -> list[_Item]:
    """Every read-back line for ``operations``, in transcript order."""
    items = [_Item("el", (_el,))]
    written = {op.register for op in operations if isinstance(op, WriteSysReg)}
    items += [_Item(r.name, (_mrs(r.encoding),)) for r in SYSTEM_REGISTERS if r.name in written]
    timers = {op.timer for op in operations if isinstance(op, ArmTimer)}
    for timer, (cval_name, cval, ctl_name, ctl) in _TIMERS.items():
        if timer in timers:
            items.append(_Item(cval_name, (_mrs(cval),)))
            items.append(_Item(ctl_name, (_masked_mrs(ctl, _CTL_READ_MASK),)))
    irqs = {op.irq for op in operations if isinstance(op, ConfigureGic)}
    for n in sorted({irq // 32 for irq in irqs}):
        address = GICD_BASE + _GICD_ISENABLER + 4 * n
        items.append(_Item(f"GICD_ISENABLER{n}", (_load(address, word=True),)))
    for n in sorted({irq // 4 for irq in irqs}):
        address = GICD_BASE + _GICD_IPRIORITYR + 4 * n
        items.append(_Item(f"GICD_IPRIORITYR{n}", (_load(address, word=True),)))
    for address in sorted(_final_memory(operations)):
        items.append(_Item(_memory_name(address), (_load(address, word=False),)))
    gprs = sorted({op.register for op in operations if isinstance(op, SetGpr)})
    items += [_Item(f"x{n}", (_frame_slot(8 * n),)) for n in gprs]
    fprs = sorted({op.register for op in operations if isinstance(op, SetFpReg)})
    items += [_Item(f"q{n}", (_q_high(n), _q_low(n))) for n in fprs]
    items.append(_Item("nzcv", (_frame_slot(_NZCV_SLOT),)))
    items.append(_Item("daif", (_mrs(_DAIF),)))
    return items


def readback_items(operations: Sequence[Operation]) -> list[str]:
    """The names of the read-back lines the guest for ``operations`` prints, in order.

    Always ``el`` (CurrentEL.EL) first and ``nzcv``, ``daif`` last; in between, each written
    system register (table order), each armed timer's CVAL and CTL (CTL masked to ENABLE and
    IMASK), the GIC distributor words touched, each memory word written (by address), each
    GPR ``xN`` and each ``qN`` set (by number). A value is ``0x`` and 16 hex digits (32 for
    ``qN``, high half first).
    """
    return [item.name for item in _items(operations)]


def expected_values(operations: Sequence[Operation]) -> dict[str, str]:
    """The read-back values fixed by ``operations`` alone, as the guest prints them.

    GPRs, Q registers, memory words, and NZCV and DAIF when an operation set them: these
    must read back exactly as written. System registers, timers and GIC words are absent:
    the CPU may legitimately mask what was written (compare them with the source's read-back).
    """
    out: dict[str, str] = {}
    for address, value in sorted(_final_memory(operations).items()):
        out[_memory_name(address)] = _hex(value)
    gprs: dict[int, int] = {}
    fprs: dict[int, int] = {}
    nzcv: int | None = None
    daif: int | None = None
    for op in operations:
        if isinstance(op, SetGpr):
            gprs[op.register] = op.value
        elif isinstance(op, SetFpReg):
            fprs[op.register] = op.value
        elif isinstance(op, SetFlags):
            nzcv = op.nzcv
        elif isinstance(op, SetDaif):
            daif = op.daif
    out.update({f"x{n}": _hex(gprs[n]) for n in sorted(gprs)})
    out.update({f"q{n}": _hex(fprs[n], 32) for n in sorted(fprs)})
    if nzcv is not None:
        out["nzcv"] = _hex(nzcv << 28)
    if daif is not None:
        out["daif"] = _hex(daif << 6)
    return out


class _Builder:
    """Emits one guest; strings are collected and placed after the code."""

    def __init__(self) -> None:
        self.a = Assembler(IMAGE_BASE)
        self._strings: dict[bytes, str] = {}

    def string(self, text: bytes) -> str:
        """The label of a NUL-terminated copy of ``text`` in the image's string pool."""
        if text not in self._strings:
            self._strings[text] = f"s_{len(self._strings)}"
        return self._strings[text]

    def call_puts(self, text: bytes) -> None:
        self.a.emit(ADR, 0, self.string(text))
        self.a.emit(BL, "puts")

    # -- layout ------------------------------------------------------------------------

    def build(self, operations: Sequence[Operation]) -> Assembler:
        a = self.a
        a.emit(B, "start")
        self.vectors()
        a.label("start")
        self.prologue()
        for op in operations:
            self.operation(op)
        a.emit(DSB_SY)
        a.emit(ISB)
        self.checkpoint_and_resume()
        self.readback(_items(operations))
        self.puts()
        self.puthex()
        self.exception_report()
        self.string_pool()
        return a

    def vectors(self) -> None:
        a = self.a
        a.align(0x800)
        a.label("vectors")
        for index in range(16):
            a.emit(MOVZ, 0, index)
            a.emit(B, "exception")
            a.align(0x80)

    def prologue(self) -> None:
        a = self.a
        # Park every CPU but affinity 0.0.0 (Aff2..Aff0 are bits 0..23).
        a.emit(MRS, 0, _MPIDR)
        a.emit(LSL, 0, 0, 40)
        a.emit(CBNZ, 0, "park")
        a.mov_imm64(1, STACK_TOP)
        a.emit(ADD_IMM, SP, 1, 0)
        a.mov_imm64(9, UART_BASE)
        a.emit(MOVZ, 10, 0x301)  # UARTEN | TXE | RXE
        a.emit(STR_W, 10, 9, _UART_CR)
        # Vectors and FP/SIMD traps of the current EL.
        a.emit(MRS, 0, _CURRENT_EL)
        a.emit(LSR, 0, 0, 2)
        a.emit(ADR, 1, "vectors")
        a.mov_imm64(3, _U64 & ~(1 << 10))  # ~CPTR_ELx.TFP
        a.emit(CMP_IMM, 0, 3)
        a.emit(B_COND, "eq", "at_el3")
        a.emit(CMP_IMM, 0, 2)
        a.emit(B_COND, "eq", "at_el2")
        a.emit(MSR, _VBAR[1], 1)
        a.emit(B, "el_done")
        for el in (3, 2):
            a.label(f"at_el{el}")
            a.emit(MSR, _VBAR[el], 1)
            a.emit(MRS, 2, _CPTR[el])
            a.emit(AND, 2, 2, 3)
            a.emit(MSR, _CPTR[el], 2)
            a.emit(B, "el_done")
        a.label("el_done")
        a.emit(MOVZ, 2, 0x30, 16)  # CPACR_EL1.FPEN = 0b11 (bits 20..21)
        a.emit(MSR, _CPACR_EL1, 2)
        a.emit(ISB)

    def operation(self, op: Operation) -> None:
        a = self.a
        match op:
            case WriteSysReg():
                row = by_name(op.register)
                assert row is not None
                a.mov_imm64(28, op.value)
                a.emit(MSR, row.encoding, 28)
            case SetGpr():
                a.mov_imm64(op.register, op.value)
            case SetFpReg():
                a.mov_imm64(28, op.value & _U64)
                a.emit(FMOV_D_X, op.register, 28)  # zeroes the high half
                a.mov_imm64(28, op.value >> 64)
                a.emit(FMOV_V1_X, op.register, 28)
            case FillMemory():
                a.mov_imm64(29, DATA_BASE + op.offset)
                for i, (_, value) in enumerate(op.words()):
                    a.mov_imm64(28, value)
                    a.emit(STR, 28, 29, 8 * i)
            case ArmTimer():
                _, cval, _, ctl = _TIMERS[op.timer]
                a.mov_imm64(28, op.compare)
                a.emit(MSR, cval, 28)
                a.emit(MOVZ, 28, _CTL_IMASK | int(op.enable))
                a.emit(MSR, ctl, 28)
            case SetFlags():
                a.emit(MOVZ, 28, op.nzcv << 12, 16)
                a.emit(MSR, _NZCV, 28)
            case SetDaif():
                a.emit(MSR_DAIFSET, op.daif)
                a.emit(MSR_DAIFCLR, ~op.daif & 0xF)
            case ConfigureGic():
                a.mov_imm64(29, GICD_BASE + _GICD_IPRIORITYR + op.irq)
                a.emit(MOVZ, 28, op.priority)
                a.emit(STRB, 28, 29, 0)
                enable = _GICD_ISENABLER if op.enable else _GICD_ICENABLER
                a.mov_imm64(29, GICD_BASE + enable + 4 * (op.irq // 32))
                bit = 1 << (op.irq % 32)
                a.emit(MOVZ, 28, bit >> 16 if bit >> 16 else bit, 16 if bit >> 16 else 0)
                a.emit(STR_W, 28, 29, 0)

    def checkpoint_and_resume(self) -> None:
        """Read-back, checkpoint, poll for the resume byte (x28/x29 only), read-back, done."""
        a = self.a
        a.emit(ADR, 28, self.string(CHECKPOINT + b"\n"))
        a.emit(BL, "readback")
        a.mov_imm64(29, UART_BASE)
        a.label("poll")
        a.emit(LDR_W, 28, 29, _UART_FR)
        a.emit(TBNZ, 28, _FR_RXFE, "poll")
        a.emit(LDR_W, 28, 29, 0)
        a.emit(LSL, 28, 28, 56)  # the data byte, without the error bits
        a.emit(LSR, 28, 28, 56)
        a.emit(SUB_IMM, 28, 28, RESUME[0])
        a.emit(CBNZ, 28, "poll")
        a.emit(ADR, 28, self.string(DONE + b"\n"))
        a.emit(BL, "readback")
        a.label("park")
        a.emit(WFE)
        a.emit(B, "park")

    def readback(self, items: list[_Item]) -> None:
        """``readback``: print every item, then the string at x28; preserves x0..x27, NZCV."""
        a = self.a
        a.label("readback")
        a.emit(SUB_IMM, SP, SP, _FRAME)
        for n in range(0, 28, 2):
            a.emit(STP, n, n + 1, SP, 8 * n)
        a.emit(MRS, 0, _NZCV)
        a.emit(STR, 0, SP, _NZCV_SLOT)
        a.emit(STR, 30, SP, _LR_SLOT)
        for item in items:
            self.call_puts(f"{item.name}=0x".encode())
            for half in item.halves:
                half(a)
                a.emit(BL, "puthex")
            self.call_puts(b"\n")
        a.emit(ADD_IMM, 0, 28, 0)
        a.emit(BL, "puts")
        a.emit(LDR, 0, SP, _NZCV_SLOT)
        a.emit(MSR, _NZCV, 0)
        a.emit(LDR, 30, SP, _LR_SLOT)
        for n in range(0, 28, 2):
            a.emit(LDP, n, n + 1, SP, 8 * n)
        a.emit(ADD_IMM, SP, SP, _FRAME)
        a.emit(RET)

    def puts(self) -> None:
        """``puts``: print the NUL-terminated string at x0. Clobbers x0, x9..x11."""
        a = self.a
        a.label("puts")
        a.mov_imm64(9, UART_BASE)
        a.label("puts_next")
        a.emit(LDRB, 11, 0, 0)
        a.emit(CBZ, 11, "puts_end")
        a.label("puts_wait")
        a.emit(LDR_W, 10, 9, _UART_FR)
        a.emit(TBNZ, 10, _FR_TXFF, "puts_wait")
        a.emit(STRB, 11, 9, 0)
        a.emit(ADD_IMM, 0, 0, 1)
        a.emit(B, "puts_next")
        a.label("puts_end")
        a.emit(RET)

    def puthex(self) -> None:
        """``puthex``: print x1 as 16 hex digits. Clobbers x0, x1, x9, x10, x13..x15; no flags."""
        a = self.a
        a.label("puthex")
        a.mov_imm64(9, UART_BASE)
        a.emit(ADR, 14, "hexdigits")
        a.emit(MOVZ, 15, 16)
        a.label("puthex_next")
        a.emit(LSR, 13, 1, 60)
        a.emit(LSL, 1, 1, 4)
        a.emit(ADD, 13, 14, 13)
        a.emit(LDRB, 0, 13, 0)
        a.label("puthex_wait")
        a.emit(LDR_W, 10, 9, _UART_FR)
        a.emit(TBNZ, 10, _FR_TXFF, "puthex_wait")
        a.emit(STRB, 0, 9, 0)
        a.emit(SUB_IMM, 15, 15, 1)
        a.emit(CBNZ, 15, "puthex_next")
        a.emit(RET)

    def exception_report(self) -> None:
        """``exception`` (x0 = vector index): print one ``EXC`` line and the done marker, park."""
        a = self.a
        a.label("exception")
        a.emit(ADD_IMM, 20, 0, 0)
        a.emit(MRS, 21, _CURRENT_EL)
        a.emit(LSR, 21, 21, 2)
        a.emit(CMP_IMM, 21, 3)
        a.emit(B_COND, "eq", "exception_el3")
        a.emit(CMP_IMM, 21, 2)
        a.emit(B_COND, "eq", "exception_el2")
        for el in (1, 3, 2):
            if el != 1:
                a.label(f"exception_el{el}")
            a.emit(MRS, 22, _ESR[el])
            a.emit(MRS, 23, _ELR[el])
            a.emit(MRS, 24, _FAR[el])
            a.emit(B, "exception_print")
        a.label("exception_print")
        for text, reg in (
            (b"EXC el=0x", 21),
            (b" vec=0x", 20),
            (b" esr=0x", 22),
            (b" elr=0x", 23),
            (b" far=0x", 24),
        ):
            self.call_puts(text)
            a.emit(ADD_IMM, 1, reg, 0)
            a.emit(BL, "puthex")
        self.call_puts(b"\n" + DONE + b"\n")
        a.label("exception_park")
        a.emit(WFE)
        a.emit(B, "exception_park")

    def string_pool(self) -> None:
        a = self.a
        a.label("hexdigits")
        _data(a, b"0123456789abcdef")
        for text, label in self._strings.items():
            a.label(label)
            _data(a, text + b"\0")


def _data(a: Assembler, blob: bytes) -> None:
    """Append ``blob`` as little-endian words, zero-padded to a multiple of 4 bytes."""
    padded = blob + b"\0" * (-len(blob) % 4)
    for i in range(0, len(padded), 4):
        a.word(int.from_bytes(padded[i : i + 4], "little"))


def build_guest(operations: Sequence[Operation], *, smp: int = 1) -> GuestProgram:
    """Build the guest that performs ``operations`` and prints their read-back.

    Deterministic: the same operations give the same bytes. The image does not depend on
    ``smp`` (every CPU but the first parks itself by its MPIDR); the argument is checked so
    a caller passes its configuration's CPU count.

    :raise InvalidInput: ``smp`` < 1, or the image would not fit below the stack.
    """
    if isinstance(smp, bool) or not isinstance(smp, int) or smp < 1:
        raise InvalidInput(f"{smp=} must be an integer >= 1")
    ops = list(operations)
    a = _Builder().build(ops)
    image = a.assemble()
    if IMAGE_BASE + len(image) > STACK_TOP - _STACK_GUARD:
        raise InvalidInput(f"{len(ops)} operations make a {len(image)}-byte image: too large")
    return GuestProgram(
        image=image,
        load_address=IMAGE_BASE,
        entry=IMAGE_BASE,
        checkpoint=CHECKPOINT,
        resume=RESUME,
        done=DONE,
        operations=tuple(operations_to_json(ops)),
        listing=a.listing(),
    )
