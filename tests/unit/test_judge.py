"""The one judge, without QEMU: verdict tables and the state oracle on a real stream.

Messages are QEMU's own (copied from corpus entries); streams are the committed real
sample in ``tests/data`` with one field patched, the way a destination that restored a
register differently would re-save it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz.core.outcome import Stage, StepOutcome, TransferOutcome, Verdict
from fuzz.errors import InvalidInput
from fuzz.judge.oracles import (
    Agree,
    ControlFailed,
    Divergence,
    Evidence,
    InvalidCase,
    judge,
    state_round_trip_oracle,
)
from fuzz.stream.compare import is_volatile, rule_path, same_saved_state
from fuzz.stream.decode import decode_stream
from fuzz.stream.patch import cpreg_table, rewrite_cpregs

SAMPLE = Path(__file__).parents[1] / "data" / "stream-11.1-max-virt-5.2.seed"
REFUSED_CPREG = (
    "handle_cpreg_only_in_incoming_stream: system register 0x1013c030 in the incoming stream "
    "but unknown on the destination: fail migration",
    "load of migration failed: Invalid argument: error while loading state for instance 0x0 "
    "of device 'cpu': post load hook failed for: cpu, version_id: 22, minimum_version: 22, "
    "ret: -1",
)
ASSERTION = (
    "migration/vmstate.c:172: vmstate_load_state: Assertion `first_elem || !n_elems || "
    "!size' failed.",
)


def step(stage: Stage, verdict: Verdict, messages=(), returncode=None, **details) -> StepOutcome:
    return StepOutcome(stage, "x", verdict, tuple(messages), returncode, details=details)


SAVED = step(Stage.SAVE, Verdict.COMPLETED)
LOADED = step(Stage.LOAD, Verdict.COMPLETED)


def transfer(dst: str, load: StepOutcome | None, save: StepOutcome = SAVED) -> TransferOutcome:
    return TransferOutcome("10.0", dst, save, load)


def evidence(control_load, pair_load, *, save=SAVED, resaves=(None, None)) -> Evidence:
    return Evidence(
        transfer("10.0", control_load, save), transfer("11.1", pair_load, save), *resaves
    )


@pytest.mark.parametrize(
    ("control", "pair", "expected"),
    [
        (LOADED, LOADED, Agree),
        (step(Stage.LOAD, Verdict.SETUP_ERROR, ["no such machine"]), LOADED, InvalidCase),
        # A -> A that QEMU refused, crashed or hung: a same-version finding.
        (step(Stage.LOAD, Verdict.REFUSED, REFUSED_CPREG, 1), LOADED, Divergence),
        (step(Stage.LOAD, Verdict.CRASHED, ASSERTION, -6), LOADED, Divergence),
        (step(Stage.LOAD, Verdict.HUNG), LOADED, Divergence),
        (step(Stage.LOAD, Verdict.NOT_RUN), LOADED, ControlFailed),
        (LOADED, step(Stage.LOAD, Verdict.SETUP_ERROR, ["unknown cpu"]), InvalidCase),
        (LOADED, step(Stage.LOAD, Verdict.REFUSED, REFUSED_CPREG, 1), Divergence),
        (LOADED, step(Stage.LOAD, Verdict.CRASHED, ASSERTION, -6), Divergence),
        (LOADED, step(Stage.LOAD, Verdict.HUNG), Divergence),
        (LOADED, step(Stage.LOAD, Verdict.NOT_RUN), Divergence),
    ],
)
def test_verdict_table(control, pair, expected) -> None:
    assert type(judge(evidence(control, pair))) is expected


def test_a_failed_control_is_judged_before_the_pair() -> None:
    # The pair was not run because the control failed: a same-version finding, never the
    # pair's divergence.
    bad = step(Stage.LOAD, Verdict.CRASHED, ASSERTION, -6)
    judgement = judge(evidence(bad, step(Stage.LOAD, Verdict.NOT_RUN)))
    assert isinstance(judgement, Divergence)
    assert judgement.signature.kind == "same-version-crashed-on-load"


def test_a_failed_save_is_invalid_not_a_divergence() -> None:
    save = step(Stage.SAVE, Verdict.SETUP_ERROR, ["guest did not reach its checkpoint"])
    assert isinstance(judge(evidence(None, None, save=save)), InvalidCase)


@pytest.mark.parametrize(
    ("pair", "signature"),
    [
        (
            step(Stage.LOAD, Verdict.REFUSED, REFUSED_CPREG, 1),
            "refused-on-load: cpreg only in incoming stream: ID_AA64ISAR0_EL1",
        ),
        (
            step(
                Stage.LOAD,
                Verdict.CRASHED,
                ASSERTION,
                -6,
                load_path={"last_field": "cpu/wfxt-timer:wfxt_timer"},
            ),
            "crashed-on-load: assertion in vmstate_load_state: first_elem || !n_elems || !size"
            " after cpu/wfxt-timer:wfxt_timer",
        ),
        (step(Stage.LOAD, Verdict.HUNG, ["restore did not finish in time"]), "hung-on-load"),
        # A section refused before its first field: the last field loaded is the previous
        # section's, which depends on the configuration, so it is left out...
        (
            step(
                Stage.LOAD,
                Verdict.REFUSED,
                ["savevm: unsupported version 2 for '0000:00:03.0/virtio-iommu' v1"],
                1,
                load_path={"last_field": "arm_gicv3/gicd_no_migration_shift_bug:x"},
            ),
            "refused-on-load: savevm: unsupported version N for 'virtio-iommu' v1",
        ),
        # ... while a field of the section named says where in it loading stopped.
        (
            step(
                Stage.LOAD,
                Verdict.REFUSED,
                ["error while loading state for instance 0x0 of device 'cpu'"],
                1,
                load_path={"last_field": "cpu/irq-line-state:env.irq_line_state"},
            ),
            "refused-on-load: error loading device 'cpu'"
            " after cpu/irq-line-state:env.irq_line_state",
        ),
        # 10.2 puts the errno's text first and says which check failed: the same cause.
        (
            step(
                Stage.LOAD,
                Verdict.REFUSED,
                ["load of migration failed: Operation not permitted: error while loading "
                 "state for instance 0x0 of device 'cpu': post load hook failed for: cpu, "
                 "version_id: 22, minimum_version: 22, ret: -1"],
                1,
                load_path={"last_field": "cpu/irq-line-state:env.irq_line_state"},
            ),
            "refused-on-load: error loading device 'cpu': post load hook failed for: cpu,"
            " version_id: N, minimum_version: N, ret: -N"
            " after cpu/irq-line-state:env.irq_line_state",
        ),
        # A subsection's name is a name, not a file's path.
        (
            step(
                Stage.LOAD,
                Verdict.REFUSED,
                ["load of migration failed: No such file or directory: error while loading "
                 "state for instance 0x0 of device 'cpu': VM subsection 'cpu/fpmr' in 'cpu' "
                 "does not exist"],
                1,
            ),
            "refused-on-load: error loading device 'cpu': VM subsection 'cpu/fpmr' in 'cpu'"
            " does not exist",
        ),
    ],
)  # fmt: skip
def test_signatures_of_real_messages(pair, signature) -> None:
    judgement = judge(evidence(LOADED, pair))
    assert isinstance(judgement, Divergence)
    assert str(judgement.signature) == signature


def test_control_and_pair_must_share_their_source() -> None:
    other = TransferOutcome("7.2", "11.1", SAVED, LOADED)
    with pytest.raises(InvalidInput):
        judge(Evidence(transfer("10.0", LOADED), other))


def test_transcripts_are_judged_against_the_control_not_the_source() -> None:
    # The epilogue prints the same thing after both restores: no divergence, whatever the
    # source printed before its checkpoint.
    same = step(Stage.LOAD, Verdict.COMPLETED, transcript="x1=0x1\nSCTLR_EL1=0x30d0198d\n")
    assert isinstance(judge(evidence(same, same)), Agree)
    other = step(Stage.LOAD, Verdict.COMPLETED, transcript="x1=0x1\nSCTLR_EL1=0x30d0198c\n")
    judgement = judge(evidence(same, other))
    assert isinstance(judgement, Divergence)
    assert str(judgement.signature) == "state: guest read-back differs: SCTLR_EL1"


# -- the state round-trip oracle ---------------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> bytes:
    return SAMPLE.read_bytes()


def _patched(data: bytes, flip: int = 1) -> tuple[bytes, str]:
    """``data`` with one non-zero cpreg value changed; returns it and the register's path."""
    stream = decode_stream(data)
    table = cpreg_table(stream)
    key = next(k for k, v in sorted(table.items()) if v not in (0, flip))
    return rewrite_cpregs(data, stream, {**table, key: table[key] ^ flip}), str(key)


