"""A campaign folder read back as plain data, for the report a maintainer reads.

``migfuzz report DIR`` turns what a campaign left behind (see :mod:`fuzz.folder`) into one
HTML page. This module does the reading: :func:`gather` folds ``campaign.json``, the event
log and the corpus entries into a frozen :class:`ReportData`, with nothing of HTML or
plotting in it, so what the report *says* is tested apart from how it looks
(:mod:`fuzz.report_html` and :mod:`fuzz.report_plots` draw it).

The event log is the source of truth for counts: every judged case is one ``CaseJudged``
line, so the matrix, the per-signature counts and the time series all add up to the same
number of cases. The corpus entries add what the log does not hold: the minimal case, its
listing, the responsible registers and the ``repro.sh``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, TypeVar

from fuzz.corpus import Entry, iter_entries
from fuzz.errors import CampaignError, CorpusError
from fuzz.folder import CORPUS, EVENTS, FORMAT, RECORD, read_jsonl, resume_state

__all__ = [
    "CellReport",
    "EntryReport",
    "FlakyReport",
    "ReportData",
    "SeriesPoint",
    "Session",
    "Severity",
    "SignatureReport",
    "ValueChange",
    "VersionInfo",
    "gather",
    "severity_of",
    "version_key",
]

_K = TypeVar("_K")

#: At most this many changed fields are kept per signature (a state diff can be long).
MAX_FIELDS = 40


class Severity(IntEnum):
    """The worst thing met on a pair, in increasing order of how much it matters."""

    AGREE = 0
    INVALID = 1
    """No divergence, and some cases could not run there (setup errors)."""
    CONTROL_FAILED = 2
    """A -> A failed: a harness or same-version problem, not a cross-version finding."""
    STATE = 3
    """The migration completed but state or the guest's read-back differs."""
    REFUSED = 4
    """The destination refused the stream cleanly."""
    CRASHED = 5
    """A QEMU crashed or hung."""

    @property
    def label(self) -> str:
        """A short human name."""
        return _LABELS[self]


_LABELS = {
    Severity.AGREE: "agree",
    Severity.INVALID: "no divergence, some cases invalid",
    Severity.CONTROL_FAILED: "control failed",
    Severity.STATE: "state / read-back",
    Severity.REFUSED: "refused",
    Severity.CRASHED: "crashed / hung",
}
_CASE_KINDS = {
    "agree": Severity.AGREE,
    "invalid": Severity.INVALID,
    "control-failed": Severity.CONTROL_FAILED,
}


def severity_of(signature_kind: str) -> Severity:
    """The severity of a divergence by its signature's kind (``refused-on-load``, ``state``).

    Kinds this module does not know (``reuse``, a future oracle's) count as state
    divergences: the mildest divergence, never mistaken for agreement.
    """
    if signature_kind.startswith(("crashed", "hung")):
        return Severity.CRASHED
    if signature_kind.startswith("refused"):
        return Severity.REFUSED
    return Severity.STATE


def version_key(name: str) -> tuple[tuple[int, str], ...]:
    """Sort key of version names: ``5.2`` < ``10.0`` < ``11.1``, other names after numbers."""
    return tuple((int(w), "") if w.isdigit() else (1 << 30, w) for w in name.split("."))


@dataclass(frozen=True)
class VersionInfo:
    """One binary of the campaign, as ``campaign.json`` recorded it."""

    name: str
    version_line: str
    sha256: str
    path: str


@dataclass(frozen=True)
class Session:
    """One start of the campaign (the first, or a resume) and how it ended.

    ``ended`` is ``finished``, ``interrupted`` (Ctrl-C, SIGTERM) or ``killed`` (no stop
    event: the driver died, or the campaign is still running).
    """

    started: float
    ended: str
    cases: int
    seconds: float


@dataclass(frozen=True)
class CellReport:
    """One source -> destination pair of the matrix."""

    src: str
    dst: str
    cases: int
    worst: Severity | None
    """None: no case ran on this pair."""
    signatures: int
    kinds: tuple[tuple[str, int], ...]
    """CaseJudged kind -> count, most frequent first."""


@dataclass(frozen=True)
class SeriesPoint:
    """The campaign at one moment: seconds of campaign time, cases, distinct signatures."""

    seconds: float
    cases: int
    signatures: int


@dataclass(frozen=True)
class ValueChange:
    """One register or field that explains a divergence, with its value on each side.

    ``a``/``b`` are the values under :attr:`EntryReport.value_labels`; None when one side
    does not have it at all.
    """

    name: str
    a: str | None
    b: str | None
    note: str = ""


