"""The guest-visible oracle, without QEMU: read-backs parsed, cut out and compared.

The read-backs are real: the committed corpus entries' consoles and transcripts
(``corpus/*/outcome.json``), printed by the guests of :mod:`strategies.image` on QEMU. The
rules are the module's contract: one ``name=0x<hex>`` item per line, ``EXC`` reports kept,
everything else skipped, and the pair judged against the control, item by item.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fuzz.core.outcome import Stage, StepOutcome, TransferOutcome, Verdict
from fuzz.errors import CorpusError, InvalidInput
from fuzz.judge.oracles import Divergence, Evidence, Signature, guest_transcript_oracle
from fuzz.judge.transcript import (
    EXCEPTION_ITEM,
    TranscriptDifference,
    compare_transcripts,
    parse_transcript,
    pre_save_readback,
    readback_causes,
)

ENTRY = (
    Path(__file__).parents[2]
    / "corpus"
    / "refused-on-load-cpreg-only-in-incoming-stream-cnthp-tval-el2-c51e8249"
)
OUTCOME = json.loads((ENTRY / "outcome.json").read_text())
CONSOLE = OUTCOME["control"]["save"]["details"]["console"]  # 5.2, before its save
TRANSCRIPT = OUTCOME["control"]["load"]["details"]["transcript"]  # 5.2 -> 5.2
CHECKPOINT = "@@MIGFUZZ-CHECKPOINT@@"
ITEMS = {"el": "0x0000000000000001", "nzcv": "0x0000000060000000", "daif": "0x00000000000003c0"}


def test_a_real_read_back_parses_item_by_item() -> None:
    assert parse_transcript(TRANSCRIPT) == ITEMS
    assert list(parse_transcript(TRANSCRIPT)) == ["el", "nzcv", "daif"]  # printed order
    # The control's restore reads back what the source had before its checkpoint.
    assert parse_transcript(pre_save_readback(CONSOLE, CHECKPOINT)) == ITEMS


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ("", {}),
        ("x1=0x1\r\n  SCTLR_EL1=0x30D0198D  \n", {"x1": "0x1", "SCTLR_EL1": "0x30d0198d"}),
        # Names may carry dots, plus signs and indices.
        (
            "v0.d[1]=0xff\nICC_AP0R0+1=0x2\n_x=0x3\n",
            {"v0.d[1]": "0xff", "ICC_AP0R0+1": "0x2", "_x": "0x3"},
        ),
        # Junk, markers and near-items are skipped.
        (
            "@@MIGFUZZ-DONE@@\nx=1\nx=0x\n1x=0x1\nx=0x1 y\nx =0x1\nx=0xg\n -=0x1\nok=0x2\n",
            {"ok": "0x2"},
        ),
        # The first value of a repeated name wins.
        ("x=0x1\nx=0x2\n", {"x": "0x1"}),
        # An exception report is kept whole, under its own name; the first one wins.
        (
            "x=0x1\n  EXC  sync el1 esr=0x2000000  \nEXC later\ny=0x2\n",
            {"x": "0x1", EXCEPTION_ITEM: "sync el1 esr=0x2000000", "y": "0x2"},
        ),
        ("EXC\nEXCx=0x1\n", {"EXCx": "0x1"}),
    ],
)
def test_parse_rules(text: str, items: dict[str, str]) -> None:
    assert parse_transcript(text) == items
    assert list(parse_transcript(text)) == list(items)


def test_pre_save_read_back_is_what_comes_before_the_first_marker() -> None:
    assert pre_save_readback(CONSOLE, CHECKPOINT.encode()) == CONSOLE[: CONSOLE.index(CHECKPOINT)]
    assert pre_save_readback("a=0x1\n@@X@@\nb=0x2\n@@X@@", "@@X@@") == "a=0x1\n"
    assert pre_save_readback("@@X@@", b"@@X@@") == ""
    # A marker is latin-1, byte for byte.
    assert pre_save_readback("a\xe9b", b"\xe9") == "a"


def test_no_marker_no_read_back() -> None:
    with pytest.raises(InvalidInput, match=r"^checkpoint marker is empty$"):
        pre_save_readback(CONSOLE, b"")
    with pytest.raises(InvalidInput, match=r"^checkpoint marker is empty$"):
        pre_save_readback(CONSOLE, "")
    with pytest.raises(InvalidInput, match=r"checkpoint marker '@@NEVER@@' not in the console"):
        pre_save_readback(CONSOLE, b"@@NEVER@@")


# -- differences -------------------------------------------------------------------------


def test_difference_kinds_and_forms() -> None:
    differs = TranscriptDifference("nzcv", "0x60000000", "0x80000000")
    missing = TranscriptDifference("daif", "0x3c0", None)
    extra = TranscriptDifference(EXCEPTION_ITEM, None, "sync el1")
    assert (differs.kind, missing.kind, extra.kind) == ("differs", "missing", "extra")
    assert differs.signature == "guest read-back differs: nzcv"
    assert missing.signature == "guest read-back missing: daif"
    assert extra.signature == "guest read-back extra: exception"
    assert str(differs) == "nzcv: expected 0x60000000, got 0x80000000"
    assert str(missing) == "daif: expected 0x3c0, got (nothing)"
    assert str(extra) == "exception: expected (nothing), got sync el1"
    for difference in (differs, missing, extra):
        assert TranscriptDifference.from_json(difference.to_json()) == difference
    assert missing.to_json() == {"name": "daif", "expected": "0x3c0", "actual": None}


def test_a_difference_needs_a_side() -> None:
    with pytest.raises(InvalidInput, match=r"name='el': a difference needs at least one side"):
        TranscriptDifference("el", None, None)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "^transcript difference must be an object with a 'name' string$"),
        (["el"], "must be an object with a 'name' string"),
        ({"expected": "0x1"}, "must be an object with a 'name' string"),
        ({"name": 1, "expected": "0x1"}, "must be an object with a 'name' string"),
        ({"name": "el", "expected": 1}, "'el': sides must be strings"),
        ({"name": "el", "expected": "0x1", "actual": 2}, "'el': sides must be strings"),
        ({"name": "el"}, "name='el': a difference needs at least one side"),
    ],
)
def test_a_bad_recorded_difference_is_a_corpus_error(data: object, message: str) -> None:
    with pytest.raises(CorpusError, match=message):
        TranscriptDifference.from_json(data)


def test_compare_item_by_item() -> None:
    expected = {"el": "0x1", "nzcv": "0x6", "daif": "0x3c0"}
    assert compare_transcripts(expected, dict(expected)) == []
    assert compare_transcripts({}, {}) == []
    actual = {"exception": "sync", "nzcv": "0x8", "el": "0x1", "x": "0x0"}
    assert compare_transcripts(expected, actual) == [
        # expected's order first (differing, missing), then what only actual has, in order
        TranscriptDifference("nzcv", "0x6", "0x8"),
        TranscriptDifference("daif", "0x3c0", None),
        TranscriptDifference("exception", None, "sync"),
        TranscriptDifference("x", None, "0x0"),
    ]


# -- the oracle --------------------------------------------------------------------------


def transfer(dst: str, transcript: object = None, loaded: bool = True) -> TransferOutcome:
    save = StepOutcome(Stage.SAVE, "5.2", Verdict.COMPLETED)
    details = {} if transcript is None else {"transcript": transcript}
    load = StepOutcome(Stage.LOAD, dst, Verdict.COMPLETED, details=details) if loaded else None
    return TransferOutcome("5.2", dst, save, load)


def test_the_pair_is_judged_against_the_control() -> None:
    same = Evidence(transfer("5.2", TRANSCRIPT), transfer("11.1", TRANSCRIPT))
    assert guest_transcript_oracle(same) is None
    # 11.1 came back with other flags and an exception report, and without DAIF.
    pair = TRANSCRIPT.replace("0x0000000060000000", "0x0000000080000000").replace(
        "daif=0x00000000000003c0\n", "EXC sync el1\n"
    )
    found = guest_transcript_oracle(Evidence(transfer("5.2", TRANSCRIPT), transfer("11.1", pair)))
    assert isinstance(found, Divergence)
    # One signature per cause: the exception (DAIF, not printed after it, is its
    # consequence) and NZCV; the details list every difference in compare order.
    assert found.signatures() == (
        Signature("state", "guest read-back differs: exception"),
        Signature("state", "guest read-back differs: nzcv"),
    )
    assert found.details == {
        "differences": [
            {"name": "nzcv", "expected": "0x0000000060000000", "actual": "0x0000000080000000"},
            {"name": "daif", "expected": "0x00000000000003c0", "actual": None},
            {"name": "exception", "expected": None, "actual": "sync el1"},
        ]
    }


def test_an_item_only_one_side_printed_is_a_cause_and_a_missing_one_is_incomplete() -> None:
    control = transfer("5.2", "x=0x1\n")
    pair = transfer("11.1", "y=0x1\n")
    found = guest_transcript_oracle(Evidence(control, pair))
    assert found is not None
    assert [s.detail for s in found.signatures()] == [
        "guest read-back differs: incomplete",
        "guest read-back differs: y",
    ]


@pytest.mark.parametrize(
    ("names", "causes"),
    [
        (["z3", "z30", "z0"], ["z*"]),  # the Z-register truncation: one bug, one signature
        (["q1", "x4", "x30"], ["q*", "x*"]),
        (["GICD_IPRIORITYR3", "GICD_ISENABLER0", "GIC_PPI_IPRIORITYR7"],
         ["GICD_IPRIORITYR*", "GICD_ISENABLER*", "GIC_PPI_IPRIORITYR*"]),
        (["mem[0x40200000+0x10]", "mem[0x40200000+0x2000]"], ["mem*"]),
        # A flash bank's mode lost on restore shows in each read of either bank: one cause.
        (["pflash0.at40", "pflash1.at0", "pflash0.at0"], ["pflash*"]),
        (["SCTLR_EL1", "CNTKCTL_EL1", "sve_vl"], ["CNTKCTL_EL1", "SCTLR_EL1", "sve_vl"]),
    ],
)  # fmt: skip
def test_elements_of_one_register_file_are_one_cause(names: list[str], causes: list[str]) -> None:
    differences = [TranscriptDifference(n, "0x1", "0x2") for n in names]
    assert list(readback_causes(differences)) == causes


def test_items_missing_after_an_exception_are_its_consequence() -> None:
    differences = [
        TranscriptDifference("exception", None, "sync el1"),
        TranscriptDifference("x1", "0x1", None),
        TranscriptDifference("nzcv", "0x1", None),
    ]
    assert readback_causes(differences) == ("exception",)
    assert readback_causes(differences[1:]) == ("incomplete",)


@pytest.mark.parametrize(
    ("control", "pair"),
    [
        (transfer("5.2", TRANSCRIPT, loaded=False), transfer("11.1", "el=0x2\n")),
        (transfer("5.2", TRANSCRIPT), transfer("11.1", "el=0x2\n", loaded=False)),
        (transfer("5.2"), transfer("11.1", "el=0x2\n")),  # no read-back recorded
        (transfer("5.2", TRANSCRIPT), transfer("11.1")),
        (transfer("5.2", TRANSCRIPT), transfer("11.1", b"el=0x2\n")),  # not text
        (transfer("5.2", 1), transfer("11.1", "el=0x2\n")),
    ],
)
def test_no_read_back_on_either_side_tells_nothing(control, pair) -> None:
    assert guest_transcript_oracle(Evidence(control, pair)) is None