def test_identical_resaves_agree(sample) -> None:
    assert state_round_trip_oracle(evidence(LOADED, LOADED, resaves=(sample, sample))) is None


def test_a_field_the_pair_restored_differently_is_a_state_divergence(sample) -> None:
    changed, _key = _patched(sample)
    found = state_round_trip_oracle(evidence(LOADED, LOADED, resaves=(sample, changed)))
    assert found is not None
    assert found.signature.kind == "state"
    assert found.signature.detail.startswith("restored state differs: cpu/cpreg/")
    [change] = found.details["state"]["changed"]
    assert change["before"] != change["after"]
    # The same through the judge, and the other way round (control differs, pair not).
    assert isinstance(judge(evidence(LOADED, LOADED, resaves=(changed, sample))), Divergence)


def test_state_is_only_judged_when_both_resaves_exist(sample) -> None:
    changed, _ = _patched(sample)
    assert state_round_trip_oracle(evidence(LOADED, LOADED, resaves=(sample, None))) is None
    assert state_round_trip_oracle(evidence(LOADED, LOADED, resaves=(None, changed))) is None


def test_an_undecodable_resave_is_no_finding(sample) -> None:
    truncated = sample[: len(sample) // 3]
    assert state_round_trip_oracle(evidence(LOADED, LOADED, resaves=(sample, truncated))) is None


def test_ram_pass_breaks_do_not_count() -> None:
    page = b"\x00\x00\x00\x00\x00\x00\x04\x22\x00"
    pass_break = b"\x00" * 7 + b"\x10" + b"\x7e\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x01"
    one_pass = b"QEVM" + page * 4 + b"\x00" * 7 + b"\x10"
    two_passes = b"QEVM" + page * 2 + pass_break + page * 2 + b"\x00" * 7 + b"\x10"
    assert same_saved_state(one_pass, two_passes)
    assert not same_saved_state(one_pass, two_passes.replace(b"\x22\x00", b"\x22\x01", 1))
    # A break between different sections is content, not framing.
    other = pass_break.replace(b"\x02\x00\x00\x00\x01", b"\x02\x00\x00\x00\x02")
    assert not same_saved_state(one_pass, b"QEVM" + page * 2 + other + page * 2 + page[:0])


@pytest.mark.parametrize(
    ("path", "rule", "volatile"),
    [
        ("cpu/0/env.xregs[2]", "cpu/env.xregs", False),
        ("cpu/1/cpreg/SCTLR_EL1", "cpu/cpreg/SCTLR_EL1", False),
        ("timer/0/cpu_clock_offset", "timer/cpu_clock_offset", True),
        ("timer/0/cpu_ticks_offset", "timer/cpu_ticks_offset", True),
        ("arm_gic/0/irq_state[3].pending", "arm_gic/irq_state.pending", False),
    ],
)
def test_field_rules(path, rule, volatile) -> None:
    assert rule_path(path) == rule
    assert is_volatile(path) is volatile


def test_the_resaving_process_run_state_does_not_count() -> None:
    header = b"\x04\x00\x00\x00\x09\x0bglobalstate" + bytes(8)
    prelaunch = header + (10).to_bytes(4, "big") + b"prelaunch".ljust(100, b"\x00")
    paused = header + (7).to_bytes(4, "big") + b"paused".ljust(100, b"\x00")
    tail = b"\x00" * 8 + b"\x10"
    assert same_saved_state(b"QEVM" + prelaunch + tail, b"QEVM" + paused + tail)
    assert not same_saved_state(b"QEVM" + prelaunch + tail, b"QEVM" + paused + b"\x01" + tail[1:])


# -- same version: A -> A against what A saved ---------------------------------------------

PRE_SAVE = "el=0x1\nz3=0x11111111\nCNTV_TVAL_EL0=0x500\n@@MIGFUZZ-CHECKPOINT@@\n"


def _with_console(console: str) -> StepOutcome:
    return step(Stage.SAVE, Verdict.COMPLETED, console=console)


def test_a_control_that_reads_back_other_values_than_it_saved_is_a_same_version_finding() -> None:
    # The Z-register bug: at 2048 bits the top half comes back zero on the same version.
    truncated = step(Stage.LOAD, Verdict.COMPLETED, transcript="el=0x1\nz3=0x11110000\n")
    judgement = judge(evidence(truncated, truncated, save=_with_console(PRE_SAVE)))
    assert isinstance(judgement, Divergence)
    assert str(judgement.signature) == "same-version-state: guest read-back differs: z*"


def test_timers_and_items_printed_once_are_not_a_same_version_finding() -> None:
    # The timer counts down between the save and the read-back; an item printed only on
    # one side says nothing about what was restored.
    later = step(Stage.LOAD, Verdict.COMPLETED,
                 transcript="el=0x1\nz3=0x11111111\nCNTV_TVAL_EL0=0x3\nx5=0x0\n")  # fmt: skip
    assert isinstance(judge(evidence(later, later, save=_with_console(PRE_SAVE))), Agree)


def test_a_control_that_restored_a_field_differently_than_saved_is_a_same_version_finding(
    sample,
) -> None:
    changed, _ = _patched(sample)
    both = evidence(LOADED, LOADED, resaves=(changed, changed))
    same = Evidence(both.control, both.pair, changed, changed, source_stream=sample)
    judgement = judge(same)
    assert isinstance(judgement, Divergence)
    assert judgement.signature.kind == "same-version-state"
    assert judgement.signature.detail.startswith("restored state differs: cpu/cpreg/")
    # Saved and restored alike (the pair's re-save aside): nothing of the same version.
    clean = Evidence(both.control, both.pair, sample, sample, source_stream=sample)
    assert isinstance(judge(clean), Agree)
    # Without the source's stream (a long-lived source) the oracle says nothing.
    assert isinstance(judge(Evidence(both.control, both.pair, changed, changed)), Agree)