@dataclass(frozen=True)
class EntryReport:
    """What a corpus entry adds to a signature: the minimal case and how to rerun it."""

    path: Path
    src: str
    dst: str
    config: tuple[tuple[str, str], ...]
    """Machine configuration, field -> value as text (machine, cpu, options, ...)."""
    operations: tuple[str, ...]
    listing: str
    seed: int | None
    outcome: str
    """The pair's outcome in one line, with QEMU's deciding message."""
    registers: tuple[ValueChange, ...]
    """Responsible registers (localization): source value, destination value."""
    fields: tuple[ValueChange, ...]
    """Fields or read-back items that differ: control value, pair value."""
    fields_source: str
    """What ``fields`` compares: ``restored state`` or ``guest read-back`` ('' if none)."""
    fields_total: int
    """How many differed (``fields`` keeps at most :data:`MAX_FIELDS`)."""
    localization_note: str
    repro: str
    repro_path: Path | None


@dataclass(frozen=True)
class SignatureReport:
    """One distinct divergence: how often, where, and its reproducer."""

    signature: str
    kind: str
    detail: str
    severity: Severity
    count: int
    """Judged cases with this signature (shrinking steps are not counted)."""
    pairs: tuple[tuple[str, str, int], ...]
    """(source, destination, count), most frequent first."""
    versions: tuple[str, ...]
    first_seen: float | None
    """Campaign seconds at which it was first met (None: only in the corpus)."""
    entry: EntryReport | None
    unstable: bool
    """Its shrink ended in a case that no longer showed it (the first case was kept)."""
    reliability: str = ""
    """How often its first case showed it again before it was reported (``"3/3"``;
    empty: not measured, e.g. an entry written by an older migfuzz)."""


@dataclass(frozen=True)
class FlakyReport:
    """A new signature whose case did not show it again reliably: listed apart, not shrunk."""

    signature: str
    pair: tuple[str, str]
    reliability: str
    path: str


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows, gathered from one campaign folder."""

    root: Path
    pairs: tuple[tuple[str, str], ...]
    seed: int | None
    budget_seconds: float | None
    max_cases: int | None
    jobs: int | None
    started: str
    migfuzz: str
    versions: tuple[VersionInfo, ...]
    sessions: tuple[Session, ...]
    cases: int
    seconds: float
    cells: tuple[CellReport, ...]
    """Every source x destination over :attr:`versions`, row by row."""
    series: tuple[SeriesPoint, ...]
    signatures: tuple[SignatureReport, ...]
    """Worst first, then most frequent."""
    control_failures: tuple[tuple[str, int], ...]
    invalid_cases: tuple[tuple[str, int], ...]
    harness_problems: tuple[str, ...]
    harness_failures: tuple[tuple[str, int], ...] = ()
    """Cases the harness failed twice (QEMU would not start, QMP lost), by bucket."""
    flaky: tuple[FlakyReport, ...] = ()
    rechecked: tuple[tuple[str, str, str], ...] = ()
    """(entry, signature, what its replay on a new binary said), from ``--recheck`` and
    resumes, the last word per entry."""

    @property
    def cases_per_second(self) -> float:
        """Judged cases per second of campaign time (0 for an empty campaign)."""
        return self.cases / self.seconds if self.seconds > 0 else 0.0

    @property
    def interrupted(self) -> bool:
        """Whether the last session ended before its budget (interrupted or killed)."""
        return bool(self.sessions) and self.sessions[-1].ended != "finished"

    @property
    def version_names(self) -> tuple[str, ...]:
        """The matrix's axes: every version of the campaign, oldest first."""
        return tuple(v.name for v in self.versions)


# -- reading ---------------------------------------------------------------------------


