"""The cpreg patch algebra, without QEMU."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fuzz.stream.patch import PatchAction, apply_patches, cpreg_differences

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
