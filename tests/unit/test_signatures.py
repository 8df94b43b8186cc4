"""Signatures from QEMU's own error lines, without QEMU: normalization and the step signature.

Every message below is one that a QEMU of the farm printed (copied from the committed
corpus entries, ``corpus/*/outcome.json``), grouped by the version that printed it. The
expected forms follow the README's definition of a signature: what went wrong, with no
addresses, pids, temp paths or timings, and register names instead of raw ids.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from fuzz.core.outcome import Stage, StepOutcome, TransferOutcome, Verdict
from fuzz.errors import CorpusError
from fuzz.judge.oracles import (
    AGREE,
    SAME_VERSION,
    Divergence,
    Signature,
    normalize_message,
    step_causes,
    step_signature,
)
from fuzz.judge.past_refusal import PastRefusal

CORPUS = Path(__file__).parents[2] / "corpus"
ENTRIES = sorted(p for p in CORPUS.iterdir() if (p / "outcome.json").exists())

# QEMU 11.1 (Debian 1:11.1.3), refusing a 5.2/7.2/10.0 stream: one line per register.
ONLY_ISAR0 = (
    "handle_cpreg_only_in_incoming_stream: system register 0x1013c030 in the incoming stream "
    "but unknown on the destination: fail migration"
)
ONLY_CNTHP = ONLY_ISAR0.replace("0x1013c030", "0x1013e710")
MISSING_CNTHP = (
    "handle_cpreg_missing_in_incoming_stream: system register 0x1013e710 expected by the "
    "destination but not in the incoming stream: skip it"
)
POST_LOAD_11 = (
    "load of migration failed: Invalid argument: error while loading state for instance 0x0 "
    "of device 'cpu': post load hook failed for: cpu, version_id: 22, minimum_version: 22, "
    "ret: -1"
)
DEPRECATED_52 = (
    "warning: Machine type 'virt-5.2' is deprecated: machines more than 3 years old are "
    "subject to deletion after 6 years"
)
# QEMU 10.0 (Debian 1:10.0), crashing on an 11.1 stream.
ASSERTION_10 = (
    "migration/vmstate.c:172: vmstate_load_state: Assertion `first_elem || !n_elems || "
    "!size' failed."
)
# QEMU 7.2 (Debian 1:7.2), refusing a 5.2 stream.
DEVICE_CPU_72 = "error while loading state for instance 0x0 of device 'cpu'"
EPERM_72 = "load of migration failed: Operation not permitted"
# QEMU 5.2 (Debian 1:5.2), refusing a 7.2 and an 11.1 stream.
GICV3_52 = "Failed to load arm_gicv3:cpu"
DEVICE_GIC_52 = "error while loading state for instance 0x0 of device 'arm_gicv3'"
ENOENT_52 = "load of migration failed: No such file or directory"
INVALID_VALUE_52 = "Invalid value 274 expecting positive value <= 228"
ARRAY_LEN_52 = "Failed to load cpu:cpreg_vmstate_array_len"
EINVAL_52 = "load of migration failed: Invalid argument"


@pytest.mark.parametrize(
    ("line", "normalized"),
    [
        # 11.1
        (ONLY_ISAR0, "cpreg only in incoming stream: ID_AA64ISAR0_EL1"),
        (ONLY_CNTHP, "cpreg only in incoming stream: CNTHP_TVAL_EL2"),
        (MISSING_CNTHP, "cpreg missing from incoming stream: CNTHP_TVAL_EL2"),
        # The errno's text before the error goes: 5.2-10.0 say the same without it.
        (
            POST_LOAD_11,
            "error loading device 'cpu': post load hook failed for: cpu, "
            "version_id: N, minimum_version: N, ret: -N",
        ),
        # A version inside a name stays; counts become N.
        (
            DEPRECATED_52,
            "warning: Machine type 'virt-5.2' is deprecated: machines more than N years old "
            "are subject to deletion after N years",
        ),
        # 10.0
        (ASSERTION_10, "assertion in vmstate_load_state: first_elem || !n_elems || !size"),
        # 7.2
        (DEVICE_CPU_72, "error loading device 'cpu'"),
        (EPERM_72, "Operation not permitted"),
        # 5.2
        (GICV3_52, "Failed to load arm_gicv3:cpu"),
        (DEVICE_GIC_52, "error loading device 'arm_gicv3'"),
        (ENOENT_52, "No such file or directory"),
        (INVALID_VALUE_52, "Invalid value N expecting positive value <= N"),
        (ARRAY_LEN_52, ARRAY_LEN_52),
        (EINVAL_52, "Invalid argument"),
    ],
)
def test_real_messages_normalize(line: str, normalized: str) -> None:
    assert normalize_message(line) == normalized
    # Surrounding blanks (a console line) change nothing.
    assert normalize_message(f"  {line}\t") == normalized


@pytest.mark.parametrize(
    ("line", "normalized"),
    [
        # QEMU's section-id form (savevm.c), the id is a counter.
        ("error while loading state section id 3(cpu)", "error loading section 'cpu'"),
        ("error while loading state section id 17(arm_gicv3)", "error loading section 'arm_gicv3'"),
        # An assertion with a source path and the program's own prefix.
        (
            "qemu-system-aarch64: ../../target/arm/machine.c:997: cpu_pre_load: "
            "Assertion `cpu->cpreg_array_len == 12' failed.",
            "assertion in cpu_pre_load: cpu->cpreg_array_len == N",
        ),
        # The noise prefixes, whatever their case; the signal line of a killed QEMU is noise.
        ("Load Of Migration Failed: Invalid argument", "Invalid argument"),
        ("qemu: some failure", "some failure"),
        ("qemu: terminating on signal 15 from pid 4242 (timeout)", ""),
        # A hex id with upper-case digits, a pid and a temp path are gone.
        ("bad address 0xDEADBEEF in pid 4242", "bad address N in pid N"),
    ],
)
def test_normalization_rules(line: str, normalized: str) -> None:
    assert normalize_message(line) == normalized


def test_temp_paths_and_pids_do_not_change_the_form() -> None:
    one = normalize_message("Could not open /tmp/migfuzz-case-r2e5nf8m/src.stream for pid 101")
    two = normalize_message("Could not open /tmp/migfuzz-case-0au4ii6w/src.stream for pid 202")
    assert one == two
    assert "/tmp" not in one and "migfuzz-case" not in one and "101" not in one


def test_registers_a_line_names_are_listed_once_sorted() -> None:
    line = (
        "cannot restore system register 0x1013e710 nor system register 0x1013c030 "
        "(system register 0x1013e710 again)"
    )
    assert normalize_message(line) == (
        "cannot restore system register N nor system register N (system register N again): "
        "CNTHP_TVAL_EL2, ID_AA64ISAR0_EL1"
    )


def step(verdict: Verdict, messages=(), returncode=None, stage=Stage.LOAD, **details):
    return StepOutcome(stage, "11.1", verdict, tuple(messages), returncode, details=details)


AFTER_IRQ = {"last_field": "cpu/irq-line-state:env.irq_line_state", "failed": "cpu post-load"}


@pytest.mark.parametrize(
    ("outcome", "signature"),
    [
        # 11.1: one cause per register, sorted, whatever the order and the warnings; the
        # headline is the first; where loading stopped is left out (the names say it).
        (
            step(
                Verdict.REFUSED,
                [
                    MISSING_CNTHP.replace("0x1013e710", "0x1013e110"),
                    ONLY_CNTHP,
                    ONLY_ISAR0,
                    ONLY_CNTHP,
                    POST_LOAD_11,
                ],
                1,
                load_path=AFTER_IRQ,
            ),
            "refused-on-load: cpreg only in incoming stream: CNTHP_TVAL_EL2",
        ),
        # 11.1 whose only error line is the generic one: where it failed tells it apart.
        (
            step(
                Verdict.REFUSED, ["warning: " + MISSING_CNTHP, POST_LOAD_11], 1, load_path=AFTER_IRQ
            ),
            "refused-on-load: error loading device 'cpu': post load hook "
            "failed for: cpu, version_id: N, minimum_version: N, ret: -N @ cpu post-load",
        ),
        # 10.0 aborts: the assertion, then the last field QEMU started.
        (
            step(
                Verdict.CRASHED,
                [ASSERTION_10],
                -6,
                load_path={"last_field": "cpu/wfxt-timer:wfxt_timer"},
            ),
            "crashed-on-load: assertion in vmstate_load_state: first_elem || !n_elems || !size"
            " after cpu/wfxt-timer:wfxt_timer",
        ),
        # 7.2: the first error line, then the last field.
        (
            step(
                Verdict.REFUSED,
                [DEVICE_CPU_72, EPERM_72],
                1,
                load_path={"last_field": "cpu/irq-line-state:env.irq_line_state"},
            ),
            "refused-on-load: error loading device 'cpu' after cpu/irq-line-state:"
            "env.irq_line_state",
        ),
        # 5.2: "Failed to load" beats the lines before and after it, and needs no place.
        (
            step(
                Verdict.REFUSED,
                [INVALID_VALUE_52, ARRAY_LEN_52, DEVICE_CPU_72, EINVAL_52],
                1,
                load_path={"last_field": "cpu:cpreg_vmstate_array_len"},
            ),
            "refused-on-load: Failed to load cpu:cpreg_vmstate_array_len",
        ),
        (
            step(
                Verdict.REFUSED,
                [GICV3_52, DEVICE_GIC_52, ENOENT_52],
                1,
                load_path={"last_field": "arm_gicv3_cpu/sre_el1:icc_sre_el1"},
            ),
            "refused-on-load: Failed to load arm_gicv3:cpu",
        ),
    ],
)
def test_step_signatures_of_each_version(outcome: StepOutcome, signature: str) -> None:
    assert str(step_signature(outcome)) == signature


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda p: p.name[-8:])
def test_every_committed_entry_keeps_its_recorded_signature(entry: Path) -> None:
    """The pair's recorded outcome (QEMU's real messages) still gives the entry's signature."""
    outcome = json.loads((entry / "outcome.json").read_text())
    recorded = Signature.from_json(outcome["signature"])
    same_version = recorded.kind.startswith(SAME_VERSION)
    # A same-version finding is the control's (A -> A); the pair then did not run. A
    # crash on save is the save's (no load followed).
    transfer = outcome["control" if same_version else "pair"]
    load = StepOutcome.from_json(transfer["save" if recorded.kind.endswith("-on-save") else "load"])
    if load.verdict == "completed":
        # A state or read-back finding: no step message to sign (tests/unit/
        # test_corpus_rejudge.py judges it again from the recorded read-backs).
        assert recorded.kind.endswith("state"), recorded
        return
    # The entry stands for one root cause of its case (the smallest case showing it).
    prefix = SAME_VERSION if same_version else ""
    causes = step_causes(load)
    record = outcome.get("findings", {}).get("past_refusal")
    if record:  # loaded past the refusal: signed by the registers the patch changed
        first = Divergence(causes[0], {}, causes)
        control = TransferOutcome.from_json(outcome["control"])
        causes = PastRefusal.from_record(first, record, control).first_causes
    assert recorded in [Signature(prefix + c.kind, c.detail) for c in causes]
    # The folder is named by the signature: slug, then the hash of the whole signature.
    assert entry.name == f"{recorded.slug()}-{recorded.short_hash()}"


