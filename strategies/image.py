"""Guest operations -> a bare-metal AArch64 image for the ``virt`` machine.

What the image does, in order (every CPU starts at ``entry`` at its reset EL):

1. Prologue: park every CPU whose MPIDR_EL1 affinity is not 0.0.0 (``wfe`` loop); set SP
   to :data:`STACK_TOP`; enable the PL011; install exception vectors in VBAR of the
   current EL (1, 2 or 3) that print ``EXC el=.. vec=.. esr=.. elr=.. far=..`` and the done
   marker, then park; enable FP/SIMD (CPACR_EL1.FPEN, and CPTR_EL2/EL3.TFP at EL2/EL3).
2. The operations, in list order, using only x28 and x29 as scratch.
3. The read-back (``name=0x<hex>`` lines, see :func:`readback_items`), then the
   checkpoint marker; then it polls the UART for the resume byte using only x28/x29 (and
   meanwhile arms again each timer deadline that fired, so the save finds it pending; a
   guest that left an echo in the UART's RX FIFO waits for the byte to fill the FIFO
   instead, and reads it with the echo after the restore).
4. After resume: in a guest with timer deadlines, a wait for each timer and whether it
   fired (:func:`after_restore_items`); the same read-back (the transcript), then the
   lines only a restore prints of the console UART, the flash banks and fw_cfg
   (:func:`after_restore_device_items`), the done marker, and it parks.

What depends on the configuration is decided at run time, so one image runs on every
``virt`` configuration: the exception level (CurrentEL), whether EL2 exists
(ID_AA64PFR0_EL1.EL2) and whether the GIC is a GICv3 (ID_AA64PFR0_EL1.GIC, which QEMU sets
only when a GICv3 CPU interface is attached). Code for exception-level drops, the MMU,
SPSel, SVE and the GIC redistributor and CPU interface is emitted only when an operation
asks for it, so a guest without those operations is the same image as before they existed.

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

from fuzz.core.case import GUEST_BASE, GuestProgram
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
    CMP,
    CMP_IMM,
    DSB_SY,
    EOR,
    ERET,
    FMOV_D_X,
    FMOV_V1_X,
    FMOV_X_D,
    FMOV_X_V1,
    INDEX_D,
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
    MSR_SPSEL,
    MUL,
    ORR,
    RDVL,
    RET,
    SP,
    STP,
    STR,
    STR_W,
    STR_Z,
    STRB,
    STRH,
    SUB,
    SUB_IMM,
    TBNZ,
    TBZ,
    TLBI_ALLE2,
    TLBI_ALLE3,
    TLBI_VMALLE1,
    WFE,
    XZR,
    Assembler,
    B,
    SysReg,
)
from strategies.guests import (
    DATA_BASE,
    DATA_SIZE,
    DEADLINE_TIMERS,
    ECAM_OPERATIONS,
    FW_CFG_ITEMS,
    GICV2M_FIRST_INTID,
    RTC_QUIET,
    ArmDeadline,
    ArmTimer,
    ConfigureFlash,
    ConfigureFwCfg,
    ConfigureGic,
    ConfigureGpio,
    ConfigurePciDevice,
    ConfigurePcieHost,
    ConfigurePrivateIrq,
    ConfigureRtc,
    ConfigureUart,
    ConfigureVirtioMmio,
    ConfigureVirtioPci,
    DropToEl,
    EnableMmu,
    FillMemory,
    MapItsEvent,
    Operation,
    RaiseV2mMsi,
    SelectStack,
    SetDaif,
    SetFlags,
    SetFpReg,
    SetGpr,
    SetPriorityMask,
    SetSveReg,
    WriteSysReg,
    check_operations,
    operations_from_json,
    operations_to_json,
)
from strategies.sysregs import SYSTEM_REGISTERS, by_name

__all__ = [
    "DTB_BASE",
    "FLASH_ABSENT",
    "FW_CFG_BASE",
    "FW_CFG_DESCRIPTOR",
    "GICC_BASE",
    "GICD_BASE",
    "GICR_SGI_BASE",
    "GICV2M_BASE",
    "GITS_BASE",
    "IMAGE_BASE",
    "ITS_RAM",
    "MMU_ALIAS_OFFSET",
    "PCI_IO_BASE",
    "PFLASH_BASES",
    "PL031_BASE",
    "PL061_BASE",
    "STACK_TOP",
    "SVE_SCRATCH",
    "TIMER_ABSENT",
    "TIMER_FIRED",
    "TIMER_FIRE_LIMIT_SHIFT",
    "TIMER_MISSED",
    "TIMER_NOT_DUE",
    "TIMER_SCRATCH",
    "UART_BASE",
    "UART_SCRATCH",
    "VIRTIO_MMIO_BASE",
    "VIRTIO_MMIO_STRIDE",
    "VIRTIO_RING_RAM",
    "after_restore_device_items",
    "after_restore_items",
    "build_guest",
    "expected_values",
    "msi_values",
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
GICC_BASE: Final = 0x0801_0000
"""The GICv2 CPU interface on ``virt``."""
GICR_SGI_BASE: Final = 0x080A_0000 + 0x1_0000
"""CPU 0's GICv3 redistributor SGI/PPI frame on ``virt`` (its second 64 KiB frame)."""
SVE_SCRATCH: Final = DATA_BASE + DATA_SIZE
"""256 bytes (one vector at the longest length) the read-back stores a Z register to."""
TIMER_SCRATCH: Final = SVE_SCRATCH + 256
"""Words a guest that sets timer deadlines keeps: CNTFRQ_EL0 as the CPU came out of reset
(the counter's rate: an operation may write CNTFRQ_EL0 later, the rate stays), ticks per
microsecond as a 32.32 fixed-point number, then each timer's deadline distance in ticks."""
MMU_ALIAS_OFFSET: Final = 0x4000_0000
"""With the MMU on, VA ``pa + MMU_ALIAS_OFFSET`` aliases each RAM address ``pa``."""
# The board's devices, from QEMU's hw/arm/virt.c, ``base_memmap``:
#   [VIRT_RTC] =  { 0x09010000, 0x00001000 },  -- create_rtc(): sysbus_create_simple("pl031", ...)
#   [VIRT_GPIO] = { 0x09030000, 0x00001000 },  -- create_gpio_devices(vms, VIRT_GPIO, sysmem)
# (the same in every version from 5.2 to 11.1; both lie in the MMU's Device-nGnRnE gigabyte).
PL031_BASE: Final = 0x0901_0000
"""The PL031 RTC on ``virt`` (``VIRT_RTC``)."""
PL061_BASE: Final = 0x0903_0000
"""The PL061 GPIO controller on ``virt`` (``VIRT_GPIO``; present whenever no firmware is loaded)."""
# The flash banks and fw_cfg, from QEMU's hw/arm/virt.c, ``base_memmap`` (5.2 to 11.1):
#   [VIRT_FLASH] =  {          0, 0x08000000 },  -- virt_flash_create(): two cfi.pflash01,
#                                                   virt_flash_map(): half the window each
#   [VIRT_FW_CFG] = { 0x09020000, 0x00000018 },  -- create_fw_cfg(): data at +0, selector at
#                                                   +8, DMA address at +16
# (the UART, [VIRT_UART0] = { 0x09000000, 0x00001000 }, is UART_BASE).
PFLASH_BASES: Final = (0x0000_0000, 0x0400_0000)
"""The two CFI flash banks on ``virt`` (``VIRT_FLASH``: 64 MiB each; bank 0 is Secure-only
with ``secure=on``)."""
FW_CFG_BASE: Final = 0x0902_0000
"""fw_cfg's MMIO interface on ``virt`` (``VIRT_FW_CFG``)."""
# The bus devices, from QEMU's hw/arm/virt.c (the same in every version from 5.2 to 11.1):
#   [VIRT_MMIO] =    { 0x0a000000, 0x00000200 },  -- create_virtio_devices(): 32 transports,
#                                                    each 0x200 past the last
#   [VIRT_GIC_V2M] = { 0x08020000, 0x00001000 },  -- create_v2m(), with a GICv2 only
#   [VIRT_GIC_ITS] = { 0x08080000, 0x00020000 },  -- create_its(), with a GICv3, its=on and
#                                                    (TCG) QEMU and machine type 6.2 or later
# (all in the MMU's Device-nGnRnE gigabyte).
VIRTIO_MMIO_BASE: Final = 0x0A00_0000
"""The first virtio-mmio transport on ``virt`` (``VIRT_MMIO``)."""
VIRTIO_MMIO_STRIDE: Final = 0x200
"""The distance between two virtio-mmio transports (``VIRT_MMIO``'s size)."""
GICV2M_BASE: Final = 0x0802_0000
"""The GICv2m MSI frame on ``virt`` (``VIRT_GIC_V2M``; with a GICv2)."""
GITS_BASE: Final = 0x0808_0000
"""The GICv3 ITS's control frame on ``virt`` (``VIRT_GIC_ITS``; with a GICv3 and an ITS)."""
ITS_RAM: Final = 0x4040_0000
"""Guest RAM an ITS operation gives the ITS: the command queue, then the device table, the
collection table and the ITT, 4 KiB each (away from the image, stack and data window)."""
# The PCI I/O window, from QEMU's hw/arm/virt.c, ``base_memmap`` (5.2 to 11.1):
#   [VIRT_PCIE_PIO] = { 0x3eff0000, 0x00010000 },  -- create_pcie(): the alias of the host
#                                                    bridge's 64 KiB I/O space
# (named in the ``ranges`` of ``/pcie@10000000``; in the MMU's Device-nGnRnE gigabyte).
PCI_IO_BASE: Final = 0x3EFF_0000
"""Where ``virt`` maps PCI I/O address 0 (``VIRT_PCIE_PIO``)."""
VIRTIO_RING_RAM: Final = 0x4080_0000
"""Guest RAM for the rings virtio operations give their queues: 64 KiB each (a legacy ring
of 1024 entries takes 28 KiB, and a virtio-mmio guest page may be 64 KiB), PCI slot ``s``
at ``s``, virtio-mmio transport ``t`` at 32 + ``t``: 4 MiB, zeroed, written by nobody else."""
VIRTIO_RING_STRIDE: Final = 0x1_0000

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
_GICC_PMR: Final = 0x4
# PL031 registers (ARM PrimeCell RTC TRM, DDI 0224; QEMU hw/rtc/pl031.c).
_RTC_DR: Final = 0x00
_RTC_MR: Final = 0x04
_RTC_LR: Final = 0x08
_RTC_IMSC: Final = 0x10
_RTC_RIS: Final = 0x14
_RTC_ICR: Final = 0x1C
#: What the read-back prints of the PL031 after its DR check, by register offset. CR is
#: migrated but never changed by a write (QEMU's RTC is always started: it reads 1).
_RTC_READBACK: Final = (("mr", 0x04), ("lr", 0x08), ("cr", 0x0C), ("imsc", 0x10),
                        ("ris", 0x14), ("mis", 0x18))  # fmt: skip
# PL061 registers (ARM PrimeCell GPIO TRM, DDI 0190; QEMU hw/gpio/pl061.c). GPIODATA is
# addressed through bits 9:2 of the offset, which mask the lines: 0x3fc reaches all eight.
_GPIO_DATA_ALL: Final = 0x3FC
_GPIO_DIR: Final = 0x400
_GPIO_IS: Final = 0x404
_GPIO_IBE: Final = 0x408
_GPIO_IEV: Final = 0x40C
_GPIO_IE: Final = 0x410
_GPIO_IC: Final = 0x41C
_GPIO_AFSEL: Final = 0x420
#: Every PL061 register a guest of ``virt`` can read, by offset (the plain PL061 has none
#: of the Luminary registers: lock, commit, drive, pull, slew, digital and analog enable).
_GPIO_READBACK: Final = (("data", 0x3FC), ("dir", 0x400), ("is", 0x404), ("ibe", 0x408),
                         ("iev", 0x40C), ("ie", 0x410), ("ris", 0x414), ("mis", 0x418),
                         ("afsel", 0x420))  # fmt: skip
_STACK_GUARD: Final = 0x1000
_FRAME: Final = 256  # x0..x27, then NZCV at 224, x30 at 232
_NZCV_SLOT: Final = 224
_LR_SLOT: Final = 232
_U64: Final = (1 << 64) - 1


def _banked(crn: int, crm: int, op2: int) -> dict[int, SysReg]:
    """EL -> the register's EL1, EL2 and EL3 copies (op1 0, 4 and 6: VBAR_EL1/2/3 and so on)."""
    return {el: SysReg(3, op1, crn, crm, op2) for el, op1 in ((1, 0), (2, 4), (3, 6))}


# Registers the image itself uses, by encoding.
_MPIDR = SysReg(3, 0, 0, 0, 5)
_CURRENT_EL = SysReg(3, 0, 4, 2, 2)
_NZCV = SysReg(3, 3, 4, 2, 0)
_DAIF = SysReg(3, 3, 4, 2, 1)
_CPACR_EL1 = SysReg(3, 0, 1, 0, 2)
_VBAR = _banked(12, 0, 0)
_CPTR = {2: SysReg(3, 4, 1, 1, 2), 3: SysReg(3, 6, 1, 1, 2)}
_ESR = _banked(5, 2, 0)
_ELR = _banked(4, 0, 1)
_FAR = _banked(6, 0, 0)
_TIMERS: Final = {
    # timer -> (CVAL name, CVAL, CTL name, CTL)
    "virtual": ("CNTV_CVAL_EL0", SysReg(3, 3, 14, 3, 2), "CNTV_CTL_EL0", SysReg(3, 3, 14, 3, 1)),
    "physical": ("CNTP_CVAL_EL0", SysReg(3, 3, 14, 2, 2), "CNTP_CTL_EL0", SysReg(3, 3, 14, 2, 1)),
}
_SCR_EL3 = SysReg(3, 6, 1, 1, 0)
_HCR_EL2 = SysReg(3, 4, 1, 1, 0)
_CNTHCTL_EL2 = SysReg(3, 4, 14, 1, 0)
_ID_AA64PFR0 = SysReg(3, 0, 0, 4, 0)
_SPSEL = SysReg(3, 0, 4, 2, 0)
_SP_EL0 = SysReg(3, 0, 4, 1, 0)
_SPSR = _banked(4, 0, 0)
_SP = {1: SysReg(3, 4, 4, 1, 0), 2: SysReg(3, 6, 4, 1, 0)}  # SP_EL1, SP_EL2
_SCTLR = _banked(1, 0, 0)
_TCR = _banked(2, 0, 2)
_MAIR = _banked(10, 2, 0)
_TTBR0 = _banked(2, 0, 0)
_TLBI = {1: TLBI_VMALLE1, 2: TLBI_ALLE2, 3: TLBI_ALLE3}
_ICC_PMR_EL1 = SysReg(3, 0, 4, 6, 0)
_ZCR = _banked(1, 2, 0)

