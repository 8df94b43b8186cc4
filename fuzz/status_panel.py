"""How a campaign shows itself on stderr while it runs.

On a terminal, a live status panel (rich's ``Live``), the screen AFL++ and HypoFuzz users
glance at: time spent and left, cases and rate, signatures new and known and the time since
the last new one, how clean the A -> A controls are, what each worker is doing, and the
pairs at a glance, above a short log of what happened last. Elsewhere (CI, a log file,
nohup) the plain lines a log keeps: the notable events, and a progress line every few
seconds. Either way the notable lines (a new finding, its reproducer, a worker lost, the
first control failure of each kind) are printed for good, so they stay in the scrollback
when the panel is gone.

Both displays consume the campaign's events (:mod:`fuzz.events`) and nothing else:
:func:`campaign_display` picks one.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.measure import Measurement
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from fuzz.campaign.loop import SHRINK_GRACE
from fuzz.core.case import Pair
from fuzz.events import (
    CaseJudged,
    FindingFlaky,
    FindingSeen,
    Progress,
    ReproducerUnstable,
    ReproducerWritten,
    WorkerFinished,
    WorkerLost,
    WorkerStarted,
)
from fuzz.judge.oracles import Signature

__all__ = [
    "CampaignDisplay",
    "PlainDisplay",
    "StatusPanel",
    "campaign_display",
    "progress_line",
]

#: How often the panel is redrawn (its clock moves even when no event comes): its times
#: are in seconds, and a redraw costs some 10-30 ms of the driver's CPU (rich's tables).
REFRESH_PER_SECOND = 1.0
#: The window of the panel's recent rate.
RECENT_SECONDS = 60.0
#: Lines of the panel's log of notable events.
LOG_LINES = 6
#: The worker that finishes a resumed campaign's shrinks in the driver process.
DRIVER = -1


class CampaignDisplay(Protocol):
    """What :func:`campaign_display` returns: a context manager whose value takes every
    campaign event (a ``Campaign``'s ``emit``)."""

    def __enter__(self) -> Callable[[object], None]: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def campaign_display(
    console: Console,
    *,
    budget_seconds: float | None,
    max_cases: int | None,
    pairs: Sequence[Pair],
    jobs: int,
    deadline: float | None = None,
) -> CampaignDisplay:
    """The live :class:`StatusPanel` on an interactive terminal, else the
    :class:`PlainDisplay` (a pipe, a file, a dumb terminal, ``TTY_INTERACTIVE=0``).

    :param console: where to show it (the CLI's stderr console).
    :param budget_seconds: this session's time budget, or None.
    :param max_cases: this session's case count, or None.
    :param pairs: the campaign's pairs, shown even before any case ran on them.
    :param jobs: how many workers the campaign starts.
    :param deadline: the ``time.time()`` after which no case starts (the worker spec's):
        the time left is counted to it; None: ``budget_seconds`` from the panel's start.
    :return: a context manager; ``with campaign_display(...) as emit:`` gives the
        function to hand the campaign as its ``emit``.
    """
    if console.is_interactive:  # a terminal, not a dumb one; TTY_INTERACTIVE=0 says no
        return StatusPanel(
            console, budget_seconds=budget_seconds, max_cases=max_cases, pairs=pairs,
            jobs=jobs, deadline=deadline,
        )  # fmt: skip
    return PlainDisplay(console)


# -- what both displays print for good ----------------------------------------------------


@dataclass(frozen=True)
class _Line:
    """One line printed for good: its text and rich style."""

    text: str
    style: str = ""


def _notable(event: object, control_seen: set[str]) -> list[_Line]:
    """The lines an event leaves in the scrollback (today's campaign lines), if any.

    ``control_seen`` holds the control failures already shown; a new one is added.
    """
    if isinstance(event, FindingSeen):
        return [
            _Line(f"[new] {event.pair[0]} -> {event.pair[1]}: {event.signature}"),
            *[_Line(f"      behind: {first}", "dim") for first in event.behind[:1]],
            _Line(f"      first case written: {event.path}; shrinking...", "dim"),
        ]
    if isinstance(event, ReproducerWritten):
        return [_Line(f"      minimal reproducer: {event.path} ({event.minimize_tests} "
                      "minimality checks)")]  # fmt: skip
    if isinstance(event, ReproducerUnstable):
        return [_Line(f"      the minimal case now shows {event.now}; kept the first case in "
                      f"{event.path}")]  # fmt: skip
    if isinstance(event, CaseJudged) and event.kind == "control-failed":
        if event.reason in control_seen:
            return []
        control_seen.add(event.reason)
        return [_Line(f"[harness] control failed: {event.reason} (not a finding; the case is "
                      "skipped, repeats are counted in the summary)")]  # fmt: skip
    if isinstance(event, WorkerLost):
        then = "a new worker takes over" if event.replaced else "not replaced"
        return [_Line(f"[worker] worker {event.worker}: {event.reason}; {then}")]
    return []


def progress_line(event: Progress) -> str:
    """One progress line: what AFL++'s status screen says, in a line a log keeps."""
    rate = event.cases / event.seconds if event.seconds else 0.0
    since = "none yet" if event.since_new is None else f"{event.since_new:.0f} s ago"
    stable = 100.0 * (1 - event.control_failures / event.cases) if event.cases else 100.0
    line = (
        f"  {event.cases} cases, {event.seconds:.0f} s, {rate:.1f}/s; {event.signatures} "
        f"signatures ({event.new} new, last new {since}); controls {stable:.0f}% clean; "
        f"{event.workers} workers"
    )
    if event.shrinking:
        line += f"; shrinking: {'; '.join(s[:60] for s in event.shrinking)}"
    return line


class PlainDisplay:
    """Campaign events as lines on ``console``: the notable ones, and a progress line
    each time the campaign sends one. Repeats of a control failure are counted, not shown.
    For output that is not a terminal: every line stays as it was printed."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.control_seen: set[str] = set()

    def __enter__(self) -> PlainDisplay:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def __call__(self, event: object) -> None:
        """Show one campaign event."""
        for line in _notable(event, self.control_seen):
            self.console.print(line.text, style=line.style or None, markup=False, highlight=False)
        if isinstance(event, Progress):
            self.console.print(progress_line(event), style="dim", markup=False, highlight=False)


# -- the live panel -----------------------------------------------------------------------


@dataclass
class _Worker:
    """What the panel knows of one worker slot."""

    slot: int
    state: str = "starting"
    """``starting``, ``running``, ``shrinking``, ``done``, ``stopped`` or ``lost``."""
    cases: int = 0
    pair: Pair | None = None
    last_kind: str = ""
    shrinking: list[Signature] = field(default_factory=list)
    reason: str = ""
    seen: float = 0.0
    """The panel clock's reading at this worker's last event."""

    @property
    def active(self) -> bool:
        """Whether the worker is still at work."""
        return self.state in ("starting", "running", "shrinking")


@dataclass
class _PairStats:
    """One pair's cases and what they showed."""

    cases: int = 0
    divergences: int = 0
    signatures: set[Signature] = field(default_factory=set)
    new: set[Signature] = field(default_factory=set)


def duration(seconds: float) -> str:
    """``7s``, ``12m04s``, ``3h12m``: a time span at a glance."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class StatusPanel:
    """A live status panel of a campaign on a terminal (rich's ``Live`` on ``console``).

    A context manager: entering starts the panel, which is redrawn
    :data:`REFRESH_PER_SECOND` times a second from its own thread; the panel itself is
    the function that takes the campaign's events. Notable events are also printed above
    the panel for good. Leaving stops the redrawing and leaves the last panel on screen.

    :param budget_seconds: the session's time budget (for the time left), or None.
    :param max_cases: the session's case count (for the cases left), or None.
    :param pairs: the campaign's pairs, shown in the pairs' table from the start.
    :param jobs: how many workers the campaign starts.
    :param deadline: the ``time.time()`` after which no case starts; None:
        ``budget_seconds`` from the panel's start.
    :param clock: a monotonic clock (tests give a fake one).
    :param wall: the wall clock ``deadline`` is read on.

    The panel keeps its own counts from the events; it shows nothing of the campaign's
    periodic :class:`~fuzz.campaign.driver.Progress`, which is for the plain lines.
    """

    def __init__(
        self,
        console: Console,
        *,
        budget_seconds: float | None,
        max_cases: int | None,
        pairs: Sequence[Pair],
        jobs: int,
        deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.console = console
        self.budget_seconds = budget_seconds
        self.max_cases = max_cases
        self.jobs = jobs
        self.deadline = deadline
        self._clock, self._wall = clock, wall
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None
        self._started = clock()
        self.cases = 0
        self._recent: deque[float] = deque()
        self.control_failures = 0
        self.harness_failures = 0
        self.met: set[Signature] = set()
        self.new: set[Signature] = set()
        self.flaky: set[Signature] = set()
        self._last_new: float | None = None
        self.workers: dict[int, _Worker] = {}
        self._shrunk_by: dict[Signature, int] = {}
        self.pairs: dict[Pair, _PairStats] = {pair: _PairStats() for pair in pairs}
        self._control_seen: set[str] = set()
        self._logged_reasons: set[str] = set()
        self._log: deque[tuple[float, _Line]] = deque(maxlen=LOG_LINES)

    # -- the context -------------------------------------------------------------------

    def __enter__(self) -> StatusPanel:
        self._started = self._clock()
        if self.deadline is None and self.budget_seconds is not None:
            self.deadline = self._wall() + self.budget_seconds
        live = Live(console=self.console, get_renderable=self.render, auto_refresh=False,
                    transient=False)  # fmt: skip
        live.start()
        self._live = live
        self._stop.clear()
        self._refresher = threading.Thread(
            target=self._refresh, args=(live,), name="migfuzz-status-panel", daemon=True
        )
        self._refresher.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join()
            self._refresher = None
        live, self._live = self._live, None
        if live is not None:
            live.stop()  # draws the panel a last time, and leaves it

    def _refresh(self, live: Live) -> None:
        """The refresh thread's body: redraw until told to stop (our own thread rather
        than rich's, so that leaving the panel can wait for it to end)."""
        while not self._stop.wait(1 / REFRESH_PER_SECOND):
            live.refresh()

    @property
    def running(self) -> bool:
        """Whether the panel is live (between entering and leaving)."""
        return self._live is not None

    # -- events ------------------------------------------------------------------------

    def __call__(self, event: object) -> None:
        """Take one campaign event; print its notable lines above the panel."""
        with self._lock:
            now = self._clock()
            lasting = _notable(event, self._control_seen)
            logged = self._account(event, now)
            if logged is not None:
                self._log.append((self._wall(), logged))
        # Printed outside the lock: printing waits for a redraw, which takes the lock.
        printer = self.console if self._live is None else self._live.console
        for line in lasting:
            printer.print(line.text, style=line.style or None, markup=False, highlight=False)

    def _account(self, event: object, now: float) -> _Line | None:
        """Update the counts from ``event``; return its line in the panel's log, if any."""
        if isinstance(event, CaseJudged):
            return self._case(event, now)
        if isinstance(event, FindingSeen):
            self.met.add(event.signature)
            self.new.add(event.signature)
            self._last_new = now
            self._pair(event.pair).new.add(event.signature)
            self._pair(event.pair).signatures.add(event.signature)
            worker = self._worker(event.worker, now)
            worker.state = "shrinking"
            worker.shrinking.append(event.signature)
            self._shrunk_by[event.signature] = event.worker
            return _Line(f"[new] {event.pair[0]} -> {event.pair[1]}: {event.signature}",
                         "bold red")  # fmt: skip
        if isinstance(event, ReproducerWritten | ReproducerUnstable):
            slot = self._shrunk_by.pop(event.signature, None)
            if slot is not None and slot in self.workers:
                self._shrunk(self.workers[slot], event.signature, now)
            if isinstance(event, ReproducerUnstable):
                return _Line(f"[unstable] {event.signature}: the minimal case shows "
                             f"{event.now}; first case kept", "yellow")  # fmt: skip
            return _Line(f"[reproducer] {event.signature}: {event.path.name} "
                         f"({event.minimize_tests} checks)", "green")  # fmt: skip
        if isinstance(event, FindingFlaky):
            self.flaky.add(event.signature)
            shown = f"shown {event.reliability}; recorded apart, not shrunk"
            return _Line(f"[flaky] {event.pair[0]} -> {event.pair[1]}: {event.signature} "
                         f"({shown})", "yellow")  # fmt: skip
        if isinstance(event, WorkerStarted):
            self._worker(event.worker, now)
        elif isinstance(event, WorkerFinished):
            worker = self._worker(event.worker, now)
            worker.state = "done" if event.complete else "stopped"
        elif isinstance(event, WorkerLost):
            if event.worker != DRIVER:  # the driver's "lost" is an entry it could not shrink
                worker = self._worker(event.worker, now)
                worker.state, worker.reason = "lost", event.reason
                for signature in worker.shrinking:
                    self._shrunk_by.pop(signature, None)
                worker.shrinking = []
            then = "replaced" if event.replaced else "not replaced"
            return _Line(f"[worker] worker {event.worker}: {event.reason}; {then}", "red")
        return None

    def _case(self, event: CaseJudged, now: float) -> _Line | None:
        self.cases += 1
        self._recent.append(now)
        while self._recent and self._recent[0] < now - RECENT_SECONDS:
            self._recent.popleft()
        stats = self._pair(event.pair)
        stats.cases += 1
        if event.kind == "control-failed":
            self.control_failures += 1
        elif event.kind == "harness":
            self.harness_failures += 1
        elif event.kind == "divergence":
            stats.divergences += 1
            causes = event.causes or (() if event.signature is None else (event.signature,))
            self.met.update(causes)
            stats.signatures.update(causes)
        worker = self._worker(event.worker, now)
        worker.cases += 1
        worker.pair, worker.last_kind = event.pair, event.kind
        if not worker.shrinking:
            worker.state = "running"
        if event.kind == "control-failed" and event.reason not in self._logged_reasons:
            self._logged_reasons.add(event.reason)
            return _Line(f"[harness] control failed: {event.reason}", "yellow")
        if event.kind == "harness" and event.reason not in self._logged_reasons:
            self._logged_reasons.add(event.reason)
            return _Line(f"[harness] {event.reason} (failed twice; counted, not a finding)",
                         "yellow")  # fmt: skip
        return None

    def _shrunk(self, worker: _Worker, signature: Signature, now: float) -> None:
        if signature in worker.shrinking:
            worker.shrinking.remove(signature)
        worker.seen = now
        if not worker.shrinking and worker.state == "shrinking":
            worker.state = "done" if worker.slot == DRIVER else "running"

    def _worker(self, slot: int, now: float) -> _Worker:
        if slot not in self.workers:
            self.workers[slot] = _Worker(slot)
        worker = self.workers[slot]
        worker.seen = now
        return worker

    def _pair(self, pair: Pair) -> _PairStats:
        if pair not in self.pairs:
            self.pairs[pair] = _PairStats()
        return self.pairs[pair]

    # -- the panel ---------------------------------------------------------------------

    def render(self) -> RenderableType:
        """The panel as it stands now (called by the refresh thread, and by tests)."""
        with self._lock:
            now = self._clock()
            overview, pairs = self._overview(now), self._pair_table()
            top: RenderableType
            if self._width(overview) + 4 + self._width(pairs) + 4 > self.console.width:
                top = Group(overview, Text(""), pairs)  # a narrow terminal: one above the other
            else:
                top = Table.grid(padding=(0, 4), expand=True)
                top.add_column(ratio=1)
                top.add_column()
                top.add_row(overview, pairs)
            return Panel(
                Group(top, Text(""), self._worker_table(now), Text(""), self._log_text()),
                title="[bold]migfuzz campaign[/]", title_align="left",
                subtitle="Ctrl-C stops (the shrinks under way are kept for --resume)",
                subtitle_align="right", box=box.ROUNDED, padding=(0, 1),
            )  # fmt: skip

    def _width(self, table: Table) -> int:
        return Measurement.get(self.console, self.console.options, table).maximum

    def _overview(self, now: float) -> Table:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(no_wrap=True, overflow="ellipsis")
        elapsed = now - self._started
        grid.add_row("time", self._time_text(elapsed))
        grid.add_row("cases", self._cases_text(elapsed))
        grid.add_row("signatures", self._signatures_text())
        since = "none yet" if self._last_new is None else f"{duration(now - self._last_new)} ago"
        grid.add_row("last new", since)
        clean = 100.0 * (1 - self.control_failures / self.cases) if self.cases else 100.0
        controls = Text(f"{clean:.1f}% clean")
        if self.control_failures:
            controls.append(f" ({self.control_failures:,} failed)", style="yellow")
        if self.harness_failures:
            controls.append(f"; harness failed {self.harness_failures:,}x", style="yellow")
        grid.add_row("controls", controls)
        alive = sum(1 for w in self.workers.values() if w.active and w.slot != DRIVER)
        grid.add_row("workers", f"{alive} at work of {self.jobs}")
        return grid

    def _time_text(self, elapsed: float) -> Text:
        text = Text(f"{duration(elapsed)} elapsed")
        if self.deadline is not None:
            left = self.deadline - self._wall()
            if left > 0:
                text.append(f", {duration(left)} left")
                if self.budget_seconds is not None:
                    text.append(f" of {duration(self.budget_seconds)}", style="dim")
            elif any(w.shrinking for w in self.workers.values()):
                grace = duration(max(SHRINK_GRACE + left, 0))
                text.append(f"; budget spent, finishing shrinks (for {grace} at most)",
                            style="yellow")  # fmt: skip
            else:
                text.append("; budget spent, stopping", style="yellow")
        return text

    def _cases_text(self, elapsed: float) -> Text:
        rate = self.cases / elapsed if elapsed > 0 else 0.0
        text = Text(f"{self.cases:,}", style="bold")
        if self.max_cases is not None:
            text.append(f" of {self.max_cases:,}")
        text.append(f"  {rate:.1f}/s")
        window = min(RECENT_SECONDS, elapsed)
        if window >= 10.0:
            recent = len(self._recent) / window
            text.append(f" ({recent:.1f}/s last {duration(window)})", style="dim")
            left = None if self.max_cases is None else self.max_cases - self.cases
            if left is not None and left > 0 and recent > 0:
                text.append(f"; about {duration(left / recent)} to go")
        return text

    def _signatures_text(self) -> Text:
        known = len(self.met - self.new)
        text = Text(f"{len(self.met)}: ")
        text.append(f"{len(self.new)} new", style="bold red" if self.new else "")
        text.append(f", {known} known")
        if self.flaky:
            text.append(f", {len(self.flaky)} flaky", style="yellow")
        return text

    def _pair_table(self) -> Table:
        """Source versions down, destinations across: cases / signatures (new)."""
        names = _versions(name for pair in self.pairs for name in pair)
        sources = [n for n in names if any(p[0] == n for p in self.pairs)]
        targets = [n for n in names if any(p[1] == n for p in self.pairs)]
        table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, show_edge=False,
                      caption="cases / signatures (new)", caption_style="dim")  # fmt: skip
        table.add_column("src \\ dst", style="bold", no_wrap=True)
        for dst in targets:
            table.add_column(dst, justify="right", no_wrap=True)
        for src in sources:
            cells: list[Text] = []
            for dst in targets:
                stats = self.pairs.get((src, dst))
                cells.append(Text("") if stats is None else _pair_cell(stats))
            table.add_row(Text(src), *cells)
        return table

    def _worker_table(self, now: float) -> Table:
        table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, show_edge=False,
                      expand=True)  # fmt: skip
        table.add_column("worker", justify="right", no_wrap=True)
        table.add_column("doing", no_wrap=True)
        table.add_column("on", ratio=1, no_wrap=True, overflow="ellipsis")
        table.add_column("cases", justify="right", no_wrap=True)
        table.add_column("last event", justify="right", no_wrap=True)
        shown = self._workers_shown()
        if not shown:
            table.add_row("", Text(f"starting {self.jobs} worker(s)...", style="dim"), "", "", "")
        for worker in shown:
            name = "driver" if worker.slot == DRIVER else str(worker.slot)
            table.add_row(
                name, _state_text(worker), _worker_detail(worker), f"{worker.cases:,}",
                f"{duration(now - worker.seen)} ago",
            )  # fmt: skip
        ended = len(self.workers) - len(shown)
        if ended:
            table.add_row("", Text(f"and {ended} ended", style="dim"), "", "", "")
        return table

    def _workers_shown(self) -> list[_Worker]:
        """The active workers, then as many ended ones as there are free rows."""
        active = [w for w in self.workers.values() if w.active]
        ended = [w for w in self.workers.values() if not w.active]
        room = max(self.jobs + 2 - len(active), 0)
        shown = active + ended[-room:] if room else active
        return sorted(shown, key=lambda w: w.slot)

    def _log_text(self) -> RenderableType:
        if not self._log:
            return Text("nothing notable yet", style="dim")
        lines = Table.grid(padding=(0, 1))
        lines.add_column(style="dim", no_wrap=True, min_width=8)
        lines.add_column(no_wrap=True, overflow="ellipsis")
        for at, line in self._log:
            lines.add_row(time.strftime("%H:%M:%S", time.localtime(at)),
                          Text(line.text, style=line.style))  # fmt: skip
        return lines


