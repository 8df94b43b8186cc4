"""A :class:`~fuzz.report.gather.ReportData` as one self-contained HTML page.

The page carries everything inline -- CSS in a ``<style>``, pictures as base64 PNG, no
script at all -- so it can be mailed, attached to a CI run or opened from an archive with
no network. Every piece of text from the campaign (QEMU messages, listings, ``repro.sh``)
is escaped: a QEMU error line is data, never markup. Its controls are plain HTML:
``<details>`` to unfold a listing, and a check box whose CSS ``:checked`` rules show
promised findings only (the promised-only matrix instead of the whole one, and no section
of a finding QEMU does not promise to avoid).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path

from fuzz.core.live import HEADLINE_MIGRATIONS
from fuzz.report.gather import (
    CONTROL_CLEAN,
    CONTROL_FAILED,
    CONTROL_INVALID,
    CONTROL_SAME_VERSION,
    CoverageReport,
    EntryReport,
    ReportData,
    Severity,
    SignatureReport,
    ValueChange,
)
from fuzz.report.plots import COLOURS, NOT_PROMISED_COLOUR, matrix_png, timeline_png

__all__ = ["render_html", "write_report"]

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; }
h1 { margin-bottom: .2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em;
     margin-top: 2em; } h3 { margin-bottom: .3em; word-break: break-word; }
table { border-collapse: collapse; margin: .5em 0; }
td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: left;
         vertical-align: top; }
th { background: #f6f6f6; }
table.kv th { width: 11em; }
code, pre { font: 13px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; }
pre { background: #f6f8fa; padding: .7em; overflow-x: auto; border-radius: 4px; }
.muted { color: #777; } .banner { padding: .6em 1em; border-radius: 4px; margin: 1em 0; }
.warn { background: #fff3cd; border: 1px solid #ffe08a; }
.ok { background: #e8f5e9; border: 1px solid #a5d6a7; }
.badge { display: inline-block; padding: 0 .5em; border-radius: 3px; color: white;
         font-size: 12px; vertical-align: middle; }
section.signature { border: 1px solid #e3e3e3; border-radius: 6px; padding: .3em 1em 1em;
                    margin: 1.2em 0; }
img { max-width: 100%; }
details > summary { cursor: pointer; color: #0b61a4; }
label.filter { display: inline-block; margin: .3em 0 .6em; cursor: pointer; }
#matrix-promised { display: none; }
#promised-only:checked ~ #matrix { display: none; }
#promised-only:checked ~ #matrix-promised { display: inline; }
#promised-only:checked ~ section.not-promised,
#promised-only:checked ~ ol li.not-promised { display: none; }
"""


def write_report(data: ReportData, out: Path) -> Path:
    """Render ``data`` and write it to ``out`` (atomically); return ``out``."""
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(render_html(data), encoding="utf-8")
    tmp.replace(out)
    return out


def render_html(data: ReportData) -> str:
    """The whole report page."""
    title = f"migfuzz campaign {data.root.name}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="muted">{escape(str(data.root))} &middot; report written '
        f"{escape(time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()))}</p>",
        _header(data),
        _matrix(data),
        _live_pairs(data),
        _timeline(data),
        _coverage(data),
        _signatures(data.signatures),
        _problems(data),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


# -- sections --------------------------------------------------------------------------


def _header(data: ReportData) -> str:
    rows = [
        ("pairs", ", ".join(f"{a} \u2192 {b}" for a, b in data.pairs) or "none"),
        ("seed", _or_dash(data.seed)),
        ("budget", _duration(data.budget_seconds) if data.budget_seconds else "none"),
        ("max cases", _or_dash(data.max_cases)),
        ("workers", _or_dash(data.jobs)),
        ("started", data.started or "\u2014"),
        ("cases judged", str(data.cases)),
        ("cases / second", f"{data.cases_per_second:.2f}"),
        ("duration", _duration(data.seconds)),
        ("live runs", _live_text(data)),
        ("runs with devices", _devices_text(data)),
        ("sessions", _sessions_text(data)),
        ("migfuzz", data.migfuzz or "\u2014"),
    ]
    out = ['<h2 id="campaign">Campaign</h2>', _status(data), _kv(rows), "<h3>Binaries</h3>"]
    out.append(_table(
        ("version", "version line", "sha256", "path"),
        [(v.name, v.version_line or "unknown", _code(v.sha256[:12] or "unknown"),
          _code(v.path or "unknown")) for v in data.versions],
        raw_columns=(2, 3),
    ))  # fmt: skip
    return "\n".join(out)


