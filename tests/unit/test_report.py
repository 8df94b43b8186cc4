"""The campaign report's data (``fuzz.report.gather``), its JUnit sibling and the CLI, without QEMU.

The folder is hand-made (``tests/report_fixture.py``): every number asserted here can be
counted from its events by eye.
"""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import pytest

from fuzz.cli import main
from fuzz.corpus.entry import entry_folders, load_entry
from fuzz.errors import CampaignError
from fuzz.judge.promise import release_of
from fuzz.report.gather import (
    CONTROL_CLEAN,
    CONTROL_FAILED,
    CONTROL_INVALID,
    CONTROL_SAME_VERSION,
    Severity,
    gather,
    severity_of,
    version_key,
)
from fuzz.report.html import render_html
from fuzz.report.junit import CLASSNAME, junit_xml, regress_case
from fuzz.report.plots import NOT_PROMISED_COLOUR, cell_text, matrix_png
from fuzz.triage.replay import RegressKind
from tests.report_fixture import (
    CONTROL_REASON,
    CRASH,
    FLAKY,
    HARNESS_REASON,
    INVALID_REASON,
    REPO_CORPUS,
    Campaign,
    make_campaign,
)


@pytest.fixture
def campaign(tmp_path: Path) -> Campaign:
    return make_campaign(tmp_path / "camp")


def test_severities_are_ordered_as_the_matrix_colours_them():
    assert Severity.AGREE < Severity.CONTROL_FAILED < Severity.STATE < Severity.REFUSED
    assert Severity.REFUSED < Severity.CRASHED
    assert severity_of("crashed-on-load") is Severity.CRASHED
    assert severity_of("hung-on-save") is Severity.CRASHED
    assert severity_of("refused-on-load") is Severity.REFUSED
    assert severity_of("state") is Severity.STATE
    assert severity_of("reuse") is Severity.STATE  # unknown kinds: a divergence all the same
    assert severity_of("same-version-refused-on-load") is Severity.REFUSED  # A's own refusal
    assert severity_of("same-version-state") is Severity.STATE


def test_versions_sort_by_number_not_text():
    assert sorted(["11.1", "5.2", "mine", "10.0"], key=version_key) == [
        "5.2", "10.0", "11.1", "mine",
    ]  # fmt: skip


def test_header_counts_and_sessions(campaign: Campaign):
    data = gather(campaign.root)
    assert data.pairs[1:] == (("11.1", "10.0"), ("11.1", "11.1"))
    assert (data.seed, data.budget_seconds, data.jobs) == (7, 60.0, 2)
    assert data.version_names == ("5.2", "10.0", "11.1")
    assert data.versions[2].version_line == "QEMU emulator version 11.1.0"
    assert data.cases == 8  # the torn last line is not a case
    assert [s.ended for s in data.sessions] == ["killed", "interrupted"]
    assert [s.cases for s in data.sessions] == [3, 5]
    assert data.seconds == pytest.approx(10.0)  # 4 s + 6 s, the gap between left out
    assert data.cases_per_second == pytest.approx(0.8)
    assert data.interrupted


def test_live_runs_add_up_over_workers_and_show_in_the_header(campaign: Campaign):
    data = gather(campaign.root)
    assert data.live_runs == 3
    assert dict(data.live_over) == {"unix": 2, "tcp": 1, "multifd": 2}
    assert data.live_over[0][1] == 2  # most first
    assert "3 (over " in render_html(data)


def test_live_cases_are_tabled_per_pair_by_headline_feature(campaign: Campaign):
    data = gather(campaign.root)
    assert data.live_by_pair == ((("11.1", "11.1"), (("unix", 1), ("multifd", 1))),)
    page = render_html(data)
    assert "Live migrations by pair" in page
    row = page[page.index("<td>11.1 \u2192 11.1</td>") :].split("</tr>")[0]
    # multifd 1, then a dash for xbzrle, postcopy and mapped-ram, then the transport
    assert row.count("<td>1</td>") == 1 and row.count("\u2014") == 3 and "unix 1" in row


