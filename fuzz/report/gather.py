"""A campaign folder read back as plain data, for the report a maintainer reads.

``migfuzz report DIR`` turns what a campaign left behind (see :mod:`fuzz.campaign.folder`) into one
HTML page. This module does the reading: :func:`gather` folds ``campaign.json``, the event
log and the corpus entries into a frozen :class:`ReportData`, with nothing of HTML or
plotting in it, so what the report *says* is tested apart from how it looks
(:mod:`fuzz.report.html` and :mod:`fuzz.report.plots` draw it).

State coverage comes from the folder's ``coverage.json`` (per version, section and field:
the measured saves that carried it away from reset, :mod:`fuzz.judge.coverage`) and its
growth over time from ``timeseries.jsonl``, whose samples count the fields exercised.

The event log is the source of truth for counts: every judged case is one ``CaseJudged``
line, so the matrix, the per-signature counts and the time series all add up to the same
number of cases. It is read once, as a stream folded into counters (a week-long campaign
logs millions of events; the report's memory does not grow with them). The corpus entries
add what the log does not hold: the minimal case, its listing, the responsible registers
and the ``repro.sh``.

Each signature carries the promise grade of its entry (:mod:`fuzz.judge.promise`), and each
pair of the matrix counts the signatures QEMU does not promise to avoid there (the entry's
configuration on that pair's versions), with its worst outcome leaving those out: the
report colours a pair that met only such findings apart, and can show promised ones only.

The matrix's diagonal is the control: every case runs A -> A on its source before its
pair, and its judgement says how that control ended (clean, a same-version finding, a
failed control, a setup error), so each diagonal cell adds up the controls of the cases
whose source was A.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, TypeVar

from fuzz.campaign.folder import (
    CORPUS,
    COVERAGE,
    EVENTS,
    FORMAT,
    RECORD,
    SERIES,
    ResumeFold,
    read_coverage,
    read_jsonl,
)
from fuzz.core.devices import device_counts
from fuzz.core.live import feature_counts
from fuzz.corpus.entry import Entry, VersionRef, iter_entries, promise_of
from fuzz.errors import CampaignError, CorpusError
from fuzz.judge.coverage import Coverage, VersionCoverage
from fuzz.judge.oracles import SAME_VERSION
from fuzz.judge.promise import Grade, Promise

__all__ = [
    "CONTROL_CLEAN",
    "CONTROL_FAILED",
    "CONTROL_INVALID",
    "CONTROL_SAME_VERSION",
    "CellReport",
    "CoverageReport",
    "EntryReport",
    "FlakyReport",
    "ReportData",
    "SectionReport",
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

#: How a case's A -> A control ended (:attr:`CellReport.controls`): it completed and
#: showed nothing, ...
CONTROL_CLEAN = "clean"
#: ... it was a same-version finding (A -> A refused, crashed or restored differently), ...
CONTROL_SAME_VERSION = "same-version finding"
#: ... it gave nothing to compare with (see :class:`fuzz.judge.oracles.ControlFailed`), ...
CONTROL_FAILED = "control failed"
#: ... or it could not be set up on A (the case is invalid there).
CONTROL_INVALID = "setup error on A"
_NO_REASON = "(no reason given)"


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

    A same-version kind weighs as its cross-version twin (``same-version-refused-on-load``
    is a refusal). Kinds this module does not know (``reuse``, a future oracle's) count as
    state divergences: the mildest divergence, never mistaken for agreement.
    """
    signature_kind = signature_kind.removeprefix(SAME_VERSION)
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
    """One source -> destination pair of the matrix.

    A diagonal cell (A -> A) is also the control of every case whose source was A: its
    :attr:`worst` and :attr:`signatures` count those controls' outcomes and same-version
    findings as well as the cases of the pair A -> A itself (if it was a pair at all).
    """

    src: str
    dst: str
    cases: int
    """Cases judged on this pair."""
    worst: Severity | None
    """None: no case ran on this pair (nor, on the diagonal, any control)."""
    signatures: int
    kinds: tuple[tuple[str, int], ...]
    """CaseJudged kind -> count, most frequent first."""
    controls: tuple[tuple[str, int], ...] = ()
    """Diagonal only: how the A -> A control of each judged case with source A ended
    (:data:`CONTROL_CLEAN` and the others) -> cases, most frequent first. One control
    serves every destination of a fan-out, and counts with each case it judged; a case
    the harness failed tells nothing of its control and is left out."""
    same_version: tuple[tuple[str, int], ...] = ()
    """Diagonal only: same-version signatures its controls showed -> cases."""
    not_promised: int = 0
    """Of :attr:`signatures`, those QEMU does not promise to avoid on this pair (graded
    by their entries' configurations; a signature without an entry counts as promised)."""
    promised_worst: Severity | None = None
    """The worst outcome leaving out what is not promised (a case whose divergences are all
    not promised counts as agreeing); None: no case ran."""

    @property
    def only_not_promised(self) -> bool:
        """Every divergence met on this pair is one QEMU does not promise to avoid."""
        divergence = self.worst is not None and self.worst >= Severity.STATE
        promised = self.promised_worst is not None and self.promised_worst >= Severity.STATE
        return divergence and not promised and self.not_promised > 0

    @property
    def control_cases(self) -> int:
        """Judged cases whose control ran on this (diagonal) cell's version."""
        return sum(n for _, n in self.controls)

    def controls_of(self, outcome: str) -> int:
        """Judged cases whose control ended as ``outcome`` (:data:`CONTROL_CLEAN`, ...)."""
        return dict(self.controls).get(outcome, 0)


