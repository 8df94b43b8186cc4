"""The campaign's display: a live status panel on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from rich.console import Console
from rich.text import Text

from fuzz.events import (
    CaseJudged,
    FindingFlaky,
    FindingSeen,
    Progress,
    ReproducerWritten,
    WorkerFinished,
    WorkerLost,
    WorkerStarted,
)
from fuzz.judge.oracles import Signature
from fuzz.status_panel import (
    PlainDisplay,
    StatusPanel,
    campaign_display,
    duration,
    progress_line,
)

PAIRS = [("10.0", "11.1"), ("11.1", "10.0"), ("7.2", "11.1")]
REFUSED = Signature("refused-on-load", "cpreg only: X")
STATE = Signature("state", "cpu/regs: pstate")
KNOWN = Signature("state", "timer: cntvct")
ENTRY = Path("corpus/refused-on-load-cpreg-only-x-1234abcd")


class Clock:
    """A fake monotonic and wall clock that the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def terminal(width: int = 120) -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=width, highlight=False)


def text_of(panel: StatusPanel) -> str:
    shown = Console(file=io.StringIO(), width=panel.console.width, record=True)
    shown.print(panel.render())
    return shown.export_text()


def pair_rows(text: str) -> dict[str, str]:
    """The pairs' table's rows by their source (it stands right of the overview)."""
    lines = text.splitlines()
    column = next(line.index("src \\ dst") for line in lines if "src \\ dst" in line)
    rights = [line[column:].rstrip("│ ") for line in lines if len(line) > column]
    return {right.split("  ")[0]: right for right in rights if right.strip()}


def lasting(console: Console) -> list[str]:
    """The lines printed on ``console`` above the panel (not the panel's frames)."""
    written = Text.from_ansi(console.file.getvalue()).plain  # type: ignore[attr-defined]
    return [line for line in written.splitlines() if line and line[0] not in "│╭╰"]


def judged(pair, kind="agree", signature=None, worker=0, reason="", causes=()):
    return CaseJudged(pair, kind, signature, reason, 1.0, worker, causes)


def a_campaign(panel: StatusPanel, clock: Clock) -> None:
    """Two workers; 40 cases in 20 s; one known and one new signature; worker 1 shrinks."""
    panel(WorkerStarted(0))
    panel(WorkerStarted(1))
    for i in range(40):
        clock.now += 0.5
        pair = PAIRS[0] if i % 4 else PAIRS[2]  # 30 on 10.0 -> 11.1, 10 on 7.2 -> 11.1
        if i == 4:
            panel(judged(pair, "divergence", KNOWN, worker=i % 2, causes=(KNOWN,)))
        elif i in (6, 7):
            panel(judged(pair, "control-failed", worker=i % 2, reason="no migration"))
        else:
            panel(judged(pair, worker=i % 2))
    panel(judged(PAIRS[0], "divergence", REFUSED, worker=1, causes=(REFUSED,)))
    panel(FindingSeen(REFUSED, PAIRS[0], ENTRY, worker=1))


def test_the_panel_shows_cases_rate_signatures_controls_and_time_left() -> None:
    clock = Clock()
    with StatusPanel(terminal(), budget_seconds=600, max_cases=None, pairs=PAIRS, jobs=2,
                     clock=clock, wall=clock) as panel:  # fmt: skip
        a_campaign(panel, clock)
        clock.now += 10.0  # 30 s in
        text = text_of(panel)
    assert "41  1.4/s" in text  # 41 cases in 30 s
    assert "30s elapsed, 9m30s left of 10m00s" in text
    assert "2: 1 new, 1 known" in text
    assert "last new    10s ago" in text
    assert "95.1% clean (2 failed)" in text  # 2 of 41 controls failed
    assert "2 at work of 2" in text


def test_the_panel_says_what_each_worker_does() -> None:
    clock = Clock()
    with StatusPanel(terminal(), budget_seconds=None, max_cases=100, pairs=PAIRS, jobs=2,
                     clock=clock, wall=clock) as panel:  # fmt: skip
        a_campaign(panel, clock)
        shrinking = text_of(panel)
        panel(ReproducerWritten(REFUSED, ENTRY, 12))
        panel(judged(PAIRS[1], worker=1))
        panel(WorkerLost(0, "worker process died", replaced=True))
        panel(WorkerStarted(2))
        after = text_of(panel)
    rows = [line for line in shrinking.splitlines() if "shrinking" in line]
    assert len(rows) == 1 and "refused-on-load: cpreg only: X" in rows[0]
    assert " 1 " in rows[0]  # worker 1
    assert "41 of 100" in shrinking
    assert "shrinking" not in after
    assert any("running" in line and "11.1 -> 10.0" in line for line in after.splitlines())
    assert any("lost" in line and "worker process died" in line for line in after.splitlines())
    assert any("starting" in line for line in after.splitlines())


def test_the_pairs_table_counts_cases_and_signatures_per_pair() -> None:
    clock = Clock()
    with StatusPanel(terminal(), budget_seconds=60, max_cases=None, pairs=PAIRS, jobs=2,
                     clock=clock, wall=clock) as panel:  # fmt: skip
        a_campaign(panel, clock)
        text = text_of(panel)
    rows = pair_rows(text)
    assert rows["src \\ dst"].split()[3:] == ["10.0", "11.1"]  # destinations across
    assert "31 / 1 (1)" in rows["10.0"]  # 30 cases and the new one's; REFUSED is new
    assert "10 / 1" in rows["7.2"] and "(1)" not in rows["7.2"]  # KNOWN met on 7.2 -> 11.1
    assert rows["11.1"].split() == ["11.1", "0", "/", "0"]  # 11.1 -> 10.0: no case yet