# SVE: CPTR_EL3.EZ (bit 8) lets lower ELs use it, CPTR_EL2.TZ (bit 8) would trap it,
# CPACR_EL1.ZEN (bits 17:16) = 0b11 lets EL1 use it; ZCR_ELx.LEN = 7 asks for 1024 bits,
# 15 for 2048 (see SetSveReg.full_length).
_CPTR_EL3_EZ: Final = 1 << 8
_CPTR_EL2_TZ_CLEAR: Final = _U64 & ~(1 << 8)
_CPACR_ZEN_HALF: Final = 0x3  # as MOVZ's imm16 at lsl #16
_ZCR_LEN: Final = {False: 0x7, True: 0xF}

# Exception-level drops.
_SCR_NS: Final = 1 << 0
_SCR_HCE: Final = 1 << 8
_SCR_RW: Final = 1 << 10
_HCR_RW_HALF: Final = 0x8000  # HCR_EL2.RW (bit 31) as MOVZ's imm16 at lsl #16
_CNTHCTL_EL1_TIMER: Final = 0x3  # EL1PCTEN | EL1PCEN: EL1 may use the physical timer
_SPSR_MODE: Final = {1: 0b0101, 2: 0b1001}  # EL1h, EL2h
_CPTR_TFP_CLEAR: Final = _U64 & ~(1 << 10)

# The MMU: MAIR attribute 0 Device-nGnRnE, attribute 1 Normal write-back; TCR: T0SZ 25
# (39-bit VA, walks start at level 1), inner/outer write-back, inner shareable, 4 KiB
# granule, TTBR1 walks off (EPD1), bits 31 and 23 set (RES1 in TCR_EL2/EL3; in TCR_EL1
# they are TG1 = 4 KiB and EPD1), PA size 4 GiB. One value fits every EL.
_MAIR_VALUE: Final = 0xFF00
_TCR_VALUE: Final = 25 | 1 << 8 | 1 << 10 | 3 << 12 | 1 << 23 | 1 << 31
_BLOCK_DEVICE: Final = 0x1 | 0 << 2 | 1 << 10  # block, AttrIndx 0, AF
_BLOCK_NORMAL: Final = 0x1 | 1 << 2 | 3 << 8 | 1 << 10  # block, AttrIndx 1, inner shareable, AF
_RAM_BASE: Final = 0x4000_0000
_SCTLR_M: Final = 1 << 0
_SCTLR_C_I: Final = 1 << 2 | 1 << 12
_SCTLR_READ_MASK: Final = _SCTLR_M | _SCTLR_C_I

_CTL_ENABLE: Final = 1
_CTL_IMASK: Final = 2
_CTL_ISTATUS_BIT: Final = 2  # bit number
_CTL_READ_MASK: Final = 3  # ENABLE | IMASK: ISTATUS depends on the time of the read

# Timer deadlines (ArmDeadline). What the guest prints after a restore, ``timer.<timer>.fired``:
TIMER_MISSED: Final = 0
"""The timer was due (its counter 1/8 s past its deadline, see
:data:`TIMER_FIRE_LIMIT_SHIFT`) but CTL.ISTATUS never rose: a finding, on A -> A too
(:func:`fuzz.judge.transcript.guest_reported_differences`; not for the EL2 and EL3 timers,
whose pending deadlines QEMU loses, ``docs/devices.md``)."""
TIMER_FIRED: Final = 1
"""CTL.ISTATUS rose (whether IMASK is set or not)."""
TIMER_ABSENT: Final = 2
"""The exception level or the CPU has no such timer, so the guest set no deadline on it."""
TIMER_NOT_DUE: Final = 3
"""The counter never reached the deadline while the guest waited (it spins at most
:data:`_TIMER_SPINS` times): a counter that stopped."""
TIMER_FIRE_LIMIT_SHIFT: Final = 3
"""A timer not fired CNTFRQ_EL0 >> 3 ticks (1/8 s) past its deadline is missed. QEMU
signals a due timer from its main loop: measured 0.1 to 8 ms late on a loaded host (load 10
on 2 cores)."""
_TIMER_MIN_LIMIT: Final = 0x10  # x 2**16 ticks: the limit if CNTFRQ_EL0 read 0
#: Most times the guest looks at a timer (a stopped counter is reported, not waited on for
#: ever), and how long it spins between two looks (a looks takes QEMU's BQL, which the
#: main loop needs to signal the timer).
_TIMER_SPINS: Final = 1 << 20
_TIMER_PAUSE: Final = 0x400
_CNTFRQ = SysReg(3, 3, 14, 0, 0)
_FREQUENCY_SLOT: Final = TIMER_SCRATCH
_TICKS_PER_MICRO_SLOT: Final = TIMER_SCRATCH + 8
_MICRO_Q32: Final = 4295  # 2**32 / 10**6, rounded: ticks = (CNTFRQ * 4295 * us) >> 32


def _ticks_slot(timer: str) -> int:
    """Where the guest keeps ``timer``'s deadline distance in ticks."""
    return TIMER_SCRATCH + 16 + 8 * DEADLINE_TIMERS.index(timer)


_CNTPCT = SysReg(3, 3, 14, 0, 1)
_CNTVCT = SysReg(3, 3, 14, 0, 2)
_ID_AA64MMFR1 = SysReg(3, 0, 0, 7, 1)


@dataclass(frozen=True)
class _GenericTimer:
    """One generic timer's registers, the counter its deadline is compared with, and the
    lowest exception level that may access it (``vhe``: only with FEAT_VHE)."""

    ctl: SysReg
    cval: SysReg
    tval: SysReg
    counter: SysReg
    min_el: int
    vhe: bool = False


def _timer_regs(
    op1: int, crm: int, counter: SysReg, min_el: int, *, vhe: bool = False
) -> _GenericTimer:
    return _GenericTimer(
        SysReg(3, op1, 14, crm, 1), SysReg(3, op1, 14, crm, 2), SysReg(3, op1, 14, crm, 0),
        counter, min_el, vhe,
    )  # fmt: skip


#: CNTP, CNTV (EL0 encodings, op1 3), CNTHP, CNTHV (op1 4), CNTPS (op1 7). The EL2 virtual
#: timer counts the physical count (QEMU: no offset for GTIMER_HYPVIRT; the same while
#: CNTVOFF_EL2 is 0, which no guest writes).
_GENERIC_TIMERS: Final = {
    "physical": _timer_regs(3, 2, _CNTPCT, 1),
    "virtual": _timer_regs(3, 3, _CNTVCT, 1),
    "hyp_physical": _timer_regs(4, 2, _CNTPCT, 2),
    "hyp_virtual": _timer_regs(4, 3, _CNTPCT, 2, vhe=True),
    "secure_physical": _timer_regs(7, 2, _CNTPCT, 3),
}
assert tuple(_GENERIC_TIMERS) == DEADLINE_TIMERS

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


def _field(a: Assembler, reg: int, source: SysReg, low_bit: int) -> None:
    """``reg`` = the 4-bit field of ``source`` at ``low_bit`` (no flags touched)."""
    a.emit(MRS, reg, source)
    a.emit(LSL, reg, reg, 60 - low_bit)
    a.emit(LSR, reg, reg, 60)


def _gic_private_base(a: Assembler, reg: int, scratch: int) -> None:
    """``reg`` = CPU 0's frame of private-interrupt registers: GICv3 SGI frame or GICv2 GICD.

    Both keep ISENABLER0, ICENABLER0 and IPRIORITYR at the distributor's offsets.
    """
    v2 = f"gicbase_{a.address:x}"
    _field(a, scratch, _ID_AA64PFR0, 24)
    a.mov_imm64(reg, GICD_BASE)
    a.emit(CBZ, scratch, v2)
    a.mov_imm64(reg, GICR_SGI_BASE)
    a.label(v2)


def _el_dispatch(a: Assembler, scratch: int, prefix: str, body: Callable[[int], None]) -> None:
    """Emit ``body(el)`` for EL3, EL2 and EL1; run the one for CurrentEL (no flags touched)."""
    a.emit(MRS, scratch, _CURRENT_EL)
    a.emit(TBZ, scratch, 3, f"{prefix}_el1")  # CurrentEL.EL is bits 3:2
    a.emit(TBZ, scratch, 2, f"{prefix}_el2")
    for el in (3, 2, 1):
        if el != 3:
            a.label(f"{prefix}_el{el}")
        body(el)
        a.emit(B, f"{prefix}_end")
    a.label(f"{prefix}_end")


def _timer_guard(a: Assembler, timer: str, reg: int, skip: str) -> None:
    """Branch to ``skip`` unless this EL and CPU have ``timer`` (``reg`` only, no flags)."""
    spec = _GENERIC_TIMERS[timer]
    if spec.min_el == 1:
        return
    a.emit(MRS, reg, _CURRENT_EL)
    a.emit(TBZ, reg, 3, skip)  # EL1 (CurrentEL.EL is bits 3:2)
    if spec.min_el == 3:
        a.emit(TBZ, reg, 2, skip)  # EL2
        return
    _field(a, reg, _ID_AA64PFR0, 8)  # EL2 implemented (at EL3 it may not be)
    a.emit(CBZ, reg, skip)
    if spec.vhe:
        _field(a, reg, _ID_AA64MMFR1, 8)  # VH
        a.emit(CBZ, reg, skip)


def _last_arming(operations: Sequence[Operation]) -> dict[str, ArmTimer | ArmDeadline]:
    """Timer -> the last operation that armed it."""
    last: dict[str, ArmTimer | ArmDeadline] = {}
    for op in operations:
        if isinstance(op, ArmTimer | ArmDeadline):
            last[op.timer] = op
    return last


def _deadlines(operations: Sequence[Operation]) -> dict[str, ArmDeadline]:
    """The timers whose last arming set a deadline, in :data:`DEADLINE_TIMERS` order."""
    last = _last_arming(operations)
    return {t: op for t in DEADLINE_TIMERS if isinstance(op := last.get(t), ArmDeadline)}


def _sctlr_bits(a: Assembler) -> None:
    def read(el: int) -> None:
        a.emit(MRS, 1, _SCTLR[el])

    _el_dispatch(a, 1, f"sctlr_{a.address:x}", read)
    a.mov_imm64(2, _SCTLR_READ_MASK)
    a.emit(AND, 1, 1, 2)


def _gic_private_load(offset: int) -> _Emit:
    def emit(a: Assembler) -> None:
        _gic_private_base(a, 2, 1)
        a.emit(LDR_W, 1, 2, offset)

    return emit


def _vector_length(a: Assembler) -> None:
    """x1 = the current SVE vector length in bytes, 0 without SVE."""
    done = f"vl_{a.address:x}"
    _field(a, 1, _ID_AA64PFR0, 32)
    a.emit(CBZ, 1, done)
    a.emit(RDVL, 1, 1)
    a.label(done)


def _z_digest(n: int) -> _Emit:
    """x1 = a digest of all of Z``n`` at the current length, 0 without SVE (no flags)."""

    def emit(a: Assembler) -> None:
        done, loop = f"z_{a.address:x}", f"zloop_{a.address:x}"
        _field(a, 1, _ID_AA64PFR0, 32)
        a.emit(CBZ, 1, done)
        a.mov_imm64(2, SVE_SCRATCH)
        a.emit(STR_Z, n, 2)
        a.emit(RDVL, 3, 1)
        a.emit(MOVZ, 1, 0)
        a.label(loop)  # x1 = xorshift(x1 + word), word by word: order-sensitive
        a.emit(LDR, 4, 2, 0)
        a.emit(ADD_IMM, 2, 2, 8)
        a.emit(ADD, 1, 1, 4)
        a.emit(LSL, 5, 1, 13)
        a.emit(EOR, 1, 1, 5)
        a.emit(LSR, 5, 1, 7)
        a.emit(EOR, 1, 1, 5)
        a.emit(SUB_IMM, 3, 3, 8)
        a.emit(CBNZ, 3, loop)
        a.label(done)

    return emit


def _priority_mask(a: Assembler) -> None:
    v2, end = f"pmr_v2_{a.address:x}", f"pmr_end_{a.address:x}"
    _field(a, 1, _ID_AA64PFR0, 24)
    a.emit(CBZ, 1, v2)
    a.emit(MRS, 1, _ICC_PMR_EL1)
    a.emit(B, end)
    a.label(v2)
    a.mov_imm64(2, GICC_BASE)
    a.emit(LDR_W, 1, 2, _GICC_PMR)
    a.label(end)


def _rtc_near_load(load: int) -> _Emit:
    """x1 = 1 if RTCDR - ``load`` (modulo 2**32) is below :data:`RTC_QUIET`, else 0.

    RTCDR counts seconds of the VM clock (``-rtc clock=vm``) from the loaded value, so its
    exact value depends on when it is read: a control and a pair read it a few
    milliseconds apart, and a second may tick in between. That it runs on from ``load``,
    rather than from anything else, does not (no flags touched).
    """

    def emit(a: Assembler) -> None:
        near, done = f"rtc_near_{a.address:x}", f"rtc_done_{a.address:x}"
        a.mov_imm64(2, PL031_BASE)
        a.emit(LDR_W, 1, 2, _RTC_DR)
        a.mov_imm64(3, load)
        a.emit(SUB, 1, 1, 3)
        a.emit(LSL, 1, 1, 32)  # the 32-bit difference ...
        a.emit(LSR, 1, 1, 32 + RTC_QUIET.bit_length() - 1)  # ... over RTC_QUIET
        a.emit(CBZ, 1, near)
        a.emit(MOVZ, 1, 0)
        a.emit(B, done)
        a.label(near)
        a.emit(MOVZ, 1, 1)
        a.label(done)

    return emit


def _device_items(operations: Sequence[Operation]) -> list[_Item]:
    """The PL031's and PL061's read-back lines, for a guest that programs them."""
    items = []
    rtc = [op for op in operations if isinstance(op, ConfigureRtc)]
    if rtc:
        items.append(_Item("pl031.dr_near_load", (_rtc_near_load(rtc[-1].load),)))
        for name, offset in _RTC_READBACK:
            items.append(_Item(f"pl031.{name}", (_load(PL031_BASE + offset, word=True),)))
    if any(isinstance(op, ConfigureGpio) for op in operations):
        for name, offset in _GPIO_READBACK:
            items.append(_Item(f"pl061.{name}", (_load(PL061_BASE + offset, word=True),)))
    return items