@dataclass(frozen=True)
class SeriesPoint:
    """The campaign at one moment: seconds of campaign time, cases, distinct signatures."""

    seconds: float
    cases: int
    signatures: int


@dataclass(frozen=True)
class SectionReport:
    """One vmstate section of one version's state coverage: a row of its table."""

    section: str
    fields_exercised: int
    """Its fields that some measured save carried away from reset..."""
    fields: int
    """... of the fields the version's reset references held."""
    saves: int
    """Measured saves that exercised at least one of its fields."""
    top: tuple[tuple[str, int], ...]
    """The fields exercised most (names without the section), with their saves."""


@dataclass(frozen=True)
class CoverageReport:
    """One version's state coverage (``coverage.json``)."""

    version: str
    saves: int
    """Saves measured (a sample of the campaign's saves of this version)."""
    sections: tuple[SectionReport, ...]
    """By section name."""
    summary: str
    """In one line: sections and fields exercised, of how many, in how many saves."""


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
    promise: str = ""
    """``promised`` or ``not promised``, computed from its entry (its pair and
    configuration); empty: no entry, not graded."""
    promise_reason: str = ""

    @property
    def not_promised(self) -> bool:
        """QEMU does not promise to avoid it (an ungraded signature is not this)."""
        return self.promise == Promise.NOT_PROMISED


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
    coverage: tuple[CoverageReport, ...] = ()
    """State coverage per version, oldest first (empty: no ``coverage.json``)."""
    coverage_note: str = ""
    """Why there is no coverage to show, if there is none."""
    coverage_series: tuple[tuple[float, int], ...] = ()
    """(campaign seconds, fields exercised over every version), where the count changed
    (from ``timeseries.jsonl``)."""
    live_runs: int = 0
    """Runs that migrated a running guest (the workers' ``live`` count)."""
    live_over: tuple[tuple[str, int], ...] = ()
    """Live runs per transport and feature (``unix``, ``multifd``, ``postcopy``...), most
    first."""
    device_runs: int = 0
    """Runs whose configuration added devices with ``-device`` (the workers' count)."""
    device_kinds: tuple[tuple[str, int], ...] = ()
    """Runs per added device driver, most first."""
    live_by_pair: tuple[tuple[tuple[str, str], tuple[tuple[str, int], ...]], ...] = ()
    """Each pair's judged live cases per transport and feature (its ``CaseJudged``
    events' ``live``), pairs in the campaign's order; pairs without any left out."""

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

