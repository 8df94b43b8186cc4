"""The promise grade of a finding (fuzz.judge.promise), without QEMU: every rule with both
sides of its boundary, versions by name and by version line, the committed corpus graded as
recorded, and the grade in the campaign's summary, ``repro``/``bisect`` and ``migfuzz bug``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

import fuzz.cli
from fuzz.campaign.driver import FindingStats, Summary
from fuzz.cli import EXIT_OK, main
from fuzz.core.case import MachineConfig
from fuzz.corpus.entry import (
    Entry,
    entry_folders,
    load_entry,
    read_promise,
    record_promise,
)
from fuzz.judge.oracles import Signature
from fuzz.judge.promise import FIELDS, Grade, Promise, Release, grade, release_of
from fuzz.triage.bugreport import bug_report

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
ONE_SHOT = [f for f in entry_folders(CORPUS) if (f / "outcome.json").is_file()]

REFUSED = Signature("refused-on-load", "cpreg only in incoming stream: X")
STATE = Signature("state", "restored state differs: cpu/0/env.pc")
NAMED = MachineConfig("virt-10.0", "cortex-a57")

P, N = Promise.PROMISED, Promise.NOT_PROMISED


def graded(
    src: str,
    dst: str,
    config: MachineConfig = NAMED,
    signature: Signature = REFUSED,
    *,
    src_line: str = "",
    dst_line: str = "",
) -> Promise:
    return grade(signature, src, dst, config, src_line=src_line, dst_line=dst_line).promise


# -- versions: where a name (or a version line) sits in QEMU's release sequence -----------


@pytest.mark.parametrize(
    ("name", "line", "release"),
    [
        ("5.2", "", Release(5, 2)),
        ("10.0.2", "", Release(10, 0, 2)),
        ("11.1.3-asan", "", Release(11, 1, 3)),
        ("10.0", "QEMU emulator version 10.0.13 Debian 1:10.0.13+ds-0+deb13u1", Release(10, 0, 13)),
        # a series name keeps its own series when the line says another
        ("10.0", "QEMU emulator version 11.1.3", Release(10, 0)),
        ("my-build", "QEMU emulator version 9.2.50 (v9.2.0-123-gabcdef)", Release(9, 2, 50)),
        ("my-build", "", None),
        ("dev", "something else", None),
        ("10", "", None),
    ],
)
def test_release_by_name_or_version_line(name: str, line: str, release: Release | None) -> None:
    assert release_of(name, line) == release


@pytest.mark.parametrize(
    ("release", "position"),
    [
        (Release(2, 0), 0),
        (Release(2, 12), 24),
        (Release(3, 0), 26),  # the release after 2.12
        (Release(3, 2), 30),
        (Release(4, 0), 32),
        (Release(10, 0, 49), 2 * (13 + 21)),
        (Release(10, 0, 50), 2 * (13 + 21) + 1),  # a development tree, before 10.1
        (Release(3, 3), None),  # no such release
        (Release(1, 7), None),
        (Release(2, 13), None),
    ],
)
def test_place_in_the_release_sequence(release: Release, position: int | None) -> None:
    assert release.position() == position


# -- the rules, each with both sides of its boundary --------------------------------------


@pytest.mark.parametrize(
    ("src", "dst", "expected"),
    [
        ("10.0", "11.1", P),  # forward, any distance
        ("5.2", "11.1", P),
        ("2.12", "3.0", P),
        ("11.1", "11.0", P),  # one release back
        ("11.0", "10.2", P),  # one release back across a year
        ("3.0", "2.12", P),
        ("11.1", "10.2", N),  # two releases back
        ("11.0", "10.1", N),
        ("11.1", "5.2", N),
        ("7.2", "5.2", N),
        ("10.0.2", "10.0", P),  # within a stable series, both ways
        ("10.0.13", "10.0.2", P),
        ("11.1.3-asan", "11.1.2", P),
        ("11.1.3-asan", "11.0", P),
        ("11.1.3-asan", "10.2.2", N),
        ("10.0.50", "10.0", P),  # a development tree is half a release after its series
        ("10.1.0", "10.0.50", P),
        ("10.0.50", "9.2", N),
    ],
)
def test_direction(src: str, dst: str, expected: Promise) -> None:
    assert graded(src, dst) is expected


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (NAMED, P),
        (MachineConfig("virt-10.0", "max"), N),
        (MachineConfig("virt-10.0", "host"), N),
        (MachineConfig("virt-10.0", "a64fx"), P),
        (MachineConfig("virt", "cortex-a57"), N),  # unversioned
        (MachineConfig("virt-5.2", "cortex-a57"), P),
        (MachineConfig("virt-10.0", "cortex-a57", (("gic-version", "max"),)), N),
        (MachineConfig("virt-10.0", "cortex-a57", (("gic-version", "host"),)), N),
        (MachineConfig("virt-10.0", "cortex-a57", (("gic-version", "3"),)), P),
        (MachineConfig("virt-10.0", "cortex-a57", (("secure", "on"),)), P),
        (MachineConfig("virt-10.0", "cortex-a57", (), (("pmu", "off"),)), P),
    ],
)
def test_configuration(config: MachineConfig, expected: Promise) -> None:
    assert graded("10.0", "11.1", config) is expected


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("same-version-refused-on-load", P),
        ("same-version-state", P),
        ("crashed-on-load", P),
        ("crashed-on-save", P),
        ("hung-on-load", P),
        ("refused-on-load", N),
        ("state", N),
    ],
)
def test_same_version_crash_and_hang_are_always_promised(kind: str, expected: Promise) -> None:
    """Even with the max CPU and a backward jump of many releases."""
    assert graded("11.1", "5.2", MachineConfig("virt", "max"), Signature(kind, "x")) is expected


def test_one_version_on_both_sides_is_promised() -> None:
    max_cpu = MachineConfig("virt", "max")
    assert graded("11.1", "11.1", max_cpu, STATE) is P
    assert graded("11.1", "11.1.2", max_cpu, STATE) is N


@pytest.mark.parametrize(
    ("src", "dst", "src_line", "dst_line", "expected"),
    [
        ("mine", "11.1", "", "", N),  # unknown order
        ("11.1", "mine", "", "", N),
        ("mine", "11.1", "QEMU emulator version 10.0.2", "", P),  # placed by its line
        ("11.1", "mine", "", "QEMU emulator version 5.2.0", N),
        ("11.1", "mine", "", "QEMU emulator version 11.0.1", P),
        ("3.5", "11.1", "", "", N),  # no such release
    ],
)
def test_unknown_versions(src: str, dst: str, src_line: str, dst_line: str, expected: Promise):
    assert graded(src, dst, src_line=src_line, dst_line=dst_line) is expected


def test_reasons_are_one_line_and_say_why() -> None:
    cases = {
        ("10.0", "11.1", MachineConfig("virt-10.0", "max")): "CPU model max",
        ("10.0", "11.1", MachineConfig("virt", "cortex-a57")): "machine type virt is not versioned",
        ("10.0", "11.1", replace(NAMED, machine_options=(("gic-version", "max"),))): (
            "gic-version=max is not a fixed configuration"
        ),
        ("11.1", "5.2", NAMED): "backward jump of 17 releases",
        ("11.1", "11.0", NAMED): "one release back",
        ("10.0", "11.1", NAMED): "forward",
        ("10.0.2", "10.0", NAMED): "within the 10.0 stable series",
        ("mine", "11.1", NAMED): "unknown version order",
    }
    for (src, dst, config), words in cases.items():
        found = grade(REFUSED, src, dst, config)
        assert words in found.reason and "\n" not in found.reason
    crash = grade(Signature("crashed-on-load", "x"), "11.1", "5.2", NAMED)
    assert "refuse what it cannot load" in crash.reason


def test_grade_text_and_json() -> None:
    found = Grade(N, "CPU model max changes")
    assert str(found) == "not promised: CPU model max changes"
    assert found.line() == "Promise: not promised \u2014 CPU model max changes"
    assert found.to_json() == {"promise": "not promised", "promise_reason": "CPU model max changes"}
    assert tuple(found.to_json()) == FIELDS and not found.promised


# -- the committed corpus -----------------------------------------------------------------


@pytest.mark.parametrize("folder", ONE_SHOT, ids=lambda p: p.name)
def test_every_committed_entry_carries_its_grade(folder: Path) -> None:
    """Recorded in outcome.json as computed now (re-record with
    ``fuzz.corpus.entry.record_promise`` when the rules change)."""
    recorded = json.loads((folder / "outcome.json").read_text())
    computed = load_entry(folder).promise
    assert (recorded.get("promise"), recorded.get("promise_reason")) == (
        str(computed.promise),
        computed.reason,
    )
    assert read_promise(folder) == computed


def _position(name: str, line: str) -> int:
    release = release_of(name, line)
    assert release is not None
    position = release.position()
    assert position is not None
    return position


def _entries() -> list[Entry]:
    return [load_entry(folder) for folder in ONE_SHOT]


def test_the_committed_corpus_is_graded_as_qemu_documents() -> None:
    """The max CPU and gic-version=max entries and the backward jumps to 5.2 are not
    promised; the forward refusals of named CPU models are."""
    entries = [e for e in _entries() if not e.signature.same_version]
    max_cpu = [e for e in entries if e.case.config.cpu == "max"]
    gic_max = [e for e in entries if ("gic-version", "max") in e.case.config.machine_options]
    to_52 = [e for e in entries if e.dst.name == "5.2" and e.src.name != "5.2"]
    named_forward = [
        e
        for e in entries
        if e.signature.kind.startswith("refused")
        and e.case.config.cpu not in ("max", "host")
        and not any(v in ("max", "host") for _k, v in e.case.config.machine_options)
        and _position(e.src.name, e.src.version_line) < _position(e.dst.name, e.dst.version_line)
    ]
    assert max_cpu and gic_max and to_52 and named_forward
    for entry in max_cpu + gic_max + to_52:
        if "crashed" not in entry.signature.kind:
            assert entry.promise.promise is N, entry.name
    for entry in named_forward:
        assert entry.promise.promise is P, entry.name
    # crashes and same-version failures are promised whatever their configuration
    for entry in _entries():
        if entry.signature.same_version or "crashed" in entry.signature.kind:
            assert entry.promise.promise is P, entry.name


def test_a_recorded_grade_is_recomputed_not_trusted(tmp_path: Path) -> None:
    source = next(f for f in ONE_SHOT if load_entry(f).case.config.cpu == "max")
    folder = tmp_path / source.name
    folder.mkdir()
    for name in ("case.json", "outcome.json"):
        (folder / name).write_bytes((source / name).read_bytes())
    outcome = json.loads((folder / "outcome.json").read_text())
    outcome.update(promise="promised", promise_reason="trust me")
    (folder / "outcome.json").write_text(json.dumps(outcome, indent=2) + "\n")
    found = read_promise(folder)
    assert found == load_entry(source).promise
    assert found is not None and found.promise is N


def test_record_promise_adds_the_fields_after_the_signature_and_keeps_the_rest(
    tmp_path: Path,
) -> None:
    source = ONE_SHOT[0]
    folder = tmp_path / source.name
    folder.mkdir()
    for item in source.iterdir():
        if item.is_file():
            (folder / item.name).write_bytes(item.read_bytes())
    original = json.loads((source / "outcome.json").read_text())
    stripped = {k: v for k, v in original.items() if k not in FIELDS}
    (folder / "outcome.json").write_text(json.dumps(stripped, indent=2) + "\n")
    assert record_promise(folder)
    assert (folder / "outcome.json").read_text() == (source / "outcome.json").read_text()
    assert not record_promise(folder)  # already as computed
    keys = list(json.loads((folder / "outcome.json").read_text()))
    assert keys[keys.index("signature") + 1 : keys.index("signature") + 3] == list(FIELDS)


def test_a_stateful_or_broken_entry_has_no_grade(tmp_path: Path) -> None:
    stateful = [f for f in entry_folders(CORPUS) if (f / "sequence.json").is_file()]
    for folder in stateful:
        assert read_promise(folder) is None
    (tmp_path / "case.json").write_text("{")
    assert read_promise(tmp_path) is None


# -- where the grade is shown ------------------------------------------------------------


def _entry_with(cpu: str) -> Path:
    return next(f for f in ONE_SHOT if load_entry(f).case.config.cpu == cpu)


def test_the_campaign_summary_counts_findings_by_grade(
    capsys: pytest.CaptureFixture[str],
) -> None:
    unpromised, promised = _entry_with("max"), _entry_with("cortex-a57")
    summary = Summary()
    for folder, count in ((unpromised, 3), (promised, 2)):
        signature = load_entry(folder).signature
        summary.findings[signature] = FindingStats(signature, count=count, path=folder)
    unseen = Signature("refused-on-load", "known, not met")
    summary.findings[unseen] = FindingStats(unseen, path=promised)  # not met: not counted
    lost = Signature("state", "no entry")
    summary.findings[lost] = FindingStats(lost, count=1)
    assert summary.by_promise() == {"promised": 1, "not promised": 1, "ungraded": 1}
    fuzz.cli._print_summary(summary)
    printed = capsys.readouterr().out
    assert "distinct divergences met: 3 (1 promised, 1 not promised, 1 ungraded)" in printed
    unpromised_grade = load_entry(unpromised).promise
    assert f"promise: not promised \u2014 {unpromised_grade.reason}" in printed
    assert printed.count("promise: ") == 2  # the finding without an entry has none


def test_bisect_prints_the_promise_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``bisect``'s output around its axes (the axes themselves need QEMU)."""
    monkeypatch.setattr(fuzz.cli, "_bisect", lambda *_a: [])
    folder = _entry_with("max")
    entry = load_entry(folder)
    assert main(["--cache-dir", str(tmp_path), "bisect", str(folder)]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == entry.promise.line()
    assert lines[2].startswith("Promise: not promised \u2014 CPU model max")
    assert main(["--cache-dir", str(tmp_path), "bisect", str(folder), "--json"]) == EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert (data["promise"], data["promise_reason"]) == ("not promised", entry.promise.reason)


def test_the_bug_report_says_whether_qemu_promises_it() -> None:
    for folder in (_entry_with("max"), _entry_with("cortex-a57")):
        entry = load_entry(folder)
        text = bug_report(entry)
        assert f"\n\n{entry.promise.line()}\n\n" in text
        head = text.split("## Versions")[0]
        assert "Promise: " in head  # before anything else a maintainer reads
