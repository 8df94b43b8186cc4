"""A small hand-made campaign folder for the report's tests (unit and e2e), no QEMU.

Two sessions (the first killed, the second interrupted), seven judged cases on three
pairs, one real corpus entry copied from the repository's ``corpus/`` and one broken
entry. The numbers the tests expect are spelled out next to the events that make them.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from fuzz.corpus.entry import entry_folders, load_entry
from fuzz.errors import CorpusError

REPO_CORPUS = Path(__file__).parents[1] / "corpus"
CRASH = "crashed-on-load: assertion in vmstate_load_state: x <b>&amp;</b> y"
"""A signature known before the campaign (no entry here); markup in it must be escaped."""
CONTROL_REASON = "5.2 -> 5.2: refused: error while loading state for instance 0x0 of device 'cpu'"
INVALID_REASON = "11.1 -> 10.0: setup-error: machine type 'virt-11.1' not supported"
HARNESS_REASON = "monitor: QMP connection lost"
FLAKY = "state: guest read-back differs: CNTV_CVAL_EL0"


#: The folder's ``coverage.json``: 11.1 has 2 of 3 sections and 3 of 6 fields exercised in
#: 4 measured saves (``<b>`` must be escaped); 5.2 one of one: 4 fields exercised in all.
COVERAGE = {
    "format": 1,
    "versions": {
        "11.1": {"saves": 4, "sections": {
            "cpu": {"saves": 3, "fields": {"env.pc": 3, "env.xregs": 2, "cpreg/SCTLR_EL1": 0}},
            "pl031": {"saves": 1, "fields": {"lr<b>": 1, "cr": 0}},
            "pl061": {"saves": 0, "fields": {"dir": 0}},
        }},
        "5.2": {"saves": 1, "sections": {"cpu": {"saves": 1, "fields": {"env.pc": 1}}}},
    },
}  # fmt: skip


@dataclass(frozen=True)
class Campaign:
    """The folder and what it holds: the entry's signature and pair."""

    root: Path
    entry: Path
    signature: str
    pair: tuple[str, str]


def real_entry() -> Path:
    """A committed corpus entry that loads: a refusal of 5.2 -> 11.1 (the hand-made
    campaign's versions are 5.2, 10.0 and 11.1)."""
    for folder in entry_folders(REPO_CORPUS):
        try:
            entry = load_entry(folder)
        except CorpusError:  # the corpus may be mid re-record: take any good entry
            continue
        pair = (entry.src.name, entry.dst.name)
        if entry.signature.kind.startswith("refused") and pair == ("5.2", "11.1"):
            return folder
    pytest.skip(f"no loadable refusal entry in {REPO_CORPUS}")