#: The time series keeps about this many points at most, however long the campaign (plus
#: one where each distinct signature was first met): enough for a picture, a constant
#: memory for a week-long log.
MAX_SERIES_POINTS = 2000


def gather(root: Path) -> ReportData:
    """Read the campaign folder ``root`` into a :class:`ReportData`.

    The event log is read once, as a stream, and folded into counters as it goes: memory
    grows with what the report shows (pairs, signatures, reasons), not with the log's
    length (a week-long campaign logs millions of events).

    :raise CampaignError: ``root`` is not a campaign folder, lacks its event log or corpus
        folder, or its record does not parse.
    """
    record = _read_record(root)
    if not (root / EVENTS).is_file():
        raise CampaignError(f"{root}: campaign folder without {EVENTS} (it never started)")
    if not (root / CORPUS).is_dir():
        raise CampaignError(f"{root}: campaign folder without its {CORPUS}/ folder")
    pairs = _pairs(record, root)
    versions = _versions(record, pairs)
    entries, bad_entries = _entries(root / CORPUS)
    fold = _Fold(root, _Grades(entries, versions))
    for event in read_jsonl(root / EVENTS):
        fold.add(event)
    state = fold.resume.state()
    sessions = fold.sessions()
    # A finding announced and never shrunk is a problem once the campaign stopped; while
    # it runs (or after a kill, until a resume shrinks it) it is work in progress.
    stopped = bool(sessions) and sessions[-1].ended != "killed"
    problems = (
        *fold.problems,
        *(f"corpus entry unreadable: {err}" for err in bad_entries),
        *(f"finding announced but never shrunk: {p}" for p in (state.unshrunk if stopped else [])),
    )  # fmt: skip
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
        cases=fold.cases,
        seconds=state.seconds,
        cells=fold.cells([v.name for v in versions]),
        series=fold.series.points(),
        signatures=fold.signatures(entries),
        control_failures=fold.reasons("control-failed"),
        invalid_cases=fold.reasons("invalid"),
        harness_problems=problems,
        harness_failures=fold.reasons("harness"),
        flaky=tuple(fold.flaky.values()),
        rechecked=tuple(fold.rechecked.values()),
        **_coverage(root, fold, state.seconds),
        live_runs=fold.engine["live"],
        live_over=tuple(feature_counts(fold.engine)),
        device_runs=fold.engine["devices"],
        device_kinds=tuple(device_counts(fold.engine)),
        live_by_pair=tuple((p, tuple(fold.live[p].most_common())) for p in pairs if p in fold.live),
    )


#: Fields named per section in the coverage table (the most exercised).
TOP_FIELDS = 5


def _coverage(root: Path, fold: _Fold, seconds: float) -> dict[str, Any]:
    """``coverage``, ``coverage_note`` and ``coverage_series`` of the report (the series
    ends at ``seconds`` with ``coverage.json``'s count, which the last sample may predate)."""
    coverage = read_coverage(root)
    note = ""
    if coverage is None:
        there = (root / COVERAGE).exists()
        note = f"{COVERAGE} does not parse" if there else f"no {COVERAGE}: no save was measured"
        coverage = Coverage()
    elif not coverage.versions:
        note = "no save was measured"
    reports = tuple(
        _version_coverage(name, coverage.versions[name])
        for name in sorted(coverage.versions, key=version_key)
    )
    series: list[tuple[float, int]] = []
    for sample in read_jsonl(root / SERIES):
        count, t = _opt_int(sample.get("fields_exercised")), _opt_float(sample.get("t"))
        if count is None or t is None:
            continue
        if not series:
            series.append((0.0, 0))
        if count != series[-1][1]:
            series.append((fold.clock(t), count))
    total = coverage.fields_exercised()
    if total and (not series or series[-1][1] != total):
        if not series:
            series.append((0.0, 0))
        series.append((max(seconds, series[-1][0]), total))
    return {"coverage": reports, "coverage_note": note, "coverage_series": tuple(series)}


