"""The report's pictures: the compatibility matrix and the campaign over time, as PNG bytes.

Drawn with matplotlib's object API on its Agg canvas (no pyplot, no display, no global
backend state), so a report renders the same on a headless CI runner as on a desktop.
Colours are fixed per :class:`~fuzz.report.gather.Severity`, so two reports compare at a glance;
a pair whose every divergence is one QEMU does not promise to avoid (:mod:`fuzz.judge.promise`)
has a colour of its own, and the promised-only matrix leaves such divergences out.
"""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from fuzz.report.gather import CONTROL_FAILED, CONTROL_INVALID, CellReport, ReportData, Severity

__all__ = [
    "COLOURS",
    "NOT_PROMISED_COLOUR",
    "NOT_RUN_COLOUR",
    "cell_text",
    "matrix_png",
    "timeline_png",
]

#: Cell colour per worst outcome: greens for nothing found, amber for harness trouble,
#: reds for divergences, darker the worse.
COLOURS: dict[Severity, str] = {
    Severity.AGREE: "#4caf50",
    Severity.INVALID: "#c5e1a5",
    Severity.CONTROL_FAILED: "#ffca28",
    Severity.STATE: "#ff8a65",
    Severity.REFUSED: "#e53935",
    Severity.CRASHED: "#7f0000",
}
NOT_RUN_COLOUR = "#f2f2f2"
#: A pair that met only divergences QEMU does not promise to avoid: apart from the reds.
NOT_PROMISED_COLOUR = "#9575cd"
_DARK = (Severity.REFUSED, Severity.CRASHED, Severity.AGREE)  # white text on these
#: Where a cell's lines go (height in the cell, font size), by how many it has.
_PLACES = {2: ((0.42, 10), (0.66, 8)), 3: ((0.36, 10), (0.58, 8), (0.78, 7))}


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def cell_text(cell: CellReport | None, *, promised_only: bool = False) -> tuple[str, ...]:
    """What a matrix cell says, line by line (the first in bold): its distinct signatures
    (how many of them are not promised, or, ``promised_only``, the promised ones alone) and
    cases; on the diagonal, its controls; ``not run`` if nothing ran there."""
    if cell is None or cell.worst is None:
        return ("not run",)
    count = cell.signatures - cell.not_promised if promised_only else cell.signatures
    sigs = f"{count} signature{'s' if count != 1 else ''}"
    if cell.src != cell.dst:
        if cell.not_promised and not promised_only:
            return sigs, f"{cell.not_promised} not promised", f"{cell.cases} cases"
        return sigs, f"{cell.cases} cases"
    failed, invalid = cell.controls_of(CONTROL_FAILED), cell.controls_of(CONTROL_INVALID)
    ended = [f"{failed} failed"] * bool(failed) + [f"{invalid} invalid"] * bool(invalid)
    return sigs, f"{cell.control_cases} controls", f"control: {', '.join(ended) or 'all ran'}"


def _cell_colour(cell: CellReport | None, promised_only: bool) -> str | None:
    """A cell's fill (None: nothing ran there)."""
    if cell is None or cell.worst is None:
        return None
    if promised_only:
        return COLOURS[cell.promised_worst if cell.promised_worst is not None else cell.worst]
    return NOT_PROMISED_COLOUR if cell.only_not_promised else COLOURS[cell.worst]