def gather(root: Path) -> ReportData:
    """Read the campaign folder ``root`` into a :class:`ReportData`.

    :raise CampaignError: ``root`` is not a campaign folder, lacks its event log or corpus
        folder, or its record does not parse.
    """
    record = _read_record(root)
    if not (root / EVENTS).is_file():
        raise CampaignError(f"{root}: campaign folder without {EVENTS} (it never started)")
    if not (root / CORPUS).is_dir():
        raise CampaignError(f"{root}: campaign folder without its {CORPUS}/ folder")
    events = list(read_jsonl(root / EVENTS))
    pairs = _pairs(record, root)
    versions = _versions(record, pairs)
    sessions, clock = _sessions(events)
    judged = [e for e in events if e.get("type") == "CaseJudged"]
    entries, bad_entries = _entries(root / CORPUS)
    state = resume_state(iter(events), root)
    # A finding announced and never shrunk is a problem once the campaign stopped; while
    # it runs (or after a kill, until a resume shrinks it) it is work in progress.
    stopped = bool(sessions) and sessions[-1].ended != "killed"
    signatures = _signatures(events, judged, entries, clock)
    return ReportData(
        root=root,
        pairs=pairs,
        seed=_opt_int(record.get("seed")),
        budget_seconds=_opt_float(record.get("budget_seconds")),
        max_cases=_opt_int(record.get("max_cases")),
        jobs=_opt_int(record.get("jobs")),
        started=str(record.get("started", "")),
        migfuzz=str(record.get("migfuzz", "")),
        versions=versions,
        sessions=sessions,
        cases=len(judged),
        seconds=state.seconds,
        cells=_cells([v.name for v in versions], judged),
        series=_series(judged, clock),
        signatures=signatures,
        control_failures=_reasons(judged, "control-failed"),
        invalid_cases=_reasons(judged, "invalid"),
        harness_problems=_harness_problems(events, bad_entries, state.unshrunk if stopped else []),
        harness_failures=_reasons(judged, "harness"),
        flaky=_flaky(events),
        rechecked=_rechecked(events),
    )  # fmt: skip


def _rechecked(events: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, str, str], ...]:
    last: dict[str, tuple[str, str, str]] = {}
    for event in events:
        if event.get("type") == "Rechecked":
            entry = Path(str(event.get("entry", ""))).name
            last[entry] = (entry, str(event.get("signature", "")), str(event.get("line", "")))
    return tuple(last.values())


def _flaky(events: Sequence[Mapping[str, Any]]) -> tuple[FlakyReport, ...]:
    """Each flaky signature once (its first report), in the order met."""
    out: dict[str, FlakyReport] = {}
    for event in events:
        if event.get("type") != "FindingFlaky" or str(event.get("signature")) in out:
            continue
        pair = _pair_of(event) or ("?", "?")
        out[str(event.get("signature"))] = FlakyReport(
            str(event.get("signature")), pair, str(event.get("reliability", "")),
            str(event.get("path", "")),
        )  # fmt: skip
    return tuple(out.values())


