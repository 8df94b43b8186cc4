"""Live cases as the engine, the judge, the corpus and the reproducer see them (pure parts).

What a live migration ended as becomes a save and a load the one judge reads
(``live_transfer``); its signatures say ``live``; a live case round-trips through a corpus
entry; its ``repro.sh`` sends the QMP the runner sends, in its order, with the engine's
command lines; the campaign's strategy draws live groups only where both probes list
migration facts, and they shrink to paused ones.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import find, settings

from fuzz.core import command as qemu_command
from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case, MachineConfig
from fuzz.core.command import ShellText
from fuzz.core.live import (
    LiveMigration,
    LiveOutcome,
    Multifd,
    NegotiationFailure,
    Postcopy,
    feature_counts,
    unsupported,
)
from fuzz.core.outcome import Stage, StepOutcome, TransferOutcome, Verdict
from fuzz.corpus.entry import Entry, VersionRef, load_entry, write_entry
from fuzz.corpus.live_repro import live_commands, live_steps
from fuzz.judge.oracles import Divergence, Evidence, Signature, judge
from fuzz.run.live_case import live_load_failed, live_signed, live_transfer, signed_as_paused
from strategies.cases import PairCases
from strategies.image import build_live_guest
from tests.migration_probes import PROBES  # the recorded probes of each version

CONFIG = MachineConfig("virt-10.0", "cortex-a57")
GUEST = build_live_guest([])
DONE = "@@MIGFUZZ-DONE@@"
READ_BACK = f"live.iterations_nonzero=0x1\nlive.pattern_bad_pages=0x0\nnzcv=0x0\n{DONE}\n"


def _outcome(verdict: Verdict = Verdict.COMPLETED, **kwargs: object) -> LiveOutcome:
    src = StepOutcome(Stage.SAVE, "11.1", Verdict.COMPLETED)
    dst = StepOutcome(Stage.LOAD, "10.0", verdict, details={
        "transcript": READ_BACK, "transcript_complete": True})  # fmt: skip
    fields: dict[str, object] = {
        "live": LiveMigration(), "src_version": "11.1", "dst_version": "10.0",
        "verdict": verdict, "stage": "done", "source": src, "destination": dst,
        "pre_save": "nzcv=0x0\n@@MIGFUZZ-CHECKPOINT@@", "transcript": READ_BACK,
    }  # fmt: skip
    fields.update(kwargs)
    return LiveOutcome(**fields)  # type: ignore[arg-type]


def test_a_completed_migration_is_a_completed_save_and_load() -> None:
    transfer = live_transfer(_outcome())
    assert transfer.verdict is Verdict.COMPLETED
    assert transfer.save.details["console"].startswith("nzcv=0x0")
    assert transfer.save.details["live"] == LiveMigration().to_json()
    assert transfer.load is not None and transfer.load.details["transcript"] == READ_BACK


def test_a_side_that_refuses_the_setup_is_the_step_that_failed() -> None:
    refused = NegotiationFailure("destination", "migrate-set-capabilities", "no multifd here")
    outcome = _outcome(Verdict.REFUSED, stage="negotiate", negotiation=(refused,))
    transfer = live_transfer(outcome)
    assert transfer.save.verdict is Verdict.COMPLETED
    assert transfer.load is not None and transfer.load.verdict is Verdict.REFUSED
    assert "no multifd here" in transfer.load.headline
    by_source = replace(refused, side="source")
    transfer = live_transfer(_outcome(Verdict.REFUSED, stage="negotiate", negotiation=(by_source,)))
    assert transfer.save.verdict is Verdict.REFUSED and transfer.load is None


def test_a_read_back_that_did_not_finish_is_the_judges_not_a_hang() -> None:
    dst = StepOutcome(Stage.LOAD, "11.1", Verdict.COMPLETED,
                      details={"transcript": "nzcv", "transcript_complete": False})  # fmt: skip
    outcome = _outcome(Verdict.HUNG, stage="read-back", destination=dst, dst_version="11.1")
    control = live_transfer(outcome)
    assert control.load is not None and control.load.verdict is Verdict.COMPLETED
    judgement = judge(Evidence(control=control, pair=control))
    assert type(judgement).__name__ == "ControlFailed"


def test_only_the_migrations_own_causes_are_signed_live() -> None:
    """A device state the destination refuses is what a paused load meets too: signed as
    that one (a campaign counts it once); a hang or a refused setup is the migration's."""
    control = live_transfer(_outcome(dst_version="11.1"))

    def signed(outcome: LiveOutcome) -> Signature:
        judgement = live_signed(judge(Evidence(control=control, pair=live_transfer(outcome))))
        assert isinstance(judgement, Divergence) and judgement.details["live"] is True
        return judgement.signature

    crash = _outcome(Verdict.CRASHED, stage="migrate",
                     messages=("vmstate.c:172: f: Assertion `x' failed.",))  # fmt: skip
    assert signed(crash) == Signature("crashed-on-load", "assertion in f: x")
    hang = _outcome(Verdict.HUNG, stage="migrate", messages=("did not end in time",))
    assert signed(hang).detail == "live"
    refused = NegotiationFailure("destination", "migrate-set-capabilities", "no multifd here")
    setup = _outcome(Verdict.REFUSED, stage="negotiate", negotiation=(refused,))
    assert signed(setup).detail.startswith("live: destination refused migrate-set-capabilities")
    channel = _outcome(Verdict.REFUSED, stage="migrate", messages=(
        "loadvm failed during postcopy: -1: Channel error: Operation not permitted",))  # fmt: skip
    assert signed(channel).detail.startswith("live: ")