@pytest.mark.parametrize(
    ("messages", "signature"),
    [
        # An assertion beats a missing register and a generic line, wherever it is.
        (
            [DEVICE_CPU_72, MISSING_CNTHP, ASSERTION_10],
            "assertion in vmstate_load_state: first_elem || !n_elems || !size",
        ),
        # A missing register beats "Failed to load", and is not placed.
        ([GICV3_52, MISSING_CNTHP], "cpreg missing from incoming stream: CNTHP_TVAL_EL2"),
        ([GICV3_52, DEVICE_GIC_52], "Failed to load arm_gicv3:cpu"),
        # "Failed to load" beats an unknown section, which beats a missing one.
        (
            ["Unknown savevm section or instance 'gpio-key' 0", GICV3_52],
            "Failed to load arm_gicv3:cpu",
        ),
        (
            [
                DEVICE_CPU_72,
                "Missing section footer for cpu",
                "Unknown savevm section or instance 'gpio-key' 0",
            ],
            "Unknown savevm section or instance 'gpio-key' N",
        ),
        ([DEVICE_CPU_72, "Missing section footer for cpu"], "Missing section footer for cpu"),
        # Nothing specific: the first error line (warnings are not errors).
        ([DEPRECATED_52, EPERM_72, DEVICE_CPU_72], "Operation not permitted"),
    ],
)
def test_the_most_specific_line_wins(messages: list[str], signature: str) -> None:
    assert step_signature(step(Verdict.REFUSED, messages, 1)) == Signature(
        "refused-on-load", signature
    )
    # Where loading stopped is added to a generic line, never to a named register's.
    placed = step_signature(step(Verdict.REFUSED, messages, 1, load_path=AFTER_IRQ)).detail
    if signature.startswith(("cpreg ", "Failed to load ")):
        assert placed == signature
    else:
        assert placed == f"{signature} @ cpu post-load"


