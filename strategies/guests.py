"""Guest-state operations and the Hypothesis strategies that draw lists of them.

An operation is a frozen dataclass that says one thing the guest does before its
checkpoint: write a system register, set a general-purpose or SIMD&FP register, fill a
few words of memory, arm a generic timer (interrupt masked), set NZCV or DAIF, configure
one interrupt in the GIC distributor. :func:`strategies.image.build_guest` turns a list of
them into a bare-metal image. Pure data: nothing here starts a process.

Lists shrink toward no operations, each operation toward its first kind (a GPR write) and
small values; every draw is local to its operation, so deleting one never changes another.

Not covered (yet): MMU on with page tables, exception-level changes, secondary CPUs doing
anything but parking, GIC CPU interface and redistributor state, SVE/SME state.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal, TypeAlias

from hypothesis import strategies as st

from fuzz.errors import CorpusError, InvalidInput
from strategies.sysregs import SYSTEM_REGISTERS, by_name

__all__ = [
    "DATA_BASE",
    "DATA_SIZE",
    "GIC_IRQS",
    "GPR_COUNT",
    "MAX_FILL_WORDS",
    "ArmTimer",
    "ConfigureGic",
    "FillMemory",
    "Operation",
    "SetDaif",
    "SetFlags",
    "SetFpReg",
    "SetGpr",
    "WriteSysReg",
    "daif_settings",
    "flag_settings",
    "fpreg_writes",
    "gic_settings",
    "gpr_writes",
    "guest_operations",
    "memory_fills",
    "operations",
    "operations_from_json",
    "operations_to_json",
    "sysreg_writes",
    "timer_settings",
]

GPR_COUNT: Final = 28
"""x0..x27 are the guest's to set; x28, x29 (scratch, UART polling) and x30 (link) are not."""
DATA_BASE: Final = 0x4020_0000
"""Start of the memory window that memory fills write (guest RAM, away from code and stack)."""
DATA_SIZE: Final = 0x1_0000
"""Size in bytes of that window."""
MAX_FILL_WORDS: Final = 8
"""Most 64-bit words one memory fill writes."""
GIC_IRQS: Final = range(32, 128)
"""The shared peripheral interrupts a GIC operation may configure (every virt GIC has them)."""

_U64: Final = (1 << 64) - 1
_U128: Final = (1 << 128) - 1


def _check_range(name: str, value: int, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidInput(f"{name}={value!r} not an integer in {lo:#x}..{hi:#x}")


@dataclass(frozen=True)
class WriteSysReg:
    """``msr <register>, value``: one row of :data:`~strategies.sysregs.SYSTEM_REGISTERS`."""

    register: str
    value: int
    kind: ClassVar[str] = "sysreg"

    def __post_init__(self) -> None:
        """Refuse a register not in the table or a value outside its safe bits."""
        row = by_name(self.register)
        if row is None:
            raise InvalidInput(f"register={self.register!r} is not a writable system register")
        _check_range("value", self.value, 0, _U64)
        if self.value & ~row.safe:
            raise InvalidInput(f"value={self.value:#x} sets bits outside {row.name}'s safe mask")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"op": self.kind, "register": self.register, "value": f"{self.value:#x}"}


@dataclass(frozen=True)
class SetGpr:
    """Set X``register`` (0..27) to ``value``; done after every other operation's scratch use."""

    register: int
    value: int
    kind: ClassVar[str] = "gpr"

    def __post_init__(self) -> None:
        """Refuse a reserved register or a value wider than 64 bits."""
        _check_range("register", self.register, 0, GPR_COUNT - 1)
        _check_range("value", self.value, 0, _U64)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"op": self.kind, "register": self.register, "value": f"{self.value:#x}"}


@dataclass(frozen=True)
class SetFpReg:
    """Set the 128-bit SIMD&FP register Q``register`` (0..31) to ``value``."""

    register: int
    value: int
    kind: ClassVar[str] = "fpreg"

    def __post_init__(self) -> None:
        """Refuse a register number or value out of range."""
        _check_range("register", self.register, 0, 31)
        _check_range("value", self.value, 0, _U128)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"op": self.kind, "register": self.register, "value": f"{self.value:#x}"}


