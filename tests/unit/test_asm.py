"""The AArch64 encoder agrees with GNU as on every form it emits, and refuses what it cannot.

Each comparison writes ``Assembler.listing()`` to a file, runs ``aarch64-linux-gnu-as`` and
``objcopy -O binary`` once, and compares the bytes with ``Assembler.assemble()``; many
instructions share one run so the file stays fast. Operands are drawn from each field's own
description, and :data:`IMMEDIATE_RANGES` pins those descriptions to the architecture, so a
field declared too narrow cannot hide from the comparison.
"""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.errors import InvalidInput
from strategies import asm
from tests.gnu_as import gnu_as

BASE = 0x4008_0000
LABELS = ("l0", "l1", "l2", "l3")

# (form name, field name) -> (lowest, highest, step), from the Arm ARM, not from asm.py.
IMMEDIATE_RANGES = {
    ("movz", "imm16"): (0, 0xFFFF, 1),
    ("movk", "imm16"): (0, 0xFFFF, 1),
    ("add_imm", "imm12"): (0, 4095, 1),
    ("sub_imm", "imm12"): (0, 4095, 1),
    ("cmp_imm", "imm12"): (0, 4095, 1),
    ("lsr", "shift"): (0, 63, 1),
    ("lsl", "shift"): (0, 63, 1),
    ("msr_daifset", "imm4"): (0, 15, 1),
    ("msr_daifclr", "imm4"): (0, 15, 1),
    ("msr_spsel", "imm"): (0, 1, 1),
    ("ldr", "offset"): (0, 32760, 8),
    ("str", "offset"): (0, 32760, 8),
    ("ldr_w", "offset"): (0, 16380, 4),
    ("str_w", "offset"): (0, 16380, 4),
    ("ldrb", "offset"): (0, 4095, 1),
    ("strb", "offset"): (0, 4095, 1),
    ("strh", "offset"): (0, 8190, 2),
    ("ldr_q", "offset"): (0, 65520, 16),
    ("str_q", "offset"): (0, 65520, 16),
    **{(name, "offset"): (-512, 504, 8) for name in ("ldp", "stp")},
    **{
        (f"{op}_{mode}", "offset"): (-512, 504, 8)
        for op in ("ldp", "stp")
        for mode in ("pre", "post")
    },
    ("rdvl", "imm6"): (-32, 31, 1),
    ("tbz", "bit"): (0, 63, 1),
    ("tbnz", "bit"): (0, 63, 1),
    **{(name, "imm16"): (0, 0xFFFF, 1) for name in ("svc", "hvc", "smc", "brk")},
}


def assert_matches_gnu_as(a: asm.Assembler) -> None:
    """Assert GNU as turns ``a.listing()`` into ``a.assemble()``; show the first differing line."""
    listing = a.listing()
    ours, theirs = a.assemble(), gnu_as(listing)
    if ours == theirs:
        return
    first = next(
        (i for i in range(min(len(ours), len(theirs))) if ours[i] != theirs[i]),
        min(len(ours), len(theirs)),
    )
    address = f"{a.base_address + first - first % 4:#x}:"
    line = next((ln for ln in listing.splitlines() if f"// {address}" in ln), "?")
    word = theirs[first - first % 4 :][:4][::-1].hex()
    pytest.fail(
        f"{len(ours)} bytes ours, {len(theirs)} GNU as; first difference at {address}\n"
        f"  {line.strip()}\n  GNU as: {word}"
    )


def sysregs() -> st.SearchStrategy[asm.SysReg]:
    """Every generic system register encoding with op0 in {2, 3}."""
    return st.builds(
        asm.SysReg,
        st.sampled_from([2, 3]),
        st.integers(0, 7),
        st.integers(0, 15),
        st.integers(0, 15),
        st.integers(0, 7),
    )