def _live_text(data: ReportData) -> str:
    """How many runs migrated a running guest, and over what."""
    if not data.live_runs:
        return "none"
    over = ", ".join(f"{name} {n}" for name, n in data.live_over)
    return f"{data.live_runs} (over {over})" if over else str(data.live_runs)


def _live_pairs(data: ReportData) -> str:
    """Per pair, how many judged live cases ran over each headline feature, and the
    transports and other features beside them (the transport sweep's matrix, and the
    drawn live cases')."""
    if not data.live_by_pair:
        return ""
    headline = list(HEADLINE_MIGRATIONS)
    rows = []
    for (src, dst), counts in data.live_by_pair:
        found = dict(counts)
        others = ", ".join(f"{name} {n}" for name, n in counts if name not in headline)
        cells = [str(found[name]) if name in found else "\u2014" for name in headline]
        rows.append((f"{src} \u2192 {dst}", *cells, others))
    return "\n".join([
        '<h2 id="live">Live migrations by pair</h2>',
        '<p class="muted">Judged live cases per pair over each headline feature (a dash: '
        "none ran; a pair where either version lacks a feature never runs it), then the "
        "transports and other settings they used.</p>",
        _table(("pair", *headline, "transports and other settings"), rows),
    ])  # fmt: skip


def _devices_text(data: ReportData) -> str:
    """How many runs had devices added with ``-device``, and which."""
    if not data.device_runs:
        return "none"
    kinds = ", ".join(f"{name} {n}" for name, n in data.device_kinds)
    return f"{data.device_runs} ({kinds})" if kinds else str(data.device_runs)


def _status(data: ReportData) -> str:
    notes = []
    if not data.sessions:
        notes.append("the campaign never logged a start")
    elif data.sessions[-1].ended == "interrupted":
        notes.append("the campaign was interrupted before its budget was spent")
    elif data.sessions[-1].ended == "killed":
        notes.append("the campaign has no stop event: it was killed, or is still running")
    if len(data.sessions) > 1:
        notes.append(f"resumed {len(data.sessions) - 1} time(s)")
    if data.cases == 0:
        notes.append("no case was judged: this campaign is empty")
    found = len(data.signatures)
    unpromised = sum(s.not_promised for s in data.signatures)
    summary = (
        f"{found} distinct signature{'s' if found != 1 else ''} "
        f"({unpromised} not promised), "
        f"{len(data.flaky)} flaky, "
        f"{sum(n for _, n in data.control_failures)} control failure(s), "
        f"{len(data.harness_problems) + sum(n for _, n in data.harness_failures)} "
        "harness problem(s)"
    )
    kind = "warn" if notes else "ok"
    text = "; ".join([*notes, summary])
    return f'<div class="banner {kind}">{escape(text[:1].upper() + text[1:])}.</div>'


def _sessions_text(data: ReportData) -> str:
    if not data.sessions:
        return "none"
    return "; ".join(
        f"{i}: {s.ended}, {s.cases} cases in {_duration(s.seconds)}"
        for i, s in enumerate(data.sessions, 1)
    )


def _matrix(data: ReportData) -> str:
    image = _img(matrix_png(data), "compatibility matrix", "matrix")
    return "\n".join([
        '<h2 id="matrix">Compatibility matrix</h2>',
        "<p>Rows are sources, columns destinations. Each cell is coloured by the worst "
        "outcome met on that pair (agree &lt; invalid &lt; control failed &lt; state &lt; "
        "refused &lt; crashed/hung) and counts its distinct signatures and cases. The "
        "diagonal (A \u2192 A, framed) is the control: every case runs A \u2192 A on its "
        "source before its pair, and the diagonal adds up how those controls ended "
        "(same-version findings, failed controls) over the cases whose source was A.</p>",
        *_promise_filter(data),
        image,
        *_promised_matrix(data),
        _controls(data),
    ])  # fmt: skip


def _any_not_promised(data: ReportData) -> bool:
    return any(s.not_promised for s in data.signatures) or any(c.not_promised for c in data.cells)