@dataclass(frozen=True)
class FillMemory:
    """Write ``count`` 64-bit words at ``DATA_BASE + offset``: word i is ``value + i * step``."""

    offset: int
    count: int
    value: int
    step: int = 0
    kind: ClassVar[str] = "memory"

    def __post_init__(self) -> None:
        """Refuse a misaligned offset or a range leaving the data window."""
        _check_range("count", self.count, 1, MAX_FILL_WORDS)
        _check_range("offset", self.offset, 0, DATA_SIZE - 8 * self.count)
        if self.offset % 8:
            raise InvalidInput(f"offset={self.offset:#x} is not a multiple of 8")
        _check_range("value", self.value, 0, _U64)
        _check_range("step", self.step, 0, _U64)

    def words(self) -> list[tuple[int, int]]:
        """The (address, value) pairs written, in order."""
        return [
            (DATA_BASE + self.offset + 8 * i, (self.value + i * self.step) & _U64)
            for i in range(self.count)
        ]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "op": self.kind,
            "offset": self.offset,
            "count": self.count,
            "value": f"{self.value:#x}",
            "step": f"{self.step:#x}",
        }


Timer: TypeAlias = Literal["virtual", "physical"]


@dataclass(frozen=True)
class ArmTimer:
    """Write CNT{V,P}_CVAL_EL0 = ``compare`` and CNT{V,P}_CTL_EL0 = IMASK | ``enable``.

    The interrupt is always masked at the timer (IMASK), so it is never taken; the
    read-back masks ISTATUS out of CTL, since whether the timer has fired depends on time.
    """

    timer: Timer
    compare: int
    enable: bool = False
    kind: ClassVar[str] = "timer"

    def __post_init__(self) -> None:
        """Refuse an unknown timer or a compare value wider than 64 bits."""
        if self.timer not in ("virtual", "physical"):
            raise InvalidInput(f"timer={self.timer!r} not 'virtual' or 'physical'")
        if not isinstance(self.enable, bool):
            raise InvalidInput(f"enable={self.enable!r} is not a bool")
        _check_range("compare", self.compare, 0, _U64)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "op": self.kind,
            "timer": self.timer,
            "compare": f"{self.compare:#x}",
            "enable": self.enable,
        }


@dataclass(frozen=True)
class SetFlags:
    """``msr nzcv``: the condition flags N, Z, C, V as a 4-bit value (N is bit 3)."""

    nzcv: int
    kind: ClassVar[str] = "nzcv"

    def __post_init__(self) -> None:
        """Refuse a value wider than 4 bits."""
        _check_range("nzcv", self.nzcv, 0, 15)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"op": self.kind, "nzcv": self.nzcv}


@dataclass(frozen=True)
class SetDaif:
    """Set the exception masks D, A, I, F to the 4-bit ``daif`` (D is bit 3).

    Emitted as ``msr daifset`` then ``msr daifclr``. Unmasking is harmless: the GIC
    distributor stays disabled and timers are masked, so nothing is ever signalled.
    """

    daif: int
    kind: ClassVar[str] = "daif"

    def __post_init__(self) -> None:
        """Refuse a value wider than 4 bits."""
        _check_range("daif", self.daif, 0, 15)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"op": self.kind, "daif": self.daif}


@dataclass(frozen=True)
class ConfigureGic:
    """Set one SPI's priority byte and set or clear its enable bit in the GIC distributor.

    The distributor itself stays disabled (GICD_CTLR is never written), so no interrupt
    is ever delivered; the state is what migrates.
    """

    irq: int
    priority: int
    enable: bool = False
    kind: ClassVar[str] = "gic"

    def __post_init__(self) -> None:
        """Refuse an interrupt outside :data:`GIC_IRQS` or a priority wider than a byte."""
        _check_range("irq", self.irq, GIC_IRQS.start, GIC_IRQS.stop - 1)
        _check_range("priority", self.priority, 0, 255)
        if not isinstance(self.enable, bool):
            raise InvalidInput(f"enable={self.enable!r} is not a bool")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"op": self.kind, "irq": self.irq, "priority": self.priority, "enable": self.enable}