def test_a_live_hang_is_signed_by_where_the_source_stuck() -> None:
    # 10.2.2 -> 5.2 over postcopy stays in postcopy-device; a precopy that never converges
    # stays in active: two hangs, two causes.
    control = live_transfer(_outcome(dst_version="11.1"))
    statuses = ("src:setup", "src:active", "src:device", "src:postcopy-device")
    hang = _outcome(Verdict.HUNG, stage="migrate", messages=("did not end in time",),
                    statuses=statuses)  # fmt: skip
    evidence = Evidence(control=control, pair=live_transfer(hang))
    signed = live_signed(judge(evidence), evidence)
    assert isinstance(signed, Divergence)
    assert str(signed.signature) == "hung-on-load: live: source stuck in postcopy-device"


def test_where_a_failed_channel_stopped_the_load_is_not_in_its_signature() -> None:
    # A channel that fails mid-load stops it wherever the stream had got to: the traced
    # field differs from run to run, so a live cause leaves it out; a paused-style cause
    # (a crash on the state) keeps it, as the paused load's signature has it.
    control = live_transfer(_outcome(dst_version="11.1"))
    words = "loadvm failed during postcopy: -1: Channel error: Operation not permitted"
    path = {"last_field": "cpu/irq-line-state:env.irq_line_state"}
    dst = StepOutcome(Stage.LOAD, "11.1", Verdict.REFUSED, [words], details={"load_path": path})
    outcome = _outcome(Verdict.REFUSED, stage="migrate", messages=(words,), destination=dst)
    evidence = Evidence(control=control, pair=live_transfer(outcome))
    unsigned = judge(evidence)
    assert isinstance(unsigned, Divergence) and unsigned.signature.detail.endswith(
        "after cpu/irq-line-state:env.irq_line_state"
    )
    signed = live_signed(unsigned, evidence)
    assert isinstance(signed, Divergence)
    assert signed.signature.detail.startswith("live: ") and " after " not in signed.signature.detail
    abort = "vmstate.c:172: f: Assertion `x' failed."
    crashed = replace(dst, verdict=Verdict.CRASHED, messages=[abort], returncode=-6)
    crash = _outcome(Verdict.CRASHED, stage="migrate", messages=(abort,), destination=crashed)
    evidence = Evidence(control=control, pair=live_transfer(crash))
    kept = live_signed(judge(evidence), evidence)
    assert isinstance(kept, Divergence)
    assert kept.signature.detail.endswith("after cpu/irq-line-state:env.irq_line_state")


def test_a_broken_pattern_after_a_same_version_migration_is_a_finding() -> None:
    broken = READ_BACK.replace("pattern_bad_pages=0x0", "pattern_bad_pages=0x3")
    dst = StepOutcome(Stage.LOAD, "11.1", Verdict.COMPLETED,
                      details={"transcript": broken, "transcript_complete": True})  # fmt: skip
    control = live_transfer(_outcome(dst_version="11.1", destination=dst, transcript=broken))
    judgement = judge(Evidence(control=control, pair=control))
    assert isinstance(judgement, Divergence) and judgement.signature.same_version
    assert "live.pattern_bad_pages" in judgement.signature.detail