def field_values(field: asm.Field) -> st.SearchStrategy[asm.Value]:
    """Every value the field's description accepts."""
    if isinstance(field, asm.Reg):
        return st.integers(0, 31)
    if isinstance(field, asm.Imm):
        scale = field.scale
        return st.integers(field.lo // scale, field.hi // scale).map(lambda k: k * scale)
    if isinstance(field, asm.Choice):
        return st.sampled_from(field.choices)
    if isinstance(field, asm.Cond):
        return st.sampled_from(asm.CONDITIONS)
    if isinstance(field, asm.SysRegOperand):
        return sysregs()
    if isinstance(field, asm.Target):
        return st.sampled_from(LABELS)
    raise AssertionError(f"no strategy for {field!r}: teach field_values the new kind")


def field_extremes(field: asm.Field) -> list[asm.Value]:
    """The values most likely to expose an encoding slip: the ends of every range."""
    if isinstance(field, asm.Reg):
        return [0, 17, 31]
    if isinstance(field, asm.Imm):
        return [field.lo, field.hi] if field.lo == 0 else [field.lo, 0, field.hi]
    if isinstance(field, asm.Choice):
        return list(field.choices)
    if isinstance(field, asm.Cond):
        return list(asm.CONDITIONS)
    if isinstance(field, asm.SysRegOperand):
        return [asm.SysReg(2, 0, 0, 0, 0), asm.SysReg(3, 7, 15, 15, 7), asm.SysReg(3, 0, 1, 0, 0)]
    if isinstance(field, asm.Target):
        return ["first", "last"]
    raise AssertionError(f"no extremes for {field!r}: teach field_extremes the new kind")


def allowed(form: asm.Form, operands: tuple[asm.Value, ...]) -> bool:
    return form.constraint is None or form.constraint(operands) is None


OPERANDS = {
    name: st.tuples(*(field_values(f) for f in form.fields)).filter(
        lambda ops, form=form: allowed(form, ops)
    )
    for name, form in asm.FORMS.items()
}


def test_every_form_at_its_operand_extremes_matches_gnu_as():
    """Enumerates the form table: each form, with every combination of extremes, in one run."""
    a = asm.Assembler(BASE)
    a.label("first")
    exercised = set()
    for name, form in asm.FORMS.items():
        for operands in itertools.product(*(field_extremes(f) for f in form.fields)):
            if allowed(form, operands):
                a.emit(form, *operands)
                exercised.add(name)
    a.label("last")
    assert exercised == set(asm.FORMS), "forms never compared with GNU as"
    assert_matches_gnu_as(a)


def test_field_ranges_are_the_architectural_ones():
    declared = {
        (name, f.name): (f.lo, f.hi, f.scale)
        for name, form in asm.FORMS.items()
        for f in form.fields
        if isinstance(f, asm.Imm)
    }
    assert declared == IMMEDIATE_RANGES


@st.composite
def programs(draw: st.DrawFn) -> asm.Assembler:
    """Every form and directive at least once plus extra ones, shuffled, with four labels."""
    forms: list[asm.Form | str] = list(asm.FORMS.values())
    directives = ["align", "word", "quad"]
    extra = draw(st.lists(st.sampled_from([*forms, *directives]), max_size=60))
    steps = draw(st.permutations([*forms, *directives, *LABELS, *extra]))
    a = asm.Assembler(BASE)
    for step in steps:
        if isinstance(step, asm.Form):
            a.emit(step, *draw(OPERANDS[step.name]))
        elif step in LABELS:
            a.label(step)
        elif step == "align":
            a.align(draw(st.sampled_from([1, 4, 8, 16, 64, 4096])))
        elif step == "word":
            a.word(draw(st.integers(0, 2**32 - 1)))
        else:
            a.quad(draw(st.integers(0, 2**64 - 1)))
    return a


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_random_programs_match_gnu_as(a):
    assert_matches_gnu_as(a)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 31), st.integers(-(2**63), 2**64 - 1)), min_size=1))
