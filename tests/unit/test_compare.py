"""The state round trip judged against the control, without QEMU, on a real 11.1 stream.

The stream is the committed sample (``tests/data``: QEMU 11.1, ``max`` on ``virt-5.2``,
saved paused at reset). A "re-save" that restored something differently is that stream
with one field patched, the way a destination would re-save it. The rules are the
README's: every field both re-saves have must agree; a field only one side has is not a
divergence; ``VOLATILE_FIELDS`` (the VM clock's host offsets, ``globalstate``) never count.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz.core.outcome import Stage, StepOutcome, TransferOutcome, Verdict
from fuzz.judge.oracles import Evidence, Signature, state_round_trip_oracle
from fuzz.stream.compare import (
    FieldChange,
    StreamDiff,
    _compare_maps,
    compare_resaves,
    compare_streams,
    is_volatile,
    rule_path,
    same_saved_state,
    state_map,
)
from fuzz.stream.decode import decode_stream
from fuzz.stream.patch import cpreg_table, rewrite_cpregs

SAMPLE = Path(__file__).parents[1] / "data" / "stream-11.1-max-virt-5.2.seed"
TPIDR_EL0 = 0x603000000013DE82  # KVM ids: 0x6030_0000_0013 << 16 | op0:op1:CRn:CRm:op2
SCTLR_EL1 = 0x603000000013C080
# The timer section's payload (QEMU's vmstate_timers): cpu_ticks_offset, 8 unused bytes,
# cpu_clock_offset, each 8 bytes, right after the section header.
TIMER_HEADER = b"\x05timer\x00\x00\x00\x00\x00\x00\x00\x02"


@pytest.fixture(scope="module")
def sample() -> bytes:
    return SAMPLE.read_bytes()


@pytest.fixture(scope="module")
def table(sample: bytes) -> dict[int, int]:
    return cpreg_table(decode_stream(sample))


def with_cpregs(sample: bytes, table: dict[int, int]) -> bytes:
    return rewrite_cpregs(sample, decode_stream(sample), table)


def with_timer(sample: bytes, field: int, value: int) -> bytes:
    """``sample`` with timer payload word ``field`` (0 ticks, 1 unused, 2 clock) set."""
    at = sample.index(TIMER_HEADER) + len(TIMER_HEADER) + 8 * field
    return sample[:at] + value.to_bytes(8, "big") + sample[at + 8 :]


def evidence(control: bytes | None, pair: bytes | None) -> Evidence:
    save = StepOutcome(Stage.SAVE, "11.1", Verdict.COMPLETED)
    load = StepOutcome(Stage.LOAD, "11.1", Verdict.COMPLETED)
    return Evidence(
        TransferOutcome("11.1", "11.1", save, load),
        TransferOutcome("11.1", "10.0", save, load),
        control,
        pair,
    )


# -- what is compared --------------------------------------------------------------------


def test_the_state_map_of_a_real_stream(sample: bytes) -> None:
    leaves = state_map(decode_stream(sample))
    # cpregs by name, never as positional arrays; SCTLR_EL1 at the architecture's reset value.
    assert leaves["cpu/0/cpreg/SCTLR_EL1"] == "0xc50838"
    assert leaves["cpu/0/cpreg/TPIDR_EL0"] == "0x0"
    assert not [p for p in leaves if "cpreg_vmstate" in p]
    # One digest per RAM block (this sample has its pages cut: every block hashes alike).
    ram = {p: v for p, v in leaves.items() if p.startswith("ram/")}
    assert set(ram) >= {"ram/mach-virt.ram", "ram/virt.flash0", "ram/virt.flash1"}
    assert len(set(ram.values())) == 1 and len(ram["ram/mach-virt.ram"]) == 32
    # Integers in hex, booleans as words, short buffers in hex, long ones cut.
    assert leaves["timer/0/cpu_clock_offset"] == "0x0"
    assert leaves["timer/0/unused"] == "0000000000000000"
    assert leaves["cpu/0/power_state"] == "false"
    assert leaves["arm_gic/0/irq_state[0].edge_trigger"] == "true"
    assert leaves["globalstate/0/size"] == "0xa"  # len("prelaunch") + 1
    # 11.1 splits the old 100-byte run-state buffer: 32 bytes, two flags, 66 unused.
    assert leaves["globalstate/0/runstate"] == b"prelaunch".ljust(32, b"\x00").hex()
    assert leaves["globalstate/0/unused"] == f"66 bytes {bytes(16).hex()}..."
    assert leaves["configuration/name"] == b"virt-5.2".hex()


def swapped(table: dict[int, int], old: int, new: int, value: int | None = None):
    """``table`` with register ``old`` replaced by ``new`` (the array keeps its length)."""
    return {
        (new if k == old else k): (v if value is None or k != old else value)
        for k, v in table.items()
    }


def test_a_register_no_decoder_knows_keeps_its_id(sample: bytes, table) -> None:
    leaves = state_map(decode_stream(with_cpregs(sample, swapped(table, TPIDR_EL0, 0x1234, 5))))
    assert leaves["cpu/0/cpreg/0x1234"] == "0x5"
    assert "cpu/0/cpreg/TPIDR_EL0" not in leaves


@pytest.mark.parametrize(
    ("path", "rule", "volatile"),
    [
        ("timer/0/cpu_clock_offset", "timer/cpu_clock_offset", True),
        ("timer/cpu_ticks_offset", "timer/cpu_ticks_offset", True),
        ("timer/0/unused", "timer/unused", False),
        ("timer/0/cpu_clock_offset_2", "timer/cpu_clock_offset_2", False),
        ("cpu/0/timer/cpu_clock_offset", "cpu/timer/cpu_clock_offset", False),
        ("globalstate/0/runstate", "globalstate/runstate", True),
        ("globalstate/0/unused", "globalstate/unused", True),
        ("cpu/0/globalstate/x", "cpu/globalstate/x", False),
        ("cpu/12/cpreg/SCTLR_EL1", "cpu/cpreg/SCTLR_EL1", False),
        ("cpu/0", "cpu", False),
        ("ram/mach-virt.ram", "ram/mach-virt.ram", False),
        ("arm_gic/0/irq_state[31].pending[2]", "arm_gic/irq_state.pending", False),
        ("0000:00:00.0/0/config", "0000:00:00.0/config", False),
        ("cpu/x0/env", "cpu/x0/env", False),
        ("0000:00:12.0/virtio-console/0/virtio", "virtio-console/virtio", False),
        ("virtio-mmio@000000000a003c00/virtio-rng/0/virtio", "virtio-rng/virtio", False),
        (
            "0000:00:02.0/pcie-root-port/0/parent_obj.config[4]",
            "pcie-root-port/parent_obj.config",
            False,
        ),
    ],
)
def test_field_rules(path: str, rule: str, volatile: bool) -> None:
    assert rule_path(path) == rule
    assert FieldChange(path, "0x0", "0x1").rule_path == rule
    assert is_volatile(path) is volatile


def test_a_stream_diff() -> None:
    empty = StreamDiff()
    assert empty.identical and empty.to_json() == {
        "compared": 0,
        "changed": [],
        "only_before": [],
        "only_after": [],
    }
    diff = StreamDiff((FieldChange("cpu/0/x", "0x0", "0x1"),), ("a",), ("b",), 7, ("note",))
    assert not diff.identical
    assert diff.to_json() == {
        "compared": 7,
        "changed": [{"path": "cpu/0/x", "before": "0x0", "after": "0x1"}],
        "only_before": ["a"],
        "only_after": ["b"],
    }
    # Fields only one side has do not make two states differ.
    assert StreamDiff((), ("a",), ("b",), 7).identical


# -- the diff of two streams -------------------------------------------------------------


def test_a_stream_compared_with_itself(sample: bytes) -> None:
    stream = decode_stream(sample)
    diff = compare_streams(stream, stream)
    assert diff.identical and diff.only_before == () and diff.only_after == ()
    assert diff.compared == len(state_map(stream))


def test_one_register_restored_differently(sample: bytes, table) -> None:
    changed = with_cpregs(sample, {**table, SCTLR_EL1: 0x30D0198D})
    diff = compare_streams(decode_stream(sample), decode_stream(changed))
    assert diff.changed == (FieldChange("cpu/0/cpreg/SCTLR_EL1", "0xc50838", "0x30d0198d"),)
    assert diff.compared == len(state_map(decode_stream(sample)))


def test_a_register_only_one_side_has(sample: bytes, table) -> None:
    # TPIDR_EL0 only before, an id no CPU has only after.
    other = with_cpregs(sample, swapped(table, TPIDR_EL0, 0x1234))
    before, after = decode_stream(sample), decode_stream(other)
    diff = compare_streams(before, after)
    assert diff.only_before == ("cpu/0/cpreg/TPIDR_EL0",)
    assert diff.only_after == ("cpu/0/cpreg/0x1234",)
    assert diff.identical
    assert diff.compared == len(state_map(before)) - 1
    back = compare_streams(after, before)
    assert back.only_after == ("cpu/0/cpreg/TPIDR_EL0",)
    assert back.only_before == ("cpu/0/cpreg/0x1234",)


# -- the re-saves judged against the control ---------------------------------------------


def test_volatile_fields_are_left_out_of_the_resaves_diff(sample: bytes, table) -> None:
    clocks = with_timer(with_timer(sample, 0, 12345), 2, 67890)
    diff = compare_resaves(sample, clocks)
    assert diff.identical
    assert diff.compared == len(state_map(decode_stream(sample)))
    assert state_round_trip_oracle(evidence(sample, clocks)) is None
    # ... but nothing else is: the unused word between them is compared.
    unused = with_timer(sample, 1, 1)
    assert [c.path for c in compare_resaves(sample, unused).changed] == ["timer/0/unused"]
    both = with_cpregs(clocks, {**table, SCTLR_EL1: 0x30D0198D})
    assert [c.path for c in compare_resaves(sample, both).changed] == ["cpu/0/cpreg/SCTLR_EL1"]


def test_a_field_the_pair_alone_changed(sample: bytes, table) -> None:
    pair = with_cpregs(sample, {**table, SCTLR_EL1: 0x30D0198D})
    found = state_round_trip_oracle(evidence(sample, pair))
    assert found is not None
    assert found.signature == Signature("state", "restored state differs: cpu/cpreg/SCTLR_EL1")
    assert found.details["src"] == "11.1" and found.details["dst"] == "10.0"
    assert found.details["state"]["changed"] == [
        {"path": "cpu/0/cpreg/SCTLR_EL1", "before": "0xc50838", "after": "0x30d0198d"}
    ]
    assert found.details["state"]["compared"] == len(state_map(decode_stream(sample)))


def test_a_field_the_control_alone_changed(sample: bytes, table) -> None:
    control = with_cpregs(sample, {**table, SCTLR_EL1: 0x30D0198D})
    found = state_round_trip_oracle(evidence(control, sample))
    assert found is not None
    assert found.details["state"]["changed"] == [
        {"path": "cpu/0/cpreg/SCTLR_EL1", "before": "0x30d0198d", "after": "0xc50838"}
    ]


def test_a_field_both_changed_alike_is_no_divergence(sample: bytes, table) -> None:
    both = with_cpregs(sample, {**table, SCTLR_EL1: 0x30D0198D})
    assert state_round_trip_oracle(evidence(both, both)) is None
    # Both changed it, differently: a divergence.
    other = with_cpregs(sample, {**table, SCTLR_EL1: 0x30D0198C})
    found = state_round_trip_oracle(evidence(both, other))
    assert found is not None and found.signature.detail.endswith("cpu/cpreg/SCTLR_EL1")


def test_a_field_only_one_resave_has_is_no_divergence(sample: bytes, table) -> None:
    without = with_cpregs(sample, swapped(table, TPIDR_EL0, 0x1234))
    assert state_round_trip_oracle(evidence(sample, without)) is None
    assert state_round_trip_oracle(evidence(without, sample)) is None


def test_many_fields_are_named_by_rule_four_at_most(sample: bytes, table) -> None:
    names = sorted(table)[:6]
    pair = with_cpregs(sample, {k: v ^ 1 if k in names else v for k, v in table.items()})
    found = state_round_trip_oracle(evidence(sample, pair))
    assert found is not None
    fields = sorted(c["path"].replace("cpu/0/", "cpu/") for c in found.details["state"]["changed"])
    assert len(fields) == 6
    assert found.signature.detail == (f"restored state differs: {', '.join(fields[:4])} (+2 more)")
    five = with_cpregs(sample, {k: v ^ 1 if k in names[:5] else v for k, v in table.items()})
    found = state_round_trip_oracle(evidence(sample, five))
    assert found is not None and found.signature.detail.endswith(" (+1 more)")
    four = with_cpregs(sample, {k: v ^ 1 if k in names[:4] else v for k, v in table.items()})
    found = state_round_trip_oracle(evidence(sample, four))
    assert found is not None and found.signature.detail.count(",") == 3
    assert "more" not in found.signature.detail


def test_no_resave_or_an_undecodable_one_tells_nothing(sample: bytes, table) -> None:
    pair = with_cpregs(sample, {**table, SCTLR_EL1: 0x30D0198D})
    assert state_round_trip_oracle(evidence(None, pair)) is None
    assert state_round_trip_oracle(evidence(sample, None)) is None
    assert state_round_trip_oracle(evidence(sample, pair[:-100])) is None
    assert state_round_trip_oracle(evidence(b"QEVM", pair)) is None


# -- the byte-level shortcut -------------------------------------------------------------

PAGE = b"\x00\x00\x00\x00\x00\x00\x04\x22\x00"
# RAM's EOS word, the section footer of section 1, a PART header of section 1: 18 bytes.
PASS_BREAK = b"\x00" * 7 + b"\x10" + b"\x7e\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x01"


def globalstate(state: bytes, tail: bytes = b"") -> bytes:
    header = b"\x04\x00\x00\x00\x09\x0bglobalstate" + bytes(8)
    return header + (len(state) + 1).to_bytes(4, "big") + state.ljust(100, b"\x00") + tail


def test_same_saved_state(sample: bytes, table) -> None:
    assert same_saved_state(sample, sample)
    assert same_saved_state(b"", b"")
    assert not same_saved_state(sample, with_timer(sample, 2, 1))
    one_pass = b"QEVM" + PAGE * 4 + b"\x00" * 7 + b"\x10"
    two = b"QEVM" + PAGE * 2 + PASS_BREAK + PAGE * 2 + b"\x00" * 7 + b"\x10"
    three = b"QEVM" + PAGE + PASS_BREAK + PAGE * 2 + PASS_BREAK + PAGE + b"\x00" * 7 + b"\x10"
    assert same_saved_state(one_pass, two) and same_saved_state(two, three)
    assert same_saved_state(three, one_pass)
    # A length that no number of pass breaks explains is a different state.
    assert not same_saved_state(one_pass, one_pass + b"\x00")
    assert not same_saved_state(one_pass, one_pass + bytes(36 + 1))
    # Equal lengths, a byte apart.
    assert not same_saved_state(one_pass, one_pass[:-1] + b"\x11")


def test_the_run_state_of_the_resaving_process_does_not_count() -> None:
    tail = b"\x00" * 8 + b"\x10"
    prelaunch = b"QEVM" + globalstate(b"prelaunch", tail)
    postmigrate = b"QEVM" + globalstate(b"postmigrate", tail)
    assert same_saved_state(prelaunch, postmigrate)
    # Only the 104 bytes of its payload: a byte right after it counts.
    assert not same_saved_state(prelaunch, b"QEVM" + globalstate(b"paused", b"\x01" + tail[1:]))
    # The section header before it counts too.
    other_header = postmigrate.replace(
        b"\x0bglobalstate" + bytes(8), b"\x0bglobalstate" + bytes(7) + b"\x01"
    )
    assert not same_saved_state(prelaunch, other_header)
    # Its section name may open the data.
    assert same_saved_state(globalstate(b"prelaunch")[5:], globalstate(b"paused")[5:])
    # The last globalstate section is the one blanked.
    twice = b"QEVM" + globalstate(b"a") + globalstate(b"prelaunch", tail)
    twice_other = b"QEVM" + globalstate(b"a") + globalstate(b"paused", tail)
    assert same_saved_state(twice, twice_other)


def test_bytes_of_another_length_are_compared_only_within_one_versions_layout() -> None:
    control = {
        "dev/0/virtio": "81 bytes 00000000000000000000000000000000...",
        "dev/0/mac": "0a0b",
        "dev/0/n": "0x1",
        "dev/0/tag": "0a0b0c",
    }
    pair = {
        "dev/0/virtio": "4198 bytes 00000000000000000000000000000000...",
        "dev/0/mac": "0a0c",
        "dev/0/n": "0x22",
        "dev/0/tag": "0a0b",
    }
    same = _compare_maps(control, pair)
    assert [c.path for c in same.changed] == list(control)
    across = _compare_maps(control, pair, formats_differ=True)
    assert [c.path for c in across.changed] == ["dev/0/mac", "dev/0/n"]
    assert across.notes == (
        "dev/0/virtio: 81 vs 4198 bytes in two versions' layouts",
        "dev/0/tag: 3 vs 2 bytes in two versions' layouts",
    )


def test_a_huge_array_of_numbers_is_one_leaf_and_still_compared() -> None:
    """raspi4b's dwc2 FIFO (524,288 words) made a million leaves per stream."""
    from fuzz.stream.model import LARGE_ARRAY, Field, Section, SectionKind, _flatten_container

    def section(fifo: tuple[int, ...]) -> Section:
        fields = (
            Field("fifo", "uint32", 0, 4 * len(fifo), fifo, 4, count=len(fifo)),
            Field("small", "uint32", 0, 8, (1, 2), 4, count=2),
        )
        return Section(SectionKind.FULL, "dwc2", 0, 1, 1, 0, 0, 0, 0, fields)

    big = tuple(range(LARGE_ARRAY + 1))
    leaves = dict(_flatten_container(section(big), "dwc2/0/"))
    assert list(leaves) == ["dwc2/0/fifo", "dwc2/0/small[0]", "dwc2/0/small[1]"]
    changed = dict(_flatten_container(section((*big[:-1], 7)), "dwc2/0/"))
    assert changed["dwc2/0/fifo"] != leaves["dwc2/0/fifo"]
    assert len(dict(_flatten_container(section(big[:LARGE_ARRAY]), "dwc2/0/"))) == LARGE_ARRAY + 2


