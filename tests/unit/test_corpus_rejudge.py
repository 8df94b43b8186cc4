"""Every committed corpus entry, judged again from what it recorded, gives its signature.

No QEMU runs: the entry's recorded control and pair outcomes go through the one judge
(:func:`fuzz.judge.oracles.judge`). What an entry records is enough for the step verdicts and for
the guest read-back (the transcripts are in the load steps' details). The re-saved streams
the state oracle compares are not stored; for a state divergence the entry keeps the
oracle's own comparison (``findings["state"]``), which stands in for the two streams here,
so the oracle's signature-making still runs. The replay against real QEMU is
``tests/corpus``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fuzz.core.case import Case, MachineConfig
from fuzz.core.devices import pci_drivers
from fuzz.core.outcome import Stage, StepOutcome, TransferOutcome, Verdict
from fuzz.corpus.entry import Entry, VersionRef, entry_folders, iter_entries, load_entry
from fuzz.errors import CorpusError
from fuzz.judge.oracles import AGREE, Agree, Divergence, Evidence, Judgement, Signature, judge
from fuzz.judge.past_refusal import PastRefusal
from fuzz.stateful.replay import is_sequence_entry
from fuzz.stream import compare
from fuzz.stream.compare import FieldChange, StreamDiff

CORPUS = Path(__file__).parents[2] / "corpus"
#: One-shot entries: a stateful one has no single judgement to re-make (its replay runs QEMU).
FOLDERS = [f for f in entry_folders(CORPUS) if not is_sequence_entry(f)]


def _recorded_diff(findings: dict[str, Any]) -> StreamDiff | None:
    data = findings.get("state")
    if not isinstance(data, dict):
        return None
    return StreamDiff(
        changed=tuple(FieldChange(**c) for c in data.get("changed", [])),
        only_before=tuple(data.get("only_before", [])),
        only_after=tuple(data.get("only_after", [])),
        compared=int(data.get("compared", 0)),
    )


@contextmanager
def _recorded_state(monkeypatch: pytest.MonkeyPatch, diff: StreamDiff) -> Iterator[None]:
    """Make the state oracle compare two placeholder re-saves as ``diff`` says."""
    with monkeypatch.context() as m:
        m.setattr(compare, "same_saved_state", lambda a, b: False)
        m.setattr(compare, "compare_resaves", lambda a, b, **_: diff)
        yield


def rejudge(entry: Entry, monkeypatch: pytest.MonkeyPatch) -> Judgement:
    """The judgement of ``entry``'s recorded outcomes, with no QEMU run; a refusal the
    engine loaded past (``findings["past_refusal"]``) joined with its recorded second load."""
    diff = _recorded_diff(entry.findings)
    devices = pci_drivers(entry.case.config.devices)  # as the engine gives them
    if diff is None:
        judgement = judge(Evidence(entry.control, entry.pair, pci_devices=devices))
    else:
        with _recorded_state(monkeypatch, diff):
            resaves = (b"control re-save", b"pair re-save")
            judgement = judge(Evidence(entry.control, entry.pair, *resaves, pci_devices=devices))
    record = entry.findings.get("past_refusal")
    if not isinstance(record, dict) or not isinstance(judgement, Divergence):
        return judgement
    past = PastRefusal.from_record(judgement, record, entry.control)
    # An entry found behind the refusal recorded the patched load as its pair.
    return past.judgement if entry.findings.get("behind") else past.joined()


def _causes_of(judgement: Judgement) -> tuple[Signature, ...]:
    if isinstance(judgement, Divergence):
        return judgement.signatures()
    if isinstance(judgement, Agree):
        return (AGREE,)
    return ()  # the control failed or the case is invalid: never recorded as a finding


def test_the_committed_corpus_has_entries_and_all_load() -> None:
    loaded = list(iter_entries(CORPUS))
    assert loaded, f"no entry under {CORPUS}"
    assert not [e for e in loaded if isinstance(e, CorpusError)]


@pytest.mark.parametrize("folder", FOLDERS, ids=[f.name for f in FOLDERS])
def test_entry_rejudges_to_its_recorded_signature(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = load_entry(folder)
    judgement = rejudge(entry, monkeypatch)
    # An entry stands for one root cause of its case.
    assert entry.signature in _causes_of(judgement), f"{folder.name}: judged {judgement}"
    # The entry says the same thing everywhere it says it.
    case_json = json.loads((folder / "case.json").read_text())
    assert Signature.from_json(case_json["signature"]) == entry.signature
    assert folder.name == entry.name
    if "signature" in entry.findings:
        assert entry.findings["signature"] == str(entry.signature)


# -- the re-judge itself, on entries made here -----------------------------------------------------


def _step(stage: Stage, verdict: Verdict, **details: Any) -> StepOutcome:
    return StepOutcome(stage, "7.2" if stage is Stage.SAVE else "x", verdict, details=details)


def _entry(pair_load: StepOutcome, findings: dict[str, Any], signature: Signature) -> Entry:
    save = _step(Stage.SAVE, Verdict.COMPLETED)
    control_load = replace(
        _step(Stage.LOAD, Verdict.COMPLETED, transcript="x0=0x1\n", transcript_complete=True),
        version="7.2",
    )
    return Entry(
        signature=signature,
        src=VersionRef("7.2", ""),
        dst=VersionRef("5.2", ""),
        case=Case(MachineConfig("virt-5.2", "max")),
        control=TransferOutcome("7.2", "7.2", save, control_load),
        pair=TransferOutcome("7.2", "5.2", save, replace(pair_load, version="5.2")),
        findings=findings,
    )


STATE = {
    "compared": 10,
    "changed": [{"path": "cpu/0/cpreg/SCTLR_EL1", "before": "0x1", "after": "0x2"}],
    "only_before": [],
    "only_after": [],
}


@pytest.mark.parametrize(
    ("pair_load", "findings", "expected"),
    [
        (
            _step(Stage.LOAD, Verdict.COMPLETED, transcript="x0=0x1\n", transcript_complete=True),
            {"state": STATE},
            Signature("state", "restored state differs: cpu/cpreg/SCTLR_EL1"),
        ),
        (
            _step(Stage.LOAD, Verdict.COMPLETED, transcript="x0=0x2\n", transcript_complete=True),
            {},
            Signature("state", "guest read-back differs: x*"),
        ),
        (
            _step(Stage.LOAD, Verdict.COMPLETED, transcript="x0=0x1\n", transcript_complete=True),
            {},
            AGREE,
        ),
    ],
    ids=["state-oracle", "read-back-oracle", "agree"],
)
def test_rejudge_reaches_the_state_oracles(
    pair_load: StepOutcome,
    findings: dict[str, Any],
    expected: Signature,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entry = _entry(pair_load, findings, expected)
    assert expected in _causes_of(rejudge(entry, monkeypatch))
    # an edited signature is told apart
    edited = replace(entry, signature=Signature(expected.kind, expected.detail + " edited"))
    assert edited.signature not in _causes_of(rejudge(edited, monkeypatch))