def test_mov_imm64_builds_the_value_in_four_instructions(moves):
    a = asm.Assembler(BASE)
    for reg, value in moves:
        a.mov_imm64(reg, value)
    code = a.assemble()
    assert len(code) == 16 * len(moves)
    for i, (reg, value) in enumerate(moves):
        words = [int.from_bytes(code[16 * i + 4 * k :][:4], "little") for k in range(4)]
        assert all(w & 31 == reg for w in words)
        built = sum(((w >> 5) & 0xFFFF) << (16 * ((w >> 21) & 3)) for w in words)
        assert built == value % 2**64
    assert_matches_gnu_as(a)


def test_omitted_operands_take_their_defaults():
    a = asm.Assembler(BASE)
    a.emit(asm.RET)
    a.emit(asm.ADD_IMM, asm.SP, asm.SP, 16)
    a.emit(asm.MOVZ, 1, 0xBEEF)
    assert a.assemble() == bytes.fromhex("c0035fd6 ff430091 e1dd97d2")
    assert "ret x30" in a.listing()
    assert_matches_gnu_as(a)


def test_listing_annotates_each_line_with_address_and_encoding():
    a = asm.Assembler(BASE)
    a.label("start")
    a.emit(asm.NOP)
    a.align(16)
    a.word(0x12345678)
    a.emit(asm.B, "start")
    lines = a.listing().splitlines()
    assert "L_start:" in lines[3]
    assert lines[3].endswith("// 0x40080000")
    assert lines[4].split("//")[1].strip() == "0x40080000: d503201f"
    assert "3 x nop" in lines[5]
    assert lines[6].split("//")[0].strip() == ".word 0x12345678"
    assert lines[7].split("//")[1].strip() == "0x40080014: 17fffffb"
    assert a.address == BASE + 0x18
    assert a.address_of("start") == BASE


