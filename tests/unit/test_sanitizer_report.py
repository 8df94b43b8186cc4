"""Sanitizer reports from a QEMU's stderr, without QEMU: the kind, QEMU's own frames, the
text, and the signature a crashed step of a sanitizer build gets.

The fixtures in ``tests/data/sanitizer/`` are written as gcc 12's libasan and libubsan
print them (a report with the sanitizer runtime's, libc's and glib's frames among QEMU's).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz.core.binary import QemuBinary
from fuzz.core.outcome import Stage, StepOutcome, TransferOutcome, Verdict
from fuzz.judge.oracles import Signature, step_causes
from fuzz.judge.sanitizer import (
    SanitizerReport,
    find_report,
    qemu_frames,
    without_sanitizer_lines,
)

DATA = Path(__file__).parents[1] / "data" / "sanitizer"


def _report(name: str) -> SanitizerReport:
    report = find_report((DATA / name).read_text())
    assert report is not None
    return report


def test_heap_use_after_free_names_kind_and_qemu_frames() -> None:
    report = _report("asan-heap-use-after-free.txt")
    assert (report.tool, report.kind) == ("asan", "heap-use-after-free")
    # Only the first stack (the access), not 'freed by' or 'allocated by'.
    assert report.frames[:3] == ("vmstate_load_state", "cpu_post_load", "vmstate_load_state")
    assert "cpu_pre_load" not in report.frames
    assert (
        report.signature_detail()
        == "asan heap-use-after-free in vmstate_load_state < cpu_post_load"
    )


def test_report_text_runs_from_its_rule_to_aborting_and_leaves_qemus_lines() -> None:
    report = _report("asan-heap-use-after-free.txt")
    assert report.text.startswith("=====")
    assert report.text.endswith("==48211==ABORTING")
    assert "warning: TCG" not in report.text
    assert "freed by thread T0 here:" in report.text


def test_segv_skips_libc_and_interceptor_frames() -> None:
    report = _report("asan-segv.txt")
    assert (report.tool, report.kind) == ("asan", "SEGV")
    assert report.frames == ("get_buffer", "get_cpreg_list", "vmstate_load_state")
    assert report.text.startswith("AddressSanitizer:DEADLYSIGNAL")
    assert report.signature_detail() == "asan SEGV in get_buffer < get_cpreg_list"


def test_ubsan_runtime_error_gets_its_check_name() -> None:
    report = _report("ubsan-shift.txt")
    assert (report.tool, report.kind) == ("ubsan", "shift-out-of-bounds")
    assert report.frames[0] == "gt_recalc_timer"
    assert "__libc_start_call_main" not in report.frames
    assert report.text.startswith("../target/arm/helper.c:2291:31: runtime error: shift exponent")
    assert report.signature_detail(3) == (
        "ubsan shift-out-of-bounds in gt_recalc_timer < gt_ctl_write < write_raw_cp_reg"
    )


def test_leak_report_is_lsan_memory_leak() -> None:
    report = _report("lsan-leak.txt")
    assert (report.tool, report.kind, report.frames) == (
        "lsan", "memory-leak", ("qemu_file_new_impl",)
    )  # fmt: skip


@pytest.mark.parametrize(
    "stderr",
    [
        "",
        "qemu-system-aarch64: Failed to load cpu:cpreg_vmstate_array_len\n",
        "qemu-system-aarch64: load of migration failed: Invalid argument\n",
    ],
)
def test_plain_qemu_errors_are_no_report(stderr: str) -> None:
    assert find_report(stderr) is None


def test_frames_without_function_names_are_skipped() -> None:
    text = "    #0 0x55d1e2f3a4b5  (/usr/bin/qemu-system-aarch64+0x1234)\n    #1 0x1 in f a.c:1\n"
    assert qemu_frames(text) == ("f",)


def test_report_round_trips_through_step_details() -> None:
    report = _report("asan-segv.txt")
    details = {"sanitizer": report.to_json(), "sanitizer_report": report.text}
    assert SanitizerReport.from_details(details) == report
    assert SanitizerReport.from_details({}) is None
    assert SanitizerReport.from_details({"sanitizer": {"tool": 1}}) is None


def _crashed_load(report: SanitizerReport | None) -> StepOutcome:
    details = {} if report is None else {
        "sanitizer": report.to_json(), "sanitizer_report": report.text
    }  # fmt: skip
    return StepOutcome(
        Stage.LOAD, "11.1.3-asan", Verdict.CRASHED,
        messages=("some qemu line",), returncode=-6, details=details,
    )  # fmt: skip


def test_crashed_step_signature_reads_the_report() -> None:
    step = _crashed_load(_report("asan-heap-use-after-free.txt"))
    detail = "asan heap-use-after-free in vmstate_load_state < cpu_post_load"
    assert step_causes(step) == (Signature("crashed-on-load", detail),)


def test_crashed_step_without_report_keeps_its_message() -> None:
    assert step_causes(_crashed_load(None)) == (Signature("crashed-on-load", "some qemu line"),)


def test_a_refused_step_does_not_read_a_report() -> None:
    report = _report("asan-segv.txt")
    step = StepOutcome(
        Stage.LOAD, "x", Verdict.REFUSED, messages=("refused",),
        details={"sanitizer": report.to_json()},
    )  # fmt: skip
    assert step_causes(step) == (Signature("refused-on-load", "refused"),)


def test_only_sanitizer_builds_run_with_sanitizer_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASAN_OPTIONS", raising=False)
    plain = QemuBinary("11.1", Path("/x/qemu"), "debian:sid")
    built = QemuBinary("11.1.3-asan", Path("/x/qemu"), "build:sid+asan", sanitizers=("address",))
    assert "ASAN_OPTIONS" not in plain.environment()
    assert "abort_on_error=1" in built.environment()["ASAN_OPTIONS"]
    monkeypatch.setenv("ASAN_OPTIONS", "detect_leaks=1")
    assert built.environment()["ASAN_OPTIONS"] == "detect_leaks=1"  # the user's setting wins


def test_entry_keeps_the_report_in_sanitizer_txt() -> None:
    from fuzz.corpus.entry import sanitizer_text

    report = _report("asan-segv.txt")
    save = StepOutcome(Stage.SAVE, "a", Verdict.COMPLETED)

    class _Entry:
        pair = TransferOutcome("a", "b", save, _crashed_load(report))
        control = TransferOutcome("a", "a", save, StepOutcome(Stage.LOAD, "a", Verdict.COMPLETED))

    text = sanitizer_text(_Entry())  # type: ignore[arg-type]
    assert text.startswith("# pair: load on 11.1.3-asan\nAddressSanitizer:DEADLYSIGNAL")
    assert "==5120==ABORTING" in text


def test_runtime_notes_and_the_report_leave_qemus_own_lines() -> None:
    text = (DATA / "asan-heap-use-after-free.txt").read_text()
    note = "==9392==WARNING: ASan doesn't fully support makecontext/swapcontext functions\n"
    left = without_sanitizer_lines(note + text, find_report(text))
    assert (
        left.strip()
        == "qemu-system-aarch64: warning: TCG doesn't support requested feature, cpu=max"
    )
    assert (
        without_sanitizer_lines(note + "qemu-system-aarch64: error\n")
        == "qemu-system-aarch64: error\n"
    )


def test_a_recorded_report_of_the_loadvm_twice_crash() -> None:
    """Recorded from 10.2.2-asan (``migfuzz qemu build 10.2.2 --sanitize address``) running
    ``scripts/qemu-bugs/loadvm-twice-then-cont-crashes``: savevm, loadvm twice, cont."""
    text = (DATA / "real-10.2.2-asan-loadvm-twice-cont.txt").read_text()
    report = find_report(text)
    assert report is not None
    assert (
        report.signature_detail()
        == "asan heap-use-after-free in vm_state_notify < vm_prepare_start"
    )
    assert "postload_update_cb ../hw/block/pflash_cfi01.c" in report.text
    assert report.text.endswith("ABORTING")
    assert without_sanitizer_lines(text, report).strip() == ""
