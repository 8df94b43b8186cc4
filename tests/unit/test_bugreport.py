"""The QEMU bug report (fuzz.triage.bugreport) from committed corpus entries, without QEMU."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz.cli import EXIT_OK, EXIT_USAGE, main
from fuzz.corpus.entry import load_entry
from fuzz.triage.bisect import Axis, Point, Status
from fuzz.triage.bugreport import bug_report, title
from fuzz.versions.lock import read_lock

ROOT = Path(__file__).resolve().parents[2]
P15_4 = ROOT / "corpus/refused-on-load-cpreg-only-in-incoming-stream-p15-4-3cfabc70"
IRQ_LINE = ROOT / "corpus/refused-on-load-cpreg-missing-from-incoming-stream-not-kept-f7dc9c21"
Z_REGS = ROOT / "corpus/same-version-state-guest-read-back-differs-z-6988d6cb"
EL3_52 = ROOT / "corpus/same-version-refused-on-load-error-loading-device-cpu-after-aa51543e"


def test_title_is_one_line_with_versions_configuration_and_cause() -> None:
    assert title(load_entry(P15_4)) == (
        "arm: migration 10.0.13 -> 11.1.3 (virt-10.0,secure=on, cortex-a57): destination "
        "refuses the migration stream: cpreg only in incoming stream: P15_4_*"
    )


def test_report_of_a_refusal() -> None:
    entry = load_entry(P15_4)
    text = bug_report(entry, lock=read_lock(ROOT / "qemu.lock"))
    assert text.startswith(f"# {title(entry)}\n")
    # versions: version line and the Debian package the lock records
    assert "| source | 10.0.13 | QEMU emulator version 10.0.13 Debian" in text
    assert "qemu-system-arm 1:10.0.13+ds-0+deb13u1 (trixie, amd64)" in text
    assert "qemu-system-arm 1:11.1.3+ds-1 (sid, amd64)" in text
    # plain QEMU commands: source with the guest, the save, the destination's load
    assert "$QEMU_SRC -accel tcg -machine virt-10.0,secure=on -cpu cortex-a57" in text
    assert "loader,file=guest.bin,addr=0x40100000" in text
    assert '(qemu) migrate "exec:cat > src.stream"' in text
    assert '-incoming "exec:cat src.stream"' in text
    assert "migfuzz " not in text.split("## How to reproduce")[1].split("## Expected")[0]
    # expected (control) and actual (pair, QEMU's own lines)
    expected, actual = text.split("## Expected")[1].split("## Actual")
    assert "10.0 -> 10.0: **completed**" in expected
    assert "10.0 -> 11.1: **refused**" in actual
    assert "system register 0x200f0820 in the incoming stream but unknown" in actual
    # responsible registers: architectural names beside the encodings, both values
    assert "| HSCTLR_S | `P15_4_C1_C0_0_S` | `0x40200000000f0820` | `0x0` | absent |" in text
    assert "| CNTHP_CVAL_S | `P15_6_C14_S` |" in text
    assert "| ID_AA64ISAR0_EL1 | `S3_0_C0_C6_0` | `0x603000000013c030` | `0x11120` |" in text
    assert "## Versions affected" not in text


def test_report_names_qemu_only_encodings_and_set_values() -> None:
    text = bug_report(load_entry(IRQ_LINE))
    assert "DBGDEVID1 (QEMU's encoding; the Arm ARM's is p14, 0, c7, c1, 7)" in text
    assert (
        "| ID_DFR0 | `P15_0_C0_C1_2` | `0x40200000200f0082` | `0x3010066` | `0x3010006` |" in text
    )
    assert "not in the lock file" in text  # no lock given


def test_report_with_a_version_range() -> None:
    axis = Axis(
        "destination",
        "10.0",
        (
            Point("10.0", "10.0.13", Status.AGREE),
            Point("11.1", "11.1.3", Status.SAME),
        ),
    )
    text = bug_report(load_entry(P15_4), axes=[axis])
    section = text.split("## Versions affected")[1]
    assert axis.conclusion() in section
    assert "| 11.1 (11.1.3) | same cause |" in section


def test_cli_writes_the_report_without_running_qemu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "bug.md"
    argv = ["--cache-dir", str(tmp_path), "bug", str(P15_4), "--no-bisect", "-o", str(target)]
    assert main(argv) == EXIT_OK
    assert target.read_text() == bug_report(load_entry(P15_4), lock=read_lock(ROOT / "qemu.lock"))
    assert main(["--cache-dir", str(tmp_path), "bug", str(P15_4), "--no-bisect"]) == EXIT_OK
    assert capsys.readouterr().out.startswith("# arm: migration 10.0.13 -> 11.1.3")


def test_cli_refuses_a_folder_that_is_no_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--cache-dir", str(tmp_path), "bug", str(tmp_path), "--no-bisect"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "case.json: missing" in err


def test_report_of_a_read_back_finding_shows_how_to_see_it_and_both_values() -> None:
    """The Z-register truncation: a round trip on one version; the report must let a
    maintainer see the difference (the read-back after the restore), not only a load."""
    text = bug_report(load_entry(Z_REGS))
    assert "printf g > uart.in" in text and "grep -E '^(z3)=' after.txt" in text
    assert "-chardev pipe,id=ser,path=uart -serial chardev:ser" in text
    assert "| `z3` | `0x177c9c0824dcd15e` | `0x5feb6462311f17ae` |" in text
    assert "reads back after the restore what it read before the save" in text
    assert "Control: the same load" not in text  # the control is the bug here
    assert "\n\n\n" not in text


def test_report_of_a_same_version_refusal_shows_the_control_refusing() -> None:
    text = bug_report(load_entry(EL3_52))
    actual = text[text.index("## Actual") :]
    assert "5.2 -> 5.2: **refused**" in actual
    assert "error while loading state for instance 0x0 of device 'cpu'" in actual
    assert "(not run)" not in text