def _read_record(root: Path) -> dict[str, Any]:
    if not root.is_dir():
        raise CampaignError(f"{root}: no such folder")
    path = root / RECORD
    if not path.is_file():
        raise CampaignError(f"{root} is not a campaign folder (no {RECORD})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise CampaignError(f"{path}: cannot read the campaign record: {err}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CampaignError(f"{path}: not a format-{FORMAT} campaign record")
    return data


def _pairs(record: Mapping[str, Any], root: Path) -> tuple[tuple[str, str], ...]:
    raw = record.get("pairs")
    if not isinstance(raw, list):
        raise CampaignError(f"{root / RECORD}: 'pairs' must be a list of 'SRC:DST'")
    pairs = []
    for item in raw:
        src, sep, dst = str(item).partition(":")
        if not sep or not src or not dst:
            raise CampaignError(f"{root / RECORD}: pair {item!r} is not 'SRC:DST'")
        pairs.append((src, dst))
    return tuple(pairs)


def _versions(
    record: Mapping[str, Any], pairs: Sequence[tuple[str, str]]
) -> tuple[VersionInfo, ...]:
    raw = record.get("versions")
    recorded = raw if isinstance(raw, dict) else {}
    names = set(recorded) | {v for pair in pairs for v in pair}
    infos = []
    for name in sorted(names, key=version_key):
        data = recorded.get(name)
        data = data if isinstance(data, dict) else {}
        infos.append(VersionInfo(
            name=name, version_line=str(data.get("version_line") or ""),
            sha256=str(data.get("sha256") or ""), path=str(data.get("path") or ""),
        ))  # fmt: skip
    return tuple(infos)


class _Clock:
    """Wall-clock event times -> campaign seconds, leaving out the gaps between sessions."""

    def __init__(self, starts: Sequence[tuple[float, float]]) -> None:
        self._starts = list(starts)  # (wall time the session started, campaign offset)

    def __call__(self, t: float) -> float:
        offset, start = 0.0, self._starts[0][0] if self._starts else t
        for wall, before in self._starts:
            if wall <= t:
                offset, start = before, wall
        return round(offset + max(0.0, t - start), 3)


def _sessions(events: Sequence[Mapping[str, Any]]) -> tuple[tuple[Session, ...], _Clock]:
    sessions: list[Session] = []
    starts: list[tuple[float, float]] = []
    current: dict[str, Any] | None = None
    spent = 0.0
    last_t = 0.0

    def close(ended: str, end_t: float) -> None:
        nonlocal spent
        assert current is not None
        seconds = max(0.0, end_t - current["t"])
        sessions.append(Session(current["t"], ended, current["cases"], round(seconds, 3)))
        spent += seconds

    for event in events:
        t = _opt_float(event.get("t")) or 0.0
        kind = event.get("type")
        if kind == "CampaignStarted":
            if current is not None:
                close("killed", last_t)
            current = {"t": t, "cases": 0}
            starts.append((t, spent))
        elif current is not None and kind == "CaseJudged":
            current["cases"] += 1
        elif current is not None and kind == "CampaignStopped":
            close("interrupted" if event.get("interrupted") else "finished", t)
            current = None
        last_t = max(last_t, t)
    if current is not None:
        close("killed", last_t)
    return tuple(sessions), _Clock(starts)


def _entries(corpus: Path) -> tuple[dict[str, Entry], list[CorpusError]]:
    entries: dict[str, Entry] = {}
    bad: list[CorpusError] = []
    for item in iter_entries(corpus):
        if isinstance(item, CorpusError):
            bad.append(item)
        else:
            entries[str(item.signature)] = item
    return entries, bad


def _pair_of(event: Mapping[str, Any]) -> tuple[str, str] | None:
    pair = event.get("pair")
    if isinstance(pair, list | tuple) and len(pair) == 2:
        return str(pair[0]), str(pair[1])
    return None


def _case_severity(event: Mapping[str, Any]) -> Severity:
    kind = str(event.get("kind", ""))
    if kind in _CASE_KINDS:
        return _CASE_KINDS[kind]
    signature = str(event.get("signature") or event.get("reason") or "")
    return severity_of(signature.partition(":")[0])


def _causes(event: Mapping[str, Any]) -> list[str]:
    """Every root cause a judged case showed (a case with several counts for each); its
    headline signature alone in a log written before causes were logged."""
    causes = event.get("causes")
    if isinstance(causes, list) and causes:
        return [str(c) for c in causes]
    return [str(event["signature"])] if event.get("signature") else []


def _cells(names: Sequence[str], judged: Sequence[Mapping[str, Any]]) -> tuple[CellReport, ...]:
    by_pair: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for event in judged:
        pair = _pair_of(event)
        if pair is not None:
            by_pair.setdefault(pair, []).append(event)
    cells = []
    for src in names:
        for dst in names:
            met = by_pair.get((src, dst), [])
            sigs = {cause for e in met for cause in _causes(e)}
            cells.append(CellReport(
                src=src, dst=dst, cases=len(met),
                worst=max((_case_severity(e) for e in met), default=None),
                signatures=len(sigs),
                kinds=_counts(e.get("kind") for e in met),
            ))  # fmt: skip
    return tuple(cells)


def _series(judged: Sequence[Mapping[str, Any]], clock: _Clock) -> tuple[SeriesPoint, ...]:
    points = [SeriesPoint(0.0, 0, 0)] if judged else []
    seen: set[str] = set()
    for n, event in enumerate(judged, 1):
        seen.update(_causes(event))
        points.append(SeriesPoint(clock(_opt_float(event.get("t")) or 0.0), n, len(seen)))
    return tuple(points)


def _signatures(
    events: Sequence[Mapping[str, Any]],
    judged: Sequence[Mapping[str, Any]],
    entries: Mapping[str, Entry],
    clock: _Clock,
) -> tuple[SignatureReport, ...]:
    met: dict[str, list[Mapping[str, Any]]] = {}
    for event in judged:
        for cause in _causes(event):
            met.setdefault(cause, []).append(event)
    unstable = {str(e.get("signature")) for e in events if e.get("type") == "ReproducerUnstable"}
    reports = []
    for signature in sorted(set(met) | set(entries)):
        cases = met.get(signature, [])
        entry = entries.get(signature)
        pair_counts = Counter(p for p in map(_pair_of, cases) if p is not None)
        if not pair_counts and entry is not None:
            pair_counts[(entry.src.name, entry.dst.name)] = 0
        kind, _, detail = signature.partition(": ")
        if entry is not None:
            kind, detail = entry.signature.kind, entry.signature.detail
        times = [clock(t) for t in (_opt_float(e.get("t")) for e in cases) if t is not None]
        reports.append(SignatureReport(
            signature=signature, kind=kind, detail=detail, severity=severity_of(kind),
            count=len(cases),
            pairs=tuple((a, b, n) for (a, b), n in _most_common(pair_counts)),
            versions=tuple(sorted({v for p in pair_counts for v in p}, key=version_key)),
            first_seen=min(times, default=None),
            entry=None if entry is None else _entry_report(entry),
            unstable=signature in unstable,
            reliability="" if entry is None else str(entry.findings.get("reliability", "")),
        ))  # fmt: skip
    reports.sort(key=lambda r: (-r.severity, -r.count, r.signature))
    return tuple(reports)


def _entry_report(entry: Entry) -> EntryReport:
    config = tuple((str(k), _text(v)) for k, v in entry.case.config.to_json().items())
    guest = entry.case.guest
    findings = entry.findings
    localization = findings.get("localization")
    localization = localization if isinstance(localization, dict) else {}
    fields, source, total = _changed_fields(findings)
    repro = entry.path / "repro.sh" if entry.path is not None else None
    try:
        repro_text = repro.read_text(encoding="utf-8", errors="replace") if repro else ""
    except OSError:
        repro_text, repro = "", None
    return EntryReport(
        path=entry.path or Path(entry.name),
        src=entry.src.name,
        dst=entry.dst.name,
        config=config,
        operations=() if guest is None else tuple(str(op) for op in guest.operations),
        listing="" if guest is None else guest.source(),
        seed=entry.case.seed,
        outcome=entry.pair.summary(),
        registers=tuple(_registers(localization.get("registers"))),
        fields=fields,
        fields_source=source,
        fields_total=total,
        localization_note=str(localization.get("note") or ""),
        repro=repro_text,
        repro_path=repro,
    )


def _registers(raw: object) -> Iterable[ValueChange]:
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, dict) and item.get("name"):
            yield ValueChange(
                str(item["name"]), _opt_text(item.get("src")), _opt_text(item.get("dst")),
                str(item.get("action") or ""),
            )  # fmt: skip