def test_matrix_cells_take_the_worst_outcome_per_pair(campaign: Campaign):
    data = gather(campaign.root)
    cells = {(c.src, c.dst): c for c in data.cells}
    assert len(cells) == 9  # every source x destination over the campaign's versions
    entry_cell = cells[campaign.pair]
    assert entry_cell.cases == 5
    assert entry_cell.worst is Severity.REFUSED  # a refusal beats a failed control
    assert entry_cell.signatures == 1
    assert dict(entry_cell.kinds) == {"divergence": 2, "control-failed": 2, "harness": 1}
    crash_cell = cells["11.1", "10.0"]
    assert (crash_cell.cases, crash_cell.worst, crash_cell.signatures) == (
        2, Severity.CRASHED, 1,
    )  # fmt: skip
    assert cells["11.1", "11.1"].worst is Severity.AGREE
    assert cells["11.1", "11.1"].signatures == 0
    assert cells["10.0", "5.2"].worst is None  # not run
    assert cells["10.0", "5.2"].cases == 0
    assert sum(c.cases for c in data.cells) == data.cases


def test_series_counts_cases_and_signatures_in_campaign_time(campaign: Campaign):
    series = gather(campaign.root).series
    assert series[0].seconds == 0 and series[0].cases == 0
    assert [p.cases for p in series] == list(range(9))
    assert [p.signatures for p in series] == [0, 0, 1, 1, 2, 2, 2, 2, 2]
    assert [p.seconds for p in series[1:]] == [1.0, 2.0, 3.0, 5.0, 6.0, 7.0, 8.0, 8.5]


def test_state_coverage_per_version_and_section_from_coverage_json(campaign: Campaign):
    data = gather(campaign.root)
    assert [c.version for c in data.coverage] == ["5.2", "11.1"]  # oldest first
    new = data.coverage[1]
    assert new.saves == 4
    assert new.summary == "2 of 3 sections, 3 of 6 fields exercised (in 4 measured saves)"
    rows = {r.section: r for r in new.sections}
    assert list(rows) == ["cpu", "pl031", "pl061"]
    assert (rows["cpu"].fields_exercised, rows["cpu"].fields, rows["cpu"].saves) == (2, 3, 3)
    assert rows["cpu"].top == (("env.pc", 3), ("env.xregs", 2))  # most exercised first
    assert (rows["pl061"].fields_exercised, rows["pl061"].fields, rows["pl061"].top) == (0, 1, ())


def test_fields_exercised_over_campaign_time_end_at_coverage_json(campaign: Campaign):
    # The samples' counts where they changed, then coverage.json's total at the end.
    assert gather(campaign.root).coverage_series == ((0.0, 0), (1.0, 2), (3.0, 3), (10.0, 4))


def test_the_page_draws_a_coverage_table_per_version(campaign: Campaign):
    page = render_html(gather(campaign.root))
    assert '<h3 id="coverage-11.1">11.1: 2 of 3 sections, 3 of 6 fields exercised' in page
    assert "<td><code>pl031</code></td><td>1 / 2</td><td>1</td>" in page
    assert "<code>lr&lt;b&gt;</code> (1)" in page  # a field name is text, not markup
    assert "saves (of 4)" in page


def test_a_campaign_without_coverage_says_so(campaign: Campaign):
    (campaign.root / "coverage.json").unlink()
    data = gather(campaign.root)
    assert data.coverage == () and "no coverage.json" in data.coverage_note
    assert "no save was measured" in render_html(data)
    (campaign.root / "coverage.json").write_text("{")
    assert gather(campaign.root).coverage_note == "coverage.json does not parse"


def test_signatures_with_their_counts_pairs_and_entry(campaign: Campaign):
    signatures = gather(campaign.root).signatures
    assert [s.signature for s in signatures] == [CRASH, campaign.signature]  # worst first
    crash, found = signatures
    assert (crash.count, crash.pairs, crash.entry, crash.unstable) == (
        1, (("11.1", "10.0", 1),), None, True,
    )  # fmt: skip
    assert crash.severity is Severity.CRASHED
    assert crash.first_seen == 5.0
    assert found.count == 2
    assert found.pairs == ((*campaign.pair, 2),)
    assert found.versions == tuple(sorted(campaign.pair, key=version_key))
    assert found.first_seen == 2.0
    entry = found.entry
    assert entry is not None
    assert entry.path == campaign.entry
    assert dict(entry.config)["machine"].startswith("virt")
    assert entry.repro_path == campaign.entry / "repro.sh"
    assert entry.repro == (campaign.entry / "repro.sh").read_text()
    assert entry.listing == (campaign.entry / "guest.s").read_text()
    assert [(r.name, r.a, r.b, r.note) for r in entry.registers] == [
        ("ID_AA64ISAR0_EL1", "0x11120", None, "drop"),
    ]
    assert [(f.name, f.a, f.b) for f in entry.fields] == [
        ("cpu/0/env.pc", "0x40101000", "0x40101004"),
    ]
    assert entry.fields_source == "restored state"