def _promise_filter(data: ReportData) -> list[str]:
    """What the promise grades say of the matrix, and the check box that shows promised
    findings only (the CSS rules hide the rest; it must precede what it hides)."""
    note = (
        "<p>A finding is <em>promised</em> when QEMU's documented migration policy covers "
        "it (a versioned machine type, a named CPU model and fixed options, forward or one "
        "release back, or any crash, hang or same-version failure), <em>not promised</em> "
        "otherwise (the <code>max</code> CPU, <code>gic-version=max</code>, an unversioned "
        "machine type, a backward jump of several releases). A pair that met only findings "
        f'QEMU does not promise to avoid is <span class="badge" style="background:'
        f'{NOT_PROMISED_COLOUR}">not promised</span>.</p>'
    )
    if not _any_not_promised(data):
        return [note, "<p class='muted'>Every graded finding of this campaign is promised.</p>"]
    return [
        note,
        '<input type="checkbox" id="promised-only">',
        '<label class="filter" for="promised-only">Promised only: leave out the findings '
        "QEMU does not promise to avoid (matrix and signatures)</label>",
    ]


def _promised_matrix(data: ReportData) -> list[str]:
    """The matrix without what is not promised, shown instead when the box is checked."""
    if not _any_not_promised(data):
        return []
    png = matrix_png(data, promised_only=True)
    return [_img(png, "compatibility matrix, promised findings only", "matrix-promised")]


def _controls(data: ReportData) -> str:
    """The diagonal as a table: each version's controls and same-version findings."""
    rows = []
    for cell in data.cells:
        if cell.src != cell.dst or (not cell.controls and not cell.cases):
            continue
        found = "; ".join(f"{sig} ({n})" for sig, n in cell.same_version) or "none"
        rows.append((
            cell.src, str(cell.control_cases), str(cell.controls_of(CONTROL_CLEAN)),
            str(cell.controls_of(CONTROL_SAME_VERSION)), str(cell.controls_of(CONTROL_FAILED)),
            str(cell.controls_of(CONTROL_INVALID)), found,
        ))  # fmt: skip
    if not rows:
        return "<p class='muted'>No control ran: the diagonal is empty.</p>"
    heads = ("A \u2192 A", "cases", "clean", "same-version finding", "control failed",
             "setup error on A", "same-version signatures (cases)")  # fmt: skip
    return "\n".join([
        '<h3 id="controls">The diagonal: A \u2192 A controls</h3>',
        "<p class='muted'>Per source version, the judged cases whose control ran on it, by "
        "how that control ended. One control serves every destination of a fan-out and is "
        "counted with each case it judged; a case the harness failed tells nothing of its "
        "control and is left out.</p>",
        _table(heads, rows),
    ])  # fmt: skip


def _timeline(data: ReportData) -> str:
    image = _img(timeline_png(data), "cases, signatures and fields exercised over time",
                 "timeline")  # fmt: skip
    note = "" if len(data.sessions) < 2 else (
        "<p class='muted'>Dashed lines: where a resumed session began (time between "
        "sessions is left out).</p>"
    )  # fmt: skip
    return f'<h2 id="time">Over time</h2>\n{image}\n{note}'


def _coverage(data: ReportData) -> str:
    """State coverage: per version, a table of its sections (devices)."""
    out = ['<h2 id="coverage">State coverage</h2>']
    if not data.coverage:
        out.append(f"<p class='muted'>{escape(data.coverage_note or 'no save was measured')}.</p>")
        return "\n".join(out)
    out.append(
        "<p class='muted'>A sample of the campaign's saves was measured against a save of "
        "the same configuration at reset: a field is <em>exercised</em> by a save that "
        "carries it with another value. Per version and section: its fields exercised by "
        "some measured save, of the fields the version has (as its reset saves held them), "
        "the measured saves that exercised any of them, and the fields exercised most "
        "(with their saves). Arrays and CPUs count as one field.</p>"
    )
    out.extend(_version_coverage(c) for c in data.coverage)
    return "\n".join(out)


def _version_coverage(coverage: CoverageReport) -> str:
    rows = [
        (_code(s.section), f"{s.fields_exercised} / {s.fields}", str(s.saves),
         ", ".join(f"{_code(name)} ({n})" for name, n in s.top) or "\u2014")
        for s in coverage.sections
    ]  # fmt: skip
    heads = ("section", "fields exercised", f"saves (of {coverage.saves})", "exercised most")
    return "\n".join([
        f'<h3 id="coverage-{escape(coverage.version)}">{escape(coverage.version)}: '
        f"{escape(coverage.summary)}</h3>",
        _table(heads, rows, raw_columns=(0, 3)),
    ])  # fmt: skip


