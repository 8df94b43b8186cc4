"""The campaign's live progress line: what a user watching an overnight run needs."""

from __future__ import annotations

from fuzz.events import Progress
from fuzz.status_panel import progress_line


def test_the_line_says_rate_signatures_last_new_controls_workers_and_what_shrinks() -> None:
    progress = Progress(
        cases=200,
        seconds=100.0,
        signatures=5,
        workers=2,
        new=2,
        since_new=42.4,
        control_failures=10,
        shrinking=("refused-on-load: cpreg only: X",),
    )
    line = progress_line(progress)
    assert "200 cases, 100 s, 2.0/s" in line
    assert "5 signatures (2 new, last new 42 s ago)" in line
    assert "controls 95% clean" in line
    assert "2 workers" in line
    assert line.endswith("shrinking: refused-on-load: cpreg only: X")


def test_before_anything_is_found_or_run() -> None:
    line = progress_line(Progress(cases=0, seconds=0.0, signatures=0, workers=1))
    assert "0.0/s" in line and "last new none yet" in line and "controls 100% clean" in line
    assert "shrinking" not in line