def test_where_loading_stopped() -> None:
    failed = {"failed": "cpu post-load", "last_field": "cpu/x:y"}
    assert step_signature(step(Verdict.REFUSED, [EPERM_72], 1, load_path=failed)).detail == (
        "Operation not permitted @ cpu post-load"
    )
    last = {"last_field": "cpu/x:y"}
    assert step_signature(step(Verdict.REFUSED, [EPERM_72], 1, load_path=last)).detail == (
        "Operation not permitted after cpu/x:y"
    )
    for nothing in ({}, {"failed": "", "last_field": ""}, "cpu post-load", None):
        outcome = step(Verdict.REFUSED, [EPERM_72], 1, load_path=nothing)
        assert step_signature(outcome).detail == "Operation not permitted"


def test_a_hang_is_only_its_stage() -> None:
    hung = step(Verdict.HUNG, ["restore did not finish in time"], -9, load_path=AFTER_IRQ)
    assert step_signature(hung) == Signature("hung-on-load", "")
    assert str(step_signature(step(Verdict.HUNG, stage=Stage.SAVE))) == "hung-on-save"


def test_a_silent_crash_is_named_by_its_signal() -> None:
    # A segfault prints nothing; a warning is not an error line either.
    assert step_signature(step(Verdict.CRASHED, [], -11)) == Signature(
        "crashed-on-load", "signal 11"
    )
    assert step_signature(step(Verdict.CRASHED, [DEPRECATED_52], -6)).detail == "signal 6"
    # A clean exit without a message, or no exit status at all, has no detail.
    assert step_signature(step(Verdict.REFUSED, [], 1)) == Signature("refused-on-load", "")
    assert step_signature(step(Verdict.REFUSED, [], 0)).detail == ""
    assert step_signature(step(Verdict.REFUSED, [], None)).detail == ""
    # A message beats the signal.
    assert step_signature(step(Verdict.CRASHED, [ASSERTION_10], -6)).detail.startswith(
        "assertion in vmstate_load_state"
    )