def padded(form, operands, distance):
    """A program whose only branch reaches ``distance`` bytes (a multiple of 4) with zeros."""
    a = asm.Assembler(BASE)
    if distance < 0:
        a.label("target")
    else:
        a.emit(form, *operands, "target")
    words = abs(distance) // 4 - (distance > 0)
    for _ in range(words // 2):
        a.quad(0)
    if words % 2:
        a.word(0)
    if distance < 0:
        a.emit(form, *operands, "target")
    else:
        a.label("target")
    return a


@pytest.mark.parametrize(
    ("form", "operands", "lowest", "highest"),
    [
        (asm.TBZ, (3, 5), -32768, 32764),
        (asm.CBZ, (3,), -1048576, 1048572),
        (asm.ADR, (3,), -1048576, 1048572),
    ],
)
def test_label_reach_ends_exactly_where_gnu_as_says(form, operands, lowest, highest):
    """The furthest labels either way encode as GNU as does them; one word further is refused."""
    for distance in (lowest, highest):
        assert_matches_gnu_as(padded(form, operands, distance))
    for distance in (lowest - 4, highest + 4):
        with pytest.raises(InvalidInput, match=r"'target' is .* bytes away, out of range"):
            padded(form, operands, distance).assemble()


@pytest.mark.parametrize(
    ("form", "operands", "message"),
    [
        (asm.ADD_IMM, (0, 1, 4096), "imm12=4096 out of range 0..4095"),
        (asm.ADD_IMM, (0, 1, -1), "imm12=-1 out of range"),
        (asm.ADD_IMM, (0, 1, 1, 16), r"shift=16 not in \(0, 12\)"),
        (asm.MOVZ, (0, 0x10000), "imm16=65536 out of range"),
        (asm.MOVK, (0, 1, 8), "shift=8 not in"),
        (asm.LDR, (0, 1, 12), "offset=12 is not a multiple of 8"),
        (asm.LDR, (0, 1, 32768), "offset=32768 out of range 0..32760"),
        (asm.STP_PRE, (0, 1, asm.SP, -520), "offset=-520 out of range -512..504"),
        (asm.LSL, (0, 1, 64), "shift=64 out of range 0..63"),
        (asm.MSR_SPSEL, (2,), "imm=2 out of range 0..1"),
        (asm.HVC, (0x10000,), "imm16=65536"),
        (asm.ADD, (32, 1, 2), "rd=32 out of range 0..31"),
        (asm.ADD, (0, -1, 2), "rn=-1 out of range"),
        (asm.ADD, (0, True, 2), "rn=True is not an integer"),
        (asm.ADD, (0, 1, "x2"), "rm='x2' is not an integer"),
        (asm.B_COND, ("nv", "l0"), "cond='nv' not one of"),
        (asm.B, ("no spaces",), "is not a label name"),
        (asm.MRS, (0, 5), "sysreg=5 is not a SysReg"),
        (asm.LDP, (3, 3, 4, 0), "rt=rt2=3 is unpredictable"),
        (asm.STP_POST, (3, 4, 4, 16), "rn=4 is also transferred"),
        (asm.ADD, (0, 1), "missing operand rm"),
        (asm.NOP, (0,), "nop takes 0 operands, got 1"),
    ],
)
def test_bad_operands_are_refused_naming_the_value(form, operands, message):
    a = asm.Assembler(BASE)
    with pytest.raises(InvalidInput, match=message):
        a.emit(form, *operands)
    assert a.address == BASE, "a refused instruction must not take space"


@pytest.mark.parametrize(
    ("fields", "message"),
    [((1, 0, 0, 0, 0), r"op0=1 not in \{2, 3\}"), ((3, 8, 0, 0, 0), "op1=8 out of range 0..7")],
)
def test_bad_system_registers_are_refused(fields, message):
    with pytest.raises(InvalidInput, match=message):
        asm.SysReg(*fields)


def test_label_problems_are_refused():
    a = asm.Assembler(BASE)
    a.label("here")
    with pytest.raises(InvalidInput, match="'here' defined twice"):
        a.label("here")
    with pytest.raises(InvalidInput, match="is not"):
        a.label("1up")
    a.emit(asm.CBNZ, 0, "nowhere")
    with pytest.raises(InvalidInput, match=r"0x40080000 `cbnz x0, L_nowhere`: undefined label"):
        a.assemble()
    with pytest.raises(InvalidInput, match="undefined label 'nowhere'"):
        a.listing()
    with pytest.raises(InvalidInput, match="undefined label"):
        a.address_of("nowhere")


def test_bad_directives_are_refused():
    with pytest.raises(InvalidInput, match="not a 4-aligned"):
        asm.Assembler(BASE + 2)
    a = asm.Assembler(0x1000)
    with pytest.raises(InvalidInput, match="boundary=12 is not a power of two"):
        a.align(12)
    with pytest.raises(InvalidInput, match="boundary=8192 does not divide"):
        a.align(8192)
    with pytest.raises(InvalidInput, match="value=0x100000000 out of range"):
        a.word(2**32)
    with pytest.raises(InvalidInput, match="out of range"):
        a.quad(-1)
    with pytest.raises(InvalidInput, match="does not fit in 64 bits"):
        a.mov_imm64(0, 2**64)


def test_memoized_forms_still_refuse_a_bool_where_the_equal_int_was_accepted():
    a = asm.Assembler(BASE)
    a.emit(asm.ADD, 0, 1, 2)  # (0, 1, 2) is now memoized; (0, True, 2) hashes the same
    with pytest.raises(InvalidInput, match="rn=True is not an integer"):
        a.emit(asm.ADD, 0, True, 2)


def test_a_memoized_branch_still_encodes_its_distance_from_where_it_is():
    a = asm.Assembler(BASE)
    a.label("top")
    a.emit(asm.B, "top")
    a.emit(asm.NOP)
    a.emit(asm.B, "top")
    first, _nop, second = struct.unpack("<3I", a.assemble())
    assert first != second
    assert (first & 0x3FFFFFF, second & 0x3FFFFFF) == (0, (-2) & 0x3FFFFFF)