Operation: TypeAlias = (
    WriteSysReg | SetGpr | SetFpReg | FillMemory | ArmTimer | SetFlags | SetDaif | ConfigureGic
)
"""Anything a guest does before its checkpoint."""

_KINDS: Final[dict[str, type[Operation]]] = {
    cls.kind: cls
    for cls in (
        WriteSysReg, SetGpr, SetFpReg, FillMemory, ArmTimer, SetFlags, SetDaif, ConfigureGic
    )
}  # fmt: skip


def _number(data: dict[str, Any], key: str) -> int:
    value = data[key]
    if isinstance(value, bool):
        raise TypeError(f"{key}={value!r} is not a number")
    if isinstance(value, str):
        return int(value, 0)
    if isinstance(value, int):
        return value
    raise TypeError(f"{key}={value!r} is not a number")


def _flag(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise TypeError(f"{key}={value!r} is not a bool")
    return value


def _operation_from_json(data: Any) -> Operation:
    if not isinstance(data, dict):
        raise TypeError(f"{data!r} is not an object")
    kind = data.get("op")
    match kind:
        case "sysreg":
            return WriteSysReg(str(data["register"]), _number(data, "value"))
        case "gpr":
            return SetGpr(_number(data, "register"), _number(data, "value"))
        case "fpreg":
            return SetFpReg(_number(data, "register"), _number(data, "value"))
        case "memory":
            return FillMemory(
                _number(data, "offset"),
                _number(data, "count"),
                _number(data, "value"),
                _number(data, "step"),
            )
        case "timer":
            return ArmTimer(data["timer"], _number(data, "compare"), _flag(data, "enable"))
        case "nzcv":
            return SetFlags(_number(data, "nzcv"))
        case "daif":
            return SetDaif(_number(data, "daif"))
        case "gic":
            return ConfigureGic(
                _number(data, "irq"), _number(data, "priority"), _flag(data, "enable")
            )
    raise ValueError(f"op={kind!r} is not one of {', '.join(_KINDS)}")


def operations_to_json(operations: Iterable[Operation]) -> list[dict[str, Any]]:
    """The JSON form of ``operations`` (what :class:`~fuzz.case.GuestProgram` stores)."""
    return [op.to_json() for op in operations]


def operations_from_json(data: Any) -> list[Operation]:
    """Parse :func:`operations_to_json` output back into operations.

    :raise CorpusError: ``data`` is not a list, or an entry is malformed or out of range;
        the message gives the entry's index.
    """
    if not isinstance(data, list | tuple):
        raise CorpusError("guest operations must be a list")
    out = []
    for index, item in enumerate(data):
        try:
            out.append(_operation_from_json(item))
        except (KeyError, TypeError, ValueError) as err:  # InvalidInput is a ValueError
            raise CorpusError(f"guest operation {index}: {err}") from err
    return out


# -- strategies ----------------------------------------------------------------------------

_u64s = st.integers(0, _U64)


def gpr_writes() -> st.SearchStrategy[SetGpr]:
    """Writes of any 64-bit value to one of x0..x27."""
    return st.builds(SetGpr, st.integers(0, GPR_COUNT - 1), _u64s)


def fpreg_writes() -> st.SearchStrategy[SetFpReg]:
    """Writes of any 128-bit value to one of q0..q31."""
    return st.builds(SetFpReg, st.integers(0, 31), st.integers(0, _U128))


def _register_names(registers: Sequence[str] | None) -> tuple[str, ...]:
    if registers is None:
        return tuple(r.name for r in SYSTEM_REGISTERS)
    if isinstance(registers, str):
        raise InvalidInput(f"registers={registers!r} must be a sequence of names, not a str")
    names = tuple(registers)
    unknown = [n for n in names if by_name(n) is None]
    if unknown:
        raise InvalidInput(f"registers: {unknown!r} not in strategies.sysregs.SYSTEM_REGISTERS")
    return names


@st.composite
def _sysreg_write(draw: st.DrawFn, names: tuple[str, ...]) -> WriteSysReg:
    row = by_name(draw(st.sampled_from(names)))
    assert row is not None
    # Mostly inside the architected fields; sometimes any bit the register allows.
    mask = row.safe if draw(st.integers(0, 3)) == 3 else row.fields
    return WriteSysReg(row.name, draw(_u64s) & mask)


def sysreg_writes(*, registers: Sequence[str] | None = None) -> st.SearchStrategy[WriteSysReg]:
    """Writes to one of ``registers`` (names from the table; default: every row).

    Values are mostly inside the register's architected fields and sometimes any value
    inside its safe bits; both shrink toward zero.

    :raise InvalidInput: a name is not in :data:`~strategies.sysregs.SYSTEM_REGISTERS`.
    """
    names = _register_names(registers)
    if not names:
        return st.nothing()
    return _sysreg_write(names)


def memory_fills() -> st.SearchStrategy[FillMemory]:
    """Fills of 1..8 words somewhere in the data window, constant or stepped patterns."""
    return st.builds(
        FillMemory,
        st.integers(0, (DATA_SIZE // 8) - MAX_FILL_WORDS).map(lambda w: 8 * w),
        st.integers(1, MAX_FILL_WORDS),
        _u64s,
        st.one_of(st.just(0), _u64s),
    )


def timer_settings() -> st.SearchStrategy[ArmTimer]:
    """Arms of the virtual or physical timer, masked, enabled or not."""
    return st.builds(ArmTimer, st.sampled_from(("virtual", "physical")), _u64s, st.booleans())


def flag_settings() -> st.SearchStrategy[SetFlags]:
    """Writes of NZCV."""
    return st.builds(SetFlags, st.integers(0, 15))


def daif_settings() -> st.SearchStrategy[SetDaif]:
    """Writes of the DAIF exception masks."""
    return st.builds(SetDaif, st.integers(0, 15))


def gic_settings() -> st.SearchStrategy[ConfigureGic]:
    """One SPI's priority and enable bit in the GIC distributor."""
    return st.builds(
        ConfigureGic,
        st.integers(GIC_IRQS.start, GIC_IRQS.stop - 1),
        st.integers(0, 255),
        st.booleans(),
    )


def operations(
    *, registers: Sequence[str] | None = None, gic: bool = True
) -> st.SearchStrategy[Operation]:
    """Any one operation; shrinks toward a GPR write.

    :param registers: system registers that may be written (default: the whole table).
    :param gic: whether GIC distributor operations may be drawn.
    """
    choices: list[st.SearchStrategy[Operation]] = [
        gpr_writes(),
        fpreg_writes(),
        sysreg_writes(registers=registers),
        memory_fills(),
        flag_settings(),
        daif_settings(),
        timer_settings(),
    ]
    if gic:
        choices.append(gic_settings())
    return st.one_of(choices)


def guest_operations(
    *, max_ops: int = 12, registers: Sequence[str] | None = None, gic: bool = True
) -> st.SearchStrategy[list[Operation]]:
    """Lists of up to ``max_ops`` operations, shrinking toward the empty list.

    :param registers: names of the system registers that may be written (default: the
        whole table; a subset focuses a campaign or avoids a register known to misbehave).
    :param gic: whether GIC distributor operations may be drawn.
    :raise InvalidInput: ``max_ops`` is negative, or a register name is unknown.
    """
    if isinstance(max_ops, bool) or not isinstance(max_ops, int) or max_ops < 0:
        raise InvalidInput(f"{max_ops=} must be an integer >= 0")
    return st.lists(operations(registers=registers, gic=gic), max_size=max_ops)