def _version_coverage(name: str, coverage: VersionCoverage) -> CoverageReport:
    rows = []
    for section, counts in sorted(coverage.sections.items()):
        top = sorted(((p, n) for p, n in counts.fields.items() if n), key=lambda pn: -pn[1])
        rows.append(SectionReport(
            section, counts.exercised, len(counts.fields), counts.saves,
            tuple((p.removeprefix(f"{section}/"), n) for p, n in top[:TOP_FIELDS]),
        ))  # fmt: skip
    return CoverageReport(name, coverage.saves, tuple(rows), str(coverage.totals()))


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


class _Grades:
    """The promise grade of a signature on a pair: its entry's configuration and signature
    on that pair's versions (placed by the entry's version lines, or else the campaign
    record's); None for a signature without an entry. Remembered per (signature, pair)."""

    def __init__(self, entries: Mapping[str, Entry], versions: Sequence[VersionInfo]) -> None:
        self._entries = entries
        self._lines = {v.name: v.version_line for v in versions}
        self._known: dict[tuple[str, str, str], Grade | None] = {}

    def _ref(self, entry: Entry, name: str) -> VersionRef:
        for ref in (entry.src, entry.dst):
            if ref.name == name:
                return ref
        return VersionRef(name, "", self._lines.get(name, ""))

    def __call__(self, signature: str, pair: tuple[str, str]) -> Grade | None:
        key = (signature, *pair)
        if key not in self._known:
            entry = self._entries.get(signature)
            self._known[key] = None if entry is None else promise_of(
                entry.signature, self._ref(entry, pair[0]), self._ref(entry, pair[1]),
                entry.case.config,
            )  # fmt: skip
        return self._known[key]


class _Cell:
    """What the log said of one pair so far."""

    __slots__ = ("cases", "kinds", "not_promised", "promised_worst", "signatures", "worst")

    def __init__(self) -> None:
        self.cases = 0
        self.worst: Severity | None = None
        self.promised_worst: Severity | None = None
        self.signatures: set[str] = set()
        self.not_promised: set[str] = set()
        self.kinds: Counter[str] = Counter()


class _Control:
    """What the log said so far of one version's A -> A controls (the matrix's diagonal)."""

    __slots__ = ("outcomes", "same_version", "worst")

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.same_version: Counter[str] = Counter()
        self.worst: Severity | None = None


class _Series:
    """Cases and distinct signatures over campaign time, in bounded memory.

    Every case is a point until there are :data:`MAX_SERIES_POINTS`; then only every
    other one is kept (those whose case number is a multiple of a stride, which doubles),
    and so on as the campaign goes. A point where the count of signatures rose is always
    kept (there are as many as distinct signatures), and so is the last.
    """

    def __init__(self) -> None:
        self._points: list[SeriesPoint] = []
        self._stride = 1
        self._on_stride = 0
        self._last: tuple[float, int, int] | None = None

    def add(self, seconds: float, cases: int, signatures: int, *, new_signature: bool) -> None:
        """The campaign after one more case (``cases`` counts from 1)."""
        if not self._points:
            self._points.append(SeriesPoint(0.0, 0, 0))
            self._on_stride = 1
        on_stride = cases % self._stride == 0
        if not (on_stride or new_signature):
            self._last = (seconds, cases, signatures)  # a point only if it is the last
            return
        self._points.append(SeriesPoint(seconds, cases, signatures))
        self._last = None
        self._on_stride += on_stride
        if self._on_stride > MAX_SERIES_POINTS:
            self._thin()

    def _thin(self) -> None:
        self._stride *= 2
        kept, before = [], None
        for point in self._points:
            # Points of rising signatures were all kept: one that rose above the point
            # kept before it is one of them.
            rose = before is not None and point.signatures > before.signatures
            if point.cases % self._stride == 0 or rose:
                kept.append(point)
            before = point
        self._points = kept
        self._on_stride = sum(1 for p in kept if p.cases % self._stride == 0)

    def points(self) -> tuple[SeriesPoint, ...]:
        """The kept points, the last case's included."""
        last = () if self._last is None else (SeriesPoint(*self._last),)
        return (*self._points, *last)