def _versions(names: Iterable[str]) -> list[str]:
    """Distinct version names in order of first appearance."""
    return list(dict.fromkeys(names))


def _pair_cell(stats: _PairStats) -> Text:
    text = Text(f"{stats.cases:,}")
    text.append(f" / {len(stats.signatures)}", style="bold" if stats.signatures else "dim")
    if stats.new:
        text.append(f" ({len(stats.new)})", style="bold red")
    return text


_STATE_STYLES = {
    "starting": "dim",
    "running": "green",
    "shrinking": "bold magenta",
    "done": "dim",
    "stopped": "dim",
    "lost": "bold red",
}


def _state_text(worker: _Worker) -> Text:
    return Text(worker.state, style=_STATE_STYLES.get(worker.state, ""))


def _worker_detail(worker: _Worker) -> Text:
    if worker.state == "shrinking" and worker.shrinking:
        text = Text(str(worker.shrinking[0]))
        if len(worker.shrinking) > 1:
            text.append(f" (and {len(worker.shrinking) - 1} more)", style="dim")
        return text
    if worker.state == "lost":
        return Text(worker.reason, style="red")
    if worker.pair is None:
        return Text("")
    text = Text(f"{worker.pair[0]} -> {worker.pair[1]}")
    if worker.last_kind:
        text.append(f" ({worker.last_kind})", style="dim")
    return text