def test_on_a_narrow_terminal_the_pairs_go_below_the_numbers() -> None:
    clock = Clock()
    with StatusPanel(terminal(width=80), budget_seconds=600, max_cases=None, pairs=PAIRS,
                     jobs=2, clock=clock, wall=clock) as panel:  # fmt: skip
        a_campaign(panel, clock)
        text = text_of(panel)
    lines = text.splitlines()
    assert max(len(line) for line in lines) == 80
    overview = next(i for i, line in enumerate(lines) if "signatures  2: 1 new, 1 known" in line)
    header = next(i for i, line in enumerate(lines) if "src \\ dst" in line)
    assert header > overview
    assert "31 / 1 (1)" in text


def test_notable_events_stay_above_the_panel_and_in_its_log() -> None:
    clock = Clock()
    console = terminal()
    with StatusPanel(console, budget_seconds=60, max_cases=None, pairs=PAIRS, jobs=2,
                     clock=clock, wall=clock) as panel:  # fmt: skip
        a_campaign(panel, clock)
        panel(ReproducerWritten(REFUSED, ENTRY, 12))
        panel(FindingFlaky(STATE, PAIRS[1], Path("corpus/flaky/x"), "1/10"))
        panel(judged(PAIRS[1], "harness", worker=0, reason="QmpTimeout: no answer"))
        text = text_of(panel)
    printed = "\n".join(lasting(console))
    assert f"[new] 10.0 -> 11.1: {REFUSED}" in printed
    assert f"minimal reproducer: {ENTRY} (12 minimality checks)" in printed
    assert printed.count("no migration (not a finding") == 1  # once, though it failed twice
    assert "[flaky]" not in printed  # the panel's log only, as before
    assert f"[reproducer] {REFUSED}: {ENTRY.name} (12 checks)" in text
    assert f"[flaky] 11.1 -> 10.0: {STATE}" in text
    assert "[harness] QmpTimeout: no answer" in text


def test_the_panel_stops_its_refresh_thread_and_leaves_its_last_render() -> None:
    before = set(threading.enumerate())
    console = terminal()
    clock = Clock()
    with StatusPanel(console, budget_seconds=60, max_cases=None, pairs=PAIRS, jobs=1,
                     clock=clock, wall=clock) as panel:  # fmt: skip
        assert panel.running
        assert set(threading.enumerate()) - before  # the refresh thread
        panel(judged(PAIRS[0]))
    assert not panel.running
    assert set(threading.enumerate()) - before == set()
    assert "migfuzz campaign" in console.file.getvalue()  # type: ignore[attr-defined]


def test_the_panel_stops_when_the_campaign_raises() -> None:
    before = set(threading.enumerate())
    with (
        pytest.raises(KeyboardInterrupt),
        StatusPanel(terminal(), budget_seconds=60, max_cases=None, pairs=PAIRS, jobs=1) as panel,
    ):
        raise KeyboardInterrupt
    assert not panel.running
    assert set(threading.enumerate()) - before == set()


def test_a_terminal_gets_the_panel_anything_else_plain_lines() -> None:
    options = {"budget_seconds": 60.0, "max_cases": None, "pairs": PAIRS, "jobs": 1}
    assert isinstance(campaign_display(terminal(), **options), StatusPanel)
    log = Console(file=io.StringIO(), width=120)
    assert not log.is_terminal
    assert isinstance(campaign_display(log, **options), PlainDisplay)
    dumb = Console(file=io.StringIO(), force_terminal=True, _environ={"TERM": "dumb"})
    assert isinstance(campaign_display(dumb, **options), PlainDisplay)


def test_plain_lines_are_todays_lines() -> None:
    log = Console(file=io.StringIO(), width=200)
    progress = Progress(cases=200, seconds=100.0, signatures=5, workers=2, new=2,
                        since_new=42.4, control_failures=10)  # fmt: skip
    with campaign_display(log, budget_seconds=None, max_cases=10, pairs=PAIRS, jobs=2) as emit:
        emit(FindingSeen(REFUSED, PAIRS[0], ENTRY, worker=1))
        emit(judged(PAIRS[0], "control-failed", reason="no migration"))
        emit(judged(PAIRS[0], "control-failed", reason="no migration"))
        emit(ReproducerWritten(REFUSED, ENTRY, 12))
        emit(WorkerLost(1, "worker process died", replaced=False))
        emit(WorkerFinished(0, {}, 0.0, 0.0))
        emit(progress)
    assert log.file.getvalue().splitlines() == [  # type: ignore[attr-defined]
        f"[new] 10.0 -> 11.1: {REFUSED}",
        f"      first case written: {ENTRY}; shrinking...",
        "[harness] control failed: no migration (not a finding; the case is skipped, repeats "
        "are counted in the summary)",
        f"      minimal reproducer: {ENTRY} (12 minimality checks)",
        "[worker] worker 1: worker process died; not replaced",
        progress_line(progress),
    ]
    assert "\x1b" not in log.file.getvalue()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.4, "0s"), (59.4, "59s"), (61, "1m01s"), (3599, "59m59s"), (3600, "1h00m"), (-3, "0s")],
)
def test_durations(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown
