"""The layout diff of ``migfuzz describe`` on small hand-made descriptions.

Each test builds two layouts that differ in one known way and checks that exactly that
difference, and nothing else, comes out; the last ones use the committed real stream.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from fuzz.stream.cpregs import CpReg, to_kvm_id
from fuzz.stream.decode import decode_file
from fuzz.stream.description import Description, DeviceDesc, FieldDesc, VmsdDesc
from fuzz.triage.describe import (
    CONFIGURATION,
    CpregDiff,
    CpuRegisters,
    FieldChange,
    FieldShape,
    Layout,
    SectionLayout,
    SectionRef,
    SubsectionChange,
    diff_layouts,
    register_name,
)

SEED_STREAM = Path(__file__).parent.parent / "data" / "stream-11.1-max-virt-5.2.seed"

ID_AA64ISAR0_EL1 = to_kvm_id(CpReg.aa64(3, 0, 0, 6, 0))
SCTLR_EL1 = to_kvm_id(CpReg.aa64(3, 0, 1, 0, 0))
TPIDRURW = to_kvm_id(CpReg.aa32(15, 0, 13, 0, 2))  # P15_0_C13_C0_2


def u32(name: str, **kw: int) -> FieldDesc:
    return FieldDesc(name, "uint32", 4, **kw)


def vmsd(name: str, *fields: FieldDesc, version: int = 1, subs: tuple[VmsdDesc, ...] = ()):
    return VmsdDesc(name, version, tuple(fields), subs)


def section(name: str, *fields: FieldDesc, version: int = 1, instance: int = 0, subs=()):
    return SectionLayout(name, instance, version, vmsd(name, *fields, version=version, subs=subs))


def layout(*sections: SectionLayout, cpregs: tuple[int, ...] | None = None) -> Layout:
    cpus = () if cpregs is None else (CpuRegisters(0, cpregs),)
    return Layout(tuple(sections), cpus)


def only_section(a: Layout, b: Layout):
    diff = diff_layouts(a, b)
    assert not (diff.only_a or diff.only_b or diff.cpregs)
    assert len(diff.sections) == 1
    return diff.sections[0]


def test_same_layout_is_identical() -> None:
    a = layout(section("pl011", u32("x"), subs=(vmsd("pl011/clock", u32("c")),)), cpregs=(1,))
    diff = diff_layouts(a, a)
    assert diff.identical
    assert diff.common == 1
    assert diff.lines("10.0", "10.0") == [
        "no differences: 1 sections, same layout on 10.0 and 10.0"
    ]


def test_sections_only_on_one_side_with_their_versions() -> None:
    a = layout(section("timer", u32("t")), section("pl011", u32("x"), version=2))
    b = layout(section("timer", u32("t")), section("pl011", u32("x"), version=2, instance=1))
    diff = diff_layouts(a, b)
    assert diff.only_a == (SectionRef("pl011", 0, 2),)
    assert diff.only_b == (SectionRef("pl011", 1, 2),)
    assert diff.sections == ()
    assert "[pl011 0] only in A (version 2)" in diff.lines()


def test_section_version_change() -> None:
    changed = only_section(layout(section("gic", u32("x"), version=12)),
                           layout(section("gic", u32("x"), version=13)))  # fmt: skip
    assert (changed.a_version, changed.b_version, changed.fields) == (12, 13, ())
    assert changed.version_changed


def test_fields_added_removed_resized_retyped() -> None:
    a = section("dev", u32("kept"), u32("gone"), FieldDesc("arr", "uint64", 8, array_len=4),
                FieldDesc("n", "int32 le", 4))  # fmt: skip
    b = section("dev", u32("kept"), FieldDesc("arr", "uint64", 8, array_len=3),
                FieldDesc("n", "int32", 4), u32("new"), FieldDesc("wide", "uint64", 8))  # fmt: skip
    changed = only_section(layout(a), layout(b))
    assert changed.fields == (
        FieldChange("gone", FieldShape("uint32", 4), None),
        FieldChange("arr", FieldShape("uint64", 8, 4), FieldShape("uint64", 8, 3)),
        FieldChange("n", FieldShape("int32 le", 4), FieldShape("int32", 4)),
        FieldChange("new", None, FieldShape("uint32", 4)),
        FieldChange("wide", None, FieldShape("uint64", 8)),
    )
    assert [c.kind for c in changed.fields] == ["only-a", "resized", "retyped", "only-b", "only-b"]


def test_field_renamed_in_place_with_same_byte_length() -> None:
    a = section("cpu", u32("x"), FieldDesc("gt_timer", "timer", 8, index=0), u32("old"))
    b = section("cpu", u32("x"), FieldDesc("gt_timer[GTIMER_PHYS]", "timer", 8),
                FieldDesc("unused", "unused_buffer", 4))  # fmt: skip
    changed = only_section(layout(a), layout(b))
    assert [(c.path, c.b_path, c.kind) for c in changed.fields] == [
        ("gt_timer[0]", "gt_timer[GTIMER_PHYS]", "renamed"),
        ("old", "unused", "renamed"),
    ]


def test_no_rename_when_byte_length_differs() -> None:
    changed = only_section(layout(section("d", u32("old"))),
                           layout(section("d", FieldDesc("new", "uint64", 8))))  # fmt: skip
    assert [c.kind for c in changed.fields] == ["only-a", "only-b"]


def test_subsection_only_on_one_side_hides_its_fields() -> None:
    sub = vmsd("cpu/wfxt-timer", FieldDesc("wfxt_timer", "timer", 8),
               subs=(vmsd("cpu/wfxt-timer/inner", u32("i")),))  # fmt: skip
    a, b = layout(section("cpu", u32("x"))), layout(section("cpu", u32("x"), subs=(sub,)))
    changed = only_section(a, b)
    assert changed.subsections == (SubsectionChange("cpu/wfxt-timer", None, 1, "b"),)
    assert changed.fields == ()
    assert "  subsection cpu/wfxt-timer: sent only by B (version 1)" in diff_layouts(a, b).lines()


def test_subsection_version_and_field_inside_a_subsection() -> None:
    a = section("cpu", subs=(vmsd("cpu/vfp", u32("fpscr"), version=3),))
    b = section("cpu", subs=(vmsd("cpu/vfp", u32("fpscr"), u32("fpcr"), version=4),))
    changed = only_section(layout(a), layout(b))
    assert changed.subsections == (SubsectionChange("cpu/vfp", 3, 4),)
    assert changed.fields == (FieldChange("cpu/vfp:fpcr", None, FieldShape("uint32", 4)),)


def test_struct_members_duplicates_and_indexed_elements() -> None:
    inner_a = vmsd("timer", u32("count"))
    inner_b = vmsd("timer", FieldDesc("count", "uint64", 8))
    a = section("dev", FieldDesc("t", "struct", 4, index=1, struct=inner_a),
                FieldDesc("unused", "buffer", 2), FieldDesc("unused", "buffer", 2))  # fmt: skip
    b = section("dev", FieldDesc("t", "struct", 4, index=1, struct=inner_b),
                FieldDesc("unused", "buffer", 2), FieldDesc("unused", "buffer", 3))  # fmt: skip
    changed = only_section(layout(a), layout(b))
    assert [c.path for c in changed.fields] == ["t[1].count", "unused#2"]


def test_cpregs_by_name_in_stream_order() -> None:
    a = layout(section("cpu"), cpregs=(SCTLR_EL1, ID_AA64ISAR0_EL1, TPIDRURW))
    b = layout(section("cpu"), cpregs=(SCTLR_EL1, 0x1234))
    diff = diff_layouts(a, b)
    assert [(s.name, s.changed) for s in diff.sections] == [("cpu", False)]
    assert diff.cpregs == (
        CpregDiff(0, 3, 2, ("ID_AA64ISAR0_EL1", "P15_0_C13_C0_2"), ("0x0000000000001234",)),
    )
    lines = diff.lines("10.0", "11.1")
    assert lines[:3] == [
        "[cpu 0] version 1",
        "  cpregs: 3 on 10.0, 2 on 11.1",
        "    only in 10.0 (2): ID_AA64ISAR0_EL1 P15_0_C13_C0_2",
    ]


def test_same_registers_in_another_order_are_no_difference() -> None:
    a = layout(section("cpu"), cpregs=(SCTLR_EL1, TPIDRURW))
    assert diff_layouts(a, layout(section("cpu"), cpregs=(TPIDRURW, SCTLR_EL1))).identical


def test_register_names() -> None:
    assert register_name(ID_AA64ISAR0_EL1) == "ID_AA64ISAR0_EL1"
    assert register_name(TPIDRURW) == "P15_0_C13_C0_2"
    assert register_name(0x6010_0000_0000_0000) == "0x6010000000000000"


def test_configuration_compared_only_when_both_describe_it() -> None:
    config_a = vmsd("configuration", u32("len"), FieldDesc("name", "buffer", 9))
    config_b = vmsd("configuration", u32("len"), FieldDesc("name", "buffer", 10))
    both = diff_layouts(Layout((), (), config_a), Layout((), (), config_b))
    assert [(s.name, [c.path for c in s.fields]) for s in both.sections] == [
        (CONFIGURATION, ["name"])
    ]
    one = diff_layouts(Layout((), ()), Layout((), (), config_b))
    assert one.identical
    assert one.notes == ("configuration record not compared: only B describes it "
                         "(QEMU 8.2 and later do)",)  # fmt: skip


def test_from_description_and_json() -> None:
    description = Description(
        offset=0, json_offset=5, page_size=4096, configuration=None, text="{}",
        devices=(DeviceDesc("timer", 0, vmsd("timer", u32("t"), version=2)),),
    )  # fmt: skip
    a = Layout.from_description(description)
    assert a.sections == (SectionLayout("timer", 0, 2, vmsd("timer", u32("t"), version=2)),)
    b = layout(section("timer", u32("t"), FieldDesc("u", "uint8", 1), version=3))
    data = json.loads(json.dumps(diff_layouts(a, b).to_json()))
    assert data["identical"] is False
    assert data["sections"][0]["a_version"] == 2
    assert data["sections"][0]["fields"] == [
        {"path": "u", "b_path": None, "kind": "only-b", "a": None,
         "b": {"type": "uint8", "size": 1, "count": None}},
    ]  # fmt: skip


def test_diff_is_frozen() -> None:
    diff = diff_layouts(layout(), layout())
    with pytest.raises(dataclasses.FrozenInstanceError):
        diff.common = 3  # type: ignore[misc]


def test_real_stream_against_itself_and_without_its_last_cpreg() -> None:
    stream = decode_file(SEED_STREAM)
    real = Layout.from_stream(stream)
    assert [s.name for s in real.sections][:2] == ["ram", "timer"]
    assert real.sections[0].vmsd is None  # ram is not in the description
    assert diff_layouts(real, real).identical
    cpu = real.cpregs[0]
    fewer = dataclasses.replace(real, cpregs=(CpuRegisters(0, cpu.kvm_ids[:-1]),))
    diff = diff_layouts(real, fewer)
    assert diff.cpregs == (
        CpregDiff(0, len(cpu.kvm_ids), len(cpu.kvm_ids) - 1, (register_name(cpu.kvm_ids[-1]),)),
    )
