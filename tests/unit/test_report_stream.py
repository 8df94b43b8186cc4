"""The report reads the event log as a stream: a long log gives what its pieces give.

A campaign log repeated k times (each repetition a session of its own, later in time) must
give k times every count of the log once, the same worst outcomes and signatures, and a
time series that is a thinned copy of the whole one, of bounded length. No timing here:
``scripts/bench.py --only report`` measures time and memory.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz.campaign.folder import read_jsonl, resume_state
from fuzz.report import gather as report
from fuzz.report.gather import ReportData, SeriesPoint, gather

VERSIONS = ("5.2", "10.0", "11.1")
SIGNATURES = (
    "refused-on-load: cpreg only in incoming stream: ZCR_EL1",
    "crashed-on-load: assertion in vmstate_load_state",
    "state: restored state differs: cpu/0/env.pc",
    "same-version-refused-on-load: EL3 is not supported",
    "same-version-state: restored state differs: zregs",
)
KINDS = ("agree", "divergence", "invalid", "control-failed", "harness")


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    """One CaseJudged event (its time set later)."""
    src, dst = draw(st.sampled_from(VERSIONS)), draw(st.sampled_from(VERSIONS))
    kind = draw(st.sampled_from(KINDS))
    causes = draw(st.lists(st.sampled_from(SIGNATURES), min_size=1, max_size=2, unique=True))
    causes = causes if kind == "divergence" else []
    side = draw(st.sampled_from((src, dst)))
    reason = {"divergence": causes[0] if causes else "", "agree": ""}.get(
        kind, f"{src} -> {side}: {kind} reason {draw(st.integers(0, 2))}"
    )
    return {"type": "CaseJudged", "pair": [src, dst], "kind": kind,
            "signature": causes[0] if causes else None, "causes": causes, "reason": reason,
            "worker": draw(st.integers(0, 2)), "seconds": 0.5}  # fmt: skip


@st.composite
def logs(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A session's events in time order (ms steps): a start, cases, maybe a stop."""
    events: list[dict[str, Any]] = [{"type": "CampaignStarted", "jobs": 3}]
    events += draw(st.lists(cases(), min_size=1, max_size=12))
    if draw(st.booleans()):
        events.insert(len(events) // 2, {"type": "WorkerLost", "worker": 1,
                                         "reason": "exit code -9", "replaced": True})  # fmt: skip
    if draw(st.booleans()):
        events.append({"type": "CampaignStopped", "interrupted": draw(st.booleans())})
    steps = draw(st.lists(st.integers(1, 5000), min_size=len(events), max_size=len(events)))
    t = 0
    for event, step in zip(events, steps, strict=True):
        t += step
        event["t"] = 1000.0 + t / 1000
    return events


def _repeated(events: Sequence[dict[str, Any]], times: int) -> list[dict[str, Any]]:
    """``events`` again and again, each copy starting after the one before ended."""
    span = events[-1]["t"] - events[0]["t"] + 60.0
    return [{**e, "t": round(e["t"] + i * span, 3)} for i in range(times) for e in events]


def _gather(events: Sequence[dict[str, Any]], folder: Path) -> ReportData:
    folder.mkdir()
    (folder / "corpus").mkdir()
    pairs = [f"{a}:{b}" for a in VERSIONS for b in VERSIONS]
    (folder / "campaign.json").write_text(json.dumps({"format": 1, "pairs": pairs}))
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return gather(folder)


def _is_subsequence(part: Sequence[SeriesPoint], whole: Sequence[SeriesPoint]) -> bool:
    rest = iter(whole)
    return all(any(p == q for q in rest) for p in part)