class _Fold:
    """The event log folded one event at a time into what the report shows."""

    def __init__(
        self, root: Path, grades: Callable[[str, tuple[str, str]], Grade | None] = lambda *_: None
    ) -> None:
        self.resume = ResumeFold(root)
        self._grades = grades
        self.cases = 0
        self.series = _Series()
        self.flaky: dict[str, FlakyReport] = {}
        """Each flaky signature once (its first report), in the order met."""
        self.rechecked: dict[str, tuple[str, str, str]] = {}
        """The last word per entry."""
        self.problems: list[str] = []
        self._sessions: list[Session] = []
        self._starts: list[tuple[float, float]] = []  # (wall time, campaign seconds before)
        self._current: tuple[float, int] | None = None  # (start, cases) of an open session
        self._spent = 0.0
        self._last_t = 0.0
        self._cells: dict[tuple[str, str], _Cell] = {}
        self._controls: dict[str, _Control] = {}
        self._sig_count: Counter[str] = Counter()
        self._sig_pairs: dict[str, Counter[tuple[str, str]]] = {}
        self._sig_first: dict[str, float] = {}
        self._unstable: set[str] = set()
        self.engine: Counter[str] = Counter()
        """The workers' engine counts, added up (how runs ran, how many were live)."""
        self.live: dict[tuple[str, str], Counter[str]] = {}
        """Each pair's judged live cases per transport and feature."""
        self._reasons: dict[str, Counter[str]] = {
            kind: Counter() for kind in ("control-failed", "invalid", "harness")
        }

    def add(self, event: Mapping[str, Any]) -> None:
        """Fold one event in (events in the order logged)."""
        self.resume.add(event)
        raw_t = _opt_float(event.get("t"))
        t = raw_t or 0.0
        kind = event.get("type")
        if kind == "CaseJudged":
            if self._current is not None:
                self._current = (self._current[0], self._current[1] + 1)
            self._judged(event, raw_t)
        elif kind == "CampaignStarted":
            if self._current is not None:
                self._close("killed", self._last_t)
            self._current = (t, 0)
            self._starts.append((t, self._spent))
        elif kind == "CampaignStopped" and self._current is not None:
            self._close("interrupted" if event.get("interrupted") else "finished", t)
            self._current = None
        elif kind == "ReproducerUnstable":
            self._unstable.add(str(event.get("signature")))
            self.problems.append(
                f"shrink of '{event.get('signature')}' ended in a case showing "
                f"'{event.get('now')}'; the first case was kept"
            )
        elif kind == "WorkerFinished" and isinstance(event.get("engine"), dict):
            for key, count in event["engine"].items():
                if isinstance(count, int):
                    self.engine[str(key)] += count
        elif kind == "WorkerLost":
            again = "replaced" if event.get("replaced") else "not replaced"
            self.problems.append(
                f"worker {event.get('worker')} lost ({again}): {event.get('reason')}"
            )
        elif kind == "FindingFlaky" and str(event.get("signature")) not in self.flaky:
            pair = _pair_of(event) or ("?", "?")
            self.flaky[str(event.get("signature"))] = FlakyReport(
                str(event.get("signature")), pair, str(event.get("reliability", "")),
                str(event.get("path", "")),
            )  # fmt: skip
        elif kind == "Rechecked":
            entry = Path(str(event.get("entry", ""))).name
            self.rechecked[entry] = (
                entry, str(event.get("signature", "")), str(event.get("line", ""))
            )  # fmt: skip
        self._last_t = max(self._last_t, t)

    def _close(self, ended: str, end_t: float) -> None:
        assert self._current is not None
        start, cases = self._current
        seconds = max(0.0, end_t - start)
        self._sessions.append(Session(start, ended, cases, round(seconds, 3)))
        self._spent += seconds

    def clock(self, t: float) -> float:
        """Wall-clock time -> campaign seconds, leaving out the gaps between sessions:
        counted from the last session (in the log's order) that started by ``t``."""
        starts = self._starts
        if starts and starts[-1][0] <= t:  # nearly always: the log is in time order
            start, before = starts[-1]
        else:
            earlier = [s for s in starts if s[0] <= t]
            if not earlier:
                return 0.0
            start, before = earlier[-1]
        return round(before + max(0.0, t - start), 3)

    def _judged(self, event: Mapping[str, Any], t: float | None) -> None:
        self.cases += 1
        causes = _causes(event)
        pair = _pair_of(event)
        live = event.get("live")
        if pair is not None and isinstance(live, list) and live:
            self.live.setdefault(pair, Counter()).update(str(f) for f in live)
        kind = event.get("kind")
        if pair is not None:
            cell = self._cells.get(pair)
            if cell is None:
                cell = self._cells[pair] = _Cell()
            cell.cases += 1
            severity = _case_severity(event)
            if cell.worst is None or severity > cell.worst:
                cell.worst = severity
            cell.signatures.update(causes)
            unpromised = [c for c in causes if self._not_promised(c, pair)]
            if unpromised and kind == "divergence":
                cell.not_promised.update(unpromised)
                kept = [c for c in causes if c not in unpromised]
                severity = max(map(_signature_severity, kept), default=Severity.AGREE)
            if cell.promised_worst is None or severity > cell.promised_worst:
                cell.promised_worst = severity
            cell.kinds[str(kind or _NO_REASON)] += 1
            self._control(pair, event, causes)
        seen = len(self._sig_count)
        when = None if t is None else self.clock(t)
        for cause in causes:
            self._sig_count[cause] += 1
            if pair is not None:
                pairs = self._sig_pairs.get(cause)
                if pairs is None:
                    pairs = self._sig_pairs[cause] = Counter()
                pairs[pair] += 1
            if when is not None and (cause not in self._sig_first or when < self._sig_first[cause]):
                self._sig_first[cause] = when
        if isinstance(kind, str) and kind in self._reasons:
            self._reasons[kind][str(event.get("reason") or _NO_REASON)] += 1
        self.series.add(
            self.clock(0.0) if when is None else when, self.cases, len(self._sig_count),
            new_signature=len(self._sig_count) > seen,
        )  # fmt: skip

    def _not_promised(self, signature: str, pair: tuple[str, str]) -> bool:
        grade = self._grades(signature, pair)
        return grade is not None and not grade.promised

    def _control(
        self, pair: tuple[str, str], event: Mapping[str, Any], causes: Sequence[str]
    ) -> None:
        """What the case says of its A -> A control (A: its source), for the diagonal."""
        src, dst = pair
        outcome = _control_outcome(src, dst, event, causes)
        if outcome is None:
            return
        label, severity, same_version = outcome
        control = self._controls.get(src)
        if control is None:
            control = self._controls[src] = _Control()
        control.outcomes[label] += 1
        if control.worst is None or severity > control.worst:
            control.worst = severity
        control.same_version.update(same_version)

    def sessions(self) -> tuple[Session, ...]:
        """Every start of the campaign and how it ended (the open one: ``killed``)."""
        if self._current is None:
            return tuple(self._sessions)
        start, cases = self._current
        seconds = max(0.0, self._last_t - start)
        return (*self._sessions, Session(start, "killed", cases, round(seconds, 3)))

    def cells(self, names: Sequence[str]) -> tuple[CellReport, ...]:
        """Every source x destination over ``names``; the diagonal with its controls."""
        cells = []
        for src in names:
            for dst in names:
                cell = self._cells.get((src, dst)) or _Cell()
                control = self._controls.get(src) if src == dst else None
                if control is None:
                    cells.append(CellReport(
                        src=src, dst=dst, cases=cell.cases, worst=cell.worst,
                        signatures=len(cell.signatures), kinds=_ranked(cell.kinds),
                        not_promised=len(cell.not_promised), promised_worst=cell.promised_worst,
                    ))  # fmt: skip
                    continue
                known = [s for s in (cell.worst, control.worst) if s is not None]
                worst = max(known, default=None)
                kept = [s for s in (cell.promised_worst, control.worst) if s is not None]
                cells.append(CellReport(
                    src=src, dst=dst, cases=cell.cases, worst=worst,
                    signatures=len(cell.signatures | set(control.same_version)),
                    kinds=_ranked(cell.kinds), controls=_ranked(control.outcomes),
                    same_version=_ranked(control.same_version),
                    not_promised=len(cell.not_promised - set(control.same_version)),
                    promised_worst=max(kept, default=None),
                ))  # fmt: skip
        return tuple(cells)

    def signatures(self, entries: Mapping[str, Entry]) -> tuple[SignatureReport, ...]:
        """Every signature met or in the corpus: worst first, then most frequent."""
        reports = []
        for signature in sorted(set(self._sig_count) | set(entries)):
            entry = entries.get(signature)
            pair_counts = Counter(self._sig_pairs.get(signature, {}))
            if not pair_counts and entry is not None:
                pair_counts[(entry.src.name, entry.dst.name)] = 0
            kind, _, detail = signature.partition(": ")
            if entry is not None:
                kind, detail = entry.signature.kind, entry.signature.detail
            reports.append(SignatureReport(
                signature=signature, kind=kind, detail=detail, severity=severity_of(kind),
                count=self._sig_count.get(signature, 0),
                pairs=tuple((a, b, n) for (a, b), n in _most_common(pair_counts)),
                versions=tuple(sorted({v for p in pair_counts for v in p}, key=version_key)),
                first_seen=self._sig_first.get(signature),
                entry=None if entry is None else _entry_report(entry),
                unstable=signature in self._unstable,
                reliability="" if entry is None else str(entry.findings.get("reliability", "")),
                **_promise_fields(entry),
            ))  # fmt: skip
        reports.sort(key=lambda r: (-r.severity, -r.count, r.signature))
        return tuple(reports)

    def reasons(self, kind: str) -> tuple[tuple[str, int], ...]:
        """The reasons of the cases judged ``kind``, most frequent first."""
        return _ranked(self._reasons[kind])