def _signatures(signatures: Sequence[SignatureReport]) -> str:
    out = ['<h2 id="signatures">Signatures</h2>']
    if not signatures:
        out.append("<p>No divergence was found.</p>")
        return "\n".join(out)
    out.append("<ol>")
    out.extend(
        f'<li{_promise_class(s)}><a href="#sig-{i}">{escape(s.signature)}</a> '
        f'<span class="muted">({s.count} case{"s" if s.count != 1 else ""})</span></li>'
        for i, s in enumerate(signatures, 1)
    )
    out.append("</ol>")
    out.extend(_signature(i, s) for i, s in enumerate(signatures, 1))
    return "\n".join(out)


def _promise_class(sig: SignatureReport) -> str:
    return ' class="not-promised"' if sig.not_promised else ""


def _promise_text(sig: SignatureReport) -> str:
    if not sig.promise:
        return "not graded (no reproducer in this campaign's corpus)"
    return f"{sig.promise} \u2014 {sig.promise_reason}"


def _signature(index: int, sig: SignatureReport) -> str:
    pairs = ", ".join(f"{a} \u2192 {b} ({n})" for a, b, n in sig.pairs) or "none"
    rows = [
        ("kind", sig.kind),
        ("met", f"{sig.count} time{'s' if sig.count != 1 else ''}"),
        ("pairs", pairs),
        ("versions", ", ".join(sig.versions) or "\u2014"),
        ("first met", "\u2014" if sig.first_seen is None else f"after {_duration(sig.first_seen)}"),
        ("reproduces", _reliability(sig.reliability)),
        ("promise", _promise_text(sig)),
    ]  # fmt: skip
    if sig.unstable:
        rows.append(("shrink", "unstable: the minimal case no longer showed it"))
    unpromised = " not-promised" if sig.not_promised else ""
    badge = (
        f' <span class="badge" style="background:{NOT_PROMISED_COLOUR}">not promised</span>'
        if sig.not_promised
        else ""
    )
    out = [
        f'<section class="signature{unpromised}" id="sig-{index}">',
        f"<h3>{_badge(sig.severity)}{badge} {escape(sig.signature)}</h3>",
        _kv(rows),
    ]
    if sig.entry is None:
        out.append("<p class='muted'>No reproducer in this campaign's corpus (the signature "
                   "was known before the campaign, or its entry was not written).</p>")  # fmt: skip
    else:
        out.append(_entry(sig.entry))
    out.append("</section>")
    return "\n".join(out)


def _reliability(hits_runs: str) -> str:
    """``3/3`` -> ``3 of 3 runs``: how often its first case showed it again."""
    hits, sep, runs = hits_runs.partition("/")
    if not sep:
        return "not measured"
    return f"{hits} of {runs} runs of its first case"


def _entry(entry: EntryReport) -> str:
    out = ["<h4>Minimal case</h4>"]
    rows = [("pair", f"{entry.src} \u2192 {entry.dst}"), *entry.config]
    if entry.seed is not None:
        rows.append(("seed", str(entry.seed)))
    rows.append(("outcome", entry.outcome))
    out.append(_kv(rows))
    if entry.operations:
        out.append("<p>Guest operations:</p><ol>")
        out.extend(f"<li>{_code(op)}</li>" for op in entry.operations)
        out.append("</ol>")
    else:
        out.append("<p>Guest operations: none (the guest only reaches its checkpoint).</p>")
    if entry.listing:
        out.append(_details("guest listing (guest.s)", f"<pre>{escape(entry.listing)}</pre>"))
    if entry.registers:
        out.append("<h4>Responsible registers</h4>")
        out.append(_changes(entry.registers, ("register", "source value",
                                               "destination value", "action")))  # fmt: skip
    elif entry.localization_note:
        out.append(f"<p class='muted'>Localization: {escape(entry.localization_note)}</p>")
    if entry.fields:
        shown = "" if entry.fields_total == len(entry.fields) else (
            f" (first {len(entry.fields)} of {entry.fields_total})"
        )  # fmt: skip
        heads = ("item", "control", "pair", "how") if entry.fields_source == "guest read-back" \
            else ("field", "control (A \u2192 A)", "pair (A \u2192 B)", "note")  # fmt: skip
        out.append(f"<h4>Differing {escape(entry.fields_source)}{shown}</h4>")
        out.append(_changes(entry.fields, heads))
    where = "" if entry.repro_path is None else f" &middot; {_code(str(entry.repro_path))}"
    out.append(f"<h4>Reproducer</h4><p>entry {_code(str(entry.path))}{where}</p>")
    if entry.repro:
        out.append(_details("repro.sh", f"<pre>{escape(entry.repro)}</pre>"))
    return "\n".join(out)