def test_control_failures_invalid_cases_and_harness_problems_apart(campaign: Campaign):
    data = gather(campaign.root)
    assert data.control_failures == ((CONTROL_REASON, 2),)
    assert data.invalid_cases == ((INVALID_REASON, 1),)
    problems = "\n".join(data.harness_problems)
    assert "worker 1 lost (replaced): exit code -9" in problems
    assert f"shrink of '{CRASH}'" in problems
    assert "broken-entry" in problems
    assert CRASH not in {r for r, _ in data.control_failures}
    # A case the harness failed is counted in its bucket, never as a finding.
    assert data.harness_failures == ((HARNESS_REASON, 1),)
    assert HARNESS_REASON not in {s.signature for s in data.signatures}


def test_flaky_findings_are_listed_apart_with_their_reliability(campaign: Campaign):
    data = gather(campaign.root)
    [flaky] = data.flaky
    assert (flaky.signature, flaky.pair, flaky.reliability) == (FLAKY, campaign.pair, "1/10")
    assert FLAKY not in {s.signature for s in data.signatures}
    page = render_html(data)
    flaky_section = page[page.index('id="flaky"') : page.index('id="control"')]
    assert FLAKY in flaky_section and "1/10" in flaky_section
    assert "1 flaky" in page


def test_a_signature_shows_how_reliably_its_first_case_reproduced(campaign: Campaign):
    outcome_path = campaign.entry / "outcome.json"
    outcome = json.loads(outcome_path.read_text())
    outcome["findings"]["reliability"] = "3/3"
    outcome_path.write_text(json.dumps(outcome))
    data = gather(campaign.root)
    [sig] = [s for s in data.signatures if s.signature == campaign.signature]
    assert sig.reliability == "3/3"
    assert "3 of 3 runs of its first case" in render_html(data)


def test_a_finding_never_shrunk_is_a_problem_once_the_campaign_stopped(campaign: Campaign):
    events = campaign.root / "events.jsonl"
    lines = [line for line in events.read_text().splitlines() if "ReproducerWritten" not in line]
    events.write_text("\n".join(lines) + "\n")
    assert any("never shrunk" in p for p in gather(campaign.root).harness_problems)