def test_a_live_case_round_trips_through_an_entry(tmp_path: Path) -> None:
    live = LiveMigration(transport="tcp", multifd=Multifd(2, "zstd"))
    case = Case(CONFIG, GUEST, live=live)
    assert case.key() != Case(CONFIG, GUEST).key()
    ref = VersionRef("11.1", "0" * 64, "QEMU emulator version 11.1.3")
    control = live_transfer(_outcome(dst_version="11.1"))
    pair = live_transfer(_outcome(Verdict.CRASHED, stage="migrate", messages=("boom",)))
    entry = Entry(Signature("crashed-on-load", "live: boom"), ref, replace(ref, name="10.0"),
                  case, control, pair)  # fmt: skip
    binary = QemuBinary("11.1", Path("/usr/bin/qemu-system-aarch64"), "user")
    folder, _ = write_entry(tmp_path, entry, binary, binary)
    loaded = load_entry(folder)
    assert loaded.case.live == live and loaded.case.guest is not None and loaded.case.guest.live
    assert loaded.case.key() == case.key()
    assert loaded.stream is None
    script = (folder / "repro.sh").read_text()
    assert "# migration: tcp multifd=2/zstd" in script and "lz4" not in script


def _sent(lines: list[str]) -> list[tuple[str, str]]:
    """(side, QMP command) for every ``qmp`` line of a reproducer's steps."""
    sent = []
    for line in lines:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = list(lexer)
        if "qmp" not in words:
            continue
        words = words[words.index("qmp") :]
        end = next((i for i, w in enumerate(words) if w in {"|", ">", "||", "&&"}), len(words))
        side = "src" if "-src" in words[1] else "dst"
        sent += [(side, json.loads(w)["execute"]) for w in words[2:end]]
    return sent


@pytest.mark.parametrize(
    "live",
    [
        LiveMigration(),
        LiveMigration(transport="tcp", postcopy=Postcopy(5)),
        LiveMigration(postcopy=Postcopy(after_first_pass=True)),
        LiveMigration(transport="file", mapped_ram=True, multifd=Multifd(2)),
    ],
    ids=LiveMigration.describe,
)
def test_a_reproducer_sends_what_the_runner_sends(live: LiveMigration) -> None:
    sent = _sent(live_steps(live, "@@CHECK@@"))
    setup = [c.name for c in live.setup_commands()]
    dst = [name for side, name in sent if side == "dst"]
    src = [name for side, name in sent if side == "src"]
    if live.needs_source_first():  # the destination reads the file once the source is done
        assert dst == [*setup, "migrate-incoming", "query-migrate", "cont"]
    else:
        assert dst == [*setup, "migrate-incoming", "query-migrate", "cont"]
        assert sent.index(("dst", "migrate-incoming")) < sent.index(("src", "migrate"))
    expected = [*setup, "cont", "migrate"]
    if live.postcopy is not None:
        expected += ["query-migrate"] if live.postcopy.after_first_pass else []
        expected += ["migrate-start-postcopy"]
    assert src == [*expected, "query-migrate"]


def test_a_reproducers_qemu_words_are_the_engines() -> None:
    """The reproducer's commands differ from the engine's only in their channels."""
    case = Case(CONFIG, GUEST, live=LiveMigration())
    src, dst = live_commands(case)
    image = ShellText("$HERE/guest.bin")
    engine_src = qemu_command.live_source(CONFIG, GUEST, image)
    engine_dst = qemu_command.live_destination(CONFIG)
    assert replace(src, monitor=None, serial=None) == replace(engine_src, monitor=None, serial=None)
    assert replace(dst, monitor=None, serial=None) == replace(engine_dst, monitor=None, serial=None)
    assert "-incoming defer" in dst.shell() and "-S" not in dst.argv()


def test_the_campaign_draws_live_groups_where_both_probes_allow() -> None:
    strategy = PairCases(live_every=2, live_guests=1, guests_per_config=2)
    new, old = PROBES["11.1"], PROBES["10.0"]
    live_group = find(strategy(new, old), lambda g: g[0].live is not None,
                      settings=settings(max_examples=200, database=None))  # fmt: skip
    # Shrunk: the plainest migration, one guest that writes its pattern.
    assert live_group[0].live == LiveMigration()
    assert len(live_group) == 1 and live_group[0].guest is not None and live_group[0].guest.live
    without = replace(old, migration=None)
    with pytest.raises(Exception, match="No examples"):
        find(strategy(new, without), lambda g: g[0].live is not None,
             settings=settings(max_examples=50, database=None))  # fmt: skip