def _problems(data: ReportData) -> str:
    out = []
    if data.rechecked:
        out += ['<h2 id="rechecked">Re-checked on new binaries</h2>',
                "<p class='muted'>Open findings replayed first on binaries they were not "
                "recorded on (<code>fuzz --recheck</code>, or a resume after a rebuild).</p>",
                _table(("entry", "signature", "replay"), data.rechecked)]  # fmt: skip
    out += ['<h2 id="flaky">Flaky findings</h2>',
           "<p class='muted'>New signatures whose case did not show them again in at least "
           "half of its re-runs: recorded apart (the corpus's <code>.flaky/</code>), never "
           "shrunk, not counted above.</p>"]  # fmt: skip
    if data.flaky:
        out.append(_table(
            ("signature", "pair", "reproduced", "case"),
            [(f.signature, f"{f.pair[0]} \u2192 {f.pair[1]}", f.reliability, _code(f.path))
             for f in data.flaky],
            raw_columns=(3,),
        ))  # fmt: skip
    else:
        out.append("<p>None.</p>")
    out += ['<h2 id="control">Control failures</h2>',
            "<p class='muted'>Cases whose A \u2192 A could not be judged (its read-back never "
            "finished, a step did not run): such a case says nothing. A control that QEMU "
            "refuses, crashes on or restores differently is a finding, listed with the "
            "signatures as <code>same-version-\u2026</code>.</p>"]  # fmt: skip
    out.append(_counts(data.control_failures, "No control failed."))
    out.append('<h2 id="invalid">Invalid cases</h2>')
    out.append(_counts(data.invalid_cases, "No case was invalid on its pair."))
    out.append('<h2 id="harness">Harness problems</h2>')
    out.append("<p class='muted'>Cases the harness failed twice (QEMU would not start, QMP "
               "lost, a guest that never reached its checkpoint), by kind: never "
               "findings.</p>")  # fmt: skip
    out.append(_counts(data.harness_failures, "No case failed in the harness."))
    if data.harness_problems:
        out.append("<ul>")
        out.extend(f"<li>{escape(p)}</li>" for p in data.harness_problems)
        out.append("</ul>")
    return "\n".join(out)


# -- pieces ----------------------------------------------------------------------------


def _img(png: bytes, alt: str, ident: str) -> str:
    encoded = base64.b64encode(png).decode("ascii")
    return f'<img id="{ident}" alt="{escape(alt)}" src="data:image/png;base64,{encoded}">'


def _kv(rows: Iterable[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _table(
    heads: Sequence[str], rows: Iterable[Sequence[str]], *, raw_columns: Sequence[int] = ()
) -> str:
    """A table; cells of ``raw_columns`` are HTML already, the others are escaped."""

    def cell(i: int, value: str) -> str:
        return value if i in raw_columns else escape(value)

    head = "".join(f"<th>{escape(h)}</th>" for h in heads)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell(i, v)}</td>" for i, v in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _changes(changes: Sequence[ValueChange], heads: Sequence[str]) -> str:
    """Name, both values and (if any change has one) a note per row."""
    absent = "<span class='muted'>absent</span>"

    def value(v: str | None) -> str:
        return absent if v is None else _code(v)

    width = 4 if any(c.note for c in changes) else 3
    rows = [(_code(c.name), value(c.a), value(c.b), escape(c.note))[:width] for c in changes]
    return _table(heads[:width], rows, raw_columns=(0, 1, 2, 3))


def _counts(counts: Sequence[tuple[str, int]], none: str) -> str:
    if not counts:
        return f"<p>{escape(none)}</p>"
    return _table(("cases", "reason"), [(str(n), reason) for reason, n in counts])


def _details(summary: str, body: str) -> str:
    return f"<details><summary>{escape(summary)}</summary>{body}</details>"


def _badge(severity: Severity) -> str:
    colour = COLOURS[severity]
    text = "black" if severity in (Severity.CONTROL_FAILED, Severity.INVALID) else "white"
    return (f'<span class="badge" style="background:{colour};color:{text}">'
            f"{escape(severity.label)}</span>")  # fmt: skip


def _code(text: str) -> str:
    return f"<code>{escape(text)}</code>"


def _or_dash(value: object) -> str:
    return "\u2014" if value is None else str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "\u2014"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 120:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