def test_the_stage_is_part_of_the_kind() -> None:
    assert step_signature(step(Verdict.REFUSED, [EPERM_72], 1, stage=Stage.SAVE)) == Signature(
        "refused-on-save", "Operation not permitted"
    )


# -- Signature ---------------------------------------------------------------------------


def test_signature_text_forms() -> None:
    sig = Signature("refused-on-load", "cpreg only in incoming stream: ID_AA64ISAR0_EL1")
    assert str(sig) == "refused-on-load: cpreg only in incoming stream: ID_AA64ISAR0_EL1"
    assert str(Signature("hung-on-load", "")) == "hung-on-load"
    assert str(AGREE) == "agree"
    assert Signature("agree", "") == AGREE
    assert sig.slug() == "refused-on-load-cpreg-only-in-incoming-stream-id-aa64isar0-e"
    assert sig.short_hash() == hashlib.sha256(str(sig).encode()).hexdigest()[:8]
    assert len(sig.short_hash()) == 8


@pytest.mark.parametrize(
    ("signature", "slug"),
    [
        (Signature("hung-on-load", ""), "hung-on-load"),
        (Signature("state", "  A/B  "), "state-a-b"),
        (Signature("", "!!!"), "divergence"),
        (Signature("", "!x"), "x"),
        # Cut at 60 characters, then no dangling '-'.
        (Signature("x" * 59, "y"), "x" * 59),
        (Signature("x" * 58, "yy"), "x" * 58 + "-y"),
        (Signature("x" * 70, ""), "x" * 60),
    ],
)
def test_slugs(signature: Signature, slug: str) -> None:
    assert signature.slug() == slug