def test_an_empty_campaign_still_gathers_and_renders(tmp_path: Path):
    root = tmp_path / "empty"
    (root / "corpus").mkdir(parents=True)
    (root / "campaign.json").write_text(json.dumps({"format": 1, "pairs": ["10.0:11.1"]}))
    (root / "events.jsonl").write_text(
        '{"type": "CampaignStarted", "t": 5.0}\n'
        '{"type": "CampaignStopped", "t": 6.0, "interrupted": false}\n'
    )
    data = gather(root)
    assert (data.cases, data.series, data.signatures) == (0, (), ())
    assert data.version_names == ("10.0", "11.1")
    assert all(c.worst is None for c in data.cells)
    assert data.cases_per_second == 0.0
    page = render_html(data)
    assert "this campaign is empty" in page
    assert "No divergence was found." in page


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("campaign.json", "is not a campaign folder (no campaign.json)"),
        ("events.jsonl", "without events.jsonl"),
        ("corpus", "without its corpus/ folder"),
        ("garbled", "cannot read the campaign record"),
        ("format", "not a format-1 campaign record"),
        ("pairs", "is not 'SRC:DST'"),
    ],
)
def test_a_damaged_folder_is_one_clear_error(campaign: Campaign, damage: str, message: str):
    root = campaign.root
    record = root / "campaign.json"
    if damage == "corpus":
        for p in sorted((root / "corpus").rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        (root / "corpus").rmdir()
    elif damage == "garbled":
        record.write_text("{not json")
    elif damage == "format":
        record.write_text(json.dumps({"format": 99}))
    elif damage == "pairs":
        record.write_text(json.dumps({"format": 1, "pairs": ["10.0-11.1"]}))
    else:
        (root / damage).unlink()
    with pytest.raises(CampaignError, match=re.escape(message)) as info:
        gather(root)
    assert "\n" not in str(info.value)


def test_html_escapes_campaign_text(campaign: Campaign):
    page = render_html(gather(campaign.root))
    assert "<b>&amp;</b>" not in page  # the signature's markup is text, not markup
    assert "x &lt;b&gt;&amp;amp;&lt;/b&gt; y" in page
    assert page.count('id="sig-') == 2
    assert "data:image/png;base64," in page
    assert "<script" not in page and "http://" not in page and "https://" not in page


def test_report_command_writes_the_page_and_refuses_a_non_campaign(
    campaign: Campaign, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    assert main(["report", str(campaign.root)]) == 0
    assert (campaign.root / "report.html").read_text().startswith("<!DOCTYPE html>")
    target = tmp_path / "elsewhere.html"
    assert main(["report", str(campaign.root), "-o", str(target)]) == 0
    assert target.is_file()
    capsys.readouterr()
    assert main(["report", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


@pytest.mark.parametrize(
    ("kind", "strict", "status"),
    [
        (RegressKind.SAME, False, "passed"),
        (RegressKind.CHANGED, False, "failed"),
        (RegressKind.UNUSABLE, False, "failed"),
        (RegressKind.CHANGED_WITH_BINARY, False, "skipped"),
        (RegressKind.CHANGED_WITH_BINARY, True, "failed"),
        (None, False, "failed"),
    ],
)
def test_junit_status_follows_regress(kind: RegressKind | None, strict: bool, status: str):
    assert regress_case("entry", kind, "line\n", strict=strict).status == status


def test_junit_xml_is_valid_and_escaped():
    cases = [
        regress_case("a-pass", RegressKind.SAME, "PASS     a-pass\n", strict=False),
        regress_case("b-changed", RegressKind.CHANGED, "CHANGED  b: <now> & \x1b[0m\n",
                     strict=False),
        regress_case("c-binary", RegressKind.CHANGED_WITH_BINARY, "BINARY   c\n", strict=False),
        regress_case("d-broken", None, "ERROR    d: case.json: missing\n", strict=False),
    ]  # fmt: skip
    root = ET.fromstring(junit_xml(cases).encode())
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "2", "1")
    testcases = suite.findall("testcase")
    assert [t.get("name") for t in testcases] == ["a-pass", "b-changed", "c-binary", "d-broken"]
    assert {t.get("classname") for t in testcases} == {CLASSNAME}
    assert testcases[0].find("failure") is None and testcases[0].find("skipped") is None
    assert testcases[0].findtext("system-out") == "PASS     a-pass\n"
    assert testcases[1].find("failure") is not None
    assert "<now> &" in (testcases[1].findtext("system-out") or "")
    assert testcases[2].find("skipped") is not None
    failure = testcases[3].find("failure")
    assert failure is not None
    assert "case.json: missing" in (failure.get("message") or "")


def test_rechecked_findings_show_the_last_word_per_entry(campaign: Campaign):
    events = campaign.root / "events.jsonl"
    lines = events.read_text().splitlines()[:-1]  # the torn last line aside
    for line in ("same divergence: x", "fixed: control and pair now agree (recorded x)"):
        lines.append(json.dumps({"type": "Rechecked", "t": 2005.5, "entry": "/k/entry-1",
                                 "signature": "refused-on-load: x", "verdict": line[:5],
                                 "line": line}))  # fmt: skip
    events.write_text("\n".join(lines) + "\n")
    data = gather(campaign.root)
    assert data.rechecked == (
        ("entry-1", "refused-on-load: x", "fixed: control and pair now agree (recorded x)"),
    )
    page = render_html(data)
    assert 'id="rechecked"' in page and "fixed: control and pair now agree" in page


def test_a_case_with_several_causes_counts_for_each(campaign: Campaign):
    """The headline signature is one of a case's root causes; the others are findings
    too (a 10-minute campaign showed 9 signatures where it met 13 causes)."""
    events = campaign.root / "events.jsonl"
    lines = events.read_text().splitlines()[:-1]  # the torn last line aside
    lines.append(json.dumps({
        "type": "CaseJudged", "t": 2005.8, "pair": ["11.1", "10.0"], "kind": "divergence",
        "signature": CRASH, "causes": [CRASH, "refused-on-load: second cause"],
        "reason": CRASH, "seconds": 0.5, "worker": 0,
    }))  # fmt: skip
    events.write_text("\n".join(lines) + "\n")
    data = gather(campaign.root)
    second = [s for s in data.signatures if s.signature == "refused-on-load: second cause"]
    assert [(s.count, s.pairs) for s in second] == [(1, (("11.1", "10.0", 1),))]
    assert {(c.src, c.dst): c.signatures for c in data.cells}["11.1", "10.0"] == 2
    assert data.series[-1].signatures == 3


def test_the_diagonal_is_the_control_of_every_case_from_its_source(campaign: Campaign):
    """Every case runs A -> A on its source first: the diagonal adds those controls up,
    whether or not A -> A was a pair of its own."""
    cells = {(c.src, c.dst): c for c in gather(campaign.root).cells}
    src = campaign.pair[0]
    assert src != "11.1"
    ours = cells[src, src]
    # Two divergences on the pair (their control was clean), two failed controls; the
    # case the harness failed tells nothing of its control.
    assert dict(ours.controls) == {CONTROL_CLEAN: 2, CONTROL_FAILED: 2}
    assert (ours.cases, ours.control_cases, ours.worst) == (0, 4, Severity.CONTROL_FAILED)
    assert (ours.signatures, ours.same_version) == (0, ())
    # 11.1 -> 11.1 is a pair too; the controls of 11.1 -> 10.0 (a crash, a setup error of
    # 10.0's) were clean.
    assert dict(cells["11.1", "11.1"].controls) == {CONTROL_CLEAN: 3}
    assert cells["11.1", "11.1"].cases == 1
    assert cells["10.0", "10.0"].worst is None  # never a source: no control ran on it
    assert cell_text(cells["10.0", "10.0"]) == ("not run",)
    assert cell_text(ours) == ("0 signatures", "4 controls", "control: 2 failed")
    assert cell_text(cells["11.1", "11.1"])[-1] == "control: all ran"


def _default_campaign(root: Path) -> Path:
    """A campaign over the default pairs (no A:A among them) whose controls showed
    same-version findings, failed, and could not be set up."""
    (root / "corpus").mkdir(parents=True)
    pairs = ["5.2:11.1", "11.1:5.2"]
    (root / "campaign.json").write_text(json.dumps({"format": 1, "pairs": pairs}))
    el3 = "same-version-refused-on-load: EL3 is not supported"
    zreg = "same-version-state: restored state differs: zregs"
    cases = [
        ("5.2", "11.1", "divergence", [el3], el3),
        ("5.2", "11.1", "divergence", [el3], el3),
        ("5.2", "11.1", "agree", [], ""),
        ("5.2", "11.1", "invalid", [], "5.2 -> 5.2: setup-error: no such machine"),
        ("11.1", "5.2", "divergence", [zreg], zreg),
        ("11.1", "5.2", "divergence", ["refused-on-load: x"], "refused-on-load: x"),
        ("11.1", "5.2", "control-failed", [], "11.1 -> 11.1: read-back incomplete"),
        ("11.1", "5.2", "invalid", [], "11.1 -> 5.2: setup-error: no such machine"),
    ]
    lines = [{"type": "CampaignStarted", "t": 10.0}]
    lines += [
        {"type": "CaseJudged", "t": 11.0 + i, "pair": [src, dst], "kind": kind,
         "signature": causes[0] if causes else None, "causes": causes, "reason": reason,
         "worker": 0}
        for i, (src, dst, kind, causes, reason) in enumerate(cases)
    ]  # fmt: skip
    lines.append({"type": "CampaignStopped", "t": 30.0, "interrupted": False})
    (root / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    return root


def test_a_default_campaign_fills_the_diagonal(tmp_path: Path):
    data = gather(_default_campaign(tmp_path / "default"))
    cells = {(c.src, c.dst): c for c in data.cells}
    old, new = cells["5.2", "5.2"], cells["11.1", "11.1"]
    assert (old.cases, new.cases) == (0, 0)  # neither A -> A was a pair
    assert dict(old.controls) == {CONTROL_SAME_VERSION: 2, CONTROL_CLEAN: 1, CONTROL_INVALID: 1}
    assert old.same_version == (("same-version-refused-on-load: EL3 is not supported", 2),)
    assert (old.worst, old.signatures) == (Severity.REFUSED, 1)  # a refusal of A's own
    assert dict(new.controls) == {CONTROL_SAME_VERSION: 1, CONTROL_CLEAN: 2, CONTROL_FAILED: 1}
    assert (new.worst, new.signatures) == (Severity.STATE, 1)
    assert all(cell_text(c) != ("not run",) for c in (old, new))
    # The off-diagonal cells are as they were: a same-version finding is met on A -> B too.
    assert cells["5.2", "11.1"].signatures == 1 and cells["5.2", "11.1"].cases == 4
    assert sum(c.cases for c in data.cells) == data.cases
    [el3] = [s for s in data.signatures if s.kind == "same-version-refused-on-load"]
    assert el3.severity is Severity.REFUSED and el3.count == 2
    page = render_html(data)
    controls = page[page.index('id="controls"') : page.index('id="time"')]
    assert "same-version-refused-on-load: EL3 is not supported (2)" in controls
    assert "<td>5.2</td><td>4</td><td>1</td><td>2</td><td>0</td><td>1</td>" in controls


# -- promise grades: not-promised findings apart, and a promised-only view ---------------


def _graded_entries() -> tuple[Path, Path, Path]:
    """Committed entries: one not promised for its max CPU, one promised refusal on another
    pair, one not promised for its backward jump of several releases (named CPU)."""
    entries = [load_entry(f) for f in entry_folders(REPO_CORPUS) if (f / "case.json").is_file()]
    cross = [e for e in entries if not e.signature.same_version and e.src.name != e.dst.name]
    max_cpu = next(e for e in cross if e.case.config.cpu == "max" and not e.promise.promised)
    promised = next(
        e for e in cross
        if e.promise.promised and e.signature.kind.startswith("refused")
        and (e.src.name, e.dst.name) != (max_cpu.src.name, max_cpu.dst.name)
    )  # fmt: skip
    backward = next(
        e for e in cross if not e.promise.promised and "backward jump" in e.promise.reason
    )
    assert backward.path and max_cpu.path and promised.path
    return max_cpu.path, promised.path, backward.path


def _one_back(name: str, line: str) -> str:
    """The version line of the release just before ``name``'s."""
    release = release_of(name, line)
    assert release is not None and release.major > 3
    major, minor = (release.major, release.minor - 1) if release.minor else (release.major - 1, 2)
    return f"QEMU emulator version {major}.{minor}.0"


def _graded_campaign(root: Path, folders: Sequence[Path]) -> Path:
    """A campaign whose corpus holds ``folders``: each finding met twice on its own pair;
    the first also once on the second's pair; the last also once on a pair one release
    back from its source (version ``prev``)."""
    (root / "corpus").mkdir(parents=True)
    entries = [load_entry(f) for f in folders]
    for folder in folders:
        shutil.copytree(folder, root / "corpus" / folder.name)
    last = entries[-1]
    versions = {
        ref.name: {"version_line": ref.version_line, "sha256": ref.sha256}
        for e in entries for ref in (e.src, e.dst)
    }  # fmt: skip
    versions["prev"] = {"version_line": _one_back(last.src.name, last.src.version_line)}
    cases = [(e.src.name, e.dst.name, str(e.signature)) for e in entries for _ in range(2)]
    if len(entries) > 1:
        cases.append((entries[1].src.name, entries[1].dst.name, str(entries[0].signature)))
    cases.append((last.src.name, "prev", str(last.signature)))
    pairs = sorted({f"{src}:{dst}" for src, dst, _sig in cases})
    record = {"format": 1, "pairs": pairs, "versions": versions}
    (root / "campaign.json").write_text(json.dumps(record))
    lines: list[dict[str, object]] = [{"type": "CampaignStarted", "t": 10.0}]
    lines += [
        {"type": "CaseJudged", "t": 11.0 + i, "pair": [src, dst], "kind": "divergence",
         "signature": sig, "causes": [sig], "reason": sig, "worker": 0}
        for i, (src, dst, sig) in enumerate(cases)
    ]  # fmt: skip
    lines.append({"type": "CampaignStopped", "t": 30.0, "interrupted": False})
    (root / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    return root


def test_each_signature_carries_its_entrys_promise_grade(tmp_path: Path):
    folders = _graded_entries()
    data = gather(_graded_campaign(tmp_path / "graded", folders))
    by_name = {s.signature: s for s in data.signatures}
    for folder in folders:
        entry = load_entry(folder)
        found = by_name[str(entry.signature)]
        assert (found.promise, found.promise_reason) == (
            str(entry.promise.promise), entry.promise.reason,
        )  # fmt: skip
        assert found.not_promised is not entry.promise.promised
    crash = gather(make_campaign(tmp_path / "fixture").root).signatures[0]
    assert crash.signature == CRASH and crash.entry is None
    assert (crash.promise, crash.not_promised) == ("", False)  # no entry: not graded


def test_a_pair_that_met_only_unpromised_findings_is_told_apart(tmp_path: Path):
    max_cpu, promised, backward = (load_entry(f) for f in _graded_entries())
    data = gather(_graded_campaign(tmp_path / "graded", _graded_entries()))
    cells = {(c.src, c.dst): c for c in data.cells}
    alone = cells[max_cpu.src.name, max_cpu.dst.name]
    assert (alone.signatures, alone.not_promised, alone.cases) == (1, 1, 2)
    assert (alone.worst, alone.promised_worst) == (Severity.REFUSED, Severity.AGREE)
    assert alone.only_not_promised
    assert cell_text(alone) == ("1 signature", "1 not promised", "2 cases")
    assert cell_text(alone, promised_only=True) == ("0 signatures", "2 cases")
    # The max-CPU finding met on a promised refusal's pair is still not promised there.
    mixed = cells[promised.src.name, promised.dst.name]
    assert (mixed.signatures, mixed.not_promised, mixed.cases) == (2, 1, 3)
    assert mixed.worst is mixed.promised_worst is Severity.REFUSED
    assert not mixed.only_not_promised
    # Graded per pair: the backward jump is not promised on its own pair, promised one
    # release back (the entry's configuration on that pair's versions).
    assert cells[backward.src.name, backward.dst.name].only_not_promised
    back_one = cells[backward.src.name, "prev"]
    assert (back_one.not_promised, back_one.promised_worst) == (0, Severity.REFUSED)


def test_the_page_colours_unpromised_pairs_and_filters_promised_only(tmp_path: Path):
    data = gather(_graded_campaign(tmp_path / "graded", _graded_entries()))
    assert matrix_png(data) != matrix_png(data, promised_only=True)
    page = render_html(data)
    box = page.index('<input type="checkbox" id="promised-only">')
    assert '<label class="filter" for="promised-only">' in page
    assert box < page.index('<img id="matrix"') < page.index('<img id="matrix-promised"')
    assert box < page.index('id="signatures"')
    assert "#promised-only:checked ~ section.not-promised" in page
    assert page.count('<section class="signature not-promised"') == 2
    assert page.count('<li class="not-promised">') == 2
    assert page.count('<section class="signature" id=') == 1
    assert "<th>promise</th><td>not promised \u2014 CPU model max" in page
    assert f"background:{NOT_PROMISED_COLOUR}" in page
    assert "(2 not promised)" in page  # the banner's count
    assert "<script" not in page


def test_a_campaign_with_only_promised_findings_has_no_filter(tmp_path: Path):
    _max_cpu, promised, _backward = _graded_entries()
    data = gather(_graded_campaign(tmp_path / "promised", [promised]))
    assert not any(c.not_promised for c in data.cells)
    page = render_html(data)
    assert 'id="promised-only"' not in page and 'id="matrix-promised"' not in page
    assert "Every graded finding of this campaign is promised." in page
