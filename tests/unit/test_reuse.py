"""When long-lived processes and fresh ones disagree (the ``reuse`` finding's rule), and when
a pair counts as loading (long-lived processes serve it)."""

from __future__ import annotations

from collections import deque

from fuzz.core.case import Case, MachineConfig
from fuzz.core.outcome import Stage, StepOutcome, TransferOutcome, Verdict
from fuzz.judge.oracles import Evidence, judge
from fuzz.run.engine import (
    PAIR_MEMORY,
    CaseRun,
    _loaded,
    _loads_cleanly,
    _remember,
    reuse_divergence,
)

CASE = Case(MachineConfig("virt-10.0", "cortex-a57"))
REFUSAL = ("Failed to load cpu:cpreg_vmstate_array_len",)


def run(save: Verdict, pair: Verdict, *, reused: bool) -> CaseRun:
    saved = StepOutcome(Stage.SAVE, "10.0", save)
    loaded = StepOutcome(Stage.LOAD, "10.0", Verdict.COMPLETED)
    pair_load = StepOutcome(Stage.LOAD, "11.1", pair, REFUSAL if pair is Verdict.REFUSED else ())
    has_load = save is Verdict.COMPLETED
    evidence = Evidence(
        TransferOutcome("10.0", "10.0", saved, loaded if has_load else None),
        TransferOutcome("10.0", "11.1", saved, pair_load if has_load else None),
    )
    return CaseRun(CASE, evidence, None, judge(evidence), reused=reused)


def test_agreeing_runs_are_no_finding() -> None:
    ok = Verdict.COMPLETED
    assert reuse_divergence(run(ok, ok, reused=True), run(ok, ok, reused=False)) is None


def test_the_same_divergence_both_ways_is_no_reuse_finding() -> None:
    refused = Verdict.REFUSED
    reused, fresh = (
        run(Verdict.COMPLETED, refused, reused=True),
        run(Verdict.COMPLETED, refused, reused=False),
    )
    assert reuse_divergence(reused, fresh) is None


def test_a_divergence_only_long_lived_processes_show_is_a_reuse_finding() -> None:
    reused = run(Verdict.COMPLETED, Verdict.REFUSED, reused=True)
    fresh = run(Verdict.COMPLETED, Verdict.COMPLETED, reused=False)
    found = reuse_divergence(reused, fresh)
    assert found is not None and found.signature.kind == "reuse"
    assert "Failed to load cpu:cpreg_vmstate_array_len" in found.signature.detail
    assert "fresh processes agree" in found.signature.detail


def test_a_guest_that_failed_on_a_reused_source_says_nothing() -> None:
    # The long-lived source's guest did not reach its checkpoint: a harness matter, not QEMU's.
    reused = run(Verdict.SETUP_ERROR, Verdict.COMPLETED, reused=True)
    fresh = run(Verdict.COMPLETED, Verdict.COMPLETED, reused=False)
    assert reuse_divergence(reused, fresh) is None


def test_a_divergence_only_fresh_processes_show_is_reported_as_the_fresh_one() -> None:
    # The fresh result is canonical; the runner reports it as it is.
    reused = run(Verdict.COMPLETED, Verdict.COMPLETED, reused=True)
    fresh = run(Verdict.COMPLETED, Verdict.REFUSED, reused=False)
    assert reuse_divergence(reused, fresh) is None


def test_a_pair_counts_as_loading_when_both_restores_completed_whatever_the_oracles_said() -> None:
    # Long-lived processes keep serving a pair whose loads complete: a divergence found
    # after a completed load (often the guest's doing) leaves the destination serving,
    # while a refusal retires it, so only refusals send the pair to fresh processes.
    ok, refused = Verdict.COMPLETED, Verdict.REFUSED
    diverged = run(ok, ok, reused=False)
    control = diverged.evidence.control.load
    assert control is not None
    control.details["transcript"] = "x0=0x1"
    assert diverged.evidence.pair.load is not None
    diverged.evidence.pair.load.details["transcript"] = "x0=0x2"
    diverged = CaseRun(CASE, diverged.evidence, None, judge(diverged.evidence))
    assert diverged.signature is not None  # a read-back divergence after a completed load
    assert _loaded(diverged) and not _loaded(run(ok, refused, reused=False))
    recent: deque[bool] = deque(maxlen=PAIR_MEMORY)
    for _ in range(PAIR_MEMORY):
        _remember(recent, diverged)
    assert _loads_cleanly(recent)
    _remember(recent, run(ok, refused, reused=False))
    assert not _loads_cleanly(recent)