def _changed_fields(findings: Mapping[str, Any]) -> tuple[tuple[ValueChange, ...], str, int]:
    """The differing fields a finding names: the pair's restored state, else the read-back."""
    for key in ("pair_state", "state"):
        state = findings.get(key)
        changed = state.get("changed") if isinstance(state, dict) else None
        if isinstance(changed, list) and changed:
            items = [
                ValueChange(str(c.get("path")), _opt_text(c.get("before")),
                            _opt_text(c.get("after")))
                for c in changed if isinstance(c, dict)
            ]  # fmt: skip
            return tuple(items[:MAX_FIELDS]), "restored state", len(items)
    differences = findings.get("differences")
    if isinstance(differences, list) and differences:
        items = [
            ValueChange(str(d.get("name")), _opt_text(d.get("expected")),
                        _opt_text(d.get("actual")), str(d.get("kind") or ""))
            for d in differences if isinstance(d, dict)
        ]  # fmt: skip
        return tuple(items[:MAX_FIELDS]), "guest read-back", len(items)
    return (), "", 0


def _harness_problems(
    events: Sequence[Mapping[str, Any]],
    bad_entries: Sequence[CorpusError],
    unshrunk: Sequence[Path],
) -> tuple[str, ...]:
    problems = []
    for event in events:
        kind = event.get("type")
        if kind == "WorkerLost":
            again = "replaced" if event.get("replaced") else "not replaced"
            problems.append(f"worker {event.get('worker')} lost ({again}): {event.get('reason')}")
        elif kind == "ReproducerUnstable":
            problems.append(f"shrink of '{event.get('signature')}' ended in a case showing "
                            f"'{event.get('now')}'; the first case was kept")  # fmt: skip
    problems.extend(f"corpus entry unreadable: {err}" for err in bad_entries)
    problems.extend(f"finding announced but never shrunk: {path}" for path in unshrunk)
    return tuple(problems)


# -- small helpers ---------------------------------------------------------------------


def _reasons(judged: Sequence[Mapping[str, Any]], kind: str) -> tuple[tuple[str, int], ...]:
    return _counts(e.get("reason") for e in judged if e.get("kind") == kind)


def _counts(values: Iterable[object]) -> tuple[tuple[str, int], ...]:
    return tuple(_most_common(Counter(str(v or "(no reason given)") for v in values)))


def _most_common(counter: Mapping[_K, int]) -> list[tuple[_K, int]]:
    return sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))


def _opt_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _opt_float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _opt_text(value: object) -> str | None:
    return None if value is None else _text(value)


def _text(value: object) -> str:
    if isinstance(value, list | tuple):
        return (
            ", ".join(
                "=".join(map(str, v)) if isinstance(v, list | tuple) else str(v) for v in value
            )
            or "none"
        )
    return str(value)