def _check(events: list[dict[str, Any]], times: int, limit: int, tmp: Path) -> None:
    once = _gather(events, tmp / "once")
    assert len(once.series) == once.cases + 1  # a short log: every case is a point
    long = _repeated(events, times)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report, "MAX_SERIES_POINTS", limit)
        thin = _gather(long, tmp / "thin")
    whole = _gather(long, tmp / "whole")  # the default limit: every point of a short log

    assert thin.cases == whole.cases == times * once.cases
    assert [(s.ended, s.cases, s.seconds) for s in thin.sessions] == [
        (s.ended, s.cases, s.seconds) for s in once.sessions
    ] * times
    assert thin.seconds == pytest.approx(times * once.seconds)
    for one, many in zip(once.cells, thin.cells, strict=True):
        assert (many.src, many.dst, many.worst, many.signatures) == (
            one.src, one.dst, one.worst, one.signatures,
        )  # fmt: skip
        assert many.cases == times * one.cases
        for field in ("kinds", "controls", "same_version"):
            expected = {k: times * n for k, n in getattr(one, field)}
            assert dict(getattr(many, field)) == expected, field
    assert [s.signature for s in thin.signatures] == [s.signature for s in once.signatures]
    for one_sig, many_sig in zip(once.signatures, thin.signatures, strict=True):
        assert many_sig.count == times * one_sig.count
        assert many_sig.pairs == tuple((a, b, times * n) for a, b, n in one_sig.pairs)
        assert (many_sig.first_seen, many_sig.severity) == (one_sig.first_seen, one_sig.severity)
    for name in ("control_failures", "invalid_cases", "harness_failures"):
        assert getattr(thin, name) == tuple((r, times * n) for r, n in getattr(once, name))
    assert thin.harness_problems == once.harness_problems * times

    # The thinned series: the whole one's points, bounded, its start, end and every rise.
    distinct = len(thin.signatures)
    assert len(whole.series) == whole.cases + 1
    assert _is_subsequence(thin.series, whole.series)
    assert len(thin.series) <= limit + distinct + 1
    assert (thin.series[0], thin.series[-1]) == (whole.series[0], whole.series[-1])
    rises = [q for p, q in zip(whole.series, whole.series[1:], strict=False)
             if q.signatures > p.signatures]  # fmt: skip
    assert _is_subsequence(rises, thin.series)
    assert {k: v for k, v in vars(thin).items() if k not in ("series", "root")} == {
        k: v for k, v in vars(whole).items() if k not in ("series", "root")
    }

    # The resume fold, streamed from the file, counts the same.
    state = resume_state(read_jsonl(tmp / "whole" / "events.jsonl"), tmp / "whole")
    assert (state.cases, state.sessions) == (whole.cases, times)


@settings(max_examples=40, deadline=None)
@given(logs(), st.integers(2, 40), st.integers(2, 12))
def test_a_log_repeated_gives_its_counts_repeated(
    events: list[dict[str, Any]], times: int, limit: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _check(events, times, limit, Path(tmp))


def test_a_long_log_keeps_a_bounded_series_at_the_default_limit(tmp_path: Path) -> None:
    """Thousands of cases: the default limit thins the series, the counts stay exact."""
    events = [
        {"type": "CampaignStarted", "t": 1000.0},
        *({"type": "CaseJudged", "t": 1000.0 + i, "pair": ["5.2", "11.1"], "kind": kind,
           "signature": sig, "causes": [sig] if sig else [], "reason": sig or "why"}
          for i, (kind, sig) in enumerate([("agree", None), ("divergence", SIGNATURES[0]),
                                           ("control-failed", None)], 1)),
        {"type": "CampaignStopped", "t": 1004.0, "interrupted": False},
    ]  # fmt: skip
    times = report.MAX_SERIES_POINTS  # three cases each: three times the limit
    big = _gather(_repeated(events, times), tmp_path / "big")
    assert big.cases == 3 * times
    assert len(big.series) <= report.MAX_SERIES_POINTS + 2
    assert big.series[-1].cases == big.cases
    diagonal = {c.src: c for c in big.cells if c.src == c.dst}
    assert dict(diagonal["5.2"].controls) == {"clean": 2 * times, "control failed": times}