def test_an_array_described_element_by_element_is_named_by_place_whatever_the_indices() -> None:
    """The GICv3's ``cpu`` array of 4: 10.0 described its elements with indices 0, 1, 2 and
    none for the last, 11.1 with none; named by those, 10.0's CPU 3 met 11.1's CPU 0 and a
    PMR written on one CPU was a 'restored state differs' on every 10.0 -> 11.1 load."""
    from fuzz.stream.model import Field, Section, SectionKind, Struct, _flatten_container

    def gic(indices: tuple[int | None, ...]) -> Section:
        cpus = tuple(
            Field("cpu", "struct", 0, 4, Struct("arm_gicv3_cpu", 0, 4, (
                Field("icc_pmr_el1", "uint64", 0, 8, pmr, 8),
            )), 4, index=index)
            for index, pmr in zip(indices, (6, 0, 0, 0), strict=True)
        )  # fmt: skip
        return Section(SectionKind.FULL, "arm_gicv3", 0, 1, 1, 0, 0, 0, 0, cpus)

    old = dict(_flatten_container(gic((0, 1, 2, None)), "arm_gicv3/0/"))
    new = dict(_flatten_container(gic((None, None, None, None)), "arm_gicv3/0/"))
    assert old == new
    assert old["arm_gicv3/0/cpu[0].icc_pmr_el1"] == 6
    assert list(old)[-1] == "arm_gicv3/0/cpu[3].icc_pmr_el1"