def make_campaign(root: Path, *, findings: bool = True) -> Campaign:
    """Write the hand-made campaign folder under ``root``.

    :param findings: also give the entry responsible registers and a changed field (the
        committed entries' findings vary as the corpus is re-recorded).
    """
    source = real_entry()
    entry = load_entry(source)
    signature, pair = str(entry.signature), (entry.src.name, entry.dst.name)
    root.mkdir(parents=True)
    versions = {
        name: {"sha256": f"{i}" * 64, "version_line": f"QEMU emulator version {name}.0",
               "path": f"/opt/qemu/{name}/qemu-system-aarch64"}
        for i, name in enumerate(["11.1", "5.2", "10.0"], 1)
    }  # fmt: skip
    (root / "campaign.json").write_text(json.dumps({
        "format": 1, "pairs": [f"{pair[0]}:{pair[1]}", "11.1:10.0", "11.1:11.1"], "seed": 7,
        "budget_seconds": 60.0, "max_cases": None, "jobs": 2, "versions": versions,
        "migfuzz": "0.1.0", "started": "2026-01-01T00:00:00Z",
    }))  # fmt: skip
    corpus = root / "corpus"
    corpus.mkdir()
    copy = corpus / source.name
    shutil.copytree(source, copy)
    if findings:
        outcome = json.loads((copy / "outcome.json").read_text())
        outcome["findings"]["localization"] = {
            "note": "",
            "registers": [
                {"name": "ID_AA64ISAR0_EL1", "src": "0x11120", "dst": None, "action": "drop"}
            ],
        }
        outcome["findings"]["pair_state"] = {
            "changed": [{"path": "cpu/0/env.pc", "before": "0x40101000", "after": "0x40101004"}]
        }
        (copy / "outcome.json").write_text(json.dumps(outcome))
    (corpus / "broken-entry").mkdir()
    (corpus / "broken-entry" / "case.json").write_text("{")

    def judged(
        t: float, pair: tuple[str, str], kind: str, sig: str | None, reason: str = "",
        live: tuple[str, ...] = (),
    ):  # fmt: skip
        return {"type": "CaseJudged", "t": t, "pair": list(pair), "kind": kind,
                "signature": sig, "reason": reason or (sig or ""), "seconds": 0.5,
                "worker": 0, "live": list(live)}  # fmt: skip

    events = [
        # session 1: 1000 .. 1004 (4 s), killed: no CampaignStopped
        {"type": "CampaignStarted", "t": 1000.0, "jobs": 2, "resumed": False},
        {"type": "RunStarted", "t": 1000.5, "worker": 0, "run_index": 0},
        judged(1001.0, ("11.1", "11.1"), "agree", None, live=("unix", "multifd")),
        judged(1002.0, pair, "divergence", signature),
        {"type": "FindingSeen", "t": 1002.5, "signature": signature, "pair": list(pair),
         "path": str(copy), "worker": 0},
        judged(1003.0, pair, "control-failed", None, CONTROL_REASON),
        {"type": "WorkerLost", "t": 1004.0, "worker": 1, "reason": "exit code -9",
         "replaced": True},
        # session 2: 2000 .. 2006 (6 s), interrupted
        {"type": "CampaignStarted", "t": 2000.0, "jobs": 2, "resumed": True},
        {"type": "ReproducerWritten", "t": 2000.5, "signature": signature, "path": str(copy),
         "minimize_tests": 3},
        judged(2001.0, ("11.1", "10.0"), "divergence", CRASH),
        judged(2002.0, pair, "divergence", signature),
        judged(2003.0, ("11.1", "10.0"), "invalid", None, INVALID_REASON),
        judged(2004.0, pair, "control-failed", None, CONTROL_REASON),
        judged(2004.5, pair, "harness", None, HARNESS_REASON),
        {"type": "FindingFlaky", "t": 2004.7, "signature": FLAKY, "pair": list(pair),
         "path": "corpus/.flaky/x", "reliability": "1/10"},
        {"type": "ReproducerUnstable", "t": 2005.0, "signature": CRASH, "path": "x",
         "now": "agree"},
        # Two workers' ends: their engine counts add up (3 live runs, 2 over multifd).
        {"type": "WorkerFinished", "t": 2005.5, "worker": 0, "python_seconds": 1.0,
         "qemu_seconds": 2.0, "engine": {"fresh": 4, "live": 2, "live_unix": 2,
                                         "live_multifd": 1}},
        {"type": "WorkerFinished", "t": 2005.6, "worker": 1, "python_seconds": 1.0,
         "qemu_seconds": 2.0, "engine": {"fresh": 1, "live": 1, "live_tcp": 1,
                                         "live_multifd": 1}},
        {"type": "CampaignStopped", "t": 2006.0, "interrupted": True, "cases": 7,
         "seconds": 10.0},
    ]  # fmt: skip
    lines = [json.dumps(e) for e in events]
    (root / "events.jsonl").write_text("\n".join(lines) + '\n{"type": "CaseJu')  # torn line
    # Fields exercised: 2 from 1001 (1 s), 3 from 1003 (3 s); coverage.json's 4 in the end.
    samples = [{"t": 1000.0 + s, "cases": s, "seconds": float(s), "signatures": 1,
                "fields_exercised": (0, 2, 2, 3)[s]} for s in range(4)]  # fmt: skip
    (root / "timeseries.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    (root / "coverage.json").write_text(json.dumps(COVERAGE))
    return Campaign(root, copy, signature, pair)
