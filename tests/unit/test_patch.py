"""The cpreg patch algebra and leaving out a subsection, without QEMU."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from fuzz.stream.decode import decode_stream
from fuzz.stream.description import locate_description
from fuzz.stream.patch import PatchAction, apply_patches, cpreg_differences, drop_subsections

tables = st.dictionaries(st.integers(0, 40), st.integers(0, 3), max_size=12)


@given(tables, tables)
def test_all_patches_turn_source_into_destination(src, dst) -> None:
    patched = apply_patches(src, cpreg_differences(src, dst))
    # Registers only the destination holds with value 0 are left out on purpose.
    assert patched == {k: v for k, v in dst.items() if k in src or v != 0}


@given(tables, tables)
def test_each_difference_is_one_patch_of_the_right_kind(src, dst) -> None:
    for p in cpreg_differences(src, dst):
        if p.action is PatchAction.SET:
            assert src[p.kvm_id] != dst[p.kvm_id]
        elif p.action is PatchAction.DROP:
            assert p.kvm_id in src and p.kvm_id not in dst
        else:
            assert p.kvm_id not in src and dst[p.kvm_id] != 0


def test_no_patches_for_equal_tables() -> None:
    assert cpreg_differences({1: 2, 3: 4}, {1: 2, 3: 4}) == []


SAMPLE = Path(__file__).parents[1] / "data" / "stream-11.1-max-virt-5.2.seed"


def test_a_dropped_subsection_leaves_a_stream_that_decodes_to_the_rest() -> None:
    """11.1's ``cpu/wfxt-timer`` left out, as for 10.0 (which aborts on it): the stream still
    decodes, without it, and every other field of every section keeps its value."""
    data = SAMPLE.read_bytes()
    stream = decode_stream(data)
    dropped = drop_subsections(data, stream, "cpu", {"cpu/wfxt-timer"})
    after = decode_stream(dropped)
    names = [sub.name for sub in after.section("cpu").subsections]
    assert names == [
        s.name for s in stream.section("cpu").subsections if s.name != "cpu/wfxt-timer"
    ]
    gone = stream.section("cpu").subsection("cpu/wfxt-timer")
    # The state's bytes lose exactly the subsection's; the description is rewritten.
    state = data[: gone.offset] + data[gone.end : locate_description(data).offset]
    assert dropped[: locate_description(dropped).offset] == state
    kept = dict(stream.flatten())
    assert dict(after.flatten()) == {k: v for k, v in kept.items() if "/cpu/wfxt-timer/" not in k}


def test_dropping_what_is_not_there_changes_nothing() -> None:
    data = SAMPLE.read_bytes()
    assert drop_subsections(data, decode_stream(data), "cpu", {"cpu/no-such"}) == data