def _control_outcome(
    src: str, dst: str, event: Mapping[str, Any], causes: Sequence[str]
) -> tuple[str, Severity, list[str]] | None:
    """How the A -> A control of a case on ``src -> dst`` ended, as its judgement tells
    (the judge looks at the control before the pair): the outcome, its severity and the
    same-version signatures; None when the harness failed the case (nothing told)."""
    kind = event.get("kind")
    if kind == "control-failed":
        return CONTROL_FAILED, Severity.CONTROL_FAILED, []
    if kind == "invalid":
        # The control's own setup error names A -> A; the pair's names A -> B.
        reason = str(event.get("reason") or "")
        if src == dst or reason.startswith(f"{src} -> {src}:"):
            return CONTROL_INVALID, Severity.INVALID, []
        return CONTROL_CLEAN, Severity.AGREE, []
    if kind == "divergence":
        # On A -> A the pair is its own control: whatever it showed, A -> A showed.
        same = [c for c in causes if src == dst or c.startswith(SAME_VERSION)]
        if same:
            return CONTROL_SAME_VERSION, max(map(_signature_severity, same)), same
        return CONTROL_CLEAN, Severity.AGREE, []
    if kind == "agree":
        return CONTROL_CLEAN, Severity.AGREE, []
    return None


def _promise_fields(entry: Entry | None) -> dict[str, str]:
    """A signature's promise grade and reason, from its entry (none: not graded)."""
    if entry is None:
        return {"promise": "", "promise_reason": ""}
    grade = entry.promise
    return {"promise": str(grade.promise), "promise_reason": grade.reason}


def _signature_severity(signature: str) -> Severity:
    return severity_of(signature.partition(":")[0])


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


# -- small helpers ---------------------------------------------------------------------


def _ranked(counter: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(_most_common(counter))


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