def _items(operations: Sequence[Operation]) -> list[_Item]:
    """Every read-back line for ``operations``, in transcript order."""
    items = [_Item("el", (_el,))]
    if any(isinstance(op, EnableMmu) for op in operations):
        items.append(_Item("mmu_sctlr", (_sctlr_bits,)))
        items.append(_Item("mmu_alias", (_load(IMAGE_BASE + MMU_ALIAS_OFFSET, word=False),)))
    written = {op.register for op in operations if isinstance(op, WriteSysReg)}
    items += [_Item(r.name, (_mrs(r.encoding),)) for r in SYSTEM_REGISTERS if r.name in written]
    last = _last_arming(operations)
    timers = {timer for timer, op in last.items() if isinstance(op, ArmTimer)}
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
    ppis = {op.irq for op in operations if isinstance(op, ConfigurePrivateIrq)}
    if ppis:
        items.append(_Item("GIC_PPI_ISENABLER0", (_gic_private_load(_GICD_ISENABLER),)))
    for n in sorted({irq // 4 for irq in ppis}):
        offset = _GICD_IPRIORITYR + 4 * n
        items.append(_Item(f"GIC_PPI_IPRIORITYR{n}", (_gic_private_load(offset),)))
    if any(isinstance(op, SetPriorityMask) for op in operations):
        items.append(_Item("GIC_PMR", (_priority_mask,)))
    items += _device_items(operations)
    items += _console_device_items(operations)
    items += _bus_device_items(operations)
    items += _pcie_items(operations)
    items += _pci_device_items(operations)
    for address in sorted(_final_memory(operations)):
        items.append(_Item(_memory_name(address), (_load(address, word=False),)))
    gprs = sorted({op.register for op in operations if isinstance(op, SetGpr)})
    items += [_Item(f"x{n}", (_frame_slot(8 * n),)) for n in gprs]
    fprs = sorted({op.register for op in operations if isinstance(op, SetFpReg | SetSveReg)})
    items += [_Item(f"q{n}", (_q_high(n), _q_low(n))) for n in fprs]
    zregs = sorted({op.register for op in operations if isinstance(op, SetSveReg)})
    if zregs:
        items.append(_Item("sve_vl", (_vector_length,)))
    items += [_Item(f"z{n}", (_z_digest(n),)) for n in zregs]
    if any(isinstance(op, SelectStack) for op in operations):
        items.append(_Item("spsel", (_mrs(_SPSEL),)))
    items.append(_Item("nzcv", (_frame_slot(_NZCV_SLOT),)))
    items.append(_Item("daif", (_mrs(_DAIF),)))
    return items


def readback_items(operations: Sequence[Operation]) -> list[str]:
    """The names of the read-back lines the guest for ``operations`` prints, in order.

    Always ``el`` (CurrentEL.EL) first, then with the MMU on ``mmu_sctlr`` (the current EL's
    SCTLR masked to M, C and I) and ``mmu_alias`` (the image's first 8 bytes read through
    the page table's alias); then each written system register (table order), each timer
    last armed by :class:`~strategies.guests.ArmTimer` its CVAL and CTL (CTL masked to
    ENABLE and IMASK; a deadline's are left out, :func:`after_restore_items`), the GIC
    distributor words touched, the private-interrupt words touched (``GIC_PPI_*``, GICv3
    redistributor or GICv2 banked distributor), the CPU interface's ``GIC_PMR``, in a guest
    that programs the RTC ``pl031.dr_near_load`` (1 while RTCDR runs on from the last loaded
    value) and ``pl031.<register>`` for MR, LR, CR, IMSC, RIS and MIS, in one that programs
    the GPIO ``pl061.<register>`` for DATA (all lines), DIR, IS, IBE, IEV, IE, RIS, MIS and
    AFSEL, in one that programs the console UART ``pl011.<register>`` (IBRD, FBRD, LCR_H,
    CR, IFLS, IMSC, ILPR, DMACR, RSR, FR, RIS, MIS: read before anything is printed), in
    one that commands a flash bank ``pflash<bank>.at0`` and ``.at40`` (what it answers at
    0 and 0x40), in one that moves fw_cfg ``fw_cfg.next`` (the next 4 bytes),
    each memory word written (by address), each GPR ``xN`` and each ``qN`` set (by
    number), ``spsel`` in a guest that selects its stack, and last ``nzcv`` and ``daif``. A
    value is ``0x`` and 16 hex digits (32 for ``qN``, high half first).
    """
    return [item.name for item in _items(operations)]


def after_restore_items(operations: Sequence[Operation]) -> list[str]:
    """The names of the lines the guest prints after a restore only, before its read-back.

    ``timer.<timer>.fired`` for each timer whose last arming set a deadline
    (:class:`~strategies.guests.ArmDeadline`), in :data:`~strategies.guests.DEADLINE_TIMERS`
    order: :data:`TIMER_FIRED`, :data:`TIMER_MISSED`, :data:`TIMER_ABSENT` or
    :data:`TIMER_NOT_DUE`. Each is followed by a line that is no item (``timer.<timer> seen
    0x... ticks past its deadline``): how late QEMU signalled it depends on the host.
    """
    return [f"timer.{timer}.fired" for timer in _deadlines(operations)]


def expected_values(operations: Sequence[Operation]) -> dict[str, str]:
    """The read-back values fixed by ``operations`` alone, as the guest prints them.

    GPRs, Q registers, memory words, NZCV and DAIF when an operation set them (an
    exception-level drop carries them over), SPSel when no drop follows the last stack
    selection, and the PL031's and PL061's registers (as QEMU models them): these must read
    back exactly as written. System registers, timers, GIC words and the exception level
    are absent: they depend on the CPU and configuration (compare them with the source's
    read-back); so is ``pl031.lr``, which QEMU before 9.0 never set on a write (it read 0),
    and so are the PL011's FR, RIS and MIS in a guest with an echo (loopback since 9.0) and
    flash bank 0 (Secure-only with ``secure=on``).
    """
    out: dict[str, str] = _device_values(operations)
    out.update(_bus_device_values(operations))
    out.update(_console_device_values(operations))
    out.update(_pcie_values(operations))
    for address, value in sorted(_final_memory(operations).items()):
        out[_memory_name(address)] = _hex(value)
    gprs: dict[int, int] = {}
    fprs: dict[int, int] = {}
    nzcv: int | None = None
    daif: int | None = None
    spsel: int | None = None
    for op in operations:
        if isinstance(op, SetGpr):
            gprs[op.register] = op.value
        elif isinstance(op, SetFpReg):
            fprs[op.register] = op.value
        elif isinstance(op, SetSveReg):
            fprs.pop(op.register, None)  # its low 128 bits depend on whether there is SVE
        elif isinstance(op, SetFlags):
            nzcv = op.nzcv
        elif isinstance(op, SetDaif):
            daif = op.daif
        elif isinstance(op, SelectStack):
            spsel = 0 if op.sp_el0 else 1
        elif isinstance(op, DropToEl):
            spsel = None  # the drop returns to ELxh, unless it did nothing
    out.update({f"x{n}": _hex(gprs[n]) for n in sorted(gprs)})
    out.update({f"q{n}": _hex(fprs[n], 32) for n in sorted(fprs)})
    if nzcv is not None:
        out["nzcv"] = _hex(nzcv << 28)
    if daif is not None:
        out["daif"] = _hex(daif << 6)
    if spsel is not None:
        out["spsel"] = _hex(spsel)
    return out


class _Pl061:
    """The PL061 registers a guest of ``virt`` sees, as QEMU's ``hw/gpio/pl061.c`` updates
    them (5.2 to 11.1 alike): no line is driven from outside, AFSEL is all writable."""

    def __init__(self) -> None:
        self.regs = dict.fromkeys(("data", "dir", "is", "ibe", "iev", "ie", "ris", "afsel"), 0)
        self.old_in = 0

    def write(self, name: str, value: int) -> None:
        """A write to register ``name`` (``data``: through 0x3fc), then QEMU's update."""
        r = self.regs
        if name == "data":
            r["data"] = (r["data"] & ~r["dir"]) | (value & r["dir"])
        elif name == "ic":
            r["ris"] &= ~value
        else:
            r[name] = value
        changed = (self.old_in ^ r["data"]) & ~r["dir"] & 0xFF
        if changed:  # input edges
            self.old_in = r["data"]
            edges = changed & ~r["is"]
            r["ris"] |= edges & (r["ibe"] | ~(r["data"] ^ r["iev"]))
        r["ris"] |= ~(r["data"] ^ r["iev"]) & r["is"] & 0xFF  # levels

    def values(self) -> dict[str, int]:
        """Register -> value, as the read-back names them."""
        return {**self.regs, "mis": self.regs["ris"] & self.regs["ie"]}


def _gpio_writes(op: ConfigureGpio) -> list[tuple[str, int, int]]:
    """(register, offset, value) of each write :class:`ConfigureGpio` makes, in order."""
    return [
        ("is", _GPIO_IS, op.sense),
        ("ibe", _GPIO_IBE, op.both_edges),
        ("iev", _GPIO_IEV, op.event),
        ("dir", _GPIO_DIR, 0xFF),
        ("data", _GPIO_DATA_ALL, op.data),
        ("dir", _GPIO_DIR, op.direction),
        ("ic", _GPIO_IC, op.clear),
        ("ie", _GPIO_IE, op.mask),
        ("afsel", _GPIO_AFSEL, op.afsel),
    ]


def _device_values(operations: Sequence[Operation]) -> dict[str, str]:
    """The PL031's and PL061's read-back values the operations fix (see expected_values)."""
    out: dict[str, str] = {}
    rtc = [op for op in operations if isinstance(op, ConfigureRtc)]
    if rtc:
        last = rtc[-1]
        ris = int(last.alarm)
        values = {"dr_near_load": 1, "mr": last.match, "cr": 1, "imsc": int(last.mask),
                  "ris": ris, "mis": ris & int(last.mask)}  # fmt: skip
        out.update({f"pl031.{name}": _hex(value) for name, value in values.items()})
    gpio = [op for op in operations if isinstance(op, ConfigureGpio)]
    if gpio:
        model = _Pl061()
        for op in gpio:
            for name, _, value in _gpio_writes(op):
                model.write(name, value)
        out.update({f"pl061.{name}": _hex(value) for name, value in model.values().items()})
    return out


# -- the bus devices: virtio-mmio transports, the GICv2m, the GICv3 ITS ---------------------

# virtio-mmio registers (virtio 1.x spec section 4.2.2 and its legacy 4.2.4; QEMU
# hw/virtio/virtio-mmio.c, offsets from linux/virtio_mmio.h).
_VIRTIO_STATUS: Final = 0x070
_VIRTIO_ACK_DRIVER: Final = (1, 3)  # ACKNOWLEDGE, then ACKNOWLEDGE | DRIVER
_VIRTIO_LEGACY_ALIGN: Final = 4096
#: What the read-back prints of the last transport written, by offset. QEMU answers a
#: transport without a backend with MagicValue, Version and VendorID, and zeros.
_VIRTIO_READBACK: Final = (
    ("magic", 0x000), ("version", 0x004), ("device_id", 0x008), ("vendor_id", 0x00C),
    ("device_features", 0x010), ("queue_num_max", 0x034), ("queue_pfn", 0x040),
    ("interrupt_status", 0x060), ("status", 0x070), ("config_generation", 0x0FC),
)  # fmt: skip
#: What an empty transport reads (``virtio_mmio_read`` without a ``vdev``): 'virt', legacy
#: version 1 (``force-legacy`` is on unless ``-global virtio-mmio.force-legacy=false``,
#: which migfuzz never passes), 'QEMU'; every other register 0.
_VIRTIO_EMPTY: Final = {"magic": 0x7472_6976, "version": 1, "vendor_id": 0x554D_4551}
# GICv2m (hw/intc/arm_gicv2m.c) and the distributor words its SPIs show in.
_V2M_TYPER: Final = 0x008
_V2M_SETSPI_NS: Final = 0x040
_GICD_ISPENDR: Final = 0x200
_GICD_ICFGR: Final = 0xC00
# GICv3 ITS (GIC architecture spec IHI 0069, section 12; QEMU hw/intc/arm_gicv3_its.c).
_GITS_CTLR: Final = 0x000
_GITS_CBASER: Final = 0x080
_GITS_CWRITER: Final = 0x088
_GITS_CREADR: Final = 0x090
_GITS_BASER: Final = 0x100
_ITS_VALID: Final = 1 << 63
_ITS_CMDQ: Final = ITS_RAM
_ITS_DEVICE_TABLE: Final = ITS_RAM + 0x1000
_ITS_COLLECTION_TABLE: Final = ITS_RAM + 0x2000
_ITS_ITT: Final = ITS_RAM + 0x3000
_ITS_TABLE_ENTRY: Final = 8  # QEMU's GITS_DTE_SIZE and GITS_CTE_SIZE
_ITS_ITE_SIZE: Final = 12  # QEMU's ITS_ITT_ENTRY_SIZE
_ITS_EVENT_BITS: Final = 5  # MAPD Size + 1: 32 event IDs
_ITS_FIRST_LPI: Final = 8192
_ITS_COMMANDS_BYTES: Final = 4 * 32  # MAPD, MAPC, MAPTI, SYNC
#: What the read-back prints of the ITS registers, by offset and width.
_ITS_READBACK: Final = (
    ("ctlr", _GITS_CTLR, True), ("cbaser", _GITS_CBASER, False),
    ("cwriter", _GITS_CWRITER, False), ("creadr", _GITS_CREADR, False),
    ("baser0", _GITS_BASER, False), ("baser1", _GITS_BASER + 8, False),
)  # fmt: skip


def _virtio_writes(op: ConfigureVirtioMmio) -> list[tuple[int, int]]:
    """(offset, value) of each write :class:`ConfigureVirtioMmio` makes, in order."""
    return [
        (_VIRTIO_STATUS, 0),
        *((_VIRTIO_STATUS, status) for status in _VIRTIO_ACK_DRIVER),
        (0x014, op.features_sel),  # DeviceFeaturesSel
        (0x024, op.features_sel),  # DriverFeaturesSel
        (0x020, op.features),  # DriverFeatures
        (0x028, 1 << op.page_shift),  # GuestPageSize (legacy)
        (0x030, op.queue),  # QueueSel
        (0x038, op.queue_num),  # QueueNum
        (0x03C, _VIRTIO_LEGACY_ALIGN),  # QueueAlign (legacy)
        *([(0x040, virtio_ring(32 + op.transport) >> op.page_shift)] if op.ring else []),
        (_VIRTIO_STATUS, op.status),
    ]


def virtio_ring(index: int) -> int:
    """The guest address of ring ``index`` (PCI slot, or 32 + virtio-mmio transport)."""
    return VIRTIO_RING_RAM + VIRTIO_RING_STRIDE * index


def _its_commands(op: MapItsEvent) -> list[int]:
    """The 16 little-endian doublewords of MAPD, MAPC, MAPTI and SYNC (RDbase 0: CPU 0,
    QEMU's GITS_TYPER.PTA is 0)."""
    return [
        0x08 | op.device << 32, _ITS_EVENT_BITS - 1, _ITS_VALID | _ITS_ITT, 0,  # MAPD
        0x09, 0, _ITS_VALID | op.collection, 0,  # MAPC
        0x0A | op.device << 32, op.event | (_ITS_FIRST_LPI + op.lpi) << 32, op.collection, 0,
        0x05, 0, 0, 0,  # SYNC
    ]  # fmt: skip


def _its_registers() -> list[tuple[int, int]]:
    """(GITS offset, 64-bit value) of the table and queue registers, in order: flat tables
    and a queue of one 4 KiB page each (Size 0, Page_Size 4K), valid."""
    return [
        (_GITS_BASER, _ITS_VALID | _ITS_DEVICE_TABLE),
        (_GITS_BASER + 8, _ITS_VALID | _ITS_COLLECTION_TABLE),
        (_GITS_CBASER, _ITS_VALID | _ITS_CMDQ),
        (_GITS_CWRITER, 0),
    ]


def _gic_v3(a: Assembler, reg: int) -> None:
    """``reg`` = ID_AA64PFR0_EL1.GIC: nonzero with a GICv3 (no flags touched)."""
    _field(a, reg, _ID_AA64PFR0, 24)


def _its_guard(a: Assembler, reg: int, skip: str) -> None:
    """Branch to ``skip`` unless the machine has an ITS; x29 = :data:`GITS_BASE` if it has.

    Not GICD_TYPER.LPIS: ``virt`` gives its GICv3 LPIs whenever the machine type allows a
    TCG ITS (``vms->tcg_its``), ``its=off`` or not, and then makes no ITS. The device tree's
    ``its@8080000`` node is there exactly when ``create_its()`` made one (``its_base``).
    ``reg`` is unused (x29 and x30 are the routine's), no flags.
    """
    del reg
    a.emit(BL, "its_base")
    a.emit(CBZ, 29, skip)


def _guarded(guard: Callable[[Assembler, int, str], None], load: _Emit) -> _Emit:
    """x1 = what ``load`` reads where ``guard`` lets it through, else 0."""

    def emit(a: Assembler) -> None:
        skip = f"bus_absent_{a.address:x}"
        a.emit(MOVZ, 1, 0)
        guard(a, 2, skip)
        load(a)
        a.label(skip)

    return emit


def _v2m_guard(a: Assembler, reg: int, skip: str) -> None:
    """Branch to ``skip`` unless the machine has a GICv2 (and so a GICv2m)."""
    _gic_v3(a, reg)
    a.emit(CBNZ, reg, skip)


def _load_pair(address: int) -> _Emit:
    """x1 = the 64-bit little-endian value at ``address`` (4-byte aligned), as two words."""

    def emit(a: Assembler) -> None:
        a.mov_imm64(2, address)
        a.emit(LDR_W, 1, 2, 0)
        a.emit(LDR_W, 3, 2, 4)
        a.emit(LSL, 3, 3, 32)
        a.emit(ORR, 1, 1, 3)

    return emit


def _bus_device_items(operations: Sequence[Operation]) -> list[_Item]:
    """The virtio-mmio transport's, the GICv2m's and the ITS's read-back lines."""
    items = []
    virtio = [op for op in operations if isinstance(op, ConfigureVirtioMmio)]
    if virtio:
        base = VIRTIO_MMIO_BASE + VIRTIO_MMIO_STRIDE * virtio[-1].transport
        for name, offset in _VIRTIO_READBACK:
            items.append(_Item(f"virtio_mmio.{name}", (_load(base + offset, word=True),)))
    v2m = [op for op in operations if isinstance(op, RaiseV2mMsi)]
    if v2m:
        intid = v2m[-1].intid
        for name, address in (
            ("typer", GICV2M_BASE + _V2M_TYPER),
            ("icfgr", GICD_BASE + _GICD_ICFGR + 4 * (intid // 16)),
            ("ispendr", GICD_BASE + _GICD_ISPENDR + 4 * (intid // 32)),
        ):
            load = _guarded(_v2m_guard, _load(address, word=True))
            items.append(_Item(f"gicv2m.{name}", (load,)))
    its = [op for op in operations if isinstance(op, MapItsEvent)]
    if its:
        last = its[-1]
        for name, offset, word in _ITS_READBACK:
            load = _load(GITS_BASE + offset, word=word)
            items.append(_Item(f"its.{name}", (_guarded(_its_guard, load),)))
        for name, load in (
            ("dte", _load(_ITS_DEVICE_TABLE + _ITS_TABLE_ENTRY * last.device, word=False)),
            ("cte", _load(_ITS_COLLECTION_TABLE + _ITS_TABLE_ENTRY * last.collection, word=False)),
            ("ite", _load_pair(_ITS_ITT + _ITS_ITE_SIZE * last.event)),
            ("ite_doorbell", _load(_ITS_ITT + _ITS_ITE_SIZE * last.event + 8, word=True)),
        ):
            items.append(_Item(f"its.{name}", (_guarded(_its_guard, load),)))
    return items


def _v2m_edges(operations: Sequence[Operation]) -> dict[int, int]:
    """GICD_ICFGR word index -> its edge bits, after the GICv2m operations."""
    edges: dict[int, int] = {}
    for op in operations:
        if isinstance(op, RaiseV2mMsi):
            word = op.intid // 16
            edges[word] = edges.get(word, 0) | 2 << (2 * (op.intid % 16))
    return edges


def _bus_device_values(operations: Sequence[Operation]) -> dict[str, str]:
    """The virtio-mmio read-back values the operations fix (an empty transport's)."""
    if not any(isinstance(op, ConfigureVirtioMmio) for op in operations):
        return {}
    return {f"virtio_mmio.{name}": _hex(_VIRTIO_EMPTY.get(name, 0)) for name, _ in _VIRTIO_READBACK}


def msi_values(operations: Sequence[Operation], *, controller: str) -> dict[str, str]:
    """The GICv2m's and ITS's read-back values the operations fix on a machine whose MSI
    controller is ``controller``: ``"gicv2m"`` (a GICv2), ``"gicv2m-nonsecure"`` (a GICv2
    with the Security Extensions, ``secure=on``, that the guest reads back from Non-secure
    state: every interrupt resets to Group 0, whose GICD_ICFGR and GICD_ISPENDR bits read
    as zero there; written from there too, the SPI stays level-triggered and the pulse is
    lost), ``"its"`` (a GICv3 with an ITS) or ``"none"`` (a GICv3 without). Not in
    :func:`expected_values`, which knows no configuration; where the controller is absent
    the guest prints 0 for its items.

    With an ITS the registers read back as written, with QEMU's read-only fields; the
    table entries are QEMU's own formats and are compared with the source's only.

    :raise InvalidInput: an unknown ``controller``.
    """
    if controller not in ("gicv2m", "gicv2m-nonsecure", "its", "none"):
        raise InvalidInput(f"{controller=} not 'gicv2m', 'gicv2m-nonsecure', 'its' or 'none'")
    out: dict[str, str] = {}
    v2m = [op for op in operations if isinstance(op, RaiseV2mMsi)]
    if v2m:
        intid = v2m[-1].intid
        pending = sum({1 << (op.intid % 32) for op in v2m if op.intid // 32 == intid // 32})
        values = {"typer": 0, "icfgr": 0, "ispendr": 0}
        if controller == "gicv2m":
            typer = GICV2M_FIRST_INTID << 16 | 64  # (base-spi + 32) << 16 | num-spi
            icfgr = _v2m_edges(operations)[intid // 16]
            values = {"typer": typer, "icfgr": icfgr, "ispendr": pending}
        elif controller == "gicv2m-nonsecure":
            values["typer"] = GICV2M_FIRST_INTID << 16 | 64
        out.update({f"gicv2m.{name}": _hex(value) for name, value in values.items()})
    if any(isinstance(op, MapItsEvent) for op in operations) and controller != "its":
        names = [name for name, _, _ in _ITS_READBACK] + ["dte", "cte", "ite", "ite_doorbell"]
        out.update({f"its.{name}": _hex(0) for name in names})
    return out


# -- PCIe: the host bridge's config space, through the ECAM the device tree names -----------

# QEMU's hw/arm/virt.c: base_memmap [VIRT_PCIE_ECAM] = { 0x3f000000, 0x01000000 } and
# extended_memmap [VIRT_HIGH_PCIE_ECAM] = { 0x0, 256 * MiB } (placed above 256 GiB by
# virt_set_high_memmap()); create_pcie() maps one of them (``VIRT_ECAM_ID(highmem_ecam)``)
# and names it in the ``reg`` of ``/pcie@10000000`` (``base_mmio``, the same in 5.2).
DTB_BASE: Final = 0x4000_0000
"""Where QEMU leaves the device tree blob when no kernel is loaded: the start of RAM."""
_FDT_PROP_LE: Final = 0x0300_0000  # FDT_PROP (big-endian 3), as a little-endian load sees it
_FDT_NOP_LE: Final = 0x0400_0000
_PCIE_NODE: Final = b"pcie@10000000"  # create_pcie(): "/pcie@%" PRIx64, base_mmio
_ITS_NODE: Final = b"its@8080000"  # fdt_add_its_gic_node(): "/intc/its@%" PRIx64
_REG_NAME_LE: Final = int.from_bytes(b"reg\0", "little")
_PCIE_FN1: Final = 1 << 15  # ECAM offset of 00:01.0 (device 1): absent without -device
_PCIE_SCRATCH: Final = 0x40
_PCIE_BAR_SIZING: Final = 0xFFFF_FFFF
#: What the read-back prints of 00:00.0 by config offset (the device-specific word and
#: 00:01.0 come after).
_PCIE_READBACK: Final = (("id", 0x00), ("command", 0x04), ("class", 0x08),
                         ("cache_line", 0x0C), ("bar0", 0x10), ("interrupt", 0x3C))  # fmt: skip
#: gpex-root's identity: Red Hat (0x1b36) device 0x0008, class 0x0600 (host bridge), rev 0.
_PCIE_ID: Final = 0x0008_1B36
_PCIE_CLASS: Final = 0x0600_0000
#: The Command bits QEMU's ``pci_init_wmask`` lets a guest write: I/O, memory, bus master,
#: SERR#, INTx disable.
_PCIE_COMMAND_WMASK: Final = 0x0507


def _pcie_writes(op: ConfigurePcieHost) -> list[tuple[int, int]]:
    """(config offset, 32-bit value) of each write :class:`ConfigurePcieHost` makes."""
    return [
        (0x04, op.command),
        (0x0C, op.cache_line | op.latency << 8),
        (0x10, _PCIE_BAR_SIZING),
        (0x3C, op.interrupt_line),
        (_PCIE_SCRATCH + 4 * op.word, op.value),
    ]


def _pcie_load(offset: int) -> _Emit:
    """x1 = the 32-bit config word at ECAM + ``offset``, 0 if no ECAM was found."""

    def emit(a: Assembler) -> None:
        skip = f"pcie_absent_{a.address:x}"
        a.emit(MOVZ, 1, 0)
        a.emit(BL, "ecam_base")
        a.emit(CBZ, 29, skip)
        if offset >= 0x1000:
            a.emit(ADD_IMM, 29, 29, offset >> 12, 12)
        a.emit(LDR_W, 1, 29, offset & 0xFFF)
        a.label(skip)

    return emit


# -- devices added with -device: their config space, and virtio's legacy interface -------

#: What the read-back prints of an added PCI device, by config offset.
_PCI_DEVICE_READBACK: Final = (
    ("id", 0x00), ("command", 0x04), ("class", 0x08), ("header", 0x0C),
    *((f"bar{n}", 0x10 + 4 * n) for n in range(6)), ("interrupt", 0x3C),
)  # fmt: skip
_PCI_COMMAND_IO_MASTER: Final = 0x0005
#: virtio's legacy PCI registers (virtio 1.x spec 4.1.4.8; QEMU's virtio_ioport_write).
_VIRTIO_PCI_HOST_FEATURES: Final = 0x00
_VIRTIO_PCI_GUEST_FEATURES: Final = 0x04
_VIRTIO_PCI_QUEUE_PFN: Final = 0x08
_VIRTIO_PCI_QUEUE_NUM: Final = 0x0C
_VIRTIO_PCI_QUEUE_SEL: Final = 0x0E
_VIRTIO_PCI_STATUS: Final = 0x12
_VIRTIO_PCI_PFN_SHIFT: Final = 12  # VIRTIO_PCI_QUEUE_ADDR_SHIFT
#: What the read-back prints of a virtio-pci device's legacy registers (offset, byte wide).
_VIRTIO_PCI_READBACK: Final = (
    ("host_features", _VIRTIO_PCI_HOST_FEATURES, False),
    ("guest_features", _VIRTIO_PCI_GUEST_FEATURES, False),
    ("queue_pfn", _VIRTIO_PCI_QUEUE_PFN, False),
    ("queue_num", _VIRTIO_PCI_QUEUE_NUM, False),
    ("status", _VIRTIO_PCI_STATUS, True),
)


def virtio_pci_io(slot: int) -> int:
    """The PCI I/O address a virtio-pci operation gives the device at ``slot``'s BAR0."""
    return 0x1000 + 0x100 * slot


def _pci_device_writes(op: ConfigurePciDevice) -> list[tuple[int, int]]:
    """(config offset, 32-bit value) of each write :class:`ConfigurePciDevice` makes."""
    return [
        (0x10 + 4 * op.bar, op.bar_value),
        (0x0C, op.cache_line | op.latency << 8),
        (0x3C, op.interrupt_line),
        (0x04, op.command),
    ]


def _virtio_pci_writes(op: ConfigureVirtioPci) -> list[tuple[int, int, int]]:
    """(I/O offset, width in bytes, value) of each legacy register write, in order."""
    writes = [(_VIRTIO_PCI_STATUS, 1, status) for status in (0, *_VIRTIO_ACK_DRIVER)]
    writes += [(_VIRTIO_PCI_GUEST_FEATURES, 4, op.features), (_VIRTIO_PCI_QUEUE_SEL, 2, op.queue)]
    if op.ring:
        writes.append((_VIRTIO_PCI_QUEUE_PFN, 4, virtio_ring(op.slot) >> _VIRTIO_PCI_PFN_SHIFT))
    writes.append((_VIRTIO_PCI_STATUS, 1, op.status))
    return writes


def _slot_offset(slot: int) -> int:
    """The ECAM offset of 00:``slot``.0's config space (bus 0, function 0)."""
    return slot << 15


def _slot_config(a: Assembler, slot: int) -> None:
    """x29 += the ECAM offset of 00:``slot``.0 (x29 = the ECAM's base)."""
    a.emit(ADD_IMM, 29, 29, _slot_offset(slot) >> 12, 12)


def _virtio_pci_load(slot: int, offset: int, *, byte: bool) -> _Emit:
    """x1 = the legacy register at ``offset`` of the virtio-pci device at ``slot``, read
    through the I/O window where its BAR0 still holds :func:`virtio_pci_io` and I/O decoding
    is on; else 0 (an I/O address nothing decodes is an external abort on Arm)."""

    def emit(a: Assembler) -> None:
        skip = f"virtio_pci_absent_{a.address:x}"
        io = virtio_pci_io(slot)
        a.emit(MOVZ, 1, 0)
        a.emit(BL, "ecam_base")
        a.emit(CBZ, 29, skip)
        _slot_config(a, slot)
        a.emit(LDR_W, 2, 29, 0x10)
        a.mov_imm64(3, io | 1)  # an I/O BAR reads back with bit 0 set
        a.emit(CMP, 2, 3)
        a.emit(B_COND, "ne", skip)
        a.emit(LDR_W, 2, 29, 0x04)
        a.emit(TBZ, 2, 0, skip)  # Command.IO
        a.mov_imm64(2, PCI_IO_BASE + io)
        a.emit(LDRB if byte else LDR_W, 1, 2, offset)
        a.label(skip)

    return emit


def _pci_device_items(operations: Sequence[Operation]) -> list[_Item]:
    """The added devices' read-back lines: each slot written, its config words; each
    virtio-pci slot set up, its legacy registers."""
    slots = sorted({op.slot for op in operations if isinstance(op, _PCI_DEVICE_OPERATIONS)})
    items = []
    for slot in slots:
        for name, offset in _PCI_DEVICE_READBACK:
            load = _pcie_load(_slot_offset(slot) + offset)
            items.append(_Item(f"pci{slot}.{name}", (load,)))
    virtio = sorted({op.slot for op in operations if isinstance(op, ConfigureVirtioPci)})
    for slot in virtio:
        for name, offset, byte in _VIRTIO_PCI_READBACK:
            load = _virtio_pci_load(slot, offset, byte=byte)
            items.append(_Item(f"virtio_pci{slot}.{name}", (load,)))
    return items


_PCI_DEVICE_OPERATIONS: Final = (ConfigurePciDevice, ConfigureVirtioPci)


def _pcie_items(operations: Sequence[Operation]) -> list[_Item]:
    """The host bridge's read-back lines, for a guest that writes it."""
    pcie = [op for op in operations if isinstance(op, ConfigurePcieHost)]
    if not pcie:
        return []
    items = [_Item(f"pcie.{name}", (_pcie_load(offset),)) for name, offset in _PCIE_READBACK]
    items.append(_Item("pcie.scratch", (_pcie_load(_PCIE_SCRATCH + 4 * pcie[-1].word),)))
    items.append(_Item("pcie.absent_fn", (_pcie_load(_PCIE_FN1),)))
    return items


def _pcie_values(operations: Sequence[Operation]) -> dict[str, str]:
    """What the host bridge reads back after the PCIe operations (QEMU 5.2 to 11.1)."""
    pcie = [op for op in operations if isinstance(op, ConfigurePcieHost)]
    if not pcie:
        return {}
    last = pcie[-1]
    scratch = {op.word: op.value for op in pcie}
    values = {
        "id": _PCIE_ID, "command": last.command & _PCIE_COMMAND_WMASK, "class": _PCIE_CLASS,
        "cache_line": last.cache_line, "bar0": 0, "interrupt": last.interrupt_line,
        "scratch": scratch[last.word], "absent_fn": 0xFFFF_FFFF,
    }  # fmt: skip
    return {f"pcie.{name}": _hex(value) for name, value in values.items()}


def _be32(a: Assembler, dst: int, base: int, offset: int) -> None:
    """``dst`` = the big-endian word at ``base + offset`` (byte loads; x7 scratch, no flags)."""
    a.emit(LDRB, dst, base, offset)
    for i in (1, 2, 3):
        a.emit(LSL, dst, dst, 8)
        a.emit(LDRB, 7, base, offset + i)
        a.emit(ORR, dst, dst, 7)


def _node_words(name: bytes) -> tuple[int, ...]:
    """A device-tree node name as the little-endian words a word load sees (NUL-padded)."""
    padded = name + b"\0" * (4 - len(name) % 4)
    return tuple(int.from_bytes(padded[i : i + 4], "little") for i in range(0, len(padded), 4))


def _emit_dtb_routine(
    a: Assembler, label: str, node: bytes, found: Callable[[Assembler], None]
) -> None:
    """``label``: look for the node named ``node`` in the device tree at :data:`DTB_BASE`;
    there (x1 = its name, x2 = the strings block) run ``found``, which sets x29 or branches
    to ``<label>_next`` to go on looking; x29 = 0 if the node is not found. Preserves
    x0..x28 and NZCV (no flag-setting instruction); clobbers x30 only (the caller's link).
    """
    a.label(label)
    a.emit(SUB_IMM, SP, SP, 64)
    for n in range(0, 8, 2):
        a.emit(STP, n, n + 1, SP, 8 * n)
    a.mov_imm64(0, DTB_BASE)
    _be32(a, 1, 0, 8)  # off_dt_struct
    a.emit(ADD, 1, 0, 1)
    _be32(a, 2, 0, 12)  # off_dt_strings
    a.emit(ADD, 2, 0, 2)
    _be32(a, 6, 0, 36)  # size_dt_struct
    a.emit(ADD, 6, 1, 6)
    a.emit(MOVZ, 29, 0)
    a.label(f"{label}_find")  # x1 walks the structure block a word at a time
    a.emit(SUB, 3, 6, 1)
    a.emit(CBZ, 3, f"{label}_done")
    a.emit(TBNZ, 3, 63, f"{label}_done")
    for i, word in enumerate(_node_words(node)):
        a.emit(LDR_W, 3, 1, 4 * i)
        a.mov_imm64(4, word)
        a.emit(SUB, 3, 3, 4)
        a.emit(CBNZ, 3, f"{label}_next")
    found(a)
    a.label(f"{label}_next")
    a.emit(ADD_IMM, 1, 1, 4)
    a.emit(B, f"{label}_find")
    a.label(f"{label}_done")
    for n in range(0, 8, 2):
        a.emit(LDP, n, n + 1, SP, 8 * n)
    a.emit(ADD_IMM, SP, SP, 64)
    a.emit(RET)


def _emit_ecam_base(a: Assembler) -> None:
    """``ecam_base``: x29 = the ECAM's base from the device tree's ``/pcie@10000000`` node
    ``reg``, 0 if not found (:func:`_emit_dtb_routine`)."""

    def found(a: Assembler) -> None:
        a.emit(ADD_IMM, 1, 1, len(_node_words(_PCIE_NODE)) * 4)  # its first property
        _emit_ecam_props(a)

    _emit_dtb_routine(a, "ecam_base", _PCIE_NODE, found)


def _emit_its_base(a: Assembler) -> None:
    """``its_base``: x29 = :data:`GITS_BASE` if the device tree has ``its@8080000`` (only
    ``create_its()`` adds it), else 0 (:func:`_emit_dtb_routine`)."""

    def found(a: Assembler) -> None:
        a.mov_imm64(29, GITS_BASE)
        a.emit(B, "its_base_done")

    _emit_dtb_routine(a, "its_base", _ITS_NODE, found)


def _emit_ecam_props(a: Assembler) -> None:
    """The node's properties from x1 on: x29 = its ``reg``'s address, or on to
    ``ecam_base_done`` at the first token that is no property (x2 = the strings block)."""
    a.label("ecam_props")
    a.emit(LDR_W, 3, 1, 0)
    a.mov_imm64(4, _FDT_PROP_LE)
    a.emit(SUB, 4, 3, 4)
    a.emit(CBZ, 4, "ecam_prop")
    a.mov_imm64(4, _FDT_NOP_LE)
    a.emit(SUB, 4, 3, 4)
    a.emit(CBNZ, 4, "ecam_base_done")  # a child node or the node's end: no reg
    a.emit(ADD_IMM, 1, 1, 4)
    a.emit(B, "ecam_props")
    a.label("ecam_prop")  # FDT_PROP, len, nameoff, value
    _be32(a, 5, 1, 8)
    a.emit(ADD, 5, 2, 5)
    a.emit(LDRB, 3, 5, 0)
    for i in (1, 2, 3):
        a.emit(LDRB, 4, 5, i)
        a.emit(LSL, 4, 4, 8 * i)
        a.emit(ORR, 3, 3, 4)
    a.mov_imm64(4, _REG_NAME_LE)
    a.emit(SUB, 3, 3, 4)
    a.emit(CBZ, 3, "ecam_reg")
    _be32(a, 5, 1, 4)  # the value's length, padded to a word
    a.emit(ADD_IMM, 5, 5, 3 + 12)
    a.emit(LSR, 5, 5, 2)
    a.emit(LSL, 5, 5, 2)
    a.emit(ADD, 1, 1, 5)
    a.emit(B, "ecam_props")
    a.label("ecam_reg")  # two address cells: the base's high word, then its low word
    _be32(a, 29, 1, 12)
    a.emit(LSL, 29, 29, 32)
    _be32(a, 5, 1, 16)
    a.emit(ORR, 29, 29, 5)
    a.emit(B, "ecam_base_done")


# -- the console UART, the CFI flash banks, fw_cfg (docs/devices.md) ------------------------

# PL011 registers (ARM PrimeCell UART TRM, DDI 0183; QEMU hw/char/pl011.c).
_UART_DR: Final = 0x00
_UART_ILPR: Final = 0x20
_UART_IBRD: Final = 0x24
_UART_FBRD: Final = 0x28
_UART_LCR_H: Final = 0x2C
_UART_IFLS: Final = 0x34
_UART_IMSC: Final = 0x38
_UART_ICR: Final = 0x44
_UART_DMACR: Final = 0x48
_FR_RXFF: Final = 6
_UART_ALL_INTERRUPTS: Final = 0x7FF
_UART_LBE: Final = 0x80
_U32_MASK: Final = 0xFFFF_FFFF
#: What the read-back keeps of the PL011, by register offset, and the bits it keeps: FR
#: without RXFF (with an echo in the FIFO the resume byte fills it after the restore), RIS
#: and MIS without TX (every character printed raises it).
_UART_READBACK: Final = (
    ("ibrd", 0x24, _U32_MASK), ("fbrd", 0x28, _U32_MASK), ("lcr_h", 0x2C, _U32_MASK),
    ("cr", 0x30, _U32_MASK), ("ifls", 0x34, _U32_MASK), ("imsc", 0x38, _U32_MASK),
    ("ilpr", 0x20, _U32_MASK), ("dmacr", 0x48, _U32_MASK), ("rsr", 0x04, _U32_MASK),
    ("fr", _UART_FR, _U32_MASK & ~(1 << _FR_RXFF)), ("ris", 0x3C, _U32_MASK & ~0x20),
    ("mis", 0x40, _U32_MASK & ~0x20),
)  # fmt: skip
_UART_FR_IDLE: Final = 0x90  # TXFE | RXFE
_UART_RX_LIMIT: Final = 16  # PL011_FIFO_DEPTH, every version
#: After a restore only: what the guest reads from DR until RXFE (at most 16 entries).
_UART_AFTER: Final = ("pl011.rx_count", "pl011.rx_data", "pl011.rx_flags")
# CFI flash (Intel command set; QEMU hw/block/pflash_cfi01.c). ``virt`` gives each bank
# width 4 and device width 2: two x16 devices, so a 32-bit read shows each answer twice.
_FLASH_COMMANDS: Final = {"query": 0x98, "status": 0x70, "id": 0x90, "program": 0x40,
                          "erase": 0x20}  # fmt: skip
_FLASH_READ_ARRAY: Final = 0xFF
_FLASH_CLEAR_STATUS: Final = 0x50
_FLASH_READ_STATUS: Final = 0x70
_FLASH_CONFIRM: Final = 0xD0
_FLASH_READY: Final = 0x80  # status: the write state machine is ready
_FLASH_OFFSETS: Final = (("at0", 0x0), ("at40", 0x40))  # query: CFI byte 0 and 'Q'
_FLASH_PROBE: Final = 0x40  # status after a 0x70, 'Q' in query mode, else the array
FLASH_ABSENT: Final = (1 << 64) - 1
"""What the read-back prints for bank 0 where the guest cannot reach it (``secure=on``,
below EL3: ``virt`` maps it in the Secure address space only)."""
# fw_cfg (docs/specs/fw_cfg.rst; QEMU hw/nvram/fw_cfg.c): every register big-endian.
_FW_CFG_DATA: Final = 0x0
_FW_CFG_SELECTOR: Final = 0x8
_FW_CFG_DMA_HIGH: Final = 0x10
_FW_CFG_DMA_LOW: Final = 0x14
_FW_CFG_NEXT: Final = 4  # bytes the read-back reads at the current position
_FW_CFG_DMA_SKIP: Final = 0x04
FW_CFG_DESCRIPTOR: Final = DATA_BASE + DATA_SIZE + 0x900
"""The FWCfgDmaAccess a guest with a fw_cfg operation keeps (a skip of one byte), which the
read-back after a restore hands the DMA register's low word."""
UART_SCRATCH: Final = DATA_BASE + DATA_SIZE + 0x800
"""Where the read-back keeps the PL011's registers, read before it prints anything."""


def _bswap(value: int, size: int) -> int:
    return int.from_bytes(value.to_bytes(size, "big"), "little")


def _flash_guard(a: Assembler, bank: int, reg: int, skip: str) -> None:
    """Branch to ``skip`` unless the guest reaches ``bank``: bank 1 always; bank 0 unless
    the CPU has EL3 (``virt`` with ``secure=on``) and runs below it. ``reg`` only, no flags."""
    if bank == 1:
        return
    ok = f"flash_ok_{a.address:x}"
    _field(a, reg, _ID_AA64PFR0, 12)  # EL3
    a.emit(CBZ, reg, ok)
    a.emit(MRS, reg, _CURRENT_EL)
    a.emit(TBZ, reg, 3, skip)
    a.emit(TBZ, reg, 2, skip)
    a.label(ok)


def _flash_load(bank: int, offset: int) -> _Emit:
    """x1 = the 32-bit word the bank answers at ``offset``, or :data:`FLASH_ABSENT`."""

    def emit(a: Assembler) -> None:
        skip = f"flash_absent_{a.address:x}"
        a.mov_imm64(1, FLASH_ABSENT)
        _flash_guard(a, bank, 2, skip)
        a.mov_imm64(2, PFLASH_BASES[bank] + offset)
        a.emit(LDR_W, 1, 2, 0)
        a.label(skip)

    return emit


def _fw_cfg_next(op: ConfigureFwCfg) -> _Emit:
    """x1 = the next :data:`_FW_CFG_NEXT` bytes at fw_cfg's position (the first the most
    significant); then the position is put back (select ``op.key``, read ``op.skip``)."""

    def emit(a: Assembler) -> None:
        a.mov_imm64(2, FW_CFG_BASE)
        a.emit(MOVZ, 1, 0)
        for _ in range(_FW_CFG_NEXT):
            a.emit(LDRB, 3, 2, _FW_CFG_DATA)
            a.emit(LSL, 1, 1, 8)
            a.emit(ORR, 1, 1, 3)
        _fw_cfg_position(a, op, base=2, scratch=3)

    return emit


def _fw_cfg_position(a: Assembler, op: ConfigureFwCfg, *, base: int, scratch: int) -> None:
    """Select ``op.key`` and read ``op.skip`` bytes (``base`` holds FW_CFG_BASE)."""
    a.emit(MOVZ, scratch, _bswap(op.key, 2))
    a.emit(STRH, scratch, base, _FW_CFG_SELECTOR)
    for _ in range(op.skip):
        a.emit(LDRB, scratch, base, _FW_CFG_DATA)


def _console_device_items(operations: Sequence[Operation]) -> list[_Item]:
    """The PL011's (from the read-back's first reads), the flash banks' and fw_cfg's lines."""
    items = []
    if any(isinstance(op, ConfigureUart) for op in operations):
        for i, (name, _, _) in enumerate(_UART_READBACK):
            items.append(_Item(f"pl011.{name}", (_load(UART_SCRATCH + 8 * i, word=False),)))
    for bank in sorted({op.bank for op in operations if isinstance(op, ConfigureFlash)}):
        for name, offset in _FLASH_OFFSETS:
            items.append(_Item(f"pflash{bank}.{name}", (_flash_load(bank, offset),)))
    fw_cfg = [op for op in operations if isinstance(op, ConfigureFwCfg)]
    if fw_cfg:
        items.append(_Item("fw_cfg.next", (_fw_cfg_next(fw_cfg[-1]),)))
    return items


def after_restore_device_items(operations: Sequence[Operation]) -> list[str]:
    """The names of the lines the guest prints after a restore only, after its read-back:
    with a PL011 operation ``pl011.rx_count``, ``pl011.rx_data`` (up to 16 bytes, the
    first the most significant) and ``pl011.rx_flags`` (the error bits of every entry, OR'd)
    from reading DR until RXFE; with a flash operation ``pflash<bank>.probe``, what the bank
    answers at 0x40 after a read-status command (0x70) at 0; with a fw_cfg operation
    ``fw_cfg.dma_control``, the control word of the DMA descriptor after a write of the
    DMA register's low word. Compared A -> B against A -> A, never with the pre-save
    read-back (each reads state the read-back changes).
    """
    names: list[str] = []
    if any(isinstance(op, ConfigureUart) for op in operations):
        names += _UART_AFTER
    banks = sorted({op.bank for op in operations if isinstance(op, ConfigureFlash)})
    names += [f"pflash{bank}.probe" for bank in banks]
    if any(isinstance(op, ConfigureFwCfg) for op in operations):
        names.append("fw_cfg.dma_control")
    return names


def _flash_answers(op: ConfigureFlash, status: int) -> dict[str, int]:
    """What the bank answers at each read-back offset after ``op`` (status register
    ``status``), as QEMU's ``pflash_read`` composes it for two x16 devices."""
    twice = 0x1_0001
    if op.mode == "query":
        return {"at0": 0, "at40": ord("Q") * twice}  # cfi_table[0x00], [0x10]
    if op.mode == "id":
        return {"at0": 0x89 * twice, "at40": 0}  # ident0 (virt: 0x89); 0x10: not an ID
    return {"at0": status * twice, "at40": status * twice}


def _console_device_values(operations: Sequence[Operation]) -> dict[str, str]:
    """The PL011's, bank 1's and fw_cfg's read-back values the operations fix."""
    out: dict[str, str] = {}
    uart = [op for op in operations if isinstance(op, ConfigureUart)]
    if uart:
        last = uart[-1]
        values = {"ibrd": last.ibrd, "fbrd": last.fbrd, "lcr_h": last.lcr_h, "cr": last.cr,
                  "ifls": last.ifls, "imsc": last.imsc, "ilpr": last.ilpr,
                  "dmacr": last.dmacr, "rsr": 0}  # fmt: skip
        if not any(op.echo for op in uart):  # loopback differs before and after QEMU 9.0
            values.update({"fr": _UART_FR_IDLE, "ris": 0, "mis": 0})
        out.update({f"pl011.{name}": _hex(value) for name, value in values.items()})
    status = _FLASH_READY  # QEMU's reset value
    last_flash: ConfigureFlash | None = None
    for op in operations:
        if isinstance(op, ConfigureFlash) and op.bank == 1:
            status = 0 if op.clear else status
            status |= _FLASH_READY if op.mode in ("program", "erase") else 0
            last_flash = op
    if last_flash is not None:
        answers = _flash_answers(last_flash, status)
        out.update({f"pflash1.{name}": _hex(value) for name, value in answers.items()})
    fw_cfg = [op for op in operations if isinstance(op, ConfigureFwCfg)]
    if fw_cfg:
        data = FW_CFG_ITEMS[fw_cfg[-1].key][fw_cfg[-1].skip :][:_FW_CFG_NEXT]
        out["fw_cfg.next"] = _hex(int.from_bytes(data.ljust(_FW_CFG_NEXT, b"\0"), "big"))
    return out


class _Builder:
    """Emits one guest; strings are collected and placed after the code."""

    def __init__(self, uart: int = UART_BASE) -> None:
        self.a = Assembler(IMAGE_BASE)
        self.console = uart  # the console PL011 (a board's, :mod:`fuzz.core.boards`)
        self._strings: dict[bytes, str] = {}
        self._labels = 0
        self._page_table = False
        self._sve = False
        self._zcr_len = _ZCR_LEN[False]
        self._deadlines: dict[str, ArmDeadline] = {}
        self._operations: Sequence[Operation] = ()
        self._v2m_edges: dict[int, int] = {}  # GICD_ICFGR word -> edge bits set so far
        self.live = False  # a live-migration guest (build_live_guest)

    def fresh(self, prefix: str) -> str:
        """A label no other call returns."""
        self._labels += 1
        return f"{prefix}_{self._labels}"

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
        self._operations = operations
        sve = [op for op in operations if isinstance(op, SetSveReg)]
        self._sve = bool(sve)
        self._zcr_len = _ZCR_LEN[any(op.full_length for op in sve)]
        self._deadlines = _deadlines(operations)
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
        if any(isinstance(op, ECAM_OPERATIONS) for op in operations):
            _emit_ecam_base(a)
        if any(isinstance(op, MapItsEvent) for op in operations):
            _emit_its_base(a)
        self.string_pool()
        if self._page_table:
            self.page_table()
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
        a.mov_imm64(9, self.console)
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
        if self._deadlines:  # the counter's rate, and ticks per microsecond (32.32)
            a.emit(MRS, 1, _CNTFRQ)
            a.mov_imm64(2, TIMER_SCRATCH)
            a.emit(STR, 1, 2, _FREQUENCY_SLOT - TIMER_SCRATCH)
            a.mov_imm64(3, _MICRO_Q32)
            a.emit(MUL, 1, 1, 3)
            a.emit(STR, 1, 2, _TICKS_PER_MICRO_SLOT - TIMER_SCRATCH)

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
            case _:
                self.control_operation(op)

    def control_operation(self, op: Operation) -> None:
        """The GIC's private interrupts and CPU interface, SVE, SPSel, EL drops, the MMU."""
        a = self.a
        match op:
            case ConfigurePrivateIrq():
                _gic_private_base(a, 29, 28)
                a.emit(MOVZ, 28, op.priority)
                a.emit(STRB, 28, 29, _GICD_IPRIORITYR + op.irq)
                a.emit(MOVZ, 28, 1 << (op.irq - 16), 16)  # PPIs are bits 16..31
                a.emit(STR_W, 28, 29, _GICD_ISENABLER if op.enable else _GICD_ICENABLER)
            case SetPriorityMask():
                self.priority_mask(op.mask)
            case ConfigureRtc():
                self.rtc(op)
            case ConfigureGpio():
                self.gpio(op)
            case ConfigureUart() | ConfigureFlash() | ConfigureFwCfg():
                self.console_device(op)
            case ConfigureVirtioMmio() | RaiseV2mMsi() | MapItsEvent() | ConfigurePcieHost():
                self.bus_device(op)
            case ConfigurePciDevice() | ConfigureVirtioPci():
                self.pci_device(op)
            case ArmDeadline():
                self.deadline(op)
            case SetSveReg():
                self.sve_write(op)
            case SelectStack():
                self.select_stack(op.sp_el0)
            case DropToEl():
                self.drop_to_el(op.el, secure=op.secure)
            case EnableMmu():
                self.enable_mmu(caches=op.caches)

    # -- the board's devices (x28, x29 only; NZCV untouched) ------------------------------

    def rtc(self, op: ConfigureRtc) -> None:
        """Load the PL031, set its match, raise or clear its alarm, set its mask."""
        a = self.a
        a.mov_imm64(29, PL031_BASE)
        a.mov_imm64(28, op.load)
        a.emit(STR_W, 28, 29, _RTC_LR)
        a.mov_imm64(28, op.match)
        a.emit(STR_W, 28, 29, _RTC_MR)
        if op.alarm:
            # RTCMR = RTCDR fires at once (QEMU: ticks == 0), unless a second ticked in
            # between: then the alarm is 2**32 - 1 s away, and the guest tries again.
            retry = self.fresh("rtc_alarm")
            a.label(retry)
            a.emit(LDR_W, 28, 29, _RTC_DR)
            a.emit(STR_W, 28, 29, _RTC_MR)
            a.emit(LDR_W, 28, 29, _RTC_RIS)
            a.emit(CBZ, 28, retry)
            a.mov_imm64(28, op.match)
            a.emit(STR_W, 28, 29, _RTC_MR)
        else:
            a.emit(MOVZ, 28, 1)
            a.emit(STR_W, 28, 29, _RTC_ICR)
        a.emit(MOVZ, 28, int(op.mask))
        a.emit(STR_W, 28, 29, _RTC_IMSC)

    def gpio(self, op: ConfigureGpio) -> None:
        """Write every register of the PL061 a guest can write (:func:`_gpio_writes`)."""
        a = self.a
        a.mov_imm64(29, PL061_BASE)
        for _, offset, value in _gpio_writes(op):
            a.emit(MOVZ, 28, value)
            a.emit(STR_W, 28, 29, offset)

    def bus_device(
        self, op: ConfigureVirtioMmio | RaiseV2mMsi | MapItsEvent | ConfigurePcieHost
    ) -> None:
        """A virtio-mmio driver's writes, a GICv2m MSI, ITS tables and commands, or PCIe
        host-bridge config writes (x28, x29 and, for PCIe, x30 only; NZCV untouched)."""
        a = self.a
        if isinstance(op, ConfigurePcieHost):
            skip = self.fresh("pcie_skip")
            a.emit(BL, "ecam_base")
            a.emit(CBZ, 29, skip)
            for offset, value in _pcie_writes(op):
                a.mov_imm64(28, value)
                a.emit(STR_W, 28, 29, offset)
            a.label(skip)
            return
        if isinstance(op, ConfigureVirtioMmio):
            a.mov_imm64(29, VIRTIO_MMIO_BASE + VIRTIO_MMIO_STRIDE * op.transport)
            for offset, value in _virtio_writes(op):
                a.mov_imm64(28, value)
                a.emit(STR_W, 28, 29, offset)
            return
        skip = self.fresh("bus_skip")
        if isinstance(op, RaiseV2mMsi):
            _v2m_guard(a, 28, skip)
            word = op.intid // 16
            self._v2m_edges[word] = self._v2m_edges.get(word, 0) | 2 << 2 * (op.intid % 16)
            a.mov_imm64(29, GICD_BASE + _GICD_ICFGR + 4 * word)
            a.mov_imm64(28, self._v2m_edges[word])
            a.emit(STR_W, 28, 29, 0)
            a.mov_imm64(29, GICV2M_BASE)
            a.mov_imm64(28, op.intid)
            a.emit(STR_W, 28, 29, _V2M_SETSPI_NS)
        else:
            _its_guard(a, 28, skip)
            a.mov_imm64(29, GITS_BASE)
            a.emit(STR_W, XZR, 29, _GITS_CTLR)  # wzr: disabled, so the registers take writes
            for offset, value in _its_registers():
                a.mov_imm64(28, value)
                a.emit(STR, 28, 29, offset)
            a.mov_imm64(29, _ITS_CMDQ)
            for i, value in enumerate(_its_commands(op)):
                a.mov_imm64(28, value)
                a.emit(STR, 28, 29, 8 * i)
            a.emit(DSB_SY)
            a.mov_imm64(29, GITS_BASE)
            a.emit(MOVZ, 28, 1)
            a.emit(STR_W, 28, 29, _GITS_CTLR)
            a.emit(MOVZ, 28, _ITS_COMMANDS_BYTES)
            a.emit(STR, 28, 29, _GITS_CWRITER)
        a.label(skip)

    def pci_device(self, op: ConfigurePciDevice | ConfigureVirtioPci) -> None:
        """An added device's config writes, or a legacy virtio driver's set-up through its
        I/O BAR (x28, x29 and x30 only; NZCV untouched)."""
        a, skip = self.a, self.fresh("pci_skip")
        a.emit(BL, "ecam_base")
        a.emit(CBZ, 29, skip)
        _slot_config(a, op.slot)
        if isinstance(op, ConfigurePciDevice):
            for offset, value in _pci_device_writes(op):
                a.mov_imm64(28, value)
                a.emit(STR_W, 28, 29, offset)
        else:
            io = virtio_pci_io(op.slot)
            for offset, value in ((0x10, io), (0x04, _PCI_COMMAND_IO_MASTER)):
                a.mov_imm64(28, value)
                a.emit(STR_W, 28, 29, offset)
            a.mov_imm64(29, PCI_IO_BASE + io)
            store = {1: STRB, 2: STRH, 4: STR_W}
            for offset, width, value in _virtio_pci_writes(op):
                a.mov_imm64(28, value)
                a.emit(store[width], 28, 29, offset)
        a.label(skip)

    # -- the console UART, the flash banks, fw_cfg (x28, x29 only; NZCV untouched) ----------

    def console_device(self, op: ConfigureUart | ConfigureFlash | ConfigureFwCfg) -> None:
        """A PL011 setting, a flash bank's command sequence, or a fw_cfg position."""
        if isinstance(op, ConfigureUart):
            self.uart(op)
        elif isinstance(op, ConfigureFlash):
            self.flash(op)
        else:
            self.fw_cfg(op)

    def uart(self, op: ConfigureUart) -> None:
        """Empty the RX FIFO, clear every interrupt, write every register (see
        :class:`~strategies.guests.ConfigureUart`)."""
        a, drain, drained = self.a, self.fresh("uart_drain"), self.fresh("uart_drained")
        a.mov_imm64(29, self.console)
        a.label(drain)
        a.emit(LDR_W, 28, 29, _UART_FR)
        a.emit(TBNZ, 28, _FR_RXFE, drained)
        a.emit(LDR_W, 28, 29, _UART_DR)
        a.emit(B, drain)
        a.label(drained)
        writes = [(_UART_ICR, _UART_ALL_INTERRUPTS), (_UART_LCR_H, op.lcr_h),
                  (_UART_IBRD, op.ibrd), (_UART_FBRD, op.fbrd), (_UART_IFLS, op.ifls),
                  (_UART_ILPR, op.ilpr), (_UART_DMACR, op.dmacr)]  # fmt: skip
        if op.echo:
            writes.append((_UART_CR, op.cr | _UART_LBE))
            writes += [(_UART_DR, byte) for byte in op.echo.encode()]
            writes += [(_UART_CR, op.cr), (_UART_DR, ord("\n"))]
        else:
            writes.append((_UART_CR, op.cr))
        writes += [(_UART_IMSC, op.imsc), (_UART_ICR, op.icr)]
        for offset, value in writes:
            a.emit(MOVZ, 28, value)
            a.emit(STR_W, 28, 29, offset)

    def flash(self, op: ConfigureFlash) -> None:
        """Read array, clear status (``clear``), then the mode's command(s)."""
        a, skip = self.a, self.fresh("flash_skip")
        _flash_guard(a, op.bank, 28, skip)
        base = PFLASH_BASES[op.bank]
        commands = [(base, _FLASH_READ_ARRAY)]
        if op.clear:
            commands.append((base, _FLASH_CLEAR_STATUS))
        command = _FLASH_COMMANDS[op.mode]
        if op.mode == "program":
            commands += [(base + op.offset, command), (base + op.offset, op.data)]
        elif op.mode == "erase":
            commands += [(base + op.offset, command), (base + op.offset, _FLASH_CONFIRM)]
        else:
            commands.append((base, command))
        for address, value in commands:
            a.mov_imm64(29, address)
            a.mov_imm64(28, value)
            a.emit(STR_W, 28, 29, 0)
        a.label(skip)

    def fw_cfg(self, op: ConfigureFwCfg) -> None:
        """Select, read ``skip`` bytes, write the DMA high word; keep the DMA descriptor."""
        a = self.a
        a.mov_imm64(29, FW_CFG_DESCRIPTOR)  # control SKIP, length 1, address 0; big-endian
        a.mov_imm64(28, _bswap(_FW_CFG_DMA_SKIP, 4) | _bswap(1, 4) << 32)
        a.emit(STR, 28, 29, 0)
        a.emit(STR, XZR, 29, 8)
        a.mov_imm64(29, FW_CFG_BASE)
        _fw_cfg_position(a, op, base=29, scratch=28)
        a.mov_imm64(28, _bswap(op.dma_high, 4))
        a.emit(STR_W, 28, 29, _FW_CFG_DMA_HIGH)

    def uart_snapshot(self, operations: Sequence[Operation]) -> None:
        """In a guest with a PL011 operation, at the read-back's start, before it prints
        anything: keep the registers at :data:`UART_SCRATCH` (x1..x4)."""
        if not any(isinstance(op, ConfigureUart) for op in operations):
            return
        a = self.a
        a.mov_imm64(2, self.console)
        a.mov_imm64(3, UART_SCRATCH)
        for i, (_, offset, mask) in enumerate(_UART_READBACK):
            a.emit(LDR_W, 1, 2, offset)
            if mask != _U32_MASK:
                a.mov_imm64(4, mask)
                a.emit(AND, 1, 1, 4)
            a.emit(STR, 1, 3, 8 * i)

    def after_restore_devices(self, operations: Sequence[Operation]) -> None:
        """After a restore only (x28 is the done marker), in the read-back's frame: the
        lines of :func:`after_restore_device_items`. Uses x1..x8 and what ``puts`` and
        ``puthex`` clobber."""
        if not after_restore_device_items(operations):
            return
        a, skip = self.a, self.fresh("after_devices_done")
        a.emit(ADR, 0, self.string(DONE + b"\n"))
        a.emit(EOR, 0, 0, 28)
        a.emit(CBNZ, 0, skip)
        if any(isinstance(op, ConfigureUart) for op in operations):
            self.uart_drain()
        for bank in sorted({op.bank for op in operations if isinstance(op, ConfigureFlash)}):
            absent = self.fresh("probe_absent")
            a.mov_imm64(1, FLASH_ABSENT)
            _flash_guard(a, bank, 2, absent)
            a.mov_imm64(2, PFLASH_BASES[bank])
            a.emit(MOVZ, 3, _FLASH_READ_STATUS)
            a.emit(STR_W, 3, 2, 0)
            a.emit(LDR_W, 1, 2, _FLASH_PROBE)
            a.label(absent)
            self.print_x1(f"pflash{bank}.probe")
        if any(isinstance(op, ConfigureFwCfg) for op in operations):
            a.mov_imm64(2, FW_CFG_BASE)
            a.mov_imm64(3, _bswap(FW_CFG_DESCRIPTOR, 4))
            a.emit(STR_W, 3, 2, _FW_CFG_DMA_LOW)
            a.mov_imm64(2, FW_CFG_DESCRIPTOR)
            a.emit(LDR_W, 1, 2, 0)
            self.print_x1("fw_cfg.dma_control")
        a.label(skip)

    def uart_drain(self) -> None:
        """Read DR until RXFE (16 entries at most) and print what came out."""
        a = self.a
        loop, done = self.fresh("rx_loop"), self.fresh("rx_done")
        a.mov_imm64(2, self.console)
        a.emit(MOVZ, 4, 0)  # entries read
        a.emit(MOVZ, 5, 0)  # data, high half
        a.emit(MOVZ, 6, 0)  # data, low half
        a.emit(MOVZ, 7, 0)  # error bits
        a.emit(MOVZ, 8, _UART_RX_LIMIT)
        a.label(loop)
        a.emit(LDR_W, 3, 2, _UART_FR)
        a.emit(TBNZ, 3, _FR_RXFE, done)
        a.emit(CBZ, 8, done)
        a.emit(LDR_W, 3, 2, _UART_DR)
        a.emit(LSR, 1, 3, 8)
        a.emit(ORR, 7, 7, 1)
        a.emit(LSL, 3, 3, 56)
        a.emit(LSR, 3, 3, 56)
        a.emit(LSL, 5, 5, 8)
        a.emit(LSR, 1, 6, 56)
        a.emit(ORR, 5, 5, 1)
        a.emit(LSL, 6, 6, 8)
        a.emit(ORR, 6, 6, 3)
        a.emit(ADD_IMM, 4, 4, 1)
        a.emit(SUB_IMM, 8, 8, 1)
        a.emit(B, loop)
        a.label(done)
        a.emit(ADD_IMM, 1, 4, 0)
        self.print_x1("pl011.rx_count")
        self.call_puts(b"pl011.rx_data=0x")
        a.emit(ADD_IMM, 1, 5, 0)
        a.emit(BL, "puthex")
        a.emit(ADD_IMM, 1, 6, 0)
        a.emit(BL, "puthex")
        self.call_puts(b"\n")
        a.emit(ADD_IMM, 1, 7, 0)
        self.print_x1("pl011.rx_flags")

    def print_x1(self, name: str) -> None:
        """Print ``name=0x<x1>`` and a line end (x1 and what ``puts``/``puthex`` clobber)."""
        a = self.a
        a.emit(ADD_IMM, 12, 1, 0)
        self.call_puts(f"{name}=0x".encode())
        a.emit(ADD_IMM, 1, 12, 0)
        a.emit(BL, "puthex")
        self.call_puts(b"\n")

    # -- timer deadlines ---------------------------------------------------------------

    def deadline(self, op: ArmDeadline) -> None:
        """Where this EL and CPU have the timer: its deadline ``op.micros`` ahead (in ticks,
        kept for the re-arming), then CTL = ENABLE (and IMASK); x28, x29 only, NZCV
        untouched."""
        a, spec, skip = self.a, _GENERIC_TIMERS[op.timer], self.fresh("deadline_skip")
        _timer_guard(a, op.timer, 28, skip)
        a.mov_imm64(29, _TICKS_PER_MICRO_SLOT)
        a.emit(LDR, 28, 29, 0)
        a.mov_imm64(29, op.micros)
        a.emit(MUL, 28, 28, 29)
        a.emit(LSR, 28, 28, 32)
        a.mov_imm64(29, _ticks_slot(op.timer))
        a.emit(STR, 28, 29, 0)
        if op.tval:
            a.emit(MSR, spec.tval, 28)
        else:
            a.emit(MRS, 29, spec.counter)
            a.emit(ADD, 28, 28, 29)
            a.emit(MSR, spec.cval, 28)
        a.emit(MOVZ, 28, _CTL_ENABLE | (_CTL_IMASK if op.mask else 0))
        a.emit(MSR, spec.ctl, 28)
        a.label(skip)

    def rearm_fired_timers(self) -> None:
        """In the checkpoint's polling loop: each deadline timer that fired is armed as far
        ahead again (TVAL), so the save finds it pending; x28 only, no flags.

        A timer that has not fired is left alone, so after a restore that lost a pending
        deadline nothing here arms it again before the read-back looks.
        """
        a = self.a
        for timer in self._deadlines:
            spec, pending = _GENERIC_TIMERS[timer], self.fresh("rearm_next")
            _timer_guard(a, timer, 28, pending)
            a.emit(MRS, 28, spec.ctl)
            a.emit(TBZ, 28, _CTL_ISTATUS_BIT, pending)
            a.mov_imm64(28, _ticks_slot(timer))
            a.emit(LDR, 28, 28, 0)
            a.emit(MSR, spec.tval, 28)
            a.label(pending)
        if self._deadlines:
            pause = self.fresh("poll_pause")
            a.emit(MOVZ, 28, _TIMER_PAUSE)
            a.label(pause)
            a.emit(SUB_IMM, 28, 28, 1)
            a.emit(CBNZ, 28, pause)

    def wait_for_timers(self) -> None:
        """After a restore (x28 is the done marker), in the read-back's frame: wait for each
        deadline timer and print ``timer.<timer>.fired`` and how late it was seen.

        Uses x1..x7 (saved by the read-back), x0 and what ``puts``/``puthex`` clobber.
        """
        a, skip = self.a, "wait_timers_done"
        a.emit(ADR, 0, self.string(DONE + b"\n"))
        a.emit(EOR, 0, 0, 28)
        a.emit(CBNZ, 0, skip)
        for timer in self._deadlines:
            self.wait_for_timer(timer)
        a.label(skip)

    def wait_for_timer(self, timer: str) -> None:
        """x1 = the verdict (``TIMER_*``), x7 = ticks past the deadline when last looked."""
        a, spec = self.a, _GENERIC_TIMERS[timer]
        loop, pause, ahead, missed, fired, report = (
            self.fresh(f"wait_{timer}_{part}")
            for part in ("loop", "pause", "ahead", "missed", "fired", "report")
        )
        a.emit(MOVZ, 1, TIMER_ABSENT)
        a.emit(MOVZ, 7, 0)
        _timer_guard(a, timer, 2, report)
        a.emit(MRS, 3, spec.ctl)
        a.emit(TBZ, 3, 0, report)  # not enabled: the deadline was never set
        a.mov_imm64(4, _TIMER_SPINS)
        a.mov_imm64(2, _FREQUENCY_SLOT)  # x2 = how long past its deadline a timer is missed
        a.emit(LDR, 2, 2, 0)
        a.emit(LSR, 2, 2, TIMER_FIRE_LIMIT_SHIFT)
        a.emit(MOVZ, 6, _TIMER_MIN_LIMIT, 16)
        a.emit(ORR, 2, 2, 6)
        a.label(loop)
        a.emit(MRS, 3, spec.ctl)
        a.emit(MRS, 5, spec.counter)
        a.emit(MRS, 6, spec.cval)
        a.emit(SUB, 7, 5, 6)  # ticks past the deadline; negative while it is ahead
        a.emit(TBNZ, 3, _CTL_ISTATUS_BIT, fired)
        a.emit(TBNZ, 7, 63, ahead)
        a.emit(SUB, 6, 7, 2)
        a.emit(TBZ, 6, 63, missed)  # due that long and not fired
        a.label(ahead)
        a.emit(MOVZ, 8, _TIMER_PAUSE)
        a.label(pause)
        a.emit(SUB_IMM, 8, 8, 1)
        a.emit(CBNZ, 8, pause)
        a.emit(SUB_IMM, 4, 4, 1)
        a.emit(CBNZ, 4, loop)
        a.emit(TBZ, 7, 63, missed)  # out of spins: due (missed) or not (the counter stopped)
        a.emit(MOVZ, 1, TIMER_NOT_DUE)
        a.emit(B, report)
        a.label(missed)
        a.emit(MOVZ, 1, TIMER_MISSED)
        a.emit(B, report)
        a.label(fired)
        a.emit(MOVZ, 1, TIMER_FIRED)
        a.label(report)
        self.call_puts(f"timer.{timer}.fired=0x".encode())
        a.emit(BL, "puthex")
        self.call_puts(f"\ntimer.{timer} seen 0x".encode())
        a.emit(ADD_IMM, 1, 7, 0)
        a.emit(BL, "puthex")
        self.call_puts(b" ticks past its deadline\n")

    # -- operations that branch at run time (x28, x29 only; NZCV untouched) -------------

    def priority_mask(self, mask: int) -> None:
        a, v2, done = self.a, self.fresh("pmr_v2"), self.fresh("pmr_done")
        _field(a, 28, _ID_AA64PFR0, 24)
        a.emit(CBZ, 28, v2)
        a.emit(MOVZ, 28, mask)
        a.emit(MSR, _ICC_PMR_EL1, 28)
        a.emit(B, done)
        a.label(v2)
        a.mov_imm64(29, GICC_BASE)
        a.emit(MOVZ, 28, mask)
        a.emit(STR_W, 28, 29, _GICC_PMR)
        a.label(done)

    def sve_write(self, op: SetSveReg) -> None:
        a, skip = self.a, self.fresh("sve_skip")
        _field(a, 28, _ID_AA64PFR0, 32)
        a.emit(CBZ, 28, skip)
        _el_dispatch(a, 28, self.fresh("sve_on"), self._enable_sve_from)
        a.mov_imm64(28, op.base)
        a.mov_imm64(29, op.step)
        a.emit(INDEX_D, op.register, 28, 29)
        a.label(skip)

    def _enable_sve_from(self, el: int) -> None:
        """At EL``el`` (SVE present): let this EL and every lower one use SVE, up to the
        guest's vector length."""
        a = self.a
        if el == 3:
            self._orr_into(_CPTR[3], _CPTR_EL3_EZ)
            a.emit(ISB)
            a.emit(MOVZ, 28, self._zcr_len)
            a.emit(MSR, _ZCR[3], 28)
            no_el2 = self.fresh("sve_no_el2")
            _field(a, 28, _ID_AA64PFR0, 8)
            a.emit(CBZ, 28, no_el2)
            self._enable_sve_at_el2()
            a.label(no_el2)
        elif el == 2:
            self._enable_sve_at_el2()
        self._orr_into(_CPACR_EL1, _CPACR_ZEN_HALF, shift=16)
        a.emit(ISB)
        a.emit(MOVZ, 28, self._zcr_len)
        a.emit(MSR, _ZCR[1], 28)
        a.emit(ISB)

    def _enable_sve_at_el2(self) -> None:
        a = self.a
        self._and_into(_CPTR[2], _CPTR_EL2_TZ_CLEAR)
        a.emit(ISB)
        a.emit(MOVZ, 28, self._zcr_len)
        a.emit(MSR, _ZCR[2], 28)

    def select_stack(self, sp_el0: bool) -> None:
        a, done = self.a, self.fresh("spsel_done")
        a.emit(MRS, 28, _SPSEL)
        if sp_el0:
            a.emit(CBZ, 28, done)
            a.emit(ADD_IMM, 28, SP, 0)
            a.emit(MSR, _SP_EL0, 28)
            a.emit(MSR_SPSEL, 0)
        else:
            a.emit(CBNZ, 28, done)
            a.emit(ADD_IMM, 28, SP, 0)
            a.emit(MSR_SPSEL, 1)
            a.emit(ADD_IMM, SP, 28, 0)
        a.label(done)

    def _orr_into(self, reg: SysReg, bits: int, *, shift: int = 0) -> None:
        """``reg |= bits << shift`` (``bits`` fits MOVZ's 16 bits)."""
        a = self.a
        a.emit(MRS, 28, reg)
        a.emit(MOVZ, 29, bits, shift)
        a.emit(ORR, 28, 28, 29)
        a.emit(MSR, reg, 28)

    def _and_into(self, reg: SysReg, mask: int) -> None:
        """``reg &= mask``."""
        a = self.a
        a.emit(MRS, 28, reg)
        a.mov_imm64(29, mask)
        a.emit(AND, 28, 28, 29)
        a.emit(MSR, reg, 28)

    def _eret(self, source: int, target: int, resume: str) -> None:
        """Return from EL``source`` to EL``target``h at ``resume``: same stack, NZCV, DAIF."""
        a = self.a
        a.emit(ADR, 28, "vectors")
        a.emit(MSR, _VBAR[target], 28)
        a.emit(ADD_IMM, 28, SP, 0)
        a.emit(MSR, _SP[target], 28)
        a.emit(MRS, 28, _NZCV)
        a.emit(MRS, 29, _DAIF)
        a.emit(ORR, 28, 28, 29)
        a.emit(MOVZ, 29, _SPSR_MODE[target])
        a.emit(ORR, 28, 28, 29)
        a.emit(MSR, _SPSR[source], 28)
        a.emit(ADR, 28, resume)
        a.emit(MSR, _ELR[source], 28)
        a.emit(ERET)

    def drop_to_el(self, target: int, *, secure: bool) -> None:
        a = self.a
        done, from_el2, no_el2 = (
            self.fresh("drop_done"),
            self.fresh("drop_from2"),
            self.fresh("drop_no_el2"),
        )
        a.emit(MRS, 28, _CURRENT_EL)
        a.emit(TBZ, 28, 3, done)  # at EL1: nothing below to drop to
        a.emit(TBZ, 28, 2, done if target == 2 else from_el2)
        # At EL3. Where EL2 exists, let the levels below run what the operations do.
        _field(a, 28, _ID_AA64PFR0, 8)
        a.emit(CBZ, 28, no_el2 if target == 1 else done)
        self._orr_into(_HCR_EL2, _HCR_RW_HALF, shift=16)
        self._orr_into(_CNTHCTL_EL2, _CNTHCTL_EL1_TIMER)
        self._and_into(_CPTR[2], _CPTR_TFP_CLEAR)
        a.label(no_el2)
        scr = _SCR_RW | (0 if secure else _SCR_NS) | (_SCR_HCE if target == 2 else 0)
        self._orr_into(_SCR_EL3, scr)
        self._sve_below(3)
        self._eret(3, target, done)
        if target == 1:
            a.label(from_el2)
            self._orr_into(_HCR_EL2, _HCR_RW_HALF, shift=16)
            self._orr_into(_CNTHCTL_EL2, _CNTHCTL_EL1_TIMER)
            self._sve_below(2)
            self._eret(2, 1, done)
        a.label(done)

    def _sve_below(self, el: int) -> None:
        """In a guest with SVE writes, let the ELs below ``el`` use SVE (if the CPU has it)."""
        if not self._sve:
            return
        a, skip = self.a, self.fresh("drop_sve_skip")
        _field(a, 28, _ID_AA64PFR0, 32)
        a.emit(CBZ, 28, skip)
        self._enable_sve_from(el)
        a.label(skip)

    def enable_mmu(self, *, caches: bool) -> None:
        a = self.a
        self._page_table = True
        sctlr = _SCTLR_M | (_SCTLR_C_I if caches else 0)

        def at(el: int) -> None:
            a.mov_imm64(28, _MAIR_VALUE)
            a.emit(MSR, _MAIR[el], 28)
            a.mov_imm64(28, _TCR_VALUE)
            a.emit(MSR, _TCR[el], 28)
            a.emit(ADR, 28, "page_table")
            a.emit(MSR, _TTBR0[el], 28)
            a.emit(DSB_SY)
            a.emit(_TLBI[el])
            a.emit(DSB_SY)
            a.emit(ISB)
            self._orr_into(_SCTLR[el], sctlr)
            a.emit(ISB)

        _el_dispatch(a, 28, self.fresh("mmu"), at)

    def checkpoint_and_resume(self) -> None:
        """Read-back, checkpoint, poll for the resume byte (x28/x29 only), read-back, done."""
        a = self.a
        a.emit(ADR, 28, self.string(CHECKPOINT + b"\n"))
        a.emit(BL, "readback")
        a.mov_imm64(29, self.console)
        echo = any(isinstance(op, ConfigureUart) and op.echo for op in self._operations)
        if self.live:  # writes memory until the resume byte: the live block below
            _live_wait(self, echo)
        if echo:  # an echo left in the RX FIFO: wait for the resume byte to fill it
            a.emit(LDR_W, 28, 29, _UART_FR)
            a.emit(TBZ, 28, _FR_RXFE, "poll_full")
        a.label("poll")
        self.rearm_fired_timers()
        a.emit(LDR_W, 28, 29, _UART_FR)
        a.emit(TBNZ, 28, _FR_RXFE, "poll")
        a.emit(LDR_W, 28, 29, 0)
        a.emit(LSL, 28, 28, 56)  # the data byte, without the error bits
        a.emit(LSR, 28, 28, 56)
        a.emit(SUB_IMM, 28, 28, RESUME[0])
        a.emit(CBNZ, 28, "poll")
        a.label("resumed")
        a.emit(ADR, 28, self.string(DONE + b"\n"))
        a.emit(BL, "readback")
        a.label("park")
        a.emit(WFE)
        a.emit(B, "park")
        if echo:  # QEMU 9.0 and later: the echo, then the resume byte, are read after it
            a.label("poll_full")
            self.rearm_fired_timers()
            a.emit(LDR_W, 28, 29, _UART_FR)
            a.emit(TBZ, 28, _FR_RXFF, "poll_full")
            a.emit(B, "resumed")

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
        self.uart_snapshot(self._operations)
        if self._deadlines:
            self.wait_for_timers()
        for item in items:
            self.call_puts(f"{item.name}=0x".encode())
            for half in item.halves:
                half(a)
                a.emit(BL, "puthex")
            self.call_puts(b"\n")
        self.after_restore_devices(self._operations)
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
        a.mov_imm64(9, self.console)
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
        a.mov_imm64(9, self.console)
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

    def page_table(self) -> None:
        """The level-1 table :class:`~strategies.guests.EnableMmu` installs (entries 0..2)."""
        a = self.a
        a.align(4096)
        a.label("page_table")
        a.quad(0x0000_0000 | _BLOCK_DEVICE)
        a.quad(_RAM_BASE | _BLOCK_NORMAL)
        a.quad(_RAM_BASE | _BLOCK_NORMAL)  # VA 2 GiB: the alias
        assert _RAM_BASE + MMU_ALIAS_OFFSET == 2 * (1 << 30)

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


def build_guest(
    operations: Sequence[Operation], *, smp: int = 1, uart: int = UART_BASE
) -> GuestProgram:
    """Build the guest that performs ``operations`` and prints their read-back.

    Deterministic: the same operations give the same bytes. The image does not depend on
    ``smp`` (every CPU but the first parks itself by its MPIDR); the argument is checked so
    a caller passes its configuration's CPU count. ``uart`` is the console PL011's
    address: ``virt``'s by default, a board's (:mod:`fuzz.core.boards`) otherwise.

    :raise InvalidInput: ``smp`` < 1, the operations hold a combination
        :func:`~strategies.guests.check_operations` refuses, or the image would not fit
        below the stack.
    """
    if isinstance(smp, bool) or not isinstance(smp, int) or smp < 1:
        raise InvalidInput(f"{smp=} must be an integer >= 1")
    ops = list(operations)
    check_operations(ops)
    a = _Builder(uart).build(ops)
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
        listing=a.listing,
    )


# -- live migration guests -----------------------------------------------------------------
# A guest for a *running* migration (fuzz.run.live): after its checkpoint it does not wait
# still for the resume byte; it keeps writing memory while it polls the UART, so the
# migration has pages dirtied under it the whole time, and it checks them once resumed.
# Iteration k (from 1) writes k to the first word of page k mod LIVE_PAGES of LIVE_REGION:
# one write per page, wrapping. When the last iteration was M, page i must hold the largest
# k <= M with k = i (mod LIVE_PAGES), or 0 if there is none -- exactly, whatever iterations
# ran on which host: a page the migration lost or sent stale breaks the rule.

LIVE_REGION: Final = 0x4060_0000
"""Where a live guest writes its pattern: 6 MiB into RAM (below the smallest 16 MiB), clear
of the image, the stack, the data window, the scratch words and the ITS's tables."""
LIVE_PAGES: Final = 32
"""The pages the pattern cycles over (a power of 2: page = k & (LIVE_PAGES - 1))."""
LIVE_ITEMS: Final = ("live.iterations_nonzero", "live.pattern_bad_pages")
"""What a live guest prints after its resume byte, before the read-back: whether it ran at
all (``0x..1``), and how many pages break the pattern (``0x..0``: intact). A guest that
found a bad page also prints ``live.first_bad_page``."""
_LIVE_FRAME: Final = 96  # _LIVE_SAVED and x30: what the loop and puts/puthex use


def _live_wait(b: _Builder, echo: bool) -> None:
    """At the checkpoint of a live guest (x29 = the UART): write the pattern until the
    resume byte, check it, print :data:`LIVE_ITEMS`, then go on to ``resumed``.

    Every register it uses is saved on the stack first and restored after, and nothing
    here sets flags: the state the read-back prints is what the operations left. With an
    echo in the RX FIFO (``poll_full``'s case) it stops when the FIFO fills instead.
    """
    a = b.a
    a.emit(SUB_IMM, SP, SP, _LIVE_FRAME)
    for slot, (r1, r2) in enumerate(_LIVE_SAVED):
        a.emit(STP, r1, r2, SP, 16 * slot)
    a.emit(STR, 30, SP, 80)
    _live_loop(b, echo)
    _live_check(a)
    _live_print(b)
    for slot, (r1, r2) in enumerate(_LIVE_SAVED):
        a.emit(LDP, r1, r2, SP, 16 * slot)
    a.emit(LDR, 30, SP, 80)
    a.emit(ADD_IMM, SP, SP, _LIVE_FRAME)
    a.mov_imm64(29, b.console)
    a.emit(B, "resumed")


_LIVE_SAVED: Final = ((0, 1), (2, 3), (9, 10), (11, 13), (14, 15))


def _live_loop(b: _Builder, echo: bool) -> None:
    """x0 = k, x1 = the region, x3 = the mask: write until the resume byte (x0 = M)."""
    a = b.a
    a.emit(MOVZ, 0, 0)
    a.mov_imm64(1, LIVE_REGION)
    a.emit(MOVZ, 3, LIVE_PAGES - 1)

    def body(loop: str) -> None:
        a.label(loop)
        b.rearm_fired_timers()
        a.emit(ADD_IMM, 0, 0, 1)
        a.emit(AND, 2, 0, 3)
        a.emit(LSL, 2, 2, 12)  # the page
        a.emit(ADD, 2, 1, 2)
        a.emit(STR, 0, 2, 0)
        a.emit(LDR_W, 28, 29, _UART_FR)

    if echo:
        a.emit(LDR_W, 28, 29, _UART_FR)
        a.emit(TBZ, 28, _FR_RXFE, "live_full")
    body("live_loop")
    a.emit(TBNZ, 28, _FR_RXFE, "live_loop")
    a.emit(LDR_W, 28, 29, 0)
    a.emit(LSL, 28, 28, 56)  # the data byte, without the error bits
    a.emit(LSR, 28, 28, 56)
    a.emit(SUB_IMM, 28, 28, RESUME[0])
    a.emit(CBNZ, 28, "live_loop")
    if echo:
        a.emit(B, "live_check_start")
        body("live_full")
        a.emit(TBZ, 28, _FR_RXFF, "live_full")


def _live_check(a: Assembler) -> None:
    """x2 = pages breaking the pattern, x3 = the first (expected value of page i:
    M - ((M - i) & mask), or 0 where that is negative)."""
    a.label("live_check_start")
    a.emit(MOVZ, 2, 0)
    a.emit(MOVZ, 9, 0)
    a.emit(MOVZ, 10, 0)
    a.label("live_check")
    a.emit(SUB, 28, 0, 2)
    a.emit(AND, 28, 28, 3)
    a.emit(SUB, 28, 0, 28)
    a.emit(TBZ, 28, 63, "live_expected")
    a.emit(MOVZ, 28, 0)
    a.label("live_expected")
    a.emit(LSL, 29, 2, 12)
    a.emit(ADD, 29, 1, 29)
    a.emit(LDR, 29, 29, 0)
    a.emit(EOR, 29, 29, 28)
    a.emit(CBZ, 29, "live_page_ok")
    a.emit(CBNZ, 9, "live_counted")
    a.emit(ADD_IMM, 10, 2, 0)
    a.label("live_counted")
    a.emit(ADD_IMM, 9, 9, 1)
    a.label("live_page_ok")
    a.emit(ADD_IMM, 2, 2, 1)
    a.emit(SUB_IMM, 28, 2, LIVE_PAGES)
    a.emit(CBNZ, 28, "live_check")
    a.emit(ADD_IMM, 2, 9, 0)
    a.emit(ADD_IMM, 3, 10, 0)


def _live_print(b: _Builder) -> None:
    """Print :data:`LIVE_ITEMS` (and the first bad page); puts clobbers x0, x9..x11,
    puthex x0, x1, x9, x10, x13..x15, neither sets flags."""
    a = b.a
    a.emit(MOVZ, 1, 1)
    a.emit(CBNZ, 0, "live_ran")
    a.emit(MOVZ, 1, 0)
    a.label("live_ran")
    for name, reg in zip(LIVE_ITEMS, (1, 2), strict=True):
        b.call_puts(f"{name}=0x".encode())
        a.emit(ADD_IMM, 1, reg, 0)
        a.emit(BL, "puthex")
        b.call_puts(b"\n")
    a.emit(CBZ, 2, "live_printed")
    b.call_puts(b"live.first_bad_page=0x")
    a.emit(ADD_IMM, 1, 3, 0)
    a.emit(BL, "puthex")
    b.call_puts(b"\n")
    a.label("live_printed")


def build_live_guest(operations: Sequence[Operation], *, smp: int = 1) -> GuestProgram:
    """The guest :func:`build_guest` makes of ``operations``, for a live migration: at its
    checkpoint it keeps writing :data:`LIVE_REGION` until the resume byte, then prints
    :data:`LIVE_ITEMS` before the same read-back (``GuestProgram.live`` is True).

    :raise InvalidInput: as :func:`build_guest`.
    """
    paused = build_guest(operations, smp=smp)  # the same checks
    builder = _Builder()
    builder.live = True
    a = builder.build(list(operations))
    image = a.assemble()
    if IMAGE_BASE + len(image) > STACK_TOP - _STACK_GUARD:
        raise InvalidInput(f"{len(operations)} operations make a {len(image)}-byte image")
    return GuestProgram(
        image=image, load_address=paused.load_address, entry=paused.entry,
        checkpoint=paused.checkpoint, resume=paused.resume, done=paused.done,
        operations=paused.operations, live=True, listing=a.listing,
    )  # fmt: skip