def test_signatures_order_and_round_trip() -> None:
    a, b = Signature("crashed-on-load", "z"), Signature("refused-on-load", "a")
    assert sorted([b, a]) == [a, b]
    assert Signature.from_json(a.to_json()) == a
    assert a.to_json() == {"kind": "crashed-on-load", "detail": "z"}
    assert Signature.from_json({"kind": "hung-on-load"}) == Signature("hung-on-load", "")
    assert Signature.from_json({"kind": "state", "detail": 3}) == Signature("state", "3")


@pytest.mark.parametrize("data", [None, [], "refused", {"detail": "x"}, {"kind": 1}])
def test_a_bad_signature_is_a_corpus_error(data: object) -> None:
    with pytest.raises(CorpusError, match="signature must be an object with a 'kind'"):
        Signature.from_json(data)


def test_each_refused_register_is_a_cause_and_aarch32_ones_go_by_family() -> None:
    """README: an AArch64 register is a cause by itself; AArch32 ones by coprocessor+opc1."""
    line = "handle_cpreg_only_in_incoming_stream: system register {} in the incoming stream"
    ids = ("0x1013c030", "0x200f3a00", "0x200f0c10", "0x200f0c11", "0x1013e710")
    outcome = step(Verdict.REFUSED, [line.format(i) for i in ids], 1)
    details = [c.detail.removeprefix("cpreg only in incoming stream: ") for c in
               step_causes(outcome)]  # fmt: skip
    assert details == sorted(details)
    assert "ID_AA64ISAR0_EL1" in details and "CNTHP_TVAL_EL2" in details
    assert all("," not in d for d in details)
    assert [d for d in details if d.startswith("P15_")] == sorted(
        {d for d in details if d.startswith("P15_")}
    )
    assert step_signature(outcome) == step_causes(outcome)[0]


def test_a_devices_bus_address_is_no_part_of_its_cause() -> None:
    pci = "savevm: unsupported version 2 for '0000:00:0f.0/virtio-net' v1"
    other_slot = pci.replace("0f.0", "1c.0")
    assert normalize_message(pci) == normalize_message(other_slot)
    assert normalize_message(pci) == "savevm: unsupported version N for 'virtio-net' v1"
    mmio = (
        "error while loading state for instance 0x0 of device"
        " 'virtio-mmio@000000000a003c00/virtio-rng'"
    )
    assert normalize_message(mmio) == "error loading device 'virtio-rng'"