def matrix_png(data: ReportData, *, promised_only: bool = False) -> bytes:
    """Source (rows) x destination (columns) over every version of the campaign.

    Each cell is coloured by the worst outcome met on that pair and says how many distinct
    signatures and cases it had (:func:`cell_text`); a pair with no case is hatched and
    says ``not run``; a pair whose every divergence QEMU does not promise to avoid has its
    own colour. The diagonal (A -> A, framed) is the control of every case whose source was
    A: its colour and counts are those controls' outcomes. ``promised_only`` leaves out
    the divergences that are not promised (colours and counts).
    """
    names = data.version_names
    n = max(1, len(names))
    size = 1.3 + 1.25 * n
    fig = Figure(figsize=(size + 2.6, size))
    ax = fig.add_subplot()
    cells = {(c.src, c.dst): c for c in data.cells}
    for row, src in enumerate(names):
        for col, dst in enumerate(names):
            cell = cells.get((src, dst))
            ran = cell is not None and cell.worst is not None
            colour = _cell_colour(cell, promised_only)
            ax.add_patch(Rectangle(
                (col, row), 1, 1, facecolor=colour or NOT_RUN_COLOUR, edgecolor="white",
                linewidth=2, hatch=None if ran else "///",
            ))  # fmt: skip
            dark = colour in {COLOURS[s] for s in _DARK} | {NOT_PROMISED_COLOUR}
            colour = "white" if dark else "black"
            if src == dst:
                ax.add_patch(Rectangle(
                    (col + 0.06, row + 0.06), 0.88, 0.88, fill=False, edgecolor=colour,
                    linestyle="--", linewidth=1,
                ))  # fmt: skip
            lines = cell_text(cell, promised_only=promised_only)
            if cell is None or cell.worst is None:
                ax.text(col + 0.5, row + 0.5, lines[0], ha="center", va="center",
                        fontsize=9, color="#777777")  # fmt: skip
                continue
            places = _PLACES[len(lines)]
            for i, (text, (y, size)) in enumerate(zip(lines, places, strict=True)):
                ax.text(col + 0.5, row + y, text, ha="center", va="center", fontsize=size,
                        fontweight="bold" if i == 0 else "normal", color=colour)  # fmt: skip
    ax.set_xlim(0, n)
    ax.set_ylim(n, 0)
    ax.set_xticks([i + 0.5 for i in range(len(names))], list(names))
    ax.set_yticks([i + 0.5 for i in range(len(names))], list(names))
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_xlabel("destination")
    ax.set_ylabel("source")
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_aspect("equal")
    handles = [Patch(facecolor=COLOURS[s], label=s.label) for s in Severity]
    if not promised_only:
        handles.append(Patch(facecolor=NOT_PROMISED_COLOUR, label="only not promised"))
    handles.append(Patch(facecolor=NOT_RUN_COLOUR, hatch="///", label="not run"))
    handles.append(Patch(facecolor="white", edgecolor="#333333", linestyle="--",
                         label="A \u2192 A: the control"))  # fmt: skip
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.03, 1.0), frameon=False,
              title="worst promised outcome" if promised_only else "worst outcome",
              fontsize=8, title_fontsize=9)  # fmt: skip
    return _png(fig)


def timeline_png(data: ReportData) -> bytes:
    """Cases judged, distinct signatures and fields exercised (state coverage, summed over
    the versions) against campaign time (resume gaps left out)."""
    fig = Figure(figsize=(13, 3.2))
    axes = fig.subplots(1, 3)
    points = data.series
    xs = [p.seconds for p in points]
    fields = data.coverage_series
    for ax, xs_ys, title, colour, empty in (
        (axes[0], (xs, [p.cases for p in points]), "cases judged", "#1e88e5",
         "no cases judged"),
        (axes[1], (xs, [p.signatures for p in points]), "distinct signatures", "#e53935",
         "no cases judged"),
        (axes[2], ([x for x, _n in fields], [n for _x, n in fields]),
         "fields exercised (state coverage)", "#43a047", "no save measured"),
    ):  # fmt: skip
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("campaign seconds")
        ax.grid(True, alpha=0.3)
        x, ys = xs_ys
        if x:
            ax.step(x, ys, where="post", color=colour)
            ax.set_xlim(0, max(x[-1], data.seconds, 1.0))
            ax.set_ylim(0, max(1, *ys) * 1.1)
        else:
            ax.text(0.5, 0.5, empty, ha="center", va="center",
                    transform=ax.transAxes, color="#777777")  # fmt: skip
            ax.set_xlim(0, max(data.seconds, 1.0))
            ax.set_ylim(0, 1)
    for session in data.sessions[1:]:
        start = _campaign_time_of(data, session.started)
        for ax in axes:
            ax.axvline(start, color="#999999", linestyle="--", linewidth=1)
    fig.tight_layout()
    return _png(fig)


def _campaign_time_of(data: ReportData, wall: float) -> float:
    """Campaign seconds at which a session began: the sum of the sessions before it."""
    return sum(s.seconds for s in data.sessions if s.started < wall)