def test_every_drawn_live_case_is_one_both_versions_offer() -> None:
    strategy = PairCases(live_every=1, live_guests=1, guests_per_config=1, boards=False)
    seen: list[LiveMigration] = []

    def note(group: object) -> bool:
        live = group[0].live  # type: ignore[index]
        seen.append(live)
        return False

    new, old = PROBES["11.1"], PROBES["7.2"]
    with pytest.raises(Exception, match="No examples"):
        find(strategy(new, old), note, settings=settings(max_examples=60, database=None))
    assert seen and all(live is not None for live in seen)
    assert not [live for live in seen if unsupported(live, [new, old])]
    assert not re.search("mapped-ram", " ".join(live.describe() for live in seen))


def test_a_migration_is_counted_under_its_transport_and_each_feature() -> None:
    live = LiveMigration(transport="tcp", multifd=Multifd(2), return_path=True)
    assert live.features() == ["tcp", "multifd", "return-path"]
    assert LiveMigration().features() == ["unix"]
    counts = {"fresh": 9, "live": 3, "live_unix": 1, "live_tcp": 2, "live_multifd": 2}
    assert feature_counts(counts) == [("tcp", 2), ("multifd", 2), ("unix", 1)]


def test_a_source_that_crashed_is_signed_by_itself_not_by_the_half_stream_it_sent() -> None:
    """11.1 segfaults saving an nvme: the destination's complaint names whatever section
    the stream broke off in (cpu, pl011, nvme...), one signature per place; the cause is
    the source's crash."""
    control = live_transfer(_outcome(dst_version="11.1"))
    crashed = StepOutcome(Stage.SAVE, "11.1", Verdict.CRASHED, returncode=-11)
    for where in ("nvme", "pl011"):
        broken_off = (
            f"load of migration failed: Invalid argument: error while loading state for"
            f" instance 0x0 of device '0000:00:0b.0/{where}': stream error: -5",
            "the source exited while migrating",
        )
        outcome = _outcome(Verdict.CRASHED, stage="migrate", source=crashed, messages=broken_off)
        pair = live_transfer(outcome)
        assert pair.load is None
        judgement = judge(Evidence(control=control, pair=pair))
        assert isinstance(judgement, Divergence)
        assert judgement.signature == Signature("crashed-on-save", "signal 11")


def test_a_failed_live_load_takes_the_paused_loads_causes() -> None:
    generic = Signature("refused-on-load", "error loading device 'cpu'")
    postcopy = Signature("refused-on-load", "live: loadvm failed during postcopy: -N: Failed")
    pattern = Signature("same-version-state", "guest read-back differs: live.pattern_bad_pages")
    live = Divergence(generic, {"live": True}, (generic, postcopy, pattern))
    refused = StepOutcome(Stage.LOAD, "11.1", Verdict.REFUSED)
    saved = StepOutcome(Stage.SAVE, "10.0", Verdict.COMPLETED, details={"stage": "migrate"})
    pair = TransferOutcome("10.0", "11.1", saved, refused)
    named = (Signature("refused-on-load", "cpreg only in incoming stream: ID_AA64ISAR0_EL1"),)
    assert live_load_failed(live, pair)
    signed = signed_as_paused(live, named, pair)
    assert isinstance(signed, Divergence)
    # The load's causes, live-marked or not, are the paused load's; any other stays.
    assert signed.signatures() == (*named, pattern)
    assert signed.details["live"] is True  # without the paused load's details, the live ones
    assert signed.details["met_live"] == [str(c) for c in live.signatures()]
    with_paused = signed_as_paused(live, named, pair, {"summary": "paused"})
    assert isinstance(with_paused, Divergence) and "live" not in with_paused.details
    assert with_paused.details["summary"] == "paused" and with_paused.details["met_live"]
    # A paused load that completed names nothing: the live causes stand as they were.
    loaded = replace(pair, load=replace(refused, verdict=Verdict.COMPLETED))
    assert signed_as_paused(live, named, loaded) is live
    # A setup a side refused is not a failed load: no paused twin is run for it.
    negotiated = replace(pair, save=replace(saved, details={"stage": "negotiate"}))
    assert not live_load_failed(live, negotiated)
